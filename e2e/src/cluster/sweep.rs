//! Removes what dead test processes left behind. Drop cleans up after a
//! passing or panicking test, but not after a process killed outright (a
//! test runner's timeout sends SIGKILL): its namespaces, and the processes
//! still running in them, are swept by the next cluster to start.

use super::naming::owner_pid;
use super::netns::{self, NETNS_DIR};
use std::path::Path;
use std::sync::Once;

/// Sweeps once per process; later calls do nothing.
pub fn sweep_once() {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| {
        for name in sweep_leftovers() {
            eprintln!("gatehouse-e2e: removed leftover namespace {name}");
        }
    });
}

/// Deletes every namespace of ours whose owning process is gone, killing
/// what runs inside first; returns their names. Failures are reported and
/// skipped: a sweeper must not fail the test that runs it.
pub fn sweep_leftovers() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Another process may be sweeping the same leftover right now.
        match netns::remove(&netns::Netns::named(name.as_str())) {
            Ok(()) => removed.push(name),
            Err(e) if entry.path().exists() => {
                eprintln!("gatehouse-e2e: could not remove leftover namespace {name}: {e}")
            }
            Err(_) => {}
        }
    }
    removed
}

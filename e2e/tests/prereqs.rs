//! The README's two commands (`scripts/quickstart.sh`, `scripts/test.sh`) on
//! a machine that lacks a tool: they stop before building anything, with one
//! message naming what is missing and the command that installs it.
//!
//! "Lacks" is simulated: the scripts run with a cleared environment and a
//! `PATH` of one directory holding links to everything on this `PATH` except
//! the hidden tools, with `GATEHOUSE_PREREQS_NO_INSTALL=1` so that even as
//! root nothing is installed. `cargo` and `apt-get` there are stubs that
//! record being run and fail, so a script that went on to build (or to
//! install) is seen, and stops at once instead of building the workspace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A throwaway machine view: `bin/` (the `PATH`), an empty target directory,
/// and the logs of the stubs.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// `bin/` links every executable on this `PATH` (the first of each name)
    /// except `hidden`; `stubs` are replaced by recording stubs.
    fn new(hidden: &[&str], stubs: &[&str]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::create_dir(dir.path().join("target")).unwrap();
        let mut taken: BTreeSet<String> = hidden.iter().map(|s| s.to_string()).collect();
        for stub in stubs {
            let log = dir.path().join(format!("{stub}.log"));
            let script = bin.join(stub);
            std::fs::write(
                &script,
                format!("#!/bin/sh\necho \"$*\" >>'{}'\nexit 97\n", log.display()),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            taken.insert(stub.to_string());
        }
        let path = std::env::var_os("PATH").unwrap();
        for d in std::env::split_paths(&path) {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let executable = std::fs::metadata(entry.path())
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                if executable && taken.insert(name.clone()) {
                    symlink(entry.path(), bin.join(&name)).unwrap();
                }
            }
        }
        for tool in ["bash", "sed", "sort", "id", "cargo", "rustc"] {
            assert!(
                bin.join(tool).exists(),
                "{tool} is not on PATH: this test needs it to run the scripts"
            );
        }
        Sandbox { dir }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    /// Runs a script of the repository in a cleared environment.
    fn run(&self, script: &str, args: &[&str]) -> Output {
        let mut command = Command::new(repo().join(script));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", self.dir.path().join("bin"))
            .env("CARGO_TARGET_DIR", self.target())
            .env("GATEHOUSE_PREREQS_NO_INSTALL", "1");
        // Where rustup keeps the toolchain that `rustc` (a rustup proxy) runs.
        for var in ["HOME", "RUSTUP_HOME", "CARGO_HOME", "RUSTUP_TOOLCHAIN"] {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        command.output().unwrap()
    }

    /// What a stub was run with, if it was.
    fn stub_log(&self, stub: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(format!("{stub}.log"))).ok()
    }

    fn assert_nothing_built_or_installed(&self, stderr: &str) {
        assert_eq!(self.stub_log("cargo"), None, "cargo ran: {stderr}");
        assert_eq!(self.stub_log("apt-get"), None, "apt-get ran: {stderr}");
        let built: Vec<_> = std::fs::read_dir(self.target()).unwrap().collect();
        assert!(
            built.is_empty(),
            "the target directory was written to: {built:?}"
        );
    }
}

/// The "  - tool: why" lines of a prerequisites message.
fn missing_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("  - ")).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The install command as the script prints it for this user.
fn apt_command(packages: &str) -> String {
    let sudo = if rustix::process::geteuid().is_root() {
        ""
    } else {
        "sudo "
    };
    format!(
        "\n  {sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends {packages}\n"
    )
}

#[test]
fn with_every_tool_on_path_the_quickstart_check_passes() {
    // The control for the tests below: the same sandbox, nothing hidden.
    let sandbox = Sandbox::new(&[], &["cargo", "apt-get"]);
    let out = sandbox.run("scripts/prereqs.sh", &["quickstart"]);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "this machine lacks what the quickstart needs: {err}"
    );
    assert!(
        err.contains("everything scripts/quickstart.sh needs is here"),
        "{err}"
    );
    sandbox.assert_nothing_built_or_installed(&err);
}

#[test]
fn quickstart_without_cmake_names_it_and_the_install_command_before_building() {
    let sandbox = Sandbox::new(&["cmake"], &["cargo", "apt-get"]);
    let out = sandbox.run("scripts/quickstart.sh", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("scripts/quickstart.sh cannot run: this machine lacks\n"),
        "{err}"
    );
    assert_eq!(
        missing_lines(&err),
        ["  - cmake: builds zlib-ng (libz-ng-sys) for Pingora (Debian package cmake)"],
        "{err}"
    );
    assert!(err.contains(&apt_command("cmake")), "{err}");
    assert!(
        err.contains("(Nothing was installed: GATEHOUSE_PREREQS_NO_INSTALL=1.)"),
        "{err}"
    );
    sandbox.assert_nothing_built_or_installed(&err);
}

#[test]
fn quickstart_without_cmake_or_apt_get_names_the_package_for_another_package_manager() {
    let sandbox = Sandbox::new(&["cmake", "apt-get"], &["cargo"]);
    let out = sandbox.run("scripts/quickstart.sh", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(missing_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains(
            "Install the packages with your system's package manager (Debian/Ubuntu names: cmake)."
        ),
        "{err}"
    );
    assert!(!err.contains("apt-get install"), "{err}");
    sandbox.assert_nothing_built_or_installed(&err);
}

#[test]
fn tests_without_h2load_and_testssl_name_both_before_building() {
    let sandbox = Sandbox::new(&["h2load", "testssl"], &["cargo", "apt-get"]);
    let out = sandbox.run("scripts/test.sh", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("scripts/test.sh cannot run: this machine lacks\n"),
        "{err}"
    );
    assert_eq!(
        missing_lines(&err),
        [
            "  - h2load: HTTP/2 load for the benchmark suite (Debian package nghttp2-client)",
            "  - testssl: scans the gateway's TLS listener (Debian package testssl.sh)",
        ],
        "{err}"
    );
    assert!(
        err.contains(&apt_command("nghttp2-client testssl.sh")),
        "{err}"
    );
    sandbox.assert_nothing_built_or_installed(&err);
}

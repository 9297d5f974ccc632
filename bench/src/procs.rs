//! Processes the suite starts. Each one is registered by PID while it runs,
//! so that an error, a panic or Ctrl-C still stops every one of them, and
//! only them.

use crate::sysstat;
use rustix::process::{kill_process, waitid, Pid, Signal, WaitId, WaitIdOptions};
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// PIDs of running children that have not been reaped yet.
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// How long a child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("starting {label} ({program}): {source}")]
    Spawn {
        label: String,
        program: String,
        source: std::io::Error,
    },
    #[error("creating log file {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("{label} exited ({status}); last lines of {log}:\n{tail}")]
    Exited {
        label: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("{label} did not finish within {after:?}")]
    Timeout { label: String, after: Duration },
    #[error("waiting for {label}: {source}")]
    Wait {
        label: String,
        source: std::io::Error,
    },
}

/// Which CPUs a process may run on (`taskset -c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub String);

/// A child process with its output in a log file; stopped when dropped.
pub struct Proc {
    label: String,
    child: Child,
    log: PathBuf,
    /// Set once the child has been waited for.
    exit: Option<ExitStatus>,
}

impl Proc {
    /// Starts `program args...`, pinned to `cpus` when given, with stdout
    /// and stderr in `log_dir/<label>.log`.
    pub fn spawn(
        label: &str,
        program: &str,
        args: &[String],
        cpus: Option<&CpuList>,
        log_dir: &Path,
    ) -> Result<Self, ProcError> {
        Self::spawn_with_env(label, program, args, cpus, log_dir, &[])
    }

    /// [`Proc::spawn`] with extra environment variables.
    pub fn spawn_with_env(
        label: &str,
        program: &str,
        args: &[String],
        cpus: Option<&CpuList>,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, ProcError> {
        let log = log_dir.join(format!("{label}.log"));
        let out = File::create(&log).map_err(|source| ProcError::Log {
            path: log.display().to_string(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| ProcError::Log {
            path: log.display().to_string(),
            source,
        })?;
        // taskset execs the program, so the PID we get is the program's.
        let mut cmd = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(&list.0).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // Register under the lock so an interrupt cannot miss the new PID.
        let mut running = lock_running();
        let child = cmd.spawn().map_err(|source| ProcError::Spawn {
            label: label.to_owned(),
            program: program.to_owned(),
            source,
        })?;
        running.insert(child.id());
        drop(running);
        Ok(Proc {
            label: label.to_owned(),
            child,
            log,
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Errors (with the end of its log) if the process has exited.
    pub fn ensure_running(&mut self) -> Result<(), ProcError> {
        match self.try_reap() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status)),
            Err(source) => Err(ProcError::Wait {
                label: self.label.clone(),
                source,
            }),
        }
    }

    /// Waits for the process to exit by itself (load generators), killing
    /// it after `timeout`. A non-zero exit is an error. Returns the CPU time
    /// (clock ticks) the process used, read before it is reaped.
    pub fn finish(&mut self, timeout: Duration) -> Result<u64, ProcError> {
        let deadline = Instant::now() + timeout;
        let pid = i32::try_from(self.pid()).ok().and_then(Pid::from_raw);
        loop {
            // Exited but not reaped yet: its /proc entry still has its times.
            let exited = pid.is_some_and(|pid| {
                let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
                matches!(waitid(WaitId::Pid(pid), options), Ok(Some(_)))
            });
            let ticks = if exited {
                sysstat::process_ticks(self.pid()).unwrap_or(0)
            } else {
                0
            };
            match self.try_reap() {
                Ok(Some(status)) if status.success() => return Ok(ticks),
                Ok(Some(status)) => return Err(self.exited(status)),
                Ok(None) if Instant::now() >= deadline => {
                    self.stop();
                    return Err(ProcError::Timeout {
                        label: self.label.clone(),
                        after: timeout,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(source) => {
                    return Err(ProcError::Wait {
                        label: self.label.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// SIGTERM, then SIGKILL if it is still there after a grace period.
    pub fn stop(&mut self) {
        if self.exit.is_some() {
            return;
        }
        signal(self.pid(), Signal::TERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.try_reap(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(self.pid(), Signal::KILL);
        while matches!(self.try_reap(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Reaps the child if it exited; the PID leaves the registry in the same
    /// critical section, so an interrupt never signals a recycled PID.
    fn try_reap(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.exit.is_some() {
            return Ok(self.exit);
        }
        let mut running = lock_running();
        let status = self.child.try_wait()?;
        if status.is_some() {
            running.remove(&self.child.id());
            self.exit = status;
        }
        Ok(status)
    }

    fn exited(&self, status: ExitStatus) -> ProcError {
        ProcError::Exited {
            label: self.label.clone(),
            status: status.to_string(),
            log: self.log.display().to_string(),
            tail: log_tail(&self.log, 15),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn lock_running() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    // A panic while holding the lock leaves the set intact; keep using it.
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // The process may be gone already; that is what we wanted.
        let _ = kill_process(pid, sig);
    }
}

/// Stops every registered child: SIGTERM, a moment, then SIGKILL. For the
/// interrupt path; normal runs stop their processes through `Drop`.
pub fn stop_all_registered() {
    let pids: Vec<u32> = lock_running().iter().copied().collect();
    for &pid in &pids {
        signal(pid, Signal::TERM);
    }
    std::thread::sleep(Duration::from_millis(500));
    // Still-registered PIDs are unreaped children of ours: safe to signal.
    let running = lock_running();
    for &pid in running.iter() {
        signal(pid, Signal::KILL);
    }
}

/// On SIGINT or SIGTERM: stop every child we started, then exit.
pub fn install_interrupt_handler() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            runtime.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    eprintln!("warning: cannot install the interrupt handler");
                    return std::future::pending().await;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
            eprintln!("\ninterrupted: stopping every process the benchmark started");
            stop_all_registered();
            std::process::exit(130);
        })?;
    Ok(())
}

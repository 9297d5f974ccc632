//! A process started in a namespace. It leads its own process group, so
//! killing the group also kills any children it started; it is killed on
//! drop. Its stdout and stderr lines are collected for readiness checks and
//! for error messages.

use super::command::describe;
use super::error::{ClusterError, Result};
use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct NsProcess {
    label: String,
    child: Child,
    lines: Receiver<String>,
    output: Arc<Mutex<String>>,
    stopped: bool,
}

impl NsProcess {
    /// Starts `command` in a new process group with stdin closed and its
    /// output captured. `label` names it in errors.
    pub fn spawn(label: &str, mut command: Command) -> Result<Self> {
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| ClusterError::io(format!("starting `{}`", describe(&command)), e))?;
        let (sender, lines) = mpsc::channel();
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(stdout) = child.stdout.take() {
            collect_lines(stdout, sender.clone(), output.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect_lines(stderr, sender, output.clone());
        }
        Ok(Self {
            label: label.to_owned(),
            child,
            lines,
            output,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Everything the process printed so far (stdout and stderr interleaved
    /// by line).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|text| text.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Waits until the process prints a line for which `ready` holds and
    /// returns that line. Fails if it exits first or `timeout` passes.
    pub fn wait_for_line(&self, ready: impl Fn(&str) -> bool, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if ready(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ClusterError::Timeout {
                        what: format!("`{}` to become ready", self.label),
                        after: timeout,
                        output: self.output(),
                    })
                }
                // Both pipes closed: the process is gone.
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ClusterError::ExitedEarly {
                        label: self.label.clone(),
                        output: self.output(),
                    })
                }
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, once it has (without waiting).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` to the process group (while it has not been reaped, so
    /// the group can only hold our own processes).
    pub fn signal_group(&mut self, signal: Signal) {
        if self.stopped || self.exit_status().is_some() {
            return;
        }
        if let Some(group) = self.group() {
            let _ = kill_process_group(group, signal);
        }
    }

    /// Sends SIGTERM to the group, waits up to `grace` for the process to
    /// exit, then kills the group.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        if let Some(group) = self.group() {
            let _ = kill_process_group(group, Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }

    /// Kills the process group and reaps the process. Idempotent.
    pub fn kill(&mut self) {
        if self.stopped {
            return;
        }
        // Until we reap it the leader's pid cannot be reused, so signalling
        // its group can only reach our own processes.
        if let Some(group) = self.group() {
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
    }

    fn group(&self) -> Option<Pid> {
        Pid::from_raw(i32::try_from(self.child.id()).ok()?)
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to a single process that is not our child (sweeping).
pub(crate) fn kill_pid(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::KILL);
    }
}

fn collect_lines(
    pipe: impl Read + Send + 'static,
    lines: Sender<String>,
    output: Arc<Mutex<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut text) = output.lock() {
                text.push_str(&line);
                text.push('\n');
            }
            // The receiver may be gone (process handle dropped): keep
            // draining so the process never blocks on a full pipe.
            let _ = lines.send(line);
        }
    });
}

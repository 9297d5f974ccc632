//! One container of a pod as the kubelet runs it: its process, state,
//! restarts and probes.

use super::probes::ProbeState;
use super::sandbox::Launch;
use crate::cluster::NsProcess;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The longest wait before a crashed container is started again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: Time,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        started_at: Option<Time>,
        finished_at: Time,
    },
}

/// What a container needs to start; `None` in [`ContainerRun::ready_to_run`]
/// when the image or config could not be resolved.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub launch: Launch,
    pub program: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug)]
pub struct ContainerRun {
    pub spec: Container,
    pub runnable: Option<Runnable>,
    pub process: Option<NsProcess>,
    pub state: State,
    pub last_state: Option<State>,
    pub restart_count: i32,
    /// When a crashed container starts again.
    pub restart_at: Option<Instant>,
    pub readiness: Option<ProbeState>,
    pub liveness: Option<ProbeState>,
    pub startup: Option<ProbeState>,
    /// Output of every run so far, for `Kubelet::logs`.
    pub log: String,
}

impl ContainerRun {
    pub fn new(spec: Container, state: State) -> Self {
        Self {
            spec,
            runnable: None,
            process: None,
            state,
            last_state: None,
            restart_count: 0,
            restart_at: None,
            readiness: None,
            liveness: None,
            startup: None,
            log: String::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Started: running, and its startup probe (if any) has succeeded.
    pub fn started(&self) -> bool {
        self.is_running() && self.startup.as_ref().is_none_or(|p| p.result == Some(true))
    }

    /// Ready: started, and its readiness probe (if any) has succeeded.
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .readiness
                .as_ref()
                .is_none_or(|p| p.result == Some(true))
    }

    /// Starts the process (`command` from the sandbox) and its probes.
    pub fn start(&mut self, command: std::process::Command) {
        let label = format!("container {}", self.spec.name);
        match NsProcess::spawn(&label, command) {
            Ok(process) => {
                let now = Instant::now();
                self.readiness = self
                    .spec
                    .readiness_probe
                    .clone()
                    .map(|p| ProbeState::new(p, now));
                self.liveness = self
                    .spec
                    .liveness_probe
                    .clone()
                    .map(|p| ProbeState::new(p, now));
                self.startup = self
                    .spec
                    .startup_probe
                    .clone()
                    .map(|p| ProbeState::new(p, now));
                self.process = Some(process);
                self.set_state(State::Running {
                    started_at: now_time(),
                });
            }
            Err(e) => self.set_state(State::Waiting {
                reason: "RunContainerError".into(),
                message: e.to_string(),
            }),
        }
    }

    /// Notes that the process ended; true if it had.
    pub fn reap(&mut self) -> bool {
        let Some(process) = self.process.as_mut() else {
            return false;
        };
        let Some(status) = process.exit_status() else {
            return false;
        };
        self.finish(status);
        true
    }

    /// Kills the process group now (liveness failure, grace over).
    pub fn kill(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill();
            let status = process.exit_status();
            match status {
                Some(status) => self.finish(status),
                None => self.finish_with(137, Some(9)),
            }
        }
    }

    fn finish(&mut self, status: std::process::ExitStatus) {
        use std::os::unix::process::ExitStatusExt;
        let signal = status.signal();
        let code = status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0));
        self.finish_with(code, signal);
    }

    fn finish_with(&mut self, exit_code: i32, signal: Option<i32>) {
        if let Some(process) = self.process.take() {
            self.log.push_str(&process.output());
        }
        let started_at = match &self.state {
            State::Running { started_at } => Some(started_at.clone()),
            _ => None,
        };
        self.set_state(State::Terminated {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            started_at,
            finished_at: now_time(),
        });
        self.readiness = None;
        self.liveness = None;
        self.startup = None;
    }

    pub fn set_state(&mut self, state: State) {
        if matches!(self.state, State::Terminated { .. })
            && !matches!(state, State::Terminated { .. })
        {
            self.last_state = Some(self.state.clone());
        }
        self.state = state;
    }

    /// The wait before restart number `restart_count + 1`: 1 s doubling,
    /// at most [`MAX_BACKOFF`].
    pub fn backoff(&self) -> Duration {
        let exponent = u32::try_from(self.restart_count.clamp(0, 8)).unwrap_or(8);
        Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
    }

    /// Everything the container printed, all runs.
    pub fn output(&self) -> String {
        let mut text = self.log.clone();
        if let Some(process) = &self.process {
            text.push_str(&process.output());
        }
        text
    }
}

pub fn now_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

//! The `status` the kubelet writes for a pod: phase, IPs, conditions (with
//! transition times that only move when a condition changes) and container
//! statuses.

use super::container::{now_time, ContainerRun, State};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// The phase of a pod whose containers are `containers`: Pending until
/// each has started once, Succeeded or Failed once all ended for good.
pub fn phase(containers: &[ContainerRun]) -> Phase {
    let never_started = containers
        .iter()
        .any(|c| matches!(c.state, State::Waiting { .. }) && c.last_state.is_none());
    if never_started || containers.is_empty() {
        return Phase::Pending;
    }
    let all_done = containers
        .iter()
        .all(|c| matches!(c.state, State::Terminated { .. }) && c.restart_at.is_none());
    if !all_done {
        return Phase::Running;
    }
    let all_ok = containers
        .iter()
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
    if all_ok {
        Phase::Succeeded
    } else {
        Phase::Failed
    }
}

/// Remembers when each condition last changed.
#[derive(Debug, Default)]
pub struct Conditions {
    since: BTreeMap<&'static str, (bool, Time)>,
}

impl Conditions {
    fn condition(&mut self, kind: &'static str, value: bool) -> PodCondition {
        let entry = self
            .since
            .entry(kind)
            .or_insert_with(|| (value, now_time()));
        if entry.0 != value {
            *entry = (value, now_time());
        }
        PodCondition {
            type_: kind.into(),
            status: if value { "True" } else { "False" }.into(),
            last_transition_time: Some(entry.1.clone()),
            reason: (!value && (kind == "Ready" || kind == "ContainersReady"))
                .then(|| "ContainersNotReady".into()),
            ..PodCondition::default()
        }
    }
}

/// Where the pod is: its IP and its node's, and when it started.
pub struct Placement<'a> {
    pub pod_ip: Option<String>,
    pub host_ip: &'a str,
    pub start_time: &'a Time,
    /// Terminating pods are never ready.
    pub terminating: bool,
}

pub fn pod_status(
    containers: &[ContainerRun],
    placement: &Placement<'_>,
    conditions: &mut Conditions,
) -> PodStatus {
    let phase = phase(containers);
    let ready = !placement.terminating
        && phase == Phase::Running
        && containers.iter().all(ContainerRun::ready);
    PodStatus {
        phase: Some(phase.as_str().into()),
        pod_ip: placement.pod_ip.clone(),
        pod_ips: placement.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        host_ip: Some(placement.host_ip.into()),
        host_ips: Some(vec![HostIP {
            ip: placement.host_ip.into(),
        }]),
        start_time: Some(placement.start_time.clone()),
        conditions: Some(vec![
            conditions.condition("PodScheduled", true),
            conditions.condition("Initialized", true),
            conditions.condition("ContainersReady", ready),
            conditions.condition("Ready", ready),
        ]),
        container_statuses: Some(containers.iter().map(container_status).collect()),
        ..PodStatus::default()
    }
}

fn container_status(run: &ContainerRun) -> ContainerStatus {
    ContainerStatus {
        name: run.spec.name.clone(),
        image: run.spec.image.clone().unwrap_or_default(),
        image_id: String::new(),
        container_id: run
            .process
            .as_ref()
            .map(|p| format!("process://{}", p.pid())),
        ready: run.ready(),
        started: Some(run.started()),
        restart_count: run.restart_count,
        state: Some(state(&run.state)),
        last_state: run.last_state.as_ref().map(state),
        ..ContainerStatus::default()
    }
}

fn state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..ContainerState::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..ContainerState::default()
        },
        State::Terminated {
            exit_code,
            signal,
            reason,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone()),
                started_at: started_at.clone(),
                finished_at: Some(finished_at.clone()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    fn run(state: State) -> ContainerRun {
        ContainerRun::new(Container::default(), state)
    }

    fn terminated(exit_code: i32) -> State {
        State::Terminated {
            exit_code,
            signal: None,
            reason: String::new(),
            started_at: None,
            finished_at: now_time(),
        }
    }

    #[test]
    fn phase_follows_the_containers() {
        let waiting = State::Waiting {
            reason: "ErrImagePull".into(),
            message: String::new(),
        };
        let running = State::Running {
            started_at: now_time(),
        };
        assert_eq!(phase(&[run(waiting.clone())]), Phase::Pending);
        assert_eq!(phase(&[run(running.clone()), run(waiting)]), Phase::Pending);
        assert_eq!(phase(&[run(running), run(terminated(0))]), Phase::Running);
        assert_eq!(phase(&[run(terminated(0))]), Phase::Succeeded);
        assert_eq!(
            phase(&[run(terminated(0)), run(terminated(2))]),
            Phase::Failed
        );
        let mut restarting = run(terminated(1));
        restarting.restart_at = Some(std::time::Instant::now());
        assert_eq!(phase(&[restarting]), Phase::Running);
    }

    #[test]
    fn transition_times_move_only_on_change() {
        let mut conditions = Conditions::default();
        let first = conditions.condition("Ready", false).last_transition_time;
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(
            conditions.condition("Ready", false).last_transition_time,
            first
        );
        let changed = conditions.condition("Ready", true);
        assert_ne!(changed.last_transition_time, first);
        assert_eq!(changed.status, "True");
    }
}

//! One pod's life on its node: sandbox, volumes and containers set up,
//! processes restarted and probed, status written, and graceful
//! termination when the pod is deleted.

use super::container::{now_time, ContainerRun, Runnable, State};
use super::env::{argv, environment, program};
use super::error::{KubeletError, Result};
use super::fields::PodFacts;
use super::probes::{container_port, http_get, run_exec, Target};
use super::sandbox::Sandbox;
use super::status::{pod_status, Conditions, Placement};
use super::volumes;
use super::NodeContext;
use k8s_openapi::api::core::v1::{LifecycleHandler, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use rustix::process::Signal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the worker looks at its processes and probes.
const TICK: Duration = Duration::from_millis(100);
/// How often setting up a pod that failed to set up is tried again.
const SETUP_RETRY: Duration = Duration::from_secs(2);
/// `terminationGracePeriodSeconds` when the pod says nothing.
const DEFAULT_GRACE: i64 = 30;

/// Runs the pod `updates` describes until it is deleted (`None` when the
/// object is gone from the API).
pub async fn run(ctx: Arc<NodeContext>, mut updates: watch::Receiver<Option<Pod>>) {
    // A sandbox can fail to come up, e.g. while a namesake's is still
    // being torn down: try again until it does or the pod is gone.
    let mut worker = loop {
        let Some(pod) = updates.borrow_and_update().clone() else {
            return;
        };
        match Worker::new(ctx.clone(), pod) {
            Ok(worker) => break worker,
            Err(e) => eprintln!("gatehouse-e2e kubelet: cannot run a pod yet: {e}"),
        }
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(SETUP_RETRY) => {}
        }
    };
    let mut gone = false;
    loop {
        if gone || worker.pod.metadata.deletion_timestamp.is_some() {
            worker.terminate(gone).await;
            return;
        }
        worker.tick().await;
        worker.write_status().await;
        tokio::select! {
            changed = updates.changed() => match changed {
                Ok(()) => match updates.borrow_and_update().clone() {
                    Some(pod) => worker.pod = pod,
                    None => gone = true,
                },
                Err(_) => gone = true,
            },
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

struct Worker {
    ctx: Arc<NodeContext>,
    pod: Pod,
    api: Api<Pod>,
    // Processes go before the sandbox they run in.
    containers: Vec<ContainerRun>,
    sandbox: Sandbox,
    conditions: Conditions,
    start_time: Time,
    /// When setup should be tried (again); `None` once it succeeded.
    setup_at: Option<Instant>,
    terminating: bool,
    written: Option<serde_json::Value>,
}

impl Worker {
    fn new(ctx: Arc<NodeContext>, pod: Pod) -> Result<Self> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod
            .spec
            .clone()
            .ok_or_else(|| KubeletError::Pod(format!("pod {namespace}/{name} has no spec")))?;
        let sandbox = Sandbox::create(
            &ctx.cluster,
            ctx.node,
            &sandbox_name(&namespace, &name),
            spec.host_network == Some(true),
            ctx.launcher.clone(),
            ctx.hosts_file.clone(),
        )?;
        let containers = spec
            .containers
            .iter()
            .map(|c| {
                ContainerRun::new(
                    c.clone(),
                    State::Waiting {
                        reason: "ContainerCreating".into(),
                        message: String::new(),
                    },
                )
            })
            .collect();
        Ok(Self {
            api: Api::namespaced(ctx.client.clone(), &namespace),
            ctx,
            pod,
            sandbox,
            containers,
            conditions: Conditions::default(),
            start_time: now_time(),
            setup_at: Some(Instant::now()),
            terminating: false,
            written: None,
        })
    }

    fn facts(&self) -> PodFacts {
        PodFacts {
            pod: self.pod.clone(),
            pod_ip: self.sandbox.pod_ip.to_string(),
            host_ip: self.sandbox.host_ip.to_string(),
        }
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// Writes the volumes and resolves each container's image, command and
    /// environment; containers that resolve start.
    async fn set_up(&mut self) {
        let facts = self.facts();
        let root = self.sandbox.dir().join("volumes");
        match volumes::prepare(&self.ctx.client, &facts, &root).await {
            Ok(dirs) => self.sandbox.volumes = dirs,
            Err(e) => {
                for c in &mut self.containers {
                    c.set_state(State::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: e.to_string(),
                    });
                }
                self.setup_at = Some(Instant::now() + SETUP_RETRY);
                return;
            }
        }
        let security = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.clone());
        let mut retry = false;
        for c in &mut self.containers {
            let image_ref = c.spec.image.clone().unwrap_or_default();
            let Some(image) = self.ctx.images.get(&image_ref) else {
                c.set_state(State::Waiting {
                    reason: "ErrImagePull".into(),
                    message: format!("image {image_ref:?} is not in the kubelet's image map"),
                });
                continue;
            };
            let resolved = async {
                let env = environment(&self.ctx.client, &facts, &c.spec).await?;
                let argv = argv(&c.spec, image, &env);
                let program = program(image, &argv)?;
                let launch = self.sandbox.launch(&c.spec, security.as_ref(), env)?;
                Ok::<_, KubeletError>(Runnable {
                    launch,
                    program,
                    args: argv.into_iter().skip(1).collect(),
                })
            }
            .await;
            match resolved {
                Ok(runnable) => {
                    let command =
                        self.sandbox
                            .command(&runnable.launch, &runnable.program, &runnable.args);
                    c.runnable = Some(runnable);
                    c.start(command);
                }
                Err(e) => {
                    retry = true;
                    c.set_state(State::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
        self.setup_at = retry.then(|| Instant::now() + SETUP_RETRY);
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        if self.setup_at.is_some_and(|at| now >= at) {
            // Containers already running keep running; only the rest retry.
            if self.containers.iter().all(|c| c.runnable.is_none()) {
                self.set_up().await;
            } else {
                self.setup_at = None;
            }
        }
        let policy = self.restart_policy();
        for index in 0..self.containers.len() {
            self.supervise(index, &policy).await;
        }
        let mut logs = self.ctx.logs();
        for c in &self.containers {
            logs.insert(self.log_key(&c.spec.name), c.output());
        }
    }

    /// Restarts, probes and notes the exit of container `index`.
    async fn supervise(&mut self, index: usize, policy: &str) {
        let now = Instant::now();
        let c = &mut self.containers[index];
        if c.reap() {
            schedule_restart(c, policy);
        }
        if c.restart_at.is_some_and(|at| now >= at) {
            c.restart_at = None;
            c.restart_count += 1;
            if let Some(runnable) = &c.runnable {
                let command =
                    self.sandbox
                        .command(&runnable.launch, &runnable.program, &runnable.args);
                c.start(command);
            }
        }
        if !c.is_running() {
            return;
        }
        let (Some(runnable), spec) = (c.runnable.clone(), c.spec.clone()) else {
            return;
        };
        let node = self.ctx.cluster.node(self.ctx.node).netns().clone();
        let target = Target {
            node: &node,
            pod_ip: self.sandbox.pod_ip,
            container: &spec,
            sandbox: &self.sandbox,
            launch: &runnable.launch,
        };
        let c = &mut self.containers[index];
        if let Some(startup) = c.startup.as_mut().filter(|p| p.result != Some(true)) {
            if startup.due(now) {
                startup.run(&target).await;
            }
            if startup.result == Some(false) {
                c.kill();
                schedule_restart(c, policy);
            }
            return;
        }
        if let Some(liveness) = c.liveness.as_mut().filter(|p| p.due(now)) {
            liveness.run(&target).await;
            if liveness.result == Some(false) {
                c.kill();
                schedule_restart(c, policy);
                return;
            }
        }
        if let Some(readiness) = c.readiness.as_mut().filter(|p| p.due(now)) {
            readiness.run(&target).await;
        }
    }

    fn log_key(&self, container: &str) -> String {
        let meta = &self.pod.metadata;
        log_key(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            container,
        )
    }

    /// Patches `pods/status` when it differs from what was written last.
    async fn write_status(&mut self) {
        let placement = Placement {
            pod_ip: Some(self.sandbox.pod_ip.to_string()),
            host_ip: &self.sandbox.host_ip.to_string(),
            start_time: &self.start_time,
            terminating: self.terminating,
        };
        let status = pod_status(&self.containers, &placement, &mut self.conditions);
        let Ok(value) = serde_json::to_value(&status) else {
            return;
        };
        if self.written.as_ref() == Some(&value) {
            return;
        }
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({ "status": value });
        match self
            .api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.written = Some(value),
            Err(e) => eprintln!("gatehouse-e2e kubelet: writing the status of {name}: {e}"),
        }
    }

    /// preStop hooks, SIGTERM, the grace period, SIGKILL; then the pod is
    /// deleted for good (unless it is gone already) and its sandbox removed.
    async fn terminate(&mut self, gone: bool) {
        self.terminating = true;
        let grace = if gone {
            0
        } else {
            self.pod
                .metadata
                .deletion_grace_period_seconds
                .or_else(|| {
                    self.pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .unwrap_or(DEFAULT_GRACE)
        };
        let deadline = Instant::now() + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        if !gone {
            self.write_status().await;
        }
        for index in 0..self.containers.len() {
            self.pre_stop(index, deadline).await;
        }
        for c in &mut self.containers {
            if let Some(process) = c.process.as_mut() {
                process.signal_group(Signal::TERM);
            }
        }
        while Instant::now() < deadline
            && self
                .containers
                .iter_mut()
                .any(|c| !c.reap() && c.process.is_some())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for c in &mut self.containers {
            c.kill();
            c.restart_at = None;
        }
        {
            let mut logs = self.ctx.logs();
            for c in &self.containers {
                logs.insert(self.log_key(&c.spec.name), c.output());
            }
        }
        if gone {
            return;
        }
        self.write_status().await;
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: self.pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(e) = self.api.delete(&name, &params).await {
            eprintln!("gatehouse-e2e kubelet: deleting {name}: {e}");
        }
    }

    /// Runs container `index`'s preStop hook, if it has one and runs.
    async fn pre_stop(&mut self, index: usize, deadline: Instant) {
        let c = &self.containers[index];
        let Some(hook) = c.spec.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) else {
            return;
        };
        let (true, Some(runnable)) = (c.is_running(), c.runnable.clone()) else {
            return;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        run_hook(&hook, &self.sandbox, &runnable, &c.spec, &self.ctx, left).await;
    }
}

async fn run_hook(
    hook: &LifecycleHandler,
    sandbox: &Sandbox,
    runnable: &Runnable,
    spec: &k8s_openapi::api::core::v1::Container,
    ctx: &NodeContext,
    timeout: Duration,
) {
    if let Some(exec) = &hook.exec {
        let argv = exec.command.clone().unwrap_or_default();
        run_exec(sandbox, &runnable.launch, &argv, timeout).await;
    } else if let Some(http) = &hook.http_get {
        let port = container_port(spec, &http.port);
        let Some(port) = port else { return };
        let node = ctx.cluster.node(ctx.node).netns().clone();
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let _ = tokio::time::timeout(
            timeout,
            http_get(&node, (sandbox.pod_ip, port).into(), &path),
        )
        .await;
    } else if let Some(sleep) = &hook.sleep {
        let wanted = Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0));
        tokio::time::sleep(wanted.min(timeout)).await;
    }
}

/// After container `c` ended: when (whether) it starts again.
fn schedule_restart(c: &mut ContainerRun, policy: &str) {
    let failed = !matches!(c.state, State::Terminated { exit_code: 0, .. });
    let restart = match policy {
        "Never" => false,
        "OnFailure" => failed,
        _ => true,
    };
    if restart {
        c.restart_at = Some(Instant::now() + c.backoff());
    }
}

/// The cluster's name for the pod's namespace: a DNS label from the
/// namespace and name.
fn sandbox_name(namespace: &str, name: &str) -> String {
    let text: String = format!("{namespace}-{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    text.trim_matches('-').to_owned()
}

pub fn log_key(namespace: &str, pod: &str, container: &str) -> String {
    format!("{namespace}/{pod}/{container}")
}

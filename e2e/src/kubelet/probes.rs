//! Readiness, liveness and startup probes: httpGet and tcpSocket from the
//! node (as the kubelet connects), exec inside the container's sandbox;
//! with Kubernetes' timing and thresholds.

use super::sandbox::{Launch, Sandbox};
use crate::cluster::{Netns, NsProcess};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One probe of one container and where it stands.
#[derive(Debug)]
pub struct ProbeState {
    probe: Probe,
    started: Instant,
    next: Instant,
    successes: i32,
    failures: i32,
    /// The outcome once a threshold was reached.
    pub result: Option<bool>,
}

impl ProbeState {
    pub fn new(probe: Probe, started: Instant) -> Self {
        let delay = seconds(probe.initial_delay_seconds, 0);
        Self {
            probe,
            started,
            next: started + delay,
            successes: 0,
            failures: 0,
            result: None,
        }
    }

    /// Whether the probe's period has come round.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next && now >= self.started
    }

    /// Runs the probe and updates the result; true when it changed.
    pub async fn run(&mut self, target: &Target<'_>) -> bool {
        let timeout = seconds(self.probe.timeout_seconds, 1);
        let ok = check(&self.probe, target, timeout).await;
        self.next = Instant::now() + seconds(self.probe.period_seconds, 10);
        let before = self.result;
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                self.result = Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                self.result = Some(false);
            }
        }
        before != self.result
    }
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.map_or(default, |v| u64::try_from(v).unwrap_or(default)))
}

/// What a probe reaches: the pod's IP from the node's namespace, the
/// container's named ports, and its sandbox for exec.
pub struct Target<'a> {
    pub node: &'a Netns,
    pub pod_ip: Ipv4Addr,
    pub container: &'a Container,
    pub sandbox: &'a Sandbox,
    pub launch: &'a Launch,
}

impl Target<'_> {
    fn port(&self, port: &IntOrString) -> Option<u16> {
        container_port(self.container, port)
    }
}

/// The number `port` names: itself, or the container port of that name.
pub fn container_port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

async fn check(probe: &Probe, target: &Target<'_>, timeout: Duration) -> bool {
    if let Some(http) = &probe.http_get {
        let Some(port) = target.port(&http.port) else {
            return false;
        };
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let attempt = http_get(target.node, (target.pod_ip, port).into(), &path);
        return tokio::time::timeout(timeout, attempt)
            .await
            .is_ok_and(|status| status.is_some_and(|s| (200..400).contains(&s)));
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = target.port(&tcp.port) else {
            return false;
        };
        let attempt = target.node.connect((target.pod_ip, port).into());
        return matches!(tokio::time::timeout(timeout, attempt).await, Ok(Ok(_)));
    }
    if let Some(exec) = &probe.exec {
        let argv = exec.command.clone().unwrap_or_default();
        return run_exec(target.sandbox, target.launch, &argv, timeout).await == Some(0);
    }
    false
}

/// The status code of `GET path` on `addr`, connecting from `from`.
pub async fn http_get(from: &Netns, addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = from.connect(addr).await.ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/gatehouse-e2e\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await.ok()?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]).into_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `argv` in the container's sandbox (its namespaces, mounts, user and
/// environment); its exit code, or `None` on timeout or failure to start.
pub async fn run_exec(
    sandbox: &Sandbox,
    launch: &Launch,
    argv: &[String],
    timeout: Duration,
) -> Option<i32> {
    let (program, args) = argv.split_first()?;
    let command = sandbox.command(launch, Path::new(program), args);
    let mut process = NsProcess::spawn(&format!("exec in {}", launch.name), command).ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = process.exit_status() {
            return status.code();
        }
        if Instant::now() >= deadline {
            process.kill();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! Config propagation in cluster mode: the Kubernetes API emulator holding
//! N Ingresses (each with its Service and EndpointSlice), the controller
//! watching it and streaming to a gateway over mutual TLS, and repeated
//! changes timed from the API write to the gateway answering from the new
//! backend: an Ingress's backend Service (a full rebuild) and a Service's
//! EndpointSlice (an endpoints frame). Then bursts of changes, counting the
//! rebuilds they cost.

use crate::certs::{CertError, StreamCerts};
use crate::cluster_burst::{
    self, answered_by, metric_value, metrics_text, BurstError, BurstKind, BurstResult,
};
use crate::cluster_objects::{self as objects, SWITCH, SWITCH_HOST, TARGET, TARGET_HOST};
use crate::cluster_timing::{attribute, Change, ChangeKind};
use crate::http_probe::{free_ports, wait_for_port, Probe};
use crate::kube_api::{write_all, ApiClient, ApiError, Resource, Write};
use crate::log_times;
use crate::procs::{Proc, ProcError};
use crate::sysstat::{self, MachineStats, MachineWindow, StatError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest wait for one change to be served.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the first snapshot (listing 30,000 objects included).
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause before each change, so that it starts a new debounce window.
const SETTLE: Duration = Duration::from_millis(300);
/// How often the gateway is asked whether the change arrived.
const POLL: Duration = Duration::from_millis(1);
/// Connections the objects are created over.
const SETUP_CONNECTIONS: usize = 2;
/// Log filters: the per-frame lines the breakdown reads are at debug.
const CONTROLLER_LOG: &str = "info,gatehouse_controller::rebuild=debug";
const GATEWAY_LOG: &str = "info,gatehouse_gateway::install=debug";

#[derive(Debug, thiserror::Error)]
pub enum ClusterPropagationError {
    #[error(transparent)]
    Process(#[from] ProcError),
    #[error(transparent)]
    Stat(#[from] StatError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("Kubernetes API: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Burst(#[from] BurstError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{what} did not happen within {after:?}; logs in {dir}")]
    Timeout {
        what: String,
        after: Duration,
        dir: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterPropagationError {
    let context = context.into();
    move |source| ClusterPropagationError::Io { context, source }
}

/// Binaries used.
pub struct Binaries {
    pub controller: PathBuf,
    pub gateway: PathBuf,
    pub echo: PathBuf,
    pub emulator: PathBuf,
}

/// What one scale runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub ingresses: usize,
    /// Changes of each kind.
    pub changes: usize,
    /// Objects per burst (at most the other Ingresses); 0 skips bursts.
    pub burst: usize,
    /// Longest wait for the machine to be quiet before starting.
    pub max_quiet_wait: Duration,
}

/// Resident memory now and at its peak, KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Self, StatError> {
        Ok(Memory {
            rss_kib: sysstat::process_rss_kib(pid)?,
            peak_kib: sysstat::process_peak_rss_kib(pid)?,
        })
    }
}

/// What one scale measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterResult {
    pub ingresses: usize,
    /// Objects created through the API, and how long that took.
    pub objects: usize,
    pub setup: Duration,
    /// Size of the full snapshot frame (the controller's metric).
    pub snapshot_bytes: Option<u64>,
    /// Controller start to the gateway serving the first snapshot.
    pub initial: Duration,
    pub ingress_changes: Vec<Change>,
    pub endpoint_changes: Vec<Change>,
    /// After the single changes, before the bursts.
    pub controller: Memory,
    pub gateway: Memory,
    pub emulator: Memory,
    pub bursts: Vec<BurstResult>,
    /// The controller's peak after the bursts.
    pub controller_peak_after_bursts_kib: u64,
    /// Steal and other load over the measured phase.
    pub machine: MachineStats,
    pub started_quiet: bool,
}

/// The started processes of one scale (stopped when dropped).
struct Rig {
    dir: PathBuf,
    pods: [Proc; 2],
    emulator: Proc,
    controller: Proc,
    gateway: Proc,
    api: SocketAddr,
    http: SocketAddr,
}

impl Rig {
    fn ensure_running(&mut self) -> Result<(), ProcError> {
        self.emulator.ensure_running()?;
        self.controller.ensure_running()?;
        self.gateway.ensure_running()
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![
            std::process::id(),
            self.emulator.pid(),
            self.controller.pid(),
            self.gateway.pid(),
        ];
        pids.extend(self.pods.iter().map(Proc::pid));
        pids
    }

    fn timeout(&self, what: impl Into<String>, after: Duration) -> ClusterPropagationError {
        ClusterPropagationError::Timeout {
            what: what.into(),
            after,
            dir: self.dir.display().to_string(),
        }
    }

    /// Polls the gateway until `pod` answers for `host`.
    fn wait_for_pod(
        &mut self,
        probe: &mut Probe,
        host: &str,
        pod: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<(), ClusterPropagationError> {
        let deadline = Instant::now() + timeout;
        let mut checked = Instant::now();
        while Instant::now() < deadline {
            if answered_by(probe, host).as_deref() == Some(pod) {
                return Ok(());
            }
            if checked.elapsed() > Duration::from_secs(1) {
                self.ensure_running()?;
                checked = Instant::now();
            }
            std::thread::sleep(POLL);
        }
        Err(self.timeout(what, timeout))
    }
}

fn echo(
    bin: &Path,
    label: &str,
    pod: &str,
    addr: SocketAddr,
    dir: &Path,
) -> Result<Proc, ProcError> {
    let args = [
        "--listen",
        &addr.to_string(),
        "--service",
        pod,
        "--pod",
        pod,
    ]
    .map(str::to_owned);
    Proc::spawn(label, &bin.display().to_string(), &args, None, dir)
}

/// The address a process logged after `marker` (`... marker addr=HOST:PORT`).
pub fn logged_addr(proc: &mut Proc, marker: &str) -> Result<Option<SocketAddr>, ProcError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let log =
            log_times::strip_ansi(&std::fs::read_to_string(proc.log_path()).unwrap_or_default());
        let found = log.lines().filter(|l| l.contains(marker)).find_map(|l| {
            l.split("addr=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        if found.is_some() {
            return Ok(found);
        }
        proc.ensure_running()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

/// The IPPool CRD as the chart ships it.
pub const IPPOOL_CRD: &str = include_str!("../../charts/gatehouse/crds/ippools.gatehouse.dev.yaml");

/// Starts the API emulator on `api` and waits until it listens and has
/// written `kubeconfig`.
pub fn start_emulator(
    bin: &Path,
    dir: &Path,
    api: SocketAddr,
    kubeconfig: &Path,
    history: usize,
) -> Result<Proc, ClusterPropagationError> {
    let mut emulator = Proc::spawn(
        "kube-emulator",
        &bin.display().to_string(),
        &[
            "--listen".into(),
            api.to_string(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--history".into(),
            history.to_string(),
        ],
        None,
        dir,
    )?;
    // The kubeconfig is written right after the listener is bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(kubeconfig.is_file() && wait_for_port(api, Duration::from_millis(100))) {
        emulator.ensure_running()?;
        if Instant::now() > deadline {
            return Err(ClusterPropagationError::Timeout {
                what: "the API emulator to listen".into(),
                after: Duration::from_secs(30),
                dir: dir.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(emulator)
}

/// Starts the controller in cluster mode (its defaults otherwise: load
/// balancer allocation on), streaming snapshots on `snapshot` over mutual
/// TLS, its admin endpoints on a free port it logs.
pub fn start_controller(
    bin: &Path,
    dir: &Path,
    kubeconfig: &Path,
    snapshot: SocketAddr,
    certs: &StreamCerts,
) -> Result<Proc, ProcError> {
    Proc::spawn_with_env(
        "controller",
        &bin.display().to_string(),
        &[
            vec![
                "--kubeconfig".into(),
                kubeconfig.display().to_string(),
                "--snapshot-addr".into(),
                snapshot.to_string(),
                "--admin-addr".into(),
                "127.0.0.1:0".into(),
            ],
            certs.controller_args(),
        ]
        .concat(),
        None,
        dir,
        &[("GATEHOUSE_LOG", CONTROLLER_LOG), ("NO_COLOR", "1")],
    )
}

/// Runs one scale.
pub fn run(
    bins: &Binaries,
    work: &Path,
    plan: &Plan,
) -> Result<ClusterResult, ClusterPropagationError> {
    let dir = work.join(format!("cluster-propagation-{}", plan.ingresses));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let cores: Vec<usize> =
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    let (_, started_quiet) = sysstat::wait_for_quiet(&cores, plan.max_quiet_wait)?;
    let ports = |n| free_ports(n).map_err(io("picking free ports"));
    let picked = ports(5)?;
    let (blue, green, api, snapshot, http) =
        (picked[0], picked[1], picked[2], picked[3], picked[4]);
    let pods = [
        echo(&bins.echo, "echo-blue", "blue", blue, &dir)?,
        echo(&bins.echo, "echo-green", "green", green, &dir)?,
    ];
    let certs = StreamCerts::create(&dir)?;

    let kubeconfig = dir.join("kubeconfig");
    let writes = objects::objects(plan.ingresses, blue, green);
    let history = 2 * writes.len() + 2 * plan.burst + 4 * plan.changes + 10_000;
    let emulator = start_emulator(&bins.emulator, &dir, api, &kubeconfig, history)?;
    let mut client = ApiClient::new(api);
    // As the chart installs it: the controller watches IPPools.
    client.create_yaml(Resource::CustomResourceDefinition, IPPOOL_CRD)?;
    for w in objects::preamble() {
        client.write(&w)?;
    }
    let setup_started = Instant::now();
    write_all(api, &writes, SETUP_CONNECTIONS)?;
    let setup = setup_started.elapsed();

    let started = Instant::now();
    let mut controller = start_controller(&bins.controller, &dir, &kubeconfig, snapshot, &certs)?;
    let gateway = Proc::spawn_with_env(
        "gateway",
        &bins.gateway.display().to_string(),
        &[
            vec![
                "--controller".into(),
                format!("https://localhost:{}", snapshot.port()),
                "--http-addr".into(),
                http.to_string(),
                "--admin-addr".into(),
                "127.0.0.1:0".into(),
                "--threads".into(),
                "1".into(),
            ],
            certs.gateway_args(),
        ]
        .concat(),
        None,
        &dir,
        &[("GATEHOUSE_LOG", GATEWAY_LOG), ("NO_COLOR", "1")],
    )?;
    let admin = logged_addr(&mut controller, "serving admin endpoints")?;
    let mut rig = Rig {
        dir: dir.clone(),
        pods,
        emulator,
        controller,
        gateway,
        api,
        http,
    };
    let admin = admin.ok_or_else(|| {
        rig.timeout(
            "the controller's admin address in its log",
            Duration::from_secs(30),
        )
    })?;
    if !wait_for_port(http, START_TIMEOUT) {
        rig.ensure_running()?;
    }
    let mut probe = Probe::new(http, Duration::from_secs(5));
    rig.wait_for_pod(
        &mut probe,
        TARGET_HOST,
        "blue",
        "the first snapshot",
        START_TIMEOUT,
    )?;
    let initial = started.elapsed();
    rig.wait_for_pod(
        &mut probe,
        SWITCH_HOST,
        "blue",
        "the switch Ingress",
        CHANGE_TIMEOUT,
    )?;

    let window = MachineWindow::open(&rig.pids())?;
    let mut ingress_changes = measure(&mut rig, &mut probe, plan.changes, |k| {
        let pod = if k % 2 == 0 { "green" } else { "blue" };
        (
            objects::switch_backend(TARGET, TARGET_HOST, pod),
            TARGET_HOST,
            pod,
        )
    })?;
    let mut endpoint_changes = measure(&mut rig, &mut probe, plan.changes, |k| {
        let (addr, pod) = if k % 2 == 0 {
            (green, "green")
        } else {
            (blue, "blue")
        };
        (objects::switch_endpoints(SWITCH, addr), SWITCH_HOST, pod)
    })?;
    let snapshot_bytes = metrics_text(&mut Probe::new(admin, Duration::from_secs(5)))
        .ok()
        .and_then(|m| metric_value(&m, "gatehouse_controller_snapshot_bytes"))
        .map(|b| b as u64);
    let controller_memory = Memory::of(rig.controller.pid())?;
    let gateway_memory = Memory::of(rig.gateway.pid())?;
    let emulator_memory = Memory::of(rig.emulator.pid())?;

    let mut bursts = Vec::new();
    let count = plan.burst.min(objects::others(plan.ingresses));
    if count > 0 {
        let ends = cluster_burst::Endpoints {
            api: rig.api,
            admin,
            gateway: rig.http,
            green,
        };
        for kind in [BurstKind::EndpointSlices, BurstKind::Ingresses] {
            std::thread::sleep(SETTLE);
            bursts.push(cluster_burst::run(&ends, kind, count)?);
            rig.ensure_running()?;
        }
    }
    let machine = window.close()?;
    let controller_peak_after_bursts_kib = sysstat::process_peak_rss_kib(rig.controller.pid())?;

    let read = |p: &Proc| std::fs::read_to_string(p.log_path()).unwrap_or_default();
    let (controller_log, gateway_log) = (read(&rig.controller), read(&rig.gateway));
    attribute(
        &mut ingress_changes,
        ChangeKind::Ingress,
        &controller_log,
        &gateway_log,
    );
    attribute(
        &mut endpoint_changes,
        ChangeKind::EndpointSlice,
        &controller_log,
        &gateway_log,
    );
    Ok(ClusterResult {
        ingresses: plan.ingresses,
        objects: writes.len() + objects::preamble().len(),
        setup,
        snapshot_bytes,
        initial,
        ingress_changes,
        endpoint_changes,
        controller: controller_memory,
        gateway: gateway_memory,
        emulator: emulator_memory,
        bursts,
        controller_peak_after_bursts_kib,
        machine,
        started_quiet,
    })
}

/// `changes` changes, each made by the write `change(k)` returns and done
/// when the gateway answers `host` from `pod`.
fn measure(
    rig: &mut Rig,
    probe: &mut Probe,
    changes: usize,
    change: impl Fn(usize) -> (Write, &'static str, &'static str),
) -> Result<Vec<Change>, ClusterPropagationError> {
    let mut client = ApiClient::new(rig.api);
    let mut out = Vec::with_capacity(changes);
    for k in 0..changes {
        let (write, host, pod) = change(k);
        std::thread::sleep(SETTLE);
        let sent_at = log_times::now();
        let t0 = Instant::now();
        client.write(&write)?;
        let ack = t0.elapsed();
        rig.wait_for_pod(
            probe,
            host,
            pod,
            &format!("change {} ({host} to {pod})", k + 1),
            CHANGE_TIMEOUT,
        )?;
        out.push(Change::new(sent_at, ack, t0.elapsed()));
    }
    Ok(out)
}

//! Starting the upstream and the three proxies for one route set, each
//! pinned the same way and checked to route correctly before any load.

use crate::haproxy_conf;
use crate::http_probe::{free_ports, wait_for_port, Probe, ProbeError};
use crate::nginx_conf::{self, UPSTREAM_BODY};
use crate::procs::{CpuList, Proc, ProcError};
use crate::routes::{gateway_snapshot, RouteSet};
use gatehouse_model::SnapshotFrame;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Process(#[from] ProcError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("serializing the snapshot: {0}")]
    Snapshot(#[from] serde_json::Error),
    #[error("{name} did not open {addr} within {START_TIMEOUT:?}; see {log}")]
    NotListening {
        name: String,
        addr: SocketAddr,
        log: String,
    },
    #[error("{name} does not route {host} correctly: {what}; see {log}")]
    BadRoute {
        name: String,
        host: String,
        what: String,
        log: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SetupError {
    let context = context.into();
    move |source| SetupError::Io { context, source }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProxyKind {
    /// The load generator straight to the upstream: the rig's ceiling.
    Direct,
    Nginx,
    Haproxy,
    Gatehouse,
}

impl ProxyKind {
    pub fn name(&self) -> &'static str {
        match self {
            ProxyKind::Direct => "no proxy",
            ProxyKind::Nginx => "nginx",
            ProxyKind::Haproxy => "HAProxy",
            ProxyKind::Gatehouse => "Gatehouse",
        }
    }
}

/// A proxy (or the upstream itself) ready to take load.
pub struct Endpoint {
    pub kind: ProxyKind,
    /// `None` for [`ProxyKind::Direct`].
    pub process: Option<Proc>,
    pub http1: SocketAddr,
    pub http2: SocketAddr,
}

/// Where binaries and files are, and which CPUs run what.
pub struct Layout {
    pub dir: PathBuf,
    pub gateway_bin: PathBuf,
    pub proxy_cpus: CpuList,
    pub rig_cpus: CpuList,
    /// Extra gateway flags (for experiments).
    pub gateway_args: Vec<String>,
}

/// The static upstream, one port per backend, on the rig's CPUs.
pub fn start_upstream(
    layout: &Layout,
    backends: usize,
) -> Result<(Proc, Vec<SocketAddr>), SetupError> {
    let ports = free_ports(backends).map_err(io("picking upstream ports"))?;
    let conf = layout.dir.join("upstream.conf");
    nginx_conf::make_temp_dirs(&layout.dir, "upstream").map_err(io("creating nginx temp dirs"))?;
    write(&conf, &nginx_conf::upstream(&layout.dir, &ports))?;
    let args = nginx_args(&conf, &layout.dir);
    let mut p = Proc::spawn(
        "upstream",
        "nginx",
        &args,
        Some(&layout.rig_cpus),
        &layout.dir,
    )?;
    for &addr in &ports {
        listening(&mut p, "upstream", addr)?;
    }
    Ok((p, ports))
}

/// A `gatehouse-echo` upstream on the rig's CPUs: it answers after
/// `?delay_ms=N`, so requests to it hold their upstream connection.
pub fn start_echo(layout: &Layout, echo_bin: &Path) -> Result<(Proc, SocketAddr), SetupError> {
    let [addr] = ports::<1>()?;
    let args = vec!["--listen".into(), addr.to_string()];
    let mut p = Proc::spawn(
        "echo",
        &echo_bin.display().to_string(),
        &args,
        Some(&layout.rig_cpus),
        &layout.dir,
    )?;
    listening(&mut p, "echo", addr)?;
    Ok((p, addr))
}

/// Starts nginx, HAProxy and the gateway for `routes`, each on the proxy
/// CPUs with one worker, and checks that each routes the load hosts.
pub fn start_proxies(
    layout: &Layout,
    routes: RouteSet,
    upstreams: &[SocketAddr],
) -> Result<Vec<Endpoint>, SetupError> {
    let tag = format!("{}routes", routes.count);
    let mut out = Vec::new();

    let [h1, h2] = ports::<2>()?;
    let conf = layout.dir.join(format!("nginx-{tag}.conf"));
    nginx_conf::make_temp_dirs(&layout.dir, "nginx").map_err(io("creating nginx temp dirs"))?;
    write(
        &conf,
        &nginx_conf::proxy(&layout.dir, routes, h1, h2, upstreams),
    )?;
    let p = Proc::spawn(
        &format!("nginx-{tag}"),
        "nginx",
        &nginx_args(&conf, &layout.dir),
        Some(&layout.proxy_cpus),
        &layout.dir,
    )?;
    out.push(ready(ProxyKind::Nginx, p, h1, h2)?);

    let [h1, h2] = ports::<2>()?;
    let map = layout.dir.join(format!("haproxy-{tag}.map"));
    write(&map, &haproxy_conf::host_map(routes))?;
    let conf = layout.dir.join(format!("haproxy-{tag}.cfg"));
    write(
        &conf,
        &haproxy_conf::config(&map, routes, h1, h2, upstreams),
    )?;
    let args = vec!["-db".into(), "-f".into(), conf.display().to_string()];
    let p = Proc::spawn(
        &format!("haproxy-{tag}"),
        "haproxy",
        &args,
        Some(&layout.proxy_cpus),
        &layout.dir,
    )?;
    out.push(ready(ProxyKind::Haproxy, p, h1, h2)?);

    let frame = gateway_snapshot(routes, upstreams);
    out.push(spawn_gateway(layout, &frame, &tag)?);

    for ep in &mut out {
        check_routes(ep, routes)?;
    }
    Ok(out)
}

/// Starts the gateway alone with `frame` (the soak), checked to route
/// `routes`.
pub fn start_gateway(
    layout: &Layout,
    routes: RouteSet,
    frame: &SnapshotFrame,
) -> Result<Endpoint, SetupError> {
    let mut ep = spawn_gateway(layout, frame, "soak")?;
    check_routes(&mut ep, routes)?;
    Ok(ep)
}

/// The gateway on the proxy CPUs with one worker thread, from a snapshot file.
fn spawn_gateway(
    layout: &Layout,
    frame: &SnapshotFrame,
    tag: &str,
) -> Result<Endpoint, SetupError> {
    let [h1, admin] = ports::<2>()?;
    let snapshot = layout.dir.join(format!("snapshot-{tag}.json"));
    write(&snapshot, &serde_json::to_string(frame)?)?;
    let mut args: Vec<String> = vec![
        "--snapshot-file".into(),
        snapshot.display().to_string(),
        "--http-addr".into(),
        h1.to_string(),
        "--admin-addr".into(),
        admin.to_string(),
        "--threads".into(),
        "1".into(),
    ];
    args.extend(layout.gateway_args.iter().cloned());
    let bin = layout.gateway_bin.display().to_string();
    let p = Proc::spawn(
        &format!("gatehouse-{tag}"),
        &bin,
        &args,
        Some(&layout.proxy_cpus),
        &layout.dir,
    )?;
    // One listener serves HTTP/1.1 and HTTP/2 prior knowledge.
    ready(ProxyKind::Gatehouse, p, h1, h1)
}

/// The upstream as a measured endpoint (no proxy in between).
pub fn direct(upstream: SocketAddr) -> Endpoint {
    Endpoint {
        kind: ProxyKind::Direct,
        process: None,
        http1: upstream,
        http2: upstream,
    }
}

fn ready(
    kind: ProxyKind,
    mut p: Proc,
    h1: SocketAddr,
    h2: SocketAddr,
) -> Result<Endpoint, SetupError> {
    listening(&mut p, kind.name(), h1)?;
    listening(&mut p, kind.name(), h2)?;
    Ok(Endpoint {
        kind,
        process: Some(p),
        http1: h1,
        http2: h2,
    })
}

fn listening(p: &mut Proc, name: &str, addr: SocketAddr) -> Result<(), SetupError> {
    if wait_for_port(addr, START_TIMEOUT) {
        p.ensure_running()?;
        return Ok(());
    }
    p.ensure_running()?;
    Err(SetupError::NotListening {
        name: name.to_owned(),
        addr,
        log: p.log_path().display().to_string(),
    })
}

/// Every load host answers 200 with the upstream's body; an unknown host 404.
fn check_routes(ep: &mut Endpoint, routes: RouteSet) -> Result<(), SetupError> {
    let log = ep
        .process
        .as_ref()
        .map(|p| p.log_path().display().to_string())
        .unwrap_or_default();
    let bad = |host: &str, what: String| SetupError::BadRoute {
        name: ep.kind.name().to_owned(),
        host: host.to_owned(),
        what,
        log: log.clone(),
    };
    let mut probe = Probe::new(ep.http1, Duration::from_secs(5));
    let describe = |r: Result<crate::http_probe::Reply, ProbeError>| match r {
        Ok(r) => format!(
            "status {} body {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ),
        Err(e) => e.to_string(),
    };
    for host in routes.load_hosts() {
        match probe.get(&host, "/") {
            Ok(r) if r.status == 200 && r.body == UPSTREAM_BODY.as_bytes() => {}
            other => return Err(bad(&host, describe(other))),
        }
    }
    let unknown = "unknown.bench.test";
    match probe.get(unknown, "/") {
        Ok(r) if r.status == 404 => Ok(()),
        other => Err(bad(
            unknown,
            format!("expected 404, got {}", describe(other)),
        )),
    }
}

fn nginx_args(conf: &Path, dir: &Path) -> Vec<String> {
    vec![
        "-p".into(),
        dir.display().to_string(),
        "-c".into(),
        conf.display().to_string(),
    ]
}

fn ports<const N: usize>() -> Result<[SocketAddr; N], SetupError> {
    let picked = free_ports(N).map_err(io("picking free ports"))?;
    let mut out = [SocketAddr::from(([127, 0, 0, 1], 0)); N];
    out.copy_from_slice(&picked);
    Ok(out)
}

fn write(path: &Path, text: &str) -> Result<(), SetupError> {
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

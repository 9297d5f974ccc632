//! `gatehouse-controller`: the control plane binary.

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use gatehouse_controller::admin::{self, Readiness};
use gatehouse_controller::cluster::election::ElectionTiming;
use gatehouse_controller::cluster::lease::LeaseConfig;
use gatehouse_controller::cluster::status_plan::PublishSource;
use gatehouse_controller::cluster::watch::WatchScope;
use gatehouse_controller::cluster::{self, ClusterOptions};
use gatehouse_controller::lb::convert::ClassFilter;
use gatehouse_controller::lb::LbOptions;
use gatehouse_controller::publisher::Publisher;
use gatehouse_controller::rebuild::Rebuilder;
use gatehouse_controller::snapshot_server;
use gatehouse_controller::state::ObjectKey;
use gatehouse_controller::stream_tls::{ReloadingServerConfig, StreamTlsFiles};
use gatehouse_controller::translate::class::ClassConfig;
use gatehouse_controller::translate::TranslateConfig;
use gatehouse_controller::{local, CONTROLLER_NAME};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

// Rebuilds allocate and free every object of the cluster state; mimalloc
// does that faster than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-controller",
    version,
    about = "Gatehouse control plane: translates Ingresses into routing snapshots for the gateways"
)]
struct Args {
    /// Local mode: read Kubernetes manifests (*.yaml, *.yml, *.json, recursively)
    /// from this directory instead of a cluster, and follow changes to it.
    /// Without it the controller runs in cluster mode.
    #[arg(long, env = "GATEHOUSE_MANIFESTS")]
    manifests: Option<PathBuf>,

    /// Cluster mode: the kubeconfig to use (default: $KUBECONFIG, then
    /// ~/.kube/config, then the in-cluster service account).
    #[arg(long, env = "GATEHOUSE_KUBECONFIG", conflicts_with = "manifests")]
    kubeconfig: Option<PathBuf>,

    /// Address the snapshot stream is served on (mutual TLS in cluster mode).
    #[arg(
        long,
        env = "GATEHOUSE_SNAPSHOT_ADDR",
        default_value = "127.0.0.1:7400"
    )]
    snapshot_addr: SocketAddr,

    /// PEM certificate chain the snapshot stream presents (cluster mode).
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_TLS_CERT")]
    snapshot_tls_cert: Option<PathBuf>,

    /// PEM private key of --snapshot-tls-cert.
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_TLS_KEY")]
    snapshot_tls_key: Option<PathBuf>,

    /// PEM CA certificates that gateway client certificates must chain to.
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_CLIENT_CA")]
    snapshot_client_ca: Option<PathBuf>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "GATEHOUSE_ADMIN_ADDR", default_value = "0.0.0.0:9902")]
    admin_addr: SocketAddr,

    /// The IngressClass name this controller serves.
    #[arg(long, env = "GATEHOUSE_INGRESS_CLASS", default_value = "gatehouse")]
    ingress_class: String,

    /// The IngressClass `spec.controller` value that marks a class as ours.
    #[arg(long, env = "GATEHOUSE_CONTROLLER_NAME", default_value = CONTROLLER_NAME)]
    controller_name: String,

    /// The Secret (`namespace/name`, type kubernetes.io/tls) served for TLS
    /// handshakes that match no Ingress TLS host. Without it, gateways serve a
    /// self-signed certificate they generate at start-up.
    #[arg(long, env = "GATEHOUSE_DEFAULT_CERTIFICATE", value_parser = parse_object_key)]
    default_certificate: Option<ObjectKey>,

    /// Cluster mode: watch namespaced objects (Ingresses, Services,
    /// EndpointSlices, Secrets) in this namespace only.
    #[arg(long, env = "GATEHOUSE_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,

    /// Set Ingress status from this Service's load-balancer status
    /// (`namespace/name`, the gateways' Service).
    #[arg(long, env = "GATEHOUSE_PUBLISH_SERVICE", value_parser = parse_object_key, conflicts_with = "publish_address")]
    publish_service: Option<ObjectKey>,

    /// Set Ingress status to these addresses (IPs or hostnames, comma-separated).
    #[arg(long, env = "GATEHOUSE_PUBLISH_ADDRESS", value_delimiter = ',')]
    publish_address: Vec<String>,

    /// Namespace of the leader election Lease (default: the client's
    /// namespace; in a pod, its own).
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,

    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "GATEHOUSE_LEADER_ELECTION_ID",
        default_value = "gatehouse-controller-leader"
    )]
    leader_election_id: String,

    /// This replica's identity in the Lease (default: host name plus a
    /// random suffix).
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_IDENTITY")]
    leader_election_identity: Option<String>,

    /// How long other replicas wait after the leader's last renewal.
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    leader_election_lease_duration: Duration,

    /// How long the leader keeps acting after the start of its last
    /// successful renewal; must be shorter than the lease duration.
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    leader_election_renew_deadline: Duration,

    /// Time between attempts to acquire or renew the Lease.
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    leader_election_retry_period: Duration,

    /// Cluster mode: give `type: LoadBalancer` Services with this
    /// `spec.loadBalancerClass` addresses from the IPPools.
    #[arg(
        long,
        env = "GATEHOUSE_LOAD_BALANCER_CLASS",
        default_value = gatehouse_controller::lb::DEFAULT_CLASS
    )]
    load_balancer_class: String,

    /// Leave LoadBalancer Services without a `spec.loadBalancerClass` alone
    /// (by default they get addresses too, as with MetalLB).
    #[arg(long, env = "GATEHOUSE_NO_DEFAULT_LOAD_BALANCER_CLASS")]
    no_default_load_balancer_class: bool,

    /// Allocate no load-balancer addresses at all (on a cloud, whose load
    /// balancer does): IPPools and LoadBalancer Services are not watched.
    #[arg(long, env = "GATEHOUSE_NO_LOAD_BALANCER")]
    no_load_balancer: bool,

    /// Log format.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_object_key(s: &str) -> Result<ObjectKey, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectKey::new(ns, name))
        }
        _ => Err(format!("{s:?} must be namespace/name")),
    }
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 250ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: unit must be ms, s or m")),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    gatehouse_controller::metrics::describe();
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    // Cluster mode streams private keys: never without mutual TLS.
    let tls = stream_tls_files(&args)?;
    if args.manifests.is_none() && tls.is_none() {
        bail!("cluster mode serves the snapshot stream over mutual TLS only: --snapshot-tls-cert, --snapshot-tls-key and --snapshot-client-ca are required (local mode, --manifests, may stay plain)");
    }
    let tls = tls
        .map(ReloadingServerConfig::load)
        .transpose()
        .context("snapshot stream TLS")?
        .map(Arc::new);

    let publisher = Publisher::new();
    let snapshots = publisher.subscribe();
    let listener = tokio::net::TcpListener::bind(args.snapshot_addr)
        .await
        .with_context(|| format!("binding --snapshot-addr {}", args.snapshot_addr))?;
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "serving snapshots");
    tokio::spawn(snapshot_server::serve(listener, snapshots.clone(), tls));

    let synced = Arc::new(AtomicBool::new(args.manifests.is_some()));
    let admin_listener = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding --admin-addr {}", args.admin_addr))?;
    tracing::info!(addr = %admin_listener.local_addr()?, "serving admin endpoints");
    tokio::spawn(admin::serve(
        admin_listener,
        Readiness {
            synced: synced.clone(),
            snapshots,
        },
        metrics,
    ));

    let config = TranslateConfig {
        classes: ClassConfig {
            class_name: args.ingress_class.clone(),
            controller_name: args.controller_name.clone(),
        },
        default_certificate: args.default_certificate.clone(),
        now: 0, // set at each rebuild
    };
    let rebuilder = Rebuilder::new(config, publisher);
    if let Some(dir) = args.manifests.clone() {
        tracing::info!(dir = %dir.display(), class = %args.ingress_class, "local mode");
        tokio::select! {
            res = local::run(dir, rebuilder) => res.context("local mode")?,
            _ = shutdown_signal() => tracing::info!("shutting down"),
        }
        return Ok(());
    }

    let identity = match &args.leader_election_identity {
        Some(id) if !id.is_empty() => id.clone(),
        _ => default_identity(),
    };
    let client = kube_client(&args, &identity).await?;
    let options = cluster_options(&args, &client, identity)?;
    tracing::info!(
        class = %args.ingress_class,
        namespace = ?args.watch_namespace,
        lease = %format!("{}/{}", options.lease.namespace, options.lease.name),
        identity = %options.lease.identity,
        "cluster mode"
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let run = cluster::run(client, options, rebuilder, synced, stop);
    tokio::pin!(run);
    tokio::select! {
        res = &mut run => return res.context("cluster mode"),
        _ = shutdown_signal() => tracing::info!("shutting down: releasing leadership"),
    }
    stop_tx.send_replace(true);
    // Bounded: the Lease release has its own timeout.
    run.await.context("cluster mode")
}

fn stream_tls_files(args: &Args) -> anyhow::Result<Option<StreamTlsFiles>> {
    let given = [
        ("--snapshot-tls-cert", &args.snapshot_tls_cert),
        ("--snapshot-tls-key", &args.snapshot_tls_key),
        ("--snapshot-client-ca", &args.snapshot_client_ca),
    ];
    let missing: Vec<&str> = given
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    match (&args.snapshot_tls_cert, &args.snapshot_tls_key, &args.snapshot_client_ca) {
        (Some(cert), Some(key), Some(ca)) => Ok(Some(StreamTlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: ca.clone(),
        })),
        _ if missing.len() == given.len() => Ok(None),
        _ => bail!("the snapshot stream's TLS needs all three of --snapshot-tls-cert, --snapshot-tls-key and --snapshot-client-ca; missing: {}", missing.join(", ")),
    }
}

async fn kube_client(args: &Args, identity: &str) -> anyhow::Result<kube::Client> {
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding the Kubernetes API (KUBECONFIG, ~/.kube/config or in-cluster); for local mode pass --manifests")?,
    };
    // The identity lets an API audit log tell replicas apart.
    let agent = format!(
        "gatehouse-controller/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&agent).context("user agent")?,
    ));
    kube::Client::try_from(config).context("building the Kubernetes client")
}

fn cluster_options(
    args: &Args,
    client: &kube::Client,
    identity: String,
) -> anyhow::Result<ClusterOptions> {
    let timing = ElectionTiming {
        lease_duration: args.leader_election_lease_duration,
        renew_deadline: args.leader_election_renew_deadline,
        retry_period: args.leader_election_retry_period,
    };
    timing.validate()?;
    let publish = match (&args.publish_service, args.publish_address.is_empty()) {
        (Some(svc), _) => Some(PublishSource::Service(svc.clone())),
        (None, false) => Some(PublishSource::Addresses(args.publish_address.clone())),
        (None, true) => None,
    };
    let scope = WatchScope {
        namespace: args.watch_namespace.clone(),
    };
    let load_balancer = (!args.no_load_balancer).then(|| LbOptions {
        filter: ClassFilter {
            class: args.load_balancer_class.clone(),
            default_class: !args.no_default_load_balancer_class,
        },
        scope: scope.clone(),
    });
    Ok(ClusterOptions {
        load_balancer,
        scope,
        lease: LeaseConfig {
            namespace: args
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            name: args.leader_election_id.clone(),
            identity,
            timing,
        },
        publish,
        controller_name: args.controller_name.clone(),
    })
}

/// The host name (a pod's name) and a suffix unique to this process, so two
/// processes never share an identity.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "gatehouse-controller".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}_{:x}{nanos:08x}", std::process::id())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

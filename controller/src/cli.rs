//! The command line of `gatehouse-controller`, in the library so that tests
//! (the Helm chart's) can check arguments against the real definition.

use crate::state::ObjectKey;
use crate::CONTROLLER_NAME;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-controller",
    version,
    about = "Gatehouse control plane: translates Ingresses into routing snapshots for the gateways",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Another mode of this binary (without one: the controller).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Local mode: read Kubernetes manifests (*.yaml, *.yml, *.json, recursively)
    /// from this directory instead of a cluster, and follow changes to it.
    /// Without it the controller runs in cluster mode.
    #[arg(long, env = "GATEHOUSE_MANIFESTS")]
    pub manifests: Option<PathBuf>,

    /// Cluster mode: the kubeconfig to use (default: $KUBECONFIG, then
    /// ~/.kube/config, then the in-cluster service account).
    #[arg(long, env = "GATEHOUSE_KUBECONFIG", conflicts_with = "manifests")]
    pub kubeconfig: Option<PathBuf>,

    /// Address the snapshot stream is served on (mutual TLS in cluster mode).
    #[arg(
        long,
        env = "GATEHOUSE_SNAPSHOT_ADDR",
        default_value = "127.0.0.1:7400"
    )]
    pub snapshot_addr: SocketAddr,

    /// PEM certificate chain the snapshot stream presents (cluster mode).
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_TLS_CERT")]
    pub snapshot_tls_cert: Option<PathBuf>,

    /// PEM private key of --snapshot-tls-cert.
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_TLS_KEY")]
    pub snapshot_tls_key: Option<PathBuf>,

    /// PEM CA certificates that gateway client certificates must chain to.
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_CLIENT_CA")]
    pub snapshot_client_ca: Option<PathBuf>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "GATEHOUSE_ADMIN_ADDR", default_value = "0.0.0.0:9902")]
    pub admin_addr: SocketAddr,

    /// The IngressClass name this controller serves.
    #[arg(long, env = "GATEHOUSE_INGRESS_CLASS", default_value = "gatehouse")]
    pub ingress_class: String,

    /// The IngressClass `spec.controller` value that marks a class as ours.
    #[arg(long, env = "GATEHOUSE_CONTROLLER_NAME", default_value = CONTROLLER_NAME)]
    pub controller_name: String,

    /// The Secret (`namespace/name`, type kubernetes.io/tls) served for TLS
    /// handshakes that match no Ingress TLS host. Without it, gateways serve a
    /// self-signed certificate they generate at start-up.
    #[arg(long, env = "GATEHOUSE_DEFAULT_CERTIFICATE", value_parser = parse_object_key)]
    pub default_certificate: Option<ObjectKey>,

    /// Cluster mode: watch namespaced objects (Ingresses, Services,
    /// EndpointSlices, Secrets) in this namespace only.
    #[arg(long, env = "GATEHOUSE_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Set Ingress status from this Service's load-balancer status
    /// (`namespace/name`, the gateways' Service).
    #[arg(long, env = "GATEHOUSE_PUBLISH_SERVICE", value_parser = parse_object_key, conflicts_with = "publish_address")]
    pub publish_service: Option<ObjectKey>,

    /// Set Ingress status to these addresses (IPs or hostnames, comma-separated).
    #[arg(long, env = "GATEHOUSE_PUBLISH_ADDRESS", value_delimiter = ',')]
    pub publish_address: Vec<String>,

    /// Namespace of the leader election Lease (default: the client's
    /// namespace; in a pod, its own).
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "GATEHOUSE_LEADER_ELECTION_ID",
        default_value = "gatehouse-controller-leader"
    )]
    pub leader_election_id: String,

    /// This replica's identity in the Lease (default: host name plus a
    /// random suffix).
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_IDENTITY")]
    pub leader_election_identity: Option<String>,

    /// How long other replicas wait after the leader's last renewal.
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,

    /// How long the leader keeps acting after the start of its last
    /// successful renewal; must be shorter than the lease duration.
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,

    /// Time between attempts to acquire or renew the Lease.
    #[arg(long, env = "GATEHOUSE_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,

    /// Which LoadBalancer Services are ours.
    #[command(flatten)]
    pub class: LoadBalancerClassArgs,

    /// Allocate no load-balancer addresses at all (on a cloud, whose load
    /// balancer does): IPPools and Namespaces are not watched.
    #[arg(long, env = "GATEHOUSE_NO_LOAD_BALANCER")]
    pub no_load_balancer: bool,

    /// Log format.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The L2 speaker, one per node: announces load-balancer addresses on
    /// the LAN (ARP, NDP) from one node each.
    Speaker(SpeakerArgs),
}

#[derive(clap::Args, Debug)]
pub struct SpeakerArgs {
    /// This node's name (in a pod: from the downward API, spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,

    /// The kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config,
    /// then the in-cluster service account).
    #[arg(long, env = "GATEHOUSE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "GATEHOUSE_SPEAKER_ADMIN_ADDR",
        default_value = "0.0.0.0:9903"
    )]
    pub admin_addr: SocketAddr,

    /// UDP address heartbeats are received on; they are sent to this port
    /// on every other Node's first InternalIP/ExternalIP.
    #[arg(
        long,
        env = "GATEHOUSE_SPEAKER_HEARTBEAT_ADDR",
        default_value = "0.0.0.0:7947"
    )]
    pub heartbeat_addr: SocketAddr,

    /// Time between heartbeats to each peer.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A peer not heard from for this long is dead: its addresses move.
    /// Must exceed --contact-timeout by 1.5 heartbeat intervals.
    #[arg(long, default_value = "600ms", value_parser = parse_duration)]
    pub peer_timeout: Duration,

    /// A speaker that has not heard from a majority of speakers for this
    /// long stops announcing (so that it stops before others take over).
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    pub contact_timeout: Duration,

    /// Speakers heard within this window count as members when counting
    /// the majority; a dead speaker stops counting after it.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub member_window: Duration,

    /// Stop announcing when the API server has not answered for this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub api_timeout: Duration,

    /// Which LoadBalancer Services are ours (the same flags as the
    /// controller's, so both agree).
    #[command(flatten)]
    pub class: LoadBalancerClassArgs,

    /// Log format.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--load-balancer-class` and `--no-default-load-balancer-class`, shared by
/// the controller (which allocates) and the speaker (which announces).
#[derive(clap::Args, Debug, Clone)]
pub struct LoadBalancerClassArgs {
    /// LoadBalancer Services with this `spec.loadBalancerClass` are ours:
    /// they get addresses from the IPPools, and the speakers announce them.
    #[arg(
        long,
        env = "GATEHOUSE_LOAD_BALANCER_CLASS",
        default_value = crate::lb::DEFAULT_CLASS
    )]
    pub load_balancer_class: String,

    /// Leave LoadBalancer Services without a `spec.loadBalancerClass` alone
    /// (by default they are ours too, as with MetalLB).
    #[arg(long, env = "GATEHOUSE_NO_DEFAULT_LOAD_BALANCER_CLASS")]
    pub no_default_load_balancer_class: bool,
}

impl LoadBalancerClassArgs {
    pub fn filter(&self) -> crate::lb::convert::ClassFilter {
        crate::lb::convert::ClassFilter {
            class: self.load_balancer_class.clone(),
            default_class: !self.no_default_load_balancer_class,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
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

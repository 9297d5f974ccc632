//! The whole simulated system a chart is installed on, in one value: the
//! cluster's namespaces, the API emulator (HTTPS, advertising the in-cluster
//! address), the API at 10.96.0.1:443 on every node, cluster DNS, Node
//! objects as kubelets register them, the workload controllers, a process
//! kubelet per node and the kube-proxy follower. Dropping it stops the
//! kubelets first (their pods' processes and namespaces go), then the
//! controllers, then the cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::cluster::{Cluster, ClusterConfig, ClusterError};
use crate::emulator::{Emulator, EmulatorConfig, EmulatorError};
use crate::kubelet::{ImageMap, Kubelet, KubeletError, ProxyFollower};
use crate::local::{binary, LocalError};
use crate::workloads::{register_nodes, WorkloadControllers, WorkloadError};

use super::{in_cluster_api_address, ApiAccess, ClusterDns, ClusterDnsError};

/// How long the start waits for cluster DNS to list the API's own Service.
const DNS_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How much of each container's output [`Simulated::all_logs`] shows.
const LOG_TAIL: usize = 3000;

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Kubelet(#[from] KubeletError),
    #[error(transparent)]
    Workloads(#[from] WorkloadError),
    #[error(transparent)]
    Dns(#[from] ClusterDnsError),
    #[error(transparent)]
    Binary(#[from] LocalError),
    #[error("{context}: {source}")]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster DNS did not list the kubernetes Service within {0:?}")]
    DnsNotReady(Duration),
}

/// The running system. Field order is drop order: kubelets (and with them
/// every pod) first, the emulator and the scratch directory last.
pub struct Simulated {
    kubelets: Vec<Kubelet>,
    _proxy: ProxyFollower,
    _workloads: WorkloadControllers,
    dns: ClusterDns,
    _api_access: ApiAccess,
    cluster: Arc<Cluster>,
    emulator: Emulator,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Simulated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulated")
            .field("nodes", &self.cluster.nodes().len())
            .field("emulator", &self.emulator.url())
            .finish_non_exhaustive()
    }
}

impl Simulated {
    /// Starts a system of `nodes` nodes (on a multi-threaded Tokio runtime).
    pub async fn start(nodes: usize) -> Result<Self, SystemError> {
        let emulator = Emulator::start_with(
            "127.0.0.1:0",
            EmulatorConfig {
                serve_tls: true,
                advertise_address: Some(in_cluster_api_address()?),
                ..EmulatorConfig::default()
            },
        )
        .await?;
        let client = emulator.kube_client()?;
        let cluster = Arc::new(Cluster::new(ClusterConfig {
            nodes,
            echo_binary: binary("gatehouse-echo")?,
        })?);
        let api_access = ApiAccess::serve(&cluster, emulator.addr())?;
        let dir = tempfile::tempdir().map_err(io("a scratch directory"))?;
        let kubeconfig = dir.path().join("admin.kubeconfig");
        std::fs::write(&kubeconfig, emulator.kubeconfig_yaml())
            .map_err(io("writing the admin kubeconfig"))?;
        let dns = ClusterDns::start(client.clone(), dir.path())?;
        wait_for_dns(&dns).await?;
        let names: Vec<&str> = cluster.nodes().iter().map(|n| n.name.as_str()).collect();
        register_nodes(&client, &names).await?;
        for node in cluster.nodes() {
            report_ready(&client, &node.name, &node.lan_ipv4.to_string()).await?;
        }
        let workloads = WorkloadControllers::start(client.clone());
        let launcher = binary("pod-sandbox")?;
        let mut kubelets = Vec::with_capacity(nodes);
        for node in cluster.nodes() {
            kubelets.push(Kubelet::start(
                client.clone(),
                cluster.clone(),
                &node.name,
                ImageMap::workspace()?,
                launcher.clone(),
                Some(dns.hosts_file().to_owned()),
            )?);
        }
        let proxy = ProxyFollower::start(client, cluster.clone());
        Ok(Self {
            kubelets,
            _proxy: proxy,
            _workloads: workloads,
            dns,
            _api_access: api_access,
            cluster,
            emulator,
            kubeconfig,
            _dir: dir,
        })
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// An admin client, as the tests and `kubectl` use.
    pub fn client(&self) -> Result<kube::Client, SystemError> {
        Ok(self.emulator.kube_client()?)
    }

    /// The admin kubeconfig (the emulator's address on this machine), for
    /// `helm` and `kubectl`.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The hosts file pods see as /etc/hosts.
    pub fn hosts_file(&self) -> &Path {
        self.dns.hosts_file()
    }

    /// What a container printed, from whichever kubelet runs its pod.
    pub fn logs(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        self.kubelets
            .iter()
            .find_map(|k| k.logs(namespace, pod, container))
    }

    /// The end of every container's output on every node, for a failing
    /// test's message.
    pub fn all_logs(&self) -> String {
        self.kubelets
            .iter()
            .map(|k| k.all_logs(LOG_TAIL))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Node status as a kubelet posts it: Ready, with the node's LAN address
/// (what the speakers send heartbeats to).
async fn report_ready(client: &kube::Client, node: &str, address: &str) -> Result<(), SystemError> {
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": node},
        ],
    }});
    Api::<Node>::all(client.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|source| SystemError::Api {
            context: format!("reporting node {node} ready"),
            source,
        })?;
    Ok(())
}

/// Pods must not start before the API's own name resolves in them.
async fn wait_for_dns(dns: &ClusterDns) -> Result<(), SystemError> {
    let deadline = Instant::now() + DNS_READY_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(dns.hosts_file()).unwrap_or_default();
        if text.contains("kubernetes.default.svc") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SystemError::DnsNotReady(DNS_READY_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> SystemError + '_ {
    move |source| SystemError::Io {
        context: context.to_owned(),
        source,
    }
}

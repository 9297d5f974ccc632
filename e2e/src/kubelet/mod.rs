//! A process kubelet for the simulated cluster: one [`Kubelet`] per node
//! watches the Pods bound to its node and runs each container as a process
//! in the pod's network namespace, with its volumes mounted, probes run and
//! status written; and a kube-proxy follower ([`ProxyFollower`]) that keeps
//! the nodes' nftables rules in step with Services and EndpointSlices. See
//! e2e/README.md, "Process kubelet and kube-proxy".

mod container;
mod env;
mod error;
mod expand;
mod fields;
mod images;
mod objects;
mod probes;
mod proxy;
mod sandbox;
mod status;
mod token;
mod volumes;
mod worker;

pub use error::{KubeletError, Result};
pub use images::{Image, ImageMap, BUSYBOX_IMAGE, ECHO_IMAGE, GATEHOUSE_IMAGE};
pub use proxy::ProxyFollower;

use crate::cluster::Cluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What every pod worker of one node shares.
pub(crate) struct NodeContext {
    client: kube::Client,
    cluster: Arc<Cluster>,
    node: usize,
    images: ImageMap,
    launcher: PathBuf,
    /// Cluster DNS (`system::ClusterDns::hosts_file`), mounted at /etc/hosts.
    hosts_file: Option<PathBuf>,
    /// `namespace/pod/container` → everything it printed.
    logs: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("node", &self.node)
            .field("launcher", &self.launcher)
            .finish_non_exhaustive()
    }
}

impl NodeContext {
    fn logs(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The kubelet of one node; stops every pod it runs when dropped (their
/// processes are killed and namespaces removed as the workers unwind).
#[derive(Debug)]
pub struct Kubelet {
    context: Arc<NodeContext>,
    task: JoinHandle<()>,
}

impl Kubelet {
    /// Starts the kubelet of the node called `node_name` (on a Tokio
    /// runtime). `launcher` is the `pod-sandbox` binary
    /// (`local::binary("pod-sandbox")`); `hosts_file`, if given, is mounted
    /// read-only at /etc/hosts in every pod not on the host network (the
    /// cluster DNS of `system::ClusterDns`).
    pub fn start(
        client: kube::Client,
        cluster: Arc<Cluster>,
        node_name: &str,
        images: ImageMap,
        launcher: PathBuf,
        hosts_file: Option<PathBuf>,
    ) -> Result<Self> {
        let node = cluster
            .nodes()
            .iter()
            .position(|n| n.name == node_name)
            .ok_or_else(|| KubeletError::UnknownNode(node_name.to_owned()))?;
        let context = Arc::new(NodeContext {
            client,
            cluster,
            node,
            images,
            launcher,
            hosts_file,
            logs: Mutex::new(BTreeMap::new()),
        });
        let task = tokio::spawn(watch_pods(context.clone(), node_name.to_owned()));
        Ok(Self { context, task })
    }

    /// What container `container` of pod `namespace/pod` printed so far
    /// (all its runs), like `kubectl logs`.
    pub fn logs(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        self.context
            .logs()
            .get(&worker::log_key(namespace, pod, container))
            .cloned()
    }

    /// The last `tail` bytes of every container's output on this node, each
    /// under its `namespace/pod/container` key: for a failing test's message.
    pub fn all_logs(&self, tail: usize) -> String {
        let mut text = String::new();
        for (key, output) in self.context.logs().iter() {
            let mut start = output.len().saturating_sub(tail);
            while !output.is_char_boundary(start) {
                start += 1;
            }
            text.push_str(&format!("--- {key}\n{}\n", &output[start..]));
        }
        text
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One worker per pod (by uid): it gets every new version of its pod, and
/// `None` once the pod is gone.
struct Workers {
    senders: BTreeMap<String, watch::Sender<Option<Pod>>>,
    tasks: BTreeMap<String, JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

async fn watch_pods(context: Arc<NodeContext>, node_name: String) {
    let api: Api<Pod> = Api::all(context.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut workers = Workers {
        senders: BTreeMap::new(),
        tasks: BTreeMap::new(),
    };
    let mut listed = Vec::new();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                eprintln!("gatehouse-e2e kubelet {node_name}: watching pods: {e}");
                continue;
            }
        };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(pod) => {
                listed.push(uid(&pod));
                workers.apply(&context, pod);
            }
            Event::InitDone => {
                let gone: Vec<String> = workers
                    .senders
                    .keys()
                    .filter(|uid| !listed.contains(uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    workers.remove(&uid);
                }
            }
            Event::Apply(pod) => workers.apply(&context, pod),
            Event::Delete(pod) => workers.remove(&uid(&pod)),
        }
        workers.tasks.retain(|_, task| !task.is_finished());
    }
}

impl Workers {
    fn apply(&mut self, context: &Arc<NodeContext>, pod: Pod) {
        let uid = uid(&pod);
        if let Some(sender) = self.senders.get(&uid) {
            sender.send_replace(Some(pod));
            return;
        }
        let (sender, receiver) = watch::channel(Some(pod));
        let task = tokio::spawn(worker::run(context.clone(), receiver));
        self.senders.insert(uid.clone(), sender);
        self.tasks.insert(uid, task);
    }

    fn remove(&mut self, uid: &str) {
        if let Some(sender) = self.senders.remove(uid) {
            sender.send_replace(None);
        }
    }
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

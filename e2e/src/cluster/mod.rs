//! Simulated cluster: network namespaces as nodes on a LAN bridge, a client
//! outside the cluster on the same LAN, pods as namespaces behind their
//! node, and kube-proxy played by nftables DNAT rules (see e2e/README.md,
//! "Simulated cluster").
//!
//! One [`Cluster`] per test. Everything it creates is removed when it is
//! dropped, also while a panicking test unwinds; namespaces left by a process
//! that was killed outright are swept when the next cluster starts.

mod addressing;
mod arping;
mod capture;
mod command;
mod error;
mod frames;
mod kube_proxy;
mod lan;
mod naming;
mod netns;
mod pods;
mod probe;
mod prober;
mod process;
mod relay;
mod sweep;

pub use addressing::{
    AddressPlan, Ipv4Cidr, LOAD_BALANCER_POOL_SIZE, MAX_NODES, MAX_PODS_PER_NODE, POD_GATEWAY,
};
pub use arping::{
    arping, neighbor, send_frames, send_gratuitous_arp, send_unsolicited_na, Neighbor,
};
pub use capture::{
    Announcement, AnnouncementKind, CaptureMark, Captured, LanCapture, Overlap, Seen,
};
pub use error::{ClusterError, Result};
pub use frames::{ArpFrame, ArpOp, BadMac, LanFrame, Mac, NeighborAdvertisement};
pub use kube_proxy::{Endpoint, Service, ServicePort, TrafficPolicy};
pub use lan::{BRIDGE, LAN_INTERFACE};
pub use naming::{ClusterId, NETNS_PREFIX};
pub use netns::Netns;
pub use pods::Pod;
pub use probe::{echo_get, http_get, HttpAnswer, PROBE_TIMEOUT};
pub use prober::{
    Answerer, Outage, ProbeFailure, ProbeLog, ProbeOutcome, ProbeRecord, ProbeSuccess, Prober,
    PROBE_CONNECT_TIMEOUT, PROBE_INTERVAL, PROBE_REQUEST_TIMEOUT,
};
pub use process::NsProcess;
pub use relay::{relay, Relay};
pub use sweep::sweep_leftovers;

use lan::LanPort;
use netns::OwnedNetns;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long an echo pod may take to start listening.
const POD_START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Number of nodes, 1 to [`MAX_NODES`].
    pub nodes: usize,
    /// The `gatehouse-echo` binary that echo pods run (in tests:
    /// `local::binary("gatehouse-echo")`, built by `cargo build --workspace --bins`).
    pub echo_binary: PathBuf,
}

/// A node: a namespace on the LAN that routes to its pods.
#[derive(Debug)]
pub struct Node {
    pub index: usize,
    /// `node-<index>`, the name echo pods report.
    pub name: String,
    pub lan_ipv4: Ipv4Addr,
    pub lan_ipv6: Option<Ipv6Addr>,
    pub pod_cidr: Ipv4Cidr,
    netns: OwnedNetns,
}

impl Node {
    pub fn netns(&self) -> &Netns {
        &self.netns
    }
}

/// One test's cluster.
#[derive(Debug)]
pub struct Cluster {
    // Fields drop in this order: pods (and their processes) first, the LAN
    // last.
    state: Mutex<State>,
    nodes: Vec<Node>,
    client: OwnedNetns,
    lan: OwnedNetns,
    id: ClusterId,
    plan: AddressPlan,
    ipv6: bool,
    echo_binary: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    pods: BTreeMap<String, PodRuntime>,
    services: BTreeMap<String, Service>,
    /// Pods get node-side veths `p<n>` from this counter, never reused.
    next_veth: u32,
}

/// A pod and what it owns; fields drop in order: its process, then its
/// namespace.
#[derive(Debug)]
struct PodRuntime {
    process: Option<NsProcess>,
    pod: Pod,
    _netns: OwnedNetns,
}

impl Cluster {
    /// Builds the LAN, the client and `config.nodes` nodes. Fails with a
    /// clear error when not root or when `ip` or `nft` is missing.
    pub fn new(config: ClusterConfig) -> Result<Self> {
        command::preflight()?;
        if config.nodes == 0 || config.nodes > MAX_NODES {
            return Err(ClusterError::Invalid(format!(
                "a cluster has 1 to {MAX_NODES} nodes, not {}",
                config.nodes
            )));
        }
        sweep::sweep_once();
        let id = ClusterId::next();
        let plan = AddressPlan::new(id.subnet_slot());
        let ipv6 = lan::kernel_has_ipv6();
        let lan_prefix = plan.lan_v4().prefix;
        let v6_prefix = plan.lan_v6_prefix().1;

        let lan = OwnedNetns::create(id.netns_name("lan"))?;
        lan::create_bridge(&lan)?;

        let client = OwnedNetns::create(id.netns_name("client"))?;
        lan::attach(
            &lan,
            &client,
            &LanPort {
                port: "client",
                ipv4: plan.client_v4(),
                ipv4_prefix: lan_prefix,
                ipv6: ipv6.then(|| (plan.client_v6(), v6_prefix)),
            },
        )?;

        let mut nodes = Vec::with_capacity(config.nodes);
        for index in 0..config.nodes {
            let name = format!("node-{index}");
            let netns = OwnedNetns::create(id.netns_name(&name))?;
            // Before any interface exists, so that they all inherit it.
            for scope in ["all", "default"] {
                netns.set_sysctl(&format!("net.ipv4.conf.{scope}.rp_filter"), "2")?;
            }
            netns.set_sysctl("net.ipv4.ip_forward", "1")?;
            let node = Node {
                index,
                lan_ipv4: plan.node_v4(index),
                lan_ipv6: ipv6.then(|| plan.node_v6(index)),
                pod_cidr: plan.pod_cidr(index),
                name,
                netns,
            };
            lan::attach(
                &lan,
                &node.netns,
                &LanPort {
                    port: &lan::node_port(index),
                    ipv4: node.lan_ipv4,
                    ipv4_prefix: lan_prefix,
                    ipv6: node.lan_ipv6.map(|ip| (ip, v6_prefix)),
                },
            )?;
            nodes.push(node);
        }
        for node in &nodes {
            // ClusterIPs must be routable for locally sent packets to reach
            // the output nat hook, where they are DNATed.
            let mut routes = vec![format!(
                "route add {} dev {LAN_INTERFACE} src {}",
                plan.service_cidr(),
                node.lan_ipv4
            )];
            for other in nodes.iter().filter(|other| other.index != node.index) {
                routes.push(format!(
                    "route add {} via {}",
                    other.pod_cidr, other.lan_ipv4
                ));
            }
            node.netns.ip_batch(&routes)?;
            node.netns.nft_apply(&kube_proxy::render(node.index, &[]))?;
        }

        Ok(Self {
            state: Mutex::new(State::default()),
            nodes,
            client,
            lan,
            id,
            plan,
            ipv6,
            echo_binary: config.echo_binary,
        })
    }

    pub fn id(&self) -> ClusterId {
        self.id
    }

    pub fn addresses(&self) -> &AddressPlan {
        &self.plan
    }

    /// Whether LAN interfaces have IPv6 addresses (false if the kernel has
    /// IPv6 disabled).
    pub fn has_ipv6(&self) -> bool {
        self.ipv6
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `index`; panics on an index the test did not create (a bug in
    /// the test, like indexing a slice).
    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    /// The client: outside the cluster, on the LAN, at `addresses().client_v4()`.
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The MAC address of node `index`'s `eth0`, the one it speaks ARP with.
    pub fn node_mac(&self, index: usize) -> Result<Mac> {
        let node = self
            .nodes
            .get(index)
            .ok_or_else(|| ClusterError::Invalid(format!("no node {index}")))?;
        lan::interface_mac(&node.netns, LAN_INTERFACE)
    }

    /// The MAC address of the client's `eth0`.
    pub fn client_mac(&self) -> Result<Mac> {
        lan::interface_mac(&self.client, LAN_INTERFACE)
    }

    /// The namespace holding the LAN bridge ([`BRIDGE`]).
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// Names of every namespace the cluster has right now.
    pub fn netns_names(&self) -> Vec<String> {
        let mut names = vec![self.lan.name().to_owned(), self.client.name().to_owned()];
        names.extend(self.nodes.iter().map(|n| n.netns.name().to_owned()));
        names.extend(
            self.state()
                .pods
                .values()
                .map(|p| p.pod.netns.name().to_owned()),
        );
        names
    }

    /// Adds a pod namespace on `node` with its own IP, reachable from every
    /// node, with nothing running in it (start processes with
    /// `pod.netns.spawn`).
    pub fn add_pod(&self, name: &str, node: usize) -> Result<Pod> {
        let mut state = self.state();
        self.add_pod_locked(&mut state, name, node)
    }

    /// Adds a pod running `gatehouse-echo` on `port`, reporting `service`,
    /// the pod's name and its node's name; returns once it listens.
    pub fn add_echo_pod(&self, name: &str, node: usize, service: &str, port: u16) -> Result<Pod> {
        let mut state = self.state();
        let mut pod = self.add_pod_locked(&mut state, name, node)?;
        let listen = SocketAddr::from((pod.ip, port)).to_string();
        let started = pod
            .netns
            .spawn(
                &format!("echo pod {name}"),
                &self.echo_binary,
                [
                    "--listen",
                    &listen,
                    "--service",
                    service,
                    "--pod",
                    name,
                    "--node",
                    &self.nodes[node].name,
                ],
            )
            .and_then(|process| {
                process
                    .wait_for_line(|line| line.starts_with("listening on"), POD_START_TIMEOUT)?;
                Ok(process)
            });
        let process = match started {
            Ok(process) => process,
            Err(e) => {
                state.pods.remove(name);
                return Err(e);
            }
        };
        pod.port = Some(port);
        if let Some(runtime) = state.pods.get_mut(name) {
            runtime.pod.port = Some(port);
            runtime.process = Some(process);
        }
        Ok(pod)
    }

    /// The pod called `name`, if there is one.
    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.state().pods.get(name).map(|p| p.pod.clone())
    }

    /// Stops the pod's processes and removes its namespace. Services keep
    /// listing it until they are updated, like a stale EndpointSlice.
    pub fn remove_pod(&self, name: &str) -> Result<()> {
        let removed = self.state().pods.remove(name);
        removed
            .map(drop)
            .ok_or_else(|| ClusterError::Invalid(format!("no pod named {name}")))
    }

    /// Writes (or rewrites) the rules for `service` on every node.
    pub fn expose_service(&self, service: Service) -> Result<()> {
        if !naming::is_dns_label(&service.name) {
            return Err(ClusterError::Invalid(format!(
                "service name {:?} is not a DNS label",
                service.name
            )));
        }
        if let Some(bad) = service
            .endpoints
            .iter()
            .find(|e| e.node >= self.nodes.len())
        {
            return Err(ClusterError::Invalid(format!(
                "endpoint {} of {} is on node {}, the cluster has {}",
                bad.ip,
                service.name,
                bad.node,
                self.nodes.len()
            )));
        }
        let mut state = self.state();
        let previous = state.services.insert(service.name.clone(), service.clone());
        let applied = self.apply_services(&state);
        if applied.is_err() {
            match previous {
                Some(previous) => state.services.insert(service.name, previous),
                None => state.services.remove(&service.name),
            };
        }
        applied
    }

    /// Removes the rules for the Service called `name` from every node.
    pub fn remove_service(&self, name: &str) -> Result<()> {
        let mut state = self.state();
        if state.services.remove(name).is_none() {
            return Err(ClusterError::Invalid(format!("no service named {name}")));
        }
        self.apply_services(&state)
    }

    /// Routes `destination` from the client to `node`, standing in for a
    /// router (or, for LoadBalancer IPs, for a speaker's ARP answer).
    pub fn route_from_client(&self, destination: Ipv4Addr, node: usize) -> Result<()> {
        let via = self
            .nodes
            .get(node)
            .ok_or_else(|| ClusterError::Invalid(format!("no node {node}")))?
            .lan_ipv4;
        self.client
            .ip(&[
                "route",
                "replace",
                &format!("{destination}/32"),
                "via",
                &via.to_string(),
            ])
            .map(drop)
    }

    /// Unplugs `node` from the LAN (its bridge port goes down, its `eth0`
    /// loses carrier), or plugs it back in: a node failure as the rest of
    /// the LAN sees it, for failover tests. Its processes keep running.
    pub fn set_node_connected(&self, node: usize, connected: bool) -> Result<()> {
        if node >= self.nodes.len() {
            return Err(ClusterError::Invalid(format!("no node {node}")));
        }
        let state = if connected { "up" } else { "down" };
        self.lan
            .ip(&["link", "set", &lan::node_port(node), state])
            .map(drop)
    }

    fn add_pod_locked(&self, state: &mut State, name: &str, node: usize) -> Result<Pod> {
        if !naming::is_dns_label(name) {
            return Err(ClusterError::Invalid(format!(
                "pod name {name:?} is not a DNS label"
            )));
        }
        let host = self
            .nodes
            .get(node)
            .ok_or_else(|| ClusterError::Invalid(format!("no node {node} for pod {name}")))?;
        if state.pods.contains_key(name) {
            return Err(ClusterError::Invalid(format!("pod {name} exists already")));
        }
        let ip = (0..MAX_PODS_PER_NODE)
            .filter_map(|index| self.plan.pod_ip(node, index))
            .find(|ip| state.pods.values().all(|p| p.pod.ip != *ip))
            .ok_or_else(|| ClusterError::Invalid(format!("node {node} has no pod IP left")))?;
        let netns = OwnedNetns::create(self.id.netns_name(&format!("pod-{name}")))?;
        let veth = format!("p{}", state.next_veth);
        state.next_veth += 1;
        pods::wire(&host.netns, host.lan_ipv4, &netns, ip, &veth)?;
        let pod = Pod {
            name: name.to_owned(),
            node,
            ip,
            netns: netns.handle(),
            port: None,
        };
        state.pods.insert(
            name.to_owned(),
            PodRuntime {
                process: None,
                pod: pod.clone(),
                _netns: netns,
            },
        );
        Ok(pod)
    }

    fn apply_services(&self, state: &State) -> Result<()> {
        let services: Vec<Service> = state.services.values().cloned().collect();
        for node in &self.nodes {
            node.netns
                .nft_apply(&kube_proxy::render(node.index, &services))?;
        }
        Ok(())
    }

    /// The state, also after a panic elsewhere poisoned the lock: cleanup
    /// must still work.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Endpoint {
    /// The endpoint a pod provides.
    pub fn of(pod: &Pod) -> Self {
        Self {
            ip: pod.ip,
            node: pod.node,
        }
    }
}

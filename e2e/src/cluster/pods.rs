//! Pods: each pod is a network namespace of its own, joined to its node by a
//! veth pair, the way CNI plugins such as Calico wire them:
//!
//! - the pod has its IP as a /32 on its `eth0` and a default route via
//!   169.254.1.1, an address the node's end of the veth holds;
//! - the node routes the pod IP to that veth;
//! - other nodes route the node's whole pod range via its LAN address
//!   (set up with the nodes).

use super::addressing::POD_GATEWAY;
use super::error::Result;
use super::netns::Netns;
use std::net::Ipv4Addr;

/// A pod as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    /// Index of the node it runs on.
    pub node: usize,
    pub ip: Ipv4Addr,
    /// The pod's network namespace (valid while the pod exists).
    pub netns: Netns,
    /// The port the echo server listens on, for echo pods.
    pub port: Option<u16>,
}

/// Connects `pod` to `node`; `veth` names the node's end (unique on the node).
pub fn wire(
    node: &Netns,
    node_ip: Ipv4Addr,
    pod: &Netns,
    pod_ip: Ipv4Addr,
    veth: &str,
) -> Result<()> {
    node.ip_batch(&[
        format!(
            "link add {veth} type veth peer name eth0 netns {}",
            pod.name()
        ),
        format!("addr add {POD_GATEWAY}/32 dev {veth}"),
        format!("link set {veth} up"),
        // src: the node talks to its pods from its LAN address, not from the
        // gateway address, so pods see a meaningful client.
        format!("route add {pod_ip}/32 dev {veth} src {node_ip}"),
    ])?;
    pod.ip_batch(&[
        format!("addr add {pod_ip}/32 dev eth0"),
        "link set eth0 up".to_owned(),
        format!("route add {POD_GATEWAY}/32 dev eth0 scope link"),
        format!("route add default via {POD_GATEWAY} dev eth0"),
    ])
}

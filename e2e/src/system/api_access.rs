//! How workloads on the simulated nodes reach the API: every node holds the
//! `default/kubernetes` Service address (10.96.0.1) on its loopback, with a
//! relay there to the emulator on the test process's loopback. Pods are
//! routed through their node, so they, host-network pods and the node itself
//! all reach the API at the address in-cluster clients are given
//! (`KUBERNETES_SERVICE_HOST`), and the emulator's certificate names it.
//! The relay does not cross the LAN: as the existing speaker tests, a node cut
//! off from the LAN still reaches the API (say so where it matters).

use std::net::{Ipv4Addr, SocketAddr};

use gatehouse_kube_emulator::{KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_PORT};

use crate::cluster::{relay, Cluster, ClusterError, Relay};

/// The API's in-cluster address, which [`ApiAccess`] serves on every node.
pub fn in_cluster_api_address() -> Result<SocketAddr, ClusterError> {
    let ip: Ipv4Addr = KUBERNETES_SERVICE_IP.parse().map_err(|_| {
        ClusterError::Invalid(format!(
            "the emulator's Service address {KUBERNETES_SERVICE_IP} is not IPv4"
        ))
    })?;
    Ok(SocketAddr::from((ip, KUBERNETES_SERVICE_PORT)))
}

/// The relays, one per node; dropping this stops them (the address goes
/// with the node's namespace).
#[derive(Debug)]
pub struct ApiAccess {
    pub address: SocketAddr,
    _relays: Vec<Relay>,
}

impl ApiAccess {
    /// Puts the API address on every node of `cluster` and relays it to
    /// `emulator` (the emulator's own listening address).
    pub fn serve(cluster: &Cluster, emulator: SocketAddr) -> Result<Self, ClusterError> {
        let address = in_cluster_api_address()?;
        let host = format!("{}/32", address.ip());
        let mut relays = Vec::with_capacity(cluster.nodes().len());
        for node in cluster.nodes() {
            node.netns().ip(&["address", "add", &host, "dev", "lo"])?;
            relays.push(relay(node.netns(), address, emulator)?);
        }
        Ok(Self {
            address,
            _relays: relays,
        })
    }
}

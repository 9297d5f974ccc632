//! Heartbeats over UDP: every interval this speaker sends its heartbeat
//! to the speaker port of every other Node's addresses, and records the
//! heartbeats it receives in the peer table. A heartbeat counts only if
//! it comes from one of the addresses of the Node it names.

use super::heartbeat::{Heartbeat, HeartbeatError, Standing};
use super::metrics as m;
use super::node::NodeName;
use super::peers::PeerTable;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::Store;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// What this speaker says about itself, updated by the decision loop.
#[derive(Debug, Clone)]
pub struct Own {
    pub standing: Standing,
    pub claims: BTreeSet<IpAddr>,
}

impl Default for Own {
    fn default() -> Self {
        Own {
            standing: Standing::Joining,
            claims: BTreeSet::new(),
        }
    }
}

/// Shared between the heartbeat tasks and the decision loop.
#[derive(Clone)]
pub struct Liveness {
    pub me: NodeName,
    pub incarnation: u64,
    pub peers: Arc<Mutex<PeerTable>>,
    pub own: Arc<Mutex<Own>>,
    /// Set when `own` changed, so that peers hear about a release at once
    /// instead of at the next interval.
    pub urgent: Arc<tokio::sync::Notify>,
}

impl Liveness {
    pub fn new(me: NodeName) -> Self {
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Liveness {
            me,
            incarnation,
            peers: Arc::default(),
            own: Arc::default(),
            urgent: Arc::default(),
        }
    }

    pub fn set_own(&self, own: Own) {
        *self.own.lock().unwrap_or_else(PoisonError::into_inner) = own;
        self.urgent.notify_one();
    }
}

/// Sends heartbeats until the task is dropped.
pub async fn send(
    socket: Arc<UdpSocket>,
    liveness: Liveness,
    nodes: Store<Node>,
    port: u16,
    interval: Duration,
) {
    let mut sequence = 0u64;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = liveness.urgent.notified() => {}
        }
        sequence += 1;
        let own = liveness
            .own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let heartbeat = Heartbeat {
            node: liveness.me.clone(),
            incarnation: liveness.incarnation,
            sequence,
            standing: own.standing,
            claims: own.claims,
        };
        let Some(bytes) = heartbeat.encode() else {
            tracing::error!(node = %liveness.me, claims = heartbeat.claims.len(), "speaker: heartbeat cannot be encoded (node name or too many addresses)");
            continue;
        };
        for target in peer_targets(&nodes, &liveness.me, port) {
            if let Err(e) = socket.send_to(&bytes, target).await {
                metrics::counter!(m::HEARTBEAT_SEND_ERRORS).increment(1);
                tracing::debug!(%target, "speaker: heartbeat not sent: {e}");
            }
        }
    }
}

/// Receives heartbeats until the task is dropped.
pub async fn receive(socket: Arc<UdpSocket>, liveness: Liveness, nodes: Store<Node>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("speaker: heartbeat socket: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let heartbeat = match Heartbeat::decode(&buf[..len]) {
            Ok(h) => h,
            Err(e) => {
                metrics::counter!(m::HEARTBEATS_REFUSED, "reason" => refusal(&e)).increment(1);
                tracing::debug!(%from, "speaker: refused a datagram: {e}");
                continue;
            }
        };
        if heartbeat.node == liveness.me || !node_has_address(&nodes, &heartbeat.node, from.ip()) {
            metrics::counter!(m::HEARTBEATS_REFUSED, "reason" => "UnknownSender").increment(1);
            tracing::debug!(%from, node = %heartbeat.node, "speaker: heartbeat from an address that is not that node's");
            continue;
        }
        let fresh = liveness
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(heartbeat, Instant::now());
        if fresh {
            metrics::counter!(m::HEARTBEATS_RECEIVED).increment(1);
        }
    }
}

fn refusal(e: &HeartbeatError) -> &'static str {
    match e {
        HeartbeatError::Magic => "Magic",
        HeartbeatError::Version(_) => "Version",
        _ => "Malformed",
    }
}

/// The addresses a Node lists (InternalIP and ExternalIP).
pub fn node_addresses(node: &Node) -> impl Iterator<Item = IpAddr> + '_ {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
}

fn peer_targets(nodes: &Store<Node>, me: &NodeName, port: u16) -> Vec<SocketAddr> {
    nodes
        .state()
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me.as_str()))
        .filter_map(|n| {
            // One address per node: the first InternalIP, else any.
            let addresses: Vec<IpAddr> = node_addresses(n).collect();
            addresses.first().copied()
        })
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

fn node_has_address(nodes: &Store<Node>, node: &NodeName, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    nodes
        .state()
        .iter()
        .filter(|n| n.metadata.name.as_deref() == Some(node.as_str()))
        .any(|n| node_addresses(n).any(|a| a == ip))
}

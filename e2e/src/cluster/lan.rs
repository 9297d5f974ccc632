//! The LAN: a bridge in a namespace of its own, and veth pairs that plug a
//! node or the client into it. Everything is created directly inside the
//! namespaces involved (`ip -n`, `peer ... netns`), so the host's own
//! network namespace is never touched.

use super::error::{ClusterError, Result};
use super::frames::Mac;
use super::netns::Netns;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The bridge's name inside the LAN namespace.
pub const BRIDGE: &str = "br0";
/// The name of the LAN interface inside every node and the client.
pub const LAN_INTERFACE: &str = "eth0";

/// Creates the bridge. Multicast snooping is off so that IPv6 neighbour
/// discovery is always flooded, as on a dumb switch.
pub fn create_bridge(lan: &Netns) -> Result<()> {
    lan.ip_batch(&[
        format!("link add {BRIDGE} type bridge stp_state 0 mcast_snooping 0"),
        format!("link set {BRIDGE} up"),
    ])
}

/// The bridge port of node `index` in the LAN namespace.
pub fn node_port(index: usize) -> String {
    format!("n{index}")
}

/// One member's place on the LAN.
#[derive(Debug, Clone)]
pub struct LanPort<'a> {
    /// Name of the bridge port in the LAN namespace (unique there).
    pub port: &'a str,
    pub ipv4: Ipv4Addr,
    pub ipv4_prefix: u8,
    pub ipv6: Option<(Ipv6Addr, u8)>,
}

/// Plugs `member` into the bridge: a veth pair whose `eth0` end is in
/// `member` with the given addresses.
pub fn attach(lan: &Netns, member: &Netns, port: &LanPort<'_>) -> Result<()> {
    lan.ip_batch(&[
        format!(
            "link add {} type veth peer name {LAN_INTERFACE} netns {}",
            port.port,
            member.name()
        ),
        format!("link set {} master {BRIDGE} up", port.port),
    ])?;
    let mut lines = vec![format!(
        "addr add {}/{} dev {LAN_INTERFACE}",
        port.ipv4, port.ipv4_prefix
    )];
    if let Some((ipv6, prefix)) = port.ipv6 {
        // nodad: usable at once instead of after duplicate detection (~1 s).
        lines.push(format!(
            "addr add {ipv6}/{prefix} dev {LAN_INTERFACE} nodad"
        ));
    }
    lines.push(format!("link set {LAN_INTERFACE} up"));
    member.ip_batch(&lines)
}

/// Whether this kernel has IPv6 (it may be disabled on the command line).
pub fn kernel_has_ipv6() -> bool {
    std::path::Path::new("/proc/net/if_inet6").exists()
}

/// The MAC address of `interface` inside `netns` (`ip -j link show`).
pub fn interface_mac(netns: &Netns, interface: &str) -> Result<Mac> {
    let out = netns.ip(&["-j", "link", "show", "dev", interface])?;
    let bad = |why: &str| {
        ClusterError::Invalid(format!(
            "`ip -j link show dev {interface}` in {} printed {out:?}: {why}",
            netns.name()
        ))
    };
    let links: Vec<serde_json::Value> =
        serde_json::from_str(&out).map_err(|e| bad(&e.to_string()))?;
    links
        .first()
        .and_then(|link| link.get("address"))
        .and_then(|address| address.as_str())
        .ok_or_else(|| bad("no address"))?
        .parse()
        .map_err(|e: super::frames::BadMac| bad(&e.to_string()))
}

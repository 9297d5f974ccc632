//! ARP from the LAN's point of view: ask who has an IP from the client, as
//! `arping` does, send gratuitous ARP or unsolicited neighbor advertisements
//! from a node as a speaker would, and read or flush the client kernel's
//! neighbour table.

use super::capture::{open_channel, PacketChannel};
use super::error::{ClusterError, Result};
use super::frames::{self, ArpOp, LanFrame, Mac};
use super::lan::LAN_INTERFACE;
use super::netns::Netns;
use super::Cluster;
use pnet_datalink::NetworkInterface;
use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How long one read of a reply waits at most.
const READ_SLICE: Duration = Duration::from_millis(10);

/// Sends one broadcast ARP request for `target` on `interface` of `from`
/// and collects replies for `listen`: the sender MACs of every ARP reply
/// that says where `target` is and is addressed to us. Blocks for `listen`.
pub fn arping(
    from: &Netns,
    interface: &str,
    target: Ipv4Addr,
    listen: Duration,
) -> Result<BTreeSet<Mac>> {
    let PacketChannel {
        mut tx,
        mut rx,
        interface: found,
    } = open_channel(from, interface, READ_SLICE)?;
    let (mac, ip) = identity(from, &found)?;
    send(
        &mut *tx,
        &frames::arp_request(mac, ip, target),
        from,
        interface,
    )?;
    let mut replied = BTreeSet::new();
    let deadline = Instant::now() + listen;
    while Instant::now() < deadline {
        match rx.next() {
            Ok(bytes) => {
                if let Some(LanFrame::Arp(arp)) = frames::parse(bytes) {
                    if arp.op == ArpOp::Reply && arp.sender_ip == target && arp.target_ip == ip {
                        replied.insert(arp.sender_mac);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                return Err(ClusterError::io(
                    format!("reading ARP replies on {}/{interface}", from.name()),
                    e,
                ))
            }
        }
    }
    Ok(replied)
}

/// Sends `frames` as they are on `interface` of `netns`.
pub fn send_frames(netns: &Netns, interface: &str, frames: &[Vec<u8>]) -> Result<()> {
    let mut tx = open_channel(netns, interface, READ_SLICE)?.tx;
    for frame in frames {
        send(&mut *tx, frame, netns, interface)?;
    }
    Ok(())
}

/// Sends a gratuitous ARP for `ip` from `interface` of `netns`, with the
/// interface's own MAC; returns that MAC.
pub fn send_gratuitous_arp(netns: &Netns, interface: &str, ip: Ipv4Addr) -> Result<Mac> {
    let mac = super::lan::interface_mac(netns, interface)?;
    send_frames(netns, interface, &[frames::gratuitous_arp(mac, ip)])?;
    Ok(mac)
}

/// Sends an unsolicited Neighbor Advertisement for `ip` from `interface` of
/// `netns`, with the interface's own MAC; returns that MAC.
pub fn send_unsolicited_na(netns: &Netns, interface: &str, ip: Ipv6Addr) -> Result<Mac> {
    let mac = super::lan::interface_mac(netns, interface)?;
    send_frames(
        netns,
        interface,
        &[frames::unsolicited_neighbor_advertisement(mac, ip)],
    )?;
    Ok(mac)
}

fn send(
    tx: &mut dyn pnet_datalink::DataLinkSender,
    frame: &[u8],
    netns: &Netns,
    interface: &str,
) -> Result<()> {
    let context = || format!("sending a frame on {}/{interface}", netns.name());
    match tx.send_to(frame, None) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(ClusterError::io(context(), e)),
        None => Err(ClusterError::io(
            context(),
            io::Error::other("the frame does not fit the write buffer"),
        )),
    }
}

/// The interface's MAC and first IPv4 address.
fn identity(netns: &Netns, interface: &NetworkInterface) -> Result<(Mac, Ipv4Addr)> {
    let mac = interface.mac.map(|m| Mac(m.octets())).ok_or_else(|| {
        ClusterError::Invalid(format!("{}/{} has no MAC", netns.name(), interface.name))
    })?;
    let ip = interface
        .ips
        .iter()
        .find_map(|net| match net.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| {
            ClusterError::Invalid(format!(
                "{}/{} has no IPv4 address",
                netns.name(),
                interface.name
            ))
        })?;
    Ok((mac, ip))
}

/// An entry of the client kernel's neighbour table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub ip: IpAddr,
    /// The link-layer address, if the entry has one (not when it is
    /// INCOMPLETE or FAILED).
    pub mac: Option<Mac>,
    /// NUD states as `ip` prints them: `REACHABLE`, `STALE`, `FAILED`...
    pub states: Vec<String>,
}

/// The neighbour entry for `ip` on `interface` of `netns`, if there is one.
pub fn neighbor(netns: &Netns, interface: &str, ip: IpAddr) -> Result<Option<Neighbor>> {
    let out = netns.ip(&["-j", "neigh", "show", &ip.to_string(), "dev", interface])?;
    parse_neighbors(&out, ip)
}

fn parse_neighbors(json: &str, ip: IpAddr) -> Result<Option<Neighbor>> {
    let bad = |why: String| ClusterError::Invalid(format!("`ip -j neigh` printed {json:?}: {why}"));
    // Older iproute2 prints nothing at all for an empty table.
    if json.trim().is_empty() {
        return Ok(None);
    }
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let wanted = ip.to_string();
    let Some(entry) = entries
        .iter()
        .find(|e| e.get("dst").and_then(|d| d.as_str()) == Some(wanted.as_str()))
    else {
        return Ok(None);
    };
    let mac = match entry.get("lladdr").and_then(|m| m.as_str()) {
        Some(text) => Some(text.parse::<Mac>().map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let states = entry
        .get("state")
        .and_then(|s| s.as_array())
        .map(|states| {
            states
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Neighbor { ip, mac, states }))
}

impl Cluster {
    /// [`arping`] from the client's `eth0`.
    pub fn arping(&self, target: Ipv4Addr, listen: Duration) -> Result<BTreeSet<Mac>> {
        arping(&self.client, LAN_INTERFACE, target, listen)
    }

    /// The client kernel's neighbour entry for `ip` on `eth0`.
    pub fn client_neighbor(&self, ip: impl Into<IpAddr>) -> Result<Option<Neighbor>> {
        neighbor(&self.client, LAN_INTERFACE, ip.into())
    }

    /// Empties the client's neighbour table on `eth0` (IPv4 and IPv6), so
    /// that its next packet to any LAN address asks again.
    pub fn flush_client_neighbors(&self) -> Result<()> {
        let families: &[&str] = if self.ipv6 { &["-4", "-6"] } else { &["-4"] };
        for family in families {
            self.client
                .ip(&[family, "neigh", "flush", "dev", LAN_INTERFACE])?;
        }
        Ok(())
    }

    /// Sends a gratuitous ARP for `ip` from node `node`'s `eth0`, as a
    /// speaker taking the IP over would; returns the node's MAC.
    pub fn send_gratuitous_arp(&self, node: usize, ip: Ipv4Addr) -> Result<Mac> {
        let node = self
            .nodes
            .get(node)
            .ok_or_else(|| ClusterError::Invalid(format!("no node {node}")))?;
        send_gratuitous_arp(&node.netns, LAN_INTERFACE, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_entries_parse() {
        let ip: IpAddr = Ipv4Addr::new(10, 200, 1, 200).into();
        let json = r#"[{"dst":"10.200.1.200","lladdr":"02:00:00:00:00:0b","state":["REACHABLE"]}]"#;
        let Ok(Some(entry)) = parse_neighbors(json, ip) else {
            panic!("no entry parsed");
        };
        assert_eq!(entry.mac, Some(Mac([2, 0, 0, 0, 0, 0xb])));
        assert_eq!(entry.states, ["REACHABLE"]);

        let failed = r#"[{"dst":"10.200.1.200","state":["FAILED"]}]"#;
        assert!(matches!(
            parse_neighbors(failed, ip),
            Ok(Some(Neighbor { mac: None, .. }))
        ));
        assert!(matches!(parse_neighbors("[]", ip), Ok(None)));
        assert!(matches!(parse_neighbors("", ip), Ok(None)));
        assert!(parse_neighbors("[{", ip).is_err());
    }
}

//! Ethernet frames the LAN tools read and write: ARP (RFC 826, with the
//! gratuitous forms of RFC 5227) and ICMPv6 Neighbor Advertisements
//! (RFC 4861). A small strict parser (anything malformed or of another kind
//! is `None`) and builders for the frames the tests send.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERNET_HEADER: usize = 14;
const ARP_BODY: usize = 28;
const IPV6_HEADER: usize = 40;
const ICMPV6: u8 = 58;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The smallest Ethernet frame without its checksum; shorter frames are padded.
const MIN_FRAME: usize = 60;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    fn read(bytes: &[u8]) -> Option<Mac> {
        bytes.get(..6)?.try_into().ok().map(Mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text is no `aa:bb:cc:dd:ee:ff` MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address: {0:?}")]
pub struct BadMac(pub String);

impl FromStr for Mac {
    type Err = BadMac;
    fn from_str(text: &str) -> Result<Self, BadMac> {
        let bad = || BadMac(text.to_owned());
        let mut mac = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            None => Ok(Mac(mac)),
            Some(_) => Err(bad()),
        }
    }
}

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArpOp {
    Request,
    Reply,
}

/// An Ethernet/IPv4 ARP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    pub eth_src: Mac,
    pub eth_dst: Mac,
    pub op: ArpOp,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// Gratuitous: the sender speaks about its own address (sender and
    /// target IP are the same), as a request or as a reply.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip && !self.sender_ip.is_unspecified()
    }

    /// The IP this frame claims is at `sender_mac`, if it claims one: every
    /// reply and every gratuitous frame. Plain requests (and probes from
    /// 0.0.0.0) are questions, not claims.
    pub fn claim(&self) -> Option<Ipv4Addr> {
        (self.op == ArpOp::Reply || self.is_gratuitous()).then_some(self.sender_ip)
    }
}

/// An ICMPv6 Neighbor Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    pub eth_src: Mac,
    pub eth_dst: Mac,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    /// The target link-layer address option, if the advertisement has one.
    pub target_mac: Option<Mac>,
}

impl NeighborAdvertisement {
    /// The MAC the advertisement claims `target` is at: its target
    /// link-layer address, else the Ethernet source.
    pub fn claimed_mac(&self) -> Mac {
        self.target_mac.unwrap_or(self.eth_src)
    }
}

/// A frame the LAN tools understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanFrame {
    Arp(ArpFrame),
    NeighborAdvertisement(NeighborAdvertisement),
}

/// Parses an Ethernet frame; `None` for any other kind, and for anything
/// malformed (wrong lengths, unknown hardware or protocol types, bad
/// ICMPv6 checksum, hop limit other than 255, zero-length options).
pub fn parse(frame: &[u8]) -> Option<LanFrame> {
    let eth_dst = Mac::read(frame)?;
    let eth_src = Mac::read(frame.get(6..)?)?;
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let payload = &frame[ETHERNET_HEADER..];
    match ethertype {
        ETHERTYPE_ARP => parse_arp(eth_src, eth_dst, payload).map(LanFrame::Arp),
        ETHERTYPE_IPV6 => parse_neighbor_advertisement(eth_src, eth_dst, payload)
            .map(LanFrame::NeighborAdvertisement),
        _ => None,
    }
}

fn parse_arp(eth_src: Mac, eth_dst: Mac, body: &[u8]) -> Option<ArpFrame> {
    let body = body.get(..ARP_BODY)?;
    // Ethernet hardware, IPv4 protocol, 6-byte and 4-byte addresses.
    if body[..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let op = match u16::from_be_bytes([body[6], body[7]]) {
        1 => ArpOp::Request,
        2 => ArpOp::Reply,
        _ => return None,
    };
    Some(ArpFrame {
        eth_src,
        eth_dst,
        op,
        sender_mac: Mac::read(&body[8..])?,
        sender_ip: ipv4(&body[14..18])?,
        target_mac: Mac::read(&body[18..])?,
        target_ip: ipv4(&body[24..28])?,
    })
}

fn parse_neighbor_advertisement(
    eth_src: Mac,
    eth_dst: Mac,
    packet: &[u8],
) -> Option<NeighborAdvertisement> {
    let header = packet.get(..IPV6_HEADER)?;
    if header[0] >> 4 != 6 || header[6] != ICMPV6 || header[7] != 255 {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let source = ipv6(&header[8..24])?;
    let destination = ipv6(&header[24..40])?;
    let icmp = packet.get(IPV6_HEADER..IPV6_HEADER + payload_len)?;
    // Type, code, checksum, flags and reserved, target.
    if icmp.len() < 24 || icmp[0] != NEIGHBOR_ADVERTISEMENT || icmp[1] != 0 {
        return None;
    }
    if icmpv6_checksum(source, destination, icmp) != 0 {
        return None;
    }
    let flags = icmp[4];
    let target = ipv6(&icmp[8..24])?;
    let mut target_mac = None;
    let mut options = &icmp[24..];
    while !options.is_empty() {
        let kind = options[0];
        let len = usize::from(*options.get(1)?) * 8;
        if len == 0 {
            return None;
        }
        let option = options.get(..len)?;
        // Target link-layer address, for Ethernet exactly 8 bytes.
        if kind == 2 {
            if len != 8 {
                return None;
            }
            target_mac = Some(Mac::read(&option[2..])?);
        }
        options = &options[len..];
    }
    Some(NeighborAdvertisement {
        eth_src,
        eth_dst,
        source,
        destination,
        router: flags & 0x80 != 0,
        solicited: flags & 0x40 != 0,
        override_flag: flags & 0x20 != 0,
        target,
        target_mac,
    })
}

fn ipv4(bytes: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(bytes).ok().map(Ipv4Addr::from)
}

fn ipv6(bytes: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(bytes).ok().map(Ipv6Addr::from)
}

/// The ones'-complement checksum over the IPv6 pseudo-header and `icmp`;
/// 0 for a message whose checksum field is right.
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = match pair {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                [hi] => u16::from_be_bytes([*hi, 0]),
                _ => 0,
            };
            sum += u32::from(word);
        }
    };
    add(&source.octets());
    add(&destination.octets());
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ARP frame, padded to the Ethernet minimum.
pub fn arp_frame(arp: &ArpFrame) -> Vec<u8> {
    let mut frame = Vec::with_capacity(MIN_FRAME);
    frame.extend_from_slice(&arp.eth_dst.0);
    frame.extend_from_slice(&arp.eth_src.0);
    frame.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    let op: u16 = match arp.op {
        ArpOp::Request => 1,
        ArpOp::Reply => 2,
    };
    frame.extend_from_slice(&op.to_be_bytes());
    frame.extend_from_slice(&arp.sender_mac.0);
    frame.extend_from_slice(&arp.sender_ip.octets());
    frame.extend_from_slice(&arp.target_mac.0);
    frame.extend_from_slice(&arp.target_ip.octets());
    frame.resize(MIN_FRAME, 0);
    frame
}

/// A broadcast ARP request from `mac`/`ip` asking who has `target`.
pub fn arp_request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(&ArpFrame {
        eth_src: mac,
        eth_dst: Mac::BROADCAST,
        op: ArpOp::Request,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: Mac::ZERO,
        target_ip: target,
    })
}

/// A gratuitous ARP: a broadcast request from `mac` with `ip` as both
/// sender and target address (the form RFC 5227 calls an announcement).
pub fn gratuitous_arp(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_request(mac, ip, ip)
}

/// An unsolicited Neighbor Advertisement (override set) from `mac` for
/// `target`, to all nodes (ff02::1), sent from `target` itself.
pub fn unsolicited_neighbor_advertisement(mac: Mac, target: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![NEIGHBOR_ADVERTISEMENT, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac.0);
    let checksum = icmpv6_checksum(target, all_nodes, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut frame = Vec::with_capacity(ETHERNET_HEADER + IPV6_HEADER + icmp.len());
    frame.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    frame.extend_from_slice(&mac.0);
    frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    let payload_len = u16::try_from(icmp.len()).unwrap_or(u16::MAX);
    frame.extend_from_slice(&payload_len.to_be_bytes());
    frame.extend_from_slice(&[ICMPV6, 255]);
    frame.extend_from_slice(&target.octets());
    frame.extend_from_slice(&all_nodes.octets());
    frame.extend_from_slice(&icmp);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    const B: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, 1, last)
    }

    #[test]
    fn macs_print_and_parse() {
        assert_eq!(A.to_string(), "02:00:00:00:00:0a");
        assert_eq!("02:00:00:00:00:0A".parse::<Mac>(), Ok(A));
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0a:01",
            "2:00:00:00:00:0a",
            "zz:00:00:00:00:0a",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn arp_round_trips_and_tells_claims_from_questions() {
        let request = arp_request(A, ip(2), ip(200));
        assert_eq!(request.len(), MIN_FRAME);
        let Some(LanFrame::Arp(parsed)) = parse(&request) else {
            panic!("request did not parse");
        };
        assert_eq!(parsed.op, ArpOp::Request);
        assert_eq!((parsed.sender_mac, parsed.sender_ip), (A, ip(2)));
        assert_eq!(parsed.target_ip, ip(200));
        assert_eq!(parsed.claim(), None);

        let Some(LanFrame::Arp(garp)) = parse(&gratuitous_arp(B, ip(200))) else {
            panic!("gratuitous ARP did not parse");
        };
        assert!(garp.is_gratuitous());
        assert_eq!(garp.claim(), Some(ip(200)));

        let reply = ArpFrame {
            eth_src: B,
            eth_dst: A,
            op: ArpOp::Reply,
            sender_mac: B,
            sender_ip: ip(200),
            target_mac: A,
            target_ip: ip(2),
        };
        assert_eq!(parse(&arp_frame(&reply)), Some(LanFrame::Arp(reply)));
        assert_eq!(reply.claim(), Some(ip(200)));

        // A probe (RFC 5227) is a question.
        let probe = ArpFrame {
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_ip: Ipv4Addr::UNSPECIFIED,
            op: ArpOp::Request,
            ..reply
        };
        assert_eq!(probe.claim(), None);
    }

    #[test]
    fn malformed_arp_is_rejected() {
        let good = gratuitous_arp(A, ip(200));
        assert!(parse(&good[..ETHERNET_HEADER + ARP_BODY - 1]).is_none());
        for (at, value) in [(14, 9), (17, 0x06), (18, 8), (19, 16), (21, 3)] {
            let mut bad = good.clone();
            bad[at] = value;
            assert!(parse(&bad).is_none(), "byte {at} = {value}");
        }
        let mut other = good;
        other[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert!(parse(&other).is_none());
    }

    /// Rewrites the ICMPv6 checksum of an advertisement sent to ff02::1.
    fn refresh_checksum(frame: &mut [u8], source: Ipv6Addr) {
        let icmp = &mut frame[ETHERNET_HEADER + IPV6_HEADER..];
        icmp[2..4].copy_from_slice(&[0, 0]);
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let checksum = icmpv6_checksum(source, all_nodes, icmp);
        icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    }

    #[test]
    fn neighbor_advertisements_round_trip_and_are_checked() {
        let target: Ipv6Addr = "fd67:6768:0:1::c8".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let frame = unsolicited_neighbor_advertisement(B, target);
        let Some(LanFrame::NeighborAdvertisement(na)) = parse(&frame) else {
            panic!("advertisement did not parse");
        };
        assert_eq!(na.target, target);
        assert_eq!(na.target_mac, Some(B));
        assert_eq!(na.claimed_mac(), B);
        assert!(na.override_flag && !na.solicited && !na.router);

        let mut corrupt = frame.clone();
        corrupt[ETHERNET_HEADER + IPV6_HEADER + 10] ^= 1;
        assert!(parse(&corrupt).is_none(), "bad checksum accepted");
        let mut hop_limit = frame.clone();
        hop_limit[ETHERNET_HEADER + 7] = 64;
        assert!(parse(&hop_limit).is_none(), "forwarded NDP accepted");
        let mut zero_option = frame.clone();
        zero_option[ETHERNET_HEADER + IPV6_HEADER + 25] = 0;
        refresh_checksum(&mut zero_option, target);
        assert!(parse(&zero_option).is_none(), "zero-length option accepted");
        let mut refreshed = frame.clone();
        refresh_checksum(&mut refreshed, target);
        assert_eq!(refreshed, frame);
        assert!(
            parse(&frame[..frame.len() - 1]).is_none(),
            "truncated accepted"
        );
    }
}

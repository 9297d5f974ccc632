//! Frame codecs for the L2 speaker: ARP (IPv4) and Neighbor Discovery
//! (IPv6) in full Ethernet II frames, as read from and written to
//! `AF_PACKET` sockets, plus the classic BPF programs that keep everything
//! else out of those sockets.
//!
//! Everything here is pure: bytes in, values out, and back. The bytes come
//! from the LAN, so the parsers are strict (they refuse what RFC 826,
//! RFC 4861 and RFC 5227 do not allow, rather than guessing) and total:
//! they never panic and never index out of bounds, whatever the input.
//!
//! - [`ethernet`]: the Ethernet II header (untagged frames only).
//! - [`arp`]: ARP over Ethernet for IPv4, requests in, replies and
//!   announcements out.
//! - [`ndp`]: the IPv6 header and ICMPv6 Neighbor Solicitations in,
//!   Neighbor Advertisements out, with the ICMPv6 checksum.
//! - [`filter`]: socket filters that pass only the questions we answer.

use std::fmt;

pub mod arp;
pub mod ethernet;
pub mod filter;
pub mod ndp;

pub use arp::{arp_reply, gratuitous_arp, ArpPacket, ArpRequest};
pub use filter::{arp_filter, neighbor_solicitation_filter};
pub use ndp::{
    neighbor_advertisement, solicited_node_multicast, NaDestination, NdpMessage,
    NeighborAdvertisement, NeighborSolicitation,
};

/// An Ethernet (EUI-48) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// `00:00:00:00:00:00`, the "unknown" hardware address of ARP requests.
    pub const ZERO: Mac = Mac([0; 6]);

    /// A group (multicast or broadcast) address: the I/G bit, the lowest
    /// bit of the first octet, is set. Never a valid source.
    pub fn is_group(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The Ethernet address IPv6 multicast `ip` is sent to (RFC 2464 7):
    /// `33:33` then the last four octets of `ip`.
    pub fn ipv6_multicast(ip: std::net::Ipv6Addr) -> Mac {
        let o = ip.octets();
        Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// Reads six octets at the start of `bytes`, if there are that many.
    pub(crate) fn read(bytes: &[u8]) -> Option<Mac> {
        let six: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(Mac(six))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why a frame was refused. Each variant is one rule the frame broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("{what} truncated: {need} bytes needed, {have} present")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("VLAN-tagged frame (ethertype {0:#06x}); tags must be stripped before parsing")]
    VlanTagged(u16),
    #[error("ethertype {found:#06x}, expected {expected:#06x}")]
    UnexpectedEthertype { expected: u16, found: u16 },
    #[error("Ethernet source {0} is a group address")]
    GroupSource(Mac),
    #[error("ARP hardware type {0}, expected 1 (Ethernet)")]
    ArpHardwareType(u16),
    #[error("ARP protocol type {0:#06x}, expected 0x0800 (IPv4)")]
    ArpProtocolType(u16),
    #[error("ARP address lengths {hlen}/{plen}, expected 6/4")]
    ArpAddressLengths { hlen: u8, plen: u8 },
    #[error("ARP operation 0 is reserved")]
    ArpReservedOperation,
    #[error("ARP sender hardware address {0} is not a unicast address")]
    ArpSenderMac(Mac),
    #[error("ARP sender address {0} is multicast or broadcast")]
    ArpSenderIp(std::net::Ipv4Addr),
    #[error("ARP target address {0} is unspecified, multicast or broadcast")]
    ArpTargetIp(std::net::Ipv4Addr),
    #[error("IP version {0}, expected 6")]
    IpVersion(u8),
    #[error("IPv6 payload length {declared} exceeds the {present} bytes present")]
    PayloadLength { declared: usize, present: usize },
    #[error("IPv6 extension header {0} before the upper layer; not accepted")]
    ExtensionHeader(u8),
    #[error("hop limit {0}, Neighbor Discovery requires 255")]
    HopLimit(u8),
    #[error("IPv6 source {0} is multicast")]
    MulticastSource(std::net::Ipv6Addr),
    #[error("ICMPv6 checksum {found:#06x} does not match the message")]
    Checksum { found: u16 },
    #[error("ICMPv6 code {0}, expected 0")]
    IcmpCode(u8),
    #[error("Neighbor Discovery target {0} is multicast")]
    MulticastTarget(std::net::Ipv6Addr),
    #[error("Neighbor Solicitation from :: (DAD) sent to {0}, not to a solicited-node address")]
    DadDestination(std::net::Ipv6Addr),
    #[error("solicited Neighbor Advertisement sent to multicast {0}")]
    SolicitedToMulticast(std::net::Ipv6Addr),
    #[error("Neighbor Discovery option of length 0")]
    OptionLengthZero,
    #[error("Neighbor Discovery option type {kind} of {need} bytes, {have} left")]
    OptionOverrun { kind: u8, need: usize, have: usize },
    #[error("link-layer address option of {0} units, Ethernet's is 1")]
    LinkLayerOptionLength(u8),
    #[error("link-layer address option type {0} given twice")]
    DuplicateLinkLayerOption(u8),
    #[error("link-layer address option holds {0}, not a unicast address")]
    LinkLayerAddress(Mac),
    #[error("source link-layer address option in a Neighbor Solicitation from ::")]
    LinkLayerOptionFromUnspecified,
}

/// An ARP request or Neighbor Solicitation: a question we may answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Solicitation {
    Arp(ArpRequest),
    Neighbor(NeighborSolicitation),
}

/// Reads one Ethernet frame off the wire.
///
/// `Ok(Some(_))` for an ARP request or a Neighbor Solicitation (whoever
/// sent it, whatever address it asks about: whether we own the address is
/// the caller's business). `Ok(None)` for well-formed frames that are not
/// such questions: ARP replies, gratuitous ARP (sender address = target
/// address), other ARP operations, Neighbor Advertisements, other ICMPv6
/// messages, IPv6 packets carrying another upper layer, other ethertypes.
/// `Err` for malformed frames, VLAN-tagged ones included.
pub fn parse_solicitation(frame: &[u8]) -> Result<Option<Solicitation>, PacketError> {
    match ethernet::ethertype(frame)? {
        ethernet::ETHERTYPE_ARP => Ok(arp::parse_request(frame)?.map(Solicitation::Arp)),
        ethernet::ETHERTYPE_IPV6 => match ndp::parse(frame)? {
            Some(NdpMessage::Solicitation(ns)) => Ok(Some(Solicitation::Neighbor(ns))),
            Some(NdpMessage::Advertisement(_) | NdpMessage::Other { .. }) | None => Ok(None),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OURS: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);

    #[test]
    fn dispatches_by_ethertype() {
        let arp = arp::tests::request_frame();
        assert_eq!(
            parse_solicitation(&arp),
            Ok(Some(Solicitation::Arp(ArpRequest {
                sender_mac: arp::tests::ASKER,
                sender_ip: Ipv4Addr::new(192, 0, 2, 10),
                target_ip: Ipv4Addr::new(192, 0, 2, 200),
            })))
        );
        let ns = ndp::tests::solicitation_frame();
        assert_eq!(
            parse_solicitation(&ns),
            Ok(Some(Solicitation::Neighbor(NeighborSolicitation {
                source_mac: ndp::tests::ASKER,
                source_ip: "fe80::5054:ff:fe12:3456".parse().unwrap(),
                target: "2001:db8::c8".parse().unwrap(),
                source_link_addr: Some(ndp::tests::ASKER),
            })))
        );
    }

    #[test]
    fn answers_and_announcements_are_not_questions() {
        let ip6: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let frames = [
            gratuitous_arp(OURS, Ipv4Addr::new(192, 0, 2, 7)),
            arp_reply(
                OURS,
                &ArpRequest {
                    sender_mac: arp::tests::ASKER,
                    sender_ip: Ipv4Addr::new(192, 0, 2, 1),
                    target_ip: Ipv4Addr::new(192, 0, 2, 7),
                },
            ),
            neighbor_advertisement(OURS, ip6, ip6, NaDestination::AllNodes),
            neighbor_advertisement(
                OURS,
                ip6,
                ip6,
                NaDestination::Solicited {
                    mac: ndp::tests::ASKER,
                    ip: "fe80::1".parse().unwrap(),
                },
            ),
        ];
        for f in frames {
            assert_eq!(parse_solicitation(&f), Ok(None), "{f:02x?}");
        }
    }

    #[test]
    fn other_ethertypes_are_not_questions_and_tags_are_refused() {
        let mut f = arp::tests::request_frame();
        f[12..14].copy_from_slice(&[0x08, 0x00]); // IPv4
        assert_eq!(parse_solicitation(&f), Ok(None));
        f[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
        assert_eq!(parse_solicitation(&f), Ok(None));
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(parse_solicitation(&f), Err(PacketError::VlanTagged(0x8100)));
        assert!(matches!(
            parse_solicitation(&f[..13]),
            Err(PacketError::Truncated { .. })
        ));
        assert!(matches!(
            parse_solicitation(&[]),
            Err(PacketError::Truncated { .. })
        ));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            PacketError::HopLimit(64).to_string(),
            "hop limit 64, Neighbor Discovery requires 255"
        );
        assert_eq!(
            PacketError::UnexpectedEthertype {
                expected: 0x0806,
                found: 0x0800
            }
            .to_string(),
            "ethertype 0x0800, expected 0x0806"
        );
    }

    /// Arbitrary bytes behind a header that gets them past the first
    /// checks, so that the fuzzing reaches the deeper ones.
    fn frames() -> impl Strategy<Value = Vec<u8>> {
        let head = prop_oneof![
            Just(Vec::new()),
            Just(vec![0x86, 0xdd, 0x60, 0, 0, 0]),
            Just(vec![0x86, 0xdd, 0x60, 0, 0, 0x20, 58, 255]),
            Just(vec![0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]),
        ];
        (
            any::<[u8; 12]>(),
            head,
            proptest::collection::vec(any::<u8>(), 0..120),
        )
            .prop_map(|(addrs, head, tail)| {
                if head.is_empty() {
                    return tail;
                }
                [&addrs[..], &head, &tail].concat()
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(frame in frames()) {
            let _ = parse_solicitation(&frame);
            let _ = arp::parse(&frame);
            let _ = ndp::parse(&frame);
        }

        /// What parse_solicitation reads, it reads from where the formats
        /// put it.
        #[test]
        fn parsed_fields_come_from_the_frame(frame in frames()) {
            match parse_solicitation(&frame) {
                Ok(Some(Solicitation::Arp(r))) => {
                    prop_assert_eq!(&frame[22..28], &r.sender_mac.0[..]);
                    prop_assert_eq!(&frame[28..32], &r.sender_ip.octets()[..]);
                    prop_assert_eq!(&frame[38..42], &r.target_ip.octets()[..]);
                }
                Ok(Some(Solicitation::Neighbor(ns))) => {
                    prop_assert_eq!(&frame[6..12], &ns.source_mac.0[..]);
                    prop_assert_eq!(&frame[22..38], &ns.source_ip.octets()[..]);
                    prop_assert_eq!(&frame[62..78], &ns.target.octets()[..]);
                }
                Ok(None) | Err(_) => {}
            }
        }

        #[test]
        fn corrupted_solicitations_are_refused_or_consistent(
            (frame, want) in ndp::tests::valid_solicitation(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            // Through the dispatcher: an ethertype byte changed is another
            // ethertype (not a question) or refused.
            let at = at.index(frame.len());
            let mut f = frame.clone();
            f[at] ^= xor;
            match parse_solicitation(&f) {
                Ok(Some(Solicitation::Neighbor(_))) | Err(_) => {}
                Ok(None) => prop_assert!([12, 13, 20].contains(&at), "byte {}", at),
                Ok(Some(Solicitation::Arp(a))) => prop_assert!(false, "{:?}", a),
            }
            ndp::tests::check_corruption(&frame, &want, at, xor);
        }
    }
}

//! IPv6 Neighbor Discovery (RFC 4861): the IPv6 header, Neighbor
//! Solicitations in, Neighbor Advertisements out, and the ICMPv6 checksum
//! over the IPv6 pseudo-header (RFC 8200 8.1).
//!
//! ```text
//! IPv6 header (40 bytes)              ICMPv6 NS/NA (24 bytes, then options)
//!  0   1       4     6   7   8    24    40   0    1    2      4       8       24
//! |v tc| flow  |len  |nh |hl |src |dst |    |type|code|csum  |flags+ |target |options
//! |6   |       |     |58 |255|    |    |    |135 |0   |      |reserved       |(8-byte units)
//! ```

use std::net::Ipv6Addr;

use super::ethernet::{self, ETHERTYPE_IPV6};
use super::{Mac, PacketError};

pub const IPV6_HEADER_LEN: usize = 40;
/// Type, code, checksum, reserved/flags, target.
pub const ND_HEADER_LEN: usize = 24;
pub const NEXT_HEADER_ICMPV6: u8 = 58;
pub const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
pub const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The only hop limit Neighbor Discovery accepts (RFC 4861 7.1): a
/// router forwarding the packet would have decremented it.
pub const ND_HOP_LIMIT: u8 = 255;
pub const OPTION_SOURCE_LINK_ADDR: u8 = 1;
pub const OPTION_TARGET_LINK_ADDR: u8 = 2;
/// The Neighbor Advertisement flags, in the first byte after the checksum.
pub const FLAG_ROUTER: u8 = 0x80;
pub const FLAG_SOLICITED: u8 = 0x40;
pub const FLAG_OVERRIDE: u8 = 0x20;
/// `ff02::1`.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Who has `target`? Asked by `source_ip` from Ethernet `source_mac`.
///
/// `source_ip` is `::` during Duplicate Address Detection; then there is
/// no `source_link_addr` and an answer goes to all nodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NeighborSolicitation {
    /// The Ethernet source of the frame.
    pub source_mac: Mac,
    pub source_ip: Ipv6Addr,
    pub target: Ipv6Addr,
    /// The source link-layer address option, if the solicitation had one.
    pub source_link_addr: Option<Mac>,
}

/// A Neighbor Advertisement: `target` is at `target_link_addr`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NeighborAdvertisement {
    /// The Ethernet addresses of the frame.
    pub destination_mac: Mac,
    pub source_mac: Mac,
    pub source_ip: Ipv6Addr,
    pub destination_ip: Ipv6Addr,
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    /// The target link-layer address option, if the advertisement had one.
    pub target_link_addr: Option<Mac>,
}

/// A well-formed ICMPv6 message in an IPv6 frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NdpMessage {
    Solicitation(NeighborSolicitation),
    Advertisement(NeighborAdvertisement),
    /// Any other ICMPv6 message (its checksum checked, nothing else).
    Other {
        kind: u8,
        code: u8,
    },
}

/// Where a Neighbor Advertisement goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NaDestination {
    /// The answer to a solicitation from `ip` (its link-layer address
    /// option or, without one, its Ethernet source, is `mac`): Solicited and
    /// Override flags, unicast to the solicitor. When `ip` is `::` (a
    /// Duplicate Address Detection probe) it goes to all nodes instead,
    /// Override flag only (RFC 4861 7.2.4).
    Solicited { mac: Mac, ip: Ipv6Addr },
    /// Unsolicited, to all nodes (`ff02::1`, `33:33:00:00:00:01`), Override
    /// flag only: taking over an address (RFC 4861 7.2.6).
    AllNodes,
}

/// The solicited-node multicast address of `ip` (RFC 4291 2.7.1):
/// `ff02::1:ff00:0/104` with the low 24 bits of `ip`.
pub fn solicited_node_multicast(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// IPv6 extension headers (IANA's "IPv6 Extension Header Types"): a
/// packet with one is refused, not looked into.
fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

/// The ones' complement sum (folded to 16 bits) of the IPv6 pseudo-header
/// for an ICMPv6 `message` from `source` to `destination`, and of
/// `message` itself.
fn ones_complement_sum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut words = bytes.chunks_exact(2);
        for w in &mut words {
            if let [hi, lo] = w {
                sum += u64::from(u16::from_be_bytes([*hi, *lo]));
            }
        }
        if let [last] = words.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    };
    add(&source.octets());
    add(&destination.octets());
    // Upper-layer packet length (32 bits), three zero bytes, next header.
    // An ICMPv6 message in one frame is far shorter than 4 GiB.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 0xffff.
    u16::try_from(sum).unwrap_or(0xffff)
}

/// The checksum to put in an ICMPv6 `message` whose checksum field (bytes
/// 2 and 3) is zero.
pub fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    !ones_complement_sum(source, destination, message)
}

/// A message with its checksum in place sums to `0xffff` (negative zero).
fn checksum_is_valid(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> bool {
    ones_complement_sum(source, destination, message) == 0xffff
}

fn ipv6(bytes: &[u8]) -> Option<Ipv6Addr> {
    let sixteen: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
    Some(Ipv6Addr::from(sixteen))
}

/// Reads the options after a solicitation's or advertisement's fixed part
/// and returns the link-layer address option of type `wanted`. Every
/// option must be at least one unit (8 bytes) and fit; options of other
/// types are skipped (RFC 4861 4.6, 7.1.1); the wanted one, for Ethernet,
/// is one unit holding a unicast address, at most once.
fn link_layer_option(mut options: &[u8], wanted: u8) -> Result<Option<Mac>, PacketError> {
    let mut found = None;
    while let Some(&kind) = options.first() {
        let Some(&units) = options.get(1) else {
            return Err(PacketError::OptionOverrun {
                kind,
                need: 8,
                have: options.len(),
            });
        };
        if units == 0 {
            return Err(PacketError::OptionLengthZero);
        }
        let need = usize::from(units) * 8;
        let (Some(option), Some(rest)) = (options.get(..need), options.get(need..)) else {
            return Err(PacketError::OptionOverrun {
                kind,
                need,
                have: options.len(),
            });
        };
        if kind == wanted {
            if units != 1 {
                return Err(PacketError::LinkLayerOptionLength(units));
            }
            let Some(mac) = option.get(2..).and_then(Mac::read) else {
                return Err(PacketError::LinkLayerOptionLength(units));
            };
            if mac.is_group() || mac == Mac::ZERO {
                return Err(PacketError::LinkLayerAddress(mac));
            }
            if found.is_some() {
                return Err(PacketError::DuplicateLinkLayerOption(kind));
            }
            found = Some(mac);
        }
        options = rest;
    }
    Ok(found)
}

/// Reads an IPv6 frame (ethertype 0x86dd).
///
/// `Ok(None)` when the packet is well-formed as far as we look but carries
/// no ICMPv6 (its next header is an upper layer such as TCP or UDP).
/// Refused: a packet shorter than its header or than its payload length
/// says (bytes beyond the payload length are Ethernet padding and
/// ignored), a version other than 6, an extension header, a multicast
/// source, an ICMPv6 message shorter than 4 bytes or with a wrong
/// checksum. Solicitations and advertisements are held to RFC 4861 7.1 on
/// top: hop limit 255, code 0, at least 24 bytes, a target that is not
/// multicast, well-formed options; a solicitation from `::` is to the
/// target's solicited-node address and has no source link-layer address
/// option; a solicited advertisement is not multicast.
pub fn parse(frame: &[u8]) -> Result<Option<NdpMessage>, PacketError> {
    let (header, packet) = ethernet::parse(frame, ETHERTYPE_IPV6)?;
    let (Some(ip), Some(after_header)) =
        (packet.get(..IPV6_HEADER_LEN), packet.get(IPV6_HEADER_LEN..))
    else {
        return Err(PacketError::Truncated {
            what: "IPv6 header",
            need: IPV6_HEADER_LEN,
            have: packet.len(),
        });
    };
    let (Some(&first), Some(&len_hi), Some(&len_lo), Some(&next_header), Some(&hop_limit)) =
        (ip.first(), ip.get(4), ip.get(5), ip.get(6), ip.get(7))
    else {
        return Err(PacketError::Truncated {
            what: "IPv6 header",
            need: IPV6_HEADER_LEN,
            have: packet.len(),
        });
    };
    let version = first >> 4;
    if version != 6 {
        return Err(PacketError::IpVersion(version));
    }
    let declared = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let Some(message) = after_header.get(..declared) else {
        return Err(PacketError::PayloadLength {
            declared,
            present: after_header.len(),
        });
    };
    if next_header != NEXT_HEADER_ICMPV6 {
        if is_extension_header(next_header) {
            return Err(PacketError::ExtensionHeader(next_header));
        }
        return Ok(None);
    }
    let (Some(source_ip), Some(destination_ip)) =
        (ip.get(8..).and_then(ipv6), ip.get(24..).and_then(ipv6))
    else {
        return Err(PacketError::Truncated {
            what: "IPv6 header",
            need: IPV6_HEADER_LEN,
            have: packet.len(),
        });
    };
    if source_ip.is_multicast() {
        return Err(PacketError::MulticastSource(source_ip));
    }
    let (Some(&kind), Some(&code), Some(&sum_hi), Some(&sum_lo)) = (
        message.first(),
        message.get(1),
        message.get(2),
        message.get(3),
    ) else {
        return Err(PacketError::Truncated {
            what: "ICMPv6 header",
            need: 4,
            have: message.len(),
        });
    };
    if !checksum_is_valid(source_ip, destination_ip, message) {
        return Err(PacketError::Checksum {
            found: u16::from_be_bytes([sum_hi, sum_lo]),
        });
    }
    if kind != ICMPV6_NEIGHBOR_SOLICITATION && kind != ICMPV6_NEIGHBOR_ADVERTISEMENT {
        return Ok(Some(NdpMessage::Other { kind, code }));
    }
    if hop_limit != ND_HOP_LIMIT {
        return Err(PacketError::HopLimit(hop_limit));
    }
    if code != 0 {
        return Err(PacketError::IcmpCode(code));
    }
    let (Some(&flags), Some(target), Some(options)) = (
        message.get(4),
        message.get(8..).and_then(ipv6),
        message.get(ND_HEADER_LEN..),
    ) else {
        return Err(PacketError::Truncated {
            what: "Neighbor Discovery message",
            need: ND_HEADER_LEN,
            have: message.len(),
        });
    };
    if target.is_multicast() {
        return Err(PacketError::MulticastTarget(target));
    }
    if kind == ICMPV6_NEIGHBOR_SOLICITATION {
        let source_link_addr = link_layer_option(options, OPTION_SOURCE_LINK_ADDR)?;
        if source_ip.is_unspecified() {
            if destination_ip != solicited_node_multicast(target) {
                return Err(PacketError::DadDestination(destination_ip));
            }
            if source_link_addr.is_some() {
                return Err(PacketError::LinkLayerOptionFromUnspecified);
            }
        }
        return Ok(Some(NdpMessage::Solicitation(NeighborSolicitation {
            source_mac: header.source,
            source_ip,
            target,
            source_link_addr,
        })));
    }
    let target_link_addr = link_layer_option(options, OPTION_TARGET_LINK_ADDR)?;
    let solicited = flags & FLAG_SOLICITED != 0;
    if solicited && destination_ip.is_multicast() {
        return Err(PacketError::SolicitedToMulticast(destination_ip));
    }
    Ok(Some(NdpMessage::Advertisement(NeighborAdvertisement {
        destination_mac: header.destination,
        source_mac: header.source,
        source_ip,
        destination_ip,
        router: flags & FLAG_ROUTER != 0,
        solicited,
        override_flag: flags & FLAG_OVERRIDE != 0,
        target,
        target_link_addr,
    })))
}

/// A Neighbor Advertisement from `source_ip` at `ours`: "`target` is at
/// `ours`", with a target link-layer address option, not a router's, sent
/// as [`NaDestination`] says.
pub fn neighbor_advertisement(
    ours: Mac,
    source_ip: Ipv6Addr,
    target: Ipv6Addr,
    to: NaDestination,
) -> Vec<u8> {
    let (mac, ip, flags) = match to {
        NaDestination::Solicited { mac, ip } if !ip.is_unspecified() => {
            (mac, ip, FLAG_SOLICITED | FLAG_OVERRIDE)
        }
        NaDestination::Solicited { .. } | NaDestination::AllNodes => {
            (Mac::ipv6_multicast(ALL_NODES), ALL_NODES, FLAG_OVERRIDE)
        }
    };
    let mut message = Vec::with_capacity(ND_HEADER_LEN + 8);
    message.extend_from_slice(&[ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0]);
    message.extend_from_slice(&target.octets());
    message.extend_from_slice(&[OPTION_TARGET_LINK_ADDR, 1]);
    message.extend_from_slice(&ours.0);
    let checksum = icmpv6_checksum(source_ip, ip, &message).to_be_bytes();
    if let Some(field) = message.get_mut(2..4) {
        field.copy_from_slice(&checksum);
    }

    let payload_len = IPV6_HEADER_LEN + message.len();
    let mut out = ethernet::start(mac, ours, ETHERTYPE_IPV6, payload_len);
    // Version 6, traffic class 0, flow label 0.
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    // The message is 32 bytes: the cast cannot fail.
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT]);
    out.extend_from_slice(&source_ip.octets());
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&message);
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub const ASKER: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    pub const OURS: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
    const ASKER_IP: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0x00ff, 0xfe12, 0x3456);
    const TARGET: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xc8);

    /// A solicitation from fe80::5054:ff:fe12:3456 (52:54:00:12:34:56) for
    /// 2001:db8::c8, to its solicited-node address, with a source
    /// link-layer address option. 86 bytes.
    pub fn solicitation_frame() -> Vec<u8> {
        vec![
            0x33, 0x33, 0xff, 0x00, 0x00, 0xc8, // Ethernet destination: 33:33 + ff00:c8
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // Ethernet source
            0x86, 0xdd, // ethertype IPv6
            0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
            0x00, 0x20, // payload length 32
            0x3a, // next header: ICMPv6
            0xff, // hop limit 255
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34,
            0x56, // source
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00,
            0xc8, // ff02::1:ff00:c8
            0x87, // type 135: Neighbor Solicitation
            0x00, // code
            0x41, 0x5c, // checksum (computed independently of this module)
            0x00, 0x00, 0x00, 0x00, // reserved
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0xc8, // target 2001:db8::c8
            0x01, 0x01, // option: source link-layer address, 1 unit
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        ]
    }

    /// Duplicate Address Detection for 2001:db8::c8: from ::, no option.
    fn dad_frame() -> Vec<u8> {
        let mut f = vec![
            0x33, 0x33, 0xff, 0x00, 0x00, 0xc8, // Ethernet destination
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // Ethernet source
            0x86, 0xdd, // IPv6
            0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff, // payload length 24
        ];
        f.extend_from_slice(&[0; 16]); // source ::
        f.extend_from_slice(&solicited_node_multicast(TARGET).octets());
        f.extend_from_slice(&[0x87, 0x00, 0x4b, 0x5f, 0, 0, 0, 0]); // checksum 0x4b5f
        f.extend_from_slice(&TARGET.octets());
        f
    }

    /// The ICMPv6 checksum, written apart from the module's: 32-bit sum of
    /// big-endian words, folded.
    fn reference_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&(message.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        bytes.extend_from_slice(message);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|w| (u32::from(w[0]) << 8) | u32::from(w[1]))
            .sum();
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// A full IPv6 ICMPv6 frame with the right checksum and length.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        eth_src: Mac,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        kind: u8,
        code: u8,
        flags: u8,
        target: Ipv6Addr,
        options: &[u8],
    ) -> Vec<u8> {
        let mut message = vec![kind, code, 0, 0, flags, 0, 0, 0];
        message.extend_from_slice(&target.octets());
        message.extend_from_slice(options);
        let sum = reference_checksum(src, dst, &message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = Vec::new();
        f.extend_from_slice(&Mac::ipv6_multicast(dst).0);
        f.extend_from_slice(&eth_src.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(message.len() as u16).to_be_bytes());
        f.extend_from_slice(&[58, hop_limit]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&message);
        f
    }

    fn ns(options: &[u8]) -> Vec<u8> {
        build(
            ASKER,
            ASKER_IP,
            solicited_node_multicast(TARGET),
            255,
            135,
            0,
            0,
            TARGET,
            options,
        )
    }

    const SLLA: [u8; 8] = [1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn expected() -> NeighborSolicitation {
        NeighborSolicitation {
            source_mac: ASKER,
            source_ip: ASKER_IP,
            target: TARGET,
            source_link_addr: Some(ASKER),
        }
    }

    /// What a test reads off a Neighbor Advertisement by fixed offsets,
    /// independently of [`parse`].
    #[derive(Debug, PartialEq, Eq)]
    pub struct ReadNa {
        pub eth_dst: Mac,
        pub eth_src: Mac,
        pub src: Ipv6Addr,
        pub dst: Ipv6Addr,
        pub flags: u8,
        pub target: Ipv6Addr,
        pub tlla: Mac,
    }

    pub fn read_na(f: &[u8]) -> ReadNa {
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[12..22], &[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255][..]);
        let mac = |at: usize| Mac(f[at..at + 6].try_into().unwrap());
        let ip = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
        let message = &f[54..];
        assert_eq!(&message[..2], &[136, 0][..]);
        assert_eq!(&message[5..8], &[0, 0, 0][..], "reserved");
        assert_eq!(&message[24..26], &[2, 1][..], "target link-layer option");
        let mut zeroed = message.to_vec();
        zeroed[2..4].fill(0);
        assert_eq!(
            u16::from_be_bytes([message[2], message[3]]),
            reference_checksum(ip(22), ip(38), &zeroed),
            "checksum"
        );
        ReadNa {
            eth_dst: mac(0),
            eth_src: mac(6),
            src: ip(22),
            dst: ip(38),
            flags: message[4],
            target: ip(62),
            tlla: mac(80),
        }
    }

    #[test]
    fn parses_a_solicitation() {
        assert_eq!(
            parse(&solicitation_frame()),
            Ok(Some(NdpMessage::Solicitation(expected())))
        );
        // The builder above writes the same bytes.
        assert_eq!(ns(&SLLA), solicitation_frame());
    }

    #[test]
    fn checksum_matches_known_values() {
        let f = solicitation_frame();
        let mut message = f[54..].to_vec();
        message[2..4].fill(0);
        let dst = solicited_node_multicast(TARGET);
        assert_eq!(icmpv6_checksum(ASKER_IP, dst, &message), 0x415c);
        assert_eq!(reference_checksum(ASKER_IP, dst, &message), 0x415c);
        let mut dad = dad_frame()[54..].to_vec();
        dad[2..4].fill(0);
        assert_eq!(icmpv6_checksum(Ipv6Addr::UNSPECIFIED, dst, &dad), 0x4b5f);
        // An odd length pads with a zero byte.
        assert_eq!(
            icmpv6_checksum(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED, &[0x12]),
            !(0x1200u16 + 1 + 58)
        );
    }

    #[test]
    fn parses_duplicate_address_detection() {
        assert_eq!(
            parse(&dad_frame()),
            Ok(Some(NdpMessage::Solicitation(NeighborSolicitation {
                source_mac: ASKER,
                source_ip: Ipv6Addr::UNSPECIFIED,
                target: TARGET,
                source_link_addr: None,
            })))
        );
    }

    #[test]
    fn solicitation_without_option_unicast_and_padded() {
        // Neighbor Unreachability Detection: unicast to the target.
        let mut f = build(ASKER, ASKER_IP, TARGET, 255, 135, 0, 0, TARGET, &[]);
        let want = NeighborSolicitation {
            source_link_addr: None,
            ..expected()
        };
        assert_eq!(parse(&f), Ok(Some(NdpMessage::Solicitation(want))));
        f.extend_from_slice(&[0xee; 6]); // bytes past the payload length
        assert_eq!(parse(&f), Ok(Some(NdpMessage::Solicitation(want))));
    }

    #[test]
    fn ignores_unknown_options() {
        // A nonce (type 14, RFC 3971), a target link-layer address option
        // (not one for solicitations), then ours.
        let mut options = vec![14, 1, 1, 2, 3, 4, 5, 6, 2, 1, 9, 9, 9, 9, 9, 9];
        options.extend_from_slice(&SLLA);
        options.extend_from_slice(&[200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(&ns(&options)),
            Ok(Some(NdpMessage::Solicitation(expected())))
        );
    }

    #[test]
    fn other_messages_are_not_solicitations() {
        // Echo request.
        let f = build(ASKER, ASKER_IP, TARGET, 64, 128, 0, 0, TARGET, &[]);
        assert_eq!(
            parse(&f),
            Ok(Some(NdpMessage::Other { kind: 128, code: 0 }))
        );
        // UDP: not ICMPv6 at all.
        let mut f = solicitation_frame();
        f[20] = 17;
        assert_eq!(parse(&f), Ok(None));
    }

    #[test]
    fn advertisements_are_byte_exact() {
        let solicited = neighbor_advertisement(
            OURS,
            TARGET,
            TARGET,
            NaDestination::Solicited {
                mac: ASKER,
                ip: ASKER_IP,
            },
        );
        let expected: Vec<u8> = [
            &[0x52, 0x54, 0x00, 0x12, 0x34, 0x56][..], // to the solicitor
            &OURS.0,
            &[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255],
            &TARGET.octets(),
            &ASKER_IP.octets(),
            &[136, 0, 0xd6, 0x52, 0x60, 0, 0, 0], // checksum 0xd652; S, O
            &TARGET.octets(),
            &[2, 1],
            &OURS.0,
        ]
        .concat();
        assert_eq!(solicited, expected);

        let unsolicited = neighbor_advertisement(OURS, TARGET, TARGET, NaDestination::AllNodes);
        let expected: Vec<u8> = [
            &[0x33, 0x33, 0, 0, 0, 1][..],
            &OURS.0,
            &[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255],
            &TARGET.octets(),
            &ALL_NODES.octets(),
            &[136, 0, 0x99, 0x8c, 0x20, 0, 0, 0], // checksum 0x998c; O only
            &TARGET.octets(),
            &[2, 1],
            &OURS.0,
        ]
        .concat();
        assert_eq!(unsolicited, expected);
    }

    #[test]
    fn answer_to_dad_goes_to_all_nodes() {
        let f = neighbor_advertisement(
            OURS,
            TARGET,
            TARGET,
            NaDestination::Solicited {
                mac: ASKER,
                ip: Ipv6Addr::UNSPECIFIED,
            },
        );
        assert_eq!(
            read_na(&f),
            ReadNa {
                eth_dst: Mac([0x33, 0x33, 0, 0, 0, 1]),
                eth_src: OURS,
                src: TARGET,
                dst: ALL_NODES,
                flags: FLAG_OVERRIDE,
                target: TARGET,
                tlla: OURS,
            }
        );
        assert_eq!(
            f,
            neighbor_advertisement(OURS, TARGET, TARGET, NaDestination::AllNodes)
        );
    }

    #[test]
    fn solicited_node_addresses() {
        assert_eq!(
            solicited_node_multicast("2001:db8::1:2345:6789".parse().unwrap()),
            "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            solicited_node_multicast(Ipv6Addr::UNSPECIFIED),
            "ff02::1:ff00:0".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            Mac::ipv6_multicast(solicited_node_multicast(TARGET)),
            Mac([0x33, 0x33, 0xff, 0, 0, 0xc8])
        );
    }

    #[test]
    fn refuses_every_malformation() {
        let snm = solicited_node_multicast(TARGET);
        let ff02_1 = ALL_NODES;
        let mc_target: Ipv6Addr = "ff05::2".parse().unwrap();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = solicitation_frame();
            f(&mut v);
            v
        };
        let cases: Vec<(&str, Vec<u8>, PacketError)> = vec![
            (
                "short IPv6 header",
                solicitation_frame()[..53].to_vec(),
                PacketError::Truncated {
                    what: "IPv6 header",
                    need: 40,
                    have: 39,
                },
            ),
            (
                "version 4",
                with(&|f| f[14] = 0x45),
                PacketError::IpVersion(4),
            ),
            (
                "payload length past the frame",
                with(&|f| f[19] = 0x21),
                PacketError::PayloadLength {
                    declared: 33,
                    present: 32,
                },
            ),
            (
                "frame cut short",
                solicitation_frame()[..85].to_vec(),
                PacketError::PayloadLength {
                    declared: 32,
                    present: 31,
                },
            ),
            (
                "hop-by-hop options header",
                with(&|f| f[20] = 0),
                PacketError::ExtensionHeader(0),
            ),
            (
                "fragment header",
                with(&|f| f[20] = 44),
                PacketError::ExtensionHeader(44),
            ),
            (
                "VLAN tag",
                with(&|f| f[12..14].copy_from_slice(&[0x81, 0x00])),
                PacketError::VlanTagged(0x8100),
            ),
            (
                "group Ethernet source",
                with(&|f| f[6] |= 1),
                PacketError::GroupSource(Mac([0x53, 0x54, 0x00, 0x12, 0x34, 0x56])),
            ),
            (
                "hop limit 254",
                with(&|f| f[21] = 254),
                PacketError::HopLimit(254),
            ),
            (
                "bad checksum",
                with(&|f| f[57] ^= 1),
                PacketError::Checksum { found: 0x415d },
            ),
            (
                "option byte changed",
                with(&|f| f[85] ^= 0x80),
                PacketError::Checksum { found: 0x415c },
            ),
            (
                "multicast source",
                build(ASKER, ff02_1, snm, 255, 135, 0, 0, TARGET, &SLLA),
                PacketError::MulticastSource(ff02_1),
            ),
            (
                "ICMPv6 header cut",
                {
                    let mut f = solicitation_frame();
                    f.truncate(57);
                    f[18..20].copy_from_slice(&[0, 3]);
                    f
                },
                PacketError::Truncated {
                    what: "ICMPv6 header",
                    need: 4,
                    have: 3,
                },
            ),
            (
                "code 1",
                build(ASKER, ASKER_IP, snm, 255, 135, 1, 0, TARGET, &SLLA),
                PacketError::IcmpCode(1),
            ),
            (
                "solicitation of 20 bytes",
                {
                    // A correct checksum over the 20 bytes that are there.
                    let mut f = ns(&[]);
                    f.truncate(74);
                    f[18..20].copy_from_slice(&[0, 20]);
                    let mut m = f[54..].to_vec();
                    m[2..4].fill(0);
                    let sum = reference_checksum(ASKER_IP, snm, &m);
                    f[56..58].copy_from_slice(&sum.to_be_bytes());
                    f
                },
                PacketError::Truncated {
                    what: "Neighbor Discovery message",
                    need: 24,
                    have: 20,
                },
            ),
            (
                "multicast target",
                build(ASKER, ASKER_IP, snm, 255, 135, 0, 0, mc_target, &SLLA),
                PacketError::MulticastTarget(mc_target),
            ),
            (
                "DAD to all nodes",
                build(
                    ASKER,
                    Ipv6Addr::UNSPECIFIED,
                    ff02_1,
                    255,
                    135,
                    0,
                    0,
                    TARGET,
                    &[],
                ),
                PacketError::DadDestination(ff02_1),
            ),
            (
                "DAD to another solicited-node address",
                build(
                    ASKER,
                    Ipv6Addr::UNSPECIFIED,
                    solicited_node_multicast(ASKER_IP),
                    255,
                    135,
                    0,
                    0,
                    TARGET,
                    &[],
                ),
                PacketError::DadDestination(solicited_node_multicast(ASKER_IP)),
            ),
            (
                "DAD with a source link-layer address",
                build(
                    ASKER,
                    Ipv6Addr::UNSPECIFIED,
                    snm,
                    255,
                    135,
                    0,
                    0,
                    TARGET,
                    &SLLA,
                ),
                PacketError::LinkLayerOptionFromUnspecified,
            ),
            (
                "option of length 0",
                ns(&[1, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                PacketError::OptionLengthZero,
            ),
            (
                "unknown option of length 0",
                ns(&[99, 0, 0, 0, 0, 0, 0, 0]),
                PacketError::OptionLengthZero,
            ),
            (
                "option past the end",
                ns(&[14, 2, 0, 0, 0, 0, 0, 0]),
                PacketError::OptionOverrun {
                    kind: 14,
                    need: 16,
                    have: 8,
                },
            ),
            (
                "lone option byte",
                ns(&[1]),
                PacketError::OptionOverrun {
                    kind: 1,
                    need: 8,
                    have: 1,
                },
            ),
            (
                "partial option",
                ns(&SLLA[..6]),
                PacketError::OptionOverrun {
                    kind: 1,
                    need: 8,
                    have: 6,
                },
            ),
            (
                "two-unit link-layer address",
                ns(&[
                    1, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0,
                ]),
                PacketError::LinkLayerOptionLength(2),
            ),
            (
                "duplicate link-layer address",
                ns(&[SLLA, SLLA].concat()),
                PacketError::DuplicateLinkLayerOption(1),
            ),
            (
                "multicast link-layer address",
                ns(&[1, 1, 0x33, 0x33, 0, 0, 0, 1]),
                PacketError::LinkLayerAddress(Mac([0x33, 0x33, 0, 0, 0, 1])),
            ),
            (
                "zero link-layer address",
                ns(&[1, 1, 0, 0, 0, 0, 0, 0]),
                PacketError::LinkLayerAddress(Mac::ZERO),
            ),
            (
                "solicited advertisement to multicast",
                build(
                    OURS,
                    TARGET,
                    ff02_1,
                    255,
                    136,
                    0,
                    FLAG_SOLICITED | FLAG_OVERRIDE,
                    TARGET,
                    &[],
                ),
                PacketError::SolicitedToMulticast(ff02_1),
            ),
            (
                "advertisement with a hop limit of 64",
                build(OURS, TARGET, ff02_1, 64, 136, 0, FLAG_OVERRIDE, TARGET, &[]),
                PacketError::HopLimit(64),
            ),
        ];
        for (name, frame, error) in cases {
            assert_eq!(parse(&frame), Err(error), "{name}");
        }
    }

    /// One byte of a valid solicitation `original` (parsed as `want`)
    /// changed at `at`: the parser refuses the result, or reads what is
    /// now there. Bytes outside the checksum (Ethernet header, traffic
    /// class and flow label) may change the reading; a change in the
    /// payload length may at most drop options, when the checksum still
    /// happens to match; nothing else gets through.
    pub fn check_corruption(original: &[u8], want: &NeighborSolicitation, at: usize, xor: u8) {
        let mut f = original.to_vec();
        f[at] ^= xor;
        match parse(&f) {
            Err(_) => {}
            Ok(None) => assert!(
                at == 20,
                "byte {at} ^ {xor:#04x}: no longer IPv6 ICMPv6, yet not refused"
            ),
            Ok(Some(NdpMessage::Solicitation(got))) => {
                let mac = Mac(f[6..12].try_into().unwrap());
                if at == 18 || at == 19 {
                    assert_eq!((got.source_ip, got.target), (want.source_ip, want.target));
                    assert!(
                        got.source_link_addr.is_none()
                            || got.source_link_addr == want.source_link_addr
                    );
                } else {
                    assert!(
                        at < 12 || (14..18).contains(&at),
                        "byte {at} ^ {xor:#04x} is checked, yet accepted"
                    );
                    assert_eq!(
                        got,
                        NeighborSolicitation {
                            source_mac: mac,
                            ..*want
                        }
                    );
                }
            }
            Ok(Some(other)) => panic!("byte {at} ^ {xor:#04x}: read as {other:?}"),
        }
    }

    #[test]
    fn every_single_byte_corruption_is_refused_or_consistent() {
        for (frame, want) in [
            (solicitation_frame(), expected()),
            (
                dad_frame(),
                NeighborSolicitation {
                    source_mac: ASKER,
                    source_ip: Ipv6Addr::UNSPECIFIED,
                    target: TARGET,
                    source_link_addr: None,
                },
            ),
        ] {
            let mut accepted = 0;
            for at in 0..frame.len() {
                for xor in 1..=255u8 {
                    check_corruption(&frame, &want, at, xor);
                    let mut f = frame.clone();
                    f[at] ^= xor;
                    accepted += usize::from(matches!(parse(&f), Ok(Some(_))));
                }
            }
            // The Ethernet destination, most of the source, traffic class
            // and flow label: not covered by the checksum, so accepted.
            assert!(accepted > 12 * 200, "{accepted}");
        }
    }

    fn unicast_mac() -> impl Strategy<Value = Mac> {
        any::<[u8; 6]>()
            .prop_map(|mut m| {
                m[0] &= 0xfe;
                Mac(m)
            })
            .prop_filter("not zero", |m| *m != Mac::ZERO)
    }

    fn unicast_ip() -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>()
            .prop_map(Ipv6Addr::from)
            .prop_filter("not multicast", |ip| !ip.is_multicast())
    }

    /// A valid solicitation and how it must parse.
    pub fn valid_solicitation() -> impl Strategy<Value = (Vec<u8>, NeighborSolicitation)> {
        (
            unicast_mac(),
            prop_oneof![Just(Ipv6Addr::UNSPECIFIED), unicast_ip()],
            unicast_ip(),
            proptest::option::of(unicast_mac()),
            any::<bool>(),
            proptest::collection::vec((3u8..=255, 1u8..=3), 0..3),
        )
            .prop_map(|(eth_src, src, target, slla, unicast, unknown)| {
                let slla = if src.is_unspecified() { None } else { slla };
                let dst = if unicast && !src.is_unspecified() {
                    target
                } else {
                    solicited_node_multicast(target)
                };
                let mut options = Vec::new();
                for (kind, units) in unknown {
                    options.push(kind);
                    options.push(units);
                    options.resize(options.len() + usize::from(units) * 8 - 2, kind);
                }
                if let Some(mac) = slla {
                    options.extend_from_slice(&[1, 1]);
                    options.extend_from_slice(&mac.0);
                }
                let frame = build(eth_src, src, dst, 255, 135, 0, 0, target, &options);
                let ns = NeighborSolicitation {
                    source_mac: eth_src,
                    source_ip: src,
                    target,
                    source_link_addr: slla,
                };
                (frame, ns)
            })
    }

    proptest! {
        #[test]
        fn valid_solicitations_round_trip(
            (frame, want) in valid_solicitation(),
            ours in unicast_mac(),
            our_ip in unicast_ip(),
        ) {
            prop_assert_eq!(parse(&frame), Ok(Some(NdpMessage::Solicitation(want))));
            let mac = want.source_link_addr.unwrap_or(want.source_mac);
            let to = NaDestination::Solicited { mac, ip: want.source_ip };
            let reply = neighbor_advertisement(ours, our_ip, want.target, to);
            let read = read_na(&reply);
            let (eth_dst, dst, flags) = if want.source_ip.is_unspecified() {
                (Mac([0x33, 0x33, 0, 0, 0, 1]), ALL_NODES, FLAG_OVERRIDE)
            } else {
                (mac, want.source_ip, FLAG_SOLICITED | FLAG_OVERRIDE)
            };
            prop_assert_eq!(read, ReadNa {
                eth_dst, eth_src: ours, src: our_ip, dst, flags, target: want.target, tlla: ours,
            });
            // Our own parser accepts the advertisement, with the same reading.
            prop_assert_eq!(parse(&reply), Ok(Some(NdpMessage::Advertisement(NeighborAdvertisement {
                destination_mac: eth_dst,
                source_mac: ours,
                source_ip: our_ip,
                destination_ip: dst,
                router: false,
                solicited: flags & FLAG_SOLICITED != 0,
                override_flag: true,
                target: want.target,
                target_link_addr: Some(ours),
            }))));
        }

        #[test]
        fn single_byte_corruptions_are_refused_or_consistent(
            (frame, want) in valid_solicitation(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            check_corruption(&frame, &want, at.index(frame.len()), xor);
        }
    }
}

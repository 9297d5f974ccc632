//! ARP over Ethernet for IPv4 (RFC 826), with the probe and announcement
//! conventions of RFC 5227.
//!
//! ```text
//!  0       2       4   5   6       8           14      18          24      28
//! | htype | ptype |hln|pln| oper  | sender MAC |sndr IP| target MAC |tgt IP |
//! |   1   |0x0800 | 6 | 4 |1 or 2 |            |       |            |       |
//! ```

use std::net::Ipv4Addr;

use super::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use super::{Mac, PacketError};

/// The ARP packet for Ethernet and IPv4.
pub const PACKET_LEN: usize = 28;
pub const HTYPE_ETHERNET: u16 = 1;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// Who has `target_ip`? Tell `sender_ip` at `sender_mac`.
///
/// `sender_ip` is `0.0.0.0` in an RFC 5227 probe.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpRequest {
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// Any well-formed ARP packet for Ethernet and IPv4.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpPacket {
    /// The Ethernet header's addresses.
    pub destination: Mac,
    pub source: Mac,
    pub operation: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

fn ipv4(bytes: &[u8]) -> Option<Ipv4Addr> {
    let four: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(four))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let two: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(two))
}

/// Reads an ARP frame (ethertype 0x0806) for Ethernet and IPv4: htype 1,
/// ptype 0x0800, address lengths 6 and 4. Bytes after the 28 of the ARP
/// packet are Ethernet padding and ignored. The sender must be a unicast
/// hardware address and not a multicast or broadcast IP address (it may be
/// `0.0.0.0`, a probe); the target IP of a request must be a unicast
/// address.
pub fn parse(frame: &[u8]) -> Result<ArpPacket, PacketError> {
    let (header, payload) = ethernet::parse(frame, ETHERTYPE_ARP)?;
    let truncated = || PacketError::Truncated {
        what: "ARP packet",
        need: PACKET_LEN,
        have: payload.len(),
    };
    let p = payload.get(..PACKET_LEN).ok_or_else(truncated)?;
    let (Some(htype), Some(ptype), Some(&hlen), Some(&plen), Some(operation)) =
        (u16_at(p, 0), u16_at(p, 2), p.get(4), p.get(5), u16_at(p, 6))
    else {
        return Err(truncated());
    };
    if htype != HTYPE_ETHERNET {
        return Err(PacketError::ArpHardwareType(htype));
    }
    if ptype != ETHERTYPE_IPV4 {
        return Err(PacketError::ArpProtocolType(ptype));
    }
    if (hlen, plen) != (6, 4) {
        return Err(PacketError::ArpAddressLengths { hlen, plen });
    }
    if operation == 0 {
        return Err(PacketError::ArpReservedOperation);
    }
    let (Some(sender_mac), Some(sender_ip), Some(target_mac), Some(target_ip)) = (
        p.get(8..).and_then(Mac::read),
        p.get(14..).and_then(ipv4),
        p.get(18..).and_then(Mac::read),
        p.get(24..).and_then(ipv4),
    ) else {
        return Err(truncated());
    };
    if sender_mac.is_group() || sender_mac == Mac::ZERO {
        return Err(PacketError::ArpSenderMac(sender_mac));
    }
    if sender_ip.is_multicast() || sender_ip.is_broadcast() {
        return Err(PacketError::ArpSenderIp(sender_ip));
    }
    // A reply to a probe goes to 0.0.0.0; a request asks about a unicast
    // address.
    if operation == OP_REQUEST
        && (target_ip.is_unspecified() || target_ip.is_multicast() || target_ip.is_broadcast())
    {
        return Err(PacketError::ArpTargetIp(target_ip));
    }
    Ok(ArpPacket {
        destination: header.destination,
        source: header.source,
        operation,
        sender_mac,
        sender_ip,
        target_mac,
        target_ip,
    })
}

/// Reads an ARP frame and keeps it if it asks a question: a request
/// (probes included) that is not gratuitous (sender IP = target IP).
pub fn parse_request(frame: &[u8]) -> Result<Option<ArpRequest>, PacketError> {
    let packet = parse(frame)?;
    if packet.operation != OP_REQUEST || packet.sender_ip == packet.target_ip {
        return Ok(None);
    }
    Ok(Some(ArpRequest {
        sender_mac: packet.sender_mac,
        sender_ip: packet.sender_ip,
        target_ip: packet.target_ip,
    }))
}

/// A full ARP frame, padded to the Ethernet minimum.
fn frame(
    destination: Mac,
    ours: Mac,
    operation: u16,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut out = ethernet::start(destination, ours, ETHERTYPE_ARP, PACKET_LEN);
    out.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    out.extend_from_slice(&[6, 4]);
    out.extend_from_slice(&operation.to_be_bytes());
    out.extend_from_slice(&ours.0);
    out.extend_from_slice(&sender_ip.octets());
    out.extend_from_slice(&target_mac.0);
    out.extend_from_slice(&target_ip.octets());
    ethernet::pad(&mut out);
    out
}

/// The answer to `request`: "`request.target_ip` is at `ours`", sent to
/// the requester's hardware address alone. For a probe (sender
/// `0.0.0.0`) the reply's target IP is `0.0.0.0` too, as RFC 826 has it
/// (the target fields are the request's sender fields); the prober
/// recognises the conflict by the sender IP (RFC 5227 2.1.1).
pub fn arp_reply(ours: Mac, request: &ArpRequest) -> Vec<u8> {
    frame(
        request.sender_mac,
        ours,
        OP_REPLY,
        request.target_ip,
        request.sender_mac,
        request.sender_ip,
    )
}

/// An ARP announcement (RFC 5227 2.3): a broadcast request with sender and
/// target IP both `ip`, target hardware address zero. Every host on the
/// segment updates an entry it has for `ip` to `ours`.
pub fn gratuitous_arp(ours: Mac, ip: Ipv4Addr) -> Vec<u8> {
    frame(Mac::BROADCAST, ours, OP_REQUEST, ip, Mac::ZERO, ip)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub const ASKER: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    pub const OURS: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);

    /// A request from 192.0.2.10 (52:54:00:12:34:56) for 192.0.2.200,
    /// broadcast, padded to 60 bytes as it arrives from most NICs.
    pub fn request_frame() -> Vec<u8> {
        let mut f = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // Ethernet source
            0x08, 0x06, // ethertype ARP
            0x00, 0x01, // htype: Ethernet
            0x08, 0x00, // ptype: IPv4
            0x06, 0x04, // hlen, plen
            0x00, 0x01, // operation: request
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // sender MAC
            192, 0, 2, 10, // sender IP
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC: unknown
            192, 0, 2, 200, // target IP
        ];
        f.resize(60, 0); // padding
        f
    }

    /// Reads an ARP reply by fixed offsets, independently of [`parse`]:
    /// (Ethernet destination, source, operation, sender MAC, sender IP,
    /// target MAC, target IP).
    pub fn read_reply(f: &[u8]) -> (Mac, Mac, u16, Mac, Ipv4Addr, Mac, Ipv4Addr) {
        assert_eq!(f.len(), 60, "padded to the Ethernet minimum");
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2][..]);
        assert!(f[42..].iter().all(|&b| b == 0), "zero padding");
        let mac = |at: usize| Mac(f[at..at + 6].try_into().unwrap());
        let ip = |at: usize| Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
        (
            mac(0),
            mac(6),
            u16::from_be_bytes([f[20], f[21]]),
            mac(22),
            ip(28),
            mac(32),
            ip(38),
        )
    }

    #[test]
    fn parses_a_request() {
        let request = parse_request(&request_frame()).unwrap().unwrap();
        assert_eq!(
            request,
            ArpRequest {
                sender_mac: ASKER,
                sender_ip: Ipv4Addr::new(192, 0, 2, 10),
                target_ip: Ipv4Addr::new(192, 0, 2, 200),
            }
        );
        // Unpadded (sent by a host itself, seen before the NIC pads) too.
        assert_eq!(parse_request(&request_frame()[..42]), Ok(Some(request)));
    }

    #[test]
    fn parses_a_probe() {
        let mut f = request_frame();
        f[28..32].copy_from_slice(&[0, 0, 0, 0]);
        let probe = parse_request(&f).unwrap().unwrap();
        assert_eq!(probe.sender_ip, Ipv4Addr::UNSPECIFIED);
        let reply = arp_reply(OURS, &probe);
        let (dst, src, op, sha, spa, tha, tpa) = read_reply(&reply);
        assert_eq!((dst, src, op), (ASKER, OURS, OP_REPLY));
        assert_eq!((sha, spa), (OURS, Ipv4Addr::new(192, 0, 2, 200)));
        assert_eq!((tha, tpa), (ASKER, Ipv4Addr::UNSPECIFIED));
        // A reply may go to 0.0.0.0; a request may not ask for it.
        assert_eq!(
            parse(&reply).map(|p| p.target_ip),
            Ok(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn reply_is_byte_exact() {
        let request = parse_request(&request_frame()).unwrap().unwrap();
        let mut expected = vec![
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // to the asker only
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, // from us
            0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, //
            0x00, 0x02, // reply
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, 192, 0, 2, 200, // 192.0.2.200 is at us
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 192, 0, 2, 10, // to the asker
        ];
        expected.resize(60, 0);
        assert_eq!(arp_reply(OURS, &request), expected);
    }

    #[test]
    fn announcement_is_byte_exact_and_not_a_question() {
        let ip = Ipv4Addr::new(198, 51, 100, 7);
        let frame = gratuitous_arp(OURS, ip);
        let mut expected = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, // from us
            0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, //
            0x00, 0x01, // a request, as RFC 5227 announcements are
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, 198, 51, 100, 7, // sender: us, ip
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 51, 100, 7, // target: zero, ip
        ];
        expected.resize(60, 0);
        assert_eq!(frame, expected);
        assert_eq!(parse_request(&frame), Ok(None));
        let packet = parse(&frame).unwrap();
        assert_eq!((packet.sender_ip, packet.target_ip), (ip, ip));
        assert_eq!(packet.target_mac, Mac::ZERO);
    }

    #[test]
    fn replies_and_other_operations_are_not_questions() {
        for op in [OP_REPLY, 3, 8, 0xffff] {
            let mut f = request_frame();
            f[20..22].copy_from_slice(&op.to_be_bytes());
            assert_eq!(parse_request(&f), Ok(None), "operation {op}");
            assert_eq!(parse(&f).unwrap().operation, op);
        }
    }

    #[test]
    fn refuses_every_malformation() {
        type Corrupt = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Corrupt, PacketError)> = vec![
            (
                "htype",
                Box::new(|f| f[15] = 6),
                PacketError::ArpHardwareType(6),
            ),
            (
                "ptype",
                Box::new(|f| f[16..18].copy_from_slice(&[0x86, 0xdd])),
                PacketError::ArpProtocolType(0x86dd),
            ),
            (
                "hlen",
                Box::new(|f| f[18] = 8),
                PacketError::ArpAddressLengths { hlen: 8, plen: 4 },
            ),
            (
                "plen",
                Box::new(|f| f[19] = 16),
                PacketError::ArpAddressLengths { hlen: 6, plen: 16 },
            ),
            (
                "operation 0",
                Box::new(|f| f[21] = 0),
                PacketError::ArpReservedOperation,
            ),
            (
                "group sender MAC",
                Box::new(|f| f[22] = 0x01),
                PacketError::ArpSenderMac(Mac([0x01, 0x54, 0x00, 0x12, 0x34, 0x56])),
            ),
            (
                "zero sender MAC",
                Box::new(|f| f[22..28].fill(0)),
                PacketError::ArpSenderMac(Mac::ZERO),
            ),
            (
                "broadcast sender IP",
                Box::new(|f| f[28..32].fill(255)),
                PacketError::ArpSenderIp(Ipv4Addr::BROADCAST),
            ),
            (
                "multicast sender IP",
                Box::new(|f| f[28..32].copy_from_slice(&[224, 0, 0, 1])),
                PacketError::ArpSenderIp(Ipv4Addr::new(224, 0, 0, 1)),
            ),
            (
                "unspecified target IP",
                Box::new(|f| f[38..42].fill(0)),
                PacketError::ArpTargetIp(Ipv4Addr::UNSPECIFIED),
            ),
            (
                "multicast target IP",
                Box::new(|f| f[38..42].copy_from_slice(&[239, 1, 2, 3])),
                PacketError::ArpTargetIp(Ipv4Addr::new(239, 1, 2, 3)),
            ),
            (
                "broadcast target IP",
                Box::new(|f| f[38..42].fill(255)),
                PacketError::ArpTargetIp(Ipv4Addr::BROADCAST),
            ),
            (
                "group Ethernet source",
                Box::new(|f| f[6] = 0x53),
                PacketError::GroupSource(Mac([0x53, 0x54, 0x00, 0x12, 0x34, 0x56])),
            ),
            (
                "ethertype",
                Box::new(|f| f[12..14].copy_from_slice(&[0x08, 0x00])),
                PacketError::UnexpectedEthertype {
                    expected: ETHERTYPE_ARP,
                    found: ETHERTYPE_IPV4,
                },
            ),
            (
                "VLAN tag",
                Box::new(|f| f[12..14].copy_from_slice(&[0x81, 0x00])),
                PacketError::VlanTagged(0x8100),
            ),
        ];
        for (name, corrupt, error) in cases {
            let mut f = request_frame();
            corrupt(&mut f);
            assert_eq!(parse_request(&f), Err(error), "{name}");
        }
    }

    #[test]
    fn refuses_truncated_packets() {
        let f = request_frame();
        for len in 14..42 {
            assert_eq!(
                parse_request(&f[..len]),
                Err(PacketError::Truncated {
                    what: "ARP packet",
                    need: PACKET_LEN,
                    have: len - 14
                }),
                "{len} bytes"
            );
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

    fn target_ip() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>()
            .prop_map(Ipv4Addr::from)
            .prop_filter("unicast", |ip| {
                !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast()
            })
    }

    fn sender_ip() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![Just(Ipv4Addr::UNSPECIFIED), target_ip()]
    }

    /// A request frame as a host on the LAN would send it.
    fn build_request(eth_dst: Mac, r: &ArpRequest) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&eth_dst.0);
        f.extend_from_slice(&r.sender_mac.0);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&r.sender_mac.0);
        f.extend_from_slice(&r.sender_ip.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&r.target_ip.octets());
        f
    }

    proptest! {
        #[test]
        fn valid_requests_round_trip(
            sender_mac in unicast_mac(),
            sender_ip in sender_ip(),
            target_ip in target_ip(),
            ours in unicast_mac(),
            eth_dst in prop_oneof![Just(Mac::BROADCAST), unicast_mac()],
            padding in 0usize..40,
        ) {
            prop_assume!(sender_ip != target_ip);
            let request = ArpRequest { sender_mac, sender_ip, target_ip };
            let mut f = build_request(eth_dst, &request);
            f.resize(f.len() + padding, 0xaa);
            prop_assert_eq!(parse_request(&f), Ok(Some(request)));
            let reply = arp_reply(ours, &request);
            let (dst, src, op, sha, spa, tha, tpa) = read_reply(&reply);
            prop_assert_eq!((dst, src, op), (sender_mac, ours, OP_REPLY));
            prop_assert_eq!((sha, spa, tha, tpa), (ours, target_ip, sender_mac, sender_ip));
            // Our own strict parser reads it too, and it asks nothing.
            prop_assert_eq!(parse_request(&reply), Ok(None));
            prop_assert_eq!(parse(&reply).map(|p| p.operation), Ok(OP_REPLY));
        }

        #[test]
        fn announcements_parse(ours in unicast_mac(), ip in target_ip()) {
            let frame = gratuitous_arp(ours, ip);
            let p = parse(&frame).unwrap();
            prop_assert_eq!(
                (p.destination, p.source, p.operation, p.sender_mac, p.sender_ip, p.target_mac, p.target_ip),
                (Mac::BROADCAST, ours, OP_REQUEST, ours, ip, Mac::ZERO, ip)
            );
            prop_assert_eq!(parse_request(&frame), Ok(None));
        }
    }
}

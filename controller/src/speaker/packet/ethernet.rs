//! The Ethernet II header: destination, source, ethertype; 14 bytes, no
//! VLAN tag (the kernel strips tags of the interfaces the speaker listens
//! on; a tag still in the frame means it is not one of ours).

use super::{Mac, PacketError};

/// Destination, source, ethertype.
pub const HEADER_LEN: usize = 14;
/// The shortest frame Ethernet carries, without the frame check sequence:
/// shorter frames are padded up to it.
pub const MIN_FRAME_LEN: usize = 60;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IEEE 802.1Q customer VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IEEE 802.1ad service VLAN tag (QinQ).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The pre-standard QinQ tag some switches still send.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// An Ethernet II header as read from a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    pub destination: Mac,
    pub source: Mac,
    pub ethertype: u16,
}

fn is_vlan_tag(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    )
}

/// The ethertype of `frame`, refusing frames too short for a header and
/// VLAN-tagged ones.
pub fn ethertype(frame: &[u8]) -> Result<u16, PacketError> {
    let Some(&[hi, lo]) = frame.get(12..14) else {
        return Err(PacketError::Truncated {
            what: "Ethernet header",
            need: HEADER_LEN,
            have: frame.len(),
        });
    };
    let ethertype = u16::from_be_bytes([hi, lo]);
    if is_vlan_tag(ethertype) {
        return Err(PacketError::VlanTagged(ethertype));
    }
    Ok(ethertype)
}

/// Splits `frame` into its header and payload, refusing anything but an
/// untagged frame of exactly `expected` ethertype sent from a unicast
/// address. The payload may end in padding: the layer above knows its own
/// length.
pub fn parse(frame: &[u8], expected: u16) -> Result<(Header, &[u8]), PacketError> {
    let ethertype = ethertype(frame)?;
    if ethertype != expected {
        return Err(PacketError::UnexpectedEthertype {
            expected,
            found: ethertype,
        });
    }
    let (Some(destination), Some(source), Some(payload)) = (
        Mac::read(frame),
        frame.get(6..).and_then(Mac::read),
        frame.get(HEADER_LEN..),
    ) else {
        // ethertype() has seen 14 bytes; kept total all the same.
        return Err(PacketError::Truncated {
            what: "Ethernet header",
            need: HEADER_LEN,
            have: frame.len(),
        });
    };
    if source.is_group() {
        return Err(PacketError::GroupSource(source));
    }
    Ok((
        Header {
            destination,
            source,
            ethertype,
        },
        payload,
    ))
}

/// Starts a frame: the header, with room reserved for `payload_len` bytes.
pub fn start(destination: Mac, source: Mac, ethertype: u16, payload_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((HEADER_LEN + payload_len).max(MIN_FRAME_LEN));
    out.extend_from_slice(&destination.0);
    out.extend_from_slice(&source.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out
}

/// Pads a finished frame with zeros up to [`MIN_FRAME_LEN`], as a NIC
/// would; sending the padding ourselves does not depend on the driver.
pub fn pad(frame: &mut Vec<u8>) {
    if frame.len() < MIN_FRAME_LEN {
        frame.resize(MIN_FRAME_LEN, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    const B: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);

    #[test]
    fn parses_an_untagged_header() {
        let mut frame = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, // source
            0x08, 0x06, // ARP
        ];
        frame.extend_from_slice(b"payload");
        let (header, payload) = parse(&frame, ETHERTYPE_ARP).unwrap();
        assert_eq!(header.destination, Mac::BROADCAST);
        assert_eq!(header.source, B);
        assert_eq!(header.ethertype, ETHERTYPE_ARP);
        assert_eq!(payload, b"payload");
    }

    #[test]
    fn start_writes_what_parse_reads() {
        let frame = start(A, B, ETHERTYPE_IPV6, 0);
        assert_eq!(frame.len(), HEADER_LEN);
        let (header, payload) = parse(&frame, ETHERTYPE_IPV6).unwrap();
        assert_eq!((header.destination, header.source), (A, B));
        assert!(payload.is_empty());
    }

    #[test]
    fn refuses_short_frames() {
        let frame = start(A, B, ETHERTYPE_ARP, 0);
        for len in 0..HEADER_LEN {
            assert_eq!(
                parse(&frame[..len], ETHERTYPE_ARP),
                Err(PacketError::Truncated {
                    what: "Ethernet header",
                    need: HEADER_LEN,
                    have: len
                })
            );
        }
    }

    #[test]
    fn refuses_vlan_tags() {
        for tag in [ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD] {
            let mut frame = start(A, B, tag, 4);
            // TCI (VLAN 5), then the inner ethertype: still refused.
            frame.extend_from_slice(&[0x00, 0x05, 0x08, 0x06]);
            assert_eq!(ethertype(&frame), Err(PacketError::VlanTagged(tag)));
            assert_eq!(
                parse(&frame, ETHERTYPE_ARP),
                Err(PacketError::VlanTagged(tag))
            );
        }
    }

    #[test]
    fn refuses_other_ethertypes() {
        let frame = start(A, B, ETHERTYPE_IPV4, 0);
        assert_eq!(
            parse(&frame, ETHERTYPE_ARP),
            Err(PacketError::UnexpectedEthertype {
                expected: ETHERTYPE_ARP,
                found: ETHERTYPE_IPV4
            })
        );
    }

    #[test]
    fn refuses_group_sources() {
        let frame = start(A, Mac::BROADCAST, ETHERTYPE_ARP, 0);
        assert_eq!(
            parse(&frame, ETHERTYPE_ARP),
            Err(PacketError::GroupSource(Mac::BROADCAST))
        );
        let multicast = Mac([0x01, 0x00, 0x5e, 0, 0, 1]);
        let frame = start(A, multicast, ETHERTYPE_ARP, 0);
        assert_eq!(
            parse(&frame, ETHERTYPE_ARP),
            Err(PacketError::GroupSource(multicast))
        );
    }

    #[test]
    fn pads_to_the_minimum() {
        let mut frame = start(A, B, ETHERTYPE_ARP, 0);
        frame.push(7);
        pad(&mut frame);
        assert_eq!(frame.len(), MIN_FRAME_LEN);
        assert_eq!(frame[HEADER_LEN], 7);
        assert!(frame[HEADER_LEN + 1..].iter().all(|&b| b == 0));
        let mut long = vec![1; 100];
        pad(&mut long);
        assert_eq!(long, vec![1; 100]);
    }

    #[test]
    fn displays_macs() {
        assert_eq!(
            Mac([0xaa, 0xbb, 0xcc, 0x0d, 0xee, 0xff]).to_string(),
            "aa:bb:cc:0d:ee:ff"
        );
        assert_eq!(Mac::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        assert!(Mac::BROADCAST.is_group());
        assert!(!A.is_group());
    }
}

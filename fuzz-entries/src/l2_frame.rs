//! Ethernet frames off the LAN for the L2 speaker: ARP requests and
//! Neighbor Solicitations, and the answers built from them.

use gatehouse_controller::speaker::packet::{
    self, arp, ndp, Mac, NaDestination, NdpMessage, NeighborAdvertisement, Solicitation,
};

const OURS: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);

/// Parses a frame; when it is a question we answer, the answer built from
/// it must parse back (with the module's own strict parsers) to exactly
/// what was asked, and must not itself read as a question.
pub fn run(data: &[u8]) {
    let Ok(Some(question)) = packet::parse_solicitation(data) else {
        return;
    };
    match question {
        Solicitation::Arp(request) => {
            let reply = packet::arp_reply(OURS, &request);
            assert_eq!(packet::parse_solicitation(&reply), Ok(None), "{request:?}");
            let read = match arp::parse(&reply) {
                Ok(read) => read,
                Err(e) => panic!("the reply to {request:?} does not parse: {e}"),
            };
            assert_eq!(
                read,
                arp::ArpPacket {
                    destination: request.sender_mac,
                    source: OURS,
                    operation: arp::OP_REPLY,
                    sender_mac: OURS,
                    sender_ip: request.target_ip,
                    target_mac: request.sender_mac,
                    target_ip: request.sender_ip,
                }
            );
        }
        Solicitation::Neighbor(ns) => {
            let mac = ns.source_link_addr.unwrap_or(ns.source_mac);
            let to = NaDestination::Solicited {
                mac,
                ip: ns.source_ip,
            };
            let reply = packet::neighbor_advertisement(OURS, ns.target, ns.target, to);
            assert_eq!(packet::parse_solicitation(&reply), Ok(None), "{ns:?}");
            let dad = ns.source_ip.is_unspecified();
            let (destination_mac, destination_ip) = if dad {
                (Mac::ipv6_multicast(ndp::ALL_NODES), ndp::ALL_NODES)
            } else {
                (mac, ns.source_ip)
            };
            assert_eq!(
                ndp::parse(&reply),
                Ok(Some(NdpMessage::Advertisement(NeighborAdvertisement {
                    destination_mac,
                    source_mac: OURS,
                    source_ip: ns.target,
                    destination_ip,
                    router: false,
                    solicited: !dad,
                    override_flag: true,
                    target: ns.target,
                    target_link_addr: Some(OURS),
                }))),
                "{ns:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The seeds are what their names say, so that fuzzing starts from
    /// frames that reach the answers.
    #[test]
    fn the_seed_corpus_holds_questions_and_answers() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/l2_frame");
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        for name in [
            "arp-request",
            "arp-request-unpadded",
            "arp-request-unicast",
            "arp-probe",
            "ns",
            "ns-dad",
            "ns-unicast-nonce",
        ] {
            let parsed = packet::parse_solicitation(&read(name));
            assert!(matches!(parsed, Ok(Some(_))), "{name}: {parsed:?}");
        }
        for name in ["arp-announcement", "arp-reply", "na-unsolicited"] {
            assert_eq!(packet::parse_solicitation(&read(name)), Ok(None), "{name}");
        }
    }
}

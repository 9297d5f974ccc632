//! Classic BPF programs for the speaker's `AF_PACKET` sockets, so that
//! the kernel wakes us only for the questions we answer. Offsets are from
//! the start of the Ethernet header, as on a `SOCK_RAW` packet socket. A
//! load past the end of a frame makes the kernel drop it, so short frames
//! never pass. The filters only narrow what arrives: the parsers still
//! check every frame in full.

use socket2::SockFilter;

use super::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

// Instruction classes, sizes, modes and operations (linux/filter.h,
// linux/bpf_common.h).
pub const BPF_LD: u16 = 0x00;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_W: u16 = 0x00;
pub const BPF_H: u16 = 0x08;
pub const BPF_B: u16 = 0x10;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_K: u16 = 0x00;
/// Ancillary data instead of packet bytes: loads at `SKF_AD_OFF + n`.
pub const SKF_AD_OFF: u32 = 0xffff_f000; // -0x1000
pub const SKF_AD_PKTTYPE: u32 = 4;
/// `sll_pkttype` of a frame this host sends (linux/if_packet.h).
pub const PACKET_OUTGOING: u32 = 4;

/// What a filter returns to keep a whole frame, and to drop it.
pub const ACCEPT: u32 = u32::MAX;
pub const DROP: u32 = 0;

/// One classic BPF instruction, readable (socket2's `SockFilter` is not).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub fn to_sock_filter(self) -> SockFilter {
        SockFilter::new(self.code, self.jt, self.jf, self.k)
    }
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// A load of `size` (BPF_B, BPF_H, BPF_W) bytes at frame offset `at`,
/// and the value it must equal.
type Check = (u16, u32, u32);

/// Every check in turn (any mismatch drops the frame), then "not sent by
/// this host", then accept.
///
/// ```text
///   ld<size> [at_0]; jeq #value_0, next, drop
///   ...
///   ld #pkttype;     jeq #PACKET_OUTGOING, drop, next
///   ret #ACCEPT
///   drop: ret #0
/// ```
fn program(checks: &[Check]) -> Vec<Insn> {
    let n = checks.len();
    let mut out = Vec::with_capacity(2 * n + 4);
    for (i, &(size, at, value)) in checks.iter().enumerate() {
        // From the instruction after this jump to `drop` (index 2n + 3).
        let to_drop = u8::try_from(2 * (n - i) + 1).unwrap_or(u8::MAX);
        out.push(insn(BPF_LD | size | BPF_ABS, 0, 0, at));
        out.push(insn(BPF_JMP | BPF_JEQ | BPF_K, 0, to_drop, value));
    }
    out.push(insn(
        BPF_LD | BPF_W | BPF_ABS,
        0,
        0,
        SKF_AD_OFF + SKF_AD_PKTTYPE,
    ));
    out.push(insn(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, PACKET_OUTGOING));
    out.push(insn(BPF_RET | BPF_K, 0, 0, ACCEPT));
    out.push(insn(BPF_RET | BPF_K, 0, 0, DROP));
    out
}

/// ARP requests for Ethernet and IPv4 that this host did not send:
/// ethertype 0x0806, htype 1 and ptype 0x0800, address lengths 6 and 4,
/// operation 1 (request).
pub fn arp_program() -> Vec<Insn> {
    program(&[
        (BPF_H, 12, u32::from(ETHERTYPE_ARP)),
        (BPF_W, 14, (1 << 16) | u32::from(ETHERTYPE_IPV4)),
        (BPF_H, 18, 0x0604),
        (BPF_H, 20, 1),
    ])
}

/// Neighbor Solicitations that this host did not send: ethertype 0x86dd,
/// next header 58 (ICMPv6) in the fixed IPv6 header, hop limit 255, ICMPv6
/// type 135 right after the header.
pub fn neighbor_solicitation_program() -> Vec<Insn> {
    program(&[
        (BPF_H, 12, u32::from(ETHERTYPE_IPV6)),
        (BPF_B, 20, 58),
        (BPF_B, 21, 255),
        (BPF_B, 54, 135),
    ])
}

/// [`arp_program`], ready for `Socket::attach_filter`.
pub fn arp_filter() -> Vec<SockFilter> {
    arp_program()
        .into_iter()
        .map(Insn::to_sock_filter)
        .collect()
}

/// [`neighbor_solicitation_program`], ready for `Socket::attach_filter`.
pub fn neighbor_solicitation_filter() -> Vec<SockFilter> {
    neighbor_solicitation_program()
        .into_iter()
        .map(Insn::to_sock_filter)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{arp, gratuitous_arp, ndp, neighbor_advertisement, Mac, NaDestination};
    use super::*;
    use proptest::prelude::*;

    /// `sll_pkttype` values (linux/if_packet.h).
    const PACKET_HOST: u32 = 0;
    const PACKET_BROADCAST: u32 = 1;
    const PACKET_MULTICAST: u32 = 2;
    const PACKET_OTHERHOST: u32 = 3;

    /// Runs a program the way the kernel does, for the instructions ours
    /// use; panics on any other instruction or a jump out of the program.
    fn run(program: &[Insn], frame: &[u8], pkttype: u32) -> u32 {
        let mut pc = 0usize;
        let mut a: u32 = 0;
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                c if c == BPF_LD | BPF_W | BPF_ABS && i.k == SKF_AD_OFF + SKF_AD_PKTTYPE => {
                    a = pkttype;
                }
                c if c & 0x07 == BPF_LD && c & 0xe0 == BPF_ABS => {
                    let size = match c & 0x18 {
                        BPF_W => 4,
                        BPF_H => 2,
                        BPF_B => 1,
                        other => panic!("size {other:#x}"),
                    };
                    let at = i.k as usize;
                    let Some(bytes) = frame.get(at..at + size) else {
                        return 0; // out of the frame: the kernel drops it
                    };
                    a = bytes.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b));
                }
                c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                c if c == BPF_RET | BPF_K => return i.k,
                other => panic!("instruction {other:#x}"),
            }
            assert!(pc < program.len(), "jump out of the program");
        }
    }

    fn well_formed(program: &[Insn]) {
        assert!(program.len() <= 4096);
        assert_eq!(program.last().map(|i| i.code), Some(BPF_RET | BPF_K));
        for (pc, i) in program.iter().enumerate() {
            if i.code & 0x07 == BPF_JMP {
                assert!(pc + 1 + usize::from(i.jt) < program.len());
                assert!(pc + 1 + usize::from(i.jf) < program.len());
            }
        }
    }

    const OURS: Mac = Mac([0x02, 0, 0x5e, 0x10, 0, 1]);

    #[test]
    fn programs_are_well_formed_and_match_the_socket_filters() {
        for program in [arp_program(), neighbor_solicitation_program()] {
            well_formed(&program);
        }
        assert_eq!(arp_filter().len(), arp_program().len());
        assert_eq!(
            neighbor_solicitation_filter().len(),
            neighbor_solicitation_program().len()
        );
    }

    #[test]
    fn arp_program_is_the_expected_code() {
        // As bpf_asm would write it.
        let expected = [
            insn(0x28, 0, 0, 12),          // ldh [12]
            insn(0x15, 0, 9, 0x0806),      // jeq #0x806, next, drop
            insn(0x20, 0, 0, 14),          // ld [14]
            insn(0x15, 0, 7, 0x0001_0800), // jeq #0x10800 (htype, ptype)
            insn(0x28, 0, 0, 18),          // ldh [18]
            insn(0x15, 0, 5, 0x0604),      // jeq #0x604 (hlen, plen)
            insn(0x28, 0, 0, 20),          // ldh [20]
            insn(0x15, 0, 3, 1),           // jeq #1 (request)
            insn(0x20, 0, 0, 0xffff_f004), // ld #pkttype
            insn(0x15, 1, 0, 4),           // jeq #outgoing, drop, next
            insn(0x06, 0, 0, u32::MAX),    // ret #-1
            insn(0x06, 0, 0, 0),           // drop: ret #0
        ];
        assert_eq!(arp_program(), expected);
    }

    #[test]
    fn arp_filter_passes_incoming_requests_only() {
        let p = arp_program();
        let request = arp::tests::request_frame();
        for pkttype in [
            PACKET_HOST,
            PACKET_BROADCAST,
            PACKET_MULTICAST,
            PACKET_OTHERHOST,
        ] {
            assert_eq!(run(&p, &request, pkttype), ACCEPT);
        }
        assert_eq!(run(&p, &request, PACKET_OUTGOING), DROP);
        assert_eq!(run(&p, &request[..21], PACKET_HOST), DROP, "short");
        let reply = arp::arp_reply(OURS, &arp::parse_request(&request).unwrap().unwrap());
        assert_eq!(run(&p, &reply, PACKET_HOST), DROP, "reply");
        // Gratuitous ARP is a request: the filter lets it by, the parser
        // does not answer it.
        assert_eq!(
            run(
                &p,
                &gratuitous_arp(OURS, [192, 0, 2, 1].into()),
                PACKET_BROADCAST
            ),
            ACCEPT
        );
        for (at, value) in [(12, 0x86), (15, 6), (17, 0xdd), (18, 8), (19, 16), (21, 2)] {
            let mut f = request.clone();
            f[at] = value;
            assert_eq!(run(&p, &f, PACKET_BROADCAST), DROP, "byte {at}");
        }
        let ns = ndp::tests::solicitation_frame();
        assert_eq!(run(&p, &ns, PACKET_MULTICAST), DROP);
    }

    #[test]
    fn neighbor_solicitation_filter_passes_incoming_solicitations_only() {
        let p = neighbor_solicitation_program();
        let ns = ndp::tests::solicitation_frame();
        assert_eq!(run(&p, &ns, PACKET_MULTICAST), ACCEPT);
        assert_eq!(run(&p, &ns, PACKET_HOST), ACCEPT);
        assert_eq!(run(&p, &ns, PACKET_OUTGOING), DROP);
        assert_eq!(run(&p, &ns[..54], PACKET_HOST), DROP, "short");
        for (at, value) in [(12, 0x08), (20, 0), (21, 64), (54, 136)] {
            let mut f = ns.clone();
            f[at] = value;
            assert_eq!(run(&p, &f, PACKET_MULTICAST), DROP, "byte {at}");
        }
        let na = neighbor_advertisement(
            OURS,
            "2001:db8::1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            NaDestination::AllNodes,
        );
        assert_eq!(run(&p, &na, PACKET_MULTICAST), DROP);
        assert_eq!(
            run(&p, &arp::tests::request_frame(), PACKET_BROADCAST),
            DROP
        );
    }

    proptest! {
        /// The filter never hides a solicitation the parser answers.
        #[test]
        fn every_valid_solicitation_passes((frame, _) in ndp::tests::valid_solicitation()) {
            prop_assert_eq!(run(&neighbor_solicitation_program(), &frame, PACKET_MULTICAST), ACCEPT);
        }

        /// Whatever the bytes, a frame the parser answers passes its filter.
        #[test]
        fn parsed_questions_pass(frame in proptest::collection::vec(any::<u8>(), 0..100), arp_head in any::<bool>()) {
            let mut frame = frame;
            if arp_head && frame.len() >= 22 {
                frame[12..22].copy_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            }
            let passes = |p: Vec<Insn>| run(&p, &frame, PACKET_HOST) == ACCEPT;
            match super::super::parse_solicitation(&frame) {
                Ok(Some(super::super::Solicitation::Arp(_))) => prop_assert!(passes(arp_program())),
                Ok(Some(super::super::Solicitation::Neighbor(_))) => {
                    prop_assert!(passes(neighbor_solicitation_program()));
                }
                _ => {}
            }
        }
    }
}

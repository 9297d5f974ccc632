//! The heartbeat datagram speakers send each other over UDP, and its
//! strict parser. Everything after the magic is checked: a datagram that
//! is not exactly one well-formed heartbeat is refused whole.
//!
//! Layout (big-endian):
//! ```text
//! "GHSB" | version=1 | flags (bit 0: ready, bit 1: joining; not both; others 0) | name length (1..=253) | node name
//! incarnation u64 | sequence u64 | claim count u16 (<= MAX_CLAIMS)
//! claims: family (4 | 6) then 4 or 16 address bytes, strictly ascending, no duplicates
//! ```

use super::node::NodeName;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

const MAGIC: &[u8; 4] = b"GHSB";
const VERSION: u8 = 1;
const READY: u8 = 0b01;
const JOINING: u8 = 0b10;
/// The most addresses one speaker can claim in a heartbeat; a datagram
/// with that many IPv6 claims still fits in 64 KiB.
pub const MAX_CLAIMS: usize = 3000;

/// One speaker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub node: NodeName,
    /// Fixed for the life of the sending process (its start time): a
    /// restarted speaker's heartbeats are never mistaken for replays.
    pub incarnation: u64,
    pub sequence: u64,
    pub standing: Standing,
    /// The addresses the sender announces right now.
    pub claims: BTreeSet<IpAddr>,
}

/// What a speaker says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// May announce: in contact with a majority and the API.
    Ready,
    /// Just started, learning its peers; it will be ready soon, so others
    /// do not take the addresses it is about to announce.
    Joining,
    /// Announces nothing (no API contact, no majority): the others take
    /// over its addresses without waiting for its heartbeats to stop.
    Withdrawn,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeartbeatError {
    #[error("not a heartbeat (bad magic)")]
    Magic,
    #[error("unsupported heartbeat version {0}")]
    Version(u8),
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("node name is not a DNS subdomain")]
    NodeName,
    #[error("{0} claims, more than {MAX_CLAIMS}")]
    TooManyClaims(usize),
    #[error("claim with unknown address family {0}")]
    Family(u8),
    #[error("claims are not in strictly ascending order")]
    Order,
    #[error("{0} bytes after the last claim")]
    Trailing(usize),
}

impl Heartbeat {
    /// The datagram; `None` if it cannot be encoded (name or claims out
    /// of range), which callers treat as a bug in their inputs.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let name = self.node.as_str().as_bytes();
        if !is_dns_subdomain(name) || self.claims.len() > MAX_CLAIMS {
            return None;
        }
        let mut out = Vec::with_capacity(32 + name.len() + self.claims.len() * 17);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match self.standing {
            Standing::Ready => READY,
            Standing::Joining => JOINING,
            Standing::Withdrawn => 0,
        });
        out.push(u8::try_from(name.len()).ok()?);
        out.extend_from_slice(name);
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&u16::try_from(self.claims.len()).ok()?.to_be_bytes());
        for claim in &self.claims {
            match claim {
                IpAddr::V4(v4) => {
                    out.push(4);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.push(6);
                    out.extend_from_slice(&v6.octets());
                }
            }
        }
        Some(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Heartbeat, HeartbeatError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(HeartbeatError::Magic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(HeartbeatError::Version(version));
        }
        let flags = r.u8()?;
        let standing = match flags {
            READY => Standing::Ready,
            JOINING => Standing::Joining,
            0 => Standing::Withdrawn,
            other => return Err(HeartbeatError::Flags(other)),
        };
        let name_len = usize::from(r.u8()?);
        let name = r.take(name_len)?;
        if !is_dns_subdomain(name) {
            return Err(HeartbeatError::NodeName);
        }
        let node = std::str::from_utf8(name).map_err(|_| HeartbeatError::NodeName)?;
        let incarnation = r.u64()?;
        let sequence = r.u64()?;
        let count = usize::from(u16::from_be_bytes([r.u8()?, r.u8()?]));
        if count > MAX_CLAIMS {
            return Err(HeartbeatError::TooManyClaims(count));
        }
        let mut claims = BTreeSet::new();
        let mut last: Option<IpAddr> = None;
        for _ in 0..count {
            let claim = match r.u8()? {
                4 => {
                    let b = r.take(4)?;
                    IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                6 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(r.take(16)?);
                    IpAddr::V6(Ipv6Addr::from(octets))
                }
                other => return Err(HeartbeatError::Family(other)),
            };
            if last.is_some_and(|l| l >= claim) {
                return Err(HeartbeatError::Order);
            }
            last = Some(claim);
            claims.insert(claim);
        }
        if r.at != bytes.len() {
            return Err(HeartbeatError::Trailing(bytes.len() - r.at));
        }
        Ok(Heartbeat {
            node: NodeName::new(node),
            incarnation,
            sequence,
            standing,
            claims,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeartbeatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(HeartbeatError::Truncated(self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, HeartbeatError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, HeartbeatError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
}

/// RFC 1123 subdomain, as Node names are: lower-case alphanumerics, `-`
/// and `.`, labels of 1 to 63 starting and ending alphanumeric, 253 at most.
fn is_dns_subdomain(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split(|b| *b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && label.first().is_some_and(u8::is_ascii_alphanumeric)
                && label.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Heartbeat {
        Heartbeat {
            node: NodeName::new("node-1.example"),
            incarnation: 0x0102_0304_0506_0708,
            sequence: 42,
            standing: Standing::Ready,
            claims: ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()].into(),
        }
    }

    #[test]
    fn a_heartbeat_round_trips_byte_for_byte() {
        let bytes = sample().encode().unwrap();
        assert_eq!(&bytes[..7], b"GHSB\x01\x01\x0e");
        assert_eq!(bytes.len(), 4 + 1 + 1 + 1 + 14 + 8 + 8 + 2 + 5 + 17);
        assert_eq!(Heartbeat::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn malformed_heartbeats_are_refused_with_their_reason() {
        let good = sample().encode().unwrap();
        let with = |at: usize, byte: u8| {
            let mut b = good.clone();
            b[at] = byte;
            Heartbeat::decode(&b)
        };
        assert_eq!(with(0, b'X'), Err(HeartbeatError::Magic));
        assert_eq!(with(4, 2), Err(HeartbeatError::Version(2)));
        assert_eq!(with(5, 0x03), Err(HeartbeatError::Flags(0x03)));
        assert_eq!(with(7, b'N'), Err(HeartbeatError::NodeName));
        assert_eq!(with(7, b'-'), Err(HeartbeatError::NodeName));
        let family_at = 7 + 14 + 16 + 2;
        assert_eq!(with(family_at, 5), Err(HeartbeatError::Family(5)));
        assert_eq!(
            Heartbeat::decode(&good[..good.len() - 1]),
            Err(HeartbeatError::Truncated(good.len() - 16))
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            Heartbeat::decode(&trailing),
            Err(HeartbeatError::Trailing(1))
        );
        let mut too_many = good[..family_at - 2].to_vec();
        too_many.extend_from_slice(&u16::try_from(MAX_CLAIMS + 1).unwrap().to_be_bytes());
        assert_eq!(
            Heartbeat::decode(&too_many),
            Err(HeartbeatError::TooManyClaims(MAX_CLAIMS + 1))
        );
        // Two claims swapped: not ascending.
        let mut swapped = good[..family_at - 2].to_vec();
        swapped.extend_from_slice(&[0, 2, 4, 192, 0, 2, 2, 4, 192, 0, 2, 1]);
        assert_eq!(Heartbeat::decode(&swapped), Err(HeartbeatError::Order));
        assert_eq!(Heartbeat::decode(b""), Err(HeartbeatError::Truncated(0)));
    }

    #[test]
    fn names_that_are_not_node_names_are_not_encoded() {
        let mut h = sample();
        h.node = NodeName::new("Node_1");
        assert_eq!(h.encode(), None);
        h.node = NodeName::new("a".repeat(254));
        assert_eq!(h.encode(), None);
    }

    fn claims() -> impl Strategy<Value = BTreeSet<IpAddr>> {
        proptest::collection::btree_set(
            prop_oneof![
                any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
                any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
            ],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Heartbeat::decode(&bytes);
        }

        #[test]
        fn every_encoded_heartbeat_decodes_to_itself(
            name in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
            incarnation in any::<u64>(),
            sequence in any::<u64>(),
            standing in prop_oneof![Just(Standing::Ready), Just(Standing::Joining), Just(Standing::Withdrawn)],
            claims in claims(),
        ) {
            let h = Heartbeat { node: NodeName::new(name), incarnation, sequence, standing, claims };
            let bytes = h.encode().unwrap();
            prop_assert_eq!(Heartbeat::decode(&bytes).unwrap(), h);
        }

        #[test]
        fn a_corrupted_byte_is_refused_or_decodes_to_a_valid_heartbeat(at in 0usize..60, byte in any::<u8>()) {
            let mut bytes = sample().encode().unwrap();
            let at = at % bytes.len();
            bytes[at] = byte;
            if let Ok(h) = Heartbeat::decode(&bytes) {
                prop_assert_eq!(h.encode().unwrap(), bytes);
            }
        }
    }
}

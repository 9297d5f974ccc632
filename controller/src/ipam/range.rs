//! Parsing a pool's `addresses` entries: CIDRs (`10.0.0.0/24`,
//! `fd00::/120`) and inclusive `first-last` ranges (`10.0.0.10-10.0.0.20`,
//! `fd00::10-fd00::20`).
//!
//! Strict on purpose: an entry that could mean two things is refused with an
//! error naming what is wrong, since a pool that silently covers other
//! addresses than the operator meant hands out addresses that belong to
//! someone else. Refused: whitespace except around the `-` of a range (which
//! MetalLB accepts, so migrated pools keep working), a CIDR with host bits
//! set (`10.0.0.5/24`; Go's parser, and so MetalLB, silently masks it to
//! `10.0.0.0/24`), a bare address without a prefix length, prefix lengths
//! with signs or leading zeros, zone indices, mixed families and reversed
//! ranges.

use super::family::{from_num, to_num, Family};
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressRange {
    family: Family,
    first: u128,
    last: u128,
}

/// Why an `addresses` entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RangeError {
    #[error("empty address entry")]
    Empty,
    #[error("whitespace is not allowed in {0:?} (only around the '-' of a range)")]
    Whitespace(String),
    #[error("{0:?} is not an IP address")]
    InvalidAddress(String),
    #[error(
        "{0:?} is a single address: write it as a CIDR ({0}/32 or {0}/128) or a first-last range"
    )]
    MissingPrefixLength(String),
    #[error("prefix length {0:?} is not a plain decimal number")]
    InvalidPrefixLength(String),
    #[error("prefix length /{len} is longer than the {bits} bits of an {family} address")]
    PrefixTooLong { len: u32, bits: u8, family: Family },
    #[error("{entry:?} has host bits set: the network is {network}")]
    HostBitsSet { entry: String, network: String },
    #[error("range {entry:?} mixes an IPv4 and an IPv6 address")]
    MixedFamilies { entry: String },
    #[error("range {entry:?} starts after it ends")]
    Reversed { entry: String },
}

impl AddressRange {
    /// The range of `first..=last`; `None` if the families differ or
    /// `first > last`.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<AddressRange> {
        let (f1, a) = to_num(first);
        let (f2, b) = to_num(last);
        (f1 == f2 && a <= b).then_some(AddressRange {
            family: f1,
            first: a,
            last: b,
        })
    }

    pub(crate) fn from_nums(family: Family, first: u128, last: u128) -> AddressRange {
        AddressRange {
            family,
            first,
            last,
        }
    }

    /// Parses one `addresses` entry: a CIDR or a `first-last` range.
    pub fn parse(entry: &str) -> Result<AddressRange, RangeError> {
        if entry.is_empty() {
            return Err(RangeError::Empty);
        }
        match entry.split_once('-') {
            Some((a, b)) => parse_span(entry, a, b),
            None => parse_cidr(entry),
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn first(&self) -> IpAddr {
        from_num(self.family, self.first)
    }

    pub fn last(&self) -> IpAddr {
        from_num(self.family, self.last)
    }

    pub(crate) fn first_num(&self) -> u128 {
        self.first
    }

    pub(crate) fn last_num(&self) -> u128 {
        self.last
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (f, n) = to_num(ip);
        f == self.family && self.first <= n && n <= self.last
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first())
        } else {
            write!(f, "{}-{}", self.first(), self.last())
        }
    }
}

fn has_whitespace(s: &str) -> bool {
    s.chars().any(char::is_whitespace)
}

fn parse_addr(s: &str) -> Result<IpAddr, RangeError> {
    if s.is_empty() {
        return Err(RangeError::InvalidAddress(s.into()));
    }
    s.parse::<IpAddr>()
        .map_err(|_| RangeError::InvalidAddress(s.into()))
}

fn parse_span(entry: &str, a: &str, b: &str) -> Result<AddressRange, RangeError> {
    // MetalLB trims spaces around the dash; nothing else may be blank.
    let (a, b) = (a.trim_end_matches(' '), b.trim_start_matches(' '));
    if has_whitespace(a) || has_whitespace(b) {
        return Err(RangeError::Whitespace(entry.into()));
    }
    let first = parse_addr(a)?;
    let last = parse_addr(b)?;
    if Family::of(first) != Family::of(last) {
        return Err(RangeError::MixedFamilies {
            entry: entry.into(),
        });
    }
    AddressRange::new(first, last).ok_or_else(|| RangeError::Reversed {
        entry: entry.into(),
    })
}

fn parse_cidr(entry: &str) -> Result<AddressRange, RangeError> {
    if has_whitespace(entry) {
        return Err(RangeError::Whitespace(entry.into()));
    }
    let Some((addr, len)) = entry.split_once('/') else {
        parse_addr(entry)?;
        return Err(RangeError::MissingPrefixLength(entry.into()));
    };
    let ip = parse_addr(addr)?;
    let plain = !len.is_empty()
        && len.bytes().all(|c| c.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'))
        && len.len() <= 3;
    if !plain {
        return Err(RangeError::InvalidPrefixLength(len.into()));
    }
    let len: u32 = len
        .parse()
        .map_err(|_| RangeError::InvalidPrefixLength(len.into()))?;
    let (family, n) = to_num(ip);
    let bits = family.bits();
    if len > u32::from(bits) {
        return Err(RangeError::PrefixTooLong { len, bits, family });
    }
    let host_bits = u32::from(bits) - len;
    let host_mask: u128 = match host_bits {
        0 => 0,
        128 => u128::MAX,
        h => (1u128 << h) - 1,
    };
    let first = n & !host_mask;
    if first != n {
        return Err(RangeError::HostBitsSet {
            entry: entry.into(),
            network: format!("{}/{len}", from_num(family, first)),
        });
    }
    Ok(AddressRange {
        family,
        first,
        last: first | host_mask,
    })
}

//! Address families and the integer view of addresses the allocator works in.
//!
//! Ranges, free sets and capacity are arithmetic on `u128` (an IPv4 address
//! is its `u32` value), always next to the [`Family`] that gives the number
//! its meaning; `IpAddr` is what crosses the module boundary.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address family, as in a Service's `spec.ipFamilies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Both families, IPv4 first (the order used wherever no Service's own
    /// preference applies, e.g. pool status).
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) is IPv6, as it is on the wire.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Index into per-family arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// The largest address of the family as a number.
    pub(crate) fn max_value(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    /// Address length in bits (the longest prefix).
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The Kubernetes spelling (`IPv4`, `IPv6`).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address as (family, number).
pub(crate) fn to_num(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a))),
        IpAddr::V6(a) => (Family::V6, u128::from(a)),
    }
}

/// The address a number denotes in a family. Numbers above an IPv4
/// family's range are clamped; callers only pass numbers from that family's
/// ranges.
pub(crate) fn from_num(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// True for the IPv4 addresses ending in `.0` or `.255`, which some old
/// consumer routers drop as broadcast (smurf protection); pools with
/// `avoid_buggy_ips` never hand them out, as MetalLB does.
pub(crate) fn is_buggy(family: Family, n: u128) -> bool {
    family == Family::V4 && matches!(n & 0xff, 0 | 0xff)
}

/// Whether a pool may hand out the address `n`.
pub(crate) fn allowed(family: Family, avoid_buggy: bool, n: u128) -> bool {
    !(avoid_buggy && is_buggy(family, n))
}

/// The smallest allowed address above `n`, if the family has one.
pub(crate) fn next_allowed(family: Family, avoid_buggy: bool, n: u128) -> Option<u128> {
    let mut c = n;
    loop {
        c = c.checked_add(1).filter(|c| *c <= family.max_value())?;
        if allowed(family, avoid_buggy, c) {
            return Some(c);
        }
    }
}

/// The largest allowed address below `n`, if the family has one.
pub(crate) fn prev_allowed(family: Family, avoid_buggy: bool, n: u128) -> Option<u128> {
    let mut c = n;
    loop {
        c = c.checked_sub(1)?;
        if allowed(family, avoid_buggy, c) {
            return Some(c);
        }
    }
}

/// How many addresses of `first..=last` a pool may hand out, saturating at
/// `u128::MAX` (only `::/0` has more).
pub(crate) fn allowed_count(family: Family, avoid_buggy: bool, first: u128, last: u128) -> u128 {
    let total = (last - first).saturating_add(1);
    if !(avoid_buggy && family == Family::V4) {
        return total;
    }
    // Buggy addresses in 0..=x: two per full /24 below x's, plus x's own
    // /24's .0, plus its .255 if x is that.
    let buggy_upto = |x: u128| 2 * (x >> 8) + 1 + u128::from(x & 0xff == 0xff);
    let below_first = match first.checked_sub(1) {
        Some(f) => buggy_upto(f),
        None => 0,
    };
    total - (buggy_upto(last) - below_first)
}

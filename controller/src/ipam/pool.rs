//! Address pools: the configuration (shaped after the `IPPool` CRD, itself
//! MetalLB's `IPAddressPool` field by field), its validation, and the
//! validated set the allocator draws from.
//!
//! Validation never rejects the whole set: each pool is judged on its own
//! and carries its [`PoolIssue`]s, so one bad pool leaves the others
//! working. A pool with a fatal issue (an unparsable entry, no entries, an
//! invalid selector) contributes no addresses. Overlaps are not fatal: pools
//! are taken in name order and **the pool whose name sorts first keeps an
//! overlapping range**; the later pool loses exactly the overlap (reported
//! as [`PoolIssue::OverlapsPool`]) and keeps the rest. Overlapping entries
//! within one pool are reported and their union is used.

use super::family::{allowed_count, Family};
use super::range::{AddressRange, RangeError};
use super::request::ServiceRequest;
use super::selector::{LabelSelector, SelectorError};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// The name of an IPPool (cluster-scoped, so a plain name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolName(String);

impl PoolName {
    pub fn new(name: impl Into<String>) -> PoolName {
        PoolName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PoolName {
    fn from(s: &str) -> PoolName {
        PoolName::new(s)
    }
}

/// An `IPPool`'s spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// CIDRs and `first-last` ranges, IPv4 and IPv6 (see [`AddressRange::parse`]).
    pub addresses: Vec<String>,
    /// Whether Services that name neither this pool nor one of its
    /// addresses may get addresses from it. Default true.
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// Which Services the pool serves, and how much it is preferred.
    /// `None` is MetalLB's absent `allocateTo`: every Service, tried after
    /// the pools that have one.
    pub service_allocation: Option<ServiceAllocation>,
}

impl PoolSpec {
    /// A pool of these entries with the CRD's defaults.
    pub fn new<S: Into<String>>(addresses: impl IntoIterator<Item = S>) -> PoolSpec {
        PoolSpec {
            addresses: addresses.into_iter().map(Into::into).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }
}

/// `serviceAllocation`: restricts a pool to some Services and ranks it.
///
/// A Service may use the pool when its namespace is allowed (listed in
/// `namespaces` or matched by one of `namespace_selectors`; both empty:
/// every namespace) **and** its labels match one of `service_selectors`
/// (empty: every Service). This holds for explicit requests too: a
/// restriction is access control, `auto_assign` only governs automatic use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower is preferred; 0 means no priority and sorts after every
    /// non-zero one, as in MetalLB.
    pub priority: u32,
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<LabelSelector>,
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    fn allows(&self, req: &ServiceRequest) -> bool {
        let ns_open = self.namespaces.is_empty() && self.namespace_selectors.is_empty();
        let ns_ok = ns_open
            || self.namespaces.contains(&req.key.namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(&req.namespace_labels));
        let svc_ok = self.service_selectors.is_empty()
            || self
                .service_selectors
                .iter()
                .any(|s| s.matches(&req.labels));
        ns_ok && svc_ok
    }
}

/// Which selector list of a pool an invalid selector is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorList {
    Namespace,
    Service,
}

impl fmt::Display for SelectorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SelectorList::Namespace => "namespaceSelectors",
            SelectorList::Service => "serviceSelectors",
        })
    }
}

/// Something wrong with a pool, for its status conditions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolIssue {
    /// Fatal: an `addresses` entry does not parse.
    #[error("addresses[{index}] {entry:?}: {error}")]
    InvalidAddress {
        index: usize,
        entry: String,
        error: RangeError,
    },
    /// Fatal: `addresses` is empty.
    #[error("the pool has no addresses")]
    NoAddresses,
    /// Fatal: a selector the API server would refuse.
    #[error("{list}[{index}]: {error}")]
    InvalidSelector {
        list: SelectorList,
        index: usize,
        error: SelectorError,
    },
    /// Not fatal: `range` is also in `pool`, whose name sorts first and
    /// which keeps it; this pool does not use it.
    #[error("{range} overlaps pool {pool}, which keeps it (its name sorts first)")]
    OverlapsPool { pool: PoolName, range: AddressRange },
    /// Not fatal: two entries of this pool overlap; their union is used.
    #[error("addresses[{first}] and addresses[{second}] overlap")]
    OverlapWithinPool { first: usize, second: usize },
}

impl PoolIssue {
    /// Whether the pool is unusable because of it.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            PoolIssue::InvalidAddress { .. }
                | PoolIssue::NoAddresses
                | PoolIssue::InvalidSelector { .. }
        )
    }

    /// A CamelCase reason for a condition.
    pub fn reason(&self) -> &'static str {
        match self {
            PoolIssue::InvalidAddress { .. } => "InvalidAddress",
            PoolIssue::NoAddresses => "NoAddresses",
            PoolIssue::InvalidSelector { .. } => "InvalidSelector",
            PoolIssue::OverlapsPool { .. } => "OverlapsPool",
            PoolIssue::OverlapWithinPool { .. } => "OverlapWithinPool",
        }
    }
}

/// One pool after validation.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub name: PoolName,
    pub spec: PoolSpec,
    pub issues: Vec<PoolIssue>,
    /// The ranges the pool really owns, per family: sorted, disjoint,
    /// non-adjacent, overlaps with earlier pools removed. Empty if fatal.
    pub ranges: [Vec<(u128, u128)>; 2],
    /// Addresses it may hand out, per family.
    pub capacity: [u128; 2],
}

impl Pool {
    pub fn usable(&self) -> bool {
        !self.issues.iter().any(PoolIssue::is_fatal)
    }

    pub fn avoid_buggy(&self, family: Family) -> bool {
        self.spec.avoid_buggy_ips && family == Family::V4
    }

    /// Whether the pool's `serviceAllocation` lets this Service use it.
    pub fn allows(&self, req: &ServiceRequest) -> bool {
        self.spec
            .service_allocation
            .as_ref()
            .is_none_or(|a| a.allows(req))
    }

    /// Rank in automatic choice: pools with a `serviceAllocation` first,
    /// by priority (0 last), then those without.
    pub fn rank(&self) -> (u8, u32) {
        match &self.spec.service_allocation {
            Some(a) if a.priority > 0 => (0, a.priority),
            Some(_) => (0, u32::MAX),
            None => (1, 0),
        }
    }
}

/// Where an address falls in the validated pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// In this pool (index into [`PoolSet::pools`]) and allowed by it.
    Pool(usize),
    /// In this pool's ranges, but an `.0`/`.255` address it avoids.
    Avoided(usize),
    None,
}

/// The validated pools, in name order, with an index from address to pool.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolSet {
    pub pools: Vec<Pool>,
    /// Per family: range start → (range end, pool index).
    index: [BTreeMap<u128, (u128, usize)>; 2],
}

impl PoolSet {
    pub fn build(specs: BTreeMap<PoolName, PoolSpec>) -> PoolSet {
        let mut set = PoolSet::default();
        for (i, (name, spec)) in specs.into_iter().enumerate() {
            let pool = set.validate(name, spec);
            for f in Family::ALL {
                for &(a, b) in &pool.ranges[f.index()] {
                    set.index[f.index()].insert(a, (b, i));
                }
            }
            set.pools.push(pool);
        }
        set
    }

    pub fn find(&self, name: &PoolName) -> Option<usize> {
        self.pools.binary_search_by(|p| p.name.cmp(name)).ok()
    }

    pub fn owner(&self, family: Family, n: u128) -> Owner {
        match self.index[family.index()].range(..=n).next_back() {
            Some((_, &(end, i))) if n <= end => {
                if super::family::allowed(family, self.pools[i].avoid_buggy(family), n) {
                    Owner::Pool(i)
                } else {
                    Owner::Avoided(i)
                }
            }
            _ => Owner::None,
        }
    }

    /// Validates a pool against the pools before it in name order (already
    /// indexed). An invalid pool is not indexed, so it keeps no overlap.
    fn validate(&self, name: PoolName, spec: PoolSpec) -> Pool {
        let mut issues = Vec::new();
        let mut parsed: Vec<(usize, AddressRange)> = Vec::new();
        if spec.addresses.is_empty() {
            issues.push(PoolIssue::NoAddresses);
        }
        for (index, entry) in spec.addresses.iter().enumerate() {
            match AddressRange::parse(entry) {
                Ok(r) => parsed.push((index, r)),
                Err(error) => issues.push(PoolIssue::InvalidAddress {
                    index,
                    entry: entry.clone(),
                    error,
                }),
            }
        }
        if let Some(a) = &spec.service_allocation {
            for (list, sels) in [
                (SelectorList::Namespace, &a.namespace_selectors),
                (SelectorList::Service, &a.service_selectors),
            ] {
                for (index, s) in sels.iter().enumerate() {
                    if let Err(error) = s.validate() {
                        issues.push(PoolIssue::InvalidSelector { list, index, error });
                    }
                }
            }
        }
        let mut pool = Pool {
            name,
            spec,
            issues,
            ranges: [Vec::new(), Vec::new()],
            capacity: [0, 0],
        };
        if !pool.usable() {
            return pool;
        }
        // Overlaps within the pool: report each pair once, use the union.
        parsed.sort_by_key(|(i, r)| (*r, *i));
        for f in Family::ALL {
            let mut merged: Vec<(u128, u128)> = Vec::new();
            let mut last_entry: Option<(usize, u128)> = None;
            for (index, r) in parsed.iter().filter(|(_, r)| r.family() == f) {
                let (a, b) = (r.first_num(), r.last_num());
                if let Some((prev_index, prev_end)) = last_entry {
                    if a <= prev_end {
                        let (first, second) = (prev_index.min(*index), prev_index.max(*index));
                        pool.issues
                            .push(PoolIssue::OverlapWithinPool { first, second });
                    }
                }
                if last_entry.is_none_or(|(_, e)| b > e) {
                    last_entry = Some((*index, b));
                }
                match merged.last_mut() {
                    Some(m) if a <= m.1.saturating_add(1) => m.1 = m.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            // Overlaps with pools that sort first: they keep the overlap.
            let mut own = Vec::new();
            for (a, b) in merged {
                let earlier: Vec<(u128, u128, usize)> = self.index[f.index()]
                    .range(..=b)
                    .rev()
                    .take_while(|(_, &(end, _))| end >= a)
                    .map(|(&s, &(e, i))| (s, e, i))
                    .collect();
                // `None` once the rest of a..=b is taken.
                let mut cursor = Some(a);
                for (s, e, i) in earlier.into_iter().rev() {
                    let (os, oe) = (s.max(a), e.min(b));
                    pool.issues.push(PoolIssue::OverlapsPool {
                        pool: self.pools[i].name.clone(),
                        range: AddressRange::from_nums(f, os, oe),
                    });
                    if let Some(c) = cursor.filter(|c| *c < os) {
                        own.push((c, os - 1));
                    }
                    cursor = oe.checked_add(1).filter(|c| *c <= b);
                }
                if let Some(c) = cursor {
                    own.push((c, b));
                }
            }
            pool.capacity[f.index()] = own.iter().fold(0u128, |acc, &(a, b)| {
                acc.saturating_add(allowed_count(f, pool.avoid_buggy(f), a, b))
            });
            pool.ranges[f.index()] = own;
        }
        pool
    }
}

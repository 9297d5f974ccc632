//! The allocator: which Service holds which address, drawn from the pools.
//!
//! All state is in ordered maps and every choice has a total order, so the
//! same calls in the same order give the same result. Each operation costs
//! O(P log P + log n) for P pools and n held addresses (free addresses are
//! intervals, see [`super::free`]), so 10,000 Services allocate in
//! milliseconds.

use super::error::{AssignError, Holders, PoolNames};
use super::family::{from_num, to_num, Family};
use super::free::FreeSet;
use super::outcome::{
    AssignedAddress, Assignment, FamilyUsage, HoldWarning, MissingFamily, PoolStatus, RestoreDrop,
    Restored,
};
use super::pool::{Owner, PoolName, PoolSet, PoolSpec};
use super::request::{ServicePort, ServiceRequest, SharingKey};
use super::sharing::{may_join, ShareClass, ShareDenied};
use crate::state::ObjectKey;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One held address.
#[derive(Debug, Clone)]
struct Held {
    owner: Owner,
    class: ShareClass,
    holders: BTreeSet<ObjectKey>,
    /// Port → the holder using it.
    ports: BTreeMap<ServicePort, ObjectKey>,
}

/// What one Service holds, and the request it was last given with.
#[derive(Debug, Clone)]
struct Holding {
    request: ServiceRequest,
    /// Primary family first.
    ips: Vec<IpAddr>,
}

/// Allocates load-balancer addresses to Services from pools. Pure: no I/O,
/// no clock, no Kubernetes types.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: PoolSet,
    /// Per pool (index into `pools.pools`), per family.
    free: Vec<[FreeSet; 2]>,
    assigned: Vec<[u128; 2]>,
    addresses: BTreeMap<IpAddr, Held>,
    services: BTreeMap<ObjectKey, Holding>,
    /// Addresses whose holders share under a key.
    by_key: BTreeMap<SharingKey, BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator with no pools.
    pub fn new() -> Allocator {
        Allocator::default()
    }

    /// Replaces the pools. Held addresses stay with their Services whatever
    /// the new pools say (an address outside every pool is reported with a
    /// [`HoldWarning`] and never handed to another Service).
    pub fn set_pools(&mut self, pools: BTreeMap<PoolName, PoolSpec>) {
        self.pools = PoolSet::build(pools);
        self.free = self
            .pools
            .pools
            .iter()
            .map(|p| Family::ALL.map(|f| FreeSet::new(f, p.avoid_buggy(f), &p.ranges[f.index()])))
            .collect();
        self.assigned = vec![[0, 0]; self.pools.pools.len()];
        for (ip, held) in self.addresses.iter_mut() {
            let (f, n) = to_num(*ip);
            held.owner = self.pools.owner(f, n);
            if let Owner::Pool(i) = held.owner {
                self.free[i][f.index()].take(n);
                self.assigned[i][f.index()] += 1;
            }
        }
    }

    /// Gives a Service its addresses, or confirms or updates the ones it
    /// has. Call it on every reconcile of a Service the allocator serves.
    ///
    /// - A Service whose request is unchanged keeps its addresses, even
    ///   ones the current pools would not give it (reported as warnings);
    ///   a PreferDualStack Service missing a family tries again to get it.
    /// - A changed Service keeps each address that still fits (family,
    ///   requested address and pool, the pool still serves it, sharing
    ///   with the other holders still allowed) and gets new ones for the
    ///   rest.
    /// - On error the Service holds nothing (its status should be cleared).
    pub fn assign(&mut self, req: &ServiceRequest) -> Result<Assignment, AssignError> {
        match self.try_assign(req) {
            Ok(a) => Ok(a),
            Err(e) => {
                self.release(&req.key);
                Err(e)
            }
        }
    }

    /// Takes over the addresses a Service's status shows, on a new leader.
    /// Call it for every Service with addresses in its status before any
    /// `assign`, in the documented order. Never moves a Service: addresses
    /// are taken as they are, whatever the pools say; only the Service's own
    /// spec (families, requested addresses) or an earlier Service holding
    /// the address unshareably drops one.
    pub fn restore(&mut self, req: &ServiceRequest, addresses: &[IpAddr]) -> Restored {
        self.release(&req.key);
        let mut dropped = Vec::new();
        let wanted = match req.wanted() {
            Ok(w) => w,
            Err(e) => {
                let dropped = addresses
                    .iter()
                    .map(|ip| (*ip, RestoreDrop::InvalidRequest(e.clone())))
                    .collect();
                return Restored {
                    assignment: Assignment::default(),
                    dropped,
                };
            }
        };
        let mut kept: Vec<IpAddr> = Vec::new();
        for ip in addresses {
            let f = Family::of(*ip);
            if !wanted.families.contains(&f) {
                dropped.push((*ip, RestoreDrop::FamilyNotWanted(f)));
            } else if kept.iter().any(|k| Family::of(*k) == f) {
                dropped.push((*ip, RestoreDrop::DuplicateFamily(f)));
            } else if !req.requested_ips.is_empty() && !req.requested_ips.contains(ip) {
                dropped.push((*ip, RestoreDrop::NotRequested));
            } else if let Err((holders, reason)) = self.check_share(*ip, req) {
                dropped.push((*ip, RestoreDrop::HeldByOther { holders, reason }));
            } else {
                self.hold(*ip, req);
                kept.push(*ip);
            }
        }
        if !kept.is_empty() {
            sort_by_families(&mut kept, &wanted.families);
            self.services.insert(
                req.key.clone(),
                Holding {
                    request: req.clone(),
                    ips: kept,
                },
            );
        }
        Restored {
            assignment: self.assignment(&req.key).unwrap_or_default(),
            dropped,
        }
    }

    /// Frees a Service's addresses (deleted, no longer a LoadBalancer, or
    /// another class). Returns the addresses it held.
    pub fn release(&mut self, key: &ObjectKey) -> Vec<IpAddr> {
        let Some(h) = self.services.remove(key) else {
            return Vec::new();
        };
        for ip in &h.ips {
            self.unhold(*ip, key);
        }
        h.ips
    }

    /// A Service's current addresses, with warnings; `None` if it holds none.
    pub fn assignment(&self, key: &ObjectKey) -> Option<Assignment> {
        let h = self.services.get(key)?;
        let addresses = h
            .ips
            .iter()
            .map(|ip| self.describe(*ip, &h.request))
            .collect();
        Some(Assignment {
            addresses,
            missing: Vec::new(),
        })
    }

    /// Every Service holding addresses, in key order.
    pub fn services(&self) -> impl Iterator<Item = (&ObjectKey, &[IpAddr])> {
        self.services.iter().map(|(k, h)| (k, h.ips.as_slice()))
    }

    /// The Services holding an address.
    pub fn holders(&self, ip: IpAddr) -> Vec<ObjectKey> {
        self.addresses
            .get(&ip)
            .map(|h| h.holders.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Held addresses outside every pool, with their holders (for metrics
    /// and for operators cleaning up after shrinking a pool).
    pub fn outside_pools(&self) -> Vec<(IpAddr, Vec<ObjectKey>)> {
        self.addresses
            .iter()
            .filter(|(_, h)| !matches!(h.owner, Owner::Pool(_)))
            .map(|(ip, h)| (*ip, h.holders.iter().cloned().collect()))
            .collect()
    }

    /// Every pool's validity and usage, in name order.
    pub fn pool_statuses(&self) -> Vec<PoolStatus> {
        (0..self.pools.pools.len())
            .map(|i| self.pool_status_at(i))
            .collect()
    }

    /// One pool's validity and usage.
    pub fn pool_status(&self, name: &PoolName) -> Option<PoolStatus> {
        self.pools.find(name).map(|i| self.pool_status_at(i))
    }

    fn pool_status_at(&self, i: usize) -> PoolStatus {
        let p = &self.pools.pools[i];
        let usage = |f: Family| {
            let capacity = p.capacity[f.index()];
            let assigned = self.assigned[i][f.index()];
            FamilyUsage {
                capacity,
                assigned,
                free: capacity.saturating_sub(assigned),
            }
        };
        PoolStatus {
            name: p.name.clone(),
            valid: p.usable(),
            issues: p.issues.clone(),
            ipv4: usage(Family::V4),
            ipv6: usage(Family::V6),
        }
    }

    fn try_assign(&mut self, req: &ServiceRequest) -> Result<Assignment, AssignError> {
        let wanted = req.wanted()?;
        let mut keep: Vec<IpAddr> = Vec::new();
        let same = match self.services.get_mut(&req.key) {
            Some(h) => {
                let same = h.request.same_service(req);
                if same && wanted.families.iter().all(|f| has_family(&h.ips, *f)) {
                    // The common, level-triggered case: nothing to do but
                    // note new namespace labels (they only change warnings).
                    if h.request != *req {
                        h.request = req.clone();
                    }
                    return Ok(self.assignment(&req.key).unwrap_or_default());
                }
                same
            }
            None => false,
        };
        if let Some(h) = self.services.get(&req.key) {
            for ip in &h.ips {
                let f = Family::of(*ip);
                let fits = wanted.families.contains(&f)
                    && !has_family(&keep, f)
                    && (req.requested_ips.is_empty() || req.requested_ips.contains(ip))
                    && self.check_share(*ip, req).is_ok()
                    && (same || self.describe(*ip, req).warnings.is_empty());
                if fits {
                    keep.push(*ip);
                }
            }
        }
        // Re-hold what is kept under the new request (ports, key), then
        // fill the families still missing.
        self.release(&req.key);
        for ip in &keep {
            self.hold(*ip, req);
        }
        self.services.insert(
            req.key.clone(),
            Holding {
                request: req.clone(),
                ips: keep.clone(),
            },
        );
        let mut missing = Vec::new();
        for f in &wanted.families {
            if has_family(&keep, *f) {
                continue;
            }
            let got = if req.requested_ips.is_empty() {
                self.pick(req, *f)
            } else {
                match req.requested(*f) {
                    Some(ip) => self.check_requested(req, ip).map(|()| ip),
                    // PreferDualStack asking for one family only.
                    None => continue,
                }
            };
            match got {
                Ok(ip) => {
                    self.hold(ip, req);
                    keep.push(ip);
                    // Recorded at once, so that a later failure releases it.
                    if let Some(h) = self.services.get_mut(&req.key) {
                        h.ips.push(ip);
                    }
                }
                Err(error) if !wanted.all_required => {
                    missing.push(MissingFamily { family: *f, error })
                }
                Err(error) => return Err(error),
            }
        }
        if keep.is_empty() {
            return Err(match missing.into_iter().next() {
                Some(m) => m.error,
                None => AssignError::NoPoolMatches {
                    family: wanted.families[0],
                },
            });
        }
        sort_by_families(&mut keep, &wanted.families);
        if let Some(h) = self.services.get_mut(&req.key) {
            h.ips = keep;
        }
        let mut a = self.assignment(&req.key).unwrap_or_default();
        a.missing = missing;
        Ok(a)
    }

    /// Chooses an address of `family` for a Service that requests none.
    fn pick(&self, req: &ServiceRequest, family: Family) -> Result<IpAddr, AssignError> {
        let candidates = self.candidates(req, family)?;
        // A sharing key asks to be put together: join a held address of the
        // key in a candidate pool first (best pool, then lowest address).
        if let Some(ips) = req.sharing_key.as_ref().and_then(|k| self.by_key.get(k)) {
            let best = ips
                .iter()
                .filter(|ip| Family::of(**ip) == family)
                .filter_map(|ip| {
                    let Owner::Pool(i) = self.addresses.get(ip)?.owner else {
                        return None;
                    };
                    let rank = candidates.iter().position(|c| *c == i)?;
                    self.check_share(*ip, req).ok()?;
                    Some((rank, *ip))
                })
                .min();
            if let Some((_, ip)) = best {
                return Ok(ip);
            }
        }
        for &i in &candidates {
            if let Some(n) = self.free[i][family.index()].first() {
                return Ok(from_num(family, n));
            }
        }
        Err(AssignError::PoolExhausted {
            family,
            pools: PoolNames(
                candidates
                    .iter()
                    .map(|i| self.pools.pools[*i].name.clone())
                    .collect(),
            ),
        })
    }

    /// The pools a Service may get a `family` address from, best first:
    /// the requested pool alone; otherwise the usable `auto_assign` pools
    /// that serve it, pools with a `serviceAllocation` first by priority
    /// (0 last), then the most free addresses, then the name.
    fn candidates(&self, req: &ServiceRequest, family: Family) -> Result<Vec<usize>, AssignError> {
        if let Some(name) = &req.requested_pool {
            let i = self.requested_pool(req, name)?;
            if self.pools.pools[i].capacity[family.index()] == 0 {
                return Err(AssignError::PoolLacksFamily {
                    pool: name.clone(),
                    family,
                });
            }
            return Ok(vec![i]);
        }
        let mut c: Vec<usize> = (0..self.pools.pools.len())
            .filter(|&i| {
                let p = &self.pools.pools[i];
                p.usable() && p.spec.auto_assign && p.capacity[family.index()] > 0 && p.allows(req)
            })
            .collect();
        if c.is_empty() {
            return Err(AssignError::NoPoolMatches { family });
        }
        let free = |i: usize| {
            self.pools.pools[i].capacity[family.index()] - self.assigned[i][family.index()]
        };
        // Pools are indexed in name order, so the index breaks ties by name.
        c.sort_by_key(|&i| (self.pools.pools[i].rank(), Reverse(free(i)), i));
        Ok(c)
    }

    /// The index of a pool a Service names, if it may use it.
    fn requested_pool(&self, req: &ServiceRequest, name: &PoolName) -> Result<usize, AssignError> {
        let i = self
            .pools
            .find(name)
            .ok_or_else(|| AssignError::UnknownPool { pool: name.clone() })?;
        let p = &self.pools.pools[i];
        if let Some(issue) = p.issues.iter().find(|i| i.is_fatal()) {
            return Err(AssignError::PoolInvalid {
                pool: name.clone(),
                issue: issue.clone(),
            });
        }
        if !p.allows(req) {
            return Err(AssignError::PoolNotAllowed {
                pool: name.clone(),
                ip: None,
            });
        }
        Ok(i)
    }

    /// Whether a Service may have the address it requests.
    fn check_requested(&self, req: &ServiceRequest, ip: IpAddr) -> Result<(), AssignError> {
        let (f, n) = to_num(ip);
        let i = match self.pools.owner(f, n) {
            Owner::Pool(i) => i,
            Owner::Avoided(i) => {
                return Err(AssignError::RequestedIpNotInAnyPool {
                    ip,
                    avoided_by: Some(self.pools.pools[i].name.clone()),
                })
            }
            Owner::None => {
                return Err(AssignError::RequestedIpNotInAnyPool {
                    ip,
                    avoided_by: None,
                })
            }
        };
        let pool = &self.pools.pools[i];
        if let Some(name) = &req.requested_pool {
            self.requested_pool(req, name)?;
            if *name != pool.name {
                return Err(AssignError::RequestedIpNotInRequestedPool {
                    ip,
                    requested: name.clone(),
                    actual: pool.name.clone(),
                });
            }
        }
        if !pool.allows(req) {
            return Err(AssignError::PoolNotAllowed {
                pool: pool.name.clone(),
                ip: Some(ip),
            });
        }
        self.check_share(ip, req).map_err(|(holders, reason)| {
            if reason.is_key_mismatch() {
                AssignError::RequestedIpTaken {
                    ip,
                    holders,
                    reason,
                }
            } else {
                AssignError::SharingConflict {
                    ip,
                    holders,
                    reason,
                }
            }
        })
    }

    /// Whether `req` may hold `ip` beside its other holders (itself aside).
    fn check_share(&self, ip: IpAddr, req: &ServiceRequest) -> Result<(), (Holders, ShareDenied)> {
        let Some(held) = self.addresses.get(&ip) else {
            return Ok(());
        };
        let others: Vec<ObjectKey> = held
            .holders
            .iter()
            .filter(|k| **k != req.key)
            .cloned()
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        may_join(&held.class, &held.ports, req).map_err(|d| (Holders(others), d))
    }

    /// Records `req` as a holder of `ip`; the caller has checked sharing.
    fn hold(&mut self, ip: IpAddr, req: &ServiceRequest) {
        let (f, n) = to_num(ip);
        let held = match self.addresses.entry(ip) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let owner = self.pools.owner(f, n);
                if let Owner::Pool(i) = owner {
                    self.free[i][f.index()].take(n);
                    self.assigned[i][f.index()] += 1;
                }
                if let Some(k) = &req.sharing_key {
                    self.by_key.entry(k.clone()).or_default().insert(ip);
                }
                e.insert(Held {
                    owner,
                    class: ShareClass::of(req),
                    holders: BTreeSet::new(),
                    ports: BTreeMap::new(),
                })
            }
        };
        held.holders.insert(req.key.clone());
        for p in &req.ports {
            held.ports.insert(*p, req.key.clone());
        }
    }

    /// Removes `key` from the holders of `ip`; frees it if none is left.
    fn unhold(&mut self, ip: IpAddr, key: &ObjectKey) {
        let Some(held) = self.addresses.get_mut(&ip) else {
            return;
        };
        held.holders.remove(key);
        held.ports.retain(|_, k| k != key);
        if !held.holders.is_empty() {
            return;
        }
        let owner = held.owner;
        let class_key = held.class.key.clone();
        self.addresses.remove(&ip);
        let (f, n) = to_num(ip);
        if let Owner::Pool(i) = owner {
            self.free[i][f.index()].give_back(n);
            self.assigned[i][f.index()] -= 1;
        }
        if let Some(k) = class_key {
            if let Some(set) = self.by_key.get_mut(&k) {
                set.remove(&ip);
                if set.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
    }

    /// An address of a Service as the Service's request sees it now.
    fn describe(&self, ip: IpAddr, req: &ServiceRequest) -> AssignedAddress {
        let held = self.addresses.get(&ip);
        let owner = held.map_or(Owner::None, |h| h.owner);
        let mut warnings = Vec::new();
        let pool = match owner {
            Owner::Pool(i) => {
                let p = &self.pools.pools[i];
                if !p.allows(req) {
                    warnings.push(HoldWarning::PoolExcludesService {
                        ip,
                        pool: p.name.clone(),
                    });
                }
                Some(p.name.clone())
            }
            Owner::Avoided(i) => {
                warnings.push(HoldWarning::AvoidedByPool {
                    ip,
                    pool: self.pools.pools[i].name.clone(),
                });
                None
            }
            Owner::None => {
                warnings.push(HoldWarning::NotInAnyPool(ip));
                None
            }
        };
        if let (Some(requested), Some(actual)) = (&req.requested_pool, &pool) {
            if requested != actual {
                warnings.push(HoldWarning::NotInRequestedPool {
                    ip,
                    requested: requested.clone(),
                    actual: actual.clone(),
                });
            }
        }
        AssignedAddress {
            ip,
            pool,
            shared_with: held
                .map(|h| {
                    h.holders
                        .iter()
                        .filter(|k| **k != req.key)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            warnings,
        }
    }
}

fn has_family(ips: &[IpAddr], f: Family) -> bool {
    ips.iter().any(|ip| Family::of(*ip) == f)
}

/// Orders a Service's addresses as its `ipFamilies` (primary first).
fn sort_by_families(ips: &mut [IpAddr], families: &[Family]) {
    ips.sort_by_key(|ip| {
        families
            .iter()
            .position(|f| *f == Family::of(*ip))
            .unwrap_or(families.len())
    });
}

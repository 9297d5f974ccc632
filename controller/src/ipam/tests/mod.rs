//! Tests of the allocator core: parser and matcher tables, named sequence
//! tests of the allocator, and property tests over random histories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod free;
mod perf;
mod props;
mod range;
mod selector;
mod sequence;

use super::*;
use crate::state::ObjectKey;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
}

pub(super) fn key(s: &str) -> ObjectKey {
    let (ns, name) = s.split_once('/').unwrap_or(("default", s));
    ObjectKey::new(ns, name)
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Service request `ns/name` (default namespace without a slash).
pub(super) fn svc(s: &str) -> ServiceRequest {
    ServiceRequest::new(key(s))
}

/// Builders for requests, so each test line reads as the Service it is.
pub(super) trait Req: Sized {
    fn with(self, f: impl FnOnce(&mut ServiceRequest)) -> Self;
    fn v6(self) -> Self {
        self.with(|r| r.ip_families = vec![Family::V6])
    }
    fn prefer(self, families: &[Family]) -> Self {
        self.with(|r| {
            r.family_policy = FamilyPolicy::PreferDualStack;
            r.ip_families = families.to_vec();
        })
    }
    fn require(self, families: &[Family]) -> Self {
        self.with(|r| {
            r.family_policy = FamilyPolicy::RequireDualStack;
            r.ip_families = families.to_vec();
        })
    }
    fn ip(self, a: &str) -> Self {
        self.with(|r| r.requested_ips.push(ip(a)))
    }
    fn pool(self, p: &str) -> Self {
        self.with(|r| r.requested_pool = Some(PoolName::new(p)))
    }
    fn share(self, k: &str) -> Self {
        self.with(|r| r.sharing_key = SharingKey::new(k))
    }
    fn tcp(self, ports: &[u16]) -> Self {
        self.with(|r| {
            r.ports
                .extend(ports.iter().map(|p| ServicePort::new(Protocol::Tcp, *p)))
        })
    }
    fn udp(self, ports: &[u16]) -> Self {
        self.with(|r| {
            r.ports
                .extend(ports.iter().map(|p| ServicePort::new(Protocol::Udp, *p)))
        })
    }
    fn local(self, selector: &[(&str, &str)]) -> Self {
        self.with(|r| {
            r.traffic_policy = TrafficPolicy::Local;
            r.selector = labels(selector);
        })
    }
    fn labels(self, l: &[(&str, &str)]) -> Self {
        self.with(|r| r.labels = labels(l))
    }
    fn ns_labels(self, l: &[(&str, &str)]) -> Self {
        self.with(|r| r.namespace_labels = labels(l))
    }
}

impl Req for ServiceRequest {
    fn with(mut self, f: impl FnOnce(&mut ServiceRequest)) -> Self {
        f(&mut self);
        self
    }
}

/// A pool of these entries with the defaults.
pub(super) fn pool(addresses: &[&str]) -> PoolSpec {
    PoolSpec::new(addresses.iter().copied())
}

/// Builders for pools.
pub(super) trait Pool: Sized {
    fn with(self, f: impl FnOnce(&mut PoolSpec)) -> Self;
    fn alloc(self, f: impl FnOnce(&mut ServiceAllocation)) -> Self {
        self.with(|p| f(p.service_allocation.get_or_insert_with(Default::default)))
    }
    fn manual(self) -> Self {
        self.with(|p| p.auto_assign = false)
    }
    fn avoid_buggy(self) -> Self {
        self.with(|p| p.avoid_buggy_ips = true)
    }
    fn priority(self, n: u32) -> Self {
        self.alloc(|a| a.priority = n)
    }
    fn namespaces(self, ns: &[&str]) -> Self {
        self.alloc(|a| a.namespaces = ns.iter().map(|s| s.to_string()).collect())
    }
    fn ns_selector(self, l: &[(&str, &str)]) -> Self {
        self.alloc(|a| {
            a.namespace_selectors.push(LabelSelector {
                match_labels: labels(l),
                match_expressions: Vec::new(),
            })
        })
    }
    fn svc_selector(self, s: LabelSelector) -> Self {
        self.alloc(|a| a.service_selectors.push(s))
    }
}

impl Pool for PoolSpec {
    fn with(mut self, f: impl FnOnce(&mut PoolSpec)) -> Self {
        f(&mut self);
        self
    }
}

pub(super) fn pools(list: &[(&str, PoolSpec)]) -> BTreeMap<PoolName, PoolSpec> {
    list.iter()
        .map(|(n, p)| (PoolName::new(*n), p.clone()))
        .collect()
}

pub(super) fn allocator(list: &[(&str, PoolSpec)]) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(pools(list));
    a
}

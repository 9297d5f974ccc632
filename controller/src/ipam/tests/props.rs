//! Property tests over random histories of pool changes and Service
//! operations, checked against plain reference rules written here.

use super::super::{
    AddressRange, Allocator, Family, FamilyPolicy, PoolName, PoolSpec, PoolStatus, Protocol,
    ServiceAllocation, ServicePort, ServiceRequest, SharingKey, TrafficPolicy,
};
use super::{key, labels};
use crate::state::ObjectKey;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const POOLS: [&str; 3] = ["p0", "p1", "p2"];
const SERVICES: usize = 8;

/// A v4 address in a window that crosses a /24 boundary (.255/.0 matter).
fn v4(off: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(10, 0, 0, 240)) + off,
    ))
}

fn v6(off: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(
        u128::from("fd00::".parse::<Ipv6Addr>().unwrap()) + off,
    ))
}

fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u32..32, 0u32..8).prop_map(|(a, l)| format!("{}-{}", v4(a), v4(a + l))),
        3 => (0u128..32, 0u128..8).prop_map(|(a, l)| format!("{}-{}", v6(a), v6(a + l))),
        1 => Just("10.0.0.5/24".to_string()),
    ]
}

fn selector(key: &str, value: &str) -> super::super::LabelSelector {
    super::super::LabelSelector {
        match_labels: labels(&[(key, value)]),
        match_expressions: vec![],
    }
}

/// A `serviceAllocation`: priority, only namespace `a`, namespaces
/// labelled `env=prod`, only Services labelled `app=x`.
fn service_allocation() -> impl Strategy<Value = ServiceAllocation> {
    (
        0u32..3,
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(priority, only_a, prod, app_x)| ServiceAllocation {
            priority,
            namespaces: if only_a { vec!["a".into()] } else { vec![] },
            namespace_selectors: if prod {
                vec![selector("env", "prod")]
            } else {
                vec![]
            },
            service_selectors: if app_x {
                vec![selector("app", "x")]
            } else {
                vec![]
            },
        })
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        proptest::collection::vec(entry(), 1..4),
        prop::bool::weighted(0.8),
        any::<bool>(),
        prop::option::weighted(0.4, service_allocation()),
    )
        .prop_map(
            |(addresses, auto_assign, avoid_buggy_ips, service_allocation)| PoolSpec {
                addresses,
                auto_assign,
                avoid_buggy_ips,
                service_allocation,
            },
        )
}

fn pool_set() -> impl Strategy<Value = BTreeMap<PoolName, PoolSpec>> {
    proptest::collection::vec(prop::option::of(pool_spec()), 3).prop_map(|v| {
        v.into_iter()
            .zip(POOLS)
            .filter_map(|(p, n)| p.map(|p| (PoolName::new(n), p)))
            .collect()
    })
}

fn service_key(i: usize) -> ObjectKey {
    key(&format!("{}/s{i}", ["a", "b"][i % 2]))
}

fn request(i: usize) -> impl Strategy<Value = ServiceRequest> {
    let families = prop_oneof![
        Just((FamilyPolicy::SingleStack, vec![Family::V4])),
        Just((FamilyPolicy::SingleStack, vec![Family::V6])),
        Just((FamilyPolicy::PreferDualStack, vec![Family::V4, Family::V6])),
        Just((FamilyPolicy::PreferDualStack, vec![Family::V6, Family::V4])),
        Just((FamilyPolicy::RequireDualStack, vec![Family::V4, Family::V6])),
        Just((FamilyPolicy::RequireDualStack, vec![Family::V6, Family::V4])),
    ];
    (
        families,
        prop::option::weighted(0.2, 0u32..40),
        prop::option::weighted(0.1, 0u128..40),
        prop::option::weighted(0.15, 0usize..4),
        prop::option::weighted(0.6, prop_oneof![Just("k1"), Just("k2")]),
        proptest::collection::btree_set(0usize..3, 0..3),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(
            move |(fam, ip4, ip6, pool, share, ports, local, sel, prod)| {
                let mut r = ServiceRequest::new(service_key(i));
                r.family_policy = fam.0;
                r.ip_families = fam.1;
                r.requested_ips = ip4.map(v4).into_iter().chain(ip6.map(v6)).collect();
                r.requested_pool = pool.map(|p| PoolName::new(*POOLS.get(p).unwrap_or(&"nope")));
                r.sharing_key = share.and_then(SharingKey::new);
                let all = [
                    ServicePort::new(Protocol::Tcp, 80),
                    ServicePort::new(Protocol::Tcp, 443),
                    ServicePort::new(Protocol::Udp, 53),
                ];
                r.ports = ports.into_iter().map(|p| all[p]).collect();
                r.traffic_policy = if local {
                    TrafficPolicy::Local
                } else {
                    TrafficPolicy::Cluster
                };
                r.selector = match sel {
                    0 => labels(&[]),
                    1 => labels(&[("app", "x")]),
                    _ => labels(&[("app", "y")]),
                };
                r.labels = r.selector.clone();
                if prod {
                    r.namespace_labels = labels(&[("env", "prod")]);
                }
                r
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Pools(BTreeMap<PoolName, PoolSpec>),
    Assign(ServiceRequest),
    Release(usize),
    /// Assign a Service that holds nothing, release it, assign it again.
    RoundTrip(ServiceRequest),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => pool_set().prop_map(Op::Pools),
        8 => (0..SERVICES).prop_flat_map(request).prop_map(Op::Assign),
        2 => (0..SERVICES).prop_map(Op::Release),
        2 => (0..SERVICES).prop_flat_map(request).prop_map(Op::RoundTrip),
    ]
}

/// Everything observable, for comparing allocators.
#[derive(Debug, PartialEq)]
struct View {
    services: Vec<(ObjectKey, Vec<IpAddr>)>,
    pools: Vec<PoolStatus>,
}

fn view(a: &Allocator) -> View {
    View {
        services: a
            .services()
            .map(|(k, ips)| (k.clone(), ips.to_vec()))
            .collect(),
        pools: a.pool_statuses(),
    }
}

/// The sharing rule, written out plainly.
fn may_share(x: &ServiceRequest, y: &ServiceRequest) -> bool {
    let keys = matches!((&x.sharing_key, &y.sharing_key), (Some(a), Some(b)) if a == b);
    let ports = !x.ports.iter().any(|p| y.ports.contains(p));
    let policy = match (x.traffic_policy, y.traffic_policy) {
        (TrafficPolicy::Cluster, TrafficPolicy::Cluster) => true,
        (TrafficPolicy::Local, TrafficPolicy::Local) => {
            !x.selector.is_empty() && x.selector == y.selector
        }
        _ => false,
    };
    keys && ports && policy
}

fn pool_valid(p: &PoolSpec) -> bool {
    !p.addresses.is_empty() && p.addresses.iter().all(|e| AddressRange::parse(e).is_ok())
}

fn in_spec(p: &PoolSpec, ip: IpAddr) -> bool {
    pool_valid(p)
        && p.addresses
            .iter()
            .filter_map(|e| AddressRange::parse(e).ok())
            .any(|r| r.contains(ip))
}

fn buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(a) if matches!(a.octets()[3], 0 | 255))
}

/// Where a fresh address may come from, by the documented rules.
fn check_fresh(
    pools: &BTreeMap<PoolName, PoolSpec>,
    req: &ServiceRequest,
    ip: IpAddr,
    pool: &PoolName,
) -> Result<(), TestCaseError> {
    let spec = pools
        .get(pool)
        .ok_or_else(|| TestCaseError::fail("no such pool"))?;
    prop_assert!(in_spec(spec, ip), "{ip} not in {pool}");
    // The pool whose name sorts first keeps an overlap.
    for (n, p) in pools.range(..pool.clone()) {
        prop_assert!(!in_spec(p, ip), "{ip} of {pool} belongs to {n}");
    }
    prop_assert!(
        !(spec.avoid_buggy_ips && buggy(ip)),
        "{ip} is avoided by {pool}"
    );
    let wanted = match req.family_policy {
        FamilyPolicy::SingleStack => &req.ip_families[..1],
        _ => &req.ip_families[..],
    };
    prop_assert!(wanted.contains(&Family::of(ip)));
    if let Some(a) = &spec.service_allocation {
        let ns_ok = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
            || a.namespaces.contains(&req.key.namespace)
            || a.namespace_selectors
                .iter()
                .any(|s| s.matches(&req.namespace_labels));
        let svc_ok = a.service_selectors.is_empty()
            || a.service_selectors.iter().any(|s| s.matches(&req.labels));
        prop_assert!(ns_ok && svc_ok, "{pool} does not serve {}", req.key);
    }
    if !req.requested_ips.is_empty() {
        prop_assert!(req.requested_ips.contains(&ip));
    } else if let Some(p) = &req.requested_pool {
        prop_assert_eq!(p, pool);
    } else {
        prop_assert!(spec.auto_assign, "auto-assigned from manual pool {pool}");
    }
    Ok(())
}

struct Model {
    a: Allocator,
    pools: BTreeMap<PoolName, PoolSpec>,
    /// The last request each holding Service was given with.
    requests: BTreeMap<ObjectKey, ServiceRequest>,
}

impl Model {
    fn assign(&mut self, req: &ServiceRequest) -> Result<(), TestCaseError> {
        let before: Vec<IpAddr> = self
            .a
            .assignment(&req.key)
            .map(|x| x.ips())
            .unwrap_or_default();
        match self.a.assign(req) {
            Ok(got) => {
                prop_assert!(!got.addresses.is_empty());
                for addr in &got.addresses {
                    if before.contains(&addr.ip) {
                        continue;
                    }
                    prop_assert!(addr.warnings.is_empty(), "fresh {addr:?}");
                    let pool = addr
                        .pool
                        .as_ref()
                        .ok_or_else(|| TestCaseError::fail("no pool"))?;
                    check_fresh(&self.pools, req, addr.ip, pool)?;
                }
                if req.family_policy == FamilyPolicy::RequireDualStack {
                    prop_assert_eq!(got.addresses.len(), 2);
                }
                self.requests.insert(req.key.clone(), req.clone());
            }
            Err(_) => {
                prop_assert!(self.a.assignment(&req.key).is_none());
                self.requests.remove(&req.key);
            }
        }
        Ok(())
    }

    fn release(&mut self, k: &ObjectKey) {
        self.a.release(k);
        self.requests.remove(k);
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        // No address held by two Services that may not share it.
        let mut holders: BTreeMap<IpAddr, Vec<&ObjectKey>> = BTreeMap::new();
        for (k, ips) in self.a.services() {
            prop_assert!(self.requests.contains_key(k), "{k} holds without a request");
            let mut fams: Vec<Family> = ips.iter().map(|ip| Family::of(*ip)).collect();
            fams.dedup();
            prop_assert_eq!(fams.len(), ips.len(), "{} has two addresses of a family", k);
            for ip in ips {
                holders.entry(*ip).or_default().push(k);
            }
        }
        for (ip, hs) in &holders {
            let listed = self.a.holders(*ip);
            prop_assert_eq!(
                listed.iter().collect::<Vec<_>>(),
                hs.clone(),
                "holders of {}",
                ip
            );
            for (i, x) in hs.iter().enumerate() {
                for y in &hs[i + 1..] {
                    let (rx, ry) = (&self.requests[*x], &self.requests[*y]);
                    prop_assert!(may_share(rx, ry), "{ip} held by {x} and {y}: {rx:?} {ry:?}");
                }
            }
        }
        // Counts agree with the holdings.
        for s in self.a.pool_statuses() {
            for f in Family::ALL {
                let u = s.family(f);
                let held = holders
                    .keys()
                    .filter(|ip| Family::of(**ip) == f)
                    .filter(|ip| {
                        let k = holders[ip][0];
                        self.a.assignment(k).is_some_and(|x| {
                            x.addresses
                                .iter()
                                .any(|a| a.ip == **ip && a.pool.as_ref() == Some(&s.name))
                        })
                    })
                    .count() as u128;
                prop_assert_eq!(u.assigned, held, "{} {}", s.name, f);
                prop_assert_eq!(u.assigned + u.free, u.capacity);
            }
        }
        Ok(())
    }

    /// A fresh allocator fed every Service's addresses in `order`.
    fn restored(&self, order: &[ObjectKey]) -> Allocator {
        let mut b = Allocator::new();
        b.set_pools(self.pools.clone());
        for k in order {
            let ips = self.a.assignment(k).map(|x| x.ips()).unwrap_or_default();
            let r = b.restore(&self.requests[k], &ips);
            assert!(r.dropped.is_empty(), "{k}: {r:?}");
        }
        b
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_histories_keep_the_invariants(
        initial in pool_set(),
        ops in proptest::collection::vec(op(), 1..60),
        rotate in 0usize..SERVICES,
    ) {
        let mut m = Model { a: Allocator::new(), pools: initial.clone(), requests: BTreeMap::new() };
        m.a.set_pools(initial);
        for op in &ops {
            match op {
                Op::Pools(p) => {
                    m.pools = p.clone();
                    m.a.set_pools(p.clone());
                }
                Op::Assign(r) => m.assign(r)?,
                Op::Release(i) => m.release(&service_key(*i)),
                Op::RoundTrip(r) => {
                    m.release(&r.key);
                    let before = view(&m.a);
                    let first = m.a.assign(r);
                    let after = view(&m.a);
                    m.a.release(&r.key);
                    prop_assert_eq!(&view(&m.a), &before, "release after assign restores the state");
                    let second = m.a.assign(r);
                    prop_assert_eq!(&first, &second, "allocate again gives the same");
                    prop_assert_eq!(&view(&m.a), &after);
                    if second.is_ok() {
                        m.requests.insert(r.key.clone(), r.clone());
                    }
                }
            }
            m.check_invariants()?;
        }

        // Determinism: the same calls again give the same state.
        let mut again = Model { a: Allocator::new(), pools: BTreeMap::new(), requests: BTreeMap::new() };
        again.pools = m.pools.clone();

        // A restart: restoring every Service, in key order or any other,
        // reproduces the assignment, warnings included.
        let keys: Vec<ObjectKey> = m.requests.keys().cloned().collect();
        let mut rotated = keys.clone();
        rotated.rotate_left(rotate.min(keys.len()));
        rotated.reverse();
        for order in [&keys, &rotated] {
            let b = m.restored(order);
            prop_assert_eq!(view(&b), view(&m.a));
            for k in &keys {
                prop_assert_eq!(b.assignment(k), m.a.assignment(k));
            }
        }
        // And the new leader's first assign pass keeps every address.
        let mut b = m.restored(&keys);
        for k in &keys {
            let had = m.a.assignment(k).map(|x| x.ips()).unwrap_or_default();
            let got = b.assign(&m.requests[k]);
            prop_assert!(got.is_ok(), "{}: {:?}", k, got);
            let got = got.map(|g| g.ips()).unwrap_or_default();
            prop_assert!(had.iter().all(|ip| got.contains(ip)), "{k} moved: {had:?} -> {got:?}");
        }
    }

    #[test]
    fn same_calls_same_result(
        initial in pool_set(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let run = || {
            let mut a = Allocator::new();
            a.set_pools(initial.clone());
            let mut results = Vec::new();
            for op in &ops {
                match op {
                    Op::Pools(p) => a.set_pools(p.clone()),
                    Op::Assign(r) | Op::RoundTrip(r) => results.push(a.assign(r)),
                    Op::Release(i) => { a.release(&service_key(*i)); }
                }
            }
            (results, view(&a))
        };
        prop_assert_eq!(run(), run());
    }
}

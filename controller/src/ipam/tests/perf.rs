//! A measurement, not a timing test (timing goals belong in benchmarks):
//! `cargo test -p gatehouse-controller --release ipam::tests::perf -- --ignored --nocapture`.

use super::super::{
    Allocator, Family, FamilyPolicy, PoolName, PoolSpec, ServiceRequest, SharingKey,
};
use super::{key, pool, Pool, Req};
use std::collections::BTreeMap;
use std::time::Instant;

/// 10,000 Services over four pools (two restricted by namespace, one
/// dual-stack), a tenth of them dual-stack, a fifth sharing in pairs; then
/// a restart (restore all), a no-op reconcile of all, and releasing all.
#[test]
#[ignore]
fn ten_thousand_services() {
    let pools: BTreeMap<PoolName, PoolSpec> = [
        (
            "a-team",
            pool(&["10.1.0.0/20"])
                .namespaces(&["ns0", "ns1"])
                .priority(1),
        ),
        ("b-general", pool(&["10.2.0.0/19"]).avoid_buggy()),
        ("c-general", pool(&["10.3.0.0/19", "fd00::/112"])),
        ("d-v6", pool(&["fd01::/64"])),
    ]
    .into_iter()
    .map(|(n, p)| (PoolName::new(n), p))
    .collect();
    let reqs: Vec<ServiceRequest> = (0..10_000)
        .map(|i| {
            let mut r = ServiceRequest::new(key(&format!("ns{}/svc{i}", i % 20)))
                .tcp(&[80 + (i % 2) as u16]);
            if i % 10 == 3 {
                r.family_policy = FamilyPolicy::RequireDualStack;
                r.ip_families = vec![Family::V4, Family::V6];
            }
            if i % 10 == 5 || i % 10 == 6 {
                // Ports 81 and 80: each pair shares one address.
                r.sharing_key = SharingKey::new(format!("pair{}", i / 10));
            }
            r
        })
        .collect();
    let mut a = Allocator::new();
    a.set_pools(pools.clone());
    let t = Instant::now();
    for r in &reqs {
        a.assign(r).unwrap();
    }
    let assign = t.elapsed();
    let t = Instant::now();
    for r in &reqs {
        a.assign(r).unwrap();
    }
    let reconcile = t.elapsed();
    let status: Vec<_> = reqs
        .iter()
        .map(|r| a.assignment(&r.key).unwrap().ips())
        .collect();
    let t = Instant::now();
    let mut b = Allocator::new();
    b.set_pools(pools.clone());
    for (r, ips) in reqs.iter().zip(&status) {
        b.restore(r, ips);
    }
    let restore = t.elapsed();
    let t = Instant::now();
    b.set_pools(pools);
    let set_pools = t.elapsed();
    let t = Instant::now();
    for r in &reqs {
        b.release(&r.key);
    }
    let release = t.elapsed();
    println!(
        "10,000 Services: assign {assign:?}, no-op reconcile {reconcile:?}, restore {restore:?}, set_pools with all held {set_pools:?}, release {release:?}"
    );
    for s in a.pool_statuses() {
        println!(
            "{} v4 {}/{} v6 {}/{}",
            s.name, s.ipv4.assigned, s.ipv4.capacity, s.ipv6.assigned, s.ipv6.capacity
        );
    }
}

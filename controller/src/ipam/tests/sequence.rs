//! Named, table-driven sequence tests: each case is a history of pool
//! changes and Service operations, and says what it proves.

use super::super::{
    Allocator, Family, LabelSelector, PoolName, PoolSpec, SelectorOperator, ServiceRequest,
};
use super::*;
use Family::{V4, V6};

enum Step {
    /// `assign` and what it must return.
    Assign(ServiceRequest, Want),
    /// `restore` from these status addresses; the addresses kept and how
    /// many were dropped.
    Restore(
        ServiceRequest,
        &'static [&'static str],
        &'static [&'static str],
        usize,
    ),
    /// `release`, and the addresses it must return.
    Release(&'static str, &'static [&'static str]),
    /// Replace the pools.
    Pools(Vec<(&'static str, PoolSpec)>),
    /// Pool, family, capacity, assigned.
    Usage(&'static str, Family, u128, u128),
    /// What a Service holds now.
    Holds(&'static str, &'static [&'static str]),
    /// A pool's issue reasons, and whether it is valid.
    Issues(&'static str, &'static [&'static str], bool),
}

enum Want {
    /// These addresses, no warnings, nothing missing.
    Ips(&'static [&'static str]),
    /// These addresses with these warning reasons.
    Warned(&'static [&'static str], &'static [&'static str]),
    /// These addresses, and these reasons for the families missing.
    Partial(&'static [&'static str], &'static [&'static str]),
    /// This error reason; the Service then holds nothing.
    Fails(&'static str),
}
use Step::*;
use Want::*;

struct Case {
    name: &'static str,
    proves: &'static str,
    pools: Vec<(&'static str, PoolSpec)>,
    steps: Vec<Step>,
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

fn run(case: &Case) {
    let mut a: Allocator = allocator(&case.pools);
    for (n, step) in case.steps.iter().enumerate() {
        let at = format!("case {:?} ({}), step {n}", case.name, case.proves);
        match step {
            Assign(req, want) => {
                let got = a.assign(req);
                match (want, &got) {
                    (Fails(reason), Err(e)) => {
                        assert_eq!(e.reason(), *reason, "{at}: {e}");
                        assert!(
                            a.assignment(&req.key).is_none(),
                            "{at}: holds after failing"
                        );
                    }
                    (Fails(reason), Ok(got)) => panic!("{at}: wanted {reason}, got {got:?}"),
                    (_, Err(e)) => panic!("{at}: failed with {e} ({})", e.reason()),
                    (Ips(want), Ok(got)) => {
                        assert_eq!(got.ips(), ips(want), "{at}");
                        assert!(
                            !got.has_warnings() && got.missing.is_empty(),
                            "{at}: {got:?}"
                        );
                    }
                    (Warned(want, reasons), Ok(got)) => {
                        assert_eq!(got.ips(), ips(want), "{at}");
                        let r: Vec<&str> = got
                            .addresses
                            .iter()
                            .flat_map(|x| x.warnings.iter().map(|w| w.reason()))
                            .collect();
                        assert_eq!(r, *reasons, "{at}");
                    }
                    (Partial(want, reasons), Ok(got)) => {
                        assert_eq!(got.ips(), ips(want), "{at}");
                        let r: Vec<&str> = got.missing.iter().map(|m| m.error.reason()).collect();
                        assert_eq!(r, *reasons, "{at}");
                    }
                }
            }
            Restore(req, status, kept, dropped) => {
                let r = a.restore(req, &ips(status));
                assert_eq!(r.assignment.ips(), ips(kept), "{at}: {r:?}");
                assert_eq!(r.dropped.len(), *dropped, "{at}: {r:?}");
            }
            Release(k, want) => assert_eq!(a.release(&key(k)), ips(want), "{at}"),
            Pools(list) => a.set_pools(pools(list)),
            Usage(p, f, capacity, assigned) => {
                let s = a.pool_status(&PoolName::new(*p)).unwrap();
                let u = s.family(*f);
                assert_eq!(
                    (u.capacity, u.assigned),
                    (*capacity, *assigned),
                    "{at}: {s:?}"
                );
                assert_eq!(u.free, capacity - assigned, "{at}");
            }
            Holds(k, want) => {
                let got = a.assignment(&key(k)).map(|x| x.ips()).unwrap_or_default();
                assert_eq!(got, ips(want), "{at}");
            }
            Issues(p, reasons, valid) => {
                let s = a.pool_status(&PoolName::new(*p)).unwrap();
                let r: Vec<&str> = s.issues.iter().map(|i| i.reason()).collect();
                assert_eq!(
                    (r.as_slice(), s.valid),
                    (*reasons, *valid),
                    "{at}: {:?}",
                    s.issues
                );
            }
        }
    }
}

fn in_values(key: &str, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_labels: Default::default(),
        match_expressions: vec![super::super::LabelRequirement {
            key: key.into(),
            operator: SelectorOperator::In(values.iter().map(|v| v.to_string()).collect()),
        }],
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "lowest free first",
            proves: "a pool hands out its lowest free address",
            pools: vec![("a", pool(&["10.0.0.0/30"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Assign(svc("s2"), Ips(&["10.0.0.1"])),
                Usage("a", V4, 4, 2),
            ],
        },
        Case {
            name: "priority",
            proves: "pools with serviceAllocation come first, lower priority first, 0 last; then pools without",
            pools: vec![
                ("a-none", pool(&["10.0.1.1/32"])),
                ("b-prio0", pool(&["10.0.2.1/32"]).priority(0)),
                ("c-prio2", pool(&["10.0.3.1/32"]).priority(2)),
                ("d-prio1", pool(&["10.0.4.1/32"]).priority(1)),
            ],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.4.1"])),
                Assign(svc("s2"), Ips(&["10.0.3.1"])),
                Assign(svc("s3"), Ips(&["10.0.2.1"])),
                Assign(svc("s4"), Ips(&["10.0.1.1"])),
                Assign(svc("s5"), Fails("PoolExhausted")),
            ],
        },
        Case {
            name: "namespaces",
            proves: "a pool restricted to namespaces serves only them, before unrestricted pools, also when named",
            pools: vec![
                ("shared", pool(&["10.0.0.0/24"])),
                ("team", pool(&["10.1.0.0/24"]).namespaces(&["team-a"])),
            ],
            steps: vec![
                Assign(svc("team-a/s1"), Ips(&["10.1.0.0"])),
                Assign(svc("other/s2"), Ips(&["10.0.0.0"])),
                Assign(svc("other/s3").pool("team"), Fails("PoolNotAllowed")),
                Assign(svc("team-a/s4"), Ips(&["10.1.0.1"])),
            ],
        },
        Case {
            name: "namespace selectors",
            proves: "namespace selectors match the namespace's labels; a namespace list and selectors are alternatives",
            pools: vec![
                ("either", pool(&["10.3.0.0/24"]).namespaces(&["ops"]).ns_selector(&[("tier", "infra")])),
                ("labelled", pool(&["10.2.0.0/24"]).ns_selector(&[("env", "prod")])),
                ("shared", pool(&["10.0.0.0/24"])),
            ],
            steps: vec![
                Assign(svc("prod/s1").ns_labels(&[("env", "prod")]), Ips(&["10.2.0.0"])),
                Assign(svc("dev/s2").ns_labels(&[("env", "dev")]), Ips(&["10.0.0.0"])),
                Assign(svc("ops/s3"), Ips(&["10.3.0.0"])),
                Assign(svc("infra/s4").ns_labels(&[("tier", "infra")]), Ips(&["10.3.0.1"])),
            ],
        },
        Case {
            name: "service selectors",
            proves: "one matching service selector suffices, and namespaces must match as well",
            pools: vec![
                ("shared", pool(&["10.0.0.0/24"])),
                ("web", pool(&["10.4.0.0/24"]).namespaces(&["prod"]).svc_selector(in_values("app", &["web", "api"]))),
            ],
            steps: vec![
                Assign(svc("prod/w").labels(&[("app", "web")]), Ips(&["10.4.0.0"])),
                Assign(svc("prod/db").labels(&[("app", "db")]), Ips(&["10.0.0.0"])),
                Assign(svc("dev/w").labels(&[("app", "web")]), Ips(&["10.0.0.1"])),
            ],
        },
        Case {
            name: "autoAssign false",
            proves: "a manual pool is used only when a Service names it or one of its addresses",
            pools: vec![
                ("auto", pool(&["10.0.0.0/32"])),
                ("manual", pool(&["10.9.0.0/30"]).manual()),
            ],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Assign(svc("s2"), Fails("PoolExhausted")),
                Assign(svc("s3").pool("manual"), Ips(&["10.9.0.0"])),
                Assign(svc("s4").ip("10.9.0.3"), Ips(&["10.9.0.3"])),
                Pools(vec![("manual", pool(&["10.9.0.0/30"]).manual())]),
                Assign(svc("s5"), Fails("NoPoolMatches")),
            ],
        },
        Case {
            name: "requested IP",
            proves: "a requested address is given exactly, and refused with the right reason when it cannot be",
            pools: vec![("a", pool(&["10.0.0.0/29"]))],
            steps: vec![
                Assign(svc("s1").ip("10.0.0.5"), Ips(&["10.0.0.5"])),
                Assign(svc("s2"), Ips(&["10.0.0.0"])),
                Assign(svc("s3").ip("10.0.0.5"), Fails("RequestedIPTaken")),
                Assign(svc("s4").ip("192.168.0.1"), Fails("RequestedIPNotInAnyPool")),
                Assign(svc("s5").ip("fd00::1"), Fails("RequestedIPFamilyMismatch")),
                Assign(svc("s6"), Ips(&["10.0.0.1"])),
            ],
        },
        Case {
            name: "requested pool",
            proves: "a named pool is used alone; unknown, invalid or unsuitable pools are refused",
            pools: vec![
                ("a", pool(&["10.0.0.0/24"])),
                ("b", pool(&["10.1.0.0/24"])),
                ("bad", pool(&["10.2.0.5/24"])),
            ],
            steps: vec![
                Assign(svc("s1").pool("b"), Ips(&["10.1.0.0"])),
                Assign(svc("s2").pool("zzz"), Fails("UnknownPool")),
                Assign(svc("s3").pool("a").ip("10.1.0.9"), Fails("RequestedIPNotInRequestedPool")),
                Assign(svc("s4").pool("b").v6(), Fails("NoPoolMatches")),
                Assign(svc("s5").pool("bad"), Fails("PoolInvalid")),
                Assign(svc("s6").pool("b").ip("10.1.0.9"), Ips(&["10.1.0.9"])),
            ],
        },
        Case {
            name: "exhaustion",
            proves: "an exhausted pool fails only the Service asking, and a release makes room again",
            pools: vec![("a", pool(&["10.0.0.0/31"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Assign(svc("s2"), Ips(&["10.0.0.1"])),
                Assign(svc("s3"), Fails("PoolExhausted")),
                Holds("s1", &["10.0.0.0"]),
                Holds("s2", &["10.0.0.1"]),
                Usage("a", V4, 2, 2),
                Release("s1", &["10.0.0.0"]),
                Assign(svc("s3"), Ips(&["10.0.0.0"])),
            ],
        },
        Case {
            name: "RequireDualStack",
            proves: "one address of each family or none: a failure in either family gives back the other",
            pools: vec![("v4", pool(&["10.0.0.0/32"])), ("v6", pool(&["fd00::/127"]))],
            steps: vec![
                Assign(svc("s1").require(&[V4, V6]), Ips(&["10.0.0.0", "fd00::"])),
                Assign(svc("s2").require(&[V4, V6]), Fails("PoolExhausted")),
                Assign(svc("s3").require(&[V6, V4]), Fails("PoolExhausted")),
                Usage("v6", V6, 2, 1),
                Assign(svc("s4").v6(), Ips(&["fd00::1"])),
                Assign(svc("s5").require(&[V4]), Fails("InvalidIPFamilies")),
            ],
        },
        Case {
            name: "PreferDualStack",
            proves: "PreferDualStack gets what it can, keeps it, and gains the missing family when a pool appears",
            pools: vec![("v4", pool(&["10.0.0.0/30"]))],
            steps: vec![
                Assign(svc("s1").prefer(&[V4, V6]), Partial(&["10.0.0.0"], &["NoPoolMatches"])),
                Pools(vec![("v4", pool(&["10.0.0.0/30"])), ("v6", pool(&["fd00::/120"]))]),
                Assign(svc("s1").prefer(&[V4, V6]), Ips(&["10.0.0.0", "fd00::"])),
                Assign(svc("s2").prefer(&[V6, V4]), Ips(&["fd00::1", "10.0.0.1"])),
                Assign(svc("s3").prefer(&[V4, V6]).ip("fd00::5"), Ips(&["fd00::5"])),
            ],
        },
        Case {
            name: "dual-stack requested addresses",
            proves: "requested addresses must fit the families: one per family, both for RequireDualStack",
            pools: vec![("dual", pool(&["10.0.0.0/30", "fd00::/126"]))],
            steps: vec![
                Assign(svc("s1").require(&[V4, V6]).ip("10.0.0.1"), Fails("RequestedIPFamilyMismatch")),
                Assign(svc("s2").prefer(&[V4, V6]).ip("10.0.0.1").ip("10.0.0.2"), Fails("RequestedIPFamilyMismatch")),
                Assign(svc("s3").require(&[V4, V6]).ip("fd00::1").ip("10.0.0.1"), Ips(&["10.0.0.1", "fd00::1"])),
                Assign(svc("s4").require(&[V6, V4]), Ips(&["fd00::", "10.0.0.0"])),
            ],
        },
        Case {
            name: "IPv6 ranges",
            proves: "first-last IPv6 ranges and big IPv6 CIDRs allocate and count",
            pools: vec![("big", pool(&["fd01::/64"]).manual()), ("v6", pool(&["fd00::10-fd00::12"]))],
            steps: vec![
                Assign(svc("s1").v6(), Ips(&["fd00::10"])),
                Assign(svc("s2").v6(), Ips(&["fd00::11"])),
                Assign(svc("s3").v6(), Ips(&["fd00::12"])),
                Assign(svc("s4").v6(), Fails("PoolExhausted")),
                Usage("v6", V6, 3, 3),
                Usage("v6", V4, 0, 0),
                Assign(svc("s5").v6().pool("big"), Ips(&["fd01::"])),
                Usage("big", V6, 1 << 64, 1),
            ],
        },
        Case {
            name: "sharing by ports",
            proves: "the same key shares an address unless a (protocol, port) collides; no key or another key never shares",
            pools: vec![("a", pool(&["10.0.0.0/30"]))],
            steps: vec![
                Assign(svc("s1").share("k").tcp(&[80]), Ips(&["10.0.0.0"])),
                Assign(svc("s2").share("k").tcp(&[443]), Ips(&["10.0.0.0"])),
                Assign(svc("s3").share("k").tcp(&[80]), Ips(&["10.0.0.1"])),
                Assign(svc("s4").share("k").udp(&[80]), Ips(&["10.0.0.0"])),
                Usage("a", V4, 4, 2),
                Assign(svc("s5").ip("10.0.0.0").share("k").tcp(&[443]), Fails("SharingConflict")),
                Assign(svc("s6").ip("10.0.0.0").tcp(&[8080]), Fails("RequestedIPTaken")),
                Assign(svc("s7").ip("10.0.0.0").share("other").tcp(&[8080]), Fails("RequestedIPTaken")),
                Assign(svc("s8").ip("10.0.0.0").share("k").tcp(&[8080]), Ips(&["10.0.0.0"])),
                Release("s1", &["10.0.0.0"]),
                Holds("s2", &["10.0.0.0"]),
                Usage("a", V4, 4, 2),
            ],
        },
        Case {
            name: "sharing by traffic policy",
            proves: "Local Services share only with Local Services of the same non-empty selector, never with Cluster ones",
            pools: vec![("a", pool(&["10.0.0.0/29"]))],
            steps: vec![
                Assign(svc("a").share("k").tcp(&[80]).local(&[("app", "x")]), Ips(&["10.0.0.0"])),
                Assign(svc("b").share("k").tcp(&[81]).local(&[("app", "x")]), Ips(&["10.0.0.0"])),
                Assign(svc("c").share("k").tcp(&[82]).local(&[("app", "y")]), Ips(&["10.0.0.1"])),
                Assign(svc("d").share("k").tcp(&[83]), Ips(&["10.0.0.2"])),
                Assign(svc("e").share("k").tcp(&[84]), Ips(&["10.0.0.2"])),
                Assign(svc("f").ip("10.0.0.0").share("k").tcp(&[85]), Fails("SharingConflict")),
                Assign(svc("g").share("k").tcp(&[86]).local(&[]), Ips(&["10.0.0.3"])),
                Assign(svc("h").ip("10.0.0.3").share("k").tcp(&[87]).local(&[]), Fails("SharingConflict")),
                Assign(svc("i").ip("10.0.0.1").share("k").tcp(&[88]).local(&[("app", "x")]), Fails("SharingConflict")),
            ],
        },
        Case {
            name: "sharing changes",
            proves: "a sharer whose new ports collide moves; a sole holder may change its key in place",
            pools: vec![("a", pool(&["10.0.0.0/29"]))],
            steps: vec![
                Assign(svc("a").share("k").tcp(&[80]), Ips(&["10.0.0.0"])),
                Assign(svc("b").share("k").tcp(&[443]), Ips(&["10.0.0.0"])),
                Assign(svc("b").share("k").tcp(&[80]), Ips(&["10.0.0.1"])),
                Holds("a", &["10.0.0.0"]),
                Assign(svc("a").share("k2").tcp(&[80]), Ips(&["10.0.0.0"])),
                Assign(svc("c").share("k").tcp(&[8080]), Ips(&["10.0.0.1"])),
                Assign(svc("d").share("k2").tcp(&[8080]), Ips(&["10.0.0.0"])),
            ],
        },
        Case {
            name: "dual-stack sharing",
            proves: "sharing applies to each family's address",
            pools: vec![("dual", pool(&["10.0.0.0/30", "fd00::/126"]))],
            steps: vec![
                Assign(svc("a").require(&[V4, V6]).share("k").tcp(&[80]), Ips(&["10.0.0.0", "fd00::"])),
                Assign(svc("b").require(&[V4, V6]).share("k").tcp(&[443]), Ips(&["10.0.0.0", "fd00::"])),
                Assign(svc("c").v6().share("k").tcp(&[80]), Ips(&["fd00::1"])),
                Usage("dual", V6, 4, 2),
            ],
        },
        Case {
            name: "release and reallocate",
            proves: "a released address is free again and handed out lowest first",
            pools: vec![("a", pool(&["10.0.0.0/30"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Assign(svc("s2"), Ips(&["10.0.0.1"])),
                Release("s1", &["10.0.0.0"]),
                Release("s1", &[]),
                Usage("a", V4, 4, 1),
                Assign(svc("s3"), Ips(&["10.0.0.0"])),
                Release("s3", &["10.0.0.0"]),
                Release("s2", &["10.0.0.1"]),
                Usage("a", V4, 4, 0),
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
            ],
        },
        Case {
            name: "update keeps address",
            proves: "a changed Service keeps its address while it fits, and moves only when it asks for another",
            pools: vec![("a", pool(&["10.0.0.0/29"]))],
            steps: vec![
                Assign(svc("s1").tcp(&[80]), Ips(&["10.0.0.0"])),
                Assign(svc("s2"), Ips(&["10.0.0.1"])),
                Assign(svc("s1").tcp(&[80, 443]).labels(&[("v", "2")]), Ips(&["10.0.0.0"])),
                Assign(svc("s1").ip("10.0.0.5"), Ips(&["10.0.0.5"])),
                Assign(svc("s1"), Ips(&["10.0.0.5"])),
                Usage("a", V4, 8, 2),
                Assign(svc("s3"), Ips(&["10.0.0.0"])),
            ],
        },
        Case {
            name: "failure releases",
            proves: "a Service whose request cannot be met holds nothing afterwards; others are untouched",
            pools: vec![("a", pool(&["10.0.0.0/30"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Assign(svc("s2"), Ips(&["10.0.0.1"])),
                Assign(svc("s1").ip("192.168.0.1"), Fails("RequestedIPNotInAnyPool")),
                Holds("s1", &[]),
                Holds("s2", &["10.0.0.1"]),
                Usage("a", V4, 4, 1),
            ],
        },
        Case {
            name: "pool shrink keeps addresses",
            proves: "addresses outside a shrunk pool stay with a warning and are never handed to another Service",
            pools: vec![("a", pool(&["10.0.0.0/29"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Assign(svc("s2"), Ips(&["10.0.0.1"])),
                Assign(svc("s3"), Ips(&["10.0.0.2"])),
                Pools(vec![("a", pool(&["10.0.0.0/31"]))]),
                Assign(svc("s3"), Warned(&["10.0.0.2"], &["AddressNotInAnyPool"])),
                Holds("s3", &["10.0.0.2"]),
                Usage("a", V4, 2, 2),
                Assign(svc("s4"), Fails("PoolExhausted")),
                Assign(svc("s5").ip("10.0.0.2"), Fails("RequestedIPNotInAnyPool")),
                Pools(vec![("a", pool(&["10.0.0.0/29"]))]),
                Assign(svc("s4"), Ips(&["10.0.0.3"])),
                Assign(svc("s5").ip("10.0.0.2"), Fails("RequestedIPTaken")),
                Assign(svc("s3"), Ips(&["10.0.0.2"])),
            ],
        },
        Case {
            name: "pool deletion",
            proves: "a deleted pool's addresses stay until the Service changes (namespace labels are not a change)",
            pools: vec![("a", pool(&["10.0.0.0/30"])), ("b", pool(&["10.1.0.0/30"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Pools(vec![("b", pool(&["10.1.0.0/30"]))]),
                Assign(svc("s1"), Warned(&["10.0.0.0"], &["AddressNotInAnyPool"])),
                Assign(svc("s1").ns_labels(&[("x", "y")]), Warned(&["10.0.0.0"], &["AddressNotInAnyPool"])),
                Assign(svc("s1").tcp(&[80]), Ips(&["10.1.0.0"])),
            ],
        },
        Case {
            name: "pool stops serving a Service",
            proves: "an address whose pool no longer serves the Service stays with a warning until the Service changes",
            pools: vec![("a", pool(&["10.0.0.0/30"]))],
            steps: vec![
                Assign(svc("x/s1"), Ips(&["10.0.0.0"])),
                Pools(vec![("a", pool(&["10.0.0.0/30"]).namespaces(&["y"])), ("b", pool(&["10.1.0.0/30"]))]),
                Assign(svc("x/s1"), Warned(&["10.0.0.0"], &["PoolExcludesService"])),
                Assign(svc("x/s1").labels(&[("v", "2")]), Ips(&["10.1.0.0"])),
                Assign(svc("y/s2"), Ips(&["10.0.0.0"])),
            ],
        },
        Case {
            name: "namespace labels",
            proves: "a namespace label change is not a Service change: it only turns warnings on and off",
            pools: vec![("prod", pool(&["10.0.0.0/30"]).ns_selector(&[("env", "prod")]))],
            steps: vec![
                Assign(svc("web/s1").ns_labels(&[("env", "prod")]), Ips(&["10.0.0.0"])),
                Assign(svc("web/s1").ns_labels(&[("env", "dev")]), Warned(&["10.0.0.0"], &["PoolExcludesService"])),
                Holds("web/s1", &["10.0.0.0"]),
                Assign(svc("web/s2").ns_labels(&[("env", "dev")]), Fails("NoPoolMatches")),
                Assign(svc("web/s1").ns_labels(&[("env", "prod")]), Ips(&["10.0.0.0"])),
            ],
        },
        Case {
            name: "restore reproduces assignment",
            proves: "restore takes status addresses as they are (even outside pools); the earlier Service wins a clash",
            pools: vec![("a", pool(&["10.0.0.0/29"]))],
            steps: vec![
                Restore(svc("s1"), &["10.0.0.5"], &["10.0.0.5"], 0),
                Restore(svc("s2").share("k").tcp(&[80]), &["10.0.0.3"], &["10.0.0.3"], 0),
                Restore(svc("s3").share("k").tcp(&[443]), &["10.0.0.3"], &["10.0.0.3"], 0),
                Restore(svc("s4"), &["192.168.1.1"], &["192.168.1.1"], 0),
                Restore(svc("s5"), &["10.0.0.5"], &[], 1),
                Usage("a", V4, 8, 2),
                Assign(svc("s1"), Ips(&["10.0.0.5"])),
                Assign(svc("s4"), Warned(&["192.168.1.1"], &["AddressNotInAnyPool"])),
                Assign(svc("s6"), Ips(&["10.0.0.0"])),
                Assign(svc("s5"), Ips(&["10.0.0.1"])),
            ],
        },
        Case {
            name: "restore follows the Service's spec",
            proves: "restore drops status addresses the Service's own spec no longer asks for, and only those",
            pools: vec![("a", pool(&["10.0.0.0/29", "fd00::/126"]))],
            steps: vec![
                Restore(svc("s1"), &["10.0.0.1", "fd00::1"], &["10.0.0.1"], 1),
                Restore(svc("s2").ip("10.0.0.2"), &["10.0.0.3"], &[], 1),
                Assign(svc("s2").ip("10.0.0.2"), Ips(&["10.0.0.2"])),
                Restore(svc("s3").require(&[V6, V4]), &["10.0.0.4", "fd00::3"], &["fd00::3", "10.0.0.4"], 0),
                Restore(svc("s4").prefer(&[V4, V6]), &["10.0.0.5"], &["10.0.0.5"], 0),
                Assign(svc("s4").prefer(&[V4, V6]), Ips(&["10.0.0.5", "fd00::"])),
            ],
        },
        Case {
            name: "restore never moves",
            proves: "after restore, assign with the same Service keeps every address, warnings included",
            pools: vec![("a", pool(&["10.0.0.0/29"]).namespaces(&["x"]))],
            steps: vec![
                Restore(svc("x/s1"), &["10.0.0.7"], &["10.0.0.7"], 0),
                Restore(svc("y/s2"), &["10.0.0.6"], &["10.0.0.6"], 0),
                Assign(svc("x/s1"), Ips(&["10.0.0.7"])),
                Assign(svc("y/s2"), Warned(&["10.0.0.6"], &["PoolExcludesService"])),
                Assign(svc("x/s3"), Ips(&["10.0.0.0"])),
            ],
        },
        Case {
            name: "avoid_buggy_ips",
            proves: ".0 and .255 IPv4 addresses are neither handed out nor counted; IPv6 is unaffected",
            pools: vec![
                ("a", pool(&["10.0.0.254-10.0.1.1"]).avoid_buggy()),
                ("b", pool(&["fd00::/120"]).avoid_buggy().manual()),
                ("c", pool(&["10.1.0.0/24"]).manual()),
                ("d", pool(&["10.2.0.0/16"]).avoid_buggy().manual()),
            ],
            steps: vec![
                Usage("a", V4, 2, 0),
                Usage("b", V6, 256, 0),
                Usage("c", V4, 256, 0),
                Usage("d", V4, 65536 - 512, 0),
                Assign(svc("s1"), Ips(&["10.0.0.254"])),
                Assign(svc("s2"), Ips(&["10.0.1.1"])),
                Assign(svc("s3"), Fails("PoolExhausted")),
                Assign(svc("s4").ip("10.0.0.255"), Fails("RequestedIPNotInAnyPool")),
                Assign(svc("s5").pool("d"), Ips(&["10.2.0.1"])),
            ],
        },
        Case {
            name: "avoid_buggy_ips turned on later",
            proves: "a held .0 address stays with a warning when its pool starts avoiding it",
            pools: vec![("a", pool(&["10.0.0.0/30"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.0.0.0"])),
                Pools(vec![("a", pool(&["10.0.0.0/30"]).avoid_buggy())]),
                Assign(svc("s1"), Warned(&["10.0.0.0"], &["AddressAvoidedByPool"])),
                Usage("a", V4, 3, 0),
                Assign(svc("s2"), Ips(&["10.0.0.1"])),
            ],
        },
        Case {
            name: "overlap between pools",
            proves: "the pool whose name sorts first keeps an overlap; the other keeps the rest and says so",
            pools: vec![("a", pool(&["10.0.0.0/30"])), ("b", pool(&["10.0.0.2-10.0.0.5"]))],
            steps: vec![
                Issues("a", &[], true),
                Issues("b", &["OverlapsPool"], true),
                Usage("a", V4, 4, 0),
                Usage("b", V4, 2, 0),
                Assign(svc("s1").pool("b"), Ips(&["10.0.0.4"])),
                Assign(svc("s2").ip("10.0.0.2").pool("b"), Fails("RequestedIPNotInRequestedPool")),
                Assign(svc("s3").ip("10.0.0.2"), Ips(&["10.0.0.2"])),
                Usage("a", V4, 4, 1),
            ],
        },
        Case {
            name: "overlap within a pool",
            proves: "overlapping entries of one pool are reported and their union used",
            pools: vec![("a", pool(&["10.0.0.0/30", "10.0.0.2-10.0.0.5", "10.0.0.6/31"]))],
            steps: vec![Issues("a", &["OverlapWithinPool"], true), Usage("a", V4, 8, 0)],
        },
        Case {
            name: "invalid pools",
            proves: "unparsable entries, empty pools and bad selectors make a pool invalid and unused; others work",
            pools: vec![
                ("bad", pool(&["10.0.0.0/24", "10.0.1.5/24"])),
                ("badsel", pool(&["10.2.0.0/30"]).svc_selector(in_values("app", &[]))),
                ("empty", pool(&[])),
                ("good", pool(&["10.1.0.0/30"])),
            ],
            steps: vec![
                Issues("bad", &["InvalidAddress"], false),
                Issues("badsel", &["InvalidSelector"], false),
                Issues("empty", &["NoAddresses"], false),
                Usage("bad", V4, 0, 0),
                Assign(svc("s1"), Ips(&["10.1.0.0"])),
                Assign(svc("s2").ip("10.0.0.1"), Fails("RequestedIPNotInAnyPool")),
            ],
        },
        Case {
            name: "most free breaks ties",
            proves: "between pools of equal rank the one with more free addresses is used, then the name",
            pools: vec![("a", pool(&["10.0.0.0/30"])), ("b", pool(&["10.1.0.0/29"]))],
            steps: vec![
                Assign(svc("s1"), Ips(&["10.1.0.0"])),
                Assign(svc("s2"), Ips(&["10.1.0.1"])),
                Assign(svc("s3"), Ips(&["10.1.0.2"])),
                Assign(svc("s4"), Ips(&["10.1.0.3"])),
                Assign(svc("s5"), Ips(&["10.0.0.0"])),
                Assign(svc("s6"), Ips(&["10.1.0.4"])),
            ],
        },
        Case {
            name: "requested IP and serviceAllocation",
            proves: "an address in a pool that does not serve the Service is refused even when requested",
            pools: vec![("a", pool(&["10.0.0.0/30"]).namespaces(&["x"]).manual())],
            steps: vec![
                Assign(svc("y/s1").ip("10.0.0.1"), Fails("PoolNotAllowed")),
                Assign(svc("x/s2").ip("10.0.0.1"), Ips(&["10.0.0.1"])),
            ],
        },
    ]
}

#[test]
fn sequences() {
    let all = cases();
    let mut names = std::collections::BTreeSet::new();
    for case in &all {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
        run(case);
    }
}

#[test]
fn messages_carry_what_a_condition_needs() {
    let mut a = allocator(&[("a", pool(&["10.0.0.0/32"]))]);
    a.assign(&svc("ns/s1").share("k").tcp(&[80])).unwrap();
    let e = a
        .assign(&svc("ns/s2").ip("10.0.0.0").tcp(&[80]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "requested address 10.0.0.0 is in use by ns/s1: this Service has no sharing key"
    );
    let e = a
        .assign(&svc("ns/s3").ip("10.0.0.0").share("k").tcp(&[80]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "requested address 10.0.0.0 is shared by ns/s1, but cannot be shared with this Service: port TCP/80 is already used there by ns/s1"
    );
    let e = a.assign(&svc("ns/s4")).unwrap_err();
    assert_eq!(e.to_string(), "no free IPv4 address in pool(s) a");
    let s = a.assignment(&key("ns/s1")).unwrap();
    assert_eq!(s.addresses[0].pool, Some(PoolName::new("a")));
}

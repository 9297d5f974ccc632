//! What an IPPool's status should say: assigned and available counts per
//! family, and the `Valid` and `Overlapping` conditions. Pure.

use crate::ipam::{FamilyUsage, PoolIssue, PoolStatus};
use gatehouse_crds::{IPPool, IPPoolStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The pool as the allocator sees it, or the issue that kept it out.
#[derive(Debug, Clone)]
pub enum PoolView<'a> {
    Known(&'a PoolStatus),
    Refused(&'a PoolIssue),
}

/// The status write for a pool, or `None` when its status already says it.
/// Conditions keep their transition time while their status holds.
pub fn plan(pool: &IPPool, view: PoolView<'_>, now: Timestamp) -> Option<IPPoolStatus> {
    let (v4, v6, issues): (FamilyUsage, FamilyUsage, Vec<&PoolIssue>) = match view {
        PoolView::Known(s) => (s.ipv4, s.ipv6, s.issues.iter().collect()),
        PoolView::Refused(i) => (FamilyUsage::default(), FamilyUsage::default(), vec![i]),
    };
    let fatal: Vec<&PoolIssue> = issues.iter().copied().filter(|i| i.is_fatal()).collect();
    let overlaps: Vec<&PoolIssue> = issues
        .iter()
        .copied()
        .filter(|i| matches!(i, PoolIssue::OverlapsPool { .. }))
        .collect();
    let generation = pool.metadata.generation;
    let previous = pool.status.clone().unwrap_or_default();
    let condition = |type_: &str, on: bool, reason: &str, message: String| {
        let status = if on { "True" } else { "False" };
        let transition = previous
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: transition,
        }
    };
    let join = |list: &[&PoolIssue]| {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let valid = match fatal.first() {
        None => condition(
            "Valid",
            true,
            "Valid",
            "the pool's addresses and selectors are valid".into(),
        ),
        Some(first) => condition("Valid", false, first.reason(), join(&fatal)),
    };
    let overlapping = if overlaps.is_empty() {
        condition(
            "Overlapping",
            false,
            "NoOverlap",
            "no other pool holds these addresses".into(),
        )
    } else {
        condition("Overlapping", true, "OverlapsPool", join(&overlaps))
    };
    let count = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    let desired = IPPoolStatus {
        assigned_ipv4: count(v4.assigned),
        available_ipv4: count(v4.free),
        assigned_ipv6: count(v6.assigned),
        available_ipv6: count(v6.free),
        conditions: vec![valid, overlapping],
    };
    (desired != previous).then_some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{AddressRange, PoolName};

    fn pool() -> IPPool {
        let mut p = IPPool::new(
            "blue",
            gatehouse_crds::IPPoolSpec {
                addresses: vec!["192.0.2.0/30".into()],
                auto_assign: true,
                avoid_buggy_ips: false,
                service_allocation: None,
                l2_advertisement: None,
            },
        );
        p.metadata.generation = Some(3);
        p
    }

    fn status(issues: Vec<PoolIssue>, assigned: u128) -> PoolStatus {
        PoolStatus {
            name: PoolName::new("blue"),
            valid: !issues.iter().any(PoolIssue::is_fatal),
            issues,
            ipv4: FamilyUsage {
                capacity: 4,
                assigned,
                free: 4 - assigned,
            },
            ipv6: FamilyUsage::default(),
        }
    }

    #[test]
    fn counts_and_conditions_are_written_once() {
        let mut p = pool();
        let t = Timestamp::from_second(5).unwrap();
        let st = status(vec![], 1);
        let s = plan(&p, PoolView::Known(&st), t).unwrap();
        assert_eq!((s.assigned_ipv4, s.available_ipv4), (1, 3));
        assert_eq!(s.conditions[0].type_, "Valid");
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.conditions[1].status, "False");
        assert_eq!(s.conditions[0].observed_generation, Some(3));
        p.status = Some(s);
        assert!(plan(&p, PoolView::Known(&st), Timestamp::from_second(9).unwrap()).is_none());
        // An assignment changes the counts, not the transition times.
        let s = plan(
            &p,
            PoolView::Known(&status(vec![], 2)),
            Timestamp::from_second(9).unwrap(),
        )
        .unwrap();
        assert_eq!(s.assigned_ipv4, 2);
        assert_eq!(s.conditions[0].last_transition_time, Time(t));
    }

    #[test]
    fn overlap_and_invalid_pools_say_why() {
        let overlap = PoolIssue::OverlapsPool {
            pool: PoolName::new("amber"),
            range: AddressRange::parse("192.0.2.0/31").unwrap(),
        };
        let s = plan(
            &pool(),
            PoolView::Known(&status(vec![overlap], 0)),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(
            s.conditions[0].status, "True",
            "an overlap leaves the pool valid"
        );
        assert_eq!(s.conditions[1].status, "True");
        assert_eq!(s.conditions[1].reason, "OverlapsPool");
        assert!(
            s.conditions[1].message.contains("amber"),
            "{}",
            s.conditions[1].message
        );

        let refused = PoolIssue::NoAddresses;
        let s = plan(&pool(), PoolView::Refused(&refused), Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(s.conditions[0].status, "False");
        assert_eq!(s.conditions[0].reason, "NoAddresses");
        assert_eq!(s.available_ipv4, 0);
    }
}

//! The free-interval set agrees with a plain set of addresses, and keeps
//! big pools as few intervals.

use super::super::family::{allowed, Family};
use super::super::free::FreeSet;
use proptest::prelude::*;
use std::collections::BTreeSet;

#[test]
fn a_big_pool_is_one_interval_even_avoiding_buggy_addresses() {
    let v4 = FreeSet::new(Family::V4, true, &[(0x0a00_0000, 0x0aff_ffff)]);
    assert_eq!(v4.intervals(), 1);
    assert_eq!(v4.first(), Some(0x0a00_0001));
    let v6 = FreeSet::new(Family::V6, false, &[(1 << 64, (2 << 64) - 1)]);
    assert_eq!(v6.intervals(), 1);
}

/// Why allocation is O(log n): handing out addresses lowest first, and
/// giving back any, never fragments a pool into many intervals.
#[test]
fn sequential_allocation_keeps_one_interval() {
    let mut s = FreeSet::new(Family::V4, true, &[(0x0a00_0000, 0x0a00_ffff)]);
    let mut taken = Vec::new();
    for _ in 0..10_000 {
        let n = s.first().unwrap();
        assert!(s.take(n));
        taken.push(n);
        assert_eq!(s.intervals(), 1);
    }
    // Giving back every other one makes holes; filling them merges again.
    for n in taken.iter().step_by(2) {
        assert!(s.give_back(*n));
    }
    assert_eq!(s.intervals(), 5_001);
    for n in taken.iter().step_by(2) {
        assert_eq!(s.first(), Some(*n), "holes are refilled lowest first");
        assert!(s.take(*n));
    }
    assert_eq!(s.intervals(), 1);
}

#[test]
fn avoided_addresses_are_skipped_when_splitting() {
    // 10.0.0.254 taken: the rest starts at 10.0.1.1, not .255 or .0.
    let mut s = FreeSet::new(Family::V4, true, &[(0x0a00_00fe, 0x0a00_0102)]);
    assert_eq!(s.first(), Some(0x0a00_00fe));
    assert!(s.take(0x0a00_00fe));
    assert_eq!(s.first(), Some(0x0a00_0101));
    assert!(s.give_back(0x0a00_00fe));
    assert_eq!(s.intervals(), 1);
    assert!(!s.take(0x0a00_00ff), "an avoided address is never free");
}

#[test]
fn the_top_of_the_ipv6_space_works() {
    let mut s = FreeSet::new(Family::V6, false, &[(u128::MAX - 1, u128::MAX)]);
    assert!(s.take(u128::MAX));
    assert_eq!(s.first(), Some(u128::MAX - 1));
    assert!(s.give_back(u128::MAX));
    assert_eq!(s.intervals(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Any sequence of takes and give-backs leaves the same free addresses
    /// as a plain set would, and the lowest free address agrees.
    #[test]
    fn agrees_with_a_plain_set(
        avoid in any::<bool>(),
        ranges in proptest::collection::vec((0u128..600, 0u128..40), 1..4),
        ops in proptest::collection::vec((any::<bool>(), 0u128..700), 0..200),
    ) {
        // Disjoint, sorted, non-adjacent ranges from (start, length) pairs.
        let mut sorted: Vec<(u128, u128)> = Vec::new();
        let mut rs = ranges.clone();
        rs.sort();
        for (a, len) in rs {
            let b = a + len;
            if sorted.last().is_none_or(|l| a > l.1 + 1) {
                sorted.push((a, b));
            }
        }
        let f = Family::V4;
        let mut set = FreeSet::new(f, avoid, &sorted);
        let mut model: BTreeSet<u128> = sorted
            .iter()
            .flat_map(|&(a, b)| a..=b)
            .filter(|n| allowed(f, avoid, *n))
            .collect();
        let in_pool: BTreeSet<u128> = model.clone();
        for (take, n) in ops {
            if take {
                prop_assert_eq!(set.take(n), model.remove(&n));
            } else if in_pool.contains(&n) {
                prop_assert_eq!(set.give_back(n), model.insert(n));
            }
            prop_assert_eq!(set.first(), model.first().copied());
        }
        // Draining by first() yields exactly the model.
        let mut drained = Vec::new();
        while let Some(n) = set.first() {
            prop_assert!(set.take(n));
            drained.push(n);
        }
        prop_assert_eq!(drained, model.into_iter().collect::<Vec<_>>());
    }
}

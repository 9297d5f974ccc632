//! The free addresses of one pool and family, as disjoint intervals, so
//! that taking the lowest free address, taking a given one and giving one
//! back are each O(log n) whatever the pool's size (a `/64` is one
//! interval, not 2^64 entries).
//!
//! Intervals live in the pool's *allowed* space: `[s, e]` means every
//! address in `s..=e` that the pool may hand out is free, and `s`, `e` are
//! such addresses. With `avoid_buggy_ips` the `.0`/`.255` addresses inside
//! an interval are skipped arithmetically instead of splitting it at every
//! `/24`. Addresses between two intervals that the pool may not hand out
//! (avoided ones, or ones outside its ranges) never separate what could be
//! merged, because two intervals are merged only when nothing allowed lies
//! between them.

use super::family::{next_allowed, prev_allowed, Family};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub(crate) struct FreeSet {
    family: Family,
    avoid_buggy: bool,
    /// start → end.
    intervals: BTreeMap<u128, u128>,
}

impl FreeSet {
    /// Every allowed address of `ranges` (sorted, disjoint) free.
    pub fn new(family: Family, avoid_buggy: bool, ranges: &[(u128, u128)]) -> FreeSet {
        let mut set = FreeSet {
            family,
            avoid_buggy,
            intervals: BTreeMap::new(),
        };
        let mut last: Option<(u128, u128)> = None;
        for &(a, b) in ranges {
            let Some(s) = set.first_allowed_from(a).filter(|s| *s <= b) else {
                continue;
            };
            let Some(e) = set.last_allowed_upto(b).filter(|e| *e >= s) else {
                continue;
            };
            match last {
                Some((ls, le)) if next_allowed(family, avoid_buggy, le) == Some(s) => {
                    last = Some((ls, e));
                }
                Some(l) => {
                    set.intervals.insert(l.0, l.1);
                    last = Some((s, e));
                }
                None => last = Some((s, e)),
            }
        }
        if let Some((s, e)) = last {
            set.intervals.insert(s, e);
        }
        set
    }

    fn first_allowed_from(&self, n: u128) -> Option<u128> {
        match super::family::allowed(self.family, self.avoid_buggy, n) {
            true => Some(n),
            false => next_allowed(self.family, self.avoid_buggy, n),
        }
    }

    fn last_allowed_upto(&self, n: u128) -> Option<u128> {
        match super::family::allowed(self.family, self.avoid_buggy, n) {
            true => Some(n),
            false => prev_allowed(self.family, self.avoid_buggy, n),
        }
    }

    /// The lowest free address.
    pub fn first(&self) -> Option<u128> {
        self.intervals.keys().next().copied()
    }

    /// Marks `n` as taken; false if it was not free.
    pub fn take(&mut self, n: u128) -> bool {
        let Some((&s, &e)) = self.intervals.range(..=n).next_back() else {
            return false;
        };
        if n > e || !super::family::allowed(self.family, self.avoid_buggy, n) {
            return false;
        }
        self.intervals.remove(&s);
        if s < n {
            if let Some(p) = prev_allowed(self.family, self.avoid_buggy, n) {
                self.intervals.insert(s, p);
            }
        }
        if n < e {
            if let Some(q) = next_allowed(self.family, self.avoid_buggy, n) {
                self.intervals.insert(q, e);
            }
        }
        true
    }

    /// Gives `n` back. The caller guarantees `n` is an allowed address of
    /// the pool's ranges; false if it was already free.
    pub fn give_back(&mut self, n: u128) -> bool {
        let left = self
            .intervals
            .range(..=n)
            .next_back()
            .map(|(&s, &e)| (s, e));
        if left.is_some_and(|(_, e)| e >= n) {
            return false;
        }
        let right = self
            .intervals
            .range(n.saturating_add(1)..)
            .next()
            .map(|(&s, &e)| (s, e))
            .filter(|_| n < u128::MAX);
        let (mut s, mut e) = (n, n);
        if let Some((ls, le)) = left {
            if next_allowed(self.family, self.avoid_buggy, le) == Some(n) {
                self.intervals.remove(&ls);
                s = ls;
            }
        }
        if let Some((rs, re)) = right {
            if next_allowed(self.family, self.avoid_buggy, n) == Some(rs) {
                self.intervals.remove(&rs);
                e = re;
            }
        }
        self.intervals.insert(s, e);
        true
    }

    /// Number of intervals (for tests of the representation).
    #[cfg(test)]
    pub fn intervals(&self) -> usize {
        self.intervals.len()
    }
}

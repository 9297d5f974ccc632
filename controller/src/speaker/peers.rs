//! What this speaker has heard from the others: when each last sent a
//! heartbeat, whether it said it was ready, and which addresses it says it
//! announces. Pure; the clock is passed in.

use super::heartbeat::{Heartbeat, Standing};
use super::node::NodeName;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Peer {
    pub last_heard: Instant,
    /// What the sender says of itself.
    pub standing: Standing,
    pub claims: BTreeSet<IpAddr>,
    /// The heartbeat's sequence number; older ones arriving late are dropped.
    sequence: u64,
    /// Process start of the sender: a restarted speaker starts counting
    /// again.
    incarnation: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PeerTable {
    peers: BTreeMap<NodeName, Peer>,
}

impl PeerTable {
    /// Records a heartbeat received at `now`; returns false for a stale
    /// or replayed one (same incarnation, sequence not newer).
    pub fn record(&mut self, heartbeat: Heartbeat, now: Instant) -> bool {
        if let Some(known) = self.peers.get(&heartbeat.node) {
            if heartbeat.incarnation == known.incarnation && heartbeat.sequence <= known.sequence {
                return false;
            }
            if heartbeat.incarnation < known.incarnation {
                return false;
            }
        }
        self.peers.insert(
            heartbeat.node,
            Peer {
                last_heard: now,
                standing: heartbeat.standing,
                claims: heartbeat.claims,
                sequence: heartbeat.sequence,
                incarnation: heartbeat.incarnation,
            },
        );
        true
    }

    /// Peers heard from within `within` of `now`.
    pub fn heard_within(
        &self,
        now: Instant,
        within: Duration,
    ) -> impl Iterator<Item = (&NodeName, &Peer)> {
        self.peers
            .iter()
            .filter(move |(_, p)| now.saturating_duration_since(p.last_heard) <= within)
    }

    /// Forgets peers not heard from for longer than `window` (they leave
    /// the membership).
    pub fn expire(&mut self, now: Instant, window: Duration) {
        self.peers
            .retain(|_, p| now.saturating_duration_since(p.last_heard) <= window);
    }

    pub fn get(&self, node: &NodeName) -> Option<&Peer> {
        self.peers.get(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(node: &str, incarnation: u64, sequence: u64) -> Heartbeat {
        Heartbeat {
            node: NodeName::new(node),
            incarnation,
            sequence,
            standing: Standing::Ready,
            claims: BTreeSet::new(),
        }
    }

    #[test]
    fn late_and_replayed_heartbeats_are_dropped() {
        let now = Instant::now();
        let mut table = PeerTable::default();
        assert!(table.record(heartbeat("a", 5, 10), now));
        assert!(!table.record(heartbeat("a", 5, 10), now), "replay");
        assert!(!table.record(heartbeat("a", 5, 9), now), "late");
        assert!(
            !table.record(heartbeat("a", 4, 99), now),
            "older incarnation"
        );
        assert!(table.record(heartbeat("a", 6, 0), now), "restarted speaker");
        assert!(table.record(heartbeat("a", 6, 1), now));
    }

    #[test]
    fn peers_leave_the_window_and_then_the_table() {
        let t0 = Instant::now();
        let mut table = PeerTable::default();
        table.record(heartbeat("a", 1, 1), t0);
        let later = t0 + Duration::from_millis(700);
        assert_eq!(
            table
                .heard_within(later, Duration::from_millis(600))
                .count(),
            0
        );
        assert_eq!(table.heard_within(later, Duration::from_secs(1)).count(), 1);
        table.expire(later, Duration::from_millis(500));
        assert!(table.get(&NodeName::new("a")).is_none());
    }
}

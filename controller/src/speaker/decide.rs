//! What this speaker announces, decided from what it knows: the addresses
//! and the nodes allowed to announce each (from the API), the peers it has
//! heard, and its own contact with the API. Pure: the same inputs give the
//! same answer on every speaker, and the clock is passed in.
//!
//! No split brain, by two rules:
//! - A speaker announces only while it is in contact: it has heard more
//!   than half of the speakers it knows of (itself included) within
//!   `contact_timeout`, and the API answers. An isolated speaker stops
//!   after `contact_timeout`; the others take its addresses only after
//!   `peer_timeout`, which validation keeps longer by at least a heartbeat
//!   interval and a tick.
//! - A speaker takes an address only when no live peer says it announces
//!   it (heartbeats carry their sender's claims), so a handover waits for
//!   the old owner to let go. If two ever claim the same address (views
//!   that disagree for a moment), the lower-ranked one lets go.
//! - Joining speakers count when deciding who may *take* an address (so
//!   that speakers starting together do not all take everything), but not
//!   when deciding who *keeps* one (so that a restarting speaker does not
//!   make the holder let go before it can announce).

use super::elect;
use super::heartbeat::Standing;
use super::node::NodeName;
use super::peers::PeerTable;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The liveness settings (`gatehouse-controller speaker --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between heartbeats to each peer.
    pub heartbeat_interval: Duration,
    /// A peer not heard from for this long is dead: its addresses move.
    pub peer_timeout: Duration,
    /// A speaker that has not heard a majority for this long stops
    /// announcing.
    pub contact_timeout: Duration,
    /// Peers heard within this window count as members (for the majority);
    /// a dead peer stops counting after it.
    pub member_window: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(600),
            contact_timeout: Duration::from_millis(300),
            member_window: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimingError {
    #[error("the peer timeout ({peer:?}) must exceed the contact timeout ({contact:?}) by at least one and a half heartbeat intervals ({interval:?}), or an isolated speaker could still be announcing when another takes over")]
    PeerTimeoutTooShort {
        peer: Duration,
        contact: Duration,
        interval: Duration,
    },
    #[error(
        "the contact timeout ({contact:?}) must be at least two heartbeat intervals ({interval:?})"
    )]
    ContactTimeoutTooShort {
        contact: Duration,
        interval: Duration,
    },
    #[error("the member window ({window:?}) must exceed the peer timeout ({peer:?})")]
    MemberWindowTooShort { window: Duration, peer: Duration },
    #[error("the heartbeat interval must be at least 10ms")]
    IntervalTooShort,
}

impl Timing {
    /// How often the decision is re-evaluated.
    pub fn tick(&self) -> Duration {
        self.heartbeat_interval / 2
    }

    pub fn validate(&self) -> Result<(), TimingError> {
        if self.heartbeat_interval < Duration::from_millis(10) {
            return Err(TimingError::IntervalTooShort);
        }
        if self.contact_timeout < self.heartbeat_interval * 2 {
            return Err(TimingError::ContactTimeoutTooShort {
                contact: self.contact_timeout,
                interval: self.heartbeat_interval,
            });
        }
        // The isolated speaker's last heartbeat may be up to one interval
        // older than the isolation, and it notices at its next tick.
        if self.contact_timeout + self.heartbeat_interval + self.tick() > self.peer_timeout {
            return Err(TimingError::PeerTimeoutTooShort {
                peer: self.peer_timeout,
                contact: self.contact_timeout,
                interval: self.heartbeat_interval,
            });
        }
        if self.member_window <= self.peer_timeout {
            return Err(TimingError::MemberWindowTooShort {
                window: self.member_window,
                peer: self.peer_timeout,
            });
        }
        Ok(())
    }
}

/// An address to announce and the nodes the API allows to announce it
/// (eligible nodes; for `externalTrafficPolicy: Local`, only those with a
/// ready endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub address: IpAddr,
    pub candidates: BTreeSet<NodeName>,
}

/// Why this speaker announces nothing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// Its view of the API is not synced, or the API has not answered
    /// within the API timeout.
    NoApi,
    /// Just started: still learning who the peers are and what they
    /// announce.
    Joining,
    /// Heard fewer than a majority of the members recently.
    NoMajority { heard: usize, members: usize },
}

impl Withheld {
    pub fn reason(&self) -> &'static str {
        match self {
            Withheld::NoApi => "NoApiContact",
            Withheld::Joining => "Joining",
            Withheld::NoMajority { .. } => "NoPeerMajority",
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The addresses to announce from now on.
    pub announce: BTreeSet<IpAddr>,
    /// `Ok` when this speaker may announce (its heartbeats say "ready").
    pub standing: Result<(), Withheld>,
}

/// What a speaker knows at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub me: &'a NodeName,
    pub now: Instant,
    pub started: Instant,
    pub timing: Timing,
    pub demands: &'a [Demand],
    pub peers: &'a PeerTable,
    /// Synced and answered by the API recently.
    pub api_ok: bool,
    /// What it announces now.
    pub current: &'a BTreeSet<IpAddr>,
}

pub fn decide(inputs: Inputs<'_>) -> Decision {
    let standing = standing(&inputs);
    if standing.is_err() {
        return Decision {
            announce: BTreeSet::new(),
            standing,
        };
    }
    let Inputs {
        me,
        now,
        timing,
        peers,
        ..
    } = inputs;
    let alive: Vec<_> = peers.heard_within(now, timing.peer_timeout).collect();
    let with = |states: &[Standing]| -> BTreeSet<&NodeName> {
        alive
            .iter()
            .filter(|(_, p)| states.contains(&p.standing))
            .map(|(n, _)| *n)
            .chain(std::iter::once(me))
            .collect()
    };
    let ready = with(&[Standing::Ready]);
    let hopeful = with(&[Standing::Ready, Standing::Joining]);
    let mut announce = BTreeSet::new();
    for demand in inputs.demands {
        let address = demand.address;
        let held = inputs.current.contains(&address);
        let among = if held { &ready } else { &hopeful };
        let candidates = demand.candidates.iter().filter(|n| among.contains(n));
        if elect::winner(address, candidates) != Some(me) {
            continue;
        }
        let mut claimers = alive
            .iter()
            .filter(|(_, p)| p.claims.contains(&address))
            .map(|(n, _)| *n);
        let keep = if held {
            // Both claim it: the higher-ranked one keeps it.
            !claimers.any(|other| elect::outranks(address, other, me))
        } else {
            claimers.next().is_none()
        };
        if keep {
            announce.insert(address);
        }
    }
    Decision { announce, standing }
}

fn standing(inputs: &Inputs<'_>) -> Result<(), Withheld> {
    if !inputs.api_ok {
        return Err(Withheld::NoApi);
    }
    let Inputs {
        now,
        started,
        timing,
        peers,
        ..
    } = *inputs;
    let members = 1 + peers.heard_within(now, timing.member_window).count();
    let heard = 1 + peers.heard_within(now, timing.contact_timeout).count();
    let up = now.saturating_duration_since(started);
    // Peers heartbeat every interval, so after a peer timeout a new speaker
    // has heard every live one (and their claims); alone, it waits out the
    // member window in case the LAN, not the cluster, is what is missing.
    let joined = up >= timing.member_window || (up >= timing.peer_timeout && members > 1);
    if !joined {
        return Err(Withheld::Joining);
    }
    if heard * 2 <= members {
        return Err(Withheld::NoMajority { heard, members });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

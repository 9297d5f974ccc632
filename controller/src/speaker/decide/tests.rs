//! The election rule and its liveness, on a simulated cluster of speakers:
//! each test steps a clock in 10 ms increments, delivers heartbeats between
//! connected speakers and checks who announces what after every step.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::speaker::heartbeat::{Heartbeat, Standing};
use std::net::Ipv4Addr;

const STEP: Duration = Duration::from_millis(10);

struct Speaker {
    name: NodeName,
    table: PeerTable,
    started: Instant,
    current: BTreeSet<IpAddr>,
    standing: Result<(), Withheld>,
    running: bool,
    connected: bool,
    api_ok: bool,
    sequence: u64,
    incarnation: u64,
    /// This speaker's view of the demands (views may disagree for a while).
    demands: Vec<Demand>,
}

struct Sim {
    now: Instant,
    timing: Timing,
    speakers: Vec<Speaker>,
    steps: u64,
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn names(list: &[&str]) -> BTreeSet<NodeName> {
    list.iter().map(|n| NodeName::new(*n)).collect()
}

impl Sim {
    fn new(nodes: &[&str], demands: Vec<Demand>) -> Self {
        let now = Instant::now();
        Sim {
            now,
            timing: Timing::default(),
            speakers: nodes
                .iter()
                .map(|n| Speaker {
                    name: NodeName::new(*n),
                    table: PeerTable::default(),
                    started: now,
                    current: BTreeSet::new(),
                    standing: Err(Withheld::Joining),
                    running: true,
                    connected: true,
                    api_ok: true,
                    sequence: 0,
                    incarnation: 1,
                    demands: demands.clone(),
                })
                .collect(),
            steps: 0,
        }
    }

    fn speaker(&mut self, name: &str) -> &mut Speaker {
        self.speakers
            .iter_mut()
            .find(|s| s.name.as_str() == name)
            .unwrap()
    }

    /// One step: heartbeats (every interval), then every running speaker
    /// decides (every tick). Panics if two speakers announce one address.
    fn step(&mut self) {
        self.now += STEP;
        self.steps += 1;
        let interval_steps = (self.timing.heartbeat_interval.as_millis() / STEP.as_millis()) as u64;
        let tick_steps = (self.timing.tick().as_millis() / STEP.as_millis()) as u64;
        if self.steps.is_multiple_of(interval_steps) {
            let beats: Vec<(usize, Heartbeat)> = self
                .speakers
                .iter_mut()
                .enumerate()
                .filter(|(_, s)| s.running)
                .map(|(i, s)| {
                    s.sequence += 1;
                    (
                        i,
                        Heartbeat {
                            node: s.name.clone(),
                            incarnation: s.incarnation,
                            sequence: s.sequence,
                            standing: match s.standing {
                                Ok(()) => Standing::Ready,
                                Err(Withheld::Joining) => Standing::Joining,
                                Err(_) => Standing::Withdrawn,
                            },
                            claims: s.current.clone(),
                        },
                    )
                })
                .collect();
            for (from, beat) in beats {
                let sender_connected = self.speakers[from].connected;
                for (to, s) in self.speakers.iter_mut().enumerate() {
                    if to != from && s.running && s.connected && sender_connected {
                        s.table.record(beat.clone(), self.now);
                    }
                }
            }
        }
        if self.steps.is_multiple_of(tick_steps) {
            for s in self.speakers.iter_mut().filter(|s| s.running) {
                s.table.expire(self.now, self.timing.member_window);
                let decision = decide(Inputs {
                    me: &s.name,
                    now: self.now,
                    started: s.started,
                    timing: self.timing,
                    demands: &s.demands,
                    peers: &s.table,
                    api_ok: s.api_ok,
                    current: &s.current,
                });
                s.current = decision.announce;
                s.standing = decision.standing;
            }
        }
        let all: BTreeSet<IpAddr> = self
            .speakers
            .iter()
            .flat_map(|s| s.current.iter().copied())
            .collect();
        for address in all {
            let owners = self.owners(address);
            assert!(
                owners.len() <= 1,
                "two announcers of {address} at step {}: {owners:?}",
                self.steps
            );
        }
    }

    fn run(&mut self, duration: Duration) {
        let steps = duration.as_millis() / STEP.as_millis();
        for _ in 0..steps {
            self.step();
        }
    }

    /// Steps until `f` holds; returns how long it took (panics after `limit`).
    fn until(&mut self, limit: Duration, f: impl Fn(&Sim) -> bool) -> Duration {
        let start = self.now;
        while !f(self) {
            assert!(self.now - start < limit, "not within {limit:?}");
            self.step();
        }
        self.now - start
    }

    fn owners(&self, address: IpAddr) -> Vec<&str> {
        self.speakers
            .iter()
            .filter(|s| s.running && s.current.contains(&address))
            .map(|s| s.name.as_str())
            .collect()
    }

    fn owner(&self, address: IpAddr) -> Option<&str> {
        self.owners(address).first().copied()
    }

    fn set_demands(&mut self, name: &str, demands: Vec<Demand>) {
        self.speaker(name).demands = demands;
    }
}

fn cluster_demand(address: IpAddr, nodes: &[&str]) -> Demand {
    Demand {
        address,
        candidates: names(nodes),
    }
}

fn settled(nodes: &[&str], demands: Vec<Demand>) -> Sim {
    let mut sim = Sim::new(nodes, demands);
    sim.run(Duration::from_secs(2));
    sim
}

#[test]
fn default_timing_is_valid_and_bad_timings_are_refused() {
    Timing::default().validate().unwrap();
    let mut t = Timing::default();
    t.peer_timeout = t.contact_timeout;
    assert!(matches!(
        t.validate(),
        Err(TimingError::PeerTimeoutTooShort { .. })
    ));
    let mut t = Timing::default();
    t.contact_timeout = t.heartbeat_interval;
    assert!(matches!(
        t.validate(),
        Err(TimingError::ContactTimeoutTooShort { .. })
    ));
    let mut t = Timing::default();
    t.member_window = t.peer_timeout;
    assert!(matches!(
        t.validate(),
        Err(TimingError::MemberWindowTooShort { .. })
    ));
}

#[test]
fn every_address_gets_exactly_one_announcer_and_they_spread() {
    let all = ["node-0", "node-1", "node-2"];
    let demands: Vec<Demand> = (1..=30).map(|i| cluster_demand(ip(i), &all)).collect();
    let sim = settled(&all, demands);
    let mut used = BTreeSet::new();
    for i in 1..=30 {
        let owner = sim
            .owner(ip(i))
            .unwrap_or_else(|| panic!("{} has no announcer", ip(i)));
        assert_eq!(
            Some(owner),
            elect::winner(ip(i), &names(&all)).map(|n| n.as_str())
        );
        used.insert(owner.to_owned());
    }
    assert_eq!(used.len(), 3, "30 addresses all on {used:?}");
}

#[test]
fn a_local_service_is_announced_only_by_a_node_with_an_endpoint() {
    let sim = settled(
        &["node-0", "node-1", "node-2"],
        vec![cluster_demand(ip(1), &["node-1"])],
    );
    assert_eq!(sim.owners(ip(1)), ["node-1"]);
}

#[test]
fn a_local_service_without_ready_endpoints_is_announced_by_nobody() {
    let sim = settled(
        &["node-0", "node-1", "node-2"],
        vec![cluster_demand(ip(1), &[])],
    );
    assert!(sim.owners(ip(1)).is_empty());
    assert!(sim.speakers.iter().all(|s| s.standing.is_ok()));
}

#[test]
fn a_new_speaker_announces_nothing_until_it_has_heard_its_peers() {
    let mut sim = Sim::new(
        &["node-0", "node-1"],
        vec![cluster_demand(ip(1), &["node-0", "node-1"])],
    );
    sim.run(sim.timing.peer_timeout - STEP);
    assert!(sim.owners(ip(1)).is_empty());
    assert!(sim
        .speakers
        .iter()
        .all(|s| s.standing == Err(Withheld::Joining)));
    sim.run(Duration::from_millis(200));
    assert_eq!(sim.owners(ip(1)).len(), 1);
}

#[test]
fn a_killed_speakers_addresses_move_after_the_peer_timeout() {
    let all = ["node-0", "node-1", "node-2"];
    let address = (1..=50)
        .map(ip)
        .find(|a| elect::winner(*a, &names(&all)).unwrap().as_str() == "node-0")
        .unwrap();
    let mut sim = settled(&all, vec![cluster_demand(address, &all)]);
    assert_eq!(sim.owners(address), ["node-0"]);
    sim.speaker("node-0").running = false;
    let took = sim.until(Duration::from_secs(2), |s| s.owner(address).is_some());
    let survivors = names(&["node-1", "node-2"]);
    let expected = elect::winner(address, &survivors).unwrap();
    assert_eq!(sim.owner(address), Some(expected.as_str()));
    let t = sim.timing;
    assert!(
        took >= t.peer_timeout - t.heartbeat_interval,
        "took over after {took:?}"
    );
    assert!(
        took <= t.peer_timeout + t.tick() + STEP,
        "took over after {took:?}"
    );
}

#[test]
fn an_isolated_speaker_withdraws_before_anyone_else_starts() {
    // step() panics at any moment with two announcers.
    let all = ["node-0", "node-1", "node-2"];
    let demands: Vec<Demand> = (1..=20).map(|i| cluster_demand(ip(i), &all)).collect();
    let mut sim = settled(&all, demands);
    let held: Vec<IpAddr> = sim.speaker("node-1").current.iter().copied().collect();
    assert!(!held.is_empty());
    sim.speaker("node-1").connected = false;
    let withdrew = sim.until(Duration::from_secs(2), |s| s.speakers[1].current.is_empty());
    assert!(
        withdrew <= sim.timing.contact_timeout + sim.timing.tick() + STEP,
        "{withdrew:?}"
    );
    assert!(matches!(
        sim.speakers[1].standing,
        Err(Withheld::NoMajority {
            heard: 1,
            members: 3
        })
    ));
    sim.until(Duration::from_secs(2), |s| {
        held.iter().all(|a| s.owner(*a).is_some())
    });
    // Back on the LAN: it rejoins and takes its addresses back, still one
    // announcer at a time.
    sim.speaker("node-1").connected = true;
    sim.until(Duration::from_secs(2), |s| {
        held.iter().all(|a| s.owner(*a) == Some("node-1"))
    });
}

#[test]
fn a_handover_waits_until_the_old_owner_lets_go() {
    // The endpoint moves from node-1 to node-2; node-2 hears of it first.
    let all = ["node-0", "node-1", "node-2"];
    let mut sim = settled(&all, vec![cluster_demand(ip(1), &["node-1"])]);
    assert_eq!(sim.owners(ip(1)), ["node-1"]);
    sim.set_demands("node-2", vec![cluster_demand(ip(1), &["node-2"])]);
    sim.run(Duration::from_secs(1));
    assert_eq!(
        sim.owners(ip(1)),
        ["node-1"],
        "node-2 must not start while node-1 still claims it"
    );
    sim.set_demands("node-1", vec![cluster_demand(ip(1), &["node-2"])]);
    sim.set_demands("node-0", vec![cluster_demand(ip(1), &["node-2"])]);
    let took = sim.until(Duration::from_secs(1), |s| s.owner(ip(1)) == Some("node-2"));
    assert!(
        took <= sim.timing.heartbeat_interval * 2 + sim.timing.tick(),
        "{took:?}"
    );
}

#[test]
fn of_two_claimants_the_lower_ranked_lets_go() {
    let both = names(&["node-0", "node-1"]);
    let address = ip(7);
    let high = elect::winner(address, &both).unwrap().clone();
    let low = both.iter().find(|n| **n != high).unwrap().clone();
    let now = Instant::now();
    let mut table = PeerTable::default();
    table.record(
        Heartbeat {
            node: high.clone(),
            incarnation: 1,
            sequence: 1,
            standing: Standing::Ready,
            claims: [address].into(),
        },
        now,
    );
    let demands = [cluster_demand(address, &[low.as_str()])];
    let current: BTreeSet<IpAddr> = [address].into();
    let decision = decide(Inputs {
        me: &low,
        now,
        started: now - Duration::from_secs(60),
        timing: Timing::default(),
        demands: &demands,
        peers: &table,
        api_ok: true,
        current: &current,
    });
    assert!(
        decision.announce.is_empty(),
        "the lower-ranked claimant keeps {address}"
    );
    // And the higher-ranked one keeps it against a lower-ranked claimant.
    let mut table = PeerTable::default();
    table.record(
        Heartbeat {
            node: low.clone(),
            incarnation: 1,
            sequence: 1,
            standing: Standing::Ready,
            claims: [address].into(),
        },
        now,
    );
    let demands = [cluster_demand(address, &[high.as_str()])];
    let decision = decide(Inputs {
        me: &high,
        now,
        started: now - Duration::from_secs(60),
        timing: Timing::default(),
        demands: &demands,
        peers: &table,
        api_ok: true,
        current: &current,
    });
    assert_eq!(decision.announce, current);
}

#[test]
fn eligibility_changes_move_the_address_to_the_next_candidate() {
    let all = ["node-0", "node-1", "node-2"];
    let address = ip(3);
    let mut sim = settled(&all, vec![cluster_demand(address, &all)]);
    let first = sim.owner(address).unwrap().to_owned();
    let rest: Vec<&str> = all.iter().copied().filter(|n| *n != first).collect();
    for s in &mut sim.speakers {
        s.demands = vec![cluster_demand(address, &rest)];
    }
    sim.until(Duration::from_secs(1), |s| {
        s.owner(address).is_some_and(|o| o != first)
    });
    assert_eq!(
        sim.owner(address),
        elect::winner(address, &names(&rest)).map(|n| n.as_str())
    );
}

#[test]
fn losing_the_api_withdraws_everything_and_peers_take_over() {
    let all = ["node-0", "node-1", "node-2"];
    let demands: Vec<Demand> = (1..=20).map(|i| cluster_demand(ip(i), &all)).collect();
    let mut sim = settled(&all, demands);
    let held: Vec<IpAddr> = sim.speaker("node-2").current.iter().copied().collect();
    sim.speaker("node-2").api_ok = false;
    sim.step();
    sim.run(sim.timing.tick());
    assert!(sim.speaker("node-2").current.is_empty());
    assert_eq!(sim.speaker("node-2").standing, Err(Withheld::NoApi));
    // Its heartbeats now say "not ready": the others take over without
    // waiting for the peer timeout.
    let took = sim.until(Duration::from_secs(1), |s| {
        held.iter().all(|a| s.owner(*a).is_some())
    });
    assert!(took < sim.timing.peer_timeout, "{took:?}");
}

#[test]
fn the_survivor_of_two_waits_out_the_member_window() {
    // With two speakers a survivor cannot tell a dead peer from its own
    // isolation: it announces again only when the peer leaves the members.
    let both = ["node-0", "node-1"];
    let mut sim = settled(
        &both,
        vec![cluster_demand(ip(1), &both), cluster_demand(ip(2), &both)],
    );
    sim.speaker("node-0").running = false;
    sim.run(Duration::from_secs(1));
    assert!(sim.owners(ip(1)).is_empty() && sim.owners(ip(2)).is_empty());
    let took = sim.until(sim.timing.member_window + Duration::from_secs(1), |s| {
        s.owner(ip(1)).is_some() && s.owner(ip(2)).is_some()
    });
    assert!(
        took + Duration::from_secs(1) >= sim.timing.member_window - sim.timing.heartbeat_interval
    );
}

#[test]
fn a_restarted_speaker_rejoins_without_a_second_announcer() {
    let all = ["node-0", "node-1", "node-2"];
    let demands: Vec<Demand> = (1..=20).map(|i| cluster_demand(ip(i), &all)).collect();
    let mut sim = settled(&all, demands);
    sim.speaker("node-0").running = false;
    sim.run(Duration::from_secs(1));
    let s = sim.speaker("node-0");
    s.running = true;
    s.incarnation += 1;
    s.sequence = 0;
    s.current.clear();
    s.table = PeerTable::default();
    let now = sim.now;
    sim.speaker("node-0").started = now;
    sim.run(Duration::from_secs(2));
    let mine = (1..=20)
        .filter(|i| elect::winner(ip(*i), &names(&all)).unwrap().as_str() == "node-0")
        .count();
    assert_eq!(sim.speaker("node-0").current.len(), mine);
}

//! The speaker's loop: every tick it decides what to announce from the
//! view, the peers and its API contact, applies the difference to the
//! announcer (releases before the heartbeat says so; takes only after
//! the decision allowed it) and tells peers and users.

use super::announce::Announcer;
use super::decide::{self, Decision, Inputs, Timing, Withheld};
use super::demand::{self, Announced};
use super::heartbeat::Standing;
use super::liveness::{self, Liveness, Own};
use super::metrics as m;
use super::node::NodeName;
use super::status::StatusWriter;
use super::view::SpeakerView;
use crate::lb::convert::ClassFilter;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often interfaces are listed again (new ones get sockets).
const INTERFACE_REFRESH: Duration = Duration::from_secs(5);
/// Why a released address has no announcer at all.
const NO_CANDIDATE: &str = "no eligible node may announce it (Ready, schedulable, not excluded, matching the pool's l2Advertisement, and for externalTrafficPolicy: Local with a ready endpoint of the Service)";
/// How often the API is asked whether it is there.
const API_PROBE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct SpeakerOptions {
    pub me: NodeName,
    pub filter: ClassFilter,
    pub timing: Timing,
    pub heartbeat_addr: SocketAddr,
    /// Without an answer from the API for this long, stop announcing.
    pub api_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("binding the heartbeat socket {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Timing(#[from] decide::TimingError),
}

/// Runs until `stop` flips; then stops announcing, tells the peers, and
/// returns.
pub async fn run(
    client: kube::Client,
    options: SpeakerOptions,
    synced: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SpeakerError> {
    options.timing.validate()?;
    let me = options.me.clone();
    let view = SpeakerView::start(client.clone());
    let socket = tokio::net::UdpSocket::bind(options.heartbeat_addr)
        .await
        .map_err(|e| SpeakerError::Bind(options.heartbeat_addr, e))?;
    let socket = Arc::new(socket);
    let live = Liveness::new(me.clone());
    let port = options.heartbeat_addr.port();
    let sender = tokio::spawn(liveness::send(
        socket.clone(),
        live.clone(),
        view.nodes.clone(),
        port,
        options.timing.heartbeat_interval,
    ));
    let receiver = tokio::spawn(liveness::receive(socket, live.clone(), view.nodes.clone()));
    tracing::info!(node = %me, heartbeat = %options.heartbeat_addr, timing = ?options.timing, "speaker started");

    let announcer = Announcer::new(me.clone());
    let interfaces = {
        let announcer = announcer.clone();
        tokio::spawn(async move {
            loop {
                let a = announcer.clone();
                let _ = tokio::task::spawn_blocking(move || a.refresh_interfaces()).await;
                tokio::time::sleep(INTERFACE_REFRESH).await;
            }
        })
    };
    let api_answered = Arc::new(Mutex::new(None::<Instant>));
    let probe = tokio::spawn(probe_api(client.clone(), api_answered.clone()));
    let status = StatusWriter::new(client, me.clone());

    let started = Instant::now();
    let mut announced: Vec<Announced> = Vec::new();
    let mut demands: Vec<decide::Demand> = Vec::new();
    let mut dirty = true;
    let mut current: BTreeSet<IpAddr> = BTreeSet::new();
    // None until the first decision, so that the first standing is logged
    // and its gauge set too.
    let mut standing: Option<Result<(), Withheld>> = None;
    let mut ticker = tokio::time::interval(options.timing.tick());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = view.changed.notified() => { dirty = true; continue; }
            _ = stop.changed() => break,
        }
        let is_synced = *view.synced.borrow();
        synced.store(is_synced, Ordering::Release);
        if dirty && is_synced {
            let objects = view.objects();
            announced = demand::announced(demand::View {
                services: &objects.services,
                slices: &objects.slices,
                nodes: &objects.nodes,
                pools: &objects.pools,
                filter: &options.filter,
            });
            demands = announced.iter().map(|a| a.demand.clone()).collect();
            dirty = false;
        }
        let now = Instant::now();
        let api_ok = is_synced
            && api_answered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some_and(|at| now.saturating_duration_since(at) <= options.api_timeout);
        let decision = {
            let mut peers = live.peers.lock().unwrap_or_else(PoisonError::into_inner);
            peers.expire(now, options.timing.member_window);
            metrics::gauge!(m::PEERS, "state" => "alive")
                .set(peers.heard_within(now, options.timing.peer_timeout).count() as f64);
            metrics::gauge!(m::PEERS, "state" => "member").set(
                peers
                    .heard_within(now, options.timing.member_window)
                    .count() as f64,
            );
            decide::decide(Inputs {
                me: &me,
                now,
                started,
                timing: options.timing,
                demands: &demands,
                peers: &peers,
                api_ok,
                current: &current,
            })
        };
        if standing != Some(decision.standing) {
            report_standing(&me, &decision, &peers_summary(&live, now, options.timing));
        }
        let standing_now = *standing.insert(decision.standing);
        let by_address: BTreeMap<IpAddr, &Announced> =
            announced.iter().map(|a| (a.demand.address, a)).collect();
        let released: Vec<IpAddr> = current.difference(&decision.announce).copied().collect();
        let taken: Vec<IpAddr> = decision.announce.difference(&current).copied().collect();
        let said = heartbeat_standing(standing_now);
        if released.is_empty()
            && taken.is_empty()
            && live
                .own
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .standing
                == said
        {
            continue;
        }
        for address in &released {
            announcer.release(*address);
            metrics::gauge!(m::ANNOUNCED, "node" => me.to_string(), "address" => address.to_string()).set(0.0);
            metrics::counter!(m::OWNERSHIP_CHANGES, "node" => me.to_string(), "address" => address.to_string(), "change" => "released").increment(1);
            let why = match by_address.get(address) {
                None => "no Service has it any more".to_owned(),
                Some(a) if a.demand.candidates.is_empty() => "no node may announce it".to_owned(),
                Some(_) if standing_now.is_err() => format!(
                    "this speaker stands down ({})",
                    standing_now.err().map_or("", |w| w.reason())
                ),
                Some(_) => "another node takes it over".to_owned(),
            };
            tracing::info!(node = %me, %address, "speaker: stopped announcing {address}: {why}");
            if let Some(a) = by_address
                .get(address)
                .filter(|a| a.demand.candidates.is_empty())
            {
                for service in &a.services {
                    let (status, service, address) = (status.clone(), service.clone(), *address);
                    tokio::spawn(async move {
                        status.no_announcer(&service, address, NO_CANDIDATE).await
                    });
                }
            }
        }
        // Peers hear of releases at once (set_own sends a heartbeat now).
        live.set_own(Own {
            standing: said,
            claims: decision.announce.clone(),
        });
        for address in &taken {
            let Some(a) = by_address.get(address) else {
                continue;
            };
            announcer.take(*address, a.interfaces.clone());
            metrics::gauge!(m::ANNOUNCED, "node" => me.to_string(), "address" => address.to_string()).set(1.0);
            metrics::counter!(m::OWNERSHIP_CHANGES, "node" => me.to_string(), "address" => address.to_string(), "change" => "taken").increment(1);
            let on = if a.interfaces.is_empty() {
                "every interface".to_owned()
            } else {
                a.interfaces.join(", ")
            };
            let how = match address {
                IpAddr::V4(_) => format!("ARP on {on}"),
                IpAddr::V6(_) => format!("NDP on {on}"),
            };
            tracing::info!(node = %me, %address, pool = %a.pool, "speaker: now announcing {address} ({how})");
            for service in &a.services {
                let (status, service, address, how) =
                    (status.clone(), service.clone(), *address, how.clone());
                tokio::spawn(async move { status.announcing(&service, address, &how).await });
            }
        }
        current = decision.announce;
    }

    // Stop answering first, then tell the peers, so that they never start
    // while this node still answers.
    for address in &current {
        announcer.release(*address);
        tracing::info!(node = %me, %address, "speaker: stopped announcing {address}: shutting down");
    }
    live.set_own(Own {
        standing: Standing::Withdrawn,
        claims: BTreeSet::new(),
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    for task in [sender, receiver, interfaces, probe] {
        task.abort();
    }
    Ok(())
}

/// What the heartbeats say, from this speaker's decision.
fn heartbeat_standing(standing: Result<(), Withheld>) -> Standing {
    match standing {
        Ok(()) => Standing::Ready,
        Err(Withheld::Joining) => Standing::Joining,
        Err(Withheld::NoApi | Withheld::NoMajority { .. }) => Standing::Withdrawn,
    }
}

fn peers_summary(live: &Liveness, now: Instant, timing: Timing) -> String {
    let peers = live.peers.lock().unwrap_or_else(PoisonError::into_inner);
    let alive: Vec<String> = peers
        .heard_within(now, timing.peer_timeout)
        .map(|(n, _)| n.to_string())
        .collect();
    if alive.is_empty() {
        "no peer heard".to_owned()
    } else {
        format!("peers heard: {}", alive.join(", "))
    }
}

fn report_standing(me: &NodeName, decision: &Decision, peers: &str) {
    for reason in ["NoApiContact", "Joining", "NoPeerMajority"] {
        let on = decision
            .standing
            .err()
            .is_some_and(|w| w.reason() == reason);
        metrics::gauge!(m::STANDING, "reason" => reason).set(if on { 1.0 } else { 0.0 });
    }
    metrics::gauge!(m::STANDING, "reason" => "Ready").set(if decision.standing.is_ok() {
        1.0
    } else {
        0.0
    });
    match decision.standing {
        Ok(()) => tracing::info!(node = %me, "speaker: ready to announce ({peers})"),
        Err(Withheld::Joining) => {
            tracing::info!(node = %me, "speaker: joining: learning peers before announcing ({peers})")
        }
        Err(Withheld::NoApi) => {
            tracing::warn!(node = %me, "speaker: lost contact with the API server (or not synced yet): announcing nothing until it answers again ({peers})")
        }
        Err(Withheld::NoMajority { heard, members }) => {
            tracing::warn!(node = %me, heard, members, "speaker: lost contact with its peers (heard {heard} of {members} speakers, itself included): announcing nothing, so that no other node and this one announce an address at once ({peers})")
        }
    }
}

/// Asks the API for its version every second; records when it answered.
async fn probe_api(client: kube::Client, answered: Arc<Mutex<Option<Instant>>>) {
    loop {
        let asked = Instant::now();
        match tokio::time::timeout(API_PROBE * 2, client.apiserver_version()).await {
            Ok(Ok(_)) => {
                *answered.lock().unwrap_or_else(PoisonError::into_inner) = Some(asked);
            }
            Ok(Err(e)) => tracing::debug!("speaker: API probe failed: {e}"),
            Err(_) => tracing::debug!("speaker: API probe timed out"),
        }
        tokio::time::sleep(API_PROBE.saturating_sub(asked.elapsed())).await;
    }
}

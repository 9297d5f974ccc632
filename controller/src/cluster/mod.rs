//! Cluster mode: Kubernetes watches in, the same rebuild as local mode, and
//! (leader only) Ingress status and Events written back.
//!
//! Every replica watches and serves snapshots; only the Lease holder writes.
//! Changes are coalesced before a rebuild: a burst of object changes costs
//! a few rebuilds, an EndpointSlice change reaches the gateways within
//! milliseconds as an endpoints frame.

pub mod election;
pub mod event_plan;
pub mod events;
pub mod ingest;
pub mod lease;
pub mod status;
pub mod status_plan;
pub mod watch;

use crate::metrics as m;
use crate::rebuild::{ChangeSet, RebuildError, Rebuilder};
use futures::StreamExt;
use ingest::Ingest;
use kube::runtime::events::Reporter;
use lease::LeaseConfig;
use status_plan::PublishSource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch as channel;
use tokio::time::Instant;
use watch::WatchScope;

/// How long the stream of changes must be quiet before a rebuild, and the
/// most a burst may delay one: short for endpoint updates (cheap), longer
/// for full translations (which coalesce bursts of edits).
const ENDPOINTS_QUIET: Duration = Duration::from_millis(5);
const ENDPOINTS_MAX_DELAY: Duration = Duration::from_millis(50);
const FULL_QUIET: Duration = Duration::from_millis(20);
const FULL_MAX_DELAY: Duration = Duration::from_millis(250);
/// A full rebuild at least this often, so certificate validity follows the
/// clock even when nothing changes.
const RESYNC: Duration = Duration::from_secs(60);

/// Everything cluster mode needs besides the client and the rebuilder.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub scope: WatchScope,
    pub lease: LeaseConfig,
    /// Where Ingress status addresses come from; `None`: status is not written.
    pub publish: Option<PublishSource>,
    /// `reportingController` of Events.
    pub controller_name: String,
    /// Load-balancer address allocation; `None` (`--no-load-balancer`):
    /// LoadBalancer Services are left to someone else.
    pub load_balancer: Option<crate::lb::LbOptions>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the Kubernetes watch streams ended")]
    WatchEnded,
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
}

/// Runs until `stop` flips to true (SIGTERM): then stops writing and
/// releases the Lease before returning.
pub async fn run(
    client: kube::Client,
    options: ClusterOptions,
    mut rebuilder: Rebuilder,
    synced: Arc<AtomicBool>,
    mut stop: channel::Receiver<bool>,
) -> Result<(), ClusterError> {
    let (leadership, election) = lease::start(client.clone(), options.lease.clone(), stop.clone());
    let reporter = Reporter {
        controller: options.controller_name.clone(),
        instance: Some(options.lease.identity.clone()),
    };
    let lb_task = options.load_balancer.clone().map(|lb| {
        tokio::spawn(crate::lb::run(
            client.clone(),
            lb,
            reporter.clone(),
            leadership.clone(),
            stop.clone(),
        ))
    });
    let events_task = tokio::spawn(events::run(
        client.clone(),
        reporter,
        rebuilder.outcomes(),
        leadership.clone(),
        stop.clone(),
    ));
    let status_task = match options.publish.clone() {
        Some(source) => Some(tokio::spawn(status::run(
            client.clone(),
            source,
            rebuilder.outcomes(),
            leadership.clone(),
            stop.clone(),
        ))),
        None => {
            tracing::info!("neither --publish-service nor --publish-address given: Ingress status is not written");
            None
        }
    };

    let mut events = watch::watch_all(client, &options.scope);
    let mut ingest = Ingest::default();
    // When the first change of the pending batch and the latest one arrived.
    let mut batch: Option<(Instant, Instant)> = None;
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    let result = loop {
        let due = batch.map(|(first, last)| {
            let (quiet, max) = if ingest.pending_full() {
                (FULL_QUIET, FULL_MAX_DELAY)
            } else {
                (ENDPOINTS_QUIET, ENDPOINTS_MAX_DELAY)
            };
            (last + quiet).min(first + max)
        });
        let ready = ingest.synced() && (due.is_some() || !rebuilder.has_snapshot());
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break Err(ClusterError::WatchEnded) };
                ingest.apply(event);
                let now = Instant::now();
                if ingest.has_changes() {
                    batch = Some(batch.map_or((now, now), |(first, _)| (first, now)));
                }
            }
            _ = sleep_until_opt(due.filter(|_| ready)), if ready => {
                let changes = ingest.take_changes();
                let changes = if rebuilder.has_snapshot() { changes } else { ChangeSet::everything() };
                batch = None;
                let state = ingest.state();
                if let Err(e) = tokio::task::block_in_place(|| rebuilder.rebuild(state, &changes)) {
                    break Err(e.into());
                }
                if !synced.swap(true, Ordering::AcqRel) {
                    metrics::gauge!(m::CACHES_SYNCED).set(1.0);
                    tracing::info!("caches synced and first snapshot built: ready");
                }
            }
            _ = resync.tick() => {
                ingest.force_full();
                let now = Instant::now();
                batch = Some(batch.map_or((now, now), |(first, _)| (first, now)));
            }
            _ = stop.changed() => break Ok(()),
        }
    };
    // On stop the election releases the Lease; wait for it (bounded by its
    // own timeouts) so the next leader can start at once.
    if result.is_ok() {
        let _ = election.await;
    } else {
        election.abort();
    }
    events_task.abort();
    if let Some(t) = lb_task {
        t.abort();
    }
    if let Some(t) = status_task {
        t.abort();
    }
    result
}

/// Sleeps until `at`, or immediately when there is no deadline.
async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

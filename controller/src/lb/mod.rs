//! Load-balancer address allocation for `type: LoadBalancer` Services
//! (leader only): IPPools and Services in, Service status (addresses and
//! the `gatehouse.dev/IPAllocated` condition), IPPool status and Events
//! out. The allocation rules are [`crate::ipam`]'s; this module converts
//! objects ([`convert`]), plans rounds ([`round`]) and writes ([`write`]).
//!
//! Every replica keeps the watches warm; only the Lease holder plans and
//! writes, each write guarded by the lease fence.

pub mod convert;
pub mod pool_status;
pub mod round;
pub mod service_status;
pub mod write;

use crate::cluster::lease::Leadership;
use crate::cluster::watch::{slim_in_place, WatchScope};
use crate::ipam::Family;
use crate::metrics as m;
use crate::state::ObjectKey;
use convert::ClassFilter;
use futures::{Stream, StreamExt};
use gatehouse_crds::IPPool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use round::{Inputs, Reconciler};
use serde::de::DeserializeOwned;
use service_status::Verdict;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch as channel;
use tokio::time::Instant;

/// `--load-balancer-class` by default.
pub const DEFAULT_CLASS: &str = "gatehouse.dev/lb";

/// A round waits for this much quiet after a change, and at most this long.
const QUIET: Duration = Duration::from_millis(20);
const MAX_DELAY: Duration = Duration::from_millis(250);
/// Retry after failed writes, and a level-triggered round at least this often.
const RETRY: Duration = Duration::from_secs(2);
const RESYNC: Duration = Duration::from_secs(60);

/// What the load-balancer reconciler serves.
#[derive(Debug, Clone)]
pub struct LbOptions {
    pub filter: ClassFilter,
    /// Namespaced watches only here (`--watch-namespace`).
    pub scope: WatchScope,
}

/// Which watch a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Watched {
    Services,
    Pools,
    Namespaces,
}

pub(crate) type Changes<W> = Pin<Box<dyn Stream<Item = (W, bool)> + Send>>;

/// A reflector store and the stream that fills it; items say whether a
/// (re)list just completed. `which` names the watch in items and logs (the
/// speaker's watches use it too).
pub(crate) fn reflect<K, W>(
    api: Api<K>,
    config: watcher::Config,
    which: W,
) -> (Store<K>, Changes<W>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    W: Copy + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(slim_in_place)
        .reflect(writer)
        .filter_map(move |event| async move {
            match event {
                Ok(Event::InitDone) => Some((which, true)),
                Ok(Event::Init) | Ok(Event::InitApply(_)) => None,
                Ok(_) => Some((which, false)),
                Err(e) => {
                    tracing::warn!(watch = ?which, "watch failed (retrying): {e}");
                    None
                }
            }
        });
    (store, Box::pin(stream))
}

/// Runs until `stop` flips.
pub async fn run(
    client: kube::Client,
    options: LbOptions,
    reporter: kube::runtime::events::Reporter,
    mut leadership: Leadership,
    mut stop: channel::Receiver<bool>,
) {
    let services_api: Api<Service> = match &options.scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (services, s) = reflect(services_api, watcher::Config::default(), Watched::Services);
    let (pools, p) = reflect(
        Api::<IPPool>::all(client.clone()),
        watcher::Config::default(),
        Watched::Pools,
    );
    let (namespaces, n) = reflect(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        Watched::Namespaces,
    );
    let mut changes = futures::stream::select_all([s, p, n]);
    let mut synced: BTreeMap<Watched, bool> = BTreeMap::new();
    let mut reconciler = Reconciler::new(options.filter.clone());
    let mut writer = write::Writer::new(client, reporter);
    let mut batch: Option<(Instant, Instant)> = None;
    let mut leading = *leadership.leading.borrow_and_update();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let due = batch.map(|(first, last)| (last + QUIET).min(first + MAX_DELAY));
        let ready = leading && synced.len() == 3 && due.is_some();
        tokio::select! {
            change = changes.next() => {
                let Some((which, init_done)) = change else { return };
                if init_done {
                    synced.insert(which, true);
                }
                let now = Instant::now();
                batch = Some(batch.map_or((now, now), |(first, _)| (first, now)));
            }
            r = leadership.leading.changed() => {
                if r.is_err() { return }
                leading = *leadership.leading.borrow_and_update();
                if leading {
                    tracing::info!("leading: load-balancer allocation starts from the Services' status");
                    let now = Instant::now();
                    batch = Some((now, now));
                } else {
                    reconciler.end_term();
                    writer.forget();
                }
            }
            _ = resync.tick() => {
                let now = Instant::now();
                batch = Some(batch.map_or((now, now), |(first, _)| (first, now)));
            }
            _ = sleep_until_opt(due.filter(|_| ready)), if ready => {
                batch = None;
                let inputs = writer.overlay(Inputs {
                    services: services.state(),
                    pools: pools.state(),
                    namespaces: namespaces.state(),
                });
                let started = std::time::Instant::now();
                let plan = tokio::task::block_in_place(|| {
                    reconciler.round(&inputs, k8s_openapi::jiff::Timestamp::now())
                });
                metrics::histogram!(m::LB_ROUND_SECONDS).record(started.elapsed().as_secs_f64());
                record_metrics(&plan.verdicts, &reconciler);
                if !writer.carry_out(&plan, &inputs, &leadership.fence).await {
                    let retry = Instant::now() + RETRY;
                    batch = Some((retry, retry));
                }
            }
            _ = stop.changed() => return,
        }
    }
}

fn record_metrics(verdicts: &BTreeMap<ObjectKey, Verdict>, reconciler: &Reconciler) {
    let allocated = verdicts
        .values()
        .filter(|v| matches!(v, Verdict::Allocated(_)))
        .count();
    metrics::gauge!(m::LB_SERVICES, "state" => "allocated").set(allocated as f64);
    metrics::gauge!(m::LB_SERVICES, "state" => "pending").set((verdicts.len() - allocated) as f64);
    let mut failing: BTreeMap<String, usize> = BTreeMap::new();
    for v in verdicts.values() {
        if !matches!(v, Verdict::Allocated(_)) {
            *failing.entry(v.condition().reason).or_default() += 1;
        }
    }
    for reason in FAILURE_REASONS {
        let n = failing.get(*reason).copied().unwrap_or(0);
        metrics::gauge!(m::LB_FAILING, "reason" => *reason).set(n as f64);
    }
    for status in reconciler.pool_statuses() {
        for family in Family::ALL {
            let usage = status.family(family);
            let fam = match family {
                Family::V4 => "ipv4",
                Family::V6 => "ipv6",
            };
            let pool = status.name.as_str().to_owned();
            metrics::gauge!(m::LB_POOL_ADDRESSES, "pool" => pool.clone(), "family" => fam, "state" => "assigned")
                .set(usage.assigned as f64);
            metrics::gauge!(m::LB_POOL_ADDRESSES, "pool" => pool, "family" => fam, "state" => "available")
                .set(usage.free as f64);
        }
    }
}

/// Every reason a served Service can be without addresses (gauges are set
/// for all, so a resolved reason drops to zero).
const FAILURE_REASONS: &[&str] = &[
    "InvalidRequest",
    "InvalidIPFamilies",
    "RequestedIPFamilyMismatch",
    "UnknownPool",
    "PoolInvalid",
    "PoolNotAllowed",
    "NoPoolMatches",
    "PoolExhausted",
    "RequestedIPNotInAnyPool",
    "RequestedIPNotInRequestedPool",
    "RequestedIPTaken",
    "SharingConflict",
];

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

//! Leader election on a `coordination.k8s.io/v1` Lease: the API calls for
//! the decisions of [`super::election`]. Every write is conditional on the
//! resourceVersion read, so two replicas can never both take the Lease.
//!
//! Writers do not trust a flag that a loop may update late: before every
//! write to the API they ask the [`Fence`], which compares the clock with
//! the deadline the last successful renewal earned.

use super::election::{Action, ElectionTiming, Elector, Observed};
use crate::metrics as m;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where the Lease is and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub timing: ElectionTiming,
}

/// Whether this replica may write to the API right now.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<Mutex<Option<Instant>>>);

impl Fence {
    /// True only while the last successful renewal's deadline is ahead.
    pub fn allows(&self) -> bool {
        let until = *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        until.is_some_and(|until| Instant::now() < until)
    }

    fn set(&self, until: Option<Instant>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = until;
    }

    /// A fence that always allows (tests, and single-writer tools).
    pub fn open() -> Self {
        Fence(Arc::new(Mutex::new(Some(
            Instant::now() + Duration::from_secs(100 * 365 * 86_400),
        ))))
    }
}

/// Leadership as the rest of the controller sees it.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub fence: Fence,
    /// Flips when leadership is gained or lost (for starting and stopping
    /// leader-only work; the fence is what guards each write).
    pub leading: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
enum LeaseError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl LeaseError {
    fn is_conflict(&self) -> bool {
        matches!(self, LeaseError::Api(kube::Error::Api(s)) if s.code == 409)
    }
}

/// Runs the election until `stop` flips to true; then stops acting at once
/// and releases the Lease if it holds it.
pub fn start(
    client: kube::Client,
    config: LeaseConfig,
    stop: watch::Receiver<bool>,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let fence = Fence::default();
    let (tx, leading) = watch::channel(false);
    let task = tokio::spawn(run(client, config, fence.clone(), tx, stop));
    (Leadership { fence, leading }, task)
}

async fn run(
    client: kube::Client,
    config: LeaseConfig,
    fence: Fence,
    tx: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut elector = Elector::new(config.identity.clone(), config.timing);
    let timing = config.timing;
    metrics::gauge!(m::LEADER).set(0.0);
    loop {
        let started = Instant::now();
        let step = tokio::time::timeout(timing.renew_deadline, step(&api, &config, &mut elector));
        let result = tokio::select! {
            r = step => r.unwrap_or(Err(LeaseError::Timeout(timing.renew_deadline))),
            _ = stop.changed() => break,
        };
        if let Err(e) = &result {
            if e.is_conflict() {
                elector.conflicted();
            } else if elector.is_leading(Instant::now()) {
                tracing::warn!(lease = %config.name, "renewing the leader lease failed: {e}; still leading for {:?}",
                    elector.leading_until().map(|u| u.saturating_duration_since(Instant::now())));
            } else {
                tracing::warn!(lease = %config.name, "leader election: {e}");
            }
        }
        fence.set(elector.leading_until());
        publish(&tx, elector.is_leading(Instant::now()), &config);
        // Sleep until the next attempt, waking at the deadline to give up
        // leadership on time if renewals keep failing.
        let next = started + timing.retry_period;
        let wake = match elector.leading_until() {
            Some(until) if until < next => until,
            _ => next,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => break,
        }
        if Instant::now() >= next {
            continue;
        }
        // Woken at the deadline: leadership ran out.
        publish(&tx, elector.is_leading(Instant::now()), &config);
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = stop.changed() => break,
        }
    }
    // Stop acting before giving the Lease away.
    let was_leading = elector.is_leading(Instant::now());
    fence.set(None);
    elector.released();
    publish(&tx, false, &config);
    if was_leading {
        match tokio::time::timeout(timing.retry_period, release(&api, &config)).await {
            Ok(Ok(())) => {
                metrics::counter!(m::LEADER_TRANSITIONS, "change" => "released").increment(1);
                tracing::info!(lease = %config.name, "released the leader lease");
            }
            Ok(Err(e)) => tracing::warn!(lease = %config.name, "releasing the leader lease: {e}"),
            Err(_) => tracing::warn!(lease = %config.name, "releasing the leader lease timed out"),
        }
    }
}

fn publish(tx: &watch::Sender<bool>, leading: bool, config: &LeaseConfig) {
    let was = *tx.borrow();
    if was == leading {
        return;
    }
    tx.send_replace(leading);
    metrics::gauge!(m::LEADER).set(if leading { 1.0 } else { 0.0 });
    let change = if leading { "acquired" } else { "lost" };
    metrics::counter!(m::LEADER_TRANSITIONS, "change" => change).increment(1);
    if leading {
        tracing::info!(lease = %config.name, identity = %config.identity, "became leader");
    } else {
        tracing::warn!(lease = %config.name, identity = %config.identity, "no longer leader; stopped writing");
    }
}

fn observed(lease: &Lease) -> Observed {
    let spec = lease.spec.as_ref();
    Observed {
        resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        holder: spec.and_then(|s| s.holder_identity.clone()),
        lease_duration: spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
    }
}

async fn step(
    api: &Api<Lease>,
    config: &LeaseConfig,
    elector: &mut Elector,
) -> Result<(), LeaseError> {
    let now = Instant::now();
    let current = api.get_opt(&config.name).await?;
    let action = elector.observe(current.as_ref().map(observed), now);
    let stamp = MicroTime(Timestamp::now());
    let written = match (action, current) {
        (Action::Wait, _) => return Ok(()),
        (Action::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(config.timing.lease_seconds()),
                    acquire_time: Some(stamp.clone()),
                    renew_time: Some(stamp),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(l) => l,
                // Another replica created it first: same as a conflict.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    elector.conflicted();
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        (Action::Acquire | Action::Renew, None) => return Ok(()),
        (Action::Acquire, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(config.identity.clone());
            spec.lease_duration_seconds = Some(config.timing.lease_seconds());
            spec.acquire_time = Some(stamp.clone());
            spec.renew_time = Some(stamp);
            // `replace` sends our resourceVersion: 409 if anyone wrote since.
            api.replace(&config.name, &PostParams::default(), &lease)
                .await?
        }
        (Action::Renew, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(stamp);
            spec.lease_duration_seconds = Some(config.timing.lease_seconds());
            api.replace(&config.name, &PostParams::default(), &lease)
                .await?
        }
    };
    elector.succeeded(now, observed(&written));
    Ok(())
}

/// Gives the Lease up so another replica can take it at once.
async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), LeaseError> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(&config.name, &PostParams::default(), &lease)
        .await?;
    Ok(())
}

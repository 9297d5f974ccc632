//! Writes Ingress status while this replica leads: the plan of
//! [`super::status_plan`], each write a merge patch of the status
//! subresource conditional on the resourceVersion it was planned from (a
//! conflict means the Ingress changed; the watch brings the new version and
//! it is planned again).

use super::lease::Leadership;
use super::status_plan::{desired_addresses, plan, PublishSource, StatusWrite};
use crate::metrics as m;
use crate::rebuild::Outcome;
use crate::state::ObjectKey;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Retry interval after failed writes.
const RETRY: Duration = Duration::from_secs(2);

/// Runs until `stop` flips.
pub async fn run(
    client: kube::Client,
    source: PublishSource,
    mut outcomes: watch::Receiver<Option<Arc<Outcome>>>,
    mut leadership: Leadership,
    mut stop: watch::Receiver<bool>,
) {
    let (service_tx, mut service) = watch::channel::<Option<Arc<Service>>>(None);
    let _service_watch = match &source {
        PublishSource::Service(key) => Some(AbortOnDrop(tokio::spawn(watch_service(
            client.clone(),
            key.clone(),
            service_tx,
        )))),
        PublishSource::Addresses(_) => None,
    };
    // What we wrote, by Ingress: (resourceVersion planned from, write), so a
    // rebuild that runs before the watch shows our write does not repeat it.
    let mut written: BTreeMap<ObjectKey, StatusWrite> = BTreeMap::new();
    let mut retry_soon = false;
    loop {
        tokio::select! {
            r = outcomes.changed() => if r.is_err() { return },
            r = service.changed() => if r.is_err() { return },
            r = leadership.leading.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RETRY), if retry_soon => {}
            _ = stop.changed() => return,
        }
        retry_soon = false;
        if !*leadership.leading.borrow_and_update() {
            written.clear();
            continue;
        }
        let Some(outcome) = outcomes.borrow_and_update().clone() else {
            continue;
        };
        let publish_service = service.borrow_and_update().clone();
        let desired = desired_addresses(&source, publish_service.as_deref());
        let writes = plan(&outcome.state.ingresses, &outcome.served, &desired);
        for write in writes {
            if written.get(&write.ingress) == Some(&write) {
                continue;
            }
            if !leadership.fence.allows() {
                break;
            }
            match patch(&client, &write).await {
                Ok(()) => {
                    let result = if write.addresses.is_empty() {
                        "cleared"
                    } else {
                        "updated"
                    };
                    metrics::counter!(m::STATUS_UPDATES, "result" => result).increment(1);
                    tracing::info!(ingress = %write.ingress, addresses = ?write.addresses.iter().map(|a| a.ip.clone().or(a.hostname.clone())).collect::<Vec<_>>(), "Ingress status {result}");
                    written.insert(write.ingress.clone(), write);
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    metrics::counter!(m::STATUS_UPDATES, "result" => "conflict").increment(1);
                    tracing::debug!(ingress = %write.ingress, "Ingress changed before its status write; planning again");
                    retry_soon = true;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    metrics::counter!(m::STATUS_UPDATES, "result" => "error").increment(1);
                    tracing::warn!(ingress = %write.ingress, "writing Ingress status failed: {e}; retrying");
                    retry_soon = true;
                }
            }
        }
        // Forget writes for Ingresses that are gone or whose state caught up.
        written.retain(|k, w| {
            outcome.state.ingresses.get(k).is_some_and(|i| {
                i.metadata.resource_version.as_deref() == Some(w.resource_version.as_str())
            })
        });
    }
}

async fn patch(client: &kube::Client, write: &StatusWrite) -> Result<(), kube::Error> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &write.ingress.namespace);
    let addresses = if write.addresses.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(&write.addresses).map_err(kube::Error::SerdeError)?
    };
    let body = serde_json::json!({
        "metadata": {"resourceVersion": write.resource_version},
        "status": {"loadBalancer": {"ingress": addresses}},
    });
    api.patch_status(
        &write.ingress.name,
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}

/// Follows the publish Service (one object, by name).
async fn watch_service(
    client: kube::Client,
    key: ObjectKey,
    tx: watch::Sender<Option<Arc<Service>>>,
) {
    let api: Api<Service> = Api::namespaced(client, &key.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    // During a relist: whether the Service was in it.
    let mut listed = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(s)) => {
                tx.send_replace(Some(Arc::new(s)));
            }
            Ok(Event::InitApply(s)) => {
                listed = true;
                tx.send_replace(Some(Arc::new(s)));
            }
            Ok(Event::Delete(_)) => {
                tx.send_replace(None);
            }
            Ok(Event::Init) => listed = false,
            Ok(Event::InitDone) => {
                if !listed {
                    tx.send_replace(None);
                }
            }
            Err(e) => tracing::warn!(service = %key, "watching the publish Service: {e}"),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! Carries out a round's plan: status merge patches conditional on the
//! resourceVersion they were planned from (a conflict means the object
//! changed; the next round plans again from the new version), an Event for
//! each change of a Service's condition, and an overlay of what was written
//! so a round that runs before the watch shows a write does not repeat it.

use super::round::{Inputs, Plan};
use super::service_status::ServiceStatusWrite;
use crate::cluster::events::{truncate, MAX_NOTE};
use crate::cluster::lease::Fence;
use crate::ipam::PoolName;
use crate::metrics as m;
use crate::state::ObjectKey;
use gatehouse_crds::{IPPool, IPPoolStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::collections::BTreeMap;
use std::sync::Arc;

/// At most this many Events per round (a pool running dry for thousands of
/// Services says so on the first ones; the conditions carry the rest).
const EVENTS_PER_ROUND: usize = 100;
const ACTION: &str = "AllocateIP";

/// What was written and not yet seen through the watch: the object the API
/// server returned, by the resourceVersion it was planned from.
struct Overlay<K> {
    written: BTreeMap<ObjectKey, (String, Arc<K>)>,
}

impl<K> Default for Overlay<K> {
    fn default() -> Self {
        Overlay {
            written: BTreeMap::new(),
        }
    }
}

impl<K: kube::Resource> Overlay<K> {
    /// The watched objects with our newer writes in place of the versions
    /// they were planned from; forgets writes the watch caught up with.
    fn apply(&mut self, objects: Vec<Arc<K>>) -> Vec<Arc<K>> {
        let mut seen = BTreeMap::new();
        let out = objects
            .into_iter()
            .map(|o| {
                let key = ObjectKey::new(
                    o.meta().namespace.as_deref().unwrap_or_default(),
                    o.meta().name.as_deref().unwrap_or_default(),
                );
                let rv = o.meta().resource_version.clone().unwrap_or_default();
                match self.written.get(&key) {
                    Some((from, ours)) if *from == rv => {
                        seen.insert(key, ());
                        ours.clone()
                    }
                    _ => o,
                }
            })
            .collect();
        self.written.retain(|k, _| seen.contains_key(k));
        out
    }
}

pub struct Writer {
    client: kube::Client,
    reporter: Reporter,
    services: Overlay<Service>,
    pools: Overlay<IPPool>,
}

impl Writer {
    pub fn new(client: kube::Client, reporter: Reporter) -> Writer {
        Writer {
            client,
            reporter,
            services: Overlay::default(),
            pools: Overlay::default(),
        }
    }

    /// Leadership ended: nothing this replica wrote is trusted any more.
    pub fn forget(&mut self) {
        self.services.written.clear();
        self.pools.written.clear();
    }

    pub fn overlay(&mut self, inputs: Inputs) -> Inputs {
        Inputs {
            services: self.services.apply(inputs.services),
            pools: self.pools.apply(inputs.pools),
            namespaces: inputs.namespaces,
        }
    }

    /// Writes the plan while the fence allows. `false`: something failed
    /// and the round should be retried soon.
    pub async fn carry_out(&mut self, plan: &Plan, inputs: &Inputs, fence: &Fence) -> bool {
        let mut ok = true;
        let mut events = 0;
        let by_key: BTreeMap<ObjectKey, &Arc<Service>> = inputs
            .services
            .iter()
            .map(|s| {
                (
                    ObjectKey::new(
                        s.metadata.namespace.as_deref().unwrap_or_default(),
                        s.metadata.name.as_deref().unwrap_or_default(),
                    ),
                    s,
                )
            })
            .collect();
        for (key, write) in &plan.services {
            if !fence.allows() {
                return true;
            }
            match self.patch_service(key, write).await {
                Ok(written) => {
                    metrics::counter!(m::LB_STATUS_UPDATES, "kind" => "Service", "result" => "updated").increment(1);
                    let addresses: Vec<_> =
                        write.ingress.iter().filter_map(|i| i.ip.clone()).collect();
                    tracing::info!(service = %key, ?addresses, "Service load-balancer status updated");
                    self.services.written.insert(
                        key.clone(),
                        (write.resource_version.clone(), Arc::new(written)),
                    );
                    if write.condition_changed {
                        if events < EVENTS_PER_ROUND {
                            events += 1;
                            if let Some(service) = by_key.get(key) {
                                self.event(service, write).await;
                            }
                        } else {
                            metrics::counter!(m::EVENTS_SUPPRESSED).increment(1);
                        }
                    }
                }
                Err(e) => {
                    ok &= self.failed("Service", &key.to_string(), e);
                }
            }
        }
        for (name, status) in &plan.pools {
            if !fence.allows() {
                return true;
            }
            let from = inputs
                .pools
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                .and_then(|p| p.metadata.resource_version.clone())
                .unwrap_or_default();
            match self.patch_pool(name, &from, status).await {
                Ok(written) => {
                    metrics::counter!(m::LB_STATUS_UPDATES, "kind" => "IPPool", "result" => "updated").increment(1);
                    self.pools
                        .written
                        .insert(ObjectKey::new("", name.as_str()), (from, Arc::new(written)));
                }
                Err(e) => {
                    ok &= self.failed("IPPool", name.as_str(), e);
                }
            }
        }
        ok
    }

    /// Counts and logs a failed write; `false` when a retry is due (a
    /// deleted object needs none).
    fn failed(&self, kind: &'static str, name: &str, e: kube::Error) -> bool {
        match e {
            kube::Error::Api(s) if s.code == 409 => {
                metrics::counter!(m::LB_STATUS_UPDATES, "kind" => kind, "result" => "conflict")
                    .increment(1);
                tracing::debug!(%kind, %name, "changed before its status write; planning again");
                false
            }
            kube::Error::Api(s) if s.code == 404 => true,
            e => {
                metrics::counter!(m::LB_STATUS_UPDATES, "kind" => kind, "result" => "error")
                    .increment(1);
                tracing::warn!(%kind, %name, "writing load-balancer status failed: {e}; retrying");
                false
            }
        }
    }

    async fn patch_service(
        &self,
        key: &ObjectKey,
        write: &ServiceStatusWrite,
    ) -> Result<Service, kube::Error> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        let ingress = if write.ingress.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&write.ingress).map_err(kube::Error::SerdeError)?
        };
        let conditions = if write.conditions.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&write.conditions).map_err(kube::Error::SerdeError)?
        };
        let body = serde_json::json!({
            "metadata": {"resourceVersion": write.resource_version},
            "status": {"loadBalancer": {"ingress": ingress}, "conditions": conditions},
        });
        api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
    }

    async fn patch_pool(
        &self,
        name: &PoolName,
        from: &str,
        status: &IPPoolStatus,
    ) -> Result<IPPool, kube::Error> {
        let api: Api<IPPool> = Api::all(self.client.clone());
        let body = serde_json::json!({
            "metadata": {"resourceVersion": from},
            "status": status,
        });
        api.patch_status(name.as_str(), &PatchParams::default(), &Patch::Merge(&body))
            .await
    }

    async fn event(&self, service: &Service, write: &ServiceStatusWrite) {
        let Some(ours) = write
            .conditions
            .iter()
            .find(|c| c.type_ == super::service_status::CONDITION_TYPE)
        else {
            // Our condition went away: the Service is no longer ours.
            return self
                .publish(
                    service,
                    EventType::Normal,
                    "IPReleased",
                    "no longer a LoadBalancer Service of this controller: addresses released"
                        .into(),
                )
                .await;
        };
        let type_ = if ours.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        self.publish(service, type_, &ours.reason, ours.message.clone())
            .await;
    }

    async fn publish(&self, service: &Service, type_: EventType, reason: &str, note: String) {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            uid: service.metadata.uid.clone(),
            ..ObjectReference::default()
        };
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, MAX_NOTE)),
            action: ACTION.to_owned(),
            secondary: None,
        };
        let label = if type_ == EventType::Warning {
            "Warning"
        } else {
            "Normal"
        };
        match recorder.publish(&event, &reference).await {
            Ok(()) => metrics::counter!(m::EVENTS, "type" => label, "reason" => reason.to_owned())
                .increment(1),
            Err(e) => {
                tracing::warn!(service = ?service.metadata.name, %reason, "publishing an Event failed: {e}")
            }
        }
    }
}

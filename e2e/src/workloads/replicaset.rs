//! The ReplicaSet controller: as many active Pods from the template as
//! `replicas` says (deleting not-ready and unscheduled ones first), and the
//! status counts (`replicas`, `readyReplicas`, `availableReplicas` after
//! `minReadySeconds`, `observedGeneration`).

use std::cmp::Reverse;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use super::cache::Cache;
use super::error::WorkloadError;
use super::expectations::Expectations;
use super::ownership::{controller_reference, pod_from_template};
use super::pod_state::{is_active, is_available, is_ready, node_name, phase};
use super::runner::Reconcile;
use super::writes::{create_pod, delete_pod, patch_status};

pub(crate) struct ReplicaSetController {
    client: Client,
    cache: Cache,
    expectations: Expectations,
}

impl ReplicaSetController {
    pub fn new(client: Client, cache: Cache) -> Arc<Self> {
        Arc::new(Self {
            client,
            cache,
            expectations: Expectations::default(),
        })
    }
}

impl Reconcile for ReplicaSetController {
    async fn pass(&self) -> Result<(), WorkloadError> {
        let pods = self.cache.pods.state();
        let mut first_error = None;
        for rs in self.cache.replica_sets.state() {
            if let Err(error) = self.reconcile(&rs, &pods).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl ReplicaSetController {
    async fn reconcile(&self, rs: &ReplicaSet, pods: &[Arc<Pod>]) -> Result<(), WorkloadError> {
        let (Some(uid), Some(namespace)) = (rs.uid(), rs.namespace()) else {
            return Ok(());
        };
        let Some(owned) = self.expectations.owned_pods(pods, &namespace, &uid) else {
            return Ok(());
        };
        let mut active: Vec<&Arc<Pod>> = owned.into_iter().filter(|p| is_active(p)).collect();
        let wanted = rs.spec.replicas.unwrap_or(1).max(0) as usize;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        // A ReplicaSet being deleted makes no new Pods (the collector removes them).
        if active.len() < wanted && rs.metadata.deletion_timestamp.is_none() {
            self.create_pods(rs, &api, &namespace, &uid, wanted - active.len())
                .await?;
        } else if active.len() > wanted {
            active.sort_by_key(|p| deletion_rank(p));
            for pod in &active[..active.len() - wanted] {
                delete_pod(&api, &self.expectations, &uid, pod).await?;
            }
            active.truncate(wanted);
        }
        self.write_status(rs, &namespace, &active).await
    }

    async fn create_pods(
        &self,
        rs: &ReplicaSet,
        api: &Api<Pod>,
        namespace: &str,
        uid: &str,
        count: usize,
    ) -> Result<(), WorkloadError> {
        let (Some(template), Some(owner)) = (rs.spec.template.as_ref(), controller_reference(rs))
        else {
            return Err(WorkloadError::Incomplete {
                kind: "ReplicaSet",
                name: rs.name_any(),
                what: "no template or uid",
            });
        };
        for _ in 0..count {
            let pod = pod_from_template(template, owner.clone(), namespace, &[]);
            create_pod(api, &self.expectations, uid, &pod).await?;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        rs: &ReplicaSet,
        namespace: &str,
        active: &[&Arc<Pod>],
    ) -> Result<(), WorkloadError> {
        let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
        let now = Timestamp::now();
        let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
        let status = ReplicaSetStatus {
            replicas: active.len() as i32,
            fully_labeled_replicas: Some(active.len() as i32),
            ready_replicas: Some(count(&is_ready)),
            available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
            observed_generation: rs.metadata.generation,
            conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
            terminating_replicas: None,
        };
        if rs.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        patch_status(&api, &rs.name_any(), &status).await
    }
}

/// Sorts the Pods to delete first: unscheduled, then pending, then not
/// ready, then the youngest (upstream's `ActivePods` order, simplified).
fn deletion_rank(pod: &Pod) -> (bool, u8, bool, Reverse<Option<Timestamp>>) {
    let phase_rank = match phase(pod) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    (
        node_name(pod).is_some(),
        phase_rank,
        is_ready(pod),
        Reverse(pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    )
}

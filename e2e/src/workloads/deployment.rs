//! The Deployment controller: one ReplicaSet per Pod template
//! (`<deployment>-<pod-template-hash>`), rolled out `RollingUpdate`
//! (maxSurge/maxUnavailable, see `rollout`) or `Recreate`, scaled, old sets
//! pruned past `revisionHistoryLimit`, and the Deployment's status.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::cache::Cache;
use super::error::WorkloadError;
use super::int_or_percent::{scaled, Round};
use super::ownership::{controlled_by, controller_reference};
use super::pod_state::has_finished;
use super::rollout::{new_rs_replicas, old_rs_replicas, RsCounts};
use super::runner::Reconcile;
use super::template_hash::template_hash;
use super::writes::{patch_status, tolerate_races};

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const DEFAULT_HISTORY_LIMIT: i32 = 10;

pub(crate) struct DeploymentController {
    client: Client,
    cache: Cache,
}

/// One Deployment's ReplicaSets, the one matching its template apart.
struct Sets {
    new: Option<Arc<ReplicaSet>>,
    /// Oldest first.
    old: Vec<Arc<ReplicaSet>>,
}

impl DeploymentController {
    pub fn new(client: Client, cache: Cache) -> Arc<Self> {
        Arc::new(Self { client, cache })
    }
}

impl Reconcile for DeploymentController {
    async fn pass(&self) -> Result<(), WorkloadError> {
        let mut first_error = None;
        for deployment in self.cache.deployments.state() {
            if deployment.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if let Err(error) = self.reconcile(&deployment).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl DeploymentController {
    async fn reconcile(&self, deployment: &Deployment) -> Result<(), WorkloadError> {
        let incomplete = |what| WorkloadError::Incomplete {
            kind: "Deployment",
            name: deployment.name_any(),
            what,
        };
        let namespace = deployment
            .namespace()
            .ok_or_else(|| incomplete("no namespace"))?;
        let uid = deployment.uid().ok_or_else(|| incomplete("no uid"))?;
        let spec = &deployment.spec;
        let sets = self.sets(&namespace, &uid, &spec.template);
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
        let replicas = spec.replicas.unwrap_or(1);
        let (max_surge, max_unavailable) = limits(deployment, replicas)?;
        if !spec.paused.unwrap_or(false) {
            let recreate =
                spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
            if recreate {
                self.recreate(deployment, &api, &sets, replicas).await?;
            } else {
                self.roll(
                    deployment,
                    &api,
                    &sets,
                    replicas,
                    max_surge,
                    max_unavailable,
                )
                .await?;
            }
            self.prune(deployment, &api, &sets).await?;
        }
        self.write_status(deployment, &namespace, &sets, replicas, max_unavailable)
            .await
    }

    fn sets(&self, namespace: &str, uid: &str, template: &PodTemplateSpec) -> Sets {
        let mut owned: Vec<Arc<ReplicaSet>> = self
            .cache
            .replica_sets
            .state()
            .into_iter()
            .filter(|rs| rs.namespace().as_deref() == Some(namespace) && controlled_by(&**rs, uid))
            .collect();
        owned.sort_by_key(|rs| (revision(rs), rs.metadata.creation_timestamp.clone()));
        let position = owned.iter().position(|rs| {
            rs.spec
                .template
                .as_ref()
                .is_some_and(|t| without_hash(t) == *template)
        });
        let new = position.map(|i| owned.remove(i));
        Sets { new, old: owned }
    }

    async fn roll(
        &self,
        deployment: &Deployment,
        api: &Api<ReplicaSet>,
        sets: &Sets,
        replicas: i32,
        max_surge: i32,
        max_unavailable: i32,
    ) -> Result<(), WorkloadError> {
        let old: Vec<RsCounts> = sets.old.iter().map(|rs| counts(rs)).collect();
        let new = sets.new.as_deref().map_or(
            RsCounts {
                spec: 0,
                status: 0,
                available: 0,
            },
            counts,
        );
        let target = new_rs_replicas(replicas, max_surge, new, &old);
        let Some(new_rs) = &sets.new else {
            return self.create_new(deployment, api, sets, target).await;
        };
        self.sync_new(deployment, api, new_rs, sets).await?;
        if target != new.spec {
            self.scale(api, new_rs, target).await?;
            // As upstream: a pass that scaled up leaves the old sets for the next.
            if target > new.spec {
                return Ok(());
            }
        }
        let old_targets = old_rs_replicas(replicas, max_unavailable, new, &old);
        for (rs, target) in sets.old.iter().zip(old_targets) {
            self.scale(api, rs, target).await?;
        }
        Ok(())
    }

    /// All old Pods gone first (also terminating ones), then the new set.
    async fn recreate(
        &self,
        deployment: &Deployment,
        api: &Api<ReplicaSet>,
        sets: &Sets,
        replicas: i32,
    ) -> Result<(), WorkloadError> {
        for rs in &sets.old {
            self.scale(api, rs, 0).await?;
        }
        let old_uids: Vec<String> = sets.old.iter().filter_map(|rs| rs.uid()).collect();
        let old_pods_remain = self.cache.pods.state().iter().any(|pod: &Arc<Pod>| {
            !has_finished(pod) && old_uids.iter().any(|uid| controlled_by(&**pod, uid))
        });
        if old_pods_remain {
            return Ok(());
        }
        match &sets.new {
            None => self.create_new(deployment, api, sets, replicas).await,
            Some(rs) => {
                self.sync_new(deployment, api, rs, sets).await?;
                self.scale(api, rs, replicas).await
            }
        }
    }

    async fn create_new(
        &self,
        deployment: &Deployment,
        api: &Api<ReplicaSet>,
        sets: &Sets,
        replicas: i32,
    ) -> Result<(), WorkloadError> {
        let incomplete = |what| WorkloadError::Incomplete {
            kind: "Deployment",
            name: deployment.name_any(),
            what,
        };
        let spec = &deployment.spec;
        let owner = controller_reference(deployment).ok_or_else(|| incomplete("no uid"))?;
        let hash = template_hash(&spec.template);
        let mut template = spec.template.clone();
        let template_meta = template.metadata.get_or_insert_with(Default::default);
        let mut labels = template_meta.labels.clone().unwrap_or_default();
        labels.insert(HASH_LABEL.to_string(), hash.clone());
        template_meta.labels = Some(labels.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.to_string(), hash.clone());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", deployment.name_any())),
                namespace: deployment.namespace(),
                labels: Some(labels),
                annotations: Some([(REVISION.to_string(), next_revision(sets).to_string())].into()),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        // AlreadyExists: our own earlier create the cache does not show yet
        // (a true hash collision is not handled: upstream's collisionCount).
        let result = api.create(&PostParams::default(), &rs).await;
        tolerate_races(result, || format!("create replicaset {}", rs.name_any()))
    }

    /// The new set carries the newest revision (a rollback revives an old
    /// one) and the Deployment's minReadySeconds.
    async fn sync_new(
        &self,
        deployment: &Deployment,
        api: &Api<ReplicaSet>,
        rs: &ReplicaSet,
        sets: &Sets,
    ) -> Result<(), WorkloadError> {
        let newest = sets.old.iter().all(|old| revision(old) < revision(rs));
        let min_ready = deployment.spec.min_ready_seconds;
        let rs_min_ready = rs.spec.min_ready_seconds;
        if newest && rs_min_ready == min_ready {
            return Ok(());
        }
        let revision = if newest {
            revision(rs)
        } else {
            next_revision(sets)
        };
        let patch = json!({
            "metadata": {"annotations": {REVISION: revision.to_string()}},
            "spec": {"minReadySeconds": min_ready},
        });
        self.patch(api, rs, &patch).await
    }

    /// Sets `replicas` unless it already is.
    async fn scale(
        &self,
        api: &Api<ReplicaSet>,
        rs: &ReplicaSet,
        replicas: i32,
    ) -> Result<(), WorkloadError> {
        if rs.spec.replicas == Some(replicas) {
            return Ok(());
        }
        self.patch(api, rs, &json!({"spec": {"replicas": replicas}}))
            .await
    }

    async fn patch(
        &self,
        api: &Api<ReplicaSet>,
        rs: &ReplicaSet,
        patch: &serde_json::Value,
    ) -> Result<(), WorkloadError> {
        let name = rs.name_any();
        let result = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await;
        tolerate_races(result, || format!("update replicaset {name}"))
    }

    /// Deletes the oldest scaled-down sets beyond `revisionHistoryLimit`.
    async fn prune(
        &self,
        deployment: &Deployment,
        api: &Api<ReplicaSet>,
        sets: &Sets,
    ) -> Result<(), WorkloadError> {
        let limit = deployment
            .spec
            .revision_history_limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .max(0) as usize;
        let idle: Vec<&Arc<ReplicaSet>> = sets
            .old
            .iter()
            .filter(|rs| {
                let c = counts(rs);
                c.spec == 0 && c.status == 0
            })
            .collect();
        let excess = idle.len().saturating_sub(limit);
        for rs in idle.into_iter().take(excess) {
            let name = rs.name_any();
            let result = api.delete(&name, &DeleteParams::background()).await;
            tolerate_races(result, || format!("prune replicaset {name}"))?;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        deployment: &Deployment,
        namespace: &str,
        sets: &Sets,
        replicas: i32,
        max_unavailable: i32,
    ) -> Result<(), WorkloadError> {
        let all: Vec<&Arc<ReplicaSet>> = sets.old.iter().chain(&sets.new).collect();
        let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
        let status_of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
        let available = sum(&|rs| status_of(rs).available_replicas.unwrap_or(0));
        let updated = sets.new.as_ref().map_or(0, |rs| status_of(rs).replicas);
        let total = sum(&|rs| status_of(rs).replicas);
        let old_status = deployment.status.clone().unwrap_or_default();
        let is_available = available >= replicas - max_unavailable;
        let complete = updated == replicas && available == replicas && total == replicas;
        let conditions = vec![
            condition(
                &old_status,
                "Available",
                is_available,
                if is_available {
                    (
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                    )
                } else {
                    (
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                    )
                },
            ),
            condition(
                &old_status,
                "Progressing",
                true,
                if complete {
                    (
                        "NewReplicaSetAvailable",
                        "ReplicaSet has successfully progressed.",
                    )
                } else {
                    ("ReplicaSetUpdated", "ReplicaSet is progressing.")
                },
            ),
        ];
        let status = DeploymentStatus {
            observed_generation: deployment.metadata.generation,
            replicas: Some(total),
            updated_replicas: Some(updated),
            ready_replicas: Some(sum(&|rs| status_of(rs).ready_replicas.unwrap_or(0))),
            available_replicas: Some(available),
            unavailable_replicas: Some((replicas - available).max(0)),
            conditions: Some(conditions),
            collision_count: old_status.collision_count,
            terminating_replicas: None,
        };
        if deployment.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        patch_status(&api, &deployment.name_any(), &status).await
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down), both 25% by
/// default; both zero would never progress, so maxUnavailable is then 1.
/// Recreate has neither.
fn limits(deployment: &Deployment, replicas: i32) -> Result<(i32, i32), WorkloadError> {
    let strategy = deployment.spec.strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Ok((0, 0));
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".to_string());
    let surge = scaled(
        "maxSurge",
        rolling.and_then(|r| r.max_surge.as_ref()),
        &quarter,
        replicas,
        Round::Up,
    )?;
    let unavailable = scaled(
        "maxUnavailable",
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        &quarter,
        replicas,
        Round::Down,
    )?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn counts(rs: &ReplicaSet) -> RsCounts {
    let status = rs.status.as_ref();
    RsCounts {
        spec: rs.spec.replicas.unwrap_or(1),
        status: status.map_or(0, |s| s.replicas),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
    }
}

fn revision(rs: &ReplicaSet) -> u64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn next_revision(sets: &Sets) -> u64 {
    sets.old
        .iter()
        .chain(&sets.new)
        .map(|rs| revision(rs))
        .max()
        .unwrap_or(0)
        + 1
}

/// The template as the Deployment wrote it (without the hash label we add).
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    template
}

/// A condition, keeping its times when its status and reason stay.
fn condition(
    old: &DeploymentStatus,
    type_: &str,
    true_: bool,
    (reason, message): (&str, &str),
) -> DeploymentCondition {
    let status = if true_ { "True" } else { "False" };
    let previous = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_));
    let unchanged = previous
        .filter(|c| c.status.as_deref() == Some(status) && c.reason.as_deref() == Some(reason));
    let now = Some(Time(Timestamp::now()));
    DeploymentCondition {
        type_: Some(type_.to_string()),
        status: Some(status.to_string()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time: unchanged.map_or(now.clone(), |c| c.last_transition_time.clone()),
        last_update_time: unchanged.map_or(now, |c| c.last_update_time.clone()),
    }
}

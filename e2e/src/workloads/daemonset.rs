//! The DaemonSet controller: one Pod per eligible node (node selector,
//! required affinity, taints with the daemon tolerations), pinned to it;
//! Pods off eligible nodes removed; `RollingUpdate` replaces old Pods
//! `maxUnavailable` nodes at a time; status counts per node.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use super::cache::Cache;
use super::daemon_pod::{pinned_to, target_node, with_daemon_tolerations};
use super::error::WorkloadError;
use super::expectations::Expectations;
use super::int_or_percent::{scaled, Round};
use super::ownership::{controller_reference, pod_from_template};
use super::placement::node_fits;
use super::pod_state::{is_active, is_available, is_ready};
use super::runner::Reconcile;
use super::template_hash::template_hash;
use super::writes::{create_pod, delete_pod, patch_status};

const HASH_LABEL: &str = "controller-revision-hash";

pub(crate) struct DaemonSetController {
    client: Client,
    cache: Cache,
    expectations: Expectations,
}

/// One DaemonSet as the pass sees it.
struct Daemon<'a> {
    ds: &'a DaemonSet,
    uid: String,
    template: &'a PodTemplateSpec,
    hash: String,
    min_ready: i32,
    api: Api<Pod>,
}

impl DaemonSetController {
    pub fn new(client: Client, cache: Cache) -> Arc<Self> {
        Arc::new(Self {
            client,
            cache,
            expectations: Expectations::default(),
        })
    }
}

impl Reconcile for DaemonSetController {
    async fn pass(&self) -> Result<(), WorkloadError> {
        let mut nodes: Vec<Arc<Node>> = self.cache.nodes.state();
        nodes.sort_by_key(|n| n.name_any());
        let pods = self.cache.pods.state();
        let mut first_error = None;
        for ds in self.cache.daemon_sets.state() {
            if let Err(error) = self.reconcile(&ds, &nodes, &pods).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl DaemonSetController {
    async fn reconcile(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
    ) -> Result<(), WorkloadError> {
        let spec = &ds.spec;
        let (Some(uid), Some(namespace)) = (ds.uid(), ds.namespace()) else {
            return Ok(());
        };
        let Some(owned) = self.expectations.owned_pods(pods, &namespace, &uid) else {
            return Ok(());
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let daemon = Daemon {
            ds,
            template: &spec.template,
            hash: template_hash(&spec.template),
            min_ready: spec.min_ready_seconds.unwrap_or(0),
            api: Api::namespaced(self.client.clone(), &namespace),
            uid,
        };
        let eligibility_spec =
            with_daemon_tolerations(&spec.template.spec.clone().unwrap_or_default());
        let eligible: Vec<String> = nodes
            .iter()
            .filter(|n| node_fits(&eligibility_spec, n).is_ok())
            .map(|n| n.name_any())
            .collect();
        // Active Pods per node they run on (or are pinned to).
        let mut on_node: BTreeMap<&str, Vec<&Arc<Pod>>> = BTreeMap::new();
        for pod in owned.iter().filter(|p| is_active(p)) {
            if let Some(node) = target_node(pod) {
                on_node.entry(node).or_default().push(pod);
            }
        }
        self.place(&daemon, &eligible, &mut on_node).await?;
        if rolling(ds) {
            self.roll(&daemon, &eligible, &on_node).await?;
        }
        self.write_status(&daemon, &namespace, &eligible, &on_node)
            .await
    }

    /// A Pod on every eligible node (one: extras go), none elsewhere.
    async fn place(
        &self,
        daemon: &Daemon<'_>,
        eligible: &[String],
        on_node: &mut BTreeMap<&str, Vec<&Arc<Pod>>>,
    ) -> Result<(), WorkloadError> {
        for (node, pods) in on_node.iter_mut() {
            let keep = if eligible.iter().any(|e| e == node) {
                1
            } else {
                0
            };
            // Keep the updated Pod, then the oldest.
            pods.sort_by_key(|p| {
                (
                    !is_updated(p, &daemon.hash),
                    p.metadata.creation_timestamp.clone(),
                )
            });
            for pod in pods.iter().skip(keep) {
                delete_pod(&daemon.api, &self.expectations, &daemon.uid, pod).await?;
            }
            pods.truncate(keep);
        }
        let owner = controller_reference(daemon.ds).ok_or_else(|| WorkloadError::Incomplete {
            kind: "DaemonSet",
            name: daemon.ds.name_any(),
            what: "no uid",
        })?;
        let namespace = daemon.ds.namespace().unwrap_or_default();
        for node in eligible {
            if on_node.get(node.as_str()).is_some_and(|p| !p.is_empty()) {
                continue;
            }
            let mut template = daemon.template.clone();
            let spec = with_daemon_tolerations(&template.spec.clone().unwrap_or_default());
            template.spec = Some(pinned_to(&spec, node));
            let pod = pod_from_template(
                &template,
                owner.clone(),
                &namespace,
                &[(HASH_LABEL, daemon.hash.as_str())],
            );
            create_pod(&daemon.api, &self.expectations, &daemon.uid, &pod).await?;
        }
        Ok(())
    }

    /// Old Pods that are not available go at once; available ones only
    /// while fewer than maxUnavailable nodes lack an available Pod.
    async fn roll(
        &self,
        daemon: &Daemon<'_>,
        eligible: &[String],
        on_node: &BTreeMap<&str, Vec<&Arc<Pod>>>,
    ) -> Result<(), WorkloadError> {
        let now = Timestamp::now();
        let max_unavailable = max_unavailable(daemon.ds, eligible.len() as i32)?;
        let pod_on = |node: &str| on_node.get(node).and_then(|p| p.first()).copied();
        let mut unavailable = eligible
            .iter()
            .filter(|n| !pod_on(n).is_some_and(|p| is_available(p, daemon.min_ready, now)))
            .count() as i32;
        for node in eligible {
            let Some(pod) = pod_on(node).filter(|p| !is_updated(p, &daemon.hash)) else {
                continue;
            };
            if !is_available(pod, daemon.min_ready, now) {
                delete_pod(&daemon.api, &self.expectations, &daemon.uid, pod).await?;
            } else if unavailable < max_unavailable {
                delete_pod(&daemon.api, &self.expectations, &daemon.uid, pod).await?;
                unavailable += 1;
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        daemon: &Daemon<'_>,
        namespace: &str,
        eligible: &[String],
        on_node: &BTreeMap<&str, Vec<&Arc<Pod>>>,
    ) -> Result<(), WorkloadError> {
        let now = Timestamp::now();
        let pods_on_eligible: Vec<&Arc<Pod>> = eligible
            .iter()
            .filter_map(|n| on_node.get(n.as_str()).and_then(|p| p.first()).copied())
            .collect();
        let count =
            |f: &dyn Fn(&Pod) -> bool| pods_on_eligible.iter().filter(|p| f(p)).count() as i32;
        let desired = eligible.len() as i32;
        let available = count(&|p| is_available(p, daemon.min_ready, now));
        let misscheduled = on_node
            .iter()
            .filter(|(node, pods)| !pods.is_empty() && !eligible.iter().any(|e| e == *node))
            .count() as i32;
        let old = daemon.ds.status.clone().unwrap_or_default();
        let status = DaemonSetStatus {
            desired_number_scheduled: desired,
            current_number_scheduled: pods_on_eligible.len() as i32,
            number_misscheduled: misscheduled,
            number_ready: count(&is_ready),
            updated_number_scheduled: Some(count(&|p| is_updated(p, &daemon.hash))),
            number_available: Some(available),
            number_unavailable: Some(desired - available),
            observed_generation: daemon.ds.metadata.generation,
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
        };
        if daemon.ds.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), namespace);
        patch_status(&api, &daemon.ds.name_any(), &status).await
    }
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.labels().get(HASH_LABEL).map(String::as_str) == Some(hash)
}

/// `RollingUpdate` unless `OnDelete` (old Pods then wait for a deletion).
fn rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete")
}

/// maxUnavailable against the nodes to run on, rounded up as upstream for
/// DaemonSets, at least 1 (maxSurge is not supported).
fn max_unavailable(ds: &DaemonSet, desired: i32) -> Result<i32, WorkloadError> {
    let value = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    let n = scaled(
        "maxUnavailable",
        value,
        &IntOrString::Int(1),
        desired,
        Round::Up,
    )?;
    Ok(n.max(1))
}

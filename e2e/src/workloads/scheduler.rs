//! The scheduler: binds each Pod without `spec.nodeName` to a node that
//! fits it (see `placement`) and has its host ports free, the least loaded
//! first; a Pod no node fits gets `PodScheduled=False` (`Unschedulable`) and
//! a `FailedScheduling` Event.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::cache::Cache;
use super::error::{is_benign_race, WorkloadError};
use super::events;
use super::placement::{host_ports, node_fits, Misfit};
use super::pod_state::{has_finished, is_terminating, node_name};
use super::runner::Reconcile;
use super::writes::tolerate_races;

const NAME: &str = "default-scheduler";

pub(crate) struct Scheduler {
    client: Client,
    cache: Cache,
    /// Pods bound by us that the cache may not show bound yet (uid → node),
    /// counted as the scheduler's cache "assumes" them.
    assumed: Mutex<HashMap<String, String>>,
    /// The last Unschedulable message written per Pod uid.
    reported: Mutex<HashMap<String, String>>,
}

/// What is already on a node.
#[derive(Default)]
struct NodeUsage {
    pods: usize,
    ports: Vec<(String, i32)>,
}

impl Scheduler {
    pub fn new(client: Client, cache: Cache) -> Arc<Self> {
        Arc::new(Self {
            client,
            cache,
            assumed: Mutex::default(),
            reported: Mutex::default(),
        })
    }
}

impl Reconcile for Scheduler {
    async fn pass(&self) -> Result<(), WorkloadError> {
        let mut nodes: Vec<Arc<Node>> = self.cache.nodes.state();
        nodes.sort_by_key(|n| n.name_any());
        let pods = self.cache.pods.state();
        let mut usage = self.usage(&pods);
        let mut first_error = None;
        for pod in pods.iter().filter(|p| wants_scheduling(p)) {
            let result = self.schedule(pod, &nodes, &mut usage).await;
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Scheduler {
    /// Pods on each node: bound ones (also terminating: they hold their
    /// ports until gone) and the ones we bound that the cache lags on.
    fn usage(&self, pods: &[Arc<Pod>]) -> BTreeMap<String, NodeUsage> {
        let mut usage: BTreeMap<String, NodeUsage> = BTreeMap::new();
        let mut assumed = self.assumed.lock().unwrap_or_else(|p| p.into_inner());
        let by_uid: HashMap<String, &Arc<Pod>> =
            pods.iter().filter_map(|p| Some((p.uid()?, p))).collect();
        assumed.retain(|uid, _| by_uid.get(uid).is_some_and(|p| node_name(p).is_none()));
        for pod in pods.iter().filter(|p| !has_finished(p)) {
            let uid = pod.uid().unwrap_or_default();
            let Some(node) = node_name(pod).or(assumed.get(&uid).map(String::as_str)) else {
                continue;
            };
            let entry = usage.entry(node.to_string()).or_default();
            entry.pods += 1;
            if let Some(spec) = &pod.spec {
                entry.ports.extend(host_ports(spec));
            }
        }
        usage
    }

    async fn schedule(
        &self,
        pod: &Pod,
        nodes: &[Arc<Node>],
        usage: &mut BTreeMap<String, NodeUsage>,
    ) -> Result<(), WorkloadError> {
        let Some(spec) = &pod.spec else {
            return Ok(());
        };
        let wanted_ports = host_ports(spec);
        let mut misfits: BTreeMap<Misfit, usize> = BTreeMap::new();
        let mut best: Option<(usize, String)> = None;
        for node in nodes {
            let name = node.name_any();
            let used = usage.get(&name);
            let fit = node_fits(spec, node).and_then(|()| {
                let taken = used.is_some_and(|u| wanted_ports.iter().any(|p| u.ports.contains(p)));
                if taken {
                    Err(Misfit::HostPort)
                } else {
                    Ok(())
                }
            });
            match fit {
                Err(misfit) => *misfits.entry(misfit).or_default() += 1,
                Ok(()) => {
                    let load = used.map_or(0, |u| u.pods);
                    if best.as_ref().is_none_or(|(l, _)| load < *l) {
                        best = Some((load, name));
                    }
                }
            }
        }
        match best {
            Some((_, node)) => {
                self.bind(pod, &node).await?;
                let entry = usage.entry(node).or_default();
                entry.pods += 1;
                entry.ports.extend(wanted_ports);
                Ok(())
            }
            None => self.report_unschedulable(pod, nodes.len(), &misfits).await,
        }
    }

    /// Sets `spec.nodeName` with the Pod's resourceVersion as precondition,
    /// so a Pod someone else bound meanwhile is not rebound (the emulator
    /// has no `pods/binding`), then marks it `PodScheduled=True`.
    async fn bind(&self, pod: &Pod, node: &str) -> Result<(), WorkloadError> {
        let api = pods_api(&self.client, pod);
        let name = pod.name_any();
        let patch = json!({
            "metadata": {"resourceVersion": pod.resource_version()},
            "spec": {"nodeName": node},
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(error) if is_benign_race(&error) => return Ok(()),
            Err(error) => return Err(WorkloadError::api(format!("bind pod {name}"))(error)),
        }
        if let Some(uid) = pod.uid() {
            self.assumed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(uid, node.to_string());
        }
        self.write_scheduled(pod, "True", None, None).await
    }

    async fn report_unschedulable(
        &self,
        pod: &Pod,
        node_count: usize,
        misfits: &BTreeMap<Misfit, usize>,
    ) -> Result<(), WorkloadError> {
        let reasons: Vec<String> = misfits
            .iter()
            .map(|(misfit, count)| format!("{count} {}", misfit.describe()))
            .collect();
        let message = format!(
            "0/{node_count} nodes are available: {}.",
            if reasons.is_empty() {
                "no nodes registered".to_string()
            } else {
                reasons.join(", ")
            }
        );
        let uid = pod.uid().unwrap_or_default();
        let already = self
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .is_some_and(|m| *m == message);
        if already {
            return Ok(());
        }
        self.write_scheduled(pod, "False", Some("Unschedulable"), Some(&message))
            .await?;
        events::record(&self.client, pod, NAME, true, "FailedScheduling", &message).await?;
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, message);
        Ok(())
    }

    async fn write_scheduled(
        &self,
        pod: &Pod,
        status: &str,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> Result<(), WorkloadError> {
        let condition = json!({
            "type": "PodScheduled",
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        });
        let patch = json!({"status": {"conditions": [condition]}});
        let name = pod.name_any();
        let result = pods_api(&self.client, pod)
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await;
        tolerate_races(result, || format!("write PodScheduled of {name}"))
    }
}

/// Unbound, not being deleted, and for this scheduler.
fn wants_scheduling(pod: &Pod) -> bool {
    let for_us = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n == NAME);
    for_us && node_name(pod).is_none() && !is_terminating(pod) && !has_finished(pod)
}

fn pods_api(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        client.clone(),
        &pod.namespace().unwrap_or_else(|| "default".into()),
    )
}

//! The harness's workload controllers (scheduler, ReplicaSet, Deployment,
//! DaemonSet, EndpointSlice controllers, garbage collector) against the
//! in-process emulator, through the API only. No kubelet runs here: where a
//! test needs Pods to run, `TestKubelet` stands in for it, writing the
//! status a kubelet would (Running, Ready, a podIP) and finishing deletions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gatehouse_e2e::emulator::Emulator;
use gatehouse_e2e::workloads::{register_nodes, WorkloadControllers};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const NS: &str = "work";
const WAIT: Duration = Duration::from_secs(30);

/// An emulator with nodes, the controllers, and the test namespace. The
/// controllers stop (fields drop in order) before the emulator does.
struct Cluster {
    _controllers: WorkloadControllers,
    client: Client,
    _emulator: Emulator,
}

async fn cluster(nodes: &[&str]) -> Cluster {
    let emulator = Emulator::start("127.0.0.1:0").await.expect("emulator");
    let client = emulator.kube_client().expect("client");
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    register_nodes(&client, nodes).await.expect("nodes");
    let controllers = WorkloadControllers::start(client.clone());
    Cluster {
        _controllers: controllers,
        client,
        _emulator: emulator,
    }
}

impl Cluster {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create<K>(&self, object: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let object: K = serde_json::from_value(object).expect("a valid object");
        self.api::<K>()
            .create(&PostParams::default(), &object)
            .await
            .expect("create")
    }

    async fn list<K>(&self) -> Vec<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
    }

    async fn pods(&self) -> Vec<Pod> {
        self.list().await
    }

    async fn taint(&self, node: &str, key: &str, value: &str) {
        let patch =
            json!({"spec": {"taints": [{"key": key, "value": value, "effect": "NoSchedule"}]}});
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("taint");
    }

    async fn label(&self, node: &str, key: &str, value: &str) {
        let patch = json!({"metadata": {"labels": {key: value}}});
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("label");
    }
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes the status a kubelet writes for a running Pod (or one whose
/// readiness probe fails), through `pods/status`.
async fn set_pod_status(api: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let ready = if ready { "True" } else { "False" };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [
            {"type": "Ready", "status": ready, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
        ],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("write pod status");
}

/// The test's stand-in for the kubelet: every bound Pod becomes Running and
/// Ready with an address; a Pod being deleted is finished (grace 0).
struct TestKubelet(JoinHandle<()>);

impl TestKubelet {
    fn start(client: &Client) -> Self {
        let api: Api<Pod> = Api::namespaced(client.clone(), NS);
        let next_ip = Arc::new(AtomicU32::new(10));
        Self(tokio::spawn(async move {
            let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let (Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod))) = event else {
                    continue;
                };
                let name = pod.name_any();
                if pod.metadata.deletion_timestamp.is_some() {
                    let _ = api
                        .delete(&name, &DeleteParams::default().grace_period(0))
                        .await;
                    continue;
                }
                let bound = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some();
                let running = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_ref())
                    .is_some();
                if bound && !running {
                    let n = next_ip.fetch_add(1, Ordering::Relaxed);
                    let ip = format!("10.244.{}.{}", n / 250, n % 250);
                    set_pod_status(&api, &name, &ip, true).await;
                }
            }
        }))
    }
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every Pod as the watch shows it, kept up to date by a task, with a check
/// run after each change (all Pod events, not polling).
struct PodObserver {
    task: JoinHandle<()>,
    violations: Arc<Mutex<Vec<String>>>,
    most_active: Arc<Mutex<usize>>,
}

type Invariant = Box<dyn Fn(&BTreeMap<String, Pod>, Option<&Pod>) -> Option<String> + Send>;

impl PodObserver {
    /// `invariant` sees all Pods after each event, and the Pod just added.
    async fn start(client: &Client, invariant: Invariant) -> Self {
        let api: Api<Pod> = Api::namespaced(client.clone(), NS);
        let violations = Arc::new(Mutex::new(Vec::new()));
        let most_active = Arc::new(Mutex::new(0));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = {
            let violations = Arc::clone(&violations);
            let most_active = Arc::clone(&most_active);
            tokio::spawn(async move {
                let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
                let mut initial: BTreeMap<String, Pod> = BTreeMap::new();
                let mut ready_tx = Some(ready_tx);
                let mut events = watcher(api, watcher::Config::default()).boxed();
                while let Some(Ok(event)) = events.next().await {
                    let added = match event {
                        // A (re)listing: checked once complete.
                        Event::Init => continue,
                        Event::InitApply(pod) => {
                            initial.insert(pod.name_any(), pod);
                            continue;
                        }
                        Event::InitDone => {
                            pods = std::mem::take(&mut initial);
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                            None
                        }
                        Event::Apply(pod) => {
                            let name = pod.name_any();
                            let new = !pods.contains_key(&name);
                            pods.insert(name.clone(), pod);
                            new.then_some(name)
                        }
                        Event::Delete(pod) => {
                            pods.remove(&pod.name_any());
                            None
                        }
                    };
                    let active = pods.values().filter(|p| is_active(p)).count();
                    let mut most = most_active.lock().unwrap();
                    *most = (*most).max(active);
                    drop(most);
                    let added_pod = added.as_ref().and_then(|n| pods.get(n));
                    if let Some(violation) = invariant(&pods, added_pod) {
                        violations.lock().unwrap().push(violation);
                    }
                }
            })
        };
        ready_rx.await.expect("observer listed the pods");
        Self {
            task,
            violations,
            most_active,
        }
    }

    fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    fn most_active(&self) -> usize {
        *self.most_active.lock().unwrap()
    }
}

impl Drop for PodObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn hash_of(pod: &Pod) -> String {
    pod.labels()
        .get("pod-template-hash")
        .cloned()
        .unwrap_or_default()
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

fn controller_uid<K: ResourceExt>(object: &K) -> Option<String> {
    object
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

fn web_deployment(name: &str, replicas: i32, strategy: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "echo:1",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
            },
        },
    })
}

/// Changes the Deployment's template (a new image), i.e. a new revision.
async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("update the template");
}

/// Waits until the Deployment's status says its current template is fully
/// rolled out; returns the status.
async fn rolled_out(c: &Cluster, name: &str, replicas: i32) -> Deployment {
    let api = c.api::<Deployment>();
    eventually("the rollout to finish", || async {
        let d = api.get(name).await.ok()?;
        let s = d.status.as_ref()?;
        let done = s.observed_generation == d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && s.ready_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.unavailable_replicas == Some(0);
        done.then_some(d)
    })
    .await
}

/// The Deployment's ReplicaSets by name.
async fn replica_sets_of(c: &Cluster, deployment: &Deployment) -> BTreeMap<String, ReplicaSet> {
    let uid = deployment.uid().unwrap();
    c.api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| controller_uid(rs).as_deref() == Some(uid.as_str()))
        .map(|rs| (rs.name_any(), rs))
        .collect()
}

#[tokio::test]
async fn deployment_rolls_out_within_max_surge_and_max_unavailable() {
    let c = cluster(&["node-a", "node-b", "node-c"]).await;
    let _kubelet = TestKubelet::start(&c.client);
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    c.create::<Deployment>(web_deployment("web", 3, strategy))
        .await;

    let deployment = rolled_out(&c, "web", 3).await;
    let conditions = deployment
        .status
        .as_ref()
        .unwrap()
        .conditions
        .clone()
        .unwrap();
    let available = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(
        (available.status.as_deref(), available.reason.as_deref()),
        (Some("True"), Some("MinimumReplicasAvailable"))
    );
    let sets = replica_sets_of(&c, &deployment).await;
    assert_eq!(sets.len(), 1, "one ReplicaSet: {:?}", sets.keys());
    let (rs_name, rs) = sets.iter().next().unwrap();
    let hash = rs.labels().get("pod-template-hash").cloned().unwrap();
    assert_eq!(*rs_name, format!("web-{hash}"));
    let rs_status = rs.status.clone().unwrap();
    assert_eq!(
        (
            rs_status.replicas,
            rs_status.ready_replicas,
            rs_status.available_replicas
        ),
        (3, Some(3), Some(3))
    );
    assert_eq!(rs_status.observed_generation, rs.metadata.generation);
    let pods = c.pods().await;
    assert_eq!(pods.len(), 3);
    let mut nodes: Vec<String> = pods.iter().filter_map(node_of).collect();
    nodes.sort();
    // Least loaded first: one on each node.
    assert_eq!(nodes, ["node-a", "node-b", "node-c"]);
    for pod in &pods {
        assert_eq!(controller_uid(pod), rs.uid());
        assert_eq!(hash_of(pod), hash);
        assert!(pod.name_any().starts_with(&format!("{rs_name}-")));
    }

    // Roll out a new template; every Pod event is checked.
    let observer = PodObserver::start(
        &c.client,
        Box::new(|pods, _| {
            let active = pods.values().filter(|p| is_active(p)).count();
            let ready = pods
                .values()
                .filter(|p| is_active(p) && is_ready(p))
                .count();
            (active > 4 || ready < 3).then(|| format!("{active} pods, {ready} ready"))
        }),
    )
    .await;
    set_image(&c.api(), "web", "echo:2").await;
    let deployment = eventually("the new revision", || async {
        let d = rolled_out(&c, "web", 3).await;
        let sets = replica_sets_of(&c, &d).await;
        (sets.len() == 2).then_some(d)
    })
    .await;
    let sets = replica_sets_of(&c, &deployment).await;
    let old = &sets[rs_name];
    assert_eq!(old.spec.replicas, Some(0));
    let new_hash = sets
        .values()
        .find(|rs| rs.name_any() != *rs_name)
        .and_then(|rs| rs.labels().get("pod-template-hash").cloned())
        .unwrap();
    let pods = eventually("only new pods", || async {
        let pods = c.pods().await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    assert!(pods.iter().all(|p| hash_of(p) == new_hash), "{pods:?}");
    assert_eq!(observer.violations(), Vec::<String>::new());
    assert_eq!(observer.most_active(), 4, "the rollout surged by one Pod");

    // Scaling changes the new ReplicaSet only.
    c.api::<Deployment>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    rolled_out(&c, "web", 5).await;
    assert_eq!(c.pods().await.len(), 5);
}

#[tokio::test]
async fn recreate_deletes_old_pods_before_creating_and_history_is_pruned() {
    let c = cluster(&["node-a", "node-b"]).await;
    let _kubelet = TestKubelet::start(&c.client);
    let mut spec = web_deployment("app", 2, json!({"type": "Recreate"}));
    spec["spec"]["revisionHistoryLimit"] = json!(1);
    c.create::<Deployment>(spec).await;
    let first = rolled_out(&c, "app", 2).await;
    let first_hash = hash_of(&c.pods().await[0]);

    // A new Pod may only appear once no Pod of another revision is left.
    let observer = PodObserver::start(
        &c.client,
        Box::new(|pods, added| {
            let added = added?;
            let others: Vec<&String> = pods
                .iter()
                .filter(|(_, p)| hash_of(p) != hash_of(added))
                .map(|(n, _)| n)
                .collect();
            (!others.is_empty())
                .then(|| format!("{} created while {others:?} remain", added.name_any()))
        }),
    )
    .await;
    set_image(&c.api(), "app", "echo:2").await;
    eventually("revision 2", || async {
        rolled_out(&c, "app", 2).await;
        let pods = c.pods().await;
        (pods.len() == 2 && pods.iter().all(|p| hash_of(p) != first_hash)).then_some(())
    })
    .await;
    set_image(&c.api(), "app", "echo:3").await;
    let sets = eventually("revision 3, one old ReplicaSet kept", || async {
        let d = rolled_out(&c, "app", 2).await;
        let sets = replica_sets_of(&c, &d).await;
        let pods = c.pods().await;
        let third = pods.iter().all(|p| {
            sets.values().any(|rs| {
                rs.labels().get("pod-template-hash") == Some(&hash_of(p))
                    && rs
                        .annotations()
                        .get("deployment.kubernetes.io/revision")
                        .map(String::as_str)
                        == Some("3")
            })
        });
        (sets.len() == 2 && pods.len() == 2 && third).then_some(sets)
    })
    .await;
    assert!(
        !sets.keys().any(|n| *n == format!("app-{first_hash}")),
        "revision 1 pruned: {:?}",
        sets.keys()
    );
    assert_eq!(
        first.uid(),
        c.api::<Deployment>().get("app").await.unwrap().uid()
    );
    assert_eq!(observer.violations(), Vec::<String>::new());
}

fn daemon_set(name: &str, pod_spec: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    })
}

/// The nodes the DaemonSet's active Pods are bound to, sorted.
async fn daemon_nodes(c: &Cluster, app: &str) -> Vec<String> {
    let mut nodes: Vec<String> = c
        .pods()
        .await
        .iter()
        .filter(|p| is_active(p) && p.labels().get("app").map(String::as_str) == Some(app))
        .filter_map(node_of)
        .collect();
    nodes.sort();
    nodes
}

#[tokio::test]
async fn daemon_set_runs_one_pod_per_eligible_node() {
    let c = cluster(&["node-a", "node-b", "node-c"]).await;
    let _kubelet = TestKubelet::start(&c.client);
    c.taint("node-c", "dedicated", "lb").await;
    c.label("node-b", "role", "edge").await;
    let containers = json!([{"name": "speaker", "image": "speaker:1"}]);
    // As the chart's speaker: on the host network, so a replacement waits
    // for its predecessor's port on the node.
    let speaker = json!([{"name": "speaker", "image": "speaker:1",
        "ports": [{"name": "memberlist", "containerPort": 7946}]}]);
    c.create::<DaemonSet>(daemon_set(
        "speaker",
        json!({"containers": speaker, "hostNetwork": true}),
    ))
    .await;
    c.create::<DaemonSet>(daemon_set(
        "edge",
        json!({"containers": containers, "nodeSelector": {"role": "edge"}}),
    ))
    .await;

    let want = ["node-a", "node-b"];
    eventually("speaker on the untainted nodes", || async {
        (daemon_nodes(&c, "speaker").await == want).then_some(())
    })
    .await;
    eventually("edge on the labelled node", || async {
        (daemon_nodes(&c, "edge").await == ["node-b"]).then_some(())
    })
    .await;
    for pod in c.pods().await {
        // Pinned as upstream pins daemon Pods, and bound where pinned.
        let terms = pod
            .spec
            .as_ref()
            .unwrap()
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms
            .clone();
        let fields = terms[0].match_fields.clone().unwrap();
        assert_eq!(fields[0].key, "metadata.name");
        assert_eq!(fields[0].operator, "In");
        assert_eq!(fields[0].values, node_of(&pod).map(|n| vec![n]));
        let tolerations = pod.spec.as_ref().unwrap().tolerations.clone().unwrap();
        assert!(tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready")
                && t.effect.as_deref() == Some("NoExecute")));
        let host_network = pod.spec.as_ref().unwrap().host_network == Some(true);
        let network_unavailable = tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/network-unavailable"));
        assert_eq!(network_unavailable, host_network, "{}", pod.name_any());
        assert!(pod.labels().contains_key("controller-revision-hash"));
    }
    let api = c.api::<DaemonSet>();
    eventually("speaker status", || async {
        let ds = api.get("speaker").await.ok()?;
        let s = ds.status?;
        (s.desired_number_scheduled == 2
            && s.current_number_scheduled == 2
            && s.number_ready == 2
            && s.number_available == Some(2)
            && s.updated_number_scheduled == Some(2)
            && s.observed_generation == ds.metadata.generation)
            .then_some(())
    })
    .await;

    // A new node gets its daemon.
    register_nodes(&c.client, &["node-d"]).await.unwrap();
    eventually("speaker on the new node", || async {
        (daemon_nodes(&c, "speaker").await == ["node-a", "node-b", "node-d"]).then_some(())
    })
    .await;

    // A toleration in the template lets it onto the tainted node too.
    let observer = PodObserver::start(
        &c.client,
        Box::new(|pods, _| {
            let ready = pods
                .values()
                .filter(|p| {
                    is_active(p)
                        && is_ready(p)
                        && p.labels().get("app").map(String::as_str) == Some("speaker")
                })
                .count();
            // Three nodes ran it; at most one at a time may be without.
            (ready < 2).then(|| format!("{ready} speakers ready"))
        }),
    )
    .await;
    let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}});
    api.patch(
        "speaker",
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .unwrap();
    let all = ["node-a", "node-b", "node-c", "node-d"];
    eventually("updated speakers on every node", || async {
        let ds = api.get("speaker").await.ok()?;
        let s = ds.status?;
        let done = daemon_nodes(&c, "speaker").await == all
            && s.updated_number_scheduled == Some(4)
            && s.number_available == Some(4)
            && s.observed_generation == ds.metadata.generation;
        done.then_some(())
    })
    .await;
    assert_eq!(observer.violations(), Vec::<String>::new());
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "labels": {"app": "solo"}}, "spec": spec})
}

fn scheduled_condition(pod: &Pod) -> Option<(String, Option<String>, Option<String>)> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn scheduler_honours_selectors_taints_and_host_ports() {
    let c = cluster(&["node-a", "node-b"]).await;
    c.taint("node-b", "dedicated", "lb").await;
    let api = c.api::<Pod>();
    let container = json!([{"name": "c", "image": "i", "ports": [{"containerPort": 7946}]}]);

    c.create::<Pod>(pod(
        "nowhere",
        json!({"containers": container, "nodeSelector": {"disk": "ssd"}}),
    ))
    .await;
    let (status, reason, message) = eventually("Unschedulable", || async {
        scheduled_condition(&api.get("nowhere").await.ok()?).filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(reason.as_deref(), Some("Unschedulable"));
    assert_eq!(status, "False");
    let message = message.unwrap();
    assert!(message.starts_with("0/2 nodes are available:"), "{message}");
    assert!(
        message.contains("didn't match Pod's node affinity/selector"),
        "{message}"
    );
    let events = Api::<CoreEvent>::namespaced(c.client.clone(), NS);
    eventually("a FailedScheduling event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.involved_object.name.as_deref() == Some("nowhere")
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    assert_eq!(node_of(&api.get("nowhere").await.unwrap()), None);

    // Only the tainted node is allowed: without a toleration nothing fits...
    let on_b = json!({"kubernetes.io/hostname": "node-b"});
    c.create::<Pod>(pod(
        "untolerated",
        json!({"containers": container, "nodeSelector": on_b}),
    ))
    .await;
    // ... with one, it lands there.
    let tolerations =
        json!([{"key": "dedicated", "operator": "Equal", "value": "lb", "effect": "NoSchedule"}]);
    c.create::<Pod>(pod(
        "tolerated",
        json!({"containers": container, "nodeSelector": on_b, "tolerations": tolerations}),
    ))
    .await;
    eventually("tolerated bound to node-b", || async {
        (node_of(&api.get("tolerated").await.ok()?).as_deref() == Some("node-b")).then_some(())
    })
    .await;
    let tolerated = api.get("tolerated").await.unwrap();
    assert_eq!(
        scheduled_condition(&tolerated).map(|c| c.0).as_deref(),
        Some("True")
    );
    let (_, _, message) = eventually("untolerated Unschedulable", || async {
        scheduled_condition(&api.get("untolerated").await.ok()?).filter(|c| c.0 == "False")
    })
    .await;
    assert!(message.unwrap().contains("1 node(s) had untolerated taint"));

    // Two host-network Pods on one node cannot share a port.
    let on_a = json!({"kubernetes.io/hostname": "node-a"});
    for name in ["host-1", "host-2"] {
        c.create::<Pod>(pod(
            name,
            json!({"containers": container, "nodeSelector": on_a, "hostNetwork": true}),
        ))
        .await;
    }
    let (bound, blocked) = eventually("one host-network pod bound", || async {
        let one = api.get("host-1").await.ok()?;
        let two = api.get("host-2").await.ok()?;
        let (bound, blocked) = if node_of(&one).is_some() {
            (one, two)
        } else {
            (two, one)
        };
        let condition = scheduled_condition(&blocked).filter(|c| c.0 == "False")?;
        (node_of(&bound).is_some()).then_some((bound, condition))
    })
    .await;
    assert_eq!(node_of(&bound).as_deref(), Some("node-a"));
    assert!(blocked.2.unwrap().contains("free ports"));
}

fn endpoint_pod(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "echo",
            "ports": [{"name": "web", "containerPort": 8080}]}]},
    })
}

/// The one EndpointSlice the controller keeps for `web`.
async fn web_slice(c: &Cluster) -> Option<EndpointSlice> {
    let lp = ListParams::default().labels("kubernetes.io/service-name=web");
    let mut slices = c.api::<EndpointSlice>().list(&lp).await.ok()?.items;
    (slices.len() == 1).then(|| slices.remove(0))
}

/// address → (ready, serving, terminating, nodeName, targetRef name).
type Conditions = BTreeMap<String, (bool, bool, bool, Option<String>, Option<String>)>;

/// An endpoint expected on node-a: (address, (ready, serving, terminating, pod)).
type Expected<'a> = (&'a str, (bool, bool, bool, &'a str));

fn on_node_a(endpoints: &[Expected]) -> Conditions {
    let node = Some("node-a".to_string());
    endpoints
        .iter()
        .map(|(ip, (r, s, t, pod))| {
            (
                ip.to_string(),
                (*r, *s, *t, node.clone(), Some(pod.to_string())),
            )
        })
        .collect()
}

fn conditions(slice: &EndpointSlice) -> Conditions {
    slice
        .endpoints
        .iter()
        .flatten()
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                e.addresses[0].clone(),
                (
                    c.ready == Some(true),
                    c.serving == Some(true),
                    c.terminating == Some(true),
                    e.node_name.clone(),
                    e.target_ref.as_ref().and_then(|t| t.name.clone()),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn endpoint_slices_follow_pod_readiness_and_termination() {
    let c = cluster(&["node-a"]).await;
    let service = c
        .create::<Service>(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
        }))
        .await;
    let api = c.api::<Pod>();
    for name in ["ready", "unready", "leaving", "starting"] {
        c.create::<Pod>(endpoint_pod(name)).await;
    }
    eventually("pods bound", || async {
        let pods = c.pods().await;
        pods.iter().all(|p| node_of(p).is_some()).then_some(())
    })
    .await;
    set_pod_status(&api, "ready", "10.244.0.1", true).await;
    set_pod_status(&api, "unready", "10.244.0.2", false).await;
    set_pod_status(&api, "leaving", "10.244.0.3", true).await;
    // "starting" has no address yet: no endpoint.
    api.delete("leaving", &DeleteParams::default())
        .await
        .unwrap();

    let want = on_node_a(&[
        ("10.244.0.1", (true, true, false, "ready")),
        ("10.244.0.2", (false, false, false, "unready")),
        ("10.244.0.3", (false, true, true, "leaving")),
    ]);
    let slice = eventually("the slice", || async {
        web_slice(&c).await.filter(|s| conditions(s) == want)
    })
    .await;
    let labels = slice.labels();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(controller_uid(&slice), service.uid());
    assert_eq!(slice.address_type, "IPv4");
    let ports = slice.ports.clone().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("http"), Some(8080))
    );

    // The not-ready Pod goes; the terminating one finishes.
    api.delete("unready", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    api.delete("leaving", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    set_pod_status(&api, "starting", "10.244.0.4", true).await;
    let want = on_node_a(&[
        ("10.244.0.1", (true, true, false, "ready")),
        ("10.244.0.4", (true, true, false, "starting")),
    ]);
    eventually("endpoints removed and added", || async {
        web_slice(&c).await.filter(|s| conditions(s) == want)
    })
    .await;

    // publishNotReadyAddresses: a not-ready Pod is ready for the Service.
    set_pod_status(&api, "starting", "10.244.0.4", false).await;
    let patch = json!({"spec": {"publishNotReadyAddresses": true}});
    c.api::<Service>()
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("not-ready published", || async {
        let slice = web_slice(&c).await?;
        let starting = conditions(&slice).get("10.244.0.4").cloned()?;
        (starting.0 && !starting.1).then_some(())
    })
    .await;

    // The control plane's own slice for default/kubernetes is left alone.
    let defaults: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let kubernetes = defaults.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(kubernetes.len(), 1, "{kubernetes:?}");
    assert_ne!(
        kubernetes[0]
            .labels()
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
}

#[tokio::test]
async fn garbage_collector_removes_what_deleted_owners_controlled() {
    let c = cluster(&["node-a", "node-b"]).await;
    let _kubelet = TestKubelet::start(&c.client);
    c.create::<Deployment>(web_deployment("gone", 2, json!({"type": "RollingUpdate"})))
        .await;
    c.create::<DaemonSet>(daemon_set(
        "agent",
        json!({"containers": [{"name": "a", "image": "a"}]}),
    ))
    .await;
    c.create::<Service>(json!({
        "metadata": {"name": "gone"},
        "spec": {"selector": {"app": "gone"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }))
    .await;
    rolled_out(&c, "gone", 2).await;
    eventually("everything running", || async {
        let pods = c.pods().await;
        let slices = c.list::<EndpointSlice>().await;
        (pods.len() == 4
            && slices.len() == 1
            && slices[0].endpoints.as_ref().map(Vec::len) == Some(2))
        .then_some(())
    })
    .await;

    c.api::<Deployment>()
        .delete("gone", &DeleteParams::background())
        .await
        .unwrap();
    c.api::<DaemonSet>()
        .delete("agent", &DeleteParams::background())
        .await
        .unwrap();
    c.api::<Service>()
        .delete("gone", &DeleteParams::background())
        .await
        .unwrap();
    eventually("dependents collected", || async {
        let pods = c.pods().await;
        let sets = c.list::<ReplicaSet>().await;
        let slices = c.list::<EndpointSlice>().await;
        (pods.is_empty() && sets.is_empty() && slices.is_empty()).then_some(())
    })
    .await;
}

//! The process kubelet and the kube-proxy follower on the simulated
//! cluster, driven through the API emulator: Pods bound to a node run as
//! processes in their own namespaces, with env, volumes, probes, status and
//! graceful termination as Kubernetes defines them; Services and
//! EndpointSlices become the nodes' DNAT rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::{echo_get, Cluster, ClusterConfig};
use gatehouse_e2e::emulator::TestApi;
use gatehouse_e2e::kube_mode::wait_for;
use gatehouse_e2e::kubelet::{ImageMap, Kubelet, ProxyFollower};
use gatehouse_e2e::local::binary;
use gatehouse_e2e::system::ClusterDns;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

const NAMESPACE: &str = "default";
const WAIT: Duration = Duration::from_secs(20);

struct Rig {
    // Kubelets first: their pods go before the cluster.
    kubelets: Vec<Kubelet>,
    _proxy: ProxyFollower,
    _dns: ClusterDns,
    _dns_dir: tempfile::TempDir,
    cluster: Arc<Cluster>,
    api: TestApi,
}

impl Rig {
    /// Two nodes, a kubelet on each and the proxy follower; `None` against
    /// a real cluster (the simulated nodes are the emulator's only).
    async fn start() -> Option<Rig> {
        let api = TestApi::start().await.unwrap();
        api.emulator()?;
        let cluster = Arc::new(
            Cluster::new(ClusterConfig {
                nodes: 2,
                echo_binary: binary("gatehouse-echo").unwrap(),
            })
            .unwrap(),
        );
        let dns_dir = tempfile::tempdir().unwrap();
        let dns = ClusterDns::start(api.client(), dns_dir.path()).unwrap();
        // Pods start once the control plane's own Service has its names.
        wait_for(
            "cluster DNS to list the kubernetes Service",
            WAIT,
            || async {
                std::fs::read_to_string(dns.hosts_file())
                    .ok()
                    .filter(|t| t.contains("kubernetes.default.svc"))
            },
        )
        .await
        .unwrap();
        let kubelets = cluster
            .nodes()
            .iter()
            .map(|node| {
                Kubelet::start(
                    api.client(),
                    cluster.clone(),
                    &node.name,
                    ImageMap::workspace().unwrap(),
                    binary("pod-sandbox").unwrap(),
                    Some(dns.hosts_file().to_owned()),
                )
                .unwrap()
            })
            .collect();
        let proxy = ProxyFollower::start(api.client(), cluster.clone());
        Some(Rig {
            kubelets,
            _proxy: proxy,
            _dns: dns,
            _dns_dir: dns_dir,
            cluster,
            api,
        })
    }

    /// A Service `name` at `cluster_ip`:80 → 8080 and its EndpointSlice
    /// listing `endpoint` on `node`.
    async fn expose(
        &self,
        name: &str,
        cluster_ip: Ipv4Addr,
        target: u16,
        endpoint: &str,
        node: &str,
    ) {
        let services: Api<Service> = Api::namespaced(self.api.client(), NAMESPACE);
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": cluster_ip.to_string(),
                     "ports": [{"port": 80, "targetPort": target}]},
        });
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(service).unwrap(),
            )
            .await
            .unwrap();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"port": target, "protocol": "TCP"}],
            "endpoints": [{"addresses": [endpoint], "nodeName": node,
                           "conditions": {"ready": true}}],
        });
        self.slices()
            .create(
                &PostParams::default(),
                &serde_json::from_value(slice).unwrap(),
            )
            .await
            .unwrap();
    }

    fn slices(&self) -> Api<EndpointSlice> {
        Api::namespaced(self.api.client(), NAMESPACE)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.api.client(), NAMESPACE)
    }

    async fn create(&self, pod: serde_json::Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// Waits until `check` holds for the pod's latest version.
    async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        let pods = self.pods();
        wait_for(what, WAIT, || async {
            pods.get_opt(name).await.ok().flatten().filter(|p| check(p))
        })
        .await
        .unwrap()
    }

    /// Waits for a container's output to contain every one of `lines`.
    async fn wait_logs(&self, node: usize, pod: &str, container: &str, lines: &[&str]) -> String {
        let kubelet = &self.kubelets[node];
        wait_for(
            &format!("{pod}/{container} to print {lines:?}"),
            WAIT,
            || async {
                kubelet
                    .logs(NAMESPACE, pod, container)
                    .filter(|out| lines.iter().all(|l| out.lines().any(|o| o == *l)))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}; output: {:?}", kubelet.logs(NAMESPACE, pod, container)))
    }
}

fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn first_container(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn field_env(name: &str, path: &str) -> serde_json::Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_echo_pod_runs_ready_and_serves_through_its_cluster_ip() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    rig.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {
            "nodeName": "node-1",
            "containers": [{
                "name": "echo", "image": "gatehouse/echo:dev",
                "args": ["--listen", "$(POD_IP):8080", "--service", "web",
                         "--pod", "$(POD_NAME)", "--node", "$(NODE_NAME)"],
                "env": [field_env("POD_IP", "status.podIP"),
                        field_env("POD_NAME", "metadata.name"),
                        field_env("NODE_NAME", "spec.nodeName")],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            }],
        },
    }))
    .await;
    let pod = rig
        .wait_pod("web-0", "web-0 Ready", |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    assert_eq!(phase(&pod), Some("Running"));
    let status = pod.status.clone().unwrap();
    let pod_ip: Ipv4Addr = status.pod_ip.clone().unwrap().parse().unwrap();
    assert!(rig.cluster.node(1).pod_cidr.contains(pod_ip), "{pod_ip}");
    assert_eq!(
        status.host_ip.as_deref(),
        Some(rig.cluster.node(1).lan_ipv4.to_string().as_str())
    );
    assert!(status.start_time.is_some());
    let container = first_container(&pod).unwrap();
    assert!(container.ready && container.started == Some(true));
    assert!(container.state.as_ref().unwrap().running.is_some());

    let cluster_ip = rig.cluster.addresses().cluster_ip(10).unwrap();
    rig.expose("web", cluster_ip, 8080, &pod_ip.to_string(), "node-1")
        .await;
    // The client reaches the ClusterIP through node 0, whose rules send it
    // on to the pod on node 1.
    rig.cluster.route_from_client(cluster_ip, 0).unwrap();
    let reply = wait_for("the ClusterIP to answer", WAIT, || async {
        echo_get(rig.cluster.client(), (cluster_ip, 80).into())
            .await
            .ok()
    })
    .await
    .unwrap();
    assert_eq!(
        (reply.pod.as_str(), reply.node.as_str()),
        ("web-0", "node-1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn env_volumes_and_the_service_account_reach_the_process_as_its_user() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let client = rig.api.client();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                        "stringData": {"password": "hunter2"}});
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                        "data": {"color": "blue", "greeting": "hello"}});
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(
            &PostParams::default(),
            &serde_json::from_value(secret).unwrap(),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client, NAMESPACE)
        .create(
            &PostParams::default(),
            &serde_json::from_value(config).unwrap(),
        )
        .await
        .unwrap();
    let script = "cat /etc/demo/secret/pass; echo; cat /etc/demo/config/color; echo; \
                  echo \"$MSG\"; echo \"uid=$(id -u)\"; \
                  echo \"ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)\"; \
                  test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token-present; \
                  test -s /var/run/secrets/kubernetes.io/serviceaccount/ca.crt && echo ca-present; \
                  touch /etc/demo/secret/x 2>/dev/null || echo read-only; \
                  echo \"file=$(cat /etc/demo-color)\"; echo \"hostname=$(cat /etc/hostname)\"; \
                  echo \"api=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT host=$HOSTNAME\"; \
                  getent hosts kubernetes.default.svc | sed 's/ .*//; s/^/dns=/'; \
                  exec sleep 600";
    rig.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "shell"},
        "spec": {
            "nodeName": "node-0",
            "securityContext": {"runAsUser": 65532},
            "containers": [{
                "name": "sh", "image": "busybox:1.36",
                "command": ["/bin/sh", "-c", script],
                "env": [
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                    field_env("POD_NS", "metadata.namespace"),
                    {"name": "MSG", "value": "$(GREETING), $(POD_NS)! $$(GREETING)"},
                    {"name": "ABSENT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                ],
                "volumeMounts": [
                    {"name": "secret", "mountPath": "/etc/demo/secret", "readOnly": true},
                    {"name": "config", "mountPath": "/etc/demo/config"},
                    // Single files: a new one, and one over a file the host has.
                    {"name": "config", "mountPath": "/etc/demo-color", "subPath": "color"},
                    {"name": "config", "mountPath": "/etc/hostname", "subPath": "greeting"},
                ],
            }],
            "volumes": [
                {"name": "secret", "secret": {"secretName": "creds",
                                              "items": [{"key": "password", "path": "pass"}]}},
                {"name": "config", "configMap": {"name": "settings"}},
            ],
        },
    }))
    .await;
    rig.wait_logs(
        0,
        "shell",
        "sh",
        &[
            "hunter2",
            "blue",
            "hello, default! $(GREETING)",
            "uid=65532",
            "ns=default",
            "token-present",
            "ca-present",
            "read-only",
            "file=blue",
            "hostname=hello",
            "api=10.96.0.1:443 host=shell",
            "dns=10.96.0.1",
        ],
    )
    .await;
    // The mounts lived in the container's own mount namespace only.
    assert!(!std::path::Path::new("/etc/demo").exists());
    assert!(!std::path::Path::new("/etc/demo-color").exists());
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_ne!(hostname.trim(), "hello");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_readiness_probe_keeps_the_pod_unready_and_liveness_restarts() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let sleeper = |name: &str, probe: (&str, serde_json::Value)| {
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "node-0", "containers": [{
                "name": "main", "image": "busybox", "command": ["sleep", "600"],
                probe.0: probe.1,
            }]},
        })
    };
    rig.create(sleeper(
        "unready",
        (
            "readinessProbe",
            json!({
                "exec": {"command": ["/bin/false"]}, "periodSeconds": 1, "failureThreshold": 1,
            }),
        ),
    ))
    .await;
    rig.create(sleeper(
        "dead",
        (
            "livenessProbe",
            json!({
                "tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2,
            }),
        ),
    ))
    .await;
    let restarted = rig
        .wait_pod("dead", "dead to be restarted", |p| {
            first_container(p).is_some_and(|c| c.restart_count >= 1)
        })
        .await;
    let last = first_container(&restarted)
        .unwrap()
        .last_state
        .clone()
        .unwrap();
    assert!(last.terminated.is_some(), "{last:?}");
    let unready = rig
        .wait_pod("unready", "unready Running", |p| {
            phase(p) == Some("Running")
        })
        .await;
    assert_eq!(condition(&unready, "Ready").as_deref(), Some("False"));
    let container = first_container(&unready).unwrap();
    assert!(!container.ready && container.restart_count == 0);
    assert!(container.state.as_ref().unwrap().running.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_pod_runs_pre_stop_then_sigterm_and_removes_it() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let script = "trap 'echo \"term after $(cat /run/shared/hook)\"; exit 0' TERM; \
                  echo started; while true; do sleep 0.1; done";
    rig.create(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graceful"},
        "spec": {
            "nodeName": "node-1",
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "main", "image": "busybox", "command": ["/bin/sh", "-c", script],
                "volumeMounts": [{"name": "shared", "mountPath": "/run/shared"}],
                "lifecycle": {"preStop": {"exec": {"command": [
                    "/bin/sh", "-c", "echo pre-stop > /run/shared/hook"]}}},
            }],
            "volumes": [{"name": "shared", "emptyDir": {}}],
        },
    }))
    .await;
    rig.wait_pod("graceful", "graceful Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    rig.wait_logs(1, "graceful", "main", &["started"]).await;
    assert!(rig
        .cluster
        .netns_names()
        .iter()
        .any(|n| n.ends_with("pod-default-graceful")));
    rig.pods()
        .delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    let pods = rig.pods();
    wait_for("graceful to be gone", WAIT, || async {
        matches!(pods.get_opt("graceful").await, Ok(None)).then_some(())
    })
    .await
    .unwrap();
    rig.wait_logs(1, "graceful", "main", &["term after pre-stop"])
        .await;
    assert!(!rig.cluster.netns_names().iter().any(|n| n.contains("pod-")));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_image_waits_with_err_image_pull() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    rig.create(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
        "spec": {"nodeName": "node-0",
                 "containers": [{"name": "main", "image": "example.com/not-here:1"}]},
    }))
    .await;
    let pod = rig
        .wait_pod("nowhere", "an ErrImagePull status", |p| {
            first_container(p)
                .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                .as_deref()
                == Some("ErrImagePull")
        })
        .await;
    assert_eq!(phase(&pod), Some("Pending"));
    assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_network_pod_uses_its_node_and_an_unready_endpoint_leaves_the_rules() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    rig.create(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "host-echo"},
        "spec": {
            "nodeName": "node-0", "hostNetwork": true,
            "containers": [{
                "name": "echo", "image": "docker.io/gatehouse/echo",
                "args": ["--listen", "$(HOST_IP):8081", "--pod", "$(POD_NAME)", "--node", "$(NODE)"],
                "env": [field_env("HOST_IP", "status.hostIP"),
                        field_env("POD_NAME", "metadata.name"),
                        field_env("NODE", "spec.nodeName")],
                "readinessProbe": {"tcpSocket": {"port": 8081}, "periodSeconds": 1},
            }],
        },
    }))
    .await;
    let pod = rig
        .wait_pod("host-echo", "host-echo Ready", |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    let node_ip = rig.cluster.node(0).lan_ipv4;
    assert_eq!(pod.status.unwrap().pod_ip, Some(node_ip.to_string()));
    assert!(!rig.cluster.netns_names().iter().any(|n| n.contains("pod-")));
    let direct = echo_get(rig.cluster.client(), (node_ip, 8081).into())
        .await
        .unwrap();
    assert_eq!(
        (direct.pod.as_str(), direct.node.as_str()),
        ("host-echo", "node-0")
    );

    // Through node 1's rules to node 0; then the endpoint turns unready.
    let cluster_ip = rig.cluster.addresses().cluster_ip(11).unwrap();
    rig.expose("host", cluster_ip, 8081, &node_ip.to_string(), "node-0")
        .await;
    rig.cluster.route_from_client(cluster_ip, 1).unwrap();
    wait_for("the ClusterIP to answer", WAIT, || async {
        echo_get(rig.cluster.client(), (cluster_ip, 80).into())
            .await
            .ok()
    })
    .await
    .unwrap();
    let unready = json!({"endpoints": [{"addresses": [node_ip.to_string()], "nodeName": "node-0",
                                        "conditions": {"ready": false}}]});
    rig.slices()
        .patch("host-1", &PatchParams::default(), &Patch::Merge(&unready))
        .await
        .unwrap();
    wait_for("the ClusterIP to refuse", WAIT, || async {
        echo_get(rig.cluster.client(), (cluster_ip, 80).into())
            .await
            .err()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_containers_end_the_pod_succeeded_or_failed_under_restart_policy_never() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let once = |name: &str, image: &str, command: serde_json::Value| {
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "node-1", "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": image, "command": command}]},
        })
    };
    rig.create(once(
        "help",
        "gatehouse/gatehouse:0.1.0",
        json!(["/usr/local/bin/gatehouse-gateway", "--help"]),
    ))
    .await;
    rig.create(once("fails", "busybox", json!(["/bin/sh", "-c", "exit 3"])))
        .await;
    let help = rig
        .wait_pod("help", "help Succeeded", |p| phase(p) == Some("Succeeded"))
        .await;
    let done = first_container(&help).unwrap().state.clone().unwrap();
    let done = done.terminated.unwrap();
    assert_eq!(
        (done.exit_code, done.reason.as_deref()),
        (0, Some("Completed"))
    );
    let output = rig.kubelets[1].logs(NAMESPACE, "help", "main").unwrap();
    assert!(output.contains("Usage"), "{output}");
    let fails = rig
        .wait_pod("fails", "fails Failed", |p| phase(p) == Some("Failed"))
        .await;
    let container = first_container(&fails).unwrap();
    let ended = container.state.clone().unwrap().terminated.unwrap();
    assert_eq!((ended.exit_code, container.restart_count), (3, 0));
    assert_eq!(condition(&fails, "Ready").as_deref(), Some("False"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_kubelets_stops_their_processes_and_removes_pod_namespaces() {
    let Some(mut rig) = Rig::start().await else {
        return;
    };
    rig.create(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lingers"},
        "spec": {"nodeName": "node-0", "containers": [{
            "name": "main", "image": "busybox", "command": ["sleep", "600"],
        }]},
    }))
    .await;
    let pod = rig
        .wait_pod("lingers", "lingers Running", |p| {
            first_container(p).is_some_and(|c| c.container_id.is_some())
        })
        .await;
    let id = first_container(&pod).unwrap().container_id.clone().unwrap();
    let pid: u32 = id.strip_prefix("process://").unwrap().parse().unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    assert!(rig.cluster.netns_names().iter().any(|n| n.contains("pod-")));

    rig.kubelets.clear();
    let cluster = rig.cluster.clone();
    wait_for("the pod's process and namespace to go", WAIT, || async {
        let gone = !proc_dir.exists() && !cluster.netns_names().iter().any(|n| n.contains("pod-"));
        gone.then_some(())
    })
    .await
    .unwrap();
}

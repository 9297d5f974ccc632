//! The whole system as a user installs it: `helm install` of the chart on a
//! three-node simulated cluster (the emulator answering the API, a process
//! kubelet on every node running what the chart creates, real packets
//! between the namespaces), an app applied with `kubectl`, and a client on
//! the LAN that reaches it through the address the chart's load balancer
//! gives the gateway Service. Then an upgrade, a rollout of the app under
//! load, a node cut off, and an uninstall. See e2e/README.md, "Whole system".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::{Cluster, Prober};
use gatehouse_e2e::echo::EchoReply;
use gatehouse_e2e::kube_mode::wait_for;
use gatehouse_e2e::system::Simulated;
use gatehouse_e2e::tls::{tls_secret, TestCa};
use gatehouse_e2e::tools::{kubectl_binary, run_helm};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RELEASE: &str = "gatehouse";
const NAMESPACE: &str = "gatehouse-system";
const APP_NAMESPACE: &str = "shop";
/// The app's host: TLS, so plain HTTP is redirected.
const HOST: &str = "web.example.test";
/// The same app without TLS, for the plain-HTTP probes.
const PLAIN_HOST: &str = "plain.example.test";
/// The label that makes a node an edge node: the gateways run there.
const EDGE_LABEL: &str = "gatehouse-e2e/edge";
/// How long the chart's components may take to come up on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(60);
/// The failover bound the speaker tests assert (whatever the machine's
/// load; the sub-second figure is measured in the benchmark suite).
const FAILOVER_BOUND: Duration = Duration::from_secs(5);
/// How long an ARP probe collects replies.
const ARP_WAIT: Duration = Duration::from_millis(300);

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/gatehouse")
}

/// Bare-metal values: an IPPool over the LAN's load-balancer range, the
/// gateways as a DaemonSet on the edge nodes, readable logs.
fn values(cluster: &Cluster) -> String {
    let (first, last) = cluster.addresses().load_balancer_range();
    format!(
        "loadBalancer:
  pools:
    - name: lan
      addresses: [\"{first}-{last}\"]
controller:
  logFormat: text
gateway:
  kind: DaemonSet
  logFormat: text
  nodeSelector:
    {EDGE_LABEL}: \"true\"
speaker:
  logFormat: text
"
    )
}

/// The app: two echo pods on the app node, a Service, a TLS Secret and an
/// Ingress of the chart's class. The pods sleep in preStop so that their
/// endpoints are withdrawn before they stop, as operators write them.
fn app(app_node: &str, ca: &TestCa) -> String {
    let issued = ca.issue(&[HOST]).unwrap();
    let secret = tls_secret("web-tls", &issued).replace(
        "metadata: {name: web-tls}",
        &format!("metadata: {{name: web-tls, namespace: {APP_NAMESPACE}}}"),
    );
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: {APP_NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {APP_NAMESPACE}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {app_node}}}
      terminationGracePeriodSeconds: 10
      containers:
        - name: echo
          image: gatehouse/echo:1.0
          args: [--listen, 0.0.0.0:8080, --service, web, --pod, $(POD_NAME), --node, $(NODE_NAME)]
          env:
            - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
            - {{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 1}}
          lifecycle: {{preStop: {{sleep: {{seconds: 2}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {APP_NAMESPACE}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
{secret}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: {APP_NAMESPACE}}}
spec:
  ingressClassName: gatehouse
  tls: [{{hosts: [{HOST}], secretName: web-tls}}]
  rules:
    - host: {HOST}
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web-plain, namespace: {APP_NAMESPACE}}}
spec:
  ingressClassName: gatehouse
  rules:
    - host: {PLAIN_HOST}
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"
    )
}

struct Rig {
    system: Simulated,
    helm_home: tempfile::TempDir,
    values: PathBuf,
    ca: TestCa,
    ca_file: PathBuf,
}

impl Rig {
    fn client(&self) -> kube::Client {
        self.system.client().unwrap()
    }

    fn cluster(&self) -> &Cluster {
        self.system.cluster()
    }

    async fn helm(&self, args: &[&str]) -> String {
        run_helm(
            self.system.kubeconfig(),
            NAMESPACE,
            self.helm_home.path(),
            args,
        )
        .await
    }

    /// `kubectl` with the admin kubeconfig; its stdout. `stdin` is fed to it.
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(kubectl_binary())
            .args(args)
            .env("KUBECONFIG", self.system.kubeconfig())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .await
            .unwrap();
        drop(input);
        let output = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `curl` from the client on the LAN, with `host` resolved to `ip`;
    /// the response headers (lowercased) and body, or curl's error.
    async fn curl(
        &self,
        ip: Ipv4Addr,
        scheme: &str,
        host: &str,
    ) -> Result<(String, String), String> {
        let port = if scheme == "https" { 443 } else { 80 };
        let mut command = tokio::process::Command::from(self.cluster().client().command("curl"));
        command
            .args(["-sS", "--max-time", "3", "-D", "-"])
            .args(["--resolve", &format!("{host}:{port}:{ip}")])
            .arg("--cacert")
            .arg(&self.ca_file)
            .arg(format!("{scheme}://{host}/"))
            .kill_on_drop(true);
        let output = command.output().await.map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no header end in {text:?}"))?;
        Ok((head.to_ascii_lowercase(), body.to_owned()))
    }

    /// The echo reply the client gets over `scheme`, once it gets one.
    async fn wait_echo(&self, ip: Ipv4Addr, scheme: &str, host: &str) -> (String, EchoReply) {
        let last = std::sync::Mutex::new(String::new());
        let reply = wait_for(
            &format!("the client to reach {host} at {ip} over {scheme}"),
            WAIT,
            || async {
                match self.curl(ip, scheme, host).await {
                    Ok((head, body)) => match serde_json::from_str::<EchoReply>(&body) {
                        Ok(reply) => Some((head, reply)),
                        Err(_) => {
                            *last.lock().unwrap() = format!("{head}\n{body}");
                            None
                        }
                    },
                    Err(e) => {
                        *last.lock().unwrap() = e;
                        None
                    }
                }
            },
        )
        .await;
        reply.unwrap_or_else(|e| {
            let last = last.lock().unwrap();
            panic!("{e}; last: {last}\n{}", self.system.all_logs())
        })
    }

    /// Waits until every pod matching `selector` in `namespace` is Ready and
    /// there are `count` of them, none terminating; returns their names.
    async fn wait_ready_pods(&self, namespace: &str, selector: &str, count: usize) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client(), namespace);
        let list = ListParams::default().labels(selector);
        let found = wait_for(
            &format!("{count} ready pods {selector} in {namespace}"),
            START_TIMEOUT,
            || async {
                let all = pods.list(&list).await.ok()?.items;
                (all.len() == count && all.iter().all(is_ready)).then_some(all)
            },
        )
        .await;
        found.unwrap_or_else(|e| panic!("{e}\n{}", self.system.all_logs()))
    }

    /// The nodes whose MAC answers ARP for `ip`, as the client sees it.
    async fn answering_nodes(&self, ip: Ipv4Addr) -> BTreeSet<usize> {
        let cluster = self.cluster();
        let macs = tokio::task::block_in_place(|| cluster.arping(ip, ARP_WAIT)).unwrap();
        macs.iter()
            .map(|mac| {
                (0..cluster.nodes().len())
                    .find(|i| cluster.node_mac(*i).unwrap() == *mac)
                    .unwrap_or_else(|| panic!("{mac} answered for {ip}, and it is no node's"))
            })
            .collect()
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn load_balancer_ip(service: &Service) -> Option<Ipv4Addr> {
    service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.ip.as_deref()?.parse().ok())
}

fn ingress_ip(ingress: &Ingress) -> Option<Ipv4Addr> {
    ingress
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.ip.as_deref()?.parse().ok())
}

fn in_range(ip: Ipv4Addr, (first, last): (Ipv4Addr, Ipv4Addr)) -> bool {
    (u32::from(first)..=u32::from(last)).contains(&u32::from(ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_install_gives_an_external_address_that_routes_and_survives_rollouts_and_node_loss() {
    let system = Simulated::start(3).await.unwrap();
    let helm_home = tempfile::tempdir().unwrap();
    let values_file = helm_home.path().join("values.yaml");
    std::fs::write(&values_file, values(system.cluster())).unwrap();
    let ca = TestCa::new().unwrap();
    let ca_file = helm_home.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let rig = Rig {
        system,
        helm_home,
        values: values_file,
        ca,
        ca_file,
    };
    let nodes: Vec<String> = rig
        .cluster()
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let edge = [0usize, 1];
    for index in edge {
        rig.kubectl(
            &[
                "label",
                "node",
                &nodes[index],
                &format!("{EDGE_LABEL}=true"),
            ],
            None,
        )
        .await;
    }

    // Install: the controller, a gateway on each edge node and a speaker on
    // every node come up from the chart's own manifests.
    let chart = chart_dir();
    let values = rig.values.to_str().unwrap().to_owned();
    rig.helm(&[
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--create-namespace",
        "-f",
        &values,
    ])
    .await;
    let component =
        |c: &str| format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={c}");
    rig.wait_ready_pods(NAMESPACE, &component("controller"), 2)
        .await;
    rig.wait_ready_pods(NAMESPACE, &component("speaker"), 3)
        .await;
    let gateways = rig
        .wait_ready_pods(NAMESPACE, &component("gateway"), 2)
        .await;
    let gateway_nodes: BTreeSet<String> = gateways
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert_eq!(
        gateway_nodes,
        edge.iter().map(|i| nodes[*i].clone()).collect(),
        "the gateways run on the edge nodes"
    );
    // The gateways hold no credentials: no token volume, none mounted.
    for pod in &gateways {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        let mounts: Vec<String> = spec.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect();
        assert!(
            !mounts
                .iter()
                .any(|m| m.starts_with("/var/run/secrets/kubernetes.io")),
            "{}: {mounts:?}",
            name(pod)
        );
    }

    // The app, with kubectl.
    let app_node = nodes[2].clone();
    rig.kubectl(&["apply", "-f", "-"], Some(&app(&app_node, &rig.ca)))
        .await;
    rig.wait_ready_pods(APP_NAMESPACE, "app=web", 2).await;

    // The gateway Service's address comes from the pool, and the Ingress
    // publishes it.
    let services: Api<Service> = Api::namespaced(rig.client(), NAMESPACE);
    let gateway_service = format!("{RELEASE}-gateway");
    let ip = wait_for("the gateway Service's address", WAIT, || async {
        load_balancer_ip(&services.get(&gateway_service).await.ok()?)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.system.all_logs()));
    let range = rig.cluster().addresses().load_balancer_range();
    assert!(in_range(ip, range), "{ip} is not in the pool {range:?}");
    let ingresses: Api<Ingress> = Api::namespaced(rig.client(), APP_NAMESPACE);
    let published = wait_for("the Ingress status", WAIT, || async {
        ingress_ip(&ingresses.get("web").await.ok()?)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.system.all_logs()));
    assert_eq!(published, ip);

    // The client reaches the app by the Ingress host, and the app sees the
    // client's own address (externalTrafficPolicy Local keeps it).
    let client_ip = rig.cluster().addresses().client_v4().to_string();
    let (_, reply) = rig.wait_echo(ip, "http", PLAIN_HOST).await;
    assert_eq!(reply.host, PLAIN_HOST);
    assert_eq!(reply.node, app_node);
    assert_eq!(
        reply.headers.get("x-forwarded-for"),
        Some(&client_ip),
        "{reply:?}"
    );
    let (head, reply) = rig.wait_echo(ip, "https", HOST).await;
    assert_eq!(reply.host, HOST);
    assert_eq!(
        reply.headers.get("x-forwarded-for"),
        Some(&client_ip),
        "{reply:?}"
    );
    assert!(!head.contains("strict-transport-security"), "{head}");
    // The TLS host's plain HTTP is redirected to HTTPS.
    let (head, _) = rig.curl(ip, "http", HOST).await.unwrap();
    assert!(head.starts_with("http/1.1 308"), "{head}");
    assert!(
        head.contains("location: https://web.example.test/"),
        "{head}"
    );

    // An upgrade that changes a value: HSTS on. The gateways roll, and the
    // client sees the header.
    rig.helm(&[
        "upgrade",
        RELEASE,
        chart.to_str().unwrap(),
        "-f",
        &values,
        "--set",
        "gateway.hsts.maxAge=600",
    ])
    .await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(rig.client(), NAMESPACE);
    let gateway_daemonset = daemonsets.get(&gateway_service).await.unwrap();
    let template = gateway_daemonset.spec.template.spec.unwrap();
    let args = template.containers[0].args.clone().unwrap_or_default();
    assert!(args.iter().any(|a| a == "--hsts-max-age=600"), "{args:?}");
    wait_for("the client to see HSTS", START_TIMEOUT, || async {
        let (head, _) = rig.curl(ip, "https", HOST).await.ok()?;
        head.contains("strict-transport-security: max-age=600")
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.system.all_logs()));
    rig.wait_ready_pods(NAMESPACE, &component("gateway"), 2)
        .await;

    // A rollout of the app under load: not one request fails.
    let before: BTreeSet<String> = rig
        .wait_ready_pods(APP_NAMESPACE, "app=web", 2)
        .await
        .iter()
        .map(name)
        .collect();
    let target = SocketAddr::from((ip, 80));
    let prober = Prober::start(rig.cluster(), target, PLAIN_HOST).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.kubectl(
        &["rollout", "restart", "deployment/web", "-n", APP_NAMESPACE],
        None,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(rig.client(), APP_NAMESPACE);
    wait_for(
        "the rollout to replace both pods",
        START_TIMEOUT,
        || async {
            let all = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?
                .items;
            let names: BTreeSet<String> = all.iter().map(name).collect();
            (all.len() == 2 && all.iter().all(is_ready) && names.is_disjoint(&before)).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.system.all_logs()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = prober.stop().await.unwrap();
    let failures: Vec<_> = log.failures().collect();
    let answered: BTreeSet<String> = log
        .answerers()
        .into_iter()
        .flatten()
        .map(|a| a.pod)
        .collect();
    println!(
        "rollout under load: {} requests, {} failed, answered by {answered:?}",
        log.records().len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed during the rollout: {failures:?}"
    );
    assert!(
        !answered.is_disjoint(&before) && answered.iter().any(|p| !before.contains(p)),
        "old and new pods both answered: {answered:?} (old {before:?})"
    );

    // The node holding the address is cut off: another edge node takes it
    // over within the failover bound.
    let owners = rig.answering_nodes(ip).await;
    assert_eq!(owners.len(), 1, "{owners:?}");
    let owner = *owners.iter().next().unwrap();
    assert!(
        edge.contains(&owner),
        "node {owner} holds {ip} without a gateway"
    );
    let prober = Prober::start(rig.cluster(), target, PLAIN_HOST).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cut_at = Instant::now();
    rig.cluster().set_node_connected(owner, false).unwrap();
    let new_owner = wait_for("another node to answer", WAIT, || async {
        let now = rig.answering_nodes(ip).await;
        (now.len() == 1 && !now.contains(&owner)).then(|| *now.iter().next().unwrap())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.system.all_logs()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = prober.stop().await.unwrap();
    let gap = log.longest_gap();
    println!(
        "node {owner} cut off: node {new_owner} answers after {:?}; the client's longest gap {gap:?}",
        cut_at.elapsed()
    );
    assert!(edge.contains(&new_owner));
    assert!(
        log.records().last().is_some_and(|r| r.outcome.is_ok()),
        "the client has not recovered"
    );
    assert!(gap < FAILOVER_BOUND, "gap {gap:?}");
    rig.cluster().set_node_connected(owner, true).unwrap();

    // Uninstall: everything the chart made goes, but the CRD stays (helm
    // never deletes CRDs), and so do the user's own objects.
    rig.helm(&["uninstall", RELEASE]).await;
    let instance = format!("app.kubernetes.io/instance={RELEASE}");
    let all_pods: Api<Pod> = Api::namespaced(rig.client(), NAMESPACE);
    wait_for("the chart's pods to go", START_TIMEOUT, || async {
        all_pods
            .list(&ListParams::default().labels(&instance))
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.system.all_logs()));
    let left = rig
        .kubectl(
            &[
                "get",
                "deployments,daemonsets,services,serviceaccounts,secrets,configmaps,roles,rolebindings,clusterroles,clusterrolebindings,ingressclasses,ippools",
                "-A",
                "-l",
                &instance,
                "-o",
                "name",
            ],
            None,
        )
        .await;
    assert_eq!(left.trim(), "", "left after uninstall");
    let crds: Api<CustomResourceDefinition> = Api::all(rig.client());
    assert!(crds.get("ippools.gatehouse.dev").await.is_ok());
    assert!(ingresses.get("web").await.is_ok());
}

//! The Helm chart in `charts/gatehouse`, checked with a real helm v4
//! (scripts/install-tools.sh, or the HELM environment variable):
//!
//! - `helm lint --strict` with the default values and every case below;
//! - every document `helm template` renders is its Kubernetes API type
//!   (k8s-openapi, the IPPool CRD type, a ServiceMonitor shape): it
//!   deserializes, and serializing it again loses no field, so a misspelled
//!   or misplaced field fails here rather than being dropped by the API server;
//! - every container's `args` parse with the command-line definition of the
//!   binary it runs (`gatehouse_controller::cli::Args`,
//!   `gatehouse_gateway::cli::Args`), and what they name exists: the Secrets
//!   and mount paths of the stream certificates, the Service the controller
//!   publishes, the controller address gateways dial and its certificate;
//! - every pod is hardened (the speaker alone may have the host network,
//!   root and NET_RAW); gateways hold no token and no RBAC;
//! - RBAC grants what the README's table lists, per case; the speaker's
//!   ClusterRole exactly what it uses, and no Secrets;
//! - bad values are refused by the schema with a message naming the value;
//! - install, upgrade and uninstall against the e2e API emulator (or a real
//!   cluster given GATEHOUSE_E2E_KUBECONFIG).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Parser;
use gatehouse_e2e::emulator::TestApi;
use gatehouse_e2e::tools::{helm_binary, run_helm};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    Container, PodSpec, Secret, Service, ServiceAccount, ServicePort,
};
use k8s_openapi::api::networking::v1::{IngressClass, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const NAMESPACE: &str = "gatehouse";
const RELEASE: &str = "edge";

/// A values file and what it should produce.
struct Case {
    name: &'static str,
    values: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "default",
        values: "",
    },
    Case {
        name: "cloud",
        values: "
loadBalancer:
  enabled: false
gateway:
  service:
    annotations:
      service.beta.kubernetes.io/aws-load-balancer-type: nlb
    loadBalancerSourceRanges: [203.0.113.0/24, 2001:db8::/64]
",
    },
    Case {
        name: "daemonset",
        values: "
gateway:
  kind: DaemonSet
  https: true
  hsts:
    maxAge: 31536000
    includeSubdomains: true
  shutdown:
    graceSeconds: 8
    drainSeconds: 20
    preStopSleepSeconds: 3
  threads: 4
  maxConnections: 20000
  service:
    externalTrafficPolicy: Cluster
    nodePorts:
      http: 30080
      https: 30443
",
    },
    Case {
        name: "one-namespace",
        values: "
controller:
  watchNamespace: shop
  defaultCertificate: shop/wildcard
gateway:
  extraArgs: [--upstream-read-timeout, 120s, --allow-underscores-in-headers]
ingressClass:
  name: shop-edge
  default: true
",
    },
    Case {
        name: "monitoring",
        values: "
metrics:
  serviceMonitor:
    enabled: true
    labels:
      release: prometheus
networkPolicy:
  enabled: true
gateway:
  autoscaling:
    enabled: true
    minReplicas: 3
    maxReplicas: 12
",
    },
    Case {
        name: "existing-secrets",
        values: "
snapshotTLS:
  generate: false
  existingSecrets:
    controller: stream-server
    gateway: stream-client
controller:
  publishAddresses: [203.0.113.7, edge.example.com]
speaker:
  enabled: false
",
    },
    Case {
        name: "dual-stack",
        values: "
loadBalancer:
  defaultClass: false
  pools:
    - name: lan-v4
      addresses: [192.0.2.10-192.0.2.50]
      avoidBuggyIPs: true
    - name: lan-v6
      addresses: [2001:db8:100::/120]
      autoAssign: false
      serviceAllocation:
        priority: 10
        namespaces: [gatehouse]
        serviceSelectors:
          - matchLabels:
              app.kubernetes.io/name: gatehouse
gateway:
  service:
    ipFamilyPolicy: RequireDualStack
    ipFamilies: [IPv4, IPv6]
    allocateLoadBalancerNodePorts: false
speaker:
  heartbeatPort: 7950
  adminPort: 9913
  heartbeatInterval: 200ms
  peerTimeout: 1200ms
  contactTimeout: 800ms
  memberWindow: 30s
  apiTimeout: 3s
  logFormat: text
  extraArgs: [--kubeconfig=/etc/gatehouse/kubeconfig]
  nodeSelector:
    node-role.example.com/edge: \"true\"
  tolerations: []
  priorityClassName: system-node-critical
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 25%
",
    },
];

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/gatehouse")
}

/// Runs helm with its caches and config in a scratch directory.
fn helm(args: &[&str]) -> std::process::Output {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().unwrap()).path();
    Command::new(helm_binary())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn values_file(case: &Case) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), case.values).unwrap();
    file
}

/// The documents `helm template` renders for a case (CRDs included).
struct Rendered {
    case: &'static str,
    docs: Vec<Value>,
}

impl Rendered {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.docs.iter().filter(move |d| d["kind"] == kind)
    }

    fn all<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        self.of_kind(kind)
            .map(|d| serde_json::from_value(d.clone()).unwrap())
            .collect()
    }

    fn one<T: DeserializeOwned>(&self, kind: &str, name: &str) -> T {
        let doc = self
            .of_kind(kind)
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name} rendered", self.case));
        serde_json::from_value(doc.clone()).unwrap()
    }

    fn find<T: DeserializeOwned>(&self, kind: &str, name: &str) -> Option<T> {
        self.of_kind(kind)
            .find(|d| d["metadata"]["name"] == name)
            .map(|d| serde_json::from_value(d.clone()).unwrap())
    }

    /// The pod specs of the controller and gateway workloads.
    fn pods(&self) -> Vec<(String, PodSpec)> {
        let mut pods = Vec::new();
        for d in self.all::<Deployment>("Deployment") {
            let spec = d.spec.template.spec.unwrap();
            pods.push((d.metadata.name.unwrap(), spec));
        }
        for d in self.all::<DaemonSet>("DaemonSet") {
            let spec = d.spec.template.spec.unwrap();
            pods.push((d.metadata.name.unwrap(), spec));
        }
        pods
    }

    fn workload_pod(&self, name: &str) -> PodSpec {
        self.pods()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{}: no workload {name}", self.case))
            .1
    }

    /// Whether the values ask for speakers: Gatehouse is the load balancer
    /// and speaker.enabled is not false.
    fn speaker_expected(&self) -> bool {
        let values = self.values();
        values["loadBalancer"]["enabled"] != false && values["speaker"]["enabled"] != false
    }

    fn values(&self) -> Value {
        let case = CASES.iter().find(|c| c.name == self.case).unwrap();
        serde_yaml::from_str::<Option<Value>>(case.values)
            .unwrap()
            .unwrap_or(Value::Null)
    }
}

fn render_with(case: &'static str, extra: &[&str]) -> Rendered {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let output = helm(&args);
    assert!(
        output.status.success(),
        "{case}: helm template failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let docs = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    Rendered { case, docs }
}

fn rendered() -> &'static [Rendered] {
    static ALL: OnceLock<Vec<Rendered>> = OnceLock::new();
    ALL.get_or_init(|| {
        CASES
            .iter()
            .map(|case| {
                let file = values_file(case);
                render_with(case.name, &["-f", file.path().to_str().unwrap()])
            })
            .collect()
    })
}

fn rendered_case(name: &str) -> &'static Rendered {
    rendered().iter().find(|r| r.case == name).unwrap()
}

#[test]
fn chart_lints_strictly_with_every_case() {
    let chart = chart_dir();
    for case in CASES {
        let file = values_file(case);
        let output = helm(&[
            "lint",
            "--strict",
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "-f",
            file.path().to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}: helm lint --strict failed:\n{}{}",
            case.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn chart_version_follows_the_workspace() {
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    // The generated CRDs are what the chart ships.
    let crd = rendered_case("default")
        .one::<CustomResourceDefinition>("CustomResourceDefinition", "ippools.gatehouse.dev");
    assert_eq!(crd.spec.group, "gatehouse.dev");
}

// ---- every document is its API type ----

/// A Prometheus Operator ServiceMonitor, the fields the chart uses, strictly.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    namespace_selector: MonitorNamespaces,
    endpoints: Vec<MonitorEndpoint>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MonitorNamespaces {
    match_names: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MonitorEndpoint {
    port: String,
    path: String,
    interval: String,
}

/// Deserializes `doc` as `T` (naming the field on error) and serializes it
/// again: a field the type does not have comes back missing.
fn round_trip<T: DeserializeOwned + Serialize>(case: &str, doc: &Value) {
    let what = format!(
        "{case}: {} {}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    );
    let typed: T = serde_path_to_error::deserialize(doc.clone())
        .unwrap_or_else(|e| panic!("{what}: {} (at {})", e.inner(), e.path()));
    let back = serde_json::to_value(&typed).unwrap();
    let mut lost = Vec::new();
    compare(doc, &back, &mut String::new(), &mut lost);
    assert!(
        lost.is_empty(),
        "{what}: fields the API type does not have (misspelled or misplaced?): {lost:?}"
    );
}

fn compare(orig: &Value, back: &Value, path: &mut String, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                if value.is_null() {
                    continue;
                }
                let len = path.len();
                path.push('.');
                path.push_str(key);
                match b.get(key) {
                    Some(other) => compare(value, other, path, out),
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                compare(x, y, path, out);
                path.truncate(len);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} came back as {b}")),
        _ => {}
    }
}

fn check_type(case: &str, doc: &Value) {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(case, doc),
        ("v1", "Secret") => round_trip::<Secret>(case, doc),
        ("v1", "Service") => round_trip::<Service>(case, doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(case, doc),
        ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(case, doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(case, doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(case, doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(case, doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(case, doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(case, doc),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            round_trip::<HorizontalPodAutoscaler>(case, doc)
        }
        ("networking.k8s.io/v1", "IngressClass") => round_trip::<IngressClass>(case, doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(case, doc),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(case, doc)
        }
        ("gatehouse.dev/v1alpha1", "IPPool") => round_trip::<gatehouse_crds::IPPool>(case, doc),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => round_trip::<ServiceMonitor>(case, doc),
        other => panic!("{case}: rendered a {other:?} the test knows no type for"),
    }
}

#[test]
fn every_rendered_document_is_its_kubernetes_type() {
    for r in rendered() {
        assert!(
            r.docs.len() > 10,
            "{}: only {} documents",
            r.case,
            r.docs.len()
        );
        for doc in &r.docs {
            check_type(r.case, doc);
        }
        // Every namespaced object goes to the release namespace (or, for the
        // watched namespace's Role, there).
        for doc in &r.docs {
            if let Some(ns) = doc["metadata"]["namespace"].as_str() {
                assert!(
                    ns == NAMESPACE || ns == "shop",
                    "{}: {} in {ns}",
                    r.case,
                    doc["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn the_round_trip_catches_a_misspelled_field() {
    let r = rendered_case("default");
    let mut doc = r
        .of_kind("Deployment")
        .next()
        .expect("a Deployment")
        .clone();
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 5.into();
    let result = std::panic::catch_unwind(|| round_trip::<Deployment>("mutated", &doc));
    let message = *result
        .expect_err("a misspelled field must fail")
        .downcast::<String>()
        .unwrap();
    assert!(message.contains("readinessProbe.periodSecond"), "{message}");
}

// ---- the workloads as they would run ----

fn container_args(container: &Container) -> Vec<String> {
    container.args.clone().unwrap_or_default()
}

fn binary_of(container: &Container) -> String {
    let command = container.command.clone().unwrap_or_default();
    let first = command.first().expect("every container names its binary");
    first.rsplit('/').next().unwrap().to_string()
}

fn parse_controller(case: &str, container: &Container) -> gatehouse_controller::cli::Args {
    let args = container_args(container);
    gatehouse_controller::cli::Args::try_parse_from(
        std::iter::once("gatehouse-controller".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{case}: gatehouse-controller refuses the chart's args {args:?}:\n{e}{}",
            hint(&e.to_string())
        )
    })
}

fn parse_gateway(case: &str, container: &Container) -> gatehouse_gateway::cli::Args {
    let args = container_args(container);
    gatehouse_gateway::cli::Args::try_parse_from(
        std::iter::once("gatehouse-gateway".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("{case}: gatehouse-gateway refuses the chart's args {args:?}:\n{e}"))
}

fn hint(error: &str) -> &'static str {
    if error.contains("load-balancer") {
        "(the load-balancer flags --load-balancer-class, --no-default-load-balancer-class and \
         --no-load-balancer come with the IP allocation work: is it merged?)"
    } else {
        ""
    }
}

/// The Secret a container's file comes from, and the key in it.
fn secret_file(pod: &PodSpec, container: &Container, file: &std::path::Path) -> (String, String) {
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| file.starts_with(&m.mount_path))
        .unwrap_or_else(|| panic!("{} is on no volume", file.display()));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let secret = volume
        .secret
        .as_ref()
        .unwrap_or_else(|| panic!("{} is not a Secret volume", mount.name));
    let key = file
        .strip_prefix(&mount.mount_path)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (secret.secret_name.clone().unwrap(), key)
}

/// The Secret a component's stream certificate is in: the existing one the
/// values name, else the one the chart makes.
fn stream_secret(values: &Value, component: &str, workload: String) -> String {
    values["snapshotTLS"]["existingSecrets"][component]
        .as_str()
        .map_or_else(|| format!("{workload}-stream-tls"), str::to_string)
}

/// A named port of a rendered Service.
fn service_port(r: &Rendered, service: &str, port: &str) -> ServicePort {
    let rendered: Service = r.one("Service", service);
    rendered
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some(port))
        .unwrap_or_else(|| panic!("{}: Service {service} has no port {port}", r.case))
}

/// Each file named by a flag is the given key of `secret`, mounted.
fn assert_files_from(
    case: &str,
    pod: &PodSpec,
    container: &Container,
    files: &[(&Option<PathBuf>, &str)],
    secret: &str,
) {
    for (file, key) in files {
        let file = file.as_ref().unwrap_or_else(|| panic!("{case}: no {key}"));
        assert_eq!(
            secret_file(pod, container, file),
            (secret.to_string(), key.to_string()),
            "{case}"
        );
    }
}

fn controller_name() -> String {
    format!("{RELEASE}-gatehouse-controller")
}

fn gateway_name() -> String {
    format!("{RELEASE}-gatehouse-gateway")
}

fn speaker_name() -> String {
    format!("{RELEASE}-gatehouse-speaker")
}

#[test]
fn container_args_parse_with_the_binaries_own_command_lines() {
    for r in rendered() {
        let values = r.values();
        let mut seen = Vec::new();
        for (workload, pod) in r.pods() {
            for container in &pod.containers {
                let binary = binary_of(container);
                seen.push(binary.clone());
                match binary.as_str() {
                    "gatehouse-controller" if workload == speaker_name() => {
                        check_speaker(r, &values, &pod, container)
                    }
                    "gatehouse-controller" => check_controller(r, &values, &pod, container),
                    "gatehouse-gateway" => check_gateway(r, &values, &pod, container),
                    other => panic!("{}: {workload} runs {other}", r.case),
                }
            }
        }
        seen.sort();
        // The speaker runs the controller's binary (its `speaker` mode).
        let expected: &[&str] = if r.speaker_expected() {
            &[
                "gatehouse-controller",
                "gatehouse-controller",
                "gatehouse-gateway",
            ]
        } else {
            &["gatehouse-controller", "gatehouse-gateway"]
        };
        assert_eq!(seen, expected, "{}", r.case);
    }
}

fn check_controller(r: &Rendered, values: &Value, pod: &PodSpec, container: &Container) {
    let case = r.case;
    let args = parse_controller(case, container);
    assert!(
        args.command.is_none(),
        "{case}: the controller, not another mode"
    );
    assert!(args.manifests.is_none(), "{case}: cluster mode");
    // The stream's TLS files come from the controller's certificate Secret.
    let expected_secret = stream_secret(values, "controller", controller_name());
    let files = [
        (&args.snapshot_tls_cert, "tls.crt"),
        (&args.snapshot_tls_key, "tls.key"),
        (&args.snapshot_client_ca, "ca.crt"),
    ];
    assert_files_from(case, pod, container, &files, &expected_secret);
    // The stream Service reaches the port the controller serves on.
    let stream = service_port(r, &controller_name(), "stream");
    assert_eq!(
        named_container_port(container, &stream.target_port.unwrap()),
        i32::from(args.snapshot_addr.port()),
        "{case}"
    );
    let admin_port = i32::from(args.admin_addr.port());
    for probe in [&container.liveness_probe, &container.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(
            named_container_port(container, &get.port),
            admin_port,
            "{case}"
        );
    }
    // Status: the gateway Service by default, the addresses when given.
    match values["controller"]["publishAddresses"].as_array() {
        Some(addresses) => {
            let want: Vec<String> = addresses
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            assert_eq!(args.publish_address, want, "{case}");
            assert!(args.publish_service.is_none(), "{case}");
        }
        None => {
            let publish = args.publish_service.expect("--publish-service");
            assert_eq!(
                publish.to_string(),
                format!("{NAMESPACE}/{}", gateway_name()),
                "{case}"
            );
            r.one::<Service>("Service", &gateway_name());
        }
    }
    // The Lease it elects with is the one its Role lets it update.
    let lease_ns = args.leader_election_namespace.clone().unwrap();
    assert_eq!(lease_ns, NAMESPACE, "{case}");
    let role: Role = r.one("Role", &format!("{}-leader-election", controller_name()));
    assert!(
        role.rules.unwrap().iter().any(|rule| {
            rule.verbs.contains(&"update".to_string())
                && rule
                    .resource_names
                    .as_ref()
                    .is_some_and(|n| n.contains(&args.leader_election_id))
        }),
        "{case}: the Lease {} is not updatable",
        args.leader_election_id
    );
    // The class it serves is the IngressClass the chart makes.
    let class: IngressClass = r.one("IngressClass", &args.ingress_class);
    assert_eq!(
        class.spec.unwrap().controller.as_deref(),
        Some(args.controller_name.as_str()),
        "{case}"
    );
    assert_eq!(
        args.watch_namespace.as_deref(),
        values["controller"]["watchNamespace"].as_str(),
        "{case}"
    );
    // The load balancer: off on a cloud; its class; Services without a class.
    let lb = &values["loadBalancer"];
    assert_eq!(
        args.no_load_balancer,
        lb["enabled"] == false,
        "{case}: --no-load-balancer"
    );
    assert_eq!(args.class.load_balancer_class, "gatehouse.dev/lb", "{case}");
    assert_eq!(
        args.class.no_default_load_balancer_class,
        lb["defaultClass"] == false,
        "{case}: --no-default-load-balancer-class"
    );
}

fn check_gateway(r: &Rendered, values: &Value, pod: &PodSpec, container: &Container) {
    let case = r.case;
    let args = parse_gateway(case, container);
    // It dials the controller's stream Service by the name its certificate holds.
    let url = args.controller.clone().expect("--controller");
    let service_host = format!("{}.{NAMESPACE}.svc", controller_name());
    let stream_port = service_port(r, &controller_name(), "stream").port;
    assert_eq!(
        url,
        format!("https://{service_host}:{stream_port}"),
        "{case}"
    );
    let expected_secret = stream_secret(values, "gateway", gateway_name());
    let files = [
        (&args.controller_ca, "ca.crt"),
        (&args.controller_client_cert, "tls.crt"),
        (&args.controller_client_key, "tls.key"),
    ];
    assert_files_from(case, pod, container, &files, &expected_secret);
    // The Service's ports reach its listeners; redirects name the outside port.
    let service: Service = r.one("Service", &gateway_name());
    let ports = service.spec.unwrap().ports.unwrap();
    let http = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .unwrap();
    assert_eq!(
        named_container_port(container, http.target_port.as_ref().unwrap()),
        i32::from(args.http_addr.port()),
        "{case}"
    );
    let https = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("https"))
        .unwrap();
    let https_addr = args.https_addr.expect("--https-addr");
    assert_eq!(
        named_container_port(container, https.target_port.as_ref().unwrap()),
        i32::from(https_addr.port()),
        "{case}"
    );
    assert_eq!(i32::from(args.https_redirect_port), https.port, "{case}");
    // Terminating: preStop, then the grace period and the drain, all inside
    // the pod's termination grace period.
    let pre_stop = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|p| p.sleep.as_ref())
        .map_or(0, |s| s.seconds);
    let needed = pre_stop as u64 + args.shutdown_grace.as_secs() + args.shutdown_drain.as_secs();
    let granted = pod.termination_grace_period_seconds.unwrap() as u64;
    assert!(
        granted > needed,
        "{case}: terminationGracePeriodSeconds {granted} <= {needed}"
    );
    if let Some(grace) = values["gateway"]["shutdown"]["graceSeconds"].as_u64() {
        assert_eq!(args.shutdown_grace, Duration::from_secs(grace), "{case}");
    }
    if let Some(max_age) = values["gateway"]["hsts"]["maxAge"].as_u64() {
        assert_eq!(args.hsts_max_age, max_age, "{case}");
    }
    if case == "one-namespace" {
        // extraArgs reach the gateway.
        assert_eq!(args.upstream_read_timeout, Duration::from_secs(120));
        assert!(args.allow_underscores_in_headers);
    }
}

fn check_speaker(r: &Rendered, values: &Value, pod: &PodSpec, container: &Container) {
    use gatehouse_controller::cli::{Command as Mode, LogFormat};
    let case = r.case;
    let Some(Mode::Speaker(args)) = parse_controller(case, container).command else {
        panic!("{case}: the speaker container runs the controller without `speaker`");
    };
    // Its node: $(NODE_NAME), which the kubelet fills in from the pod's spec.nodeName.
    let var = args
        .node_name
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{case}: --node-name={} names no variable", args.node_name));
    let env = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == var)
        .unwrap_or_else(|| panic!("{case}: no env {var}"));
    let field = env
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(field, Some("spec.nodeName"), "{case}");
    // The node's network; its ports are the node's.
    assert_eq!(pod.host_network, Some(true), "{case}");
    assert_eq!(
        pod.dns_policy.as_deref(),
        Some("ClusterFirstWithHostNet"),
        "{case}"
    );
    let port = |name: &str| {
        container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{case}: no container port {name}"))
            .clone()
    };
    let heartbeat = port("heartbeat");
    assert_eq!(heartbeat.protocol.as_deref(), Some("UDP"), "{case}");
    let admin = port("admin");
    assert_eq!(admin.protocol.as_deref(), Some("TCP"), "{case}");
    for (declared, addr) in [(&heartbeat, args.heartbeat_addr), (&admin, args.admin_addr)] {
        assert_eq!(declared.container_port, i32::from(addr.port()), "{case}");
        assert_eq!(declared.host_port, Some(declared.container_port), "{case}");
    }
    for (probe, path) in [
        (&container.liveness_probe, "/healthz"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path), "{case}");
        assert_eq!(
            named_container_port(container, &get.port),
            i32::from(args.admin_addr.port()),
            "{case}"
        );
    }
    // The values, and where a case sets none the binary's own defaults.
    let Some(Mode::Speaker(defaults)) = gatehouse_controller::cli::Args::try_parse_from([
        "gatehouse-controller",
        "speaker",
        "--node-name=n",
    ])
    .unwrap()
    .command
    else {
        panic!("no speaker mode");
    };
    let speaker = &values["speaker"];
    let port_of = |key: &str, default: u16| {
        speaker[key]
            .as_u64()
            .map_or(default, |p| u16::try_from(p).unwrap())
    };
    assert_eq!(
        args.heartbeat_addr.port(),
        port_of("heartbeatPort", defaults.heartbeat_addr.port()),
        "{case}"
    );
    assert_eq!(
        args.admin_addr.port(),
        port_of("adminPort", defaults.admin_addr.port()),
        "{case}"
    );
    let duration_of = |key: &str, default: Duration| {
        speaker[key].as_str().map_or(default, |text| {
            let digits = text.trim_end_matches(char::is_alphabetic);
            let n: u64 = digits.parse().unwrap();
            match &text[digits.len()..] {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                other => panic!("{case}: unit {other}"),
            }
        })
    };
    let timing = [
        (
            args.heartbeat_interval,
            "heartbeatInterval",
            defaults.heartbeat_interval,
        ),
        (args.peer_timeout, "peerTimeout", defaults.peer_timeout),
        (
            args.contact_timeout,
            "contactTimeout",
            defaults.contact_timeout,
        ),
        (args.member_window, "memberWindow", defaults.member_window),
        (args.api_timeout, "apiTimeout", defaults.api_timeout),
    ];
    for (got, key, default) in timing {
        assert_eq!(got, duration_of(key, default), "{case}: speaker.{key}");
    }
    // The rule the binary states: a cut-off speaker stops before it is
    // declared dead.
    assert!(
        args.peer_timeout * 2 > args.contact_timeout * 2 + args.heartbeat_interval * 3,
        "{case}"
    );
    // It announces the addresses of the class the controller assigns.
    let lb = &values["loadBalancer"];
    assert_eq!(args.class.load_balancer_class, "gatehouse.dev/lb", "{case}");
    assert_eq!(
        args.class.no_default_load_balancer_class,
        lb["defaultClass"] == false,
        "{case}: --no-default-load-balancer-class"
    );
    // It releases its addresses at once on SIGTERM.
    assert_eq!(pod.termination_grace_period_seconds, Some(10), "{case}");
    // It talks to the API with its own account.
    assert_eq!(pod.automount_service_account_token, Some(true), "{case}");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(speaker_name().as_str()),
        "{case}"
    );
    let account: ServiceAccount = r.one("ServiceAccount", &speaker_name());
    assert_ne!(
        account.automount_service_account_token,
        Some(false),
        "{case}"
    );
    assert!(
        pod.volumes.is_none(),
        "{case}: the speaker mounts no volume"
    );
    let tolerations = pod.tolerations.clone().unwrap_or_default();
    if case == "dual-stack" {
        assert!(matches!(args.log_format, LogFormat::Text), "{case}");
        // extraArgs reach the speaker.
        assert_eq!(
            args.kubeconfig,
            Some(PathBuf::from("/etc/gatehouse/kubeconfig"))
        );
        assert!(tolerations.is_empty(), "{case}");
        let selector = pod.node_selector.clone().unwrap();
        assert_eq!(selector["node-role.example.com/edge"], "true");
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
    } else {
        assert!(matches!(args.log_format, LogFormat::Json), "{case}");
        assert!(args.kubeconfig.is_none(), "{case}");
        // By default every node gets a speaker, tainted or not.
        assert_eq!(tolerations.len(), 1, "{case}");
        assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"), "{case}");
        assert!(
            tolerations[0].key.is_none() && tolerations[0].effect.is_none(),
            "{case}"
        );
    }
}

fn named_container_port(
    container: &Container,
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    }
}

// ---- hardening ----

/// What one workload may have beyond the chart's rules. Only the speaker
/// has exceptions: the host network, root, and exactly NET_RAW.
#[derive(Default)]
struct Exceptions {
    host_network: bool,
    root: bool,
    capabilities: &'static [&'static str],
}

fn exceptions_of(workload: &str) -> Exceptions {
    if workload == speaker_name() {
        Exceptions {
            host_network: true,
            root: true,
            capabilities: &["NET_RAW"],
        }
    } else {
        Exceptions::default()
    }
}

/// What is wrong with a pod, by the chart's rules: non-root, read-only root
/// filesystem, no capabilities (NET_BIND_SERVICE only for a port below
/// 1024), no host namespaces, RuntimeDefault seccomp, no privilege
/// escalation, resource requests; less only what `exceptions` grants.
fn hardening_problems(pod: &PodSpec, exceptions: &Exceptions) -> Vec<String> {
    let mut problems = Vec::new();
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    if pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        problems.push("host namespaces".to_string());
    }
    if pod.host_network == Some(true) && !exceptions.host_network {
        problems.push("host network".to_string());
    }
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.clone().unwrap_or_default();
        let name = &c.name;
        let non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root) == Some(true);
        let uid = sc.run_as_user.or(pod_sc.run_as_user);
        if (!non_root || uid == Some(0)) && !exceptions.root {
            problems.push(format!("{name}: may run as root"));
        }
        if sc.read_only_root_filesystem != Some(true) {
            problems.push(format!("{name}: writable root filesystem"));
        }
        if sc.allow_privilege_escalation != Some(false) || sc.privileged == Some(true) {
            problems.push(format!("{name}: privilege escalation allowed"));
        }
        let seccomp = sc
            .seccomp_profile
            .or(pod_sc.seccomp_profile.clone())
            .map(|p| p.type_);
        if seccomp.as_deref() != Some("RuntimeDefault") {
            problems.push(format!("{name}: seccomp {seccomp:?}"));
        }
        let caps = sc.capabilities.unwrap_or_default();
        if !caps.drop.unwrap_or_default().iter().any(|d| d == "ALL") {
            problems.push(format!("{name}: capabilities not dropped"));
        }
        let added = caps.add.unwrap_or_default();
        let low_port = c.ports.iter().flatten().any(|p| p.container_port < 1024);
        let allowed = added.is_empty()
            || (added == ["NET_BIND_SERVICE"] && low_port)
            || (!exceptions.capabilities.is_empty() && added == exceptions.capabilities);
        if !allowed {
            problems.push(format!("{name}: adds capabilities {added:?}"));
        }
        let requests = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone())
            .unwrap_or_default();
        for resource in ["cpu", "memory"] {
            if !requests.contains_key(resource) {
                problems.push(format!("{name}: no {resource} request"));
            }
        }
    }
    problems
}

#[test]
fn every_pod_is_hardened() {
    for r in rendered() {
        for (workload, pod) in r.pods() {
            let problems = hardening_problems(&pod, &exceptions_of(&workload));
            assert!(problems.is_empty(), "{}: {workload}: {problems:?}", r.case);
        }
    }
    let default = rendered_case("default");
    // The check itself: a weakened pod is caught on every count.
    let mut pod = default.workload_pod(&gateway_name());
    let container = &mut pod.containers[0];
    let sc = container.security_context.as_mut().unwrap();
    sc.read_only_root_filesystem = Some(false);
    sc.allow_privilege_escalation = None;
    sc.capabilities.as_mut().unwrap().add = Some(vec!["NET_ADMIN".into()]);
    container.resources = None;
    pod.host_network = Some(true);
    let problems = hardening_problems(&pod, &exceptions_of(&gateway_name()));
    assert_eq!(problems.len(), 6, "{problems:?}");
    // The speaker's exceptions are its own: the controller's pod with the
    // speaker's settings fails on each of them.
    let speaker = default.workload_pod(&speaker_name());
    let mut pod = default.workload_pod(&controller_name());
    pod.host_network = Some(true);
    pod.security_context = speaker.security_context.clone();
    pod.containers[0].security_context = speaker.containers[0].security_context.clone();
    let problems = hardening_problems(&pod, &exceptions_of(&controller_name()));
    assert_eq!(problems.len(), 3, "{problems:?}");
    // And they are exactly what they are: one more capability, or a host
    // namespace other than the network, fails the speaker too.
    let mut pod = speaker.clone();
    let caps = pod.containers[0]
        .security_context
        .as_mut()
        .unwrap()
        .capabilities
        .as_mut()
        .unwrap();
    caps.add.as_mut().unwrap().push("NET_ADMIN".into());
    pod.host_pid = Some(true);
    let problems = hardening_problems(&pod, &exceptions_of(&speaker_name()));
    assert_eq!(problems.len(), 2, "{problems:?}");
    let mut pod = speaker;
    let sc = pod.containers[0].security_context.as_mut().unwrap();
    sc.allow_privilege_escalation = Some(true);
    sc.read_only_root_filesystem = None;
    let problems = hardening_problems(&pod, &exceptions_of(&speaker_name()));
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn gateways_hold_no_token_and_no_rbac() {
    for r in rendered() {
        let pod = r.workload_pod(&gateway_name());
        assert_eq!(
            pod.automount_service_account_token,
            Some(false),
            "{}",
            r.case
        );
        let account = pod.service_account_name.clone().unwrap();
        let sa: ServiceAccount = r.one("ServiceAccount", &account);
        assert_eq!(
            sa.automount_service_account_token,
            Some(false),
            "{}",
            r.case
        );
        let bound = r
            .all::<ClusterRoleBinding>("ClusterRoleBinding")
            .into_iter()
            .flat_map(|b| b.subjects.unwrap_or_default())
            .chain(
                r.all::<RoleBinding>("RoleBinding")
                    .into_iter()
                    .flat_map(|b| b.subjects.unwrap_or_default()),
            )
            .any(|s| s.name == account);
        assert!(!bound, "{}: the gateway account is bound to a role", r.case);
        // Volumes: the client certificate and a scratch directory, nothing else.
        let volumes: Vec<String> = pod.volumes.unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(volumes, ["stream-tls", "tmp"], "{}", r.case);
    }
}

// ---- RBAC ----

fn grants(rules: &[PolicyRule], group: &str, resource: &str) -> Vec<String> {
    let mut verbs: Vec<String> = rules
        .iter()
        .filter(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
        })
        .flat_map(|r| r.verbs.clone())
        .collect();
    verbs.sort();
    verbs.dedup();
    verbs
}

#[test]
fn controller_rbac_is_least_privilege() {
    for r in rendered() {
        let values = r.values();
        let lb = values["loadBalancer"]["enabled"].as_bool().unwrap_or(true);
        let watch_ns = values["controller"]["watchNamespace"].as_str();
        let cluster: ClusterRole = r.one("ClusterRole", &controller_name());
        let cluster_rules = cluster.rules.unwrap_or_default();
        let namespaced_rules = match watch_ns {
            Some(ns) => {
                let role: Role = r.one("Role", &controller_name());
                assert_eq!(role.metadata.namespace.as_deref(), Some(ns));
                let binding: RoleBinding = r.one("RoleBinding", &controller_name());
                assert_eq!(binding.metadata.namespace.as_deref(), Some(ns));
                // Nothing namespaced is granted cluster-wide.
                assert!(
                    grants(&cluster_rules, "", "secrets").is_empty(),
                    "{}",
                    r.case
                );
                role.rules.unwrap_or_default()
            }
            None => {
                assert!(r.find::<Role>("Role", &controller_name()).is_none());
                cluster_rules.clone()
            }
        };
        let read = ["get", "list", "watch"];
        let expect = |rules: &[PolicyRule], group: &str, resource: &str, verbs: &[&str]| {
            assert_eq!(
                grants(rules, group, resource),
                verbs.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                "{}: {group}/{resource}",
                r.case
            );
        };
        expect(&cluster_rules, "networking.k8s.io", "ingressclasses", &read);
        expect(&namespaced_rules, "networking.k8s.io", "ingresses", &read);
        expect(
            &namespaced_rules,
            "networking.k8s.io",
            "ingresses/status",
            &["patch"],
        );
        expect(&namespaced_rules, "", "services", &read);
        expect(
            &namespaced_rules,
            "discovery.k8s.io",
            "endpointslices",
            &read,
        );
        expect(&namespaced_rules, "", "secrets", &["list", "watch"]);
        expect(
            &namespaced_rules,
            "events.k8s.io",
            "events",
            &["create", "patch"],
        );
        expect(&namespaced_rules, "", "events", &["create", "patch"]);
        if lb {
            expect(&namespaced_rules, "", "services/status", &["patch"]);
            expect(
                &cluster_rules,
                "gatehouse.dev",
                "ippools",
                &["list", "watch"],
            );
            expect(
                &cluster_rules,
                "gatehouse.dev",
                "ippools/status",
                &["patch"],
            );
            expect(&cluster_rules, "", "namespaces", &["list", "watch"]);
        } else {
            expect(&namespaced_rules, "", "services/status", &[]);
            expect(&cluster_rules, "gatehouse.dev", "ippools", &[]);
            expect(&cluster_rules, "", "namespaces", &[]);
        }
        // The Lease: create, and get/update of its own name only.
        let lease_role: Role = r.one("Role", &format!("{}-leader-election", controller_name()));
        assert_eq!(lease_role.metadata.namespace.as_deref(), Some(NAMESPACE));
        let lease_rules = lease_role.rules.unwrap();
        expect(
            &lease_rules,
            "coordination.k8s.io",
            "leases",
            &["create", "get", "update"],
        );
        for rule in &lease_rules {
            if rule.verbs.iter().any(|v| v != "create") {
                assert_eq!(rule.resource_names.as_ref().map(Vec::len), Some(1));
            }
        }
        // No wildcards anywhere, and nothing beyond the kinds above.
        let all_rules: Vec<&PolicyRule> = cluster_rules
            .iter()
            .chain(&namespaced_rules)
            .chain(&lease_rules)
            .collect();
        for rule in all_rules {
            let words = rule
                .verbs
                .iter()
                .chain(rule.resources.iter().flatten())
                .chain(rule.api_groups.iter().flatten());
            assert!(words.clone().all(|w| w != "*"), "{}: {rule:?}", r.case);
        }
    }
}

#[test]
fn speaker_rbac_is_exactly_what_it_uses() {
    for r in rendered() {
        let role = r.find::<ClusterRole>("ClusterRole", &speaker_name());
        let binding = r.find::<ClusterRoleBinding>("ClusterRoleBinding", &speaker_name());
        let account = r.find::<ServiceAccount>("ServiceAccount", &speaker_name());
        if !r.speaker_expected() {
            assert!(
                role.is_none() && binding.is_none() && account.is_none(),
                "{}: speaker RBAC without speakers",
                r.case
            );
            continue;
        }
        let rules = role.expect("the speaker's ClusterRole").rules.unwrap();
        // Every (group, resource) it is granted, with all verbs on it.
        let mut granted: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for rule in &rules {
            assert!(
                rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
                "{}: {rule:?}",
                r.case
            );
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    granted
                        .entry((group.clone(), resource.clone()))
                        .or_insert_with(|| grants(&rules, group, resource));
                }
            }
        }
        let read = ["get", "list", "watch"];
        let expected: BTreeMap<(String, String), Vec<String>> = [
            ("", "services", &["get", "list", "patch", "watch"][..]),
            ("discovery.k8s.io", "endpointslices", &read[..]),
            ("", "nodes", &read[..]),
            ("gatehouse.dev", "ippools", &read[..]),
            ("events.k8s.io", "events", &["create", "patch"][..]),
        ]
        .into_iter()
        .map(|(group, resource, verbs)| {
            (
                (group.to_string(), resource.to_string()),
                verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect();
        assert_eq!(granted, expected, "{}", r.case);
        assert!(grants(&rules, "", "secrets").is_empty(), "{}", r.case);
        // Bound to the speaker's account only, and that account to nothing else.
        let binding = binding.expect("the speaker's ClusterRoleBinding");
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, speaker_name());
        let subjects = binding.subjects.clone().unwrap();
        assert_eq!(subjects.len(), 1, "{}", r.case);
        assert_eq!(
            (
                subjects[0].kind.as_str(),
                subjects[0].name.clone(),
                subjects[0].namespace.as_deref()
            ),
            ("ServiceAccount", speaker_name(), Some(NAMESPACE)),
            "{}",
            r.case
        );
        let other_bindings = r
            .all::<ClusterRoleBinding>("ClusterRoleBinding")
            .into_iter()
            .filter(|b| b.metadata.name.as_deref() != Some(speaker_name().as_str()))
            .flat_map(|b| b.subjects.unwrap_or_default())
            .chain(
                r.all::<RoleBinding>("RoleBinding")
                    .into_iter()
                    .flat_map(|b| b.subjects.unwrap_or_default()),
            )
            .any(|s| s.name == speaker_name());
        assert!(
            !other_bindings,
            "{}: the speaker account has another role",
            r.case
        );
        account.expect("the speaker's ServiceAccount");
    }
}

// ---- Services, classes, certificates, pools ----

#[test]
fn gateway_service_follows_the_values() {
    for r in rendered() {
        let values = r.values();
        let lb = values["loadBalancer"]["enabled"].as_bool().unwrap_or(true);
        let service: Service = r.one("Service", &gateway_name());
        let spec = service.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"), "{}", r.case);
        let policy = values["gateway"]["service"]["externalTrafficPolicy"]
            .as_str()
            .unwrap_or("Local");
        assert_eq!(
            spec.external_traffic_policy.as_deref(),
            Some(policy),
            "{}",
            r.case
        );
        let class = spec.load_balancer_class.as_deref();
        assert_eq!(class, lb.then_some("gatehouse.dev/lb"), "{}", r.case);
        let ports: BTreeMap<String, (i32, Option<i32>)> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), (p.port, p.node_port)))
            .collect();
        let node = |name: &str| {
            values["gateway"]["service"]["nodePorts"][name]
                .as_i64()
                .map(|n| n as i32)
        };
        assert_eq!(ports["http"], (80, node("http")), "{}", r.case);
        assert_eq!(ports["https"], (443, node("https")), "{}", r.case);
        match r.case {
            "cloud" => {
                let annotations = service.metadata.annotations.unwrap();
                assert_eq!(
                    annotations["service.beta.kubernetes.io/aws-load-balancer-type"],
                    "nlb"
                );
                assert_eq!(
                    spec.load_balancer_source_ranges.unwrap(),
                    ["203.0.113.0/24", "2001:db8::/64"]
                );
            }
            "dual-stack" => {
                assert_eq!(spec.ip_family_policy.as_deref(), Some("RequireDualStack"));
                assert_eq!(spec.ip_families.unwrap(), ["IPv4", "IPv6"]);
                assert_eq!(spec.allocate_load_balancer_node_ports, Some(false));
            }
            _ => {}
        }
    }
}

#[test]
fn workloads_pools_and_extras_follow_the_values() {
    for r in rendered() {
        let daemonset = r.find::<DaemonSet>("DaemonSet", &gateway_name());
        let deployment = r.find::<Deployment>("Deployment", &gateway_name());
        let hpa = r.find::<HorizontalPodAutoscaler>("HorizontalPodAutoscaler", &gateway_name());
        let pdb = r.find::<PodDisruptionBudget>("PodDisruptionBudget", &gateway_name());
        let controller: Deployment = r.one("Deployment", &controller_name());
        let controller_spec = controller.spec;
        assert_eq!(controller_spec.replicas, Some(2), "{}", r.case);
        let affinity = controller_spec.template.spec.unwrap().affinity.unwrap();
        assert!(affinity.pod_anti_affinity.is_some(), "{}", r.case);
        r.one::<PodDisruptionBudget>("PodDisruptionBudget", &controller_name());
        // The speakers: on bare metal only, every node by default, one
        // replaced at a time.
        let speaker = r.find::<DaemonSet>("DaemonSet", &speaker_name());
        assert_eq!(speaker.is_some(), r.speaker_expected(), "{}", r.case);
        if let Some(speaker) = speaker {
            let spec = speaker.spec;
            let strategy = spec.update_strategy.unwrap();
            assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            let max_unavailable = strategy.rolling_update.unwrap().max_unavailable;
            let expected = if r.case == "dual-stack" {
                IntOrString::String("25%".into())
            } else {
                IntOrString::Int(1)
            };
            assert_eq!(max_unavailable, Some(expected), "{}", r.case);
            let labels = spec.template.metadata.unwrap().labels.unwrap();
            assert_eq!(labels["app.kubernetes.io/component"], "speaker");
            assert_eq!(
                spec.selector.match_labels.unwrap()["app.kubernetes.io/component"],
                "speaker"
            );
        }
        match r.case {
            "daemonset" => {
                assert!(daemonset.is_some() && deployment.is_none() && pdb.is_none());
            }
            "monitoring" => {
                let deployment = deployment.expect("a gateway Deployment");
                assert_eq!(deployment.spec.replicas, None, "the HPA owns replicas");
                let hpa = hpa.expect("an HPA").spec;
                assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(3), 12));
                assert_eq!(r.all::<ServiceMonitor>("ServiceMonitor").len(), 3);
                r.one::<Service>("Service", &format!("{}-metrics", gateway_name()));
                // The speakers' metrics: a headless Service of their admin ports.
                let metrics: Service = r.one("Service", &format!("{}-metrics", speaker_name()));
                let metrics = metrics.spec.unwrap();
                assert_eq!(metrics.cluster_ip.as_deref(), Some("None"));
                assert_eq!(
                    metrics.selector.unwrap()["app.kubernetes.io/component"],
                    "speaker"
                );
                let port = &metrics.ports.unwrap()[0];
                assert_eq!((port.name.as_deref(), port.port), (Some("admin"), 9903));
                let monitor: ServiceMonitor = r.one("ServiceMonitor", &speaker_name());
                let selected = monitor.spec.selector.match_labels.unwrap();
                assert_eq!(selected["app.kubernetes.io/component"], "speaker");
                assert_eq!(selected["gatehouse.dev/metrics"], "true");
                let policies: Vec<NetworkPolicy> = r.all("NetworkPolicy");
                assert_eq!(policies.len(), 2);
                check_network_policies(&policies);
            }
            _ => {
                let deployment = deployment.expect("a gateway Deployment");
                assert_eq!(deployment.spec.replicas, Some(2), "{}", r.case);
                assert!(hpa.is_none() && pdb.is_some(), "{}", r.case);
                assert!(r.of_kind("ServiceMonitor").next().is_none());
                assert!(r.of_kind("NetworkPolicy").next().is_none());
            }
        }
        let pools: Vec<gatehouse_crds::IPPool> = r.all("IPPool");
        if r.case == "dual-stack" {
            let names: Vec<_> = pools
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect();
            assert_eq!(names, ["lan-v4", "lan-v6"]);
            assert!(pools[0].spec.auto_assign && pools[0].spec.avoid_buggy_ips);
            assert!(!pools[1].spec.auto_assign);
            let allocation = pools[1].spec.service_allocation.as_ref().unwrap();
            assert_eq!(allocation.priority, Some(10));
        } else {
            assert!(pools.is_empty(), "{}", r.case);
        }
        let class: IngressClass = r.one(
            "IngressClass",
            if r.case == "one-namespace" {
                "shop-edge"
            } else {
                "gatehouse"
            },
        );
        let default = class
            .metadata
            .annotations
            .unwrap_or_default()
            .get("ingressclass.kubernetes.io/is-default-class")
            .cloned();
        assert_eq!(
            default.as_deref(),
            (r.case == "one-namespace").then_some("true"),
            "{}",
            r.case
        );
    }
}

fn check_network_policies(policies: &[NetworkPolicy]) {
    let controller = policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(controller_name().as_str()))
        .unwrap();
    let rules = controller.spec.as_ref().unwrap().ingress.clone().unwrap();
    let stream = rules
        .iter()
        .find(|rule| {
            rule.ports.iter().flatten().any(|p| {
                p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(7443))
            })
        })
        .expect("a rule for the stream port");
    let from = stream.from.clone().unwrap();
    assert_eq!(from.len(), 1);
    let labels = from[0]
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .clone()
        .unwrap();
    assert_eq!(labels["app.kubernetes.io/component"], "gateway");
    assert!(
        from[0].namespace_selector.is_none(),
        "gateway pods of this namespace only"
    );
    let gateway = policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(gateway_name().as_str()))
        .unwrap();
    let rules = gateway.spec.as_ref().unwrap().ingress.clone().unwrap();
    let open = rules
        .iter()
        .find(|rule| rule.from.is_none())
        .expect("listeners open to all");
    let ports: Vec<_> = open
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.port.clone())
        .collect();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(ports, [IntOrString::Int(8080), IntOrString::Int(8443)]);
}

fn pem_certs(pem: &[u8]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn generated_certificates_verify_both_ways() {
    use rustls::client::danger::ServerCertVerifier;
    let r = rendered_case("default");
    let server: Secret = r.one("Secret", &format!("{}-stream-tls", controller_name()));
    let client: Secret = r.one("Secret", &format!("{}-stream-tls", gateway_name()));
    let ca: Secret = r.one("Secret", &format!("{RELEASE}-gatehouse-stream-ca"));
    assert_eq!(server.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(client.type_.as_deref(), Some("kubernetes.io/tls"));
    // The CA's key sits where the controller never looks (it reads TLS Secrets only).
    assert_eq!(ca.type_.as_deref(), Some("Opaque"));
    let data = |s: &Secret, key: &str| s.data.as_ref().unwrap()[key].0.clone();
    assert_eq!(data(&server, "ca.crt"), data(&client, "ca.crt"));
    assert_eq!(data(&server, "ca.crt"), data(&ca, "ca.crt"));

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(&data(&ca, "ca.crt")) {
        roots.add(cert).unwrap();
    }
    let roots = Arc::new(roots);
    let now = rustls_pki_types::UnixTime::now();
    // The gateway accepts the controller's certificate for every name of its Service.
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_chain = pem_certs(&data(&server, "tls.crt"));
    let name = controller_name();
    for host in [
        name.clone(),
        format!("{name}.{NAMESPACE}"),
        format!("{name}.{NAMESPACE}.svc"),
        format!("{name}.{NAMESPACE}.svc.cluster.local"),
    ] {
        let server_name = rustls_pki_types::ServerName::try_from(host.clone()).unwrap();
        verifier
            .verify_server_cert(&server_chain[0], &server_chain[1..], &server_name, &[], now)
            .unwrap_or_else(|e| panic!("the controller certificate does not cover {host}: {e}"));
    }
    let wrong = rustls_pki_types::ServerName::try_from("elsewhere.example").unwrap();
    assert!(verifier
        .verify_server_cert(&server_chain[0], &[], &wrong, &[], now)
        .is_err());
    // The controller accepts the gateway's client certificate.
    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
            .build()
            .unwrap();
    let client_chain = pem_certs(&data(&client, "tls.crt"));
    client_verifier
        .verify_client_cert(&client_chain[0], &client_chain[1..], now)
        .expect("the gateway certificate is accepted");
    // The keys are PEM private keys the binaries load.
    for secret in [&server, &client] {
        let key = String::from_utf8(data(secret, "tls.key")).unwrap();
        assert!(key.contains("PRIVATE KEY-----"), "{key}");
    }
    // Existing Secrets: the chart makes none.
    let existing = rendered_case("existing-secrets");
    assert!(existing.of_kind("Secret").next().is_none());
}

// ---- bad values ----

#[test]
fn bad_values_are_refused_with_a_readable_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "gateway.kind=StatefulSet"],
            "at '/gateway/kind': value must be one of 'Deployment', 'DaemonSet'",
        ),
        (
            &["--set", "controller.replica=3"],
            "at '/controller': additional properties 'replica' not allowed",
        ),
        (
            &["--set", "controller.replicas=two"],
            "at '/controller/replicas': got string, want integer",
        ),
        (
            &["--set", "controller.leaderElection.leaseDuration=15"],
            "at '/controller/leaderElection/leaseDuration': got number, want string",
        ),
        (
            &["--set", "controller.leaderElection.leaseDuration=15 s"],
            "at '/controller/leaderElection/leaseDuration'",
        ),
        (
            &["--set", "gateway.service.nodePorts.http=80"],
            "at '/gateway/service/nodePorts/http': minimum: got 80, want 30,000",
        ),
        (
            &["--set", "snapshotTLS.generate=false"],
            "at '/snapshotTLS/existingSecrets/controller': minLength: got 0, want 1",
        ),
        (
            &["--set-json", r#"loadBalancer.pools=[{"name":"lan"}]"#],
            "at '/loadBalancer/pools/0': missing property 'addresses'",
        ),
        (
            &["--set", "gateway.resources.requests=null"],
            "at '/gateway/resources': missing property 'requests'",
        ),
        (
            &["--set", "speaker.heartbeatPort=notaport"],
            "at '/speaker/heartbeatPort': got string, want integer",
        ),
        (
            &["--set", "speaker.heartbeatPort=70000"],
            "at '/speaker/heartbeatPort': maximum: got 70,000, want 65,535",
        ),
        (
            &["--set", "speaker.updateStrategy.rollingUpdate.maxSurge=1"],
            "at '/speaker/updateStrategy/rollingUpdate': additional properties 'maxSurge' not allowed",
        ),
        (
            &["--set", "speaker.peerTimeout=400ms"],
            "speaker.peerTimeout must exceed speaker.contactTimeout by more than 1.5 speaker.heartbeatInterval",
        ),
        (
            &["--set", "speaker.adminPort=7947"],
            "speaker.heartbeatPort and speaker.adminPort must differ",
        ),
        (
            &[
                "--set",
                "gateway.kind=DaemonSet",
                "--set",
                "gateway.autoscaling.enabled=true",
            ],
            "gateway.autoscaling.enabled needs gateway.kind Deployment",
        ),
        (
            &[
                "--set",
                "loadBalancer.enabled=false",
                "--set-json",
                r#"loadBalancer.pools=[{"name":"lan","addresses":["192.0.2.0/24"]}]"#,
            ],
            "loadBalancer.pools are only used when loadBalancer.enabled is true",
        ),
    ];
    let chart = chart_dir();
    for (sets, expected) in cases {
        let mut args = vec!["template", RELEASE, chart.to_str().unwrap()];
        args.extend_from_slice(sets);
        let output = helm(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{sets:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{sets:?}: expected {expected:?} in:\n{stderr}"
        );
    }
}

// ---- install, upgrade, uninstall ----

struct HelmOnApi {
    api: TestApi,
    home: tempfile::TempDir,
}

impl HelmOnApi {
    async fn run(&self, args: &[&str]) -> String {
        run_helm(self.api.kubeconfig(), NAMESPACE, self.home.path(), args).await
    }
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_the_chart() {
    use kube::api::Api;
    let helm = HelmOnApi {
        api: TestApi::start().await.expect("start the API"),
        home: tempfile::tempdir().unwrap(),
    };
    let client = helm.api.client();
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let pools = r#"loadBalancer.pools=[{"name":"lan","addresses":["192.0.2.10-192.0.2.20"]}]"#;

    let notes = helm
        .run(&[
            "install",
            RELEASE,
            chart,
            "--create-namespace",
            "--wait=false",
            "--set-json",
            pools,
        ])
        .await;
    assert!(
        notes.contains(&format!(
            "kubectl get svc --namespace {NAMESPACE} {}",
            gateway_name()
        )),
        "{notes}"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let classes: Api<IngressClass> = Api::all(client.clone());
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let ippools: Api<gatehouse_crds::IPPool> = Api::all(client.clone());

    let controller = deployments.get(&controller_name()).await.unwrap();
    assert_eq!(controller.spec.replicas, Some(2));
    assert!(deployments
        .get_opt(&gateway_name())
        .await
        .unwrap()
        .is_some());
    let gateway_service = services.get(&gateway_name()).await.unwrap();
    assert_eq!(
        gateway_service.spec.unwrap().load_balancer_class.as_deref(),
        Some("gatehouse.dev/lb")
    );
    assert!(cluster_roles
        .get_opt(&controller_name())
        .await
        .unwrap()
        .is_some());
    // Bare metal: the speakers, with their own account and ClusterRole.
    let speaker_args = |daemonset: DaemonSet| {
        daemonset.spec.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap()
    };
    let speakers = daemonsets.get(&speaker_name()).await.unwrap();
    assert!(speaker_args(speakers).contains(&"--heartbeat-addr=0.0.0.0:7947".to_string()));
    assert!(cluster_roles
        .get_opt(&speaker_name())
        .await
        .unwrap()
        .is_some());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    assert!(accounts.get_opt(&speaker_name()).await.unwrap().is_some());
    assert!(classes.get_opt("gatehouse").await.unwrap().is_some());
    assert!(crds
        .get_opt("ippools.gatehouse.dev")
        .await
        .unwrap()
        .is_some());
    assert!(ippools.get_opt("lan").await.unwrap().is_some());
    let stream_secret = format!("{}-stream-tls", controller_name());
    let ca_secret = format!("{RELEASE}-gatehouse-stream-ca");
    let first_cert = secrets.get(&stream_secret).await.unwrap().data.unwrap()["tls.crt"].clone();
    let first_ca = secrets.get(&ca_secret).await.unwrap().data.unwrap()["ca.crt"].clone();

    // Upgrade: more controller replicas, gateways as a DaemonSet, another
    // heartbeat port.
    helm.run(&[
        "upgrade",
        RELEASE,
        chart,
        "--wait=false",
        "--set-json",
        pools,
        "--set",
        "controller.replicas=3",
        "--set",
        "gateway.kind=DaemonSet",
        "--set",
        "speaker.heartbeatPort=7950",
    ])
    .await;
    let speakers = daemonsets.get(&speaker_name()).await.unwrap();
    assert!(speaker_args(speakers).contains(&"--heartbeat-addr=0.0.0.0:7950".to_string()));
    let controller = deployments.get(&controller_name()).await.unwrap();
    assert_eq!(controller.spec.replicas, Some(3));
    assert!(deployments
        .get_opt(&gateway_name())
        .await
        .unwrap()
        .is_none());
    assert!(daemonsets.get_opt(&gateway_name()).await.unwrap().is_some());
    // The CA is kept (looked up from the cluster); the certificates are new.
    let second_cert = secrets.get(&stream_secret).await.unwrap().data.unwrap()["tls.crt"].clone();
    let second_ca = secrets.get(&ca_secret).await.unwrap().data.unwrap()["ca.crt"].clone();
    assert_eq!(first_ca, second_ca, "the upgrade kept the CA");
    assert_ne!(
        first_cert, second_cert,
        "the upgrade renewed the certificate"
    );
    let server_ca = secrets.get(&stream_secret).await.unwrap().data.unwrap()["ca.crt"].clone();
    assert_eq!(server_ca, first_ca);

    helm.run(&["uninstall", RELEASE]).await;
    assert!(deployments
        .get_opt(&controller_name())
        .await
        .unwrap()
        .is_none());
    assert!(daemonsets.get_opt(&gateway_name()).await.unwrap().is_none());
    assert!(daemonsets.get_opt(&speaker_name()).await.unwrap().is_none());
    assert!(cluster_roles
        .get_opt(&speaker_name())
        .await
        .unwrap()
        .is_none());
    assert!(accounts.get_opt(&speaker_name()).await.unwrap().is_none());
    assert!(services.get_opt(&gateway_name()).await.unwrap().is_none());
    assert!(secrets.get_opt(&stream_secret).await.unwrap().is_none());
    assert!(cluster_roles
        .get_opt(&controller_name())
        .await
        .unwrap()
        .is_none());
    assert!(classes.get_opt("gatehouse").await.unwrap().is_none());
    assert!(ippools.get_opt("lan").await.unwrap().is_none());
    // CRDs stay, as Helm keeps them.
    assert!(crds
        .get_opt("ippools.gatehouse.dev")
        .await
        .unwrap()
        .is_some());

    if !helm.api.is_emulated() {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
        let _ = namespaces.delete(NAMESPACE, &Default::default()).await;
    }
}

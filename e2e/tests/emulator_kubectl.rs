//! The Kubernetes API emulator driven by a real kubectl v1.35 (installed by
//! scripts/install-tools.sh; or named by the KUBECTL environment variable).
//! Like the kube-rs suite, it runs against a real cluster instead when
//! GATEHOUSE_E2E_KUBECONFIG names a kubeconfig.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use gatehouse_e2e::emulator::TestApi;
use gatehouse_e2e::tools::kubectl_binary;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// kubectl bound to one API (emulator or real cluster) and one namespace.
struct Kubectl {
    binary: PathBuf,
    api: TestApi,
    namespace: String,
    /// Per-test discovery/HTTP cache, so tests never see each other's caches.
    cache: tempfile::TempDir,
}

impl Kubectl {
    async fn start(prefix: &str) -> Self {
        let binary = kubectl_binary();
        let api = TestApi::start().await.expect("start the API");
        let kubectl = Self {
            binary,
            api,
            namespace: format!("{prefix}-{}", std::process::id() % 100_000),
            cache: tempfile::tempdir().unwrap(),
        };
        // `create namespace` sends protobuf, like every kubectl generator.
        kubectl
            .ok(&["create", "namespace", &kubectl.namespace])
            .await;
        kubectl
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(self.api.kubeconfig())
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(["--namespace", &self.namespace, "--request-timeout", "20s"])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut command = self.command(args);
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = command.spawn().expect("run kubectl");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await.unwrap();
        }
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs kubectl and insists on success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.run(args, None).await;
        assert!(success, "kubectl {args:?} failed:\n{stderr}\n{stdout}");
        stdout
    }

    async fn apply(&self, manifest: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "--server-side", "-f", "-"];
        args.extend_from_slice(extra);
        let (success, stdout, stderr) = self.run(&args, Some(manifest)).await;
        assert!(success, "kubectl apply failed:\n{stderr}\n{stdout}");
        stdout
    }

    async fn get_json(&self, what: &[&str]) -> Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&args).await).unwrap()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        if self.api.is_emulated() {
            return;
        }
        // On a real cluster, remove what the test made (the emulator just goes away).
        let _ = std::process::Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(self.api.kubeconfig())
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .output();
    }
}

fn service_manifest(name: &str, port: u16) -> String {
    service_manifest_with(name, port, 8080)
}

fn service_manifest_with(name: &str, port: u16, target_port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  type: LoadBalancer
  selector:
    app: {name}
  ports:
  - name: http
    port: {port}
    targetPort: {target_port}
"
    )
}

#[tokio::test]
async fn kubectl_applies_gets_patches_and_deletes_services() {
    let k = Kubectl::start("kubectl-svc").await;
    let applied = k.apply(&service_manifest("web", 80), &[]).await;
    assert!(
        applied.contains("service/web serverside-applied"),
        "{applied}"
    );

    let table = k.ok(&["get", "services"]).await;
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.starts_with("NAME") && header.contains("AGE"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("web ")), "{table}");

    let svc = k.get_json(&["service", "web"]).await;
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert!(svc["spec"]["clusterIP"]
        .as_str()
        .is_some_and(|ip| !ip.is_empty()));

    // Re-applying a changed manifest updates the object.
    k.apply(&service_manifest("web", 8080), &[]).await;
    let svc = k.get_json(&["service", "web"]).await;
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);

    let patched = k
        .ok(&[
            "patch",
            "service",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"stage":"test"}}}"#,
        ])
        .await;
    assert!(patched.contains("service/web patched"), "{patched}");
    let status = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.7"}]}}}"#;
    k.ok(&[
        "patch",
        "service",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ])
    .await;
    let svc = k.get_json(&["service", "web"]).await;
    assert_eq!(svc["metadata"]["labels"]["stage"], "test");
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.7"
    );
    let external = k
        .ok(&[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])
        .await;
    assert_eq!(external, "192.0.2.7");

    let deleted = k.ok(&["delete", "service", "web"]).await;
    assert!(deleted.contains("\"web\" deleted"), "{deleted}");
    let (found, _, stderr) = k.run(&["get", "service", "web"], None).await;
    assert!(!found && stderr.contains("NotFound"), "{stderr}");
}

#[tokio::test]
async fn kubectl_applies_gets_patches_and_deletes_ingresses() {
    let k = Kubectl::start("kubectl-ing").await;
    let manifest = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
spec:
  ingressClassName: gatehouse
  rules:
  - host: site.example.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
";
    let applied = k.apply(manifest, &[]).await;
    assert!(
        applied.contains("ingress.networking.k8s.io/site serverside-applied"),
        "{applied}"
    );
    let table = k.ok(&["get", "ingress"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("site ") && l.contains("site.example.test")),
        "{table}"
    );

    k.ok(&[
        "patch",
        "ingress",
        "site",
        "--type=merge",
        "-p",
        r#"{"spec":{"ingressClassName":"other"}}"#,
    ])
    .await;
    let status = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.8"}]}}}"#;
    k.ok(&[
        "patch",
        "ingress",
        "site",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ])
    .await;
    let ingress = k.get_json(&["ingress", "site"]).await;
    assert_eq!(ingress["spec"]["ingressClassName"], "other");
    assert_eq!(
        ingress["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.8"
    );
    assert_eq!(ingress["metadata"]["generation"], 2);

    // An invalid Ingress is refused with the server's 422 message.
    let invalid = manifest.replace("        pathType: Prefix\n", "");
    let (accepted, _, stderr) = k
        .run(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&invalid),
        )
        .await;
    assert!(!accepted && stderr.contains("pathType"), "{stderr}");

    k.ok(&["delete", "ingress", "site"]).await;
    let list = k.get_json(&["ingress"]).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.e2e.gatehouse.dev
spec:
  group: e2e.gatehouse.dev
  scope: Namespaced
  names:
    plural: gizmos
    singular: gizmo
    kind: Gizmo
    shortNames: [gz]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
          status:
            type: object
            properties:
              ready:
                type: boolean
";

#[tokio::test]
async fn kubectl_manages_custom_resources() {
    let k = Kubectl::start("kubectl-crd").await;
    k.apply(WIDGET_CRD, &[]).await;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gizmos.e2e.gatehouse.dev",
        "--timeout=20s",
    ])
    .await;

    let gizmo = "apiVersion: e2e.gatehouse.dev/v1
kind: Gizmo
metadata:
  name: g1
spec:
  size: 3
";
    let applied = k.apply(gizmo, &[]).await;
    assert!(
        applied.contains("gizmo.e2e.gatehouse.dev/g1 serverside-applied"),
        "{applied}"
    );
    let table = k.ok(&["get", "gz"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, vec!["NAME", "SIZE", "AGE"], "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["g1", "3"])),
        "{table}"
    );

    k.ok(&[
        "patch",
        "gizmo",
        "g1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "gizmo",
        "g1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ])
    .await;
    let object = k.get_json(&["gizmo", "g1"]).await;
    assert_eq!(object["spec"]["size"], 5);
    assert_eq!(object["status"]["ready"], true);
    assert_eq!(object["metadata"]["generation"], 2);

    // A strategic merge patch (kubectl's default) is refused for custom resources.
    let (accepted, _, stderr) = k
        .run(
            &["patch", "gizmo", "g1", "-p", r#"{"spec":{"size":6}}"#],
            None,
        )
        .await;
    assert!(
        !accepted,
        "strategic merge patch on a CR should fail: {stderr}"
    );

    k.ok(&["delete", "gizmo", "g1"]).await;
    let (found, _, stderr) = k.run(&["get", "gizmo", "g1"], None).await;
    assert!(!found && stderr.contains("NotFound"), "{stderr}");
    if k.api.is_emulated() {
        k.ok(&["delete", "crd", "gizmos.e2e.gatehouse.dev"]).await;
        let (served, _, _) = k.run(&["get", "gizmos"], None).await;
        assert!(!served, "the resource type goes with its CRD");
    }
}

#[tokio::test]
async fn kubectl_server_side_apply_reports_conflicts_unless_forced() {
    let k = Kubectl::start("kubectl-ssa").await;
    k.apply(&service_manifest("web", 80), &[]).await;
    let intruding = service_manifest_with("web", 80, 9090);
    let (accepted, _, stderr) = k
        .run(
            &[
                "apply",
                "--server-side",
                "--field-manager=intruder",
                "-f",
                "-",
            ],
            Some(&intruding),
        )
        .await;
    assert!(!accepted && stderr.contains("conflict"), "{stderr}");
    assert!(stderr.contains("targetPort"), "{stderr}");
    k.apply(
        &intruding,
        &["--field-manager=intruder", "--force-conflicts"],
    )
    .await;
    let svc = k.get_json(&["service", "web"]).await;
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 9090);
    assert_eq!(svc["spec"]["ports"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn kubectl_get_watch_streams_added_modified_deleted() {
    let k = Kubectl::start("kubectl-watch").await;
    let mut watch = k
        .command(&["get", "services", "--watch", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl get -w");
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();

    // Each change waits for the previous one to show, so a slow-starting
    // watch cannot fold them into its initial listing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut events: Vec<String> = Vec::new();
    k.apply(&service_manifest("web", 80), &[]).await;
    wait_for_event(&mut lines, &mut events, "ADDED", deadline).await;
    k.ok(&[
        "patch",
        "service",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"x":"y"}}}"#,
    ])
    .await;
    wait_for_event(&mut lines, &mut events, "MODIFIED", deadline).await;
    k.ok(&["delete", "service", "web"]).await;
    wait_for_event(&mut lines, &mut events, "DELETED", deadline).await;
    watch.kill().await.unwrap();
    assert_eq!(events, vec!["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn kubectl_create_generators_work_although_they_send_protobuf() {
    let k = Kubectl::start("kubectl-create").await;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
    ])
    .await;
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ])
    .await;
    let secret = k.get_json(&["secret", "creds"]).await;
    assert_eq!(secret["data"]["user"], "YWRtaW4=");
    assert_eq!(secret["type"], "Opaque");
    let config_map = k.get_json(&["configmap", "settings"]).await;
    assert_eq!(config_map["data"]["mode"], "fast");
    k.ok(&["delete", "secret", "creds"]).await;
    let (found, _, _) = k.run(&["get", "secret", "creds"], None).await;
    assert!(!found);
}

/// Reads `kubectl get -w --output-watch-events` lines until the last event
/// about `web` is `wanted`.
async fn wait_for_event(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    events: &mut Vec<String>,
    wanted: &str,
    deadline: tokio::time::Instant,
) {
    while events.last().map(String::as_str) != Some(wanted) {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{wanted} in time; saw {events:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("kubectl get -w ended early; saw {events:?}"));
        let mut words = line.split_whitespace();
        if let (Some(event), Some("web")) = (words.next(), words.next()) {
            events.push(event.to_string());
        }
    }
}

//! The Kubernetes API emulator driven by a real helm v4 (installed by
//! scripts/install-tools.sh, or named by the HELM environment variable):
//! install, upgrade, list, history and uninstall of a small chart. Helm keeps
//! its releases in Secrets written as protobuf, so this also proves the
//! emulator decodes those. Runs against a real cluster instead when
//! GATEHOUSE_E2E_KUBECONFIG names a kubeconfig.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gatehouse_e2e::emulator::TestApi;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ListParams};
use tokio::process::Command;

/// `$HELM`, else the first helm v4 among /usr/local/bin and `$PATH`; the
/// test fails when there is none (CI installs it).
fn helm_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("HELM").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        assert!(is_helm_v4(&path), "HELM={} is not helm v4", path.display());
        return path;
    }
    let mut candidates = vec![PathBuf::from("/usr/local/bin/helm")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("helm")));
    }
    candidates
        .into_iter()
        .find(|c| is_helm_v4(c))
        .unwrap_or_else(|| {
            panic!(
                "no helm v4 found (looked at $HELM, /usr/local/bin and $PATH); install it with \
                 scripts/install-tools.sh"
            )
        })
}

fn is_helm_v4(path: &Path) -> bool {
    std::process::Command::new(path)
        .args(["version", "--short"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("v4."))
}

/// A chart with a Service and a ConfigMap whose port and value are settable.
fn write_chart(dir: &Path) {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "port: 80\ngreeting: hello\n").unwrap();
    std::fs::write(
        templates.join("service.yaml"),
        "apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: {{ .Values.port }}
",
    )
    .unwrap();
    std::fs::write(
        templates.join("configmap.yaml"),
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
",
    )
    .unwrap();
}

struct Helm {
    binary: PathBuf,
    api: TestApi,
    namespace: String,
    home: tempfile::TempDir,
}

impl Helm {
    async fn run(&self, args: &[&str]) -> String {
        let output = Command::new(&self.binary)
            .args(args)
            .arg("--kubeconfig")
            .arg(self.api.kubeconfig())
            .args(["--namespace", &self.namespace])
            // Keep helm's caches and config out of the user's home.
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_DATA_HOME", self.home.path().join("data"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .unwrap_or_else(|_| panic!("helm {args:?} timed out"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "helm {args:?} failed:\n{}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_a_chart() {
    let helm = Helm {
        binary: helm_binary(),
        api: TestApi::start().await.expect("start the API"),
        namespace: format!("helm-{}", std::process::id() % 100_000),
        home: tempfile::tempdir().unwrap(),
    };
    let chart = helm.home.path().join("probe");
    write_chart(&chart);
    let chart = chart.to_str().unwrap();
    let client = helm.api.client();
    let services: Api<Service> = Api::namespaced(client.clone(), &helm.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &helm.namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &helm.namespace);

    helm.run(&[
        "install",
        "demo",
        chart,
        "--create-namespace",
        "--wait=false",
    ])
    .await;
    let service = services.get("demo-web").await.unwrap();
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 80);
    let listed = helm.run(&["list", "-o", "json"]).await;
    assert!(
        listed.contains("\"name\":\"demo\"") && listed.contains("deployed"),
        "{listed}"
    );

    helm.run(&[
        "upgrade",
        "demo",
        chart,
        "--set",
        "port=8080",
        "--set",
        "greeting=hi",
    ])
    .await;
    let service = services.get("demo-web").await.unwrap();
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 8080);
    let settings = config_maps.get("demo-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["greeting"], "hi");
    let history = helm.run(&["history", "demo", "-o", "json"]).await;
    assert!(
        history.contains("superseded") && history.contains("\"revision\":2"),
        "{history}"
    );
    let releases = secrets
        .list(&ListParams::default().labels("owner=helm,name=demo"))
        .await
        .unwrap();
    assert_eq!(releases.items.len(), 2, "one release Secret per revision");

    helm.run(&["uninstall", "demo"]).await;
    assert!(services.get_opt("demo-web").await.unwrap().is_none());
    assert!(config_maps
        .get_opt("demo-settings")
        .await
        .unwrap()
        .is_none());
    let releases = secrets
        .list(&ListParams::default().labels("owner=helm,name=demo"))
        .await
        .unwrap();
    assert!(releases.items.is_empty());

    if !helm.api.is_emulated() {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
        let _ = namespaces
            .delete(&helm.namespace, &Default::default())
            .await;
    }
}

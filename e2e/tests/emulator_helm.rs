//! The Kubernetes API emulator driven by a real helm v4 (installed by
//! scripts/install-tools.sh, or named by the HELM environment variable):
//! install, upgrade, list, history and uninstall of a small chart. Helm keeps
//! its releases in Secrets written as protobuf, so this also proves the
//! emulator decodes those. Runs against a real cluster instead when
//! GATEHOUSE_E2E_KUBECONFIG names a kubeconfig.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gatehouse_e2e::emulator::TestApi;
use gatehouse_e2e::tools::run_helm;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ListParams};

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
    api: TestApi,
    namespace: String,
    home: tempfile::TempDir,
}

impl Helm {
    async fn run(&self, args: &[&str]) -> String {
        run_helm(
            self.api.kubeconfig(),
            &self.namespace,
            self.home.path(),
            args,
        )
        .await
    }
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_a_chart() {
    let helm = Helm {
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

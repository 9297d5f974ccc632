//! The parts of the simulated system that pods rely on. The API at its
//! in-cluster address: a pod and a node reach the emulator at 10.96.0.1:443
//! over HTTPS, verifying the emulator's certificate with the CA every
//! namespace's `kube-root-ca.crt` publishes, as an in-cluster client does.
//! Cluster DNS: Service names resolve through the hosts file a pod sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::{Cluster, ClusterConfig, Netns};
use gatehouse_e2e::emulator::{Emulator, EmulatorConfig, ROOT_CA_CONFIGMAP};
use gatehouse_e2e::local::binary;
use gatehouse_e2e::system::{in_cluster_api_address, ApiAccess, ClusterDns};
use gatehouse_e2e::tools::kubectl_binary;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use std::path::Path;

/// `kubectl get namespace default -o name` run inside `netns`; its stdout.
async fn kubectl_in(netns: &Netns, kubeconfig: &Path) -> String {
    let mut command = tokio::process::Command::from(netns.command(kubectl_binary()));
    let output = command
        .args(["get", "namespace", "default", "-o", "name"])
        .env("KUBECONFIG", kubeconfig)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl in {}: {}",
        netns.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_and_nodes_reach_the_api_at_its_in_cluster_address() {
    let address = in_cluster_api_address().unwrap();
    let emulator = Emulator::start_with(
        "127.0.0.1:0",
        EmulatorConfig {
            serve_tls: true,
            advertise_address: Some(address),
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let cluster = Cluster::new(ClusterConfig {
        nodes: 2,
        echo_binary: binary("gatehouse-echo").unwrap(),
    })
    .unwrap();
    let access = ApiAccess::serve(&cluster, emulator.addr()).unwrap();
    assert_eq!(access.address.to_string(), "10.96.0.1:443");
    let pod = cluster.add_pod("client", 1).unwrap();

    // The CA an in-cluster client trusts is the one a namespace publishes.
    let root_ca: Api<ConfigMap> = Api::namespaced(emulator.kube_client().unwrap(), "default");
    let published = root_ca.get(ROOT_CA_CONFIGMAP).await.unwrap();
    let ca = published.data.unwrap()["ca.crt"].clone();
    assert_eq!(ca, emulator.ca_pem());

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("in-cluster.kubeconfig");
    let yaml = emulator
        .kubeconfig_yaml()
        .replace(&emulator.url(), &format!("https://{address}"));
    assert!(yaml.contains("https://10.96.0.1:443"), "{yaml}");
    std::fs::write(&kubeconfig, yaml).unwrap();

    assert_eq!(
        kubectl_in(&pod.netns, &kubeconfig).await,
        "namespace/default"
    );
    assert_eq!(
        kubectl_in(cluster.node(0).netns(), &kubeconfig).await,
        "namespace/default"
    );
}

/// `getent hosts <name>` in a new mount namespace with `hosts` bind-mounted
/// at /etc/hosts, as a pod's sees it; the addresses printed.
async fn resolve_in_pod_view(hosts: &Path, name: &str) -> String {
    let script = format!(
        "mount --make-rprivate / && mount --bind {} /etc/hosts && getent hosts {name}",
        hosts.display()
    );
    let output = tokio::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn service_names_resolve_through_the_cluster_hosts_file_as_services_change() {
    let emulator = Emulator::start("127.0.0.1:0").await.unwrap();
    let client = emulator.kube_client().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dns = ClusterDns::start(client.clone(), dir.path()).unwrap();
    let hosts = dns.hosts_file().to_owned();

    // Already there: the control plane's own Service.
    wait_until(&hosts, |text| text.contains("kubernetes.default.svc")).await;
    assert_eq!(
        resolve_in_pod_view(&hosts, "kubernetes.default.svc.cluster.local").await,
        "10.96.0.1       kubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default"
    );

    // A Service created later resolves without restarting anything; deleted,
    // it no longer does.
    let services: Api<Service> = Api::namespaced(client, "default");
    let created = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let ip = created.spec.unwrap().cluster_ip.unwrap();
    wait_until(&hosts, |text| text.contains("web.default.svc")).await;
    let answer = resolve_in_pod_view(&hosts, "web.default.svc").await;
    assert!(answer.starts_with(&format!("{ip} ")), "{answer}");

    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_until(&hosts, |text| !text.contains("web.default.svc")).await;
    assert_eq!(resolve_in_pod_view(&hosts, "web.default.svc").await, "");
}

async fn wait_until(path: &Path, ready: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        if ready(&text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hosts file never got there:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

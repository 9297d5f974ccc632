//! What the emulator does as the control plane would, driven through its HTTP
//! API with kube-rs and kubectl: HTTPS with a CA that the `kube-root-ca.crt`
//! ConfigMaps publish, the `default/kubernetes` Service, the `default`
//! ServiceAccount of every namespace, the ServiceAccount admission of Pods,
//! and graceful Pod deletion.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gatehouse_kube_emulator::tools::kubectl_binary;
use gatehouse_kube_emulator::{
    Emulator, EmulatorConfig, KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_PORT, ROOT_CA_CONFIGMAP,
    SERVICE_ACCOUNT_MOUNT_PATH,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const STEP: Duration = Duration::from_secs(10);

async fn tls_emulator(advertise: Option<SocketAddr>) -> Emulator {
    Emulator::start_with(
        "127.0.0.1:0",
        EmulatorConfig {
            serve_tls: true,
            advertise_address: advertise,
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap()
}

/// A client that trusts only `ca_pem` and checks the certificate for
/// `server_name`, as an in-cluster client checks it for the Service's name.
fn client_trusting(emulator: &Emulator, ca_pem: &str, server_name: &str) -> Client {
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .unwrap()
        .to_vec();
    let mut config = kube::Config::new(emulator.url().parse().unwrap());
    config.root_cert = Some(vec![der]);
    config.tls_server_name = Some(server_name.to_string());
    Client::try_from(config).unwrap()
}

fn pod(name: &str, node: Option<&str>, extra_spec: serde_json::Value) -> Pod {
    let mut spec = json!({
        "containers": [
            {"name": "app", "image": "gatehouse/echo"},
            {"name": "sidecar", "image": "gatehouse/echo"},
        ],
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

#[tokio::test]
async fn the_emulator_serves_https_that_the_published_ca_verifies_for_the_service_names() {
    let emulator = tls_emulator(None).await;
    assert!(emulator.url().starts_with("https://127.0.0.1:"));
    let admin = emulator.kube_client().unwrap();
    let root_ca: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let published = root_ca.get(ROOT_CA_CONFIGMAP).await.unwrap();
    let ca = published.data.unwrap()["ca.crt"].clone();
    assert_eq!(ca, emulator.ca_pem());

    for name in [
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "kubernetes",
        KUBERNETES_SERVICE_IP,
    ] {
        let client = client_trusting(&emulator, &ca, name);
        let version = client.apiserver_version().await;
        assert!(version.is_ok(), "{name}: {version:?}");
    }
    let wrong_name = client_trusting(&emulator, &ca, "api.example.com");
    assert!(wrong_name.apiserver_version().await.is_err());
    // Another emulator's CA: a well-formed CA that did not sign this server.
    let other = tls_emulator(None).await;
    let other_ca = other.ca_pem().to_owned();
    let untrusted = client_trusting(&emulator, &other_ca, "kubernetes.default.svc");
    assert!(untrusted.apiserver_version().await.is_err());

    // kubectl reads the CA from the kubeconfig the emulator writes.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    // Off the test's runtime thread, which must keep serving the emulator.
    let output = tokio::process::Command::new(kubectl_binary())
        .args(["get", "namespace", "default", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("kubectl is needed (scripts/install-tools.sh)");
    assert!(
        output.status.success(),
        "kubectl over HTTPS: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "namespace/default"
    );
}

#[tokio::test]
async fn the_kubernetes_service_points_at_the_advertised_address() {
    let advertised: SocketAddr = "10.201.7.1:6443".parse().unwrap();
    let emulator = tls_emulator(Some(advertised)).await;
    let client = emulator.kube_client().unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service = services.get("kubernetes").await.unwrap();
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some(KUBERNETES_SERVICE_IP));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.port, i32::from(KUBERNETES_SERVICE_PORT));
    assert_eq!(port.name.as_deref(), Some("https"));

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let listed = slices
        .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let slice = &listed.items[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        slice.endpoints.as_ref().unwrap()[0].addresses,
        vec!["10.201.7.1".to_string()]
    );
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(6443));

    // The next Service gets another address: 10.96.0.1 is taken.
    let other: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    let created = services
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    let ip = created.spec.unwrap().cluster_ip.unwrap();
    assert_ne!(ip, KUBERNETES_SERVICE_IP);
    assert!(ip.starts_with("10.96."), "{ip}");
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    let emulator = tls_emulator(None).await;
    let client = emulator.kube_client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "fresh"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    for ns in ["default", "kube-system", "fresh"] {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        assert!(accounts.get("default").await.is_ok(), "{ns}");
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let root = maps.get(ROOT_CA_CONFIGMAP).await.unwrap();
        assert_eq!(root.data.unwrap()["ca.crt"], emulator.ca_pem(), "{ns}");
    }
}

#[tokio::test]
async fn pods_get_their_service_account_and_the_api_access_volume() {
    let emulator = tls_emulator(None).await;
    let client = emulator.kube_client().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");

    let created = pods
        .create(&PostParams::default(), &pod("plain", None, json!({})))
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let volumes = spec.volumes.unwrap();
    assert_eq!(volumes.len(), 1);
    let volume = &volumes[0];
    assert!(
        volume.name.starts_with("kube-api-access-"),
        "{}",
        volume.name
    );
    let sources = volume.projected.as_ref().unwrap().sources.as_ref().unwrap();
    let token = sources[0].service_account_token.as_ref().unwrap();
    assert_eq!(token.path, "token");
    assert_eq!(token.expiration_seconds, Some(3607));
    assert_eq!(
        sources[1].config_map.as_ref().unwrap().name,
        ROOT_CA_CONFIGMAP
    );
    let downward = sources[2].downward_api.as_ref().unwrap();
    assert_eq!(
        downward.items.as_ref().unwrap()[0]
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.namespace"
    );
    for container in &spec.containers {
        let mounts = container.volume_mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1, "{}", container.name);
        assert_eq!(mounts[0].name, volume.name);
        assert_eq!(mounts[0].mount_path, SERVICE_ACCOUNT_MOUNT_PATH);
        assert_eq!(mounts[0].read_only, Some(true));
    }

    // A ServiceAccount that turns automounting off; a Pod may turn it back on.
    let quiet: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "quiet"},
        "automountServiceAccountToken": false,
    }))
    .unwrap();
    accounts
        .create(&PostParams::default(), &quiet)
        .await
        .unwrap();
    let off = pods
        .create(
            &PostParams::default(),
            &pod("off", None, json!({"serviceAccountName": "quiet"})),
        )
        .await
        .unwrap();
    assert!(off.spec.unwrap().volumes.unwrap_or_default().is_empty());
    let on = pods
        .create(
            &PostParams::default(),
            &pod(
                "on",
                None,
                json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(on.spec.unwrap().volumes.unwrap().len(), 1);

    // A ServiceAccount that does not exist refuses the Pod.
    let refused = pods
        .create(
            &PostParams::default(),
            &pod("orphan", None, json!({"serviceAccountName": "nobody"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("expected an API error, got {refused:?}");
    };
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "pods \"orphan\" is forbidden: error looking up service account default/nobody: \
         serviceaccount \"nobody\" not found"
    );
}

#[tokio::test]
async fn a_pod_on_a_node_is_deleted_gracefully_and_goes_with_grace_zero() {
    let emulator = tls_emulator(None).await;
    let client = emulator.kube_client().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod(
            "running",
            Some("node-0"),
            json!({"terminationGracePeriodSeconds": 20}),
        ),
    )
    .await
    .unwrap();
    let created = pods.get("running").await.unwrap();
    let mut watch = pods
        .watch(
            &WatchParams::default().fields("metadata.name=running"),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    let answer = pods
        .delete("running", &DeleteParams::default())
        .await
        .unwrap();
    let marked = answer.left().expect("a graceful deletion returns the Pod");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(20));
    let deadline = marked.metadata.deletion_timestamp.clone().unwrap().0;
    let lead = deadline.as_second() - jiff::Timestamp::now().as_second();
    assert!((18..=21).contains(&lead), "deadline {lead} s ahead");
    let still_there = pods.get("running").await.unwrap();
    assert!(still_there.metadata.deletion_timestamp.is_some());
    let event = tokio::time::timeout(STEP, watch.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, WatchEvent::Modified(p) if p.metadata.deletion_timestamp.is_some()),
        "{event:?}"
    );

    // The kubelet's status writes while it stops the containers keep the
    // Pod (it has no finalizers, but is still in its grace period).
    let status = json!({"status": {"phase": "Running"}});
    pods.patch_status("running", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let after_status = pods.get("running").await.unwrap();
    assert_eq!(
        after_status.metadata.deletion_grace_period_seconds,
        Some(20)
    );

    // A longer grace period does not postpone it; a shorter one brings it
    // forward.
    let longer = pods
        .delete("running", &DeleteParams::default().grace_period(60))
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(longer.metadata.deletion_grace_period_seconds, Some(20));
    let shorter = pods
        .delete("running", &DeleteParams::default().grace_period(5))
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(shorter.metadata.deletion_grace_period_seconds, Some(5));

    // The query parameter works as the body field does; a bad one is a 400
    // that leaves the Pod as it was.
    let path = "/api/v1/namespaces/default/pods/running?gracePeriodSeconds=";
    let request = |value: &str| {
        http::Request::delete(format!("{path}{value}"))
            .body(Vec::new())
            .unwrap()
    };
    let bad = client.request_text(request("soon")).await.unwrap_err();
    let kube::Error::Api(status) = bad else {
        panic!("expected an API error, got {bad:?}");
    };
    assert_eq!(status.code, 400, "{}", status.message);
    assert!(
        status.message.contains("gracePeriodSeconds"),
        "{}",
        status.message
    );
    let unchanged = pods.get("running").await.unwrap();
    assert_eq!(unchanged.metadata.deletion_grace_period_seconds, Some(5));
    client.request_text(request("2")).await.unwrap();
    let by_query = pods.get("running").await.unwrap();
    assert_eq!(by_query.metadata.deletion_grace_period_seconds, Some(2));

    // What a kubelet does once the containers stopped.
    let gone = pods
        .delete("running", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(gone.is_right(), "grace 0 removes the Pod");
    assert!(pods.get_opt("running").await.unwrap().is_none());
    let event = tokio::time::timeout(STEP, async {
        loop {
            match watch.try_next().await.unwrap().unwrap() {
                WatchEvent::Deleted(p) => return p,
                WatchEvent::Modified(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(event.name_any(), "running");

    // A Pod no node runs goes at once.
    pods.create(&PostParams::default(), &pod("pending", None, json!({})))
        .await
        .unwrap();
    let answer = pods
        .delete("pending", &DeleteParams::default())
        .await
        .unwrap();
    assert!(answer.is_right());
    assert!(pods.get_opt("pending").await.unwrap().is_none());
}

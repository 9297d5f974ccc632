//! The `kube-emulator` binary: it writes a kubeconfig, prints its URL, and
//! serves the API that kubeconfig points at.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

const STEP: Duration = Duration::from_secs(10);

#[tokio::test]
async fn kube_emulator_binary_serves_the_kubeconfig_it_writes() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kube-emulator");
    let stdout = child.stdout.take().unwrap();
    let url = tokio::time::timeout(STEP, tokio::io::BufReader::new(stdout).lines().next_line())
        .await
        .expect("the emulator to print its URL")
        .unwrap()
        .expect("a line with the URL");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let loaded = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    assert_eq!(
        loaded.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .server
            .as_deref(),
        Some(url.as_str())
    );
    let config = kube::Config::from_custom_kubeconfig(loaded, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");
    child.kill().await.unwrap();
}

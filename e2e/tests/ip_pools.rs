//! IPPools through the API as users write them: the chart's CRD installs,
//! `kubectl apply` refuses a malformed pool with a readable message, and
//! accepts MetalLB-shaped pools converted by `gatehouse-crds convert-metallb`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::emulator::TestApi;
use gatehouse_e2e::tools::kubectl_binary;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kubectl(api: &TestApi, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(kubectl_binary());
    cmd.arg("--kubeconfig")
        .arg(api.kubeconfig())
        .arg("--cache-dir")
        .arg(cache.path())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn install_crds(api: &TestApi) {
    let crds = workspace().join("charts/gatehouse/crds");
    let out = kubectl(
        api,
        &["apply", "--server-side", "-f", crds.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl(
        api,
        &[
            "wait",
            "--for=condition=Established",
            "crd/ippools.gatehouse.dev",
            "--timeout=20s",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_refuses_a_malformed_pool_with_a_readable_message() {
    let api = TestApi::start().await.unwrap();
    install_crds(&api);
    let cases = [
        (
            "not_an_address",
            "addresses: [192.0.2.0/24, office-network]",
            "each address must be a CIDR",
        ),
        (
            "mixed_family_range",
            "addresses: [192.0.2.1-2001:db8::1]",
            "range of two addresses of one family",
        ),
        (
            "no_addresses",
            "addresses: []",
            "should have at least 1 items",
        ),
        (
            "negative_priority",
            "addresses: [192.0.2.0/24]\n  serviceAllocation: {priority: -1}",
            "greater than or equal to 0",
        ),
    ];
    for (name, spec, says) in cases {
        let pool = format!(
            "apiVersion: gatehouse.dev/v1alpha1\nkind: IPPool\nmetadata: {{name: {}}}\nspec:\n  {spec}\n",
            name.replace('_', "-")
        );
        let out = kubectl(&api, &["apply", "-f", "-"], Some(&pool));
        assert!(!out.status.success(), "{name} accepted");
        let said = text(&out);
        assert!(said.contains(says), "{name}: {said}");
        assert!(said.contains("is invalid"), "{name}: {said}");
    }
    let good = "apiVersion: gatehouse.dev/v1alpha1\nkind: IPPool\nmetadata: {name: lan}\nspec:\n  addresses: [192.0.2.0/24, 2001:db8::/120, 198.51.100.10 - 198.51.100.20]\n";
    let out = kubectl(&api, &["apply", "-f", "-"], Some(good));
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl(&api, &["get", "ippools"], None);
    let listed = text(&out);
    assert!(
        listed.contains("lan") && listed.contains("AUTO ASSIGN"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn converted_metallb_pools_apply_as_ippools() {
    let api = TestApi::start().await.unwrap();
    install_crds(&api);
    let metallb = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: first-pool, namespace: metallb-system}\nspec:\n  addresses: [192.168.10.0/24, 192.168.9.1-192.168.9.5, fc00:f853:ccd:e799::/124]\n  avoidBuggyIPs: true\n  serviceAllocation:\n    priority: 50\n    namespaces: [shop]\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\n";
    let mut convert = Command::new(gatehouse_e2e::local::binary("gatehouse-crds").unwrap())
        .arg("convert-metallb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    convert
        .stdin
        .take()
        .unwrap()
        .write_all(metallb.as_bytes())
        .unwrap();
    let out = convert.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("skipped metallb.io/v1beta1 L2Advertisement l2"));
    let pools = String::from_utf8(out.stdout).unwrap();
    let applied = kubectl(&api, &["apply", "-f", "-"], Some(&pools));
    assert!(applied.status.success(), "{}\n{pools}", text(&applied));
    let got = kubectl(
        &api,
        &[
            "get",
            "ippool",
            "first-pool",
            "-o",
            "jsonpath={.spec.serviceAllocation.priority} {.spec.avoidBuggyIPs}",
        ],
        None,
    );
    assert_eq!(text(&got), "50 true");
}

//! A TLS scanner (testssl.sh, Debian package `testssl.sh`) against the
//! gateway's HTTPS listener: only TLS 1.2 and 1.3, no weak cipher
//! categories, ALPN offers h2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::local::{service_manifest, EchoPod, LocalGateway};
use gatehouse_e2e::tls::{tls_secret, TestCa};
use std::collections::BTreeMap;
use std::process::Command;

fn testssl() -> &'static str {
    for candidate in ["testssl", "testssl.sh"] {
        if Command::new(candidate).arg("--version").output().is_ok() {
            return candidate;
        }
    }
    panic!("testssl is not installed: apt-get install testssl.sh (.ci/run does)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scanner_finds_only_modern_tls() {
    let scanner = testssl();
    let web = EchoPod::start("web", "web-1").unwrap();
    let lg = LocalGateway::start(&[]).await.unwrap();
    let ca = TestCa::new().unwrap();
    let cert = ca.issue(&["scan.test"]).unwrap();
    let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: scan}\nspec:\n  ingressClassName: gatehouse\n  tls:\n  - {hosts: [scan.test], secretName: scan}\n  rules:\n  - host: scan.test\n    http:\n      paths:\n      - {pathType: Prefix, path: /, backend: {service: {name: web, port: {number: 80}}}}\n";
    lg.write(
        "scan.yaml",
        &[
            service_manifest("web", &[(&web, true)]),
            tls_secret("scan", &cert),
            ingress.to_owned(),
        ]
        .join("\n---\n"),
    )
    .unwrap();
    lg.eventually("scan.test", "/", |r| r.status == 308).await;

    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("scan.json");
    let target = format!("https://scan.test:{}", lg.https.port());
    let output = Command::new(scanner)
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--openssl-timeout",
            "10",
        ])
        .args(["--ip", "127.0.0.1", "-p", "-s", "--jsonfile"])
        .arg(&json)
        .arg(&target)
        .output()
        .expect("running testssl");
    let text = String::from_utf8_lossy(&output.stdout);
    if std::env::var_os("GATEHOUSE_PRINT_SCAN").is_some() {
        println!(
            "{}",
            String::from_utf8_lossy(&std::fs::read(&json).unwrap_or_default())
        );
    }
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
            .unwrap_or_else(|e| panic!("no JSON from testssl ({e}):\n{text}"));
    let by_id: BTreeMap<String, String> = findings
        .iter()
        .filter_map(|f| {
            Some((
                f["id"].as_str()?.to_owned(),
                f["finding"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let finding = |id: &str| {
        by_id
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("testssl reported no {id}:\n{text}"))
    };
    for id in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(
            finding(id).starts_with("not offered"),
            "{id}: {}",
            finding(id)
        );
    }
    for id in ["TLS1_2", "TLS1_3"] {
        assert!(finding(id).starts_with("offered"), "{id}: {}", finding(id));
    }
    for id in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE", // obsolete CBC suites
    ] {
        assert!(
            finding(id).starts_with("not offered"),
            "{id}: {}",
            finding(id)
        );
    }
    assert!(
        finding("cipherlist_STRONG").starts_with("offered"),
        "{}",
        finding("cipherlist_STRONG")
    );
    let alpn = finding("ALPN_HTTP2");
    assert!(alpn.contains("h2"), "ALPN: {alpn}");
}

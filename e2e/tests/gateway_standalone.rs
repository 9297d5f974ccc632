//! The gateway on its own: serving from `--snapshot-file`, refusing a bad
//! one, and readiness before any snapshot exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::client::TestClient;
use gatehouse_e2e::cluster::NsProcess;
use gatehouse_e2e::local::{binary, free_addrs, refusing_addr, snapshot_frame, EchoPod};
use std::process::Command;
use std::time::Duration;

fn gateway(args: &[&str]) -> NsProcess {
    let mut cmd = Command::new(binary("gatehouse-gateway").unwrap());
    cmd.env("NO_COLOR", "1").args(args);
    NsProcess::spawn("gatehouse-gateway", cmd).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_snapshot_file() {
    let echo = EchoPod::start("web", "web-1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.json");
    std::fs::write(&path, snapshot_frame("file.test", echo.addr)).unwrap();
    let [http, admin] = free_addrs::<2>().unwrap();
    let gw = gateway(&[
        "--snapshot-file",
        path.to_str().unwrap(),
        "--http-addr",
        &http.to_string(),
        "--admin-addr",
        &admin.to_string(),
    ]);
    let client = TestClient::http1();
    let mut last = None;
    for _ in 0..200 {
        if let Ok(r) = client.get(http, "file.test", "/x", &[]).await {
            last = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = last.unwrap_or_else(|| panic!("gateway never answered:\n{}", gw.output()));
    assert_eq!(r.who(), "web/web-1");
    let ready = client.get(admin, "a", "/readyz", &[]).await.unwrap();
    assert_eq!(ready.status, 200);
    assert!(String::from_utf8_lossy(&ready.body).contains("42"));
}

#[test]
fn refuses_a_broken_snapshot_file_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("not_json", "{ nope", "snapshot is not valid JSON"),
        (
            "dangling_backend",
            r#"{"version": 1, "snapshot": {"default_backend": "x/y:1", "backends": {}, "virtual_hosts": []}}"#,
            "does not define",
        ),
    ];
    for (name, content, want) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, content).unwrap();
        let out = Command::new(binary("gatehouse-gateway").unwrap())
            .env("NO_COLOR", "1")
            .args(["--snapshot-file", path.to_str().unwrap()])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(["--admin-addr", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {name}: started anyway");
        assert!(stderr.contains(want), "case {name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}.json")),
            "case {name}: names the file: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_a_first_snapshot_arrives() {
    let [http, admin] = free_addrs::<2>().unwrap();
    let (controller, _refusing) = refusing_addr().unwrap();
    let _gw = gateway(&[
        "--controller",
        &format!("http://{controller}"),
        "--http-addr",
        &http.to_string(),
        "--admin-addr",
        &admin.to_string(),
    ]);
    let client = TestClient::http1();
    let mut health = None;
    for _ in 0..200 {
        if let Ok(r) = client.get(admin, "a", "/healthz", &[]).await {
            health = Some(r.status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(health, Some(200), "live without a controller");
    let ready = client.get(admin, "a", "/readyz", &[]).await.unwrap();
    assert_eq!(ready.status, 503, "not ready without a snapshot");
}

#[test]
fn rejects_a_controller_url_that_is_not_http_host_port() {
    let cases = [
        ("127.0.0.1:1", "http://HOST:PORT"),
        ("http://127.0.0.1", "http://HOST:PORT"),
        ("ftp://127.0.0.1:1", "http://HOST:PORT"),
        // https needs the mutual TLS files, and names the ones missing.
        (
            "https://127.0.0.1:1",
            "missing: --controller-ca, --controller-client-cert, --controller-client-key",
        ),
    ];
    for (url, want) in cases {
        let out = Command::new(binary("gatehouse-gateway").unwrap())
            .args([
                "--controller",
                url,
                "--http-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{url}: {stderr}");
    }
}

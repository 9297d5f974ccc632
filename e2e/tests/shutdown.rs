//! SIGTERM: the gateway keeps serving through `--shutdown-grace`, then stops
//! accepting, closes idle keep-alive connections, lets a request in flight
//! finish, and exits once no connection is left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::local::{service_manifest, EchoPod, LocalGateway};
use gatehouse_e2e::raw_http::Conn;
use std::time::{Duration, Instant};

const HOST: &str = "drain.test";

fn ingress() -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: drain}}\nspec:\n  \
         ingressClassName: gatehouse\n  rules:\n  - host: {HOST}\n    http:\n      paths:\n      \
         - {{pathType: Prefix, path: /, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_serves_through_the_grace_then_drains_and_exits() {
    let web = EchoPod::start("web", "web-1").unwrap();
    let mut lg = LocalGateway::start(&["--shutdown-grace", "1s", "--shutdown-drain", "20s"])
        .await
        .unwrap();
    lg.write(
        "w.yaml",
        &[service_manifest("web", &[(&web, true)]), ingress()].join("\n---\n"),
    )
    .unwrap();
    lg.eventually(HOST, "/", |r| r.status == 200).await;

    // An idle keep-alive connection, and one with a slow request in flight.
    let mut idle = Conn::connect(lg.http).await.unwrap();
    idle.send(get("/warm")).await.unwrap();
    assert_eq!(idle.read_response("GET").await.unwrap().status, 200);
    let mut slow = Conn::connect(lg.http).await.unwrap();
    slow.send(get("/slow?delay_ms=2500")).await.unwrap();

    // Both connections are counted as open.
    let open = lg
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_gateway_open_connections "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(open.is_some_and(|n| n >= 2.0), "open connections: {open:?}");

    let signalled = Instant::now();
    sigterm(lg.gateway.pid());

    // Within the grace period new connections are still served.
    let mut during = Conn::connect(lg.http).await.unwrap();
    during.send(get("/during-grace")).await.unwrap();
    let r = during.read_response("GET").await.unwrap();
    assert_eq!(r.status, 200, "served during the grace period");
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "the check ran inside the grace"
    );

    // After it, the idle connection is closed without a request...
    idle.expect_closed().await.unwrap();
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "closed only after the grace"
    );

    // ...new connections are refused (once the accept loop has seen the
    // shutdown, which races with the idle connection's close)...
    let refused_by = Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(lg.http).await.is_ok() {
        assert!(
            Instant::now() < refused_by,
            "still accepting after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // ...and the request in flight completes, told that the connection closes.
    let r = slow.read_response("GET").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.has_token("connection", "close"), "{r:?}");
    slow.expect_closed().await.unwrap();

    // With no connection left the gateway exits well before the drain limit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lg.gateway.is_running() {
        assert!(
            Instant::now() < deadline,
            "gateway still running:\n{}",
            lg.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        lg.logs().contains("all connections closed"),
        "{}",
        lg.logs()
    );
}

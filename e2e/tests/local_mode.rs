//! The routing path end to end in local mode: the real controller and
//! gateway binaries on ephemeral loopback ports, echo backends as pods.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::client::{h2c_get, Reply};
use gatehouse_e2e::local::{
    endpoint_slice, refusing_addr, service_manifest, EchoPod, LocalGateway,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn ingress(name: &str, rules: &[(&str, &str, &str, &str)]) -> String {
    // rules: (host, pathType, path, service)
    let mut by_host: BTreeMap<&str, Vec<(&str, &str, &str)>> = BTreeMap::new();
    for (h, t, p, s) in rules {
        by_host.entry(h).or_default().push((t, p, s));
    }
    let mut out = format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n");
    for (host, paths) in by_host {
        out += &format!("  - host: \"{host}\"\n    http:\n      paths:\n");
        for (t, p, s) in paths {
            out += &format!("      - {{pathType: {t}, path: \"{p}\", backend: {{service: {{name: {s}, port: {{number: 80}}}}}}}}\n");
        }
    }
    out
}

fn join(docs: &[String]) -> String {
    docs.join("\n---\n")
}

/// A gateway with one echo pod (service `web`, pod `web-1`) routed for
/// `host`, ready to serve it.
async fn one_route(host: &str) -> (EchoPod, LocalGateway) {
    let web = EchoPod::start("web", "web-1").unwrap();
    let lg = LocalGateway::start(&[]).await.unwrap();
    lg.write(
        "w.yaml",
        &join(&[
            service_manifest("web", &[(&web, true)]),
            ingress("w", &[(host, "Prefix", "/", "web")]),
        ]),
    )
    .unwrap();
    lg.eventually(host, "/", |r| r.status == 200).await;
    (web, lg)
}

fn who(r: &Reply) -> String {
    r.who()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_by_host_and_path() {
    let web = EchoPod::start("web", "web-1").unwrap();
    let api = EchoPod::start("api", "api-1").unwrap();
    let lg = LocalGateway::start(&[]).await.unwrap();
    lg.write(
        "apps.yaml",
        &join(&[
            service_manifest("web", &[(&web, true)]),
            service_manifest("api", &[(&api, true)]),
        ]),
    )
    .unwrap();
    lg.write(
        "ingress.yaml",
        &ingress(
            "shop",
            &[
                ("shop.example.com", "Prefix", "/", "web"),
                ("shop.example.com", "Prefix", "/api", "api"),
                ("shop.example.com", "Exact", "/api/health", "web"),
                ("*.apps.example.com", "Prefix", "/", "api"),
            ],
        ),
    )
    .unwrap();
    lg.eventually("shop.example.com", "/", |r| r.status == 200)
        .await;
    let cases = [
        ("root_goes_to_web", "shop.example.com", "/", "web/web-1"),
        ("prefix_api", "shop.example.com", "/api/users", "api/api-1"),
        (
            "exact_beats_prefix",
            "shop.example.com",
            "/api/health",
            "web/web-1",
        ),
        (
            "not_a_string_prefix",
            "shop.example.com",
            "/apix",
            "web/web-1",
        ),
        (
            "host_case_and_port_ignored",
            "SHOP.example.com:8080",
            "/api",
            "api/api-1",
        ),
        ("wildcard_host", "x.apps.example.com", "/", "api/api-1"),
        (
            "wildcard_one_label_only",
            "a.b.apps.example.com",
            "/",
            "status 404",
        ),
        ("unknown_host_404", "other.example.com", "/", "status 404"),
    ];
    for (case, host, path, want) in cases {
        let r = lg.get(host, path).await;
        assert_eq!(who(&r), want, "case {case}\n{}", lg.logs());
    }
    // The echo saw the path as sent and the Host preserved.
    let echo = lg
        .get("shop.example.com", "/api/users?x=1")
        .await
        .echo()
        .unwrap();
    assert_eq!(
        (echo.path.as_str(), echo.query.as_str(), echo.host.as_str()),
        ("/api/users", "x=1", "shop.example.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_robin_reaches_every_endpoint() {
    let pods: Vec<EchoPod> = (0..3)
        .map(|i| EchoPod::start("web", &format!("web-{i}")).unwrap())
        .collect();
    let lg = LocalGateway::start(&[]).await.unwrap();
    let refs: Vec<(&EchoPod, bool)> = pods.iter().map(|p| (p, true)).collect();
    lg.write(
        "web.yaml",
        &join(&[
            service_manifest("web", &refs),
            ingress("web", &[("", "Prefix", "/", "web")]),
        ]),
    )
    .unwrap();
    lg.eventually("any", "/", |r| r.status == 200).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        *seen.entry(who(&lg.get("any", "/").await)).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.keys().all(|k| k.starts_with("web/web-")), "{seen:?}");
    // Strict rotation over sequential requests: equal shares.
    assert!(seen.values().all(|&n| n == 10), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn error_statuses_404_503_502_504() {
    let slow = EchoPod::start("slow", "slow-1").unwrap();
    let unready = EchoPod::start("empty", "empty-1").unwrap();
    let (dead, _refusing) = refusing_addr().unwrap(); // bound, never listening
    let lg = LocalGateway::start(&["--upstream-read-timeout", "500ms"])
        .await
        .unwrap();
    let dead_svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: dead}}\nspec:\n  ports: [{{name: http, port: 80}}]\n{}",
        endpoint_slice("dead", "dead-1", dead, true)
    );
    lg.write(
        "all.yaml",
        &join(&[
            service_manifest("slow", &[(&slow, true)]),
            service_manifest("empty", &[(&unready, false)]),
            dead_svc,
            ingress(
                "errors",
                &[
                    ("e.test", "Prefix", "/slow", "slow"),
                    ("e.test", "Prefix", "/empty", "empty"),
                    ("e.test", "Prefix", "/dead", "dead"),
                    ("e.test", "Prefix", "/missing", "no-such-service"),
                ],
            ),
        ]),
    )
    .unwrap();
    lg.eventually("e.test", "/slow", |r| r.status == 200).await;
    let cases = [
        ("no_rule_404", "/nothing", 404),
        ("no_ready_endpoint_503", "/empty", 503),
        ("missing_service_503", "/missing", 503),
        ("unreachable_endpoint_502", "/dead", 502),
        ("upstream_timeout_504", "/slow?delay_ms=3000", 504),
        ("fast_enough_200", "/slow?delay_ms=10", 200),
    ];
    for (case, path, want) in cases {
        let r = lg.get("e.test", path).await;
        assert_eq!(r.status, want, "case {case}: {:?}\n{}", r.body, lg.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_failure_is_retried_on_another_endpoint() {
    let live = EchoPod::start("mixed", "live").unwrap();
    let (dead, _refusing) = refusing_addr().unwrap();
    let lg = LocalGateway::start(&[]).await.unwrap();
    let svc = format!(
        "{}{}",
        service_manifest("mixed", &[(&live, true)]),
        endpoint_slice("mixed", "dead", dead, true)
    );
    lg.write(
        "m.yaml",
        &join(&[svc, ingress("m", &[("", "Prefix", "/", "mixed")])]),
    )
    .unwrap();
    lg.eventually("m", "/", |r| r.status == 200).await;
    for i in 0..20 {
        let r = lg.get("m", "/").await;
        assert_eq!(who(&r), "mixed/live", "request {i}\n{}", lg.logs());
    }
    assert!(lg
        .metrics()
        .await
        .contains("gatehouse_gateway_upstream_retries_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarding_headers_and_request_id() {
    let (_web, lg) = one_route("h.test").await;
    let r = lg.get("h.test", "/").await.echo().unwrap();
    let h = |k: &str| r.headers.get(k).cloned().unwrap_or_default();
    assert_eq!(h("x-forwarded-for"), "127.0.0.1");
    assert_eq!(h("x-real-ip"), "127.0.0.1");
    assert_eq!(h("x-forwarded-proto"), "http");
    assert_eq!(h("x-forwarded-host"), "h.test");
    assert_eq!(h("x-forwarded-port"), lg.http.port().to_string());
    assert_eq!(r.host, "h.test");
    let id = h("x-request-id");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?}"
    );

    let sent = lg
        .client
        .get(
            lg.http,
            "h.test",
            "/",
            &[
                ("x-request-id", "client-chosen-1"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await
        .unwrap()
        .echo()
        .unwrap();
    assert_eq!(sent.headers["x-request-id"], "client-chosen-1");
    assert_eq!(sent.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(
        sent.headers["x-forwarded-proto"], "http",
        "a client cannot claim https"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleartext_http2_with_prior_knowledge() {
    let (_web, lg) = one_route("h2.test").await;
    let r = h2c_get(lg.http, "h2.test", "/over-h2").await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let echo = r.echo().unwrap();
    assert_eq!(echo.service, "web");
    assert_eq!(echo.path, "/over-h2");
    assert_eq!(
        echo.host, "h2.test",
        "HTTP/1.1 upstream gets Host from :authority"
    );
    let miss = h2c_get(lg.http, "nope.test", "/").await.unwrap();
    assert_eq!(miss.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_edit_under_load_switches_with_zero_failures() {
    let v1 = EchoPod::start("v1", "v1-pod").unwrap();
    let v2 = EchoPod::start("v2", "v2-pod").unwrap();
    let lg = LocalGateway::start(&[]).await.unwrap();
    let apps = join(&[
        service_manifest("v1", &[(&v1, true)]),
        service_manifest("v2", &[(&v2, true)]),
    ]);
    lg.write("apps.yaml", &apps).unwrap();
    lg.write(
        "route.yaml",
        &ingress("r", &[("load.test", "Prefix", "/", "v1")]),
    )
    .unwrap();
    lg.eventually("load.test", "/", |r| r.who() == "v1/v1-pod")
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (ok, saw_v2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, http) = (lg.client.clone(), lg.http);
            let (stop, failures, ok, saw_v2) =
                (stop.clone(), failures.clone(), ok.clone(), saw_v2.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = match client.get(http, "load.test", "/", &[]).await {
                        Ok(r) => r,
                        Err(e) => {
                            failures.lock().unwrap().push(e.to_string());
                            continue;
                        }
                    };
                    match r.who().as_str() {
                        "v1/v1-pod" => {}
                        "v2/v2-pod" => {
                            saw_v2.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures
                            .lock()
                            .unwrap()
                            .push(format!("{other}: {:?}", r.body)),
                    }
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Edit in place (not a rename), as an editor saving the file would.
    std::fs::write(
        lg.dir.path().join("route.yaml"),
        ingress("r", &[("load.test", "Prefix", "/", "v2")]),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while saw_v2.load(Ordering::Relaxed) < 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        ok.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    assert!(
        saw_v2.load(Ordering::Relaxed) >= 200,
        "switch not observed\n{}",
        lg.logs()
    );
    // After the switch, only v2 answers.
    for _ in 0..10 {
        assert_eq!(lg.get("load.test", "/").await.who(), "v2/v2-pod");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_manifest_affects_nothing_else() {
    let a = EchoPod::start("a", "a-1").unwrap();
    let b = EchoPod::start("b", "b-1").unwrap();
    let lg = LocalGateway::start(&[]).await.unwrap();
    lg.write(
        "a.yaml",
        &join(&[
            service_manifest("a", &[(&a, true)]),
            ingress("a", &[("a.test", "Prefix", "/", "a")]),
        ]),
    )
    .unwrap();
    lg.eventually("a.test", "/", |r| r.status == 200).await;

    // A new file that never parsed: reported with path and line, skipped.
    lg.write(
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    // A good change made after it still applies.
    lg.write(
        "b.yaml",
        &join(&[
            service_manifest("b", &[(&b, true)]),
            ingress("b", &[("b.test", "Prefix", "/", "b")]),
        ]),
    )
    .unwrap();
    assert_eq!(
        lg.eventually("b.test", "/", |r| r.status == 200)
            .await
            .who(),
        "b/b-1",
        "{}",
        lg.logs()
    );
    assert_eq!(lg.get("a.test", "/").await.who(), "a/a-1");
    let logs = lg.controller.output();
    assert!(
        logs.contains("broken.yaml:"),
        "error names the file and line:\n{logs}"
    );

    // A served file broken by an edit keeps serving its last good version.
    lg.write(
        "a.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lg.get("a.test", "/").await.who(), "a/a-1", "{}", lg.logs());
    assert_eq!(lg.get("b.test", "/").await.who(), "b/b-1");
    // An invalid rule in an otherwise valid Ingress drops only that rule.
    lg.write(
        "c.yaml",
        &ingress(
            "c",
            &[
                ("c.test", "Prefix", "/ok", "b"),
                ("c.test", "Prefix", "relative", "b"),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        lg.eventually("c.test", "/ok", |r| r.status == 200)
            .await
            .who(),
        "b/b-1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_keeps_serving_when_controller_dies_and_follows_its_return() {
    let a = EchoPod::start("a", "a-1").unwrap();
    let b = EchoPod::start("b", "b-1").unwrap();
    let mut lg = LocalGateway::start(&[]).await.unwrap();
    lg.write(
        "apps.yaml",
        &join(&[
            service_manifest("a", &[(&a, true)]),
            service_manifest("b", &[(&b, true)]),
        ]),
    )
    .unwrap();
    lg.write("r.yaml", &ingress("r", &[("k.test", "Prefix", "/", "a")]))
        .unwrap();
    lg.eventually("k.test", "/", |r| r.status == 200).await;

    lg.controller.kill();
    for i in 0..20 {
        assert_eq!(
            lg.get("k.test", "/").await.who(),
            "a/a-1",
            "request {i} after controller death"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ready = lg
        .client
        .get(lg.admin, "admin", "/readyz", &[])
        .await
        .unwrap();
    assert_eq!(ready.status, 200, "still ready on the last snapshot");
    assert!(lg
        .metrics()
        .await
        .contains("gatehouse_gateway_controller_connected 0"));

    // A new controller on the same address with changed manifests: the
    // gateway reconnects and follows it.
    lg.write("r.yaml", &ingress("r", &[("k.test", "Prefix", "/", "b")]))
        .unwrap();
    let mut cmd =
        std::process::Command::new(gatehouse_e2e::local::binary("gatehouse-controller").unwrap());
    cmd.arg("--manifests")
        .arg(lg.dir.path())
        .args(["--snapshot-addr", &lg.snapshot.to_string()])
        .args(["--admin-addr", "127.0.0.1:0"]);
    lg.controller = gatehouse_e2e::cluster::NsProcess::spawn("gatehouse-controller", cmd).unwrap();
    let r = lg.eventually("k.test", "/", |r| r.who() == "b/b-1").await;
    assert_eq!(r.who(), "b/b-1", "{}", lg.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_requests_by_host_status_and_backend() {
    let (_web, lg) = one_route("m.test").await;
    for _ in 0..5 {
        assert_eq!(lg.get("m.test", "/").await.status, 200);
    }
    assert_eq!(lg.get("m.test", "/x?status=418").await.status, 418);
    assert_eq!(lg.get("unknown.test", "/").await.status, 404);
    let text = lg.metrics().await;
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle) && l.contains(""))
            .map(str::to_owned)
    };
    let ok = text
        .lines()
        .find(|l| {
            l.starts_with("gatehouse_gateway_requests_total")
                && l.contains("host=\"m.test\"")
                && l.contains("status=\"200\"")
                && l.contains("backend=\"default/web:80\"")
        })
        .unwrap_or_else(|| panic!("no 200 counter:\n{text}"));
    let count: f64 = ok.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 5.0, "{ok}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("gatehouse_gateway_requests_total")
                && l.contains("status=\"418\"")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("gatehouse_gateway_requests_total")
                && l.contains("host=\"\"")
                && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(
        line("gatehouse_gateway_request_duration_seconds_bucket").is_some(),
        "{text}"
    );
    let version = line("gatehouse_gateway_snapshot_version").unwrap_or_else(|| panic!("{text}"));
    assert!(version.rsplit(' ').next().unwrap().parse::<f64>().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_connections_are_kept_alive() {
    let (_web, lg) = one_route("ka.test").await;
    // Sequential requests reuse the gateway's upstream connections: the echo
    // sees at most one client port per gateway worker thread (two here).
    let mut ports = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let echo = lg.get("ka.test", "/").await.echo().unwrap();
        ports.insert(echo.client);
    }
    assert!(
        ports.len() <= 2,
        "upstream connections not reused: {ports:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_flight_request_finishes_on_the_snapshot_it_started_with() {
    let old = EchoPod::start("old", "old-1").unwrap();
    let new = EchoPod::start("new", "new-1").unwrap();
    let lg = LocalGateway::start(&[]).await.unwrap();
    lg.write(
        "apps.yaml",
        &join(&[
            service_manifest("old", &[(&old, true)]),
            service_manifest("new", &[(&new, true)]),
        ]),
    )
    .unwrap();
    lg.write("r.yaml", &ingress("r", &[("f.test", "Prefix", "/", "old")]))
        .unwrap();
    lg.eventually("f.test", "/", |r| r.who() == "old/old-1")
        .await;
    let (client, http) = (lg.client.clone(), lg.http);
    let slow = tokio::spawn(async move {
        client
            .get(http, "f.test", "/slow?delay_ms=1500", &[])
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    lg.write("r.yaml", &ingress("r", &[("f.test", "Prefix", "/", "new")]))
        .unwrap();
    let switched = lg
        .eventually("f.test", "/", |r| r.who() == "new/new-1")
        .await;
    assert_eq!(switched.who(), "new/new-1");
    let finished = slow.await.unwrap();
    assert_eq!(
        finished.who(),
        "old/old-1",
        "the in-flight request kept its route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilds_that_change_nothing_are_not_resent() {
    let (web, lg) = one_route("same.test").await;
    let updates = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("gatehouse_gateway_snapshot_updates_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = updates(&lg.metrics().await);
    assert!(before >= 1.0);
    // Same content rewritten, and an object of a kind Gatehouse ignores.
    lg.write(
        "w.yaml",
        &join(&[
            service_manifest("web", &[(&web, true)]),
            ingress("w", &[("same.test", "Prefix", "/", "web")]),
        ]),
    )
    .unwrap();
    lg.write(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(updates(&lg.metrics().await), before, "{}", lg.logs());
    // A real change is sent.
    lg.write(
        "extra.yaml",
        &ingress("x", &[("other.test", "Prefix", "/", "web")]),
    )
    .unwrap();
    lg.eventually("other.test", "/", |r| r.status == 200).await;
    assert_eq!(updates(&lg.metrics().await), before + 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_through_the_gateway_survives_route_changes() {
    use gatehouse_e2e::ws_client::{header, open, receive, send, ACCEPT, TEXT};
    let (_web, lg) = one_route("ws.test").await;
    let (mut ws, head) = open(&lg.http.to_string(), "ws.test", "/chat")
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some(ACCEPT));
    send(&mut ws, true, TEXT, b"before").await.unwrap();
    assert_eq!(
        receive(&mut ws).await.unwrap(),
        (true, TEXT, b"before".to_vec())
    );
    // Routes change under the open connection (the host goes away
    // entirely); the WebSocket is untouched.
    lg.remove("w.yaml").unwrap();
    lg.eventually("ws.test", "/", |r| r.status == 404).await;
    for i in 0..5 {
        let msg = format!("after-{i}");
        send(&mut ws, true, TEXT, msg.as_bytes()).await.unwrap();
        assert_eq!(
            receive(&mut ws).await.unwrap(),
            (true, TEXT, msg.into_bytes())
        );
    }
}

/// Sends raw bytes on a fresh connection and returns what came back (until
/// the server closes or 2 s pass).
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_oversized_requests_are_refused_and_nothing_else_is_affected() {
    let (_web, lg) = one_route("bad.test").await;
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: bad.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let cases: [(&str, Vec<u8>); 3] = [
        ("garbage_request_line", b"NOT HTTP AT ALL\r\n\r\n".to_vec()),
        (
            "bad_header_syntax",
            b"GET / HTTP/1.1\r\nHost bad.test\r\n\r\n".to_vec(),
        ),
        ("oversized_headers", huge.into_bytes()),
    ];
    for (case, bytes) in cases {
        let answer = raw_exchange(lg.http, &bytes).await;
        let status = answer.split_whitespace().nth(1).unwrap_or("none");
        assert!(
            answer.is_empty() || status.starts_with('4'),
            "case {case}: {}",
            &answer[..answer.len().min(200)]
        );
        if case == "oversized_headers" {
            assert_eq!(status, "431", "case {case}");
        }
        // The gateway keeps serving everyone else.
        assert_eq!(
            lg.get("bad.test", "/").await.who(),
            "web/web-1",
            "case {case}"
        );
    }
}

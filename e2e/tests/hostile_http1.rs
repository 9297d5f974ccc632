//! Hostile HTTP/1.x clients and upstreams against the real gateway: raw
//! sockets writing exactly what an attacker would. Each test asserts that
//! the attack is refused or bounded *and* that an honest request on another
//! connection is served meanwhile. The first group reproduces the bugs of
//! issue 10 (each failed before its fix); the second covers each class of
//! probe that a request-smuggling scanner tries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::client::TestClient;
use gatehouse_e2e::cluster::NsProcess;
use gatehouse_e2e::local::{binary, free_addrs, snapshot_frame};
use gatehouse_e2e::raw_http::{
    chunked, fingerprint, response, Action, Conn, FakeUpstream, Request, Response, READ_TIMEOUT,
};
use gatehouse_e2e::rig::ProxyRig;
use std::process::Command;
use std::time::{Duration, Instant};

const HOST: &str = "hostile.test";

async fn rig(gateway_args: &[&str], handler: fn(&Request) -> Action) -> ProxyRig {
    ProxyRig::start(gateway_args, handler).await.unwrap()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes()
}

/// GET: 200 with the target as body; other methods: 200 with the
/// fingerprint of the body received.
fn echo(r: &Request) -> Action {
    let body = if r.method == "GET" {
        r.target.clone().into_bytes()
    } else {
        fingerprint(&r.body).into_bytes()
    };
    Action::Send(response(200, "", &body))
}

fn smuggled() -> String {
    format!("GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
}

/// No request the upstream saw is the smuggled one.
fn assert_nothing_smuggled(rig: &ProxyRig, case: &str) {
    let seen = rig.upstream.requests();
    assert!(
        seen.iter().all(|r| r.target != "/smuggled"),
        "case {case}: a smuggled request reached the upstream: {seen:?}"
    );
}

/// Reads responses until the gateway closes the connection (at most a few).
async fn responses_until_closed(conn: &mut Conn) -> Vec<Response> {
    let mut all = Vec::new();
    for _ in 0..4 {
        match conn.read_response("POST").await {
            Ok(r) => all.push(r),
            Err(_) => break,
        }
    }
    all
}

// ---------------------------------------------------------------------
// Bug 1: `Connection` naming framing and gateway fields.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_option_cannot_remove_request_framing() {
    let rig = rig(&[], echo).await;
    let inner = smuggled();
    let by_length = format!(
        "POST /c HTTP/1.1\r\nHost: {HOST}\r\nConnection: content-length\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    )
    .into_bytes();
    let by_chunks = [
        format!(
            "POST /t HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes(),
        chunked(&[inner.as_bytes()], ""),
    ]
    .concat();
    for (case, path, bytes) in [
        ("content_length", "/c", by_length),
        ("chunked", "/t", by_chunks),
    ] {
        let mut conn = rig.conn().await;
        let r = rig.exchange(&mut conn, "POST", &bytes).await;
        rig.barrier(&format!("/honest-{case}")).await;
        assert_eq!(r.status, 200, "case {case}: {r:?}");
        assert_eq!(
            r.text(),
            fingerprint(inner.as_bytes()),
            "case {case}: the upstream must get the body as a body"
        );
        assert_nothing_smuggled(&rig, case);
        let up = rig
            .upstream
            .requests()
            .into_iter()
            .find(|q| q.target == path)
            .unwrap();
        assert!(up.body == inner.as_bytes(), "case {case}: {up:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_option_cannot_remove_fields_the_gateway_sets() {
    let rig = rig(&[], echo).await;
    let request = format!(
        "GET /fields HTTP/1.1\r\nHost: {HOST}\r\n\
         Connection: host, x-forwarded-for, x-real-ip, x-request-id, x-forwarded-proto, x-forwarded-host, x-forwarded-port, x-drop-me\r\n\
         X-Forwarded-For: 198.51.100.1\r\nX-Request-ID: keep-this-id\r\nX-Drop-Me: 1\r\nX-Keep-Me: 2\r\n\r\n"
    );
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", request.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let up = rig.upstream.requests().pop().unwrap();
    let h = &up.headers;
    assert_eq!(h.get_all("host"), [HOST], "{h:?}");
    assert_eq!(
        h.get("x-forwarded-for"),
        Some("198.51.100.1, 127.0.0.1"),
        "{h:?}"
    );
    assert_eq!(h.get("x-real-ip"), Some("127.0.0.1"), "{h:?}");
    assert_eq!(h.get("x-request-id"), Some("keep-this-id"), "{h:?}");
    assert_eq!(h.get("x-forwarded-proto"), Some("http"), "{h:?}");
    assert_eq!(h.get("x-forwarded-host"), Some(HOST), "{h:?}");
    assert!(h.contains("x-forwarded-port"), "{h:?}");
    // An end-to-end field of the client's own may still be dropped.
    assert!(!h.contains("x-drop-me"), "{h:?}");
    assert_eq!(h.get("x-keep-me"), Some("2"), "{h:?}");
    rig.barrier("/honest").await;
}

fn framing_hidden_by_connection(r: &Request) -> Action {
    match r.target.as_str() {
        "/length" => Action::Send(
            b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
        ),
        "/chunked" => Action::Send(
            b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        ),
        _ => echo(r),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connection_option_cannot_remove_response_framing() {
    let rig = rig(&[], framing_hidden_by_connection).await;
    let mut conn = rig.conn().await;
    for path in ["/length", "/chunked"] {
        let r = rig.exchange(&mut conn, "GET", &get(path)).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello"),
            "{path}: {r:?}"
        );
        assert!(
            r.headers.contains("content-length") || r.headers.contains("transfer-encoding"),
            "{path}: the response reached the client unframed: {r:?}"
        );
    }
    // The client connection is still in step.
    let r = rig.exchange(&mut conn, "GET", &get("/next")).await;
    assert_eq!(r.text(), "/next");
}

// ---------------------------------------------------------------------
// Bug 4: upload time counted as upstream read time; slow bodies.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upload_is_not_cut_by_the_upstream_read_timeout() {
    let rig = rig(&["--upstream-read-timeout", "1s"], echo).await;
    let body: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut conn = rig.conn().await;
    conn.send(format!(
        "POST /slow-upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ))
    .await
    .unwrap();
    // Three seconds of upload, three times the upstream read timeout.
    for piece in body.chunks(300) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if conn.send(piece).await.is_err() {
            break;
        }
    }
    rig.barrier("/honest").await;
    let r = conn.read_response("POST").await.unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", rig.lg.logs());
    assert_eq!(r.text(), fingerprint(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_get_408_after_the_client_body_timeout() {
    let rig = rig(&["--client-body-timeout", "1s"], echo).await;
    let mut stalled = Vec::new();
    for i in 0..8 {
        let mut conn = rig.conn().await;
        conn.send(format!(
            "POST /stalled-{i} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\nonly part of it"
        ))
        .await
        .unwrap();
        stalled.push(conn);
    }
    let started = Instant::now();
    rig.barrier("/honest").await;
    for (i, conn) in stalled.iter_mut().enumerate() {
        let r = conn.read_response("POST").await.unwrap();
        assert_eq!(r.status, 408, "stalled upload {i}: {r:?}");
        conn.expect_closed().await.unwrap();
    }
    assert!(
        started.elapsed() < READ_TIMEOUT,
        "{:?} to cut the uploads",
        started.elapsed()
    );
    rig.barrier("/after").await;
}

// ---------------------------------------------------------------------
// Bug 6: connection limit.
// ---------------------------------------------------------------------

/// Opens connections that each send a GET and keep the connection open,
/// until the gateway refuses one with a 503 and close (or `most` are open).
async fn fill_up(addr: std::net::SocketAddr, most: usize) -> (Vec<Conn>, Option<Response>) {
    let mut held = Vec::new();
    for _ in 0..most {
        let mut conn = Conn::connect(addr).await.unwrap();
        conn.send(get("/hold")).await.unwrap();
        let r = conn.read_response("GET").await.unwrap();
        if r.status != 200 {
            return (held, Some(r));
        }
        held.push(conn);
    }
    (held, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_refused_at_once() {
    let rig = rig(&["--max-connections", "8"], echo).await;
    let (mut held, refusal) = fill_up(rig.lg.http, 20).await;
    let refusal = refusal.unwrap_or_else(|| panic!("20 connections accepted\n{}", rig.lg.logs()));
    assert_eq!(refusal.status, 503, "{refusal:?}");
    // Harness probes may hold a connection or two of the eight.
    assert!((6..=8).contains(&held.len()), "{} accepted", held.len());
    let client = TestClient::http1();
    let health = client
        .get(rig.lg.admin, "admin", "/healthz", &[])
        .await
        .unwrap();
    assert_eq!(health.status, 200, "the admin listener at the limit");
    let metrics = rig.lg.metrics().await;
    assert!(
        metrics.contains("# HELP gatehouse_gateway_connections_refused_total "),
        "{metrics}"
    );
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_gateway_connections_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "{metrics}");
    // Below the limit again, honest clients are served.
    held.truncate(held.len() - 2);
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let mut conn = rig.conn().await;
        conn.send(get("/honest")).await.unwrap();
        let r = conn.read_response("GET").await.unwrap();
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_connection_limit_leaves_file_descriptors_for_healthz() {
    let upstream = FakeUpstream::start(echo).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snapshot.json");
    std::fs::write(&snapshot, snapshot_frame(HOST, upstream.addr)).unwrap();
    let [http, admin] = free_addrs::<2>().unwrap();
    // 256 file descriptors, no more to raise to.
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=256:256")
        .arg("--")
        .arg(binary("gatehouse-gateway").unwrap())
        .env("NO_COLOR", "1")
        .args(["--snapshot-file", snapshot.to_str().unwrap()])
        .args(["--http-addr", &http.to_string()])
        .args(["--admin-addr", &admin.to_string()])
        .args(["--upstream-keepalive", "16", "--threads", "2"]);
    let gateway = NsProcess::spawn("gatehouse-gateway", cmd).unwrap();
    let client = TestClient::http1();
    let mut ready = false;
    for _ in 0..400 {
        if matches!(client.get(admin, "a", "/readyz", &[]).await, Ok(r) if r.status == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "gateway never ready\n{}", gateway.output());

    // 300 clients, each sending a request, more than the process has
    // file descriptors for.
    let mut conns = Vec::new();
    for _ in 0..300 {
        let mut conn = Conn::connect(http).await.unwrap();
        let _ = conn.send(get("/flood")).await;
        conns.push(conn);
    }
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        TestClient::http1().get(admin, "admin", "/healthz", &[]),
    )
    .await;
    assert!(
        matches!(&health, Ok(Ok(r)) if r.status == 200),
        "/healthz with 300 clients: {:?}\n{}",
        health.map(|r| r.map(|r| r.status)),
        gateway.output()
    );
    // Every client got an answer: served, or refused at once (503), or a
    // 502 when the upstream connection could not be opened for want of a
    // descriptor (the limit leaves room for healthz, not for every upstream).
    let mut served = 0;
    let mut refused = 0;
    for (i, conn) in conns.iter_mut().enumerate() {
        match conn.read_response("GET").await {
            Ok(r) if r.status == 200 => served += 1,
            Ok(r) if r.status == 503 || r.status == 502 => refused += 1,
            other => panic!(
                "client {i}: {:?}\n{}",
                other.map(|r| r.status),
                gateway.output()
            ),
        }
    }
    assert!(
        served > 0 && refused > 0,
        "{served} served, {refused} refused"
    );
    drop(conns);
    let health = client.get(admin, "admin", "/healthz", &[]).await.unwrap();
    assert_eq!(health.status, 200);
}

// ---------------------------------------------------------------------
// Bug 7 (HTTP/1 parts).
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_lists_are_forwarded_as_one_value() {
    let rig = rig(&[], echo).await;
    let cases = [
        ("list", "Content-Length: 5, 5\r\n"),
        ("two_fields", "Content-Length: 5\r\nContent-Length: 5\r\n"),
    ];
    for (case, fields) in cases {
        let request = format!("POST /{case} HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\nhello");
        let mut conn = rig.conn().await;
        let r = rig.exchange(&mut conn, "POST", request.as_bytes()).await;
        assert_eq!(r.text(), fingerprint(b"hello"), "case {case}");
        let up = rig.upstream.requests().pop().unwrap();
        assert_eq!(
            up.headers.get_all("content-length"),
            ["5"],
            "case {case}: {:?}",
            up.headers
        );
    }
    rig.barrier("/honest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_other_than_websocket_are_not_forwarded() {
    let rig = rig(&[], echo).await;
    let cases = [
        (
            "h2c",
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        ),
        ("other", "Connection: upgrade\r\nUpgrade: foo/1\r\n"),
    ];
    for (case, fields) in cases {
        let request = format!("GET /{case} HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n");
        let mut conn = rig.conn().await;
        let r = rig.exchange(&mut conn, "GET", request.as_bytes()).await;
        assert_eq!(
            (r.status, r.text()),
            (200, format!("/{case}")),
            "case {case}"
        );
        let up = rig.upstream.requests().pop().unwrap();
        let h = &up.headers;
        assert!(!h.contains("upgrade"), "case {case}: {h:?}");
        assert!(!h.has_token("connection", "upgrade"), "case {case}: {h:?}");
        assert!(!h.contains("http2-settings"), "case {case}: {h:?}");
        // Served as an ordinary request: the connection stays usable.
        let r = rig.exchange(&mut conn, "GET", &get("/next")).await;
        assert_eq!(r.text(), "/next", "case {case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_with_underscores_are_dropped_unless_allowed() {
    let request = format!(
        "GET /u HTTP/1.1\r\nHost: {HOST}\r\nX_Auth_User: admin\r\nX-Auth-User: alice\r\n\r\n"
    );
    for (args, kept) in [
        (&[][..], false),
        (&["--allow-underscores-in-headers"][..], true),
    ] {
        let rig = rig(args, echo).await;
        let mut conn = rig.conn().await;
        let r = rig.exchange(&mut conn, "GET", request.as_bytes()).await;
        assert_eq!(r.status, 200, "{args:?}: {r:?}");
        let up = rig.upstream.requests().pop().unwrap();
        assert_eq!(
            up.headers.contains("x_auth_user"),
            kept,
            "{args:?}: {:?}",
            up.headers
        );
        assert_eq!(up.headers.get("x-auth-user"), Some("alice"), "{args:?}");
        rig.barrier("/honest").await;
    }
}

/// `/head-<KB>`: a response whose head is about that many kilobytes, in
/// fields of 2 KB.
fn oversized_head(r: &Request) -> Action {
    let Some(kb) = r
        .target
        .strip_prefix("/head-")
        .and_then(|k| k.parse::<usize>().ok())
    else {
        return echo(r);
    };
    let value = "v".repeat(2000);
    let fields: String = (0..kb / 2)
        .map(|i| format!("X-Big-{i}: {value}\r\n"))
        .collect();
    Action::Send(response(200, &fields, b"too big"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_heads_over_64_kib_are_refused() {
    let rig = rig(&[], oversized_head).await;
    // The limit was only checked while a head was incomplete, so a head that
    // completed in one large read (the read buffer doubles as it fills)
    // passed whatever its size; the larger the buffer had grown on that
    // connection, the larger the head.
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/head-60")).await;
    assert_eq!(r.status, 200, "a 60 KB head is within the limit");
    for kb in [80, 100, 120, 250] {
        let r = rig
            .exchange(&mut conn, "GET", &get(&format!("/head-{kb}")))
            .await;
        assert_eq!(r.status, 502, "a {kb} KB response head was relayed");
        conn = rig.conn().await;
    }
    rig.barrier("/honest").await;
}

fn interim_responses(r: &Request) -> Action {
    let continues = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(3);
    let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
    match r.target.as_str() {
        "/unsolicited" => Action::Send([continues, response(200, "", b"final")].concat()),
        "/flood" => Action::Send([hints.repeat(1000), response(200, "", b"final")].concat()),
        _ => echo(r),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolicited_100_continue_is_not_relayed_and_interim_responses_are_bounded() {
    let rig = rig(&[], interim_responses).await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/unsolicited")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "final"),
        "the client sent no Expect: {r:?}"
    );
    let r = rig.exchange(&mut conn, "GET", &get("/next")).await;
    assert_eq!(r.text(), "/next");

    let mut conn = rig.conn().await;
    conn.send(get("/flood")).await.unwrap();
    let mut interim = 0;
    let last = loop {
        let r = conn.read_response("GET").await.unwrap();
        if r.status >= 200 {
            break r;
        }
        interim += 1;
    };
    assert_eq!(last.status, 502, "after {interim} interim responses");
    assert!(interim <= 16, "{interim} interim responses relayed");
    rig.barrier("/honest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_close_after_the_idle_timeout() {
    let rig = rig(&["--upstream-idle-timeout", "1s"], echo).await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/pooled")).await;
    assert_eq!(r.status, 200);
    // Every connection the upstream accepted (readiness probes included)
    // went back to the pool; each must be closed once idle for 1 s, with
    // no traffic to notice it.
    let opened = rig.upstream.connections();
    rig.upstream
        .wait_for_peer_closes(opened)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", rig.lg.logs()));
    rig.barrier("/honest").await;
}

// ---------------------------------------------------------------------
// Probe classes: each refused (or read one safe way) while others are served.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heads_are_refused() {
    let rig = rig(&[], echo).await;
    let cases: [(&str, String); 8] = [
        (
            "obs_fold",
            format!("GET /f HTTP/1.1\r\nHost: {HOST}\r\nX-A: a\r\n  folded\r\n\r\n"),
        ),
        (
            "obs_fold_transfer_encoding",
            format!("POST /f HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "bare_cr_line_end",
            format!("GET /f HTTP/1.1\rHost: {HOST}\r\n\r\n"),
        ),
        (
            "bare_cr_in_value",
            format!("GET /f HTTP/1.1\r\nHost: {HOST}\r\nX-A: a\rb\r\n\r\n"),
        ),
        (
            "nul_in_value",
            format!("GET /f HTTP/1.1\r\nHost: {HOST}\r\nX-A: a\0b\r\n\r\n"),
        ),
        (
            "nul_in_name",
            format!("GET /f HTTP/1.1\r\nHost: {HOST}\r\nX\0A: a\r\n\r\n"),
        ),
        (
            "space_before_colon",
            format!("GET /f HTTP/1.1\r\nHost: {HOST}\r\nContent-Length : 5\r\n\r\nhello"),
        ),
        (
            "nul_in_target",
            format!("GET /f\0x HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        ),
    ];
    for (case, bytes) in cases {
        rig.assert_refused(case, bytes.as_bytes(), &[400]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_variants_never_smuggle() {
    let rig = rig(&[], echo).await;
    let inner = smuggled();
    let body = chunked(&[inner.as_bytes()], "");
    let variants = [
        ("xchunked", "Transfer-Encoding: xchunked\r\n"),
        ("quoted", "Transfer-Encoding: \"chunked\"\r\n"),
        ("twice", "Transfer-Encoding: chunked, chunked\r\n"),
        (
            "two_fields",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        ),
        ("vertical_tab", "Transfer-Encoding:\x0bchunked\r\n"),
        ("underscore", "Transfer_Encoding: chunked\r\n"),
        ("upper_case", "TRANSFER-ENCODING: CHUNKED\r\n"),
        ("tab", "Transfer-Encoding:\tchunked\r\n"),
        ("with_gzip_first", "Transfer-Encoding: gzip, chunked\r\n"),
    ];
    for (case, fields) in variants {
        let before = rig.upstream.requests().len();
        let bytes = [
            format!(
                "POST /te-{case} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{fields}\r\n"
            )
            .into_bytes(),
            body.clone(),
        ]
        .concat();
        let mut conn = rig.conn().await;
        conn.send(&bytes).await.unwrap();
        rig.barrier(&format!("/during-{case}")).await;
        let answers = responses_until_closed(&mut conn).await;
        assert!(
            answers.iter().all(|r| r.status == 200 || r.status == 400),
            "case {case}: {answers:?}"
        );
        rig.barrier(&format!("/after-{case}")).await;
        assert_nothing_smuggled(&rig, case);
        // What was forwarded was read as chunked (the whole payload) or
        // without a body at all, never as something else.
        for up in &rig.upstream.requests()[before..] {
            assert!(
                up.body.is_empty() || up.body == inner.as_bytes(),
                "case {case}: {up:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused() {
    let rig = rig(&[], echo).await;
    let inner = smuggled();
    let body = String::from_utf8(chunked(&[inner.as_bytes()], "")).unwrap();
    let cases = [
        (
            "cl_te",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "te_cl",
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        ),
        (
            "cl_te_list",
            "Content-Length: 4\r\nTransfer-Encoding: gzip, chunked\r\n",
        ),
        (
            "cl_zero_te",
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
        ),
    ];
    for (case, fields) in cases {
        let bytes = format!("POST /clte HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n{body}");
        rig.assert_refused(case, bytes.as_bytes(), &[400]).await;
    }
    assert_nothing_smuggled(&rig, "all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_lists_are_refused_unless_identical() {
    let rig = rig(&[], echo).await;
    let cases = [
        ("differing", "5, 6"),
        ("no_space", "5,6"),
        ("empty_element", "5,,5"),
        ("plus", "+5"),
        ("minus", "-5"),
        ("hex", "0x5"),
        ("space_inside", "5 5"),
        ("overflow", "99999999999999999999"),
        ("empty", ""),
    ];
    for (case, value) in cases {
        let bytes =
            format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {value}\r\n\r\nhello");
        rig.assert_refused(case, bytes.as_bytes(), &[400]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_heads_and_many_fields_get_431() {
    let rig = rig(&[], echo).await;
    let many: String = (0..200).map(|i| format!("X-F{i}: v\r\n")).collect();
    let cases = [
        (
            "one_huge_field",
            format!(
                "GET /h HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {}\r\n\r\n",
                "a".repeat(1 << 20)
            ),
        ),
        (
            "fields_over_32_kib",
            format!(
                "GET /h HTTP/1.1\r\nHost: {HOST}\r\nX-A: {v}\r\nX-B: {v}\r\nX-C: {v}\r\n\r\n",
                v = "b".repeat(12_000)
            ),
        ),
        (
            "huge_target",
            format!(
                "GET /{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
                "t".repeat(100_000)
            ),
        ),
        (
            "many_fields",
            format!("GET /h HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n"),
        ),
    ];
    for (case, bytes) in cases {
        rig.assert_refused(case, bytes.as_bytes(), &[431]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_are_cut_without_starving_others() {
    let rig = rig(&["--client-timeout", "1s"], echo).await;
    let mut slow = Vec::new();
    for i in 0..20 {
        let addr = rig.lg.http;
        slow.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await.unwrap();
            let head = format!(
                "GET /slow-{i} HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(100)
            );
            let started = Instant::now();
            for byte in head.bytes() {
                if conn.send([byte]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!(
                "slow client {i} sent its whole head over {:?}",
                started.elapsed()
            );
        }));
    }
    for i in 0..5 {
        rig.barrier(&format!("/honest-{i}")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for task in slow {
        let cut_after = task.await.unwrap();
        assert!(cut_after < READ_TIMEOUT, "cut after {cut_after:?}");
    }
    let seen = rig.upstream.requests();
    assert!(
        seen.iter().all(|r| !r.target.starts_with("/slow-")),
        "{seen:?}"
    );
}

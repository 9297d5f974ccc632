//! HTTP/1.1 proxying semantics of the gateway, observed on the wire: raw
//! client sockets writing exact bytes, and hand-written fake upstreams that
//! record exactly what the gateway forwarded. These pin today's behaviour
//! (and RFC 9110/9112 where they are strict) for the HTTP/1.1 engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::raw_http::{
    chunked, fingerprint, pseudo_random, response, Action, FakeUpstream, Framing, Request, Response,
};
use gatehouse_e2e::rig::ProxyRig;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const HOST: &str = "conformance.test";

type Rig = ProxyRig;

/// A fake upstream answering with `handler`, and a gateway with these
/// extra flags routing every request to it.
async fn start_rig(
    gateway_args: &[&str],
    handler: impl Fn(&Request) -> Action + Send + Sync + 'static,
) -> Rig {
    ProxyRig::start(gateway_args, handler).await.unwrap()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes()
}

/// Answers every request with 200 and its target as the body.
fn echo_target(r: &Request) -> Action {
    Action::Send(response(200, "", r.target.as_bytes()))
}

/// Answers GET with 200 and its target, other methods with 200 and the
/// fingerprint of the body.
fn echo_fingerprint(r: &Request) -> Action {
    if r.method == "GET" {
        return echo_target(r);
    }
    Action::Send(response(200, "", fingerprint(&r.body).as_bytes()))
}

fn assert_ok_with(r: &Response, body: &[u8], what: &str) {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    assert!(
        r.body == body,
        "{what}: body differs (want {} bytes): {r:?}",
        body.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_request_body_is_forwarded_byte_exact() {
    let rig = start_rig(&[], echo_fingerprint).await;
    let body = pseudo_random(1 << 20, 1);
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "POST", &request).await;
    assert_ok_with(&r, fingerprint(&body).as_bytes(), "upload");

    let seen = rig.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let up = &seen[0];
    assert_eq!(
        (up.method.as_str(), up.target.as_str()),
        ("POST", "/upload")
    );
    assert_eq!(
        up.framing,
        Framing::ContentLength(body.len()),
        "Content-Length is forwarded as Content-Length"
    );
    assert!(up.body == body, "the upstream got different bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_body_with_extension_and_trailers_is_forwarded() {
    let rig = start_rig(&[], echo_fingerprint).await;
    let big = pseudo_random(100_000, 2);
    let mut payload = b"hello ".to_vec();
    payload.extend_from_slice(&big);
    payload.extend_from_slice(b"world");
    // Upper-case hex size, a chunk extension, a trailer field.
    let mut request = format!(
        "POST /chunked-upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(b"6;name=value\r\nhello \r\n");
    request.extend_from_slice(format!("{:X}\r\n", big.len()).as_bytes());
    request.extend_from_slice(&big);
    request.extend_from_slice(b"\r\n5\r\nworld\r\n0\r\nX-Checksum: abc\r\n\r\n");
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "POST", &request).await;
    assert_ok_with(&r, fingerprint(&payload).as_bytes(), "chunked upload");

    let seen = rig.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let up = &seen[0];
    assert!(
        up.framing == Framing::Chunked || up.framing == Framing::ContentLength(payload.len()),
        "upstream framing {:?}",
        up.framing
    );
    assert!(up.body == payload, "the upstream got a different payload");

    // The connection is still in step: the next request works.
    let r = rig.exchange(&mut conn, "GET", &get("/next")).await;
    assert_ok_with(&r, b"/next", "request after the chunked upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_reaches_the_client_intact() {
    let big = pseudo_random(300_000, 3);
    let mut payload = b"first,".to_vec();
    payload.extend_from_slice(&big);
    payload.extend_from_slice(b",last");
    let mut wire =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    wire.extend_from_slice(b"6;ext=1\r\nfirst,\r\n");
    wire.extend_from_slice(&chunked(&[&big, b",last"], "X-Trailer: t\r\n"));
    let rig = start_rig(&[], move |r| match r.target.as_str() {
        "/chunked" => Action::Send(wire.clone()),
        _ => echo_target(r),
    })
    .await;
    let mut conn = rig.conn().await;
    for round in 0..2 {
        let r = rig.exchange(&mut conn, "GET", &get("/chunked")).await;
        assert_ok_with(&r, &payload, &format!("chunked response, round {round}"));
        assert!(
            r.framing == Framing::Chunked || r.framing == Framing::ContentLength(payload.len()),
            "client framing {:?}",
            r.framing
        );
    }
    let r = rig.exchange(&mut conn, "GET", &get("/after")).await;
    assert_ok_with(&r, b"/after", "request after chunked responses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_mib_content_length_response_streams_intact() {
    let body = pseudo_random(5 << 20, 4);
    let wire = response(200, "Content-Type: application/octet-stream\r\n", &body);
    let rig = start_rig(&[], move |r| match r.target.as_str() {
        "/big" => Action::Send(wire.clone()),
        _ => echo_target(r),
    })
    .await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/big")).await;
    assert_ok_with(&r, &body, "5 MiB response");
    assert_eq!(
        r.framing,
        Framing::ContentLength(5 << 20),
        "Content-Length is passed through"
    );
    let r = rig.exchange(&mut conn, "GET", &get("/after")).await;
    assert_ok_with(&r, b"/after", "request after the big response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_upstream_response_reaches_the_client_fully() {
    let body = pseudo_random(256 * 1024, 5);
    let mut wire = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    wire.extend_from_slice(&body);
    let rig = start_rig(&[], move |r| match r.target.as_str() {
        "/close" => Action::SendAndClose(wire.clone()),
        _ => echo_target(r),
    })
    .await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/close")).await;
    assert_ok_with(&r, &body, "close-delimited response");
    match r.framing {
        // Read to EOF already: the gateway closed the client connection.
        Framing::Close => {}
        // Re-framed: the connection must still be in step.
        Framing::Chunked | Framing::ContentLength(_) => {
            let next = rig.exchange(&mut conn, "GET", &get("/next")).await;
            assert_ok_with(&next, b"/next", "request after a re-framed response");
        }
        Framing::None => panic!("a 200 to GET without a body: {r:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_response_keeps_content_length_has_no_body_and_keepalive_survives() {
    let rig = start_rig(&[], |r| match (r.method.as_str(), r.target.as_str()) {
        ("HEAD", "/chunked") => Action::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: chunked\r\n\r\n".to_vec(),
        ),
        ("HEAD", _) => Action::Send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n".to_vec(),
        ),
        _ => echo_target(r),
    })
    .await;
    let mut conn = rig.conn().await;
    let head = |path: &str| format!("HEAD {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes();
    for round in 0..2 {
        let r = rig.exchange(&mut conn, "HEAD", &head("/file")).await;
        assert_eq!(r.status, 200, "round {round}: {r:?}");
        assert_eq!(
            r.headers.get("content-length"),
            Some("1234"),
            "round {round}: the upstream's Content-Length is kept: {:?}",
            r.headers
        );
        // No body bytes follow: the next response parses from its first byte.
        let r = rig.exchange(&mut conn, "GET", &get("/after-head")).await;
        assert_ok_with(
            &r,
            b"/after-head",
            &format!("GET after HEAD, round {round}"),
        );
    }
    // A HEAD answered with Transfer-Encoding: chunked has no body either.
    let r = rig.exchange(&mut conn, "HEAD", &head("/chunked")).await;
    assert_eq!(
        (r.status, r.headers.get("x-head")),
        (200, Some("chunked")),
        "{r:?}"
    );
    let r = rig
        .exchange(&mut conn, "GET", &get("/after-chunked-head"))
        .await;
    assert_ok_with(&r, b"/after-chunked-head", "GET after a chunked HEAD");
    let methods: Vec<String> = rig
        .upstream
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        methods,
        [
            "HEAD /file",
            "GET /after-head",
            "HEAD /file",
            "GET /after-head",
            "HEAD /chunked",
            "GET /after-chunked-head"
        ],
        "HEAD is forwarded as HEAD"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_statuses_204_and_304_keep_the_connection_usable() {
    let rig = start_rig(&[], |r| match r.target.as_str() {
        "/204" => Action::Send(b"HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n".to_vec()),
        "/304" => Action::Send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec()),
        // A 304 may carry the Content-Length the 200 would have had; there
        // is still no body.
        "/304-cl" => Action::Send(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v2\"\r\nContent-Length: 100\r\n\r\n".to_vec(),
        ),
        _ => echo_target(r),
    })
    .await;
    let mut conn = rig.conn().await;
    for (path, status, etag) in [
        ("/204", 204, None),
        ("/304", 304, Some("\"v1\"")),
        ("/304-cl", 304, Some("\"v2\"")),
    ] {
        let r = rig.exchange(&mut conn, "GET", &get(path)).await;
        assert_eq!(r.status, status, "{path}: {r:?}");
        assert!(r.body.is_empty(), "{path}: {r:?}");
        assert!(
            !r.headers.contains("transfer-encoding"),
            "{path}: Transfer-Encoding on a {status}: {:?}",
            r.headers
        );
        if status == 204 {
            assert!(
                !r.headers.contains("content-length"),
                "Content-Length on a 204: {:?}",
                r.headers
            );
            assert_eq!(r.headers.get("x-kind"), Some("204"));
        }
        assert_eq!(r.headers.get("etag"), etag, "{path}: {:?}", r.headers);
        let next = format!("{path}/next");
        let r = rig.exchange(&mut conn, "GET", &get(&next)).await;
        assert_ok_with(&r, next.as_bytes(), &format!("request after {path}"));
    }
}

/// Three GETs in one write.
fn pipelined(paths: &[&str]) -> Vec<u8> {
    paths.iter().flat_map(|p| get(p)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_or_closed_for_retry() {
    // RFC 9112 §9.3.2: responses in request order; a server may close
    // instead of answering the rest, and clients retry what went
    // unanswered. So whatever is answered is answered in order, the
    // connection then closes, and unanswered requests were not forwarded
    // (a retry cannot duplicate them).
    let rig = start_rig(&[], echo_target).await;
    let paths = ["/p1", "/p2", "/p3"];
    let mut conn = rig.conn().await;
    conn.send(pipelined(&paths)).await.unwrap();
    let mut answered = 0;
    for path in paths {
        match conn.read_response("GET").await {
            Ok(r) => {
                assert_ok_with(&r, path.as_bytes(), &format!("pipelined {path}"));
                answered += 1;
            }
            Err(e) => {
                assert!(conn.buffered().is_empty(), "{path}: {e}");
                break;
            }
        }
    }
    assert!(answered >= 1, "the first pipelined request went unanswered");
    if answered < paths.len() {
        conn.expect_closed().await.unwrap();
    }
    rig.barrier("/after").await;
    let forwarded: Vec<String> = rig
        .upstream
        .requests()
        .iter()
        .map(|r| r.target.clone())
        .filter(|t| t != "/after")
        .collect();
    assert_eq!(forwarded, paths[..answered], "answered {answered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_all_get_responses_in_order() {
    let rig = start_rig(&[], echo_target).await;
    let paths = ["/p1", "/p2", "/p3"];
    let mut conn = rig.conn().await;
    conn.send(pipelined(&paths)).await.unwrap();
    for path in paths {
        let r = conn
            .read_response("GET")
            .await
            .unwrap_or_else(|e| panic!("no response for {path}: {e}"));
        assert_ok_with(&r, path.as_bytes(), &format!("pipelined {path}"));
    }
    let r = rig.exchange(&mut conn, "GET", &get("/after")).await;
    assert_ok_with(&r, b"/after", "request after the pipelined ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_continue_then_the_final_response() {
    let rig = start_rig(&[], echo_fingerprint).await;
    let body = pseudo_random(64 * 1024, 6);
    let mut conn = rig.conn().await;
    conn.send(format!(
        "POST /expect HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    ))
    .await
    .unwrap();
    // As curl does: wait a while for 100 Continue, then send the body anyway.
    let interim = match conn
        .read_response_within("POST", Duration::from_secs(2))
        .await
    {
        Ok(r) if r.status == 100 => Some(r),
        Ok(r) => panic!("a final response before the body was sent: {r:?}"),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut && conn.buffered().is_empty() => None,
        Err(e) => panic!("reading the interim response: {e}"),
    };
    conn.send(&body).await.unwrap();
    let mut r = conn.read_response("POST").await.unwrap();
    let mut more_interim = 0;
    while r.status < 200 {
        more_interim += 1;
        r = conn.read_response("POST").await.unwrap();
    }
    assert_ok_with(&r, fingerprint(&body).as_bytes(), "final response");
    assert!(
        interim.is_some(),
        "no 100 Continue within 2 s (clients wait before sending the body)\n{}",
        rig.lg.logs()
    );
    assert_eq!(more_interim, 0, "more than one 100 Continue");
    let seen = rig.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].body == body);
    // Today the gateway closes the connection after such a request and
    // says so; keeping it open is fine too, if it stays in step.
    if r.headers.has_token("connection", "close") {
        conn.expect_closed().await.unwrap();
    } else {
        let r = rig.exchange(&mut conn, "GET", &get("/next")).await;
        assert_ok_with(&r, b"/next", "request after 100-continue");
    }
}

/// The upstream's record, minus barrier requests.
fn forwarded_except(upstream: &FakeUpstream, barriers: &BTreeSet<String>) -> Vec<Request> {
    upstream
        .requests()
        .into_iter()
        .filter(|r| !barriers.contains(&r.target))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_never_smuggled() {
    let rig = start_rig(&[], echo_fingerprint).await;
    let smuggled = format!("GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    // TE.CL: as chunked, the smuggled request is the payload; a proxy that
    // used Content-Length (4: the size line) would see it as a second
    // request.
    let te_cl_payload = smuggled.clone().into_bytes();
    let te_cl_body = chunked(&[&te_cl_payload], "");
    let te_cl = [
        format!(
            "POST /te-cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes(),
        te_cl_body,
    ]
    .concat();
    // CL.TE: as chunked, the body is empty and the rest is a new request on
    // the connection, which must be closed instead; a proxy that used
    // Content-Length would forward the smuggled request as body.
    let cl_te_body = [b"0\r\n\r\n".to_vec(), smuggled.into_bytes()].concat();
    let cl_te = [
        format!(
            "POST /cl-te HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n",
            cl_te_body.len()
        )
        .into_bytes(),
        cl_te_body,
    ]
    .concat();
    let cases: [(&str, &str, Vec<u8>, &[u8]); 2] = [
        ("te_cl", "/te-cl", te_cl, &te_cl_payload),
        ("cl_te", "/cl-te", cl_te, b""),
    ];
    let mut barriers = BTreeSet::new();
    for (case, path, bytes, payload) in cases {
        let before = forwarded_except(&rig.upstream, &barriers).len();
        let mut conn = rig.conn().await;
        let r = rig.exchange(&mut conn, "POST", &bytes).await;
        match r.status {
            400 => {}
            200 => assert_eq!(
                r.text(),
                fingerprint(payload),
                "case {case}: the body must be decoded as chunked"
            ),
            other => panic!("case {case}: status {other}: {r:?}"),
        }
        // RFC 9112 §6.1: the connection is closed after such a request.
        conn.expect_closed()
            .await
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        let barrier = format!("/after-{case}");
        rig.barrier(&barrier).await;
        barriers.insert(barrier);
        let forwarded = forwarded_except(&rig.upstream, &barriers);
        let new = &forwarded[before..];
        assert!(
            new.iter().all(|r| r.target != "/smuggled"),
            "case {case}: a smuggled request reached the upstream: {new:?}"
        );
        assert!(new.len() <= 1, "case {case}: {new:?}");
        if let Some(up) = new.first() {
            assert_eq!(up.target, path, "case {case}");
            assert!(up.body == payload, "case {case}: {up:?}");
            assert!(
                !(up.headers.contains("content-length")
                    && up.headers.contains("transfer-encoding")),
                "case {case}: forwarded with both framings: {:?}",
                up.headers
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_content_lengths_are_refused_with_400() {
    let rig = start_rig(&[], echo_fingerprint).await;
    let cases = [
        ("two_fields", "Content-Length: 5\r\nContent-Length: 6\r\n"),
        ("one_list", "Content-Length: 5, 6\r\n"),
        ("not_a_number", "Content-Length: 5x\r\n"),
    ];
    for (case, fields) in cases {
        let bytes = format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\nhello!");
        rig.assert_refused(case, bytes.as_bytes(), &[400]).await;
    }
    // Identical duplicates are one length (RFC 9110 §8.6): forwarded once.
    let mut conn = rig.conn().await;
    let dup = format!(
        "POST /dup HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    );
    let r = rig.exchange(&mut conn, "POST", dup.as_bytes()).await;
    assert_ok_with(&r, fingerprint(b"hello").as_bytes(), "identical duplicates");
    let up = rig.upstream.requests().pop().unwrap();
    assert_eq!(
        (up.target.as_str(), up.body.as_slice()),
        ("/dup", b"hello".as_slice())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_not_ending_in_chunked_is_refused() {
    let rig = start_rig(&[], echo_fingerprint).await;
    let cases = [
        (
            "gzip",
            "HTTP/1.1",
            "Transfer-Encoding: gzip\r\n",
            "hello".to_owned(),
        ),
        (
            "chunked_then_gzip",
            "HTTP/1.1",
            "Transfer-Encoding: chunked, gzip\r\n",
            "5\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
        (
            "gzip_with_content_length",
            "HTTP/1.1",
            "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n",
            "hello".to_owned(),
        ),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        (
            "chunked_in_http10",
            "HTTP/1.0",
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
    ];
    for (case, version, fields, body) in cases {
        let bytes = format!("POST /te {version}\r\nHost: {HOST}\r\n{fields}\r\n{body}");
        rig.assert_refused(case, bytes.as_bytes(), &[400, 501])
            .await;
    }
}

/// An HTTP/1.0 request without Host, as old clients send it.
fn http10(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.0\r\nUser-Agent: old-client/1.0\r\n{extra}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_without_host_is_served_by_the_hostless_rule() {
    let rig = start_rig(&[], echo_target).await;

    // No keep-alive: answered, then closed.
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &http10("/ten", "")).await;
    assert_ok_with(&r, b"/ten", "HTTP/1.0 without Host");
    assert!(!r.headers.contains("transfer-encoding"), "{r:?}");
    if r.framing != Framing::Close {
        conn.expect_closed().await.unwrap();
    }

    // Connection: keep-alive keeps it open, with Content-Length framing
    // and the keep-alive confirmed (an HTTP/1.0 client needs both).
    let mut conn = rig.conn().await;
    for path in ["/ka1", "/ka2", "/ka3"] {
        let request = http10(path, "Connection: keep-alive\r\n");
        let r = rig.exchange(&mut conn, "GET", &request).await;
        assert_ok_with(&r, path.as_bytes(), "HTTP/1.0 keep-alive");
        assert_eq!(r.framing, Framing::ContentLength(path.len()), "{r:?}");
        assert!(r.headers.has_token("connection", "keep-alive"), "{r:?}");
    }
    // ... until a request without it.
    let r = rig.exchange(&mut conn, "GET", &http10("/last", "")).await;
    assert_ok_with(&r, b"/last", "last HTTP/1.0 request");
    if r.framing != Framing::Close {
        conn.expect_closed().await.unwrap();
    }
    let targets: Vec<String> = rig
        .upstream
        .requests()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(targets, ["/ten", "/ka1", "/ka2", "/ka3", "/last"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_http10_request_is_answered() {
    let rig = start_rig(&[], echo_target).await;
    let mut conn = rig.conn().await;
    // 18 bytes, a complete and valid request.
    let r = rig
        .exchange(&mut conn, "GET", b"GET / HTTP/1.0\r\n\r\n")
        .await;
    assert_ok_with(&r, b"/", "GET / HTTP/1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_client_never_gets_transfer_encoding() {
    let wire = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        chunked(&[b"chunked ", b"for 1.0"], ""),
    ]
    .concat();
    let rig = start_rig(&[], move |_| Action::Send(wire.clone())).await;
    for extra in ["", "Connection: keep-alive\r\n"] {
        let mut conn = rig.conn().await;
        let r = rig
            .exchange(&mut conn, "GET", &http10("/chunked", extra))
            .await;
        assert_ok_with(&r, b"chunked for 1.0", "chunked upstream, HTTP/1.0 client");
        assert!(
            !r.headers.contains("transfer-encoding"),
            "Transfer-Encoding to an HTTP/1.0 client ({extra:?}): {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_request_with_two_hosts_is_refused_with_400() {
    let rig = start_rig(&[], echo_target).await;
    let bytes = b"GET /two-hosts HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n";
    rig.assert_refused("two_hosts", bytes, &[400]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_request_without_host_is_refused_with_400() {
    let rig = start_rig(&[], echo_target).await;
    let bytes = b"GET /no-host-header HTTP/1.1\r\nUser-Agent: test\r\n\r\n";
    rig.assert_refused("no_host", bytes, &[400]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_from_the_client_gets_the_response_then_eof() {
    let rig = start_rig(&[], echo_target).await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/keep")).await;
    assert_ok_with(&r, b"/keep", "first request");
    let request = format!("GET /bye HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let r = rig.exchange(&mut conn, "GET", request.as_bytes()).await;
    assert_ok_with(&r, b"/bye", "request with Connection: close");
    assert!(
        r.headers.has_token("connection", "close"),
        "the response announces the close: {:?}",
        r.headers
    );
    conn.expect_closed().await.unwrap();
}

/// The upstream's answer carries hop-by-hop fields of its own.
fn hop_by_hop_response(r: &Request) -> Action {
    Action::Send(response(
        200,
        "Connection: x-resp\r\nX-Resp: 1\r\nX-End: 1\r\n",
        r.target.as_bytes(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_hop_by_hop_headers_are_not_forwarded() {
    let rig = start_rig(&[], hop_by_hop_response).await;
    let mut conn = rig.conn().await;
    let request = format!(
        "GET /hop HTTP/1.1\r\nHost: {HOST}\r\nConnection: x-custom\r\nX-Custom: 1\r\nKeep-Alive: 5\r\n\
         Proxy-Connection: keep-alive\r\nX-Other: 2\r\n\r\n"
    );
    let r = rig.exchange(&mut conn, "GET", request.as_bytes()).await;
    assert_ok_with(&r, b"/hop", "hop-by-hop request");
    let up = rig.upstream.requests().pop().unwrap();
    let h = &up.headers;
    for gone in ["x-custom", "keep-alive", "proxy-connection"] {
        assert!(!h.contains(gone), "{gone} was forwarded: {h:?}");
    }
    assert!(!h.has_token("connection", "x-custom"), "{h:?}");
    assert_eq!(h.get("x-other"), Some("2"), "{h:?}");
    // The end-to-end response field arrives; the connection stays usable.
    assert_eq!(r.headers.get("x-end"), Some("1"), "{:?}", r.headers);
    let r = rig.exchange(&mut conn, "GET", &get("/next")).await;
    assert_ok_with(&r, b"/next", "request after hop-by-hop headers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_hop_by_hop_headers_are_not_forwarded() {
    let rig = start_rig(&[], hop_by_hop_response).await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/hop")).await;
    assert_ok_with(&r, b"/hop", "hop-by-hop response");
    let h = &r.headers;
    assert!(!h.contains("x-resp"), "X-Resp reached the client: {h:?}");
    assert!(!h.has_token("connection", "x-resp"), "{h:?}");
    assert_eq!(h.get("x-end"), Some("1"), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_an_idle_keepalive_connection_is_not_an_error() {
    // Each answer is kept alive, then the upstream closes the idle
    // connection 100 ms later.
    let rig = start_rig(&[], |r| {
        Action::SendThenCloseAfter(
            response(200, "", r.target.as_bytes()),
            Duration::from_millis(100),
        )
    })
    .await;
    let mut conn = rig.conn().await;
    let rounds = 6;
    for round in 0..rounds {
        let path = format!("/round-{round}");
        let r = rig.exchange(&mut conn, "GET", &get(&path)).await;
        assert_ok_with(&r, path.as_bytes(), &format!("round {round}"));
        // The pooled connection this answer came on has been closed by the
        // upstream. Every other round the next request follows at once,
        // else after the 200 ms an idle client might wait.
        rig.upstream.wait_for_closes(round + 1).await.unwrap();
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let seen = rig.upstream.seen();
    let connections: BTreeSet<usize> = seen.iter().map(|s| s.connection).collect();
    assert_eq!(seen.len(), rounds, "each request reached the upstream once");
    assert_eq!(
        connections.len(),
        rounds,
        "a fresh upstream connection each time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_response_headers_pass_through() {
    let mut fields = String::new();
    for i in 0..20 {
        let value: String = (0..1000)
            .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
            .collect();
        fields += &format!("X-Big-{i}: {value}\r\n");
    }
    let wire = response(200, &fields, b"big headers");
    let rig = start_rig(&[], move |_| Action::Send(wire.clone())).await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/headers")).await;
    assert_ok_with(&r, b"big headers", "20 KB of response headers");
    for line in fields.trim_end().split("\r\n") {
        let (name, value) = line.split_once(": ").unwrap();
        assert_eq!(r.headers.get(name), Some(value), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_target_reaches_the_upstream_exactly_as_sent() {
    let rig = start_rig(&[], echo_target).await;
    let mut conn = rig.conn().await;
    let targets = [
        "/a%20b/c?x=1&y=%2F",
        "/caf%C3%A9/%7Euser?q=%E2%9C%93&a=1&a=2",
        "/p%2Fq/%2e%2E/r;param=1?",
        "/x//y/?empty=&flag&plus=a+b",
    ];
    for target in targets {
        let r = rig.exchange(&mut conn, "GET", &get(target)).await;
        assert_ok_with(&r, target.as_bytes(), target);
    }
    let seen: Vec<String> = rig
        .upstream
        .requests()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(seen, targets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_upstream_response_is_502() {
    let rig = start_rig(&[], |r| match r.target.as_str() {
        "/garbage" => Action::SendAndClose(b"garbage\r\n\r\n".to_vec()),
        "/unasked-upgrade" => Action::Send(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
                .to_vec(),
        ),
        _ => echo_target(r),
    })
    .await;
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/garbage")).await;
    assert_eq!(r.status, 502, "{r:?}");
    // Switching protocols for a request that asked for no upgrade is not a
    // response the client could use either.
    let mut conn = rig.conn().await;
    let r = rig
        .exchange(&mut conn, "GET", &get("/unasked-upgrade"))
        .await;
    assert_eq!(r.status, 502, "{r:?}");
    // The gateway is unaffected.
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/fine")).await;
    assert_ok_with(&r, b"/fine", "request after the garbage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_is_504_after_the_read_timeout() {
    let rig = start_rig(&["--upstream-read-timeout", "500ms"], |r| {
        match r.target.as_str() {
            "/silent" => Action::Hang,
            _ => echo_target(r),
        }
    })
    .await;
    let mut conn = rig.conn().await;
    let started = Instant::now();
    let r = rig.exchange(&mut conn, "GET", &get("/silent")).await;
    let waited = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(5),
        "504 after {waited:?}"
    );
    let mut conn = rig.conn().await;
    let r = rig.exchange(&mut conn, "GET", &get("/fine")).await;
    assert_ok_with(&r, b"/fine", "request after the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sequential_requests_reuse_client_and_upstream_connections() {
    let rig = start_rig(&[], echo_target).await;
    let accepted_before = rig.upstream.connections();
    let mut conn = rig.conn().await;
    for i in 0..200 {
        let path = format!("/seq/{i}");
        let r = rig.exchange(&mut conn, "GET", &get(&path)).await;
        assert_ok_with(&r, path.as_bytes(), &path);
    }
    let seen = rig.upstream.seen();
    assert_eq!(seen.len(), 200);
    let used: BTreeSet<usize> = seen.iter().map(|s| s.connection).collect();
    assert!(used.len() <= 2, "upstream connections used: {used:?}");
    let accepted = rig.upstream.connections() - accepted_before;
    assert!(accepted <= 2, "{accepted} new upstream connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_timeout_closes_idle_and_trickling_clients() {
    let rig = start_rig(&["--client-timeout", "500ms"], echo_target).await;

    // Idle after a response: closed once the timeout passes.
    let mut idle = rig.conn().await;
    let r = rig.exchange(&mut idle, "GET", &get("/before-idle")).await;
    assert_eq!(r.status, 200);
    let started = std::time::Instant::now();
    idle.expect_closed().await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));

    // A head trickled in a byte every 100 ms never completes in time: the
    // limit covers the whole head, not each read.
    let mut slow = rig.conn().await;
    let head = get("/trickled");
    let started = std::time::Instant::now();
    let mut closed = false;
    for byte in &head {
        if slow.send([*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if started.elapsed() > std::time::Duration::from_secs(3) {
            break;
        }
    }
    if !closed {
        slow.expect_closed().await.unwrap();
    }
    assert!(
        rig.upstream
            .requests()
            .iter()
            .all(|r| r.target != "/trickled"),
        "the trickled request must not be forwarded"
    );

    // Other clients are unaffected.
    let mut fresh = rig.conn().await;
    let r = rig.exchange(&mut fresh, "GET", &get("/after")).await;
    assert_eq!(r.status, 200);
}

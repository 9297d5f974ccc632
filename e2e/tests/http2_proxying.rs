//! HTTP/2 clients (cleartext, prior knowledge) through the gateway to
//! HTTP/1.1 upstreams, observed on both sides: a real HTTP/2 client (hyper)
//! and a hand-written fake upstream that records what it was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use gatehouse_e2e::local::{catch_all_route, LocalGateway};
use gatehouse_e2e::raw_http::{
    chunked, fingerprint, pseudo_random, response, Action, FakeUpstream, Framing, Request,
    READY_PATH,
};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::time::Duration;

const HOST: &str = "h2.test";

struct Rig {
    upstream: FakeUpstream,
    lg: LocalGateway,
}

impl Rig {
    async fn start(handler: impl Fn(&Request) -> Action + Send + Sync + 'static) -> Rig {
        let upstream = FakeUpstream::start(handler).await.unwrap();
        let lg = LocalGateway::start(&[]).await.unwrap();
        lg.write("up.yaml", &catch_all_route(upstream.addr))
            .unwrap();
        let ready = lg
            .eventually(HOST, READY_PATH, |r| r.status == 200 && r.body == "ready")
            .await;
        assert_eq!(ready.status, 200, "route never worked\n{}", lg.logs());
        Rig { upstream, lg }
    }

    /// An HTTP/2 connection to the gateway's plain port (h2c).
    async fn connect(&self) -> hyper::client::conn::http2::SendRequest<BoxedBody> {
        let tcp = tokio::net::TcpStream::connect(self.lg.http).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        sender
    }
}

type BoxedBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

async fn send(
    sender: &mut hyper::client::conn::http2::SendRequest<BoxedBody>,
    request: http::Request<BoxedBody>,
) -> Reply {
    let fut = async {
        let resp = sender.send_request(request).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("HTTP/2 request timed out")
}

fn request(method: &str, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("http://{HOST}{path}"))
}

fn full(bytes: Vec<u8>) -> BoxedBody {
    Full::new(Bytes::from(bytes)).boxed()
}

fn empty() -> BoxedBody {
    full(Vec::new())
}

/// Upstream answer: 200 with the fingerprint of the body it received.
fn fingerprint_body(r: &Request) -> Action {
    Action::Send(response(200, "", fingerprint(&r.body).as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_with_and_without_length_arrive_intact() {
    let rig = Rig::start(fingerprint_body).await;
    let mut h2 = rig.connect().await;
    let payload = pseudo_random(300_000, 7);

    // With a length: forwarded with Content-Length.
    let req = request("POST", "/sized")
        .header("content-length", payload.len())
        .body(full(payload.clone()))
        .unwrap();
    let r = send(&mut h2, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fingerprint(&payload).as_bytes());

    // Without a length (DATA frames as they come): forwarded chunked.
    let pieces: Vec<Result<Frame<Bytes>, Infallible>> = payload
        .chunks(70_000)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let streamed = StreamBody::new(futures::stream::iter(pieces)).boxed();
    let req = request("POST", "/streamed").body(streamed).unwrap();
    let r = send(&mut h2, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fingerprint(&payload).as_bytes());

    let seen = rig.upstream.requests();
    let sized = seen.iter().find(|q| q.target == "/sized").unwrap();
    assert_eq!(sized.framing, Framing::ContentLength(payload.len()));
    let streamed = seen.iter().find(|q| q.target == "/streamed").unwrap();
    assert_eq!(streamed.framing, Framing::Chunked);
    assert!(streamed.body == payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_chunked_responses_arrive_intact_under_flow_control() {
    let big = pseudo_random(5 << 20, 8);
    let pieces = pseudo_random(200_000, 9);
    let (big2, pieces2) = (big.clone(), pieces.clone());
    let rig = Rig::start(move |r| match r.target.as_str() {
        "/big" => Action::Send(response(200, "", &big2)),
        "/chunked" => {
            let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let parts: Vec<&[u8]> = pieces2.chunks(30_000).collect();
            wire.extend_from_slice(&chunked(&parts, ""));
            Action::Send(wire)
        }
        _ => Action::Send(response(200, "", r.target.as_bytes())),
    })
    .await;
    let mut h2 = rig.connect().await;
    let mut second = h2.clone();
    // Two at once on one connection: the 5 MiB body is bigger than every
    // flow-control window, so it only arrives if credit is honoured.
    let (a, b) = tokio::join!(
        send(&mut second, request("GET", "/big").body(empty()).unwrap()),
        send(&mut h2, request("GET", "/chunked").body(empty()).unwrap()),
    );
    assert_eq!((a.status, b.status), (200, 200));
    assert!(a.body == big, "5 MiB body differs ({} bytes)", a.body.len());
    assert_eq!(
        a.headers.get("content-length").unwrap(),
        &big.len().to_string()
    );
    assert!(b.body == pieces, "chunked body differs");
    assert!(b.headers.get("transfer-encoding").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_translated_for_http1_and_back() {
    let rig = Rig::start(|r| match r.target.as_str() {
        "/fields?q=1" => Action::Send(response(
            200,
            "Connection: x-internal\r\nX-Internal: 1\r\nKeep-Alive: 5\r\nX-End: 2\r\n",
            b"ok",
        )),
        _ => Action::Send(response(200, "", r.target.as_bytes())),
    })
    .await;
    let mut h2 = rig.connect().await;
    let req = request("GET", "/fields?q=1")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-forwarded-for", "10.9.9.9")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "h2-id-1")
        .header("x-other", "3")
        .body(empty())
        .unwrap();
    let r = send(&mut h2, req).await;
    assert_eq!(r.status, 200);
    // Connection-specific response fields never reach an HTTP/2 client.
    assert!(r.headers.get("x-internal").is_none(), "{:?}", r.headers);
    assert!(r.headers.get("keep-alive").is_none());
    assert!(r.headers.get("connection").is_none());
    assert_eq!(r.headers.get("x-end").unwrap(), "2");

    let seen = rig.upstream.requests();
    let up = seen.iter().find(|q| q.target == "/fields?q=1").unwrap();
    assert_eq!(up.version, "HTTP/1.1");
    let h = &up.headers;
    assert_eq!(h.get("host"), Some(HOST));
    assert_eq!(
        h.get_all("cookie"),
        vec!["a=1; b=2"],
        "cookies joined (RFC 9113 §8.2.3)"
    );
    assert_eq!(h.get("x-forwarded-for"), Some("10.9.9.9, 127.0.0.1"));
    assert_eq!(h.get("x-forwarded-proto"), Some("http"));
    assert_eq!(h.get("x-forwarded-host"), Some(HOST));
    assert_eq!(h.get("x-request-id"), Some("h2-id-1"));
    assert_eq!(h.get("x-other"), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_fail_one_stream_not_the_connection() {
    let rig = Rig::start(|r| match r.target.as_str() {
        "/garbage" => Action::SendAndClose(b"garbage\r\n\r\n".to_vec()),
        "/cut" => {
            Action::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec())
        }
        _ => Action::Send(response(200, "", r.target.as_bytes())),
    })
    .await;
    let mut h2 = rig.connect().await;
    let r = send(&mut h2, request("GET", "/garbage").body(empty()).unwrap()).await;
    assert_eq!(r.status, 502);
    // A body cut short upstream resets the stream: the client sees an error,
    // never a short body passed off as complete.
    let cut = h2
        .send_request(request("GET", "/cut").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(cut.status(), 200);
    assert!(
        cut.into_body().collect().await.is_err(),
        "a truncated body must not complete"
    );
    // The connection carries on.
    let r = send(&mut h2, request("GET", "/after").body(empty()).unwrap()).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"/after".as_slice()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_our_own_reach_http2_clients() {
    let lg = LocalGateway::start(&[]).await.unwrap();
    // A Service with no endpoints behind `empty.test`; no rule for any other host.
    lg.write(
        "empty.yaml",
        &format!(
            "{}---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: empty}}\nspec:\n  \
             ingressClassName: gatehouse\n  rules:\n  - host: empty.test\n    http:\n      paths:\n      \
             - {{pathType: Prefix, path: /, backend: {{service: {{name: empty, port: {{number: 80}}}}}}}}\n",
            gatehouse_e2e::local::service_manifest("empty", &[])
        ),
    )
    .unwrap();
    lg.eventually("empty.test", "/", |r| r.status == 503).await;
    let r = gatehouse_e2e::client::h2c_get(lg.http, "empty.test", "/x")
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("no ready endpoints"), "{text}");
    let r = gatehouse_e2e::client::h2c_get(lg.http, "nowhere.test", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("no Ingress rule"), "{text}");
}

//! Hostile HTTP/2 clients against the real gateway, written frame by frame
//! (`gatehouse_e2e::raw_h2`): rapid resets (paced and unpaced), streams
//! whose window never opens, idle and slow connections, floods of
//! CONTINUATION, SETTINGS and PING frames, header-list bombs, and frames
//! that must still be checked after the gateway answered a stream itself.
//! Each test asserts that the attack is refused or bounded — the fake
//! upstream's open connections stay few, the connection gets GOAWAY or is
//! closed — and that an honest request on another connection is served
//! meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::local::{endpoint_slice, LocalGateway};
use gatehouse_e2e::raw_h2::{self, code, kind, setting, RawH2, Watched};
use gatehouse_e2e::raw_http::{response, Action, FakeUpstream, Request, READY_PATH};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The routed host; any other host has no rule (404).
const HOST: &str = "h2.test";
const UNROUTED: &str = "nowhere.test";

struct Rig {
    upstream: FakeUpstream,
    lg: LocalGateway,
}

impl Rig {
    async fn start(
        gateway_args: &[&str],
        handler: impl Fn(&Request) -> Action + Send + Sync + 'static,
    ) -> Rig {
        let upstream = FakeUpstream::start(handler).await.unwrap();
        let lg = LocalGateway::start(gateway_args).await.unwrap();
        let route = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: up}}\nspec:\n  ports: [{{name: http, port: 80}}]\n{}---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: up}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n\
             \x20 - host: {HOST}\n    http:\n      paths:\n      - {{pathType: Prefix, path: /, backend: {{service: {{name: up, port: {{number: 80}}}}}}}}\n",
            endpoint_slice("up", "fake", upstream.addr, true)
        );
        lg.write("up.yaml", &route).unwrap();
        let ready = lg
            .eventually(HOST, READY_PATH, |r| r.status == 200 && r.body == "ready")
            .await;
        assert_eq!(ready.status, 200, "route never worked\n{}", lg.logs());
        Rig { upstream, lg }
    }

    /// A raw HTTP/2 connection (h2c prior knowledge) after the preface and
    /// our SETTINGS.
    async fn attacker(&self, params: &[(u16, u32)]) -> RawH2<tokio::net::TcpStream> {
        let mut c = RawH2::connect(self.lg.http).await.unwrap();
        c.handshake(params).await.unwrap();
        c
    }

    /// An honest HTTP/2 request on its own connection must be served.
    async fn honest(&self) {
        let r = gatehouse_e2e::client::h2c_get(self.lg.http, HOST, "/honest")
            .await
            .unwrap_or_else(|e| panic!("honest request failed: {e}\n{}", self.lg.logs()));
        assert_eq!(r.status, 200, "honest request\n{}", self.lg.logs());
    }

    /// Runs `attack` and, once it is under way, an honest request.
    async fn while_attacking<T>(&self, attack: impl Future<Output = T>) -> T {
        let honest = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.honest().await;
        };
        let (out, ()) = tokio::join!(attack, honest);
        out
    }

    /// Waits up to `within` for the upstream's open connections to drop to
    /// at most `n`; returns the last count.
    async fn upstream_open_at_most(&self, n: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let open = self.upstream.open_connections();
            if open <= n || Instant::now() > deadline {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn gateway_rss_mib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.lg.gateway.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024
    }
}

/// Upstream: `/hang` is never answered, everything else gets `200 ok`.
fn hang_or_ok(r: &Request) -> Action {
    match r.target.as_str() {
        "/hang" => Action::Hang,
        _ => Action::Send(response(200, "", b"ok")),
    }
}

fn get(stream: u32, path: &str) -> Vec<u8> {
    raw_h2::headers(
        stream,
        &raw_h2::request_block("GET", HOST, path, &[]),
        true,
        true,
    )
}

/// Writes until the server stops reading or closes; returns whether a
/// write failed (the connection was closed on us).
fn write_failed(r: std::io::Result<()>) -> bool {
    r.is_err()
}

// ---------------------------------------------------------------- rapid reset

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_rapid_reset_cancels_upstream_work_and_ends_in_goaway() {
    let rig = Rig::start(&[], hang_or_ok).await;
    let mut c = rig.attacker(&[]).await;
    let (sent, most_open) = rig
        .while_attacking(async {
            let mut most_open = 0;
            let mut sent = 0;
            // Each stream lives a few milliseconds: long enough for the
            // gateway to start its upstream exchange, then it is reset.
            for i in 0..400u32 {
                let id = 2 * i + 1;
                if write_failed(c.send(&get(id, "/hang")).await) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                if write_failed(c.send(&raw_h2::rst_stream(id, code::CANCEL)).await) {
                    break;
                }
                sent += 1;
                most_open = most_open.max(rig.upstream.open_connections());
            }
            (sent, most_open)
        })
        .await;
    let seen = c.watch(Duration::from_secs(10)).await;
    assert_eq!(
        seen.goaway(),
        Some(code::ENHANCE_YOUR_CALM),
        "a reset-heavy client is cut off ({sent} streams reset, up to {most_open} upstream connections open): {}",
        seen.summary()
    );
    assert!(
        sent < 400,
        "the connection was closed before all 400 resets"
    );
    assert!(
        most_open <= 16,
        "a reset stream's upstream exchange is dropped at once: {most_open} upstream connections were open"
    );
    let open = rig.upstream_open_at_most(2, Duration::from_secs(10)).await;
    assert!(open <= 2, "{open} upstream connections still open");
    rig.honest().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaced_rapid_reset_ends_in_goaway() {
    let rig = Rig::start(&[], hang_or_ok).await;
    let mut c = rig.attacker(&[]).await;
    rig.while_attacking(async {
        for batch in 0..20u32 {
            let mut burst = Vec::new();
            for i in 0..100u32 {
                let id = 2 * (batch * 100 + i) + 1;
                burst.extend(get(id, "/hang"));
                burst.extend(raw_h2::rst_stream(id, code::CANCEL));
            }
            if write_failed(c.send(&burst).await) {
                break;
            }
        }
    })
    .await;
    let seen = c.watch(Duration::from_secs(10)).await;
    assert_eq!(
        seen.goaway(),
        Some(code::ENHANCE_YOUR_CALM),
        "{}",
        seen.summary()
    );
    let open = rig.upstream_open_at_most(2, Duration::from_secs(10)).await;
    assert!(open <= 2, "{open} upstream connections still open");
}

// ---------------------------------------------------------------- zero window

/// 128 streams from a client whose stream windows are 0.
async fn open_zero_window_streams(c: &mut RawH2<tokio::net::TcpStream>, path: &str) {
    let mut burst = Vec::new();
    for i in 0..128u32 {
        burst.extend(get(2 * i + 1, path));
    }
    c.send(&burst).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_streams_hold_no_upstream_connection_for_small_responses() {
    // Each response is complete in one read and not reusable upstream, so
    // once read the upstream connection has nothing left to do.
    let rig = Rig::start(&["--client-timeout", "60s"], |_| {
        Action::Send(response(200, "Connection: close\r\n", &[b'x'; 2000]))
    })
    .await;
    let mut c = rig.attacker(&[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
    rig.while_attacking(open_zero_window_streams(&mut c, "/small"))
        .await;
    let heads = c
        .watch_until(Duration::from_secs(15), |w| w.responses() >= 128)
        .await;
    assert_eq!(heads.responses(), 128, "{}", heads.summary());
    let open = rig.upstream_open_at_most(4, Duration::from_secs(10)).await;
    assert!(
        open <= 4,
        "{open} upstream connections held while the client's window is closed\n{}",
        rig.lg.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_streams_are_reset_after_the_client_timeout() {
    let big = vec![b'y'; 256 * 1024];
    let rig = Rig::start(&["--client-timeout", "2s"], move |_| {
        Action::Send(response(200, "", &big))
    })
    .await;
    let mut c = rig.attacker(&[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
    rig.while_attacking(open_zero_window_streams(&mut c, "/big"))
        .await;
    let seen = c
        .watch_until(Duration::from_secs(20), |w| w.reset_streams() >= 128)
        .await;
    assert_eq!(seen.reset_streams(), 128, "{}", seen.summary());
    assert_eq!(seen.reset(1), Some(code::CANCEL), "{}", seen.summary());
    let open = rig.upstream_open_at_most(4, Duration::from_secs(10)).await;
    assert!(open <= 4, "{open} upstream connections still held");
    rig.honest().await;
}

// ------------------------------------------------------ idle and slow clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_get_goaway_after_the_client_timeout() {
    let rig = Rig::start(&["--client-timeout", "2s"], hang_or_ok).await;
    // No stream at all.
    let mut idle = rig.attacker(&[]).await;
    // A finished stream, then nothing.
    let mut after_one = rig.attacker(&[]).await;
    after_one.send(&get(1, "/one")).await.unwrap();
    // Only PINGs, which must not keep a connection alive.
    let mut pinging = rig.attacker(&[]).await;
    let (idle_seen, after_seen, ping_seen) = rig
        .while_attacking(async {
            let pings = async {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut seen = Watched::default();
                while Instant::now() < deadline && !seen.closed {
                    if pinging.send(&raw_h2::ping(*b"stayhere")).await.is_err() {
                        seen.closed = true;
                        break;
                    }
                    let more = pinging.watch(Duration::from_millis(300)).await;
                    seen.closed = more.closed;
                    seen.frames.extend(more.frames);
                }
                seen
            };
            tokio::join!(
                idle.watch(Duration::from_secs(20)),
                after_one.watch(Duration::from_secs(20)),
                pings
            )
        })
        .await;
    for (name, seen) in [
        ("idle", &idle_seen),
        ("after one stream", &after_seen),
        ("PING only", &ping_seen),
    ] {
        assert!(
            seen.closed,
            "{name} connection still open: {}",
            seen.summary()
        );
        assert_eq!(
            seen.goaway(),
            Some(code::NO_ERROR),
            "{name}: {}",
            seen.summary()
        );
    }
    assert_eq!(after_seen.responses(), 1, "{}", after_seen.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_prefaces_are_cut_off() {
    let rig = Rig::start(&["--client-timeout", "2s"], hang_or_ok).await;
    // TLS with ALPN h2, then not a byte of the preface.
    let opts = gatehouse_e2e::tls::ClientOptions::new(gatehouse_e2e::tls::Verify::Nothing);
    let (tls, hs) = gatehouse_e2e::tls::connect(rig.lg.https, Some(HOST), &opts)
        .await
        .unwrap();
    assert_eq!(hs.alpn.as_deref(), Some(&b"h2"[..]));
    let mut silent_tls = RawH2::new(tls);
    // Cleartext: the preface, but never the SETTINGS frame that must follow.
    let mut no_settings = RawH2::connect(rig.lg.http).await.unwrap();
    no_settings.send(raw_h2::PREFACE).await.unwrap();
    // Cleartext: half the preface.
    let mut half = RawH2::connect(rig.lg.http).await.unwrap();
    half.send(&raw_h2::PREFACE[..10]).await.unwrap();
    let (a, b, c) = rig
        .while_attacking(async {
            tokio::join!(
                silent_tls.watch(Duration::from_secs(20)),
                no_settings.watch(Duration::from_secs(20)),
                half.watch(Duration::from_secs(20)),
            )
        })
        .await;
    for (name, seen) in [
        ("TLS h2 without a preface", &a),
        ("preface without SETTINGS", &b),
        ("half a preface", &c),
    ] {
        assert!(seen.closed, "{name}: still open: {}", seen.summary());
    }
}

// -------------------------------------- frames after the gateway's own answer

/// A name, the head, what follows once it is answered, the error codes
/// that show the frames were checked.
type Case = (&'static str, Vec<u8>, Vec<u8>, &'static [u32]);

/// The h2spec cases that failed for hosts without a route: a stream the
/// gateway answered itself (404) must still be checked. The rest of each
/// case is sent only once the answer is in, as it happens when h2spec's
/// frames arrive one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_answered_locally_are_still_checked() {
    let rig = Rig::start(&[], hang_or_ok).await;
    let head = |method: &str, extra: &[(&str, &str)]| {
        raw_h2::headers(
            1,
            &raw_h2::request_block(method, UNROUTED, "/", extra),
            false,
            true,
        )
    };
    let trailers = |name: &str| raw_h2::headers(1, &raw_h2::literal(name, b"POST"), false, true);
    let get_head = raw_h2::headers(
        1,
        &raw_h2::request_block("GET", UNROUTED, "/", &[]),
        false,
        true,
    );
    let cases: Vec<Case> = vec![
        (
            "h2spec 5.1/8: DATA after RST_STREAM",
            head("GET", &[]),
            [
                raw_h2::rst_stream(1, code::CANCEL),
                raw_h2::data(1, b"test", true),
            ]
            .concat(),
            &[code::STREAM_CLOSED],
        ),
        (
            "h2spec 5.1/9: HEADERS after RST_STREAM",
            head("GET", &[]),
            [raw_h2::rst_stream(1, code::CANCEL), get_head].concat(),
            // PROTOCOL_ERROR once the h2 crate has forgotten the stream
            // (a HEADERS frame then looks like reuse of an old stream id).
            &[code::STREAM_CLOSED, code::PROTOCOL_ERROR],
        ),
        (
            "h2spec 8.1/1: second HEADERS without END_STREAM",
            head("POST", &[]),
            [raw_h2::data(1, b"test", false), trailers("x-test")].concat(),
            &[code::PROTOCOL_ERROR],
        ),
        (
            "h2spec 8.1.2.1/3: pseudo-header field in trailers",
            head("POST", &[]),
            [raw_h2::data(1, b"test", false), trailers(":method")].concat(),
            &[code::PROTOCOL_ERROR],
        ),
        (
            "h2spec 8.1.2.6/1: DATA longer than content-length",
            head("POST", &[("content-length", "1")]),
            raw_h2::data(1, b"test", true),
            &[code::PROTOCOL_ERROR],
        ),
    ];
    for (name, first, rest, want) in cases {
        let mut c = rig.attacker(&[]).await;
        c.send(&first).await.unwrap();
        let answered = c
            .watch_until(Duration::from_secs(5), |w| w.responses() > 0)
            .await;
        assert_eq!(answered.responses(), 1, "{name}: {}", answered.summary());
        c.send(&rest).await.unwrap();
        let seen = c
            .watch_until(Duration::from_secs(5), |w| {
                w.reset(1).is_some() || w.goaway().is_some()
            })
            .await;
        let got = seen.reset(1).or(seen.goaway()).or(answered.reset(1));
        assert!(
            got.is_some_and(|code| want.contains(&code)),
            "{name}: want one of {want:?}; after the answer {}; then {}",
            answered.summary(),
            seen.summary()
        );
    }
    // h2spec 6.9.1/3: window updates right behind the head, as h2spec
    // sends them. Once the gateway's answer is complete the stream can send
    // nothing more and the h2 crate ignores its window; before, the window
    // past 2^31-1 must reset the stream.
    let mut c = rig.attacker(&[]).await;
    let frames = [
        head("GET", &[]),
        raw_h2::window_update(1, 0x7fff_ffff),
        raw_h2::window_update(1, 0x7fff_ffff),
    ]
    .concat();
    c.send(&frames).await.unwrap();
    let seen = c
        .watch_until(Duration::from_secs(5), |w| w.reset(1).is_some())
        .await;
    assert_eq!(
        seen.reset(1),
        Some(code::FLOW_CONTROL_ERROR),
        "h2spec 6.9.1/3: {}",
        seen.summary()
    );
    rig.honest().await;
}

// ------------------------------------------------------------------- floods

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_floods_are_cut_off() {
    let rig = Rig::start(&[], hang_or_ok).await;
    let mut c = rig.attacker(&[]).await;
    let closed = rig
        .while_attacking(async {
            let first = raw_h2::unended_headers(1, HOST, "/flood");
            if c.send(&first).await.is_err() {
                return true;
            }
            // CONTINUATION frames that never end the header block.
            let one = raw_h2::continuation(1, &raw_h2::literal("x-a", b"b"), false);
            let burst = raw_h2::repeated(&one, 1000);
            for _ in 0..1000 {
                if c.send(&burst).await.is_err() {
                    return true;
                }
            }
            false
        })
        .await;
    let seen = c.watch(Duration::from_secs(10)).await;
    assert!(
        closed || seen.closed,
        "a million CONTINUATION frames were read: {}",
        seen.summary()
    );
    assert!(
        rig.upstream.requests().iter().all(|r| r.target != "/flood"),
        "the flooded request went upstream"
    );
    rig.honest().await;
}

/// Sends `frame` over and over without reading anything back.
async fn flood(c: &mut RawH2<tokio::net::TcpStream>, frame: &[u8], times: usize) -> bool {
    let burst = raw_h2::repeated(frame, 1000);
    for _ in 0..times / 1000 {
        let sent = tokio::time::timeout(Duration::from_secs(5), c.send(&burst)).await;
        match sent {
            Ok(Ok(())) => {}
            // Closed on us.
            Ok(Err(_)) => return true,
            // The gateway stopped reading: the flood is held back by TCP.
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_are_bounded() {
    let rig = Rig::start(&["--client-timeout", "2s"], hang_or_ok).await;
    let rss_before = rig.gateway_rss_mib();
    let settings = raw_h2::settings(&[(setting::MAX_CONCURRENT_STREAMS, 100)]);
    let ping = raw_h2::ping(*b"floodpng");
    let mut a = rig.attacker(&[]).await;
    let mut b = rig.attacker(&[]).await;
    rig.while_attacking(async {
        tokio::join!(
            flood(&mut a, &settings, 1_000_000),
            flood(&mut b, &ping, 1_000_000)
        )
    })
    .await;
    let rss_during = rig.gateway_rss_mib();
    // Neither connection has a stream: both are closed at the latest by the
    // idle timeout, whether or not the flood is read.
    let (sa, sb) = tokio::join!(
        a.watch(Duration::from_secs(30)),
        b.watch(Duration::from_secs(30))
    );
    assert!(sa.closed, "SETTINGS flood connection still open");
    assert!(sb.closed, "PING flood connection still open");
    assert!(
        rss_during < rss_before + 100,
        "gateway RSS grew from {rss_before} to {rss_during} MiB"
    );
    rig.honest().await;
}

// -------------------------------------------------------- header-list bombs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_list_bombs_are_refused() {
    let rig = Rig::start(&[], hang_or_ok).await;
    // One 4 KB field in the dynamic table, then referenced 2,000 times with
    // one byte each: 8 MB of header list from 6 KB on the wire.
    let mut block = raw_h2::request_block("GET", HOST, "/bomb-indexed", &[]);
    block.extend(raw_h2::literal_indexed("x-bomb", &[b'b'; 4000]));
    for _ in 0..2000 {
        block.extend(raw_h2::indexed(62));
    }
    // 20,000 small fields.
    let mut many = raw_h2::request_block("GET", HOST, "/bomb-many", &[]);
    for i in 0..20_000 {
        many.extend(raw_h2::literal(&format!("x-{i}"), b"1"));
    }
    for (path, block) in [("/bomb-indexed", block), ("/bomb-many", many)] {
        let mut c = rig.attacker(&[]).await;
        // Split into frames of at most 16 KiB (the default maximum).
        let mut frames = Vec::new();
        let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            frames.extend(if i == 0 {
                raw_h2::headers(1, chunk, true, last)
            } else {
                raw_h2::continuation(1, chunk, last)
            });
        }
        let seen = rig
            .while_attacking(async {
                let _ = c.send(&frames).await;
                c.watch_until(Duration::from_secs(10), |w| {
                    w.responses() > 0 || w.reset(1).is_some() || w.goaway().is_some()
                })
                .await
            })
            .await;
        let refused = seen.closed
            || seen.goaway().is_some()
            || seen.reset(1).is_some()
            || seen
                .frames
                .iter()
                .any(|f| f.kind == kind::HEADERS && f.stream == 1);
        assert!(refused, "{path}: no answer at all: {}", seen.summary());
        assert!(
            rig.upstream.requests().iter().all(|r| r.target != path),
            "{path} went upstream"
        );
    }
}

/// Issue 10, the underscore rule: `x_auth_user` could stand in for
/// `X-Auth-User` in a CGI-style backend, so HTTP/2 requests lose it on
/// the way upstream as HTTP/1.x ones do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_names_with_underscores_are_not_sent_upstream() {
    let rig = Rig::start(&[], hang_or_ok).await;
    let mut c = rig.attacker(&[]).await;
    let extra = [("x_auth_user", "admin"), ("x-auth-user", "alice")];
    let block = raw_h2::request_block("GET", HOST, "/underscore", &extra);
    c.send(&raw_h2::headers(1, &block, true, true))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let found = rig
            .upstream
            .requests()
            .into_iter()
            .find(|r| r.target == "/underscore");
        if let Some(r) = found {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream\n{}",
            rig.lg.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen.headers.get("x-auth-user"), Some("alice"));
    assert_eq!(seen.headers.get("x_auth_user"), None, "{:?}", seen.headers);
    rig.honest().await;
}

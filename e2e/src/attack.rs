//! Attackers for the soak benchmark (`gatehouse-attack`, driven by
//! `gatehouse-bench --soak`): each runs its probe over and over against a
//! proxy's plain port, reconnecting whenever the proxy closes on it, until
//! told to stop. Loopback only: the address comes from the caller.

use crate::raw_h2::{self, code, setting, RawH2};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// One kind of attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP/1.1 request heads sent a byte every second.
    SlowHeads,
    /// HTTP/1.1 uploads of a declared 1 MB sent a byte every second.
    SlowBodies,
    /// HTTP/2 connections that send the preface and SETTINGS, then nothing.
    IdleH2,
    /// HTTP/2 streams reset a few milliseconds after they open.
    PacedReset,
    /// HTTP/2 streams opened with a zero window, never read.
    ZeroWindow,
    /// PING, SETTINGS and CONTINUATION floods.
    Floods,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::SlowHeads,
        Kind::SlowBodies,
        Kind::IdleH2,
        Kind::PacedReset,
        Kind::ZeroWindow,
        Kind::Floods,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SlowHeads => "slow-heads",
            Kind::SlowBodies => "slow-bodies",
            Kind::IdleH2 => "idle-h2",
            Kind::PacedReset => "paced-reset",
            Kind::ZeroWindow => "zero-window",
            Kind::Floods => "floods",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What the attackers did, shared by all of them.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections opened.
    pub connections: AtomicU64,
    /// Connections the proxy ended (closed, reset, or a write failed).
    pub cut_off: AtomicU64,
    /// Connections that could not be opened.
    pub refused: AtomicU64,
}

/// Where the attackers go: a loopback address, and the host and path of
/// their requests.
#[derive(Debug, Clone)]
pub struct Aim {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

/// Runs `count` attackers of `kind` at `aim` until `stop` is set.
pub async fn run(
    kind: Kind,
    count: usize,
    aim: Arc<Aim>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let (aim, stop, tally) = (aim.clone(), stop.clone(), tally.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(tcp) = TcpStream::connect(aim.addr).await else {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                tally.connections.fetch_add(1, Ordering::Relaxed);
                let cut = once(kind, tcp, &aim, i, &stop).await;
                if cut {
                    tally.cut_off.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One connection's worth of attack; `true` if the proxy ended it.
async fn once(kind: Kind, tcp: TcpStream, aim: &Aim, i: usize, stop: &AtomicBool) -> bool {
    match kind {
        Kind::SlowHeads => slow_http1(tcp, aim, false, stop).await,
        Kind::SlowBodies => slow_http1(tcp, aim, true, stop).await,
        Kind::IdleH2 => idle_h2(RawH2::new(tcp), stop).await,
        Kind::PacedReset => paced_reset(RawH2::new(tcp), aim, stop).await,
        Kind::ZeroWindow => zero_window(RawH2::new(tcp), aim, stop).await,
        Kind::Floods => flood(RawH2::new(tcp), aim, i, stop).await,
    }
}

/// Waits up to `d`, in steps, unless stopping.
async fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = left.min(step);
        tokio::time::sleep(now).await;
        left -= now;
    }
    true
}

async fn slow_http1(mut tcp: TcpStream, aim: &Aim, body: bool, stop: &AtomicBool) -> bool {
    let Aim { host, path, .. } = aim;
    let head = if body {
        format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000000\r\n\r\n")
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ")
    };
    if body && tcp.write_all(head.as_bytes()).await.is_err() {
        return true;
    }
    let trickle = if body { b"x" } else { b"a" };
    let slow_head = head.into_bytes();
    for i in 0.. {
        if !pause(Duration::from_secs(1), stop).await {
            return false;
        }
        let byte = if !body && i < slow_head.len() {
            &slow_head[i..=i]
        } else {
            &trickle[..]
        };
        if tcp.write_all(byte).await.is_err() {
            return true;
        }
    }
    false
}

/// Reads what the proxy sends (so it is not held back by an unread
/// socket) until it closes or `stop`; `true` if it closed.
async fn until_closed<S>(c: &mut RawH2<S>, stop: &AtomicBool) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while !stop.load(Ordering::Relaxed) {
        if c.watch(Duration::from_millis(200)).await.closed {
            return true;
        }
    }
    false
}

async fn idle_h2(mut c: RawH2<TcpStream>, stop: &AtomicBool) -> bool {
    if c.handshake(&[]).await.is_err() {
        return true;
    }
    until_closed(&mut c, stop).await
}

async fn paced_reset(mut c: RawH2<TcpStream>, aim: &Aim, stop: &AtomicBool) -> bool {
    if c.handshake(&[]).await.is_err() {
        return true;
    }
    let mut id = 1u32;
    while !stop.load(Ordering::Relaxed) {
        let open = raw_h2::headers(
            id,
            &raw_h2::request_block("GET", &aim.host, &aim.path, &[]),
            true,
            true,
        );
        if c.send(&open).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if c.send(&raw_h2::rst_stream(id, code::CANCEL)).await.is_err() {
            return true;
        }
        // Take what came back (GOAWAY, responses) without waiting.
        if c.watch(Duration::from_millis(1)).await.closed {
            return true;
        }
        id += 2;
    }
    false
}

async fn zero_window(mut c: RawH2<TcpStream>, aim: &Aim, stop: &AtomicBool) -> bool {
    if c.handshake(&[(setting::INITIAL_WINDOW_SIZE, 0)])
        .await
        .is_err()
    {
        return true;
    }
    let mut burst = Vec::new();
    for i in 0..100u32 {
        burst.extend(raw_h2::headers(
            2 * i + 1,
            &raw_h2::request_block("GET", &aim.host, &aim.path, &[]),
            true,
            true,
        ));
    }
    if c.send(&burst).await.is_err() {
        return true;
    }
    until_closed(&mut c, stop).await
}

/// Floods of one frame type per connection, in turn (by attacker number).
async fn flood(mut c: RawH2<TcpStream>, aim: &Aim, i: usize, stop: &AtomicBool) -> bool {
    if c.handshake(&[]).await.is_err() {
        return true;
    }
    let frame = match i % 3 {
        0 => raw_h2::ping(*b"soakping"),
        1 => raw_h2::settings(&[(setting::MAX_CONCURRENT_STREAMS, 100)]),
        _ => {
            if c.send(&raw_h2::unended_headers(1, &aim.host, &aim.path))
                .await
                .is_err()
            {
                return true;
            }
            raw_h2::continuation(1, &raw_h2::literal("x-a", b"b"), false)
        }
    };
    let burst = raw_h2::repeated(&frame, 500);
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), c.send(&burst)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return true,
            // Not read any more: keep the connection as it is.
            Err(_) => {
                if c.watch(Duration::from_millis(100)).await.closed {
                    return true;
                }
            }
        }
    }
    false
}

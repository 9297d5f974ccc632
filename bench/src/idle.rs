//! The idle-connections cell: resident memory each proxy spends per idle
//! client connection. Freshly started proxies (10 routes) get `connections`
//! clients of one kind, all left idle; the cell is the growth of each
//! proxy's RSS (`VmRSS`; nginx runs as its one worker) divided by the
//! connections, once they are all established and answered. Each kind gets
//! new processes, since an allocator keeps what earlier connections freed.
//! Blocking sockets on loopback.
//!
//! Kinds: HTTP/1.1 connected but silent (what a fresh keep-alive client or a
//! port scanner leaves); HTTP/1.1 after one answered request (an idle
//! keep-alive client); HTTP/2 prior knowledge after one answered request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::http_probe::{Probe, ProbeError};
use crate::proxies::{Endpoint, ProxyKind};
use crate::routes::RouteSet;
use crate::sysstat::{self, StatError};

/// How long a connection may take to be set up and answered.
const STEP: Duration = Duration::from_secs(10);
/// Time for the proxy to finish its own work on the new connections (and
/// the allocator to settle) before its RSS is read.
const SETTLE: Duration = Duration::from_millis(1500);

#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    #[error("{kind} client {index} to {name}: {source}")]
    Io {
        kind: &'static str,
        index: usize,
        name: &'static str,
        source: std::io::Error,
    },
    #[error("{kind} client {index} to {name}: {source}")]
    Probe {
        kind: &'static str,
        index: usize,
        name: &'static str,
        source: ProbeError,
    },
    #[error("{kind} client {index} to {name}: {what}")]
    Protocol {
        kind: &'static str,
        index: usize,
        name: &'static str,
        what: String,
    },
    #[error("reading {1}'s memory: {0}")]
    Memory(#[source] StatError, &'static str),
}

/// What idle clients do before going quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdleKind {
    Http1Silent,
    Http1AfterRequest,
    Http2AfterRequest,
}

impl IdleKind {
    pub const ALL: [IdleKind; 3] = [
        IdleKind::Http1Silent,
        IdleKind::Http1AfterRequest,
        IdleKind::Http2AfterRequest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IdleKind::Http1Silent => "HTTP/1.1, connected, nothing sent",
            IdleKind::Http1AfterRequest => "HTTP/1.1 keep-alive, after one request",
            IdleKind::Http2AfterRequest => "HTTP/2 (h2c), after one request",
        }
    }
}

/// One proxy's growth for one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleSample {
    pub kind: IdleKind,
    pub proxy: ProxyKind,
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

impl IdleSample {
    /// KiB of RSS per idle connection (0 when RSS did not grow).
    pub fn kib_per_connection(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.connections as f64
    }
}

/// A client holding its connection open (until dropped).
enum Held {
    Raw { _stream: TcpStream },
    Probe { _probe: Box<Probe> },
}

/// Opens `connections` idle clients of `kind` against each endpoint in
/// turn and reads each proxy's RSS before and after.
pub fn run(
    endpoints: &[Endpoint],
    kind: IdleKind,
    connections: usize,
    mut progress: impl FnMut(&IdleSample),
) -> Result<Vec<IdleSample>, IdleError> {
    let host = RouteSet::host(0);
    let mut samples = Vec::new();
    for ep in endpoints {
        let Some(process) = ep.process.as_ref() else {
            continue;
        };
        let name = ep.kind.name();
        let pid = process.pid();
        let rss = || sysstat::process_rss_kib(pid).map_err(|e| IdleError::Memory(e, name));
        std::thread::sleep(SETTLE);
        let rss_before_kib = rss()?;
        let mut held = Vec::with_capacity(connections);
        for index in 0..connections {
            held.push(open(kind, ep, &host, index)?);
        }
        std::thread::sleep(SETTLE);
        let rss_after_kib = rss()?;
        drop(held);
        let sample = IdleSample {
            kind,
            proxy: ep.kind,
            connections,
            rss_before_kib,
            rss_after_kib,
        };
        progress(&sample);
        samples.push(sample);
    }
    Ok(samples)
}

fn open(kind: IdleKind, ep: &Endpoint, host: &str, index: usize) -> Result<Held, IdleError> {
    let name = ep.kind.name();
    let io = |source| IdleError::Io {
        kind: kind.name(),
        index,
        name,
        source,
    };
    let protocol = |what| IdleError::Protocol {
        kind: kind.name(),
        index,
        name,
        what,
    };
    match kind {
        IdleKind::Http1Silent => TcpStream::connect_timeout(&ep.http1, STEP)
            .map(|stream| Held::Raw { _stream: stream })
            .map_err(io),
        IdleKind::Http1AfterRequest => {
            let mut probe = Probe::new(ep.http1, STEP);
            let reply = probe.get(host, "/").map_err(|source| IdleError::Probe {
                kind: kind.name(),
                index,
                name,
                source,
            })?;
            if reply.status != 200 {
                return Err(protocol(format!("status {}", reply.status)));
            }
            Ok(Held::Probe {
                _probe: Box::new(probe),
            })
        }
        IdleKind::Http2AfterRequest => {
            let stream = TcpStream::connect_timeout(&ep.http2, STEP).map_err(io)?;
            h2_get(stream, ep.http2, host).map_err(protocol)
        }
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `GET /` with `:authority host` as an HPACK block of indexed and
/// literal (never Huffman-coded) fields.
fn request_block(host: &str) -> Vec<u8> {
    // :method GET, :scheme http, :path / (static table 2, 6, 4).
    let mut block = vec![0x82, 0x86, 0x84];
    // :authority (static 1) as a literal without indexing; the length fits
    // the 7-bit prefix for the bench's host names.
    block.push(0x01);
    block.push(host.len() as u8 & 0x7f);
    block.extend_from_slice(host.as_bytes());
    block
}

/// One HTTP/2 request on a new connection, read until its stream ends
/// (acknowledging the server's SETTINGS); the connection is kept open.
fn h2_get(mut stream: TcpStream, addr: SocketAddr, host: &str) -> Result<Held, String> {
    let err = |e: std::io::Error| format!("{addr}: {e}");
    stream.set_read_timeout(Some(STEP)).map_err(err)?;
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(FRAME_SETTINGS, 0, 0, &[]));
    hello.extend(frame(
        FRAME_HEADERS,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        1,
        &request_block(host),
    ));
    stream.write_all(&hello).map_err(err)?;
    loop {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).map_err(err)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).map_err(err)?;
        match kind {
            FRAME_SETTINGS if flags & FLAG_ACK == 0 => {
                stream
                    .write_all(&frame(FRAME_SETTINGS, FLAG_ACK, 0, &[]))
                    .map_err(err)?;
            }
            FRAME_GOAWAY => return Err(format!("{addr}: GOAWAY before the response ended")),
            FRAME_DATA | FRAME_HEADERS if id == 1 && flags & FLAG_END_STREAM != 0 => {
                return Ok(Held::Raw { _stream: stream });
            }
            _ => {}
        }
    }
}

/// The cell's table: KiB per idle connection for each kind and proxy, with
/// Gatehouse's ratio to nginx and HAProxy.
pub fn table(samples: &[IdleSample]) -> String {
    let mut out = String::from(
        "| idle clients | connections | nginx KiB/conn | HAProxy KiB/conn | Gatehouse KiB/conn | Gatehouse ÷ nginx | Gatehouse ÷ HAProxy |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for kind in IdleKind::ALL {
        let of = |proxy| {
            samples
                .iter()
                .find(|s| s.kind == kind && s.proxy == proxy)
                .map(IdleSample::kib_per_connection)
        };
        let (nginx, haproxy, gatehouse) = (
            of(ProxyKind::Nginx),
            of(ProxyKind::Haproxy),
            of(ProxyKind::Gatehouse),
        );
        let connections = samples
            .iter()
            .find(|s| s.kind == kind)
            .map_or(0, |s| s.connections);
        let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
            _ => "–".to_owned(),
        };
        out += &format!(
            "| {} | {connections} | {} | {} | {} | {} | {} |\n",
            kind.name(),
            cell(nginx),
            cell(haproxy),
            cell(gatehouse),
            ratio(gatehouse, nginx),
            ratio(gatehouse, haproxy),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_have_the_length_type_flags_and_stream() {
        let f = frame(FRAME_HEADERS, FLAG_END_HEADERS, 3, b"abc");
        assert_eq!(f, [0, 0, 3, 1, 4, 0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn the_request_block_names_the_host_literally() {
        let block = request_block("r0.bench.test");
        assert_eq!(&block[..5], &[0x82, 0x86, 0x84, 0x01, 13]);
        assert_eq!(&block[5..], b"r0.bench.test");
    }

    #[test]
    fn growth_is_shared_by_the_connections_and_never_negative() {
        let sample = |before, after| IdleSample {
            kind: IdleKind::Http1Silent,
            proxy: ProxyKind::Gatehouse,
            connections: 1000,
            rss_before_kib: before,
            rss_after_kib: after,
        };
        assert_eq!(sample(10_000, 18_000).kib_per_connection(), 8.0);
        assert_eq!(sample(10_000, 9_000).kib_per_connection(), 0.0);
        let table = table(&[sample(0, 2000)]);
        assert!(
            table.contains("| HTTP/1.1, connected, nothing sent | 1000 | – | – | 2.0 | – | – |")
        );
    }
}

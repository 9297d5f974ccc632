//! HTTP/2 on the wire, for hostile-client tests: frames encoded by hand
//! (RFC 9113 §4.1) and HPACK header blocks of literal fields (RFC 7541
//! §6.2), so a test can send what no well-behaved client library would —
//! floods, resets at any moment, windows that never open — and see exactly
//! which frames come back.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
}

/// SETTINGS parameters.
pub mod setting {
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
}

/// Error codes (RST_STREAM, GOAWAY).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// One frame: 9-byte header, then the payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(params.len() * 6);
    for (id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(kind::SETTINGS, flag::ACK, 0, &[])
}

pub fn ping(data: [u8; 8]) -> Vec<u8> {
    frame(kind::PING, 0, 0, &data)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn data(stream: u32, payload: &[u8], end_stream: bool) -> Vec<u8> {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    frame(kind::DATA, flags, stream, payload)
}

pub fn headers(stream: u32, block: &[u8], end_stream: bool, end_headers: bool) -> Vec<u8> {
    let mut flags = 0;
    if end_stream {
        flags |= flag::END_STREAM;
    }
    if end_headers {
        flags |= flag::END_HEADERS;
    }
    frame(kind::HEADERS, flags, stream, block)
}

pub fn continuation(stream: u32, block: &[u8], end_headers: bool) -> Vec<u8> {
    let flags = if end_headers { flag::END_HEADERS } else { 0 };
    frame(kind::CONTINUATION, flags, stream, block)
}

/// `frame` `times` times over, for floods.
pub fn repeated(frame: &[u8], times: usize) -> Vec<u8> {
    frame.repeat(times)
}

/// The start of a header block that never ends: a GET's HEADERS frame
/// without END_HEADERS, for CONTINUATION floods.
pub fn unended_headers(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    headers(
        stream,
        &request_block("GET", authority, path, &[]),
        true,
        false,
    )
}

/// HPACK: an integer with an `n`-bit prefix, the high bits of its first
/// byte set to `high` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, n: u32, high: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// A literal field with a new name, not added to the dynamic table.
pub fn literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    hpack_string(&mut out, name.as_bytes());
    hpack_string(&mut out, value);
    out
}

/// A literal field with a new name, added to the dynamic table (it
/// becomes index 62 and pushes older entries up).
pub fn literal_indexed(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    hpack_string(&mut out, name.as_bytes());
    hpack_string(&mut out, value);
    out
}

/// A field by its index in the static or dynamic table.
pub fn indexed(index: usize) -> Vec<u8> {
    let mut out = Vec::new();
    hpack_int(&mut out, 7, 0x80, index);
    out
}

/// The header block of a request (`http` scheme) with extra fields.
pub fn request_block(method: &str, authority: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in [
        (":method", method),
        (":scheme", "http"),
        (":authority", authority),
        (":path", path),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        out.extend(literal(name, value.as_bytes()));
    }
    out
}

/// A frame received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            kind::RST_STREAM => 0,
            kind::GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// What came back over a while.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub frames: Vec<Frame>,
    /// The server closed the connection (EOF or reset).
    pub closed: bool,
}

impl Watched {
    /// The error code of the first GOAWAY, if one came.
    pub fn goaway(&self) -> Option<u32> {
        self.frames
            .iter()
            .find(|f| f.kind == kind::GOAWAY)
            .and_then(Frame::error_code)
    }

    /// The error code of the first RST_STREAM on `stream`.
    pub fn reset(&self, stream: u32) -> Option<u32> {
        self.frames
            .iter()
            .find(|f| f.kind == kind::RST_STREAM && f.stream == stream)
            .and_then(Frame::error_code)
    }

    /// Streams that got a RST_STREAM.
    pub fn reset_streams(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.kind == kind::RST_STREAM)
            .count()
    }

    /// Streams that got a response head.
    pub fn responses(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.kind == kind::HEADERS)
            .count()
    }

    /// A one-line account for assertion messages.
    pub fn summary(&self) -> String {
        let names: Vec<String> = self
            .frames
            .iter()
            .map(|f| match f.error_code() {
                Some(c) => format!("{}#{}(0x{c:x})", kind_name(f.kind), f.stream),
                None => format!("{}#{}", kind_name(f.kind), f.stream),
            })
            .collect();
        let shown = names.len().min(40);
        format!(
            "{} frames [{}{}], closed: {}",
            names.len(),
            names[..shown].join(" "),
            if names.len() > shown { " …" } else { "" },
            self.closed
        )
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        kind::DATA => "DATA",
        kind::HEADERS => "HEADERS",
        kind::RST_STREAM => "RST_STREAM",
        kind::SETTINGS => "SETTINGS",
        kind::PING => "PING",
        kind::GOAWAY => "GOAWAY",
        kind::WINDOW_UPDATE => "WINDOW_UPDATE",
        kind::CONTINUATION => "CONTINUATION",
        _ => "OTHER",
    }
}

/// A raw HTTP/2 client connection over any byte stream.
pub struct RawH2<S> {
    io: S,
    buf: Vec<u8>,
}

impl RawH2<TcpStream> {
    /// A TCP connection; nothing sent yet.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(RawH2::new(TcpStream::connect(addr).await?))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawH2<S> {
    pub fn new(io: S) -> Self {
        RawH2 {
            io,
            buf: Vec::new(),
        }
    }

    /// Sends the preface and a SETTINGS frame with these parameters.
    pub async fn handshake(&mut self, params: &[(u16, u32)]) -> io::Result<()> {
        let mut out = PREFACE.to_vec();
        out.extend(settings(params));
        self.send(&out).await
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// The next frame; `None` when the server closed the connection. An
    /// error if nothing complete arrives before `deadline`.
    pub async fn next_frame(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let stream =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                            & 0x7fff_ffff;
                    let frame = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Ok(Some(frame));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await;
            match read {
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no frame in time")),
                Ok(Ok(0)) => return Ok(None),
                // A reset counts as the server closing the connection.
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames for up to `within`, answering SETTINGS with an ACK,
    /// until the server closes the connection or `stop` says enough.
    pub async fn watch_until(
        &mut self,
        within: Duration,
        mut stop: impl FnMut(&Watched) -> bool,
    ) -> Watched {
        let deadline = Instant::now() + within;
        let mut seen = Watched::default();
        while !stop(&seen) {
            match self.next_frame(deadline).await {
                Ok(Some(f)) => {
                    if f.kind == kind::SETTINGS && f.flags & flag::ACK == 0 {
                        // The server may have closed already, or stopped
                        // reading: that shows next.
                        let _ = tokio::time::timeout_at(deadline, self.send(&settings_ack())).await;
                    }
                    seen.frames.push(f);
                }
                Ok(None) => {
                    seen.closed = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(_) => {
                    seen.closed = true;
                    break;
                }
            }
        }
        seen
    }

    /// Reads frames until the server closes the connection, for up to `within`.
    pub async fn watch(&mut self, within: Duration) -> Watched {
        self.watch_until(within, |_| false).await
    }
}

//! HTTP/1.x on the wire, for conformance tests: a buffered connection that
//! writes exact bytes and parses messages (bodies framed by Content-Length,
//! chunked or connection close), and a scriptable fake upstream server that
//! records every request it receives. Written by hand, without an HTTP
//! library, so tests see exactly what crossed the socket.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest wait for any single read; a test fails instead of hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest head (start line and fields) accepted by the parser.
const MAX_HEAD: usize = 1 << 20;

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Header fields in wire order, names as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).into_iter().next()
    }

    /// Every value of `name` (case-insensitive), in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether a comma-separated field (`Connection`, `Transfer-Encoding`)
    /// lists `token` (case-insensitive), over all its lines.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    /// The comma-separated elements of a field, over all its lines.
    pub fn tokens(&self, name: &str) -> Vec<String> {
        self.get_all(name)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

/// How a message's body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by definition (HEAD, 1xx, 204, 304, a request without framing).
    None,
    ContentLength(usize),
    Chunked,
    /// Read until the peer closed the connection.
    Close,
}

/// A request as received.
#[derive(Clone)]
pub struct Request {
    pub method: String,
    /// The request target exactly as sent.
    pub target: String,
    pub version: String,
    pub headers: Headers,
    /// The payload (chunked bodies decoded).
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Trailer fields of a chunked body.
    pub trailers: Headers,
}

/// A response as received.
#[derive(Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    /// The payload (chunked bodies decoded).
    pub body: Vec<u8>,
    pub framing: Framing,
    pub trailers: Headers,
}

/// A body for debug output: its length and the start of it.
struct Abbreviated<'a>(&'a [u8]);

impl std::fmt::Debug for Abbreviated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.0[..self.0.len().min(100)];
        write!(
            f,
            "{} bytes {:?}",
            self.0.len(),
            String::from_utf8_lossy(shown)
        )?;
        if shown.len() < self.0.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("version", &self.version)
            .field("headers", &self.headers.0)
            .field("body", &Abbreviated(&self.body))
            .field("framing", &self.framing)
            .field("trailers", &self.trailers.0)
            .finish()
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("version", &self.version)
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers.0)
            .field("body", &Abbreviated(&self.body))
            .field("framing", &self.framing)
            .field("trailers", &self.trailers.0)
            .finish()
    }
}

impl Response {
    /// The body as text, for assertion messages and small bodies.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A buffered TCP connection speaking raw HTTP/1.x; every read has
/// [`READ_TIMEOUT`].
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(Conn::new(TcpStream::connect(addr).await?))
    }

    /// Writes these bytes exactly.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref()).await?;
        self.stream.flush().await
    }

    /// Bytes received but not yet parsed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream. A reset
    /// by the peer also counts as end of stream.
    async fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        self.buf.reserve(64 * 1024);
        match tokio::time::timeout(timeout, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "nothing received for {timeout:?} (buffered: {:?})",
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                ),
            )),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => Ok(0),
            Ok(Err(e)) => Err(e),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// Takes `n` bytes from the buffer, reading as needed.
    async fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill(READ_TIMEOUT).await? == 0 {
                return Err(invalid(format!(
                    "connection closed after {} of {n} bytes",
                    self.buf.len()
                )));
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.take(i + 2).await?;
                return String::from_utf8(line[..i].to_vec())
                    .map_err(|_| invalid("a line that is not UTF-8"));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long"));
            }
            if self.fill(READ_TIMEOUT).await? == 0 {
                return Err(invalid("connection closed in the middle of a line"));
            }
        }
    }

    /// Reads a head: the start line and header fields. `None` if the peer
    /// closed the connection before sending anything.
    pub async fn read_head(&mut self) -> io::Result<Option<(String, Headers)>> {
        self.read_head_within(READ_TIMEOUT).await
    }

    /// [`Conn::read_head`] with its own limit on the wait for the first byte.
    pub async fn read_head_within(
        &mut self,
        first_byte: Duration,
    ) -> io::Result<Option<(String, Headers)>> {
        // Empty lines before a request line are tolerated (RFC 9112 §2.2).
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
        }
        if self.buf.is_empty() && self.fill(first_byte).await? == 0 {
            return Ok(None);
        }
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("head too long"));
            }
            if self.fill(READ_TIMEOUT).await? == 0 {
                return Err(invalid(format!(
                    "connection closed inside a head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )));
            }
        };
        let head = self.take(end).await?;
        let text = String::from_utf8(head).map_err(|_| invalid("head is not UTF-8"))?;
        let mut lines = text.trim_end_matches("\r\n").split("\r\n");
        let start = lines.next().unwrap_or_default().to_owned();
        Ok(Some((start, parse_fields(lines)?)))
    }

    /// Reads a chunked body: (payload, trailers).
    async fn chunked(&mut self) -> io::Result<(Vec<u8>, Headers)> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                break;
            }
            body.extend(self.take(size).await?);
            if self.take(2).await? != b"\r\n" {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
        let mut trailers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            trailers.push(line);
        }
        Ok((body, parse_fields(trailers.iter().map(String::as_str))?))
    }

    /// Reads until the peer closes the connection.
    async fn until_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill(READ_TIMEOUT).await? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads the body `framing` describes.
    async fn body(&mut self, framing: Framing) -> io::Result<(Vec<u8>, Headers)> {
        match framing {
            Framing::None => Ok((Vec::new(), Headers::default())),
            Framing::ContentLength(n) => Ok((self.take(n).await?, Headers::default())),
            Framing::Chunked => self.chunked().await,
            Framing::Close => Ok((self.until_close().await?, Headers::default())),
        }
    }

    /// Reads one request (server side). `None` if the peer closed first.
    /// A request with `Expect: 100-continue` and a body gets `100 Continue`
    /// when `send_continue` is set, before its body is read.
    pub async fn read_request(&mut self, send_continue: bool) -> io::Result<Option<Request>> {
        self.read_request_within(send_continue, READ_TIMEOUT).await
    }

    /// [`Conn::read_request`] with its own limit on the wait for the first
    /// byte (a server waits for the next request on an idle connection).
    pub async fn read_request_within(
        &mut self,
        send_continue: bool,
        first_byte: Duration,
    ) -> io::Result<Option<Request>> {
        let Some((start, headers)) = self.read_head_within(first_byte).await? else {
            return Ok(None);
        };
        let mut parts = start.splitn(3, ' ');
        let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v)) => (m.to_owned(), t.to_owned(), v.to_owned()),
            _ => return Err(invalid(format!("bad request line {start:?}"))),
        };
        let framing = request_framing(&headers)?;
        if send_continue && framing != Framing::None && headers.has_token("expect", "100-continue")
        {
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let (body, trailers) = self.body(framing).await?;
        Ok(Some(Request {
            method,
            target,
            version,
            headers,
            body,
            framing,
            trailers,
        }))
    }

    /// Reads the next response (client side), 1xx included, to a request
    /// with this method (HEAD responses have no body).
    pub async fn read_response(&mut self, method: &str) -> io::Result<Response> {
        self.read_response_within(method, READ_TIMEOUT).await
    }

    /// [`Conn::read_response`] with its own limit on the wait for the first
    /// byte of the head.
    pub async fn read_response_within(
        &mut self,
        method: &str,
        first_byte: Duration,
    ) -> io::Result<Response> {
        let (start, headers) = self
            .read_head_within(first_byte)
            .await?
            .ok_or_else(|| invalid("connection closed before a response"))?;
        let mut parts = start.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {start:?}")))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let framing = response_framing(method, status, &headers)?;
        let (body, trailers) = self.body(framing).await?;
        Ok(Response {
            version,
            status,
            reason,
            headers,
            body,
            framing,
            trailers,
        })
    }

    /// Waits for the peer to close the connection (EOF or reset); an error
    /// if data arrives instead, or nothing happens within [`READ_TIMEOUT`].
    pub async fn expect_closed(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            return Err(invalid(format!(
                "expected the connection to close, but bytes follow: {:?}",
                String::from_utf8_lossy(&self.buf)
            )));
        }
        match self.fill(READ_TIMEOUT).await? {
            0 => Ok(()),
            _ => Err(invalid(format!(
                "expected the connection to close, but received {:?}",
                String::from_utf8_lossy(&self.buf)
            ))),
        }
    }

    /// Half-closes our side (sends FIN).
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_fields<'a>(lines: impl IntoIterator<Item = &'a str>) -> io::Result<Headers> {
    lines
        .into_iter()
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
            Ok((name.to_owned(), value.trim().to_owned()))
        })
        .collect::<io::Result<_>>()
        .map(Headers)
}

fn content_length(headers: &Headers) -> io::Result<Option<usize>> {
    let values = headers.tokens("content-length");
    let Some(first) = values.first() else {
        return Ok(None);
    };
    if values.iter().any(|v| v != first) {
        return Err(invalid(format!("conflicting Content-Length {values:?}")));
    }
    first
        .parse()
        .map(Some)
        .map_err(|_| invalid(format!("bad Content-Length {first:?}")))
}

/// RFC 9112 §6.3 for requests: chunked if Transfer-Encoding ends in it,
/// else Content-Length, else no body.
pub fn request_framing(headers: &Headers) -> io::Result<Framing> {
    let te = headers.tokens("transfer-encoding");
    if let Some(last) = te.last() {
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(invalid(format!("request Transfer-Encoding {te:?}")))
        };
    }
    Ok(content_length(headers)?.map_or(Framing::None, Framing::ContentLength))
}

/// RFC 9112 §6.3 for responses.
pub fn response_framing(method: &str, status: u16, headers: &Headers) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD") || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    let te = headers.tokens("transfer-encoding");
    if let Some(last) = te.last() {
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    Ok(content_length(headers)?.map_or(Framing::Close, Framing::ContentLength))
}

/// A chunked body: one chunk per slice (empty slices are skipped), the last
/// chunk, then `trailers` (complete field lines, each ending in CRLF).
pub fn chunked(chunks: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend(format!("{:x}\r\n", c.len()).into_bytes());
        out.extend_from_slice(c);
        out.extend(b"\r\n");
    }
    out.extend(b"0\r\n");
    out.extend(trailers.as_bytes());
    out.extend(b"\r\n");
    out
}

/// A response with this status, extra header lines (each ending in CRLF)
/// and a Content-Length body.
pub fn response(status: u16, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\n{headers}Content-Length: {}\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A reason phrase for the statuses tests use.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Status",
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so bodies are not
/// trivially compressible or periodic.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a (64 bit) of `data`, in hex: a cheap fingerprint for bodies.
pub fn fingerprint(data: &[u8]) -> String {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("len={} fnv={hash:016x}", data.len())
}

/// What a fake upstream does with a request it received.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write these bytes and wait for the next request on the connection.
    Send(Vec<u8>),
    /// Write these bytes and close the connection.
    SendAndClose(Vec<u8>),
    /// Write these bytes, keep the connection idle this long, then close it.
    SendThenCloseAfter(Vec<u8>, Duration),
    /// Never answer; the connection stays open until the peer closes it.
    Hang,
}

/// A request a fake upstream received, with the number of the connection
/// (counted from 1) it came on.
#[derive(Debug, Clone)]
pub struct Seen {
    pub connection: usize,
    pub request: Request,
}

type Handler = dyn Fn(&Request) -> Action + Send + Sync;

struct State {
    handler: Box<Handler>,
    seen: Mutex<Vec<Seen>>,
    count: watch::Sender<usize>,
    connections: AtomicUsize,
    /// Connections the upstream closed itself (after `SendAndClose` or
    /// `SendThenCloseAfter`).
    closed: watch::Sender<usize>,
    /// Connections the peer (the gateway) closed.
    peer_closed: watch::Sender<usize>,
}

/// Path answered `200 ready` without being recorded nor passed to the
/// handler, so a test can wait until a route to the upstream works.
pub const READY_PATH: &str = "/__ready";

/// An HTTP/1.1 server on an ephemeral loopback port whose answers a test
/// scripts. Every request is recorded (except [`READY_PATH`]); a request
/// with `Expect: 100-continue` and a body is answered `100 Continue` first,
/// as common servers do. Stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    pub async fn start(
        handler: impl Fn(&Request) -> Action + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            handler: Box::new(handler),
            seen: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            connections: AtomicUsize::new(0),
            closed: watch::channel(0).0,
            peer_closed: watch::channel(0).0,
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every
            // connection task.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let n = accept_state.connections.fetch_add(1, Ordering::SeqCst) + 1;
                        connections.spawn(serve(Conn::new(stream), n, accept_state.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(FakeUpstream { addr, state, task })
    }

    /// Requests received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Just the requests.
    pub fn requests(&self) -> Vec<Request> {
        self.seen().into_iter().map(|s| s.request).collect()
    }

    /// Connections accepted so far (the readiness probe's included).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests were recorded.
    pub async fn wait_for_requests(&self, n: usize) -> io::Result<()> {
        if wait_at_least(&self.state.count, n).await {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("upstream did not receive {n} requests: {:?}", self.seen()),
        ))
    }

    /// Waits until the peer (the gateway) closed at least `n` connections.
    pub async fn wait_for_peer_closes(&self, n: usize) -> io::Result<()> {
        if wait_at_least(&self.state.peer_closed, n).await {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the gateway closed {} of the {n} upstream connections",
                *self.state.peer_closed.borrow()
            ),
        ))
    }

    /// Waits until the upstream itself closed at least `n` connections.
    pub async fn wait_for_closes(&self, n: usize) -> io::Result<()> {
        if wait_at_least(&self.state.closed, n).await {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("upstream did not close {n} connections"),
        ))
    }
}

/// Whether the counter reaches `n` within [`READ_TIMEOUT`].
async fn wait_at_least(counter: &watch::Sender<usize>, n: usize) -> bool {
    let mut rx = counter.subscribe();
    let reached = tokio::time::timeout(READ_TIMEOUT, rx.wait_for(|c| *c >= n))
        .await
        .is_ok_and(|r| r.is_ok());
    reached
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut conn: Conn, connection: usize, state: Arc<State>) {
    // An idle keepalive connection waits for its next request as long as
    // the peer keeps it open.
    const IDLE: Duration = Duration::from_secs(3600);
    let idle_then_close = loop {
        let request = match conn.read_request_within(true, IDLE).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                state.peer_closed.send_modify(|c| *c += 1);
                return;
            }
            // Unparsable: done.
            Err(_) => return,
        };
        let action = if request.target == READY_PATH {
            Action::Send(response(200, "", b"ready"))
        } else {
            let action = (state.handler)(&request);
            if let Ok(mut seen) = state.seen.lock() {
                seen.push(Seen {
                    connection,
                    request,
                });
                state.count.send_replace(seen.len());
            }
            action
        };
        match action {
            Action::Send(bytes) => {
                if conn.send(bytes).await.is_err() {
                    return;
                }
            }
            Action::SendAndClose(bytes) => {
                let _ = conn.send(bytes).await;
                break Duration::ZERO;
            }
            Action::SendThenCloseAfter(bytes, idle) => {
                let _ = conn.send(bytes).await;
                break idle;
            }
            Action::Hang => {
                // Drain until the peer goes away.
                let mut sink = [0u8; 4096];
                while matches!(conn.stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        }
    };
    tokio::time::sleep(idle_then_close).await;
    let _ = conn.stream.shutdown().await;
    drop(conn);
    state.closed.send_modify(|c| *c += 1);
}

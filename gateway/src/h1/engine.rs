//! One client connection: read a request head, decide, answer or proxy,
//! repeat while the connection is kept alive.

use super::body::{copy_body, read_into_until, read_more_until, write_flush, Limits};
use super::head::{self, ClientInfo, Framing, HeadError};
use super::pool::Pool;
use super::reply::{self, Reply};
use crate::decide::{decide, Decision, RequestFacts};
use crate::metrics as m;
use crate::request_id;
use crate::settings::{HttpsConfig, UpstreamConfig};
use crate::table::{RouteTable, RouteTarget};
use arc_swap::ArcSwap;
use bytes::{Buf, BytesMut};
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use std::time::{Duration, Instant};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Room for the request line on top of the header field limit.
const REQUEST_LINE_ALLOWANCE: usize = 8 * 1024;

/// The HTTP/1.x proxy, shared by all worker threads.
pub struct Engine {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub upstream: UpstreamConfig,
    pub https: HttpsConfig,
    /// Requests whose header fields add up to more than this get 431.
    pub max_request_header_bytes: usize,
    /// How long a client may take to send a request head (from the end of
    /// the previous response, so this is also the idle keep-alive limit),
    /// and to accept each write.
    pub client_timeout: Duration,
    /// Longest wait for each read of a request body (nginx's
    /// `client_body_timeout`); exceeded: 408.
    pub client_body_timeout: Duration,
    /// Forward header fields whose names contain `_` (dropped by default).
    pub allow_underscores_in_headers: bool,
    pub pool: Pool,
}

/// How a connection ended.
pub enum Served {
    Closed,
    /// The client sent the HTTP/2 preface: hand the connection (with the
    /// bytes read so far put back) to the HTTP/2 server.
    H2c(Stream),
}

/// Per-connection buffers, reused for every request on it. They start
/// empty and are taken when a request arrives; between requests, what a
/// large request or response grew is given back (see [`Buffers::idle`]).
pub(super) struct Buffers {
    /// Bytes from the client not yet handled.
    pub req: BytesMut,
    /// Bytes from the upstream not yet handled.
    pub resp: BytesMut,
    /// The head being sent (upstream request or client response).
    pub out: Vec<u8>,
}

/// Room for the first read of a request head: most heads fit, a longer one
/// is read on in larger steps. Also the most an idle connection keeps of
/// each of its buffers.
const IDLE_BUFFER: usize = 1024;

impl Buffers {
    fn new() -> Self {
        Self {
            req: BytesMut::new(),
            resp: BytesMut::new(),
            out: Vec::new(),
        }
    }

    /// Between requests (nothing buffered from the client): keeps at most
    /// [`IDLE_BUFFER`] bytes of each buffer, so that an idle keep-alive
    /// connection costs little whatever it carried, and leaves room for the
    /// next head's first read.
    fn idle(&mut self) {
        if self.req.capacity() > IDLE_BUFFER {
            self.req = BytesMut::new();
        }
        self.req.reserve(IDLE_BUFFER);
        if self.resp.capacity() > IDLE_BUFFER {
            self.resp = BytesMut::new();
        }
        if self.out.capacity() > IDLE_BUFFER {
            self.out = Vec::new();
        }
    }
}

/// A request, decided.
pub(super) struct Plan {
    pub head_len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
    pub http10: bool,
    pub is_head: bool,
    pub upgrade: bool,
    pub expect_continue: bool,
    action: Action,
}

enum Action {
    /// `Buffers::out` holds the upstream request head.
    Proxy(Arc<RouteTarget>),
    Reply {
        status: u16,
        body: &'static [u8],
        target: Option<Arc<RouteTarget>>,
        location: Option<String>,
    },
}

enum Next {
    Request(Plan),
    H2c,
    Closed,
}

impl Engine {
    /// Serves one client connection until it closes.
    pub async fn serve(&self, mut io: Stream, shutdown: &ShutdownWatch) -> Served {
        let client = client_info(&io);
        let mut b = Buffers::new();
        let mut shutdown = shutdown.clone();
        let mut first = true;
        loop {
            let next = self
                .next_request(&mut io, &mut b, &client, first, &mut shutdown)
                .await;
            let plan = match next {
                Ok(Next::Request(plan)) => plan,
                Ok(Next::H2c) => return hand_over(io, &b.req),
                Ok(Next::Closed) => return Served::Closed,
                Err(status) => {
                    let body = if status == 431 {
                        reply::HEADERS_TOO_LARGE
                    } else {
                        reply::BAD_REQUEST
                    };
                    let mut r = Reply::new(status, body);
                    r.close = true;
                    r.hsts = self.hsts(&client);
                    r.write(&mut b.out, false);
                    let _ = write_flush(&mut io, &b.out, self.client_timeout).await;
                    m::unmatched().record(status, 0.0);
                    return Served::Closed;
                }
            };
            first = false;
            let start = Instant::now();
            if !self
                .handle(&mut io, &mut b, &client, plan, &shutdown, start)
                .await
            {
                return Served::Closed;
            }
        }
    }

    /// Reads until a whole request head is in, or the connection ends.
    /// `Err(status)`: the request is refused and the connection closed.
    async fn next_request(
        &self,
        io: &mut Stream,
        b: &mut Buffers,
        client: &ClientInfo,
        first: bool,
        shutdown: &mut ShutdownWatch,
    ) -> Result<Next, u16> {
        // The whole head must arrive in time, however slowly it trickles in.
        let deadline = tokio::time::Instant::now() + self.client_timeout;
        loop {
            if !b.req.is_empty() {
                let n = b.req.len().min(H2_PREFACE.len());
                if first && !client.tls && b.req[..n] == H2_PREFACE[..n] {
                    if n == H2_PREFACE.len() {
                        return Ok(Next::H2c);
                    }
                } else {
                    let most = self.max_request_header_bytes + REQUEST_LINE_ALLOWANCE;
                    match self.plan(&b.req, client, &mut b.out) {
                        // A head may arrive whole in one large read.
                        Ok(Some(plan)) if plan.head_len > most => return Err(431),
                        Ok(Some(plan)) => return Ok(Next::Request(plan)),
                        Ok(None) if b.req.len() > most => return Err(431),
                        Ok(None) => {}
                        Err(HeadError::TooLarge) => return Err(431),
                        Err(e) => {
                            tracing::debug!("refusing a request: {e}");
                            return Err(400);
                        }
                    }
                }
            }
            let read = if b.req.is_empty() {
                // Idle between requests: little held while waiting, and
                // closed at once when shutting down.
                b.idle();
                tokio::select! {
                    biased;
                    r = read_into_until(io, &mut b.req, deadline) => r,
                    () = shutting_down(shutdown) => return Ok(Next::Closed),
                }
            } else {
                read_more_until(io, &mut b.req, deadline).await
            };
            match read {
                Ok(0) | Err(_) => return Ok(Next::Closed),
                Ok(_) => {}
            }
        }
    }

    /// Parses and routes a request head in `buf`; for a proxied request the
    /// upstream head is written to `out`.
    fn plan(
        &self,
        buf: &[u8],
        client: &ClientInfo,
        out: &mut Vec<u8>,
    ) -> Result<Option<Plan>, HeadError> {
        let mut slots = head::header_slots();
        let Some((meta, headers, head_len)) = head::parse_request(buf, &mut slots)? else {
            return Ok(None);
        };
        let mut plan = Plan {
            head_len,
            framing: meta.framing,
            keep_alive: meta.keep_alive,
            http10: meta.http10,
            is_head: meta.method == "HEAD",
            upgrade: meta.upgrade.is_some(),
            expect_continue: meta.expect_continue,
            action: Action::Reply {
                status: 404,
                body: reply::NOT_FOUND,
                target: None,
                location: None,
            },
        };
        let facts = RequestFacts {
            authority: meta.host,
            path: meta.path,
            path_and_query: &meta.target,
            header_bytes: meta.header_bytes,
            tls: client.tls,
        };
        let reply = |status, body, target, location| Action::Reply {
            status,
            body,
            target,
            location,
        };
        let target = match decide(
            &self.table.load(),
            &self.https,
            self.max_request_header_bytes,
            facts,
        ) {
            Decision::Proxy(target) => target,
            Decision::HeadersTooLarge => {
                plan.keep_alive = false;
                plan.action = reply(431, reply::HEADERS_TOO_LARGE, None, None);
                return Ok(Some(plan));
            }
            Decision::NotFound => return Ok(Some(plan)),
            Decision::Redirect { target, location } => {
                plan.action = reply(308, b"", Some(target), Some(location));
                return Ok(Some(plan));
            }
            Decision::NoEndpoints(target) => {
                plan.action = reply(503, reply::NO_ENDPOINTS, Some(target), None);
                return Ok(Some(plan));
            }
        };
        let generated;
        let request_id = match meta.request_id {
            Some(id) => id,
            None => {
                generated = request_id::new_request_id_bytes();
                &generated[..]
            }
        };
        head::write_upstream_request(
            out,
            &meta,
            headers,
            client,
            request_id,
            self.allow_underscores_in_headers,
        );
        plan.action = Action::Proxy(target);
        Ok(Some(plan))
    }

    /// Answers one request. Returns whether the connection stays open.
    async fn handle(
        &self,
        io: &mut Stream,
        b: &mut Buffers,
        client: &ClientInfo,
        plan: Plan,
        shutdown: &ShutdownWatch,
        start: Instant,
    ) -> bool {
        b.req.advance(plan.head_len);
        let hsts = self.hsts(client);
        match &plan.action {
            Action::Proxy(target) => {
                let (status, keep) = self.proxy(io, b, &plan, target, shutdown, hsts).await;
                target.metrics.record(status, start.elapsed().as_secs_f64());
                keep
            }
            Action::Reply {
                status,
                body,
                target,
                location,
            } => {
                let has_body = plan.framing != Framing::None;
                let mut r = Reply::new(*status, body);
                r.location = location.as_deref();
                r.hsts = hsts;
                // A body we did not ask for after `Expect: 100-continue` is
                // never read: close instead.
                r.close =
                    !plan.keep_alive || *shutdown.borrow() || (has_body && plan.expect_continue);
                r.http10_keep_alive = plan.http10 && !r.close;
                r.write(&mut b.out, plan.is_head);
                let written = write_flush(io, &b.out, self.client_timeout).await.is_ok();
                let metrics = target.as_ref().map_or(m::unmatched(), |t| &t.metrics);
                metrics.record(*status, start.elapsed().as_secs_f64());
                if !written || r.close {
                    return false;
                }
                // Read and drop the body so the next request lines up.
                let limits = Limits {
                    read: self.client_body_timeout,
                    write: self.client_timeout,
                };
                copy_body(
                    io,
                    &mut b.req,
                    &mut tokio::io::sink(),
                    plan.framing,
                    false,
                    limits,
                )
                .await
                .is_ok()
            }
        }
    }

    pub(crate) fn hsts(&self, client: &ClientInfo) -> Option<&[u8]> {
        self.https
            .hsts
            .as_ref()
            .filter(|_| client.tls)
            .map(|h| h.as_bytes())
    }
}

/// Resolves once the server starts shutting down (never, if the sender is gone).
pub(crate) async fn shutting_down(watch: &mut ShutdownWatch) {
    if watch.wait_for(|&down| down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub(crate) fn client_info(io: &Stream) -> ClientInfo {
    let socket = io.get_socket_digest();
    let inet = |a: Option<&pingora_core::protocols::l4::socket::SocketAddr>| {
        a.and_then(|a| a.as_inet()).copied()
    };
    let peer = socket.as_ref().and_then(|d| inet(d.peer_addr()));
    let local = socket.as_ref().and_then(|d| inet(d.local_addr()));
    ClientInfo {
        ip: peer.map(|a| a.ip().to_string()),
        server_port: local.map(|a| a.port().to_string()),
        tls: io.get_ssl_digest().is_some(),
    }
}

/// Puts the bytes read so far back in front of the stream for the HTTP/2
/// server. Only plain TCP streams can be rewound; h2c never arrives on TLS.
fn hand_over(io: Stream, read: &[u8]) -> Served {
    use pingora_core::protocols::l4::stream::Stream as TcpStream;
    match io.into_any().downcast::<TcpStream>() {
        Ok(mut tcp) => {
            tcp.rewind(read);
            Served::H2c(tcp)
        }
        Err(_) => Served::Closed,
    }
}

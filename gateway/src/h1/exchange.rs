//! Proxying one request: an upstream connection (pooled or new, other
//! endpoints tried when connecting fails), the request sent, the response
//! head read and rewritten, the body streamed back.

use super::body::{
    buffered_body_len, copy_body, read_more, read_more_untimed, write_flush, CopyError, Limits,
};
use super::engine::{Buffers, Engine, Plan};
use super::head::{self, ClientFraming, Framing, HeadError};
use super::reply::{self, Reply};
use crate::metrics as m;
use crate::table::RouteTarget;
use bytes::{Buf, BytesMut};
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most interim (1xx) responses accepted before the final one.
pub(crate) const MAX_INTERIM_RESPONSES: u8 = 8;

/// Why a request got no upstream response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("connect to {0} timed out")]
    ConnectTimeout(SocketAddr),
    #[error("sending the request: {0}")]
    Send(CopyError),
    #[error("reading the response head: {0}")]
    Receive(CopyError),
    #[error("upstream closed the connection before responding")]
    Closed,
    #[error("no endpoint could be connected to")]
    NoEndpoint,
    #[error("invalid response head: {0}")]
    BadHead(HeadError),
    #[error("response head too large")]
    HeadTooLarge,
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    UnexpectedUpgrade,
    #[error("more than {MAX_INTERIM_RESPONSES} interim responses")]
    TooManyInterim,
    #[error("the client's request body: {0}")]
    ClientBody(CopyError),
}

impl UpstreamError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            UpstreamError::ConnectTimeout(_)
            | UpstreamError::Receive(CopyError::ReadTimeout)
            | UpstreamError::Send(CopyError::WriteTimeout) => 504,
            UpstreamError::ClientBody(CopyError::Chunked(_)) => 400,
            // The client stopped sending its body (nginx's client_body_timeout).
            UpstreamError::ClientBody(CopyError::ReadTimeout) => 408,
            // nginx's code for a client that went away mid-request.
            UpstreamError::ClientBody(_) => 499,
            _ => 502,
        }
    }

    /// A pooled connection the upstream had closed: nothing came back.
    pub(crate) fn is_stale_connection(&self) -> bool {
        matches!(
            self,
            UpstreamError::Closed
                | UpstreamError::Send(CopyError::Write(_))
                | UpstreamError::Receive(CopyError::Read(_))
        )
    }
}

/// An upstream connection for one request.
pub(crate) struct Upstream {
    pub(crate) stream: TcpStream,
    pub(crate) address: SocketAddr,
    pub(crate) reused: bool,
}

/// What the client side of a response needs to know.
struct ResponseContext<'a> {
    http10: bool,
    /// The client asked to close after this exchange.
    closing: bool,
    /// Shutdown may begin while the request is in flight; the response
    /// then says the connection closes.
    shutdown: &'a ShutdownWatch,
    is_head: bool,
    /// The client asked for a protocol upgrade.
    upgrade: bool,
    /// The client sent `Expect: 100-continue`: only then is a `100
    /// Continue` passed on.
    expect_continue: bool,
    hsts: Option<&'a [u8]>,
}

/// A response head, read and rewritten into `Buffers::out`.
enum HeadRead {
    /// A 1xx other than 101, `len` bytes long: passed on raw (or dropped),
    /// then the final head follows.
    Interim {
        status: u16,
        len: usize,
    },
    Final(FinalHead),
}

#[derive(Debug, Clone, Copy)]
struct FinalHead {
    status: u16,
    head_len: usize,
    framing: Framing,
    reusable: bool,
    close: bool,
    dechunk: bool,
}

impl Engine {
    /// Proxies one request whose upstream head is in `b.out`. Returns the
    /// status sent and whether the client connection stays open.
    pub(super) async fn proxy(
        &self,
        io: &mut Stream,
        b: &mut Buffers,
        plan: &Plan,
        target: &RouteTarget,
        shutdown: &ShutdownWatch,
        hsts: Option<&[u8]>,
    ) -> (u16, bool) {
        let ctx = ResponseContext {
            http10: plan.http10,
            closing: !plan.keep_alive,
            shutdown,
            is_head: plan.is_head,
            upgrade: plan.upgrade,
            expect_continue: plan.expect_continue,
            hsts,
        };
        let buffered = match buffered_body_len(&b.req, plan.framing) {
            Ok(n) => n,
            Err(e) => {
                return self
                    .fail(io, b, UpstreamError::ClientBody(e.into()), &ctx)
                    .await
            }
        };
        let result = match buffered {
            Some(n) => {
                // The whole request is in memory: one write, and a stale
                // pooled connection can be retried safely.
                b.out.extend_from_slice(&b.req[..n]);
                b.req.advance(n);
                self.exchange_buffered(io, b, target, &ctx).await
            }
            None => self.exchange_streaming(io, b, plan, target, &ctx).await,
        };
        let (mut up, head, upload_done) = match result {
            Ok(r) => r,
            Err(e) => return self.fail(io, b, e, &ctx).await,
        };
        b.resp.advance(head.head_len);
        if head.status == 101 && plan.upgrade {
            if write_flush(io, &b.out, self.client_timeout).await.is_ok() {
                tunnel(io, &mut up.stream, b, self.client_timeout).await;
            }
            return (101, false);
        }
        let limits = Limits {
            read: self.upstream.read_timeout,
            write: self.client_timeout,
        };
        let sent = async {
            io.write_all(&b.out).await.map_err(CopyError::Write)?;
            copy_body(
                &mut up.stream,
                &mut b.resp,
                io,
                head.framing,
                head.dechunk,
                limits,
            )
            .await?;
            io.flush().await.map_err(CopyError::Write)
        }
        .await;
        match sent {
            Ok(()) => {
                if head.reusable && upload_done && b.resp.is_empty() {
                    self.pool.put(up.address, up.stream);
                }
                (head.status, !head.close)
            }
            Err(e) => {
                tracing::debug!(upstream = %up.address, "response not completed: {e}");
                (head.status, false)
            }
        }
    }

    /// Sends a request held entirely in `b.out` and reads the response head.
    async fn exchange_buffered(
        &self,
        io: &mut Stream,
        b: &mut Buffers,
        target: &RouteTarget,
        ctx: &ResponseContext<'_>,
    ) -> Result<(Upstream, FinalHead, bool), UpstreamError> {
        let mut up = self.checkout(target).await?;
        let mut result = self.round_trip(io, b, &mut up, ctx).await;
        if up.reused
            && result
                .as_ref()
                .is_err_and(UpstreamError::is_stale_connection)
        {
            tracing::debug!(upstream = %up.address, "pooled connection was closed; retrying on a new one");
            b.resp.clear();
            up = self.connect(up.address).await?;
            result = self.round_trip(io, b, &mut up, ctx).await;
        }
        result.map(|head| (up, head, true))
    }

    async fn round_trip(
        &self,
        io: &mut Stream,
        b: &mut Buffers,
        up: &mut Upstream,
        ctx: &ResponseContext<'_>,
    ) -> Result<FinalHead, UpstreamError> {
        write_flush(&mut up.stream, &b.out, self.upstream.write_timeout)
            .await
            .map_err(UpstreamError::Send)?;
        let mut interim = 0;
        loop {
            let timeout = Some(self.upstream.read_timeout);
            match read_head(&mut up.stream, b, ctx, true, timeout).await? {
                HeadRead::Final(head) => return Ok(head),
                HeadRead::Interim { status, len } => {
                    let head = &b.resp[..len];
                    pass_interim(io, head, status, ctx, &mut interim, self.client_timeout).await?;
                    b.resp.advance(len);
                }
            }
        }
    }

    /// Sends the head, then the body as the client sends it while waiting
    /// for the response (which may come before the body ends, or be a
    /// `100 Continue` the client waits for).
    async fn exchange_streaming(
        &self,
        io: &mut Stream,
        b: &mut Buffers,
        plan: &Plan,
        target: &RouteTarget,
        ctx: &ResponseContext<'_>,
    ) -> Result<(Upstream, FinalHead, bool), UpstreamError> {
        let mut up = self.checkout(target).await?;
        write_flush(&mut up.stream, &b.out, self.upstream.write_timeout)
            .await
            .map_err(UpstreamError::Send)?;
        let limits = Limits {
            read: self.client_body_timeout,
            write: self.upstream.write_timeout,
        };
        let read_timeout = self.upstream.read_timeout;
        let mut interim = 0;
        let Buffers { req, resp, out } = b;
        let (mut head, upload_done) = {
            let (mut client_read, mut client_write) = tokio::io::split(&mut *io);
            let (mut up_read, mut up_write) = up.stream.split();
            let upload = copy_body(
                &mut client_read,
                req,
                &mut up_write,
                plan.framing,
                false,
                limits,
            );
            tokio::pin!(upload);
            let mut upload_done = false;
            loop {
                let event = {
                    let mut heads = HeadBuffers {
                        resp: &mut *resp,
                        out: &mut *out,
                    };
                    // The upstream read timeout starts once the whole request
                    // is sent; until then the upload's own limits apply.
                    let timeout = upload_done.then_some(read_timeout);
                    tokio::select! {
                        r = &mut upload, if !upload_done => Event::Uploaded(r),
                        h = read_head_into(&mut up_read, &mut heads, ctx, upload_done, timeout) => Event::Head(h),
                    }
                };
                match event {
                    Event::Uploaded(Ok(())) => upload_done = true,
                    Event::Uploaded(Err(e)) => {
                        return Err(match e {
                            CopyError::Read(_)
                            | CopyError::ReadTimeout
                            | CopyError::Truncated
                            | CopyError::Chunked(_) => UpstreamError::ClientBody(e),
                            other => UpstreamError::Send(other),
                        })
                    }
                    Event::Head(h) => match h? {
                        HeadRead::Final(head) => break (head, upload_done),
                        HeadRead::Interim { status, len } => {
                            let head = &resp[..len];
                            let limit = self.client_timeout;
                            pass_interim(&mut client_write, head, status, ctx, &mut interim, limit)
                                .await?;
                            resp.advance(len);
                        }
                    },
                }
            }
        };
        if !upload_done {
            // Answered before the body ended: the rest of the body is never
            // read, so neither connection can be reused.
            head.close = true;
            head.reusable = false;
        }
        Ok((up, head, upload_done))
    }

    /// An endpoint's connection: pooled if one is idle, else new; on connect
    /// failures other endpoints are tried (bounded by
    /// `--upstream-connect-attempts`).
    pub(crate) async fn checkout(&self, target: &RouteTarget) -> Result<Upstream, UpstreamError> {
        let mut tried = 0u64;
        let mut attempts = 0u8;
        let endpoints = target.backend.endpoint_count();
        loop {
            let Some((index, address)) = target.backend.pick(tried) else {
                return Err(UpstreamError::NoEndpoint);
            };
            if index < 64 {
                tried |= 1 << index;
            }
            attempts += 1;
            if let Some(stream) = self.pool.take(address) {
                return Ok(Upstream {
                    stream,
                    address,
                    reused: true,
                });
            }
            match self.connect(address).await {
                Ok(up) => return Ok(up),
                Err(e)
                    if (attempts as usize) < endpoints
                        && attempts < self.upstream.connect_attempts =>
                {
                    metrics::counter!(m::UPSTREAM_RETRIES).increment(1);
                    tracing::debug!("{e}; trying another endpoint");
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) async fn connect(&self, address: SocketAddr) -> Result<Upstream, UpstreamError> {
        let stream =
            tokio::time::timeout(self.upstream.connect_timeout, TcpStream::connect(address))
                .await
                .map_err(|_| UpstreamError::ConnectTimeout(address))?
                .map_err(|e| UpstreamError::Connect(address, e))?;
        // Heads and small bodies go out in one write; do not hold them back.
        let _ = stream.set_nodelay(true);
        Ok(Upstream {
            stream,
            address,
            reused: false,
        })
    }

    /// Answers a request that got no upstream response, then closes.
    async fn fail(
        &self,
        io: &mut Stream,
        b: &mut Buffers,
        e: UpstreamError,
        ctx: &ResponseContext<'_>,
    ) -> (u16, bool) {
        let status = e.status();
        match status {
            499 => {
                tracing::debug!("client went away: {e}");
                return (status, false);
            }
            400 | 408 => tracing::debug!("bad or stalled request body: {e}"),
            _ => tracing::warn!("upstream request failed ({status}): {e}"),
        }
        let body = match status {
            400 => reply::BAD_REQUEST,
            408 => reply::REQUEST_TIMEOUT,
            504 => reply::GATEWAY_TIMEOUT,
            _ => reply::BAD_GATEWAY,
        };
        let mut r = Reply::new(status, body);
        r.close = true;
        r.hsts = ctx.hsts;
        r.write(&mut b.out, ctx.is_head);
        let _ = write_flush(io, &b.out, self.client_timeout).await;
        (status, false)
    }
}

/// What happened first while a body was being uploaded.
enum Event {
    Uploaded(Result<(), CopyError>),
    Head(Result<HeadRead, UpstreamError>),
}

/// The two buffers a response head touches.
struct HeadBuffers<'a> {
    resp: &'a mut BytesMut,
    out: &'a mut Vec<u8>,
}

/// Passes an interim response on to the client, or drops it: nothing goes
/// to HTTP/1.0 clients, and `100 Continue` only to a client that asked for
/// it. More than [`MAX_INTERIM_RESPONSES`] fail the request.
async fn pass_interim<W: tokio::io::AsyncWrite + Unpin>(
    client: &mut W,
    head: &[u8],
    status: u16,
    ctx: &ResponseContext<'_>,
    count: &mut u8,
    write_limit: Duration,
) -> Result<(), UpstreamError> {
    *count += 1;
    if *count > MAX_INTERIM_RESPONSES {
        return Err(UpstreamError::TooManyInterim);
    }
    if !ctx.http10 && (status != 100 || ctx.expect_continue) {
        let _ = write_flush(client, head, write_limit).await;
    }
    Ok(())
}

async fn read_head<R: AsyncRead + Unpin>(
    up: &mut R,
    b: &mut Buffers,
    ctx: &ResponseContext<'_>,
    upload_done: bool,
    timeout: Option<Duration>,
) -> Result<HeadRead, UpstreamError> {
    let mut heads = HeadBuffers {
        resp: &mut b.resp,
        out: &mut b.out,
    };
    read_head_into(up, &mut heads, ctx, upload_done, timeout).await
}

/// Reads until a response head is complete, and for a final head writes
/// the client's version of it to `out`. `timeout` bounds each read (none:
/// the request is still being uploaded). Cancel-safe: bytes read stay in
/// `resp`.
async fn read_head_into<R: AsyncRead + Unpin>(
    up: &mut R,
    b: &mut HeadBuffers<'_>,
    ctx: &ResponseContext<'_>,
    upload_done: bool,
    timeout: Option<Duration>,
) -> Result<HeadRead, UpstreamError> {
    let out = &mut *b.out;
    read_response_head(up, b.resp, ctx.is_head, timeout, |parsed| {
        let meta = parsed.meta;
        if meta.status == 101 && !ctx.upgrade {
            // Switching protocols nobody asked for.
            return Err(UpstreamError::UnexpectedUpgrade);
        }
        if (100..200).contains(&meta.status) && meta.status != 101 {
            return Ok(Some(HeadRead::Interim {
                status: meta.status,
                len: meta.head_len,
            }));
        }
        let dechunk = ctx.http10 && meta.framing == Framing::Chunked;
        let close = ctx.closing
            || *ctx.shutdown.borrow()
            || meta.framing == Framing::UntilClose
            || dechunk
            || !upload_done;
        head::write_client_response(
            out,
            parsed,
            ClientFraming {
                close,
                http10_keep_alive: ctx.http10 && !close,
                dechunk,
                hsts: ctx.hsts,
            },
        );
        Ok(Some(HeadRead::Final(FinalHead {
            status: meta.status,
            head_len: meta.head_len,
            framing: meta.framing,
            reusable: meta.reusable,
            close,
            dechunk,
        })))
    })
    .await
}

/// Reads from `up` into `resp` until a response head is complete and
/// `use_head` takes it: `Some(value)` ends the read; `None` drops that head
/// (an interim response) and reads the next, up to
/// [`MAX_INTERIM_RESPONSES`]. `timeout` bounds each read; `None` waits as
/// long as it takes (while a request body is still being sent, whose own
/// limits apply). Enforces the head size limit. Cancel-safe: bytes read
/// stay in `resp`. Shared by HTTP/1.x and HTTP/2.
pub(crate) async fn read_response_head<R: AsyncRead + Unpin, T>(
    up: &mut R,
    resp: &mut BytesMut,
    request_is_head: bool,
    timeout: Option<Duration>,
    mut use_head: impl FnMut(&head::ResponseHead<'_, '_>) -> Result<Option<T>, UpstreamError>,
) -> Result<T, UpstreamError> {
    let mut dropped = 0;
    loop {
        if !resp.is_empty() {
            let mut slots = head::header_slots();
            match head::parse_response(resp, &mut slots, request_is_head) {
                // One read may bring in more than the limit at once: the
                // complete head is checked too, not only a partial one.
                Ok(Some(parsed)) if parsed.meta.head_len > MAX_RESPONSE_HEAD => {
                    return Err(UpstreamError::HeadTooLarge)
                }
                Ok(Some(parsed)) => {
                    let len = parsed.meta.head_len;
                    match use_head(&parsed)? {
                        Some(value) => return Ok(value),
                        None => {
                            dropped += 1;
                            if dropped > MAX_INTERIM_RESPONSES {
                                return Err(UpstreamError::TooManyInterim);
                            }
                            resp.advance(len);
                            continue;
                        }
                    }
                }
                Ok(None) if resp.len() > MAX_RESPONSE_HEAD => {
                    return Err(UpstreamError::HeadTooLarge)
                }
                Ok(None) => {}
                Err(e) => return Err(UpstreamError::BadHead(e)),
            }
        }
        let read = match timeout {
            Some(limit) => read_more(up, resp, limit).await,
            None => read_more_untimed(up, resp).await,
        };
        match read {
            Ok(0) if resp.is_empty() => return Err(UpstreamError::Closed),
            Ok(0) => return Err(UpstreamError::Receive(CopyError::Truncated)),
            Ok(_) => {}
            Err(e) => return Err(UpstreamError::Receive(e)),
        }
    }
}

/// After a `101 Switching Protocols`: bytes flow both ways until either
/// side closes. Bytes already read on either side go first.
async fn tunnel(io: &mut Stream, up: &mut TcpStream, b: &mut Buffers, write_limit: Duration) {
    if !b.resp.is_empty() && write_flush(io, &b.resp, write_limit).await.is_err() {
        return;
    }
    if !b.req.is_empty() && up.write_all(&b.req).await.is_err() {
        return;
    }
    b.resp.clear();
    b.req.clear();
    if let Err(e) = tokio::io::copy_bidirectional(io, up).await {
        tracing::debug!("upgraded connection ended: {e}");
    }
}

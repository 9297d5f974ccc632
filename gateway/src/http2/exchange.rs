//! A proxied stream: the request sent to an HTTP/1.1 upstream, its
//! response sent back within HTTP/2 flow control.
//!
//! The upstream side is only held while it is needed. A client's reset
//! drops the exchange at once — the upstream connection is closed, never
//! pooled half-used. A response body that is complete in the gateway (and
//! bodies of known length up to
//! [`PREFETCH_LIMIT`](super::response_body::PREFETCH_LIMIT), which are read whole
//! first) frees its upstream connection before waiting on the client's
//! window, so a client that opens no window holds no upstream connection.

use super::response_body::ResponseBody;
use super::send::{self, send_all, SendError};
use super::stream::{send_local, Outcome};
use super::translate::to_h2_response;
use crate::h1::body::{read_more, write_flush, CopyError};
use crate::h1::chunked::ChunkError;
use crate::h1::head::Framing;
use crate::h1::reply;
use crate::h1::{read_response_head, Engine, Upstream, UpstreamError};
use crate::table::RouteTarget;
use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::Response;
use std::time::Duration;
use tokio::io::AsyncWrite;

/// What a proxied stream needs.
pub(super) struct Exchange<'a> {
    pub engine: &'a Engine,
    pub target: &'a RouteTarget,
    pub framing: Framing,
    pub is_head: bool,
    pub hsts: Option<&'a [u8]>,
}

/// How a proxied stream ended.
pub(super) struct Proxied {
    pub status: u16,
    pub outcome: Outcome,
    /// The gateway answered itself (an upstream failure).
    pub local: bool,
}

/// A response head read from the upstream.
struct UpstreamHead {
    status: u16,
    framing: Framing,
    reusable: bool,
    head_len: usize,
    response: Response<()>,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("upstream: {0}")]
    Upstream(#[from] CopyError),
    #[error("bad chunked response: {0}")]
    Chunked(#[from] ChunkError),
    #[error(transparent)]
    Send(#[from] SendError),
}

impl Exchange<'_> {
    /// Proxies the stream.
    pub async fn run(
        &self,
        out: &[u8],
        body: &mut RecvStream,
        respond: &mut SendResponse<Bytes>,
    ) -> Proxied {
        let mut resp = BytesMut::new();
        let fetched = {
            let fetch = self.fetch(out, body, &mut resp);
            tokio::select! {
                biased;
                r = fetch => r,
                () = send::reset_before_response(respond) => return Proxied::reset(),
            }
        };
        let (up, head, upload_done) = match fetched {
            Ok(r) => r,
            Err(e) => return self.fail(respond, e),
        };
        let status = head.status;
        let end = head.framing == Framing::None;
        let mut stream = match respond.send_response(head.response, end) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("client stream gone: {e}");
                let outcome = if send::was_reset_early(respond) {
                    Outcome::ClientReset
                } else {
                    Outcome::Finished
                };
                return Proxied {
                    status,
                    outcome,
                    local: false,
                };
            }
        };
        let reusable = head.reusable && upload_done;
        let result = if end {
            self.release(up, reusable && resp.is_empty());
            Ok(())
        } else {
            self.relay(up, reusable, &mut resp, head.framing, &mut stream)
                .await
        };
        let outcome = match result {
            Ok(()) => Outcome::Finished,
            Err(RelayError::Send(SendError::ClientReset)) => Outcome::ClientReset,
            Err(RelayError::Send(e)) => {
                tracing::debug!("response not completed: {e}");
                Outcome::Finished
            }
            Err(e) => {
                tracing::debug!("response not completed: {e}");
                stream.send_reset(h2::Reason::INTERNAL_ERROR);
                Outcome::Finished
            }
        };
        Proxied {
            status,
            outcome,
            local: false,
        }
    }

    /// An upstream connection back to the pool, or closed.
    fn release(&self, up: Upstream, reusable: bool) {
        if reusable {
            self.engine.pool.put(up.address, up.stream);
        }
    }

    /// The request sent and the response head read. `bool`: the whole
    /// request body went upstream.
    async fn fetch(
        &self,
        out: &[u8],
        body: &mut RecvStream,
        resp: &mut BytesMut,
    ) -> Result<(Upstream, UpstreamHead, bool), UpstreamError> {
        if self.framing == Framing::None {
            self.bodiless(out, resp).await
        } else {
            self.with_body(out, body, resp).await
        }
    }

    /// Request without a body: one write, and a retry on a new connection
    /// if a pooled one turns out to be closed.
    async fn bodiless(
        &self,
        out: &[u8],
        resp: &mut BytesMut,
    ) -> Result<(Upstream, UpstreamHead, bool), UpstreamError> {
        let mut up = self.engine.checkout(self.target).await?;
        let mut result = self.round_trip(&mut up, out, resp).await;
        if up.reused
            && result
                .as_ref()
                .is_err_and(UpstreamError::is_stale_connection)
        {
            resp.clear();
            up = self.engine.connect(up.address).await?;
            result = self.round_trip(&mut up, out, resp).await;
        }
        result.map(|head| (up, head, true))
    }

    async fn round_trip(
        &self,
        up: &mut Upstream,
        out: &[u8],
        resp: &mut BytesMut,
    ) -> Result<UpstreamHead, UpstreamError> {
        write_flush(&mut up.stream, out, self.engine.upstream.write_timeout)
            .await
            .map_err(UpstreamError::Send)?;
        let timeout = Some(self.engine.upstream.read_timeout);
        self.read_head(&mut up.stream, resp, timeout).await
    }

    /// Sends the head, then the body as the client sends it, while waiting
    /// for the response (which may come before the body ends).
    async fn with_body(
        &self,
        out: &[u8],
        body: &mut RecvStream,
        resp: &mut BytesMut,
    ) -> Result<(Upstream, UpstreamHead, bool), UpstreamError> {
        let mut up = self.engine.checkout(self.target).await?;
        write_flush(&mut up.stream, out, self.engine.upstream.write_timeout)
            .await
            .map_err(UpstreamError::Send)?;
        let (mut up_read, mut up_write) = up.stream.split();
        let limits = UploadLimits {
            client: self.engine.client_body_timeout,
            upstream: self.engine.upstream.write_timeout,
        };
        let chunked = self.framing == Framing::Chunked;
        let (head, upload_done) = {
            let upload = upload(body, &mut up_write, chunked, limits);
            tokio::pin!(upload);
            let mut upload_done = false;
            loop {
                tokio::select! {
                    r = &mut upload, if !upload_done => {
                        r?;
                        upload_done = true;
                    }
                    // The upstream read timeout starts once the whole
                    // request is sent; until then the upload's limits apply.
                    h = self.read_head(&mut up_read, resp, upload_done.then_some(self.engine.upstream.read_timeout)) => break (h?, upload_done),
                }
            }
        };
        Ok((up, head, upload_done))
    }

    /// Reads the final response head (interim 1xx are dropped: there is no
    /// way to pass them on through the h2 crate) and converts it.
    async fn read_head<R: tokio::io::AsyncRead + Unpin>(
        &self,
        up: &mut R,
        resp: &mut BytesMut,
        timeout: Option<Duration>,
    ) -> Result<UpstreamHead, UpstreamError> {
        let head = read_response_head(up, resp, self.is_head, timeout, |parsed| {
            let meta = parsed.meta;
            if meta.status == 101 {
                return Err(UpstreamError::UnexpectedUpgrade);
            }
            if (100..200).contains(&meta.status) {
                return Ok(None);
            }
            Ok(Some(UpstreamHead {
                status: meta.status,
                framing: meta.framing,
                reusable: meta.reusable,
                head_len: meta.head_len,
                response: to_h2_response(parsed, self.hsts)?,
            }))
        })
        .await?;
        resp.advance(head.head_len);
        Ok(head)
    }

    /// Streams the response body into DATA frames as the client's window
    /// allows; the upstream connection is released as soon as the whole
    /// body is in, before the last of it is sent.
    async fn relay(
        &self,
        mut up: Upstream,
        reusable: bool,
        resp: &mut BytesMut,
        framing: Framing,
        send: &mut SendStream<Bytes>,
    ) -> Result<(), RelayError> {
        let read_timeout = self.engine.upstream.read_timeout;
        let stall = self.engine.client_timeout;
        let mut body = ResponseBody::new(framing);
        loop {
            while let Some((chunk, done)) = body.next(resp)? {
                if done {
                    self.release(up, reusable && resp.is_empty());
                    return Ok(send_all(send, chunk, true, stall).await?);
                }
                send_all(send, chunk, false, stall).await?;
            }
            let read = tokio::select! {
                biased;
                r = read_more(&mut up.stream, resp, read_timeout) => r?,
                () = send::reset_while_sending(send) => return Err(SendError::ClientReset.into()),
            };
            if read == 0 {
                return match framing {
                    Framing::UntilClose => Ok(send_all(send, Bytes::new(), true, stall).await?),
                    _ => Err(CopyError::Truncated.into()),
                };
            }
        }
    }

    /// Answers a stream that got no upstream response.
    fn fail(&self, respond: &mut SendResponse<Bytes>, e: UpstreamError) -> Proxied {
        let status = e.status();
        if status == 499 {
            tracing::debug!("client went away: {e}");
            let outcome = if send::was_reset_early(respond) {
                Outcome::ClientReset
            } else {
                Outcome::Finished
            };
            respond.send_reset(h2::Reason::CANCEL);
            return Proxied {
                status,
                outcome,
                local: false,
            };
        }
        tracing::warn!("upstream request failed ({status}): {e}");
        let body = match status {
            400 => reply::BAD_REQUEST,
            408 => reply::REQUEST_TIMEOUT,
            504 => reply::GATEWAY_TIMEOUT,
            _ => reply::BAD_GATEWAY,
        };
        send_local(respond, status, body, None, self.hsts, self.is_head);
        Proxied {
            status,
            outcome: Outcome::Finished,
            local: true,
        }
    }
}

impl Proxied {
    fn reset() -> Self {
        Proxied {
            status: 499,
            outcome: Outcome::ClientReset,
            local: false,
        }
    }
}

/// Per-read and per-write limits of an upload.
#[derive(Clone, Copy)]
struct UploadLimits {
    /// Longest wait for the client's next DATA frame.
    client: Duration,
    /// Longest wait for each write upstream.
    upstream: Duration,
}

/// Copies the client's DATA frames upstream, chunk-encoded when the
/// client sent no length, releasing flow-control credit as it goes.
async fn upload<W: AsyncWrite + Unpin>(
    body: &mut RecvStream,
    up: &mut W,
    chunked: bool,
    limits: UploadLimits,
) -> Result<(), UpstreamError> {
    let mut frame = Vec::new();
    loop {
        let next = tokio::time::timeout(limits.client, body.data())
            .await
            .map_err(|_| UpstreamError::ClientBody(CopyError::ReadTimeout))?;
        let Some(data) = next else { break };
        let data =
            data.map_err(|e| UpstreamError::ClientBody(CopyError::Read(std::io::Error::other(e))))?;
        let n = data.len();
        if n == 0 {
            continue;
        }
        let bytes: &[u8] = if chunked {
            frame.clear();
            frame.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            frame.extend_from_slice(&data);
            frame.extend_from_slice(b"\r\n");
            &frame
        } else {
            &data
        };
        write_flush(up, bytes, limits.upstream)
            .await
            .map_err(UpstreamError::Send)?;
        let _ = body.flow_control().release_capacity(n);
    }
    if chunked {
        write_flush(up, b"0\r\n\r\n", limits.upstream)
            .await
            .map_err(UpstreamError::Send)?;
    }
    Ok(())
}

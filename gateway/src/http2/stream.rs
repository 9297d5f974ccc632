//! One HTTP/2 stream: route, answer or proxy to an HTTP/1.1 upstream, and
//! send the response back with HTTP/2 flow control.

use crate::decide::{decide, Decision, RequestFacts};
use crate::h1::body::{read_more, write_flush, CopyError};
use crate::h1::chunked::ChunkedScanner;
use crate::h1::head::{self, ClientInfo, Framing};
use crate::h1::reply;
use crate::h1::{read_response_head, Engine, Upstream, UpstreamError};
use crate::metrics as m;
use crate::request_id;
use crate::table::RouteTarget;
use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{header, HeaderValue, Request, Response};
use std::time::Instant;
use tokio::io::AsyncWrite;

/// Answers one stream and records it.
pub async fn serve(
    engine: &Engine,
    client: &ClientInfo,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let start = Instant::now();
    let (status, target) = handle(engine, client, request, &mut respond).await;
    let metrics = target.as_ref().map_or(m::unmatched(), |t| &t.metrics);
    metrics.record(status, start.elapsed().as_secs_f64());
}

async fn handle(
    engine: &Engine,
    client: &ClientInfo,
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
) -> (u16, Option<std::sync::Arc<RouteTarget>>) {
    let (parts, body) = request.into_parts();
    let is_head = parts.method == http::Method::HEAD;
    let hsts = engine.hsts(client);
    let local = |respond: &mut SendResponse<Bytes>,
                 status: u16,
                 body: &'static [u8],
                 location: Option<&str>| {
        send_local(respond, status, body, location, hsts, is_head)
    };
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    let facts = RequestFacts {
        authority,
        path: parts.uri.path(),
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        header_bytes,
        tls: client.tls,
    };
    let decision = decide(
        &engine.table.load(),
        &engine.https,
        engine.max_request_header_bytes,
        facts,
    );
    let target = match decision {
        Decision::Proxy(target) => target,
        answered => {
            let status = match &answered {
                Decision::HeadersTooLarge => local(respond, 431, reply::HEADERS_TOO_LARGE, None),
                Decision::Redirect { location, .. } => local(respond, 308, b"", Some(location)),
                Decision::NoEndpoints(_) => local(respond, 503, reply::NO_ENDPOINTS, None),
                Decision::NotFound | Decision::Proxy(_) => {
                    local(respond, 404, reply::NOT_FOUND, None)
                }
            };
            return (status, answered.target().cloned());
        }
    };
    let framing = match request_framing(&parts.headers, &body) {
        Some(f) => f,
        None => return (local(respond, 400, reply::BAD_REQUEST, None), Some(target)),
    };
    let mut out = Vec::with_capacity(512);
    write_upstream_head(&mut out, &parts, authority, client, framing);
    let exchange = Exchange {
        engine,
        target: &target,
        framing,
        is_head,
        hsts,
    };
    let status = exchange.run(&out, body, respond).await;
    (status, Some(target))
}

/// How the request body goes upstream: with its Content-Length, chunked
/// when the client sent none, or not at all. `None`: an invalid length.
fn request_framing(headers: &http::HeaderMap, body: &RecvStream) -> Option<Framing> {
    if body.is_end_stream() {
        return Some(Framing::None);
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(v) => {
            let n: u64 = v.to_str().ok()?.trim().parse().ok()?;
            Some(if n == 0 {
                Framing::None
            } else {
                Framing::Length(n)
            })
        }
        None => Some(Framing::Chunked),
    }
}

/// The HTTP/1.1 request head: `Host` from `:authority`, the cookies HTTP/2
/// may split joined again (RFC 9113 §8.2.3), connection-specific fields
/// dropped, forwarding fields set.
fn write_upstream_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    authority: &str,
    client: &ClientInfo,
    framing: Framing,
) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    head::field(out, b"Host", authority.as_bytes());
    let mut forwarded_for: Option<Vec<u8>> = None;
    let mut cookies: Vec<&[u8]> = Vec::new();
    let mut request_id = None;
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if n == "x-forwarded-for" {
            let chain = forwarded_for.get_or_insert_with(Vec::new);
            if !chain.is_empty() {
                chain.extend_from_slice(b", ");
            }
            chain.extend_from_slice(value.as_bytes().trim_ascii());
            continue;
        }
        if n == "x-request-id" && head::usable_request_id(value.as_bytes()) {
            request_id = Some(value.as_bytes());
        }
        if n == "host"
            || n == "content-length"
            || n == "transfer-encoding"
            || head::is_hop_by_hop(n)
            || head::is_forwarding_field(n)
        {
            continue;
        }
        if n == "cookie" {
            cookies.push(value.as_bytes());
            continue;
        }
        head::field(out, n.as_bytes(), value.as_bytes());
    }
    if !cookies.is_empty() {
        head::field(out, b"cookie", &cookies.join(&b"; "[..]));
    }
    match framing {
        Framing::Length(n) => head::field(out, b"Content-Length", n.to_string().as_bytes()),
        Framing::Chunked => head::field(out, b"Transfer-Encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {}
    }
    let generated;
    let request_id = match request_id {
        Some(id) => id,
        None => {
            generated = request_id::new_request_id_bytes();
            &generated[..]
        }
    };
    let chain = forwarded_for.as_deref().filter(|c| !c.is_empty());
    head::write_forwarding_fields(out, chain, authority, client, request_id);
    out.extend_from_slice(b"\r\n");
}

/// A local answer; returns its status.
fn send_local(
    respond: &mut SendResponse<Bytes>,
    status: u16,
    body: &'static [u8],
    location: Option<&str>,
    hsts: Option<&[u8]>,
    is_head: bool,
) -> u16 {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, "no-store");
    if !body.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        builder = builder.header(header::LOCATION, l);
    }
    if let Some(h) = hsts.and_then(|h| HeaderValue::from_bytes(h).ok()) {
        builder = builder.header(header::STRICT_TRANSPORT_SECURITY, h);
    }
    let Ok(response) = builder.body(()) else {
        return status;
    };
    let empty = body.is_empty() || is_head;
    match respond.send_response(response, empty) {
        Ok(mut send) if !empty => {
            if let Err(e) = send.send_data(Bytes::from_static(body), true) {
                tracing::debug!("sending a local answer: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!("sending a local answer: {e}"),
    }
    status
}

/// What a proxied stream needs.
struct Exchange<'a> {
    engine: &'a Engine,
    target: &'a RouteTarget,
    framing: Framing,
    is_head: bool,
    hsts: Option<&'a [u8]>,
}

/// A response head read from the upstream.
struct UpstreamHead {
    status: u16,
    framing: Framing,
    reusable: bool,
    head_len: usize,
    response: Response<()>,
}

impl Exchange<'_> {
    /// Proxies the stream; returns the status the client got.
    async fn run(
        &self,
        out: &[u8],
        mut body: RecvStream,
        respond: &mut SendResponse<Bytes>,
    ) -> u16 {
        let mut resp = BytesMut::new();
        let result = if self.framing == Framing::None {
            self.bodiless(out, &mut resp).await
        } else {
            self.with_body(out, &mut body, &mut resp).await
        };
        let (mut up, head, upload_done) = match result {
            Ok(r) => r,
            Err(e) => return self.fail(respond, e),
        };
        let status = head.status;
        let end = head.framing == Framing::None;
        let mut send = match respond.send_response(head.response, end) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("client stream gone: {e}");
                return status;
            }
        };
        if end {
            if head.reusable && upload_done && resp.is_empty() {
                self.engine.pool.put(up.address, up.stream);
            }
            return status;
        }
        match self
            .relay(&mut up, &mut resp, head.framing, &mut send)
            .await
        {
            Ok(()) => {
                if head.reusable && upload_done && resp.is_empty() {
                    self.engine.pool.put(up.address, up.stream);
                }
            }
            Err(e) => {
                tracing::debug!(upstream = %up.address, "response not completed: {e}");
                send.send_reset(h2::Reason::INTERNAL_ERROR);
            }
        }
        status
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
        let write_timeout = self.engine.upstream.write_timeout;
        let chunked = self.framing == Framing::Chunked;
        let (head, upload_done) = {
            let body_timeout = self.engine.client_body_timeout;
            let upload = upload(body, &mut up_write, chunked, write_timeout, body_timeout);
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
        let mut head = head;
        if !upload_done {
            head.reusable = false;
        }
        Ok((up, head, upload_done))
    }

    /// Reads the final response head (interim 1xx are dropped: there is no
    /// way to pass them on through the h2 crate) and converts it.
    async fn read_head<R: tokio::io::AsyncRead + Unpin>(
        &self,
        up: &mut R,
        resp: &mut BytesMut,
        timeout: Option<std::time::Duration>,
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

    /// Streams the response body into DATA frames, as the client's flow
    /// control window allows.
    async fn relay(
        &self,
        up: &mut Upstream,
        resp: &mut BytesMut,
        framing: Framing,
        send: &mut SendStream<Bytes>,
    ) -> Result<(), RelayError> {
        let read_timeout = self.engine.upstream.read_timeout;
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut scanner = ChunkedScanner::default();
        loop {
            if !resp.is_empty() {
                match framing {
                    Framing::Length(_) => {
                        let take = resp.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        left -= take as u64;
                        send_all(send, resp.split_to(take).freeze(), left == 0).await?;
                        if left == 0 {
                            return Ok(());
                        }
                    }
                    Framing::Chunked => {
                        let mut payload = Vec::new();
                        let used = scanner.feed(resp, |d| payload.extend_from_slice(d))?;
                        resp.advance(used);
                        let done = scanner.is_done();
                        if !payload.is_empty() || done {
                            send_all(send, Bytes::from(payload), done).await?;
                        }
                        if done {
                            return Ok(());
                        }
                    }
                    Framing::UntilClose => {
                        let all = resp.split().freeze();
                        send_all(send, all, false).await?;
                    }
                    Framing::None => return Ok(()),
                }
            }
            if read_more(&mut up.stream, resp, read_timeout).await? == 0 {
                return match framing {
                    Framing::UntilClose => send_all(send, Bytes::new(), true).await,
                    _ => Err(RelayError::Upstream(CopyError::Truncated)),
                };
            }
        }
    }

    /// Answers a stream that got no upstream response.
    fn fail(&self, respond: &mut SendResponse<Bytes>, e: UpstreamError) -> u16 {
        let status = e.status();
        if status == 499 {
            tracing::debug!("client went away: {e}");
            respond.send_reset(h2::Reason::CANCEL);
            return status;
        }
        tracing::warn!("upstream request failed ({status}): {e}");
        let body = match status {
            400 => reply::BAD_REQUEST,
            408 => reply::REQUEST_TIMEOUT,
            504 => reply::GATEWAY_TIMEOUT,
            _ => reply::BAD_GATEWAY,
        };
        send_local(respond, status, body, None, self.hsts, self.is_head)
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("upstream: {0}")]
    Upstream(#[from] CopyError),
    #[error("bad chunked response: {0}")]
    Chunked(#[from] crate::h1::chunked::ChunkError),
    #[error("client stream: {0}")]
    Client(#[from] h2::Error),
}

/// The response head for the client: hop-by-hop and framing fields
/// dropped (HTTP/2 frames the body itself), HSTS set.
fn to_h2_response(
    parsed: &head::ResponseHead<'_, '_>,
    hsts: Option<&[u8]>,
) -> Result<Response<()>, UpstreamError> {
    let mut builder = Response::builder().status(parsed.meta.status);
    let encoded = parsed
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    for h in parsed.headers {
        let name = h.name;
        if head::is_hop_by_hop(name)
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (encoded && name.eq_ignore_ascii_case("content-length"))
            || (hsts.is_some() && name.eq_ignore_ascii_case("strict-transport-security"))
            || head::listed_in_connection(parsed.headers, name)
        {
            continue;
        }
        builder = builder.header(name, h.value);
    }
    if let Some(h) = hsts {
        builder = builder.header(header::STRICT_TRANSPORT_SECURITY, h);
    }
    builder.body(()).map_err(|_| {
        UpstreamError::BadHead(head::HeadError::Malformed(httparse::Error::HeaderValue))
    })
}

/// Sends `data` as the peer's window allows; `end` closes the stream.
async fn send_all(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), RelayError> {
    if data.is_empty() {
        if end {
            send.send_data(Bytes::new(), true)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(RelayError::Upstream(CopyError::Truncated)),
        };
        if granted == 0 {
            continue;
        }
        let chunk = data.split_to(granted.min(data.len()));
        send.send_data(chunk, end && data.is_empty())?;
    }
    Ok(())
}

/// Copies the client's DATA frames upstream, chunk-encoded when the
/// client sent no length, releasing flow-control credit as it goes.
async fn upload<W: AsyncWrite + Unpin>(
    body: &mut RecvStream,
    up: &mut W,
    chunked: bool,
    write_timeout: std::time::Duration,
    body_timeout: std::time::Duration,
) -> Result<(), UpstreamError> {
    let mut frame = Vec::new();
    loop {
        // nginx's client_body_timeout: the longest wait for the next DATA.
        let next = tokio::time::timeout(body_timeout, body.data())
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
        write_flush(up, bytes, write_timeout)
            .await
            .map_err(UpstreamError::Send)?;
        let _ = body.flow_control().release_capacity(n);
    }
    if chunked {
        write_flush(up, b"0\r\n\r\n", write_timeout)
            .await
            .map_err(UpstreamError::Send)?;
    }
    Ok(())
}

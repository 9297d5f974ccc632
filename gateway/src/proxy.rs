//! The Pingora proxy: route lookup, endpoint choice with bounded retries,
//! forwarding headers, and the status codes we answer ourselves.

use crate::forwarded::{self, ClientConnection, RequestId};
use crate::metrics::{self as m, RouteMetrics};
use crate::table::{RouteTable, RouteTarget};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use gatehouse_model::host::normalize_request_host;
use http::header;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upstream connection settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// Connection attempts per request (the first try included).
    pub connect_attempts: u8,
}

/// The proxy service; shared by all worker threads.
pub struct Gateway {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub upstream: UpstreamConfig,
}

/// Per-request state.
pub struct RequestCtx {
    start: Instant,
    target: Option<Arc<RouteTarget>>,
    /// Bitmask of endpoint indices already tried.
    tried: u64,
    attempts: u8,
    request_id: Option<RequestId>,
}

const NOT_FOUND: &[u8] = b"404 Not Found: no Ingress rule matches this host and path\n";
const NO_ENDPOINTS: &[u8] = b"503 Service Unavailable: the backend has no ready endpoints\n";

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            start: Instant::now(),
            target: None,
            tried: 0,
            attempts: 0,
            request_id: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let req = session.req_header();
        let raw_host = req
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        let host = normalize_request_host(raw_host);
        let table = self.table.load();
        let target = table.find(&host, req.uri.path()).cloned();
        drop(table);
        ctx.request_id = Some(forwarded::request_id(req));
        match target {
            None => respond(session, 404, NOT_FOUND).await,
            Some(t) if t.backend.endpoints.is_empty() => {
                ctx.target = Some(t);
                respond(session, 503, NO_ENDPOINTS).await
            }
            Some(t) => {
                ctx.target = Some(t);
                Ok(false)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let Some(target) = &ctx.target else {
            return Error::e_explain(ErrorType::InternalError, "no route selected");
        };
        let Some((index, endpoint)) = target.backend.pick(ctx.tried) else {
            return Error::e_explain(ErrorType::ConnectNoRoute, "every endpoint failed");
        };
        if index < 64 {
            ctx.tried |= 1 << index;
        }
        ctx.attempts += 1;
        let mut peer = HttpPeer::new(endpoint.address, false, String::new());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.upstream.connect_timeout);
        o.read_timeout = Some(self.upstream.read_timeout);
        o.write_timeout = Some(self.upstream.write_timeout);
        o.idle_timeout = Some(self.upstream.idle_timeout);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let endpoints = ctx.target.as_ref().map_or(0, |t| t.backend.endpoints.len());
        let untried = (ctx.attempts as usize) < endpoints;
        if untried && ctx.attempts < self.upstream.connect_attempts {
            metrics::counter!(m::UPSTREAM_RETRIES).increment(1);
            tracing::debug!(peer = %peer, "connect failed, trying another endpoint: {e}");
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora_http::RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let conn = ClientConnection {
            client_ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            server_port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port()),
            tls: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        };
        forwarded::set_headers(upstream_request, conn, ctx.request_id.as_ref())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let code = status_for_error(e);
        if code > 0 {
            if let Err(err) = session.respond_error(code).await {
                tracing::debug!("could not send error response: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let metrics: &RouteMetrics = ctx.target.as_ref().map_or(m::unmatched(), |t| &t.metrics);
        metrics.record(status, ctx.start.elapsed().as_secs_f64());
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, error: &Error) -> bool {
        // Clients going away are normal; they are counted, not logged.
        matches!(error.esource(), ErrorSource::Downstream)
    }
}

/// The status a failed request gets: timeouts talking to the upstream are
/// 504, other upstream failures 502.
pub fn status_for_error(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        ErrorType::ConnectTimedout => 504,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
                ErrorType::ConnectNoRoute | ErrorType::ConnectRefused | ErrorType::ConnectError => {
                    502
                }
                _ => 500,
            },
        },
    }
}

/// Answers a request ourselves, keeping the connection open.
async fn respond(session: &mut Session, status: u16, body: &'static [u8]) -> Result<bool> {
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body)), true)
        .await?;
    Ok(true)
}

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
use pingora_core::modules::http::HttpModules;
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

/// How plain HTTP relates to HTTPS.
#[derive(Debug, Clone, Default)]
pub struct HttpsConfig {
    /// The port HTTP→HTTPS redirects point to; `None` when there is no HTTPS
    /// listener (then nothing is redirected).
    pub redirect_port: Option<u16>,
    /// `Strict-Transport-Security` value added to responses sent over TLS.
    pub hsts: Option<http::HeaderValue>,
}

/// The proxy service; shared by all worker threads.
pub struct Gateway {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub upstream: UpstreamConfig,
    pub https: HttpsConfig,
    /// Requests whose header fields (names and values) add up to more than
    /// this are refused with 431 instead of being forwarded.
    pub max_request_header_bytes: usize,
}

/// Per-request state.
pub struct RequestCtx {
    start: Instant,
    target: Option<Arc<RouteTarget>>,
    /// Bitmask of endpoint indices already tried.
    tried: u64,
    attempts: u8,
    request_id: Option<RequestId>,
    /// The client connection is TLS.
    tls: bool,
}

const NOT_FOUND: &[u8] = b"404 Not Found: no Ingress rule matches this host and path\n";
const NO_ENDPOINTS: &[u8] = b"503 Service Unavailable: the backend has no ready endpoints\n";
const HEADERS_TOO_LARGE: &[u8] = b"431 Request Header Fields Too Large\n";

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
            tls: false,
        }
    }

    /// No downstream modules. Pingora's default is a response compression
    /// module at level 0 (disabled) that still runs on every request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        if header_bytes(session.req_header()) > self.max_request_header_bytes {
            return respond(session, 431, HEADERS_TOO_LARGE, None).await;
        }
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
        ctx.tls = is_tls(session);
        let hsts = self.hsts_for(ctx);
        if let (Some(t), Some(port)) = (&target, self.https.redirect_port) {
            if t.redirect_to_https && !ctx.tls {
                let req = session.req_header();
                if !req.uri.path().starts_with(ACME_CHALLENGE) {
                    let location = https_location(
                        &host,
                        port,
                        req.uri.path_and_query().map_or("/", |p| p.as_str()),
                    );
                    ctx.target = target;
                    return redirect(session, &location).await;
                }
            }
        }
        match target {
            None => respond(session, 404, NOT_FOUND, hsts).await,
            Some(t) if t.backend.endpoints.is_empty() => {
                ctx.target = Some(t);
                respond(session, 503, NO_ENDPOINTS, hsts).await
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
            tls: ctx.tls,
        };
        forwarded::set_headers(upstream_request, conn, ctx.request_id.as_ref())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(hsts) = self.hsts_for(ctx) {
            upstream_response.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
        }
        Ok(())
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

impl Gateway {
    fn hsts_for(&self, ctx: &RequestCtx) -> Option<&http::HeaderValue> {
        self.https.hsts.as_ref().filter(|_| ctx.tls)
    }
}

/// The size of a request's header fields as they would be forwarded.
fn header_bytes(req: &pingora_http::RequestHeader) -> usize {
    req.headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// ACME HTTP-01 challenges must stay reachable over plain HTTP.
pub const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// `https://host[:port]/path?query`; the port is left out when it is 443.
pub fn https_location(host: &str, port: u16, path_and_query: &str) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{port}{path_and_query}")
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
async fn respond(
    session: &mut Session,
    status: u16,
    body: &'static [u8],
    hsts: Option<&http::HeaderValue>,
) -> Result<bool> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if let Some(h) = hsts {
        resp.insert_header(header::STRICT_TRANSPORT_SECURITY, h.clone())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body)), true)
        .await?;
    Ok(true)
}

/// A 308 to HTTPS (method and body preserved, unlike 301/302).
async fn redirect(session: &mut Session, location: &str) -> Result<bool> {
    let mut resp = ResponseHeader::build(308, Some(3))?;
    resp.insert_header(header::LOCATION, location)?;
    resp.insert_header(header::CONTENT_LENGTH, 0)?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    session.write_response_header(Box::new(resp), true).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_locations() {
        let cases = [
            (
                "default_port_omitted",
                "a.test",
                443,
                "/x?y=1",
                "https://a.test/x?y=1",
            ),
            (
                "other_port_kept",
                "a.test",
                8443,
                "/",
                "https://a.test:8443/",
            ),
            ("ipv6_bracketed", "::1", 8443, "/p", "https://[::1]:8443/p"),
        ];
        for (name, host, port, pq, want) in cases {
            assert_eq!(https_location(host, port, pq), want, "case {name}");
        }
    }
}

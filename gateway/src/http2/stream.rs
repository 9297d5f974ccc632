//! One HTTP/2 stream: route, then answer locally or proxy to an HTTP/1.1
//! upstream (`exchange`). After a local answer the rest of the request is
//! read and dropped (`drain`), so its frames are still checked.

use super::drain::drain;
use super::exchange::Exchange;
use super::translate::{request_framing, write_upstream_head};
use crate::decide::{decide, Decision, RequestFacts};
use crate::h1::head::ClientInfo;
use crate::h1::reply;
use crate::h1::Engine;
use crate::metrics as m;
use crate::table::RouteTarget;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{header, HeaderValue, Request, Response};
use std::sync::Arc;
use std::time::Instant;

/// How a stream ended, for the connection's accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// The client reset the stream while the gateway was working on it.
    ClientReset,
}

/// What `handle` did.
struct Answer {
    status: u16,
    target: Option<Arc<RouteTarget>>,
    outcome: Outcome,
    /// The gateway answered itself: the request body is not needed.
    local: bool,
}

/// Answers one stream and records it.
pub async fn serve(
    engine: Arc<Engine>,
    client: Arc<ClientInfo>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> Outcome {
    let start = Instant::now();
    let (parts, mut body) = request.into_parts();
    let answer = handle(&engine, &client, &parts, &mut body, &mut respond).await;
    let metrics = answer
        .target
        .as_ref()
        .map_or(m::unmatched(), |t| &t.metrics);
    metrics.record(answer.status, start.elapsed().as_secs_f64());
    if answer.outcome == Outcome::ClientReset {
        metrics::counter!(m::HTTP2_CLIENT_RESETS).increment(1);
    }
    if answer.local && !body.is_end_stream() {
        drop(respond);
        drain(&mut body, engine.client_timeout).await;
    }
    answer.outcome
}

async fn handle(
    engine: &Engine,
    client: &ClientInfo,
    parts: &http::request::Parts,
    body: &mut RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Answer {
    let is_head = parts.method == http::Method::HEAD;
    let hsts = engine.hsts(client);
    let local = |respond: &mut SendResponse<Bytes>,
                 status: u16,
                 body: &'static [u8],
                 location: Option<&str>,
                 target: Option<Arc<RouteTarget>>| {
        send_local(respond, status, body, location, hsts, is_head);
        Answer {
            status,
            target,
            outcome: Outcome::Finished,
            local: true,
        }
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
            if !body.is_end_stream() {
                let_connection_read().await;
            }
            let target = answered.target().cloned();
            return match &answered {
                Decision::HeadersTooLarge => {
                    local(respond, 431, reply::HEADERS_TOO_LARGE, None, target)
                }
                Decision::Redirect { location, .. } => {
                    local(respond, 308, b"", Some(location), target)
                }
                Decision::NoEndpoints(_) => local(respond, 503, reply::NO_ENDPOINTS, None, target),
                Decision::NotFound | Decision::Proxy(_) => {
                    local(respond, 404, reply::NOT_FOUND, None, target)
                }
            };
        }
    };
    let Some(framing) = request_framing(&parts.headers, body) else {
        return local(respond, 400, reply::BAD_REQUEST, None, Some(target));
    };
    let mut out = Vec::with_capacity(512);
    let underscores = engine.allow_underscores_in_headers;
    write_upstream_head(&mut out, parts, authority, client, framing, underscores);
    let exchange = Exchange {
        engine,
        target: &target,
        framing,
        is_head,
        hsts,
    };
    let proxied = exchange.run(&out, body, respond).await;
    Answer {
        status: proxied.status,
        target: Some(target),
        outcome: proxied.outcome,
        local: proxied.local,
    }
}

/// Before answering a stream whose request is still coming, lets the
/// connection read the frames already received (the streams run in the
/// connection's task, so one yield is one turn of its loop): an error they
/// carry — a stream window pushed past 2^31-1, say — is then found while
/// the stream is still open, not ignored on a stream already answered.
async fn let_connection_read() {
    tokio::task::yield_now().await;
}

/// A local answer.
pub(super) fn send_local(
    respond: &mut SendResponse<Bytes>,
    status: u16,
    body: &'static [u8],
    location: Option<&str>,
    hsts: Option<&[u8]>,
    is_head: bool,
) {
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
        return;
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
}

//! The snapshot stream for gateways, plain (local mode, loopback) or over
//! mutual TLS (cluster mode: the stream carries private keys).
//!
//! `GET /v1/snapshots` streams newline-delimited JSON frames: the current
//! snapshot at once, then each new frame (full snapshots and endpoint
//! updates, see [`crate::publisher`]). Empty lines are heartbeats, so a
//! gateway can tell a silent controller from a dead connection.
//! `GET /v1/snapshot` returns the current state once: the lines a new
//! stream would start with (the full snapshot and the endpoint updates
//! published since).

use crate::metrics as m;
use crate::publisher::Subscription;
use crate::stream_tls::ReloadingServerConfig;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// How often an idle stream sends a heartbeat line.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A peer that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, Infallible>;

/// Serves until the task is dropped. With `tls`, every connection must
/// complete a handshake with a client certificate the CA vouches for.
pub async fn serve(
    listener: TcpListener,
    snapshots: Subscription,
    tls: Option<Arc<ReloadingServerConfig>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("snapshot server accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let snapshots = snapshots.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, snapshots, peer).await,
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.get());
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, snapshots, peer).await,
                        Ok(Err(e)) => refused(peer, &e.to_string()),
                        Err(_) => refused(peer, "handshake timed out"),
                    }
                }
            }
        });
    }
}

fn refused(peer: std::net::SocketAddr, why: &str) {
    metrics::counter!(m::STREAM_REFUSED, "reason" => "tls").increment(1);
    tracing::warn!(%peer, "snapshot stream connection refused: {why}");
}

async fn serve_connection<S>(stream: S, snapshots: Subscription, peer: std::net::SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let resp = route(&req, &snapshots);
        async move { Ok::<_, Infallible>(resp) }
    });
    if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await
    {
        tracing::debug!(%peer, "snapshot connection ended: {e}");
    }
}

fn route(req: &Request<Incoming>, snapshots: &Subscription) -> Response<Body> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/v1/snapshots" => stream(snapshots.clone()),
        "/v1/snapshot" => match snapshots.borrow().as_ref() {
            Some(chain) => ndjson(Bytes::from(chain.lines_after(None).concat())),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn stream(mut rx: Subscription) -> Response<Body> {
    metrics::gauge!(m::SUBSCRIBERS).increment(1.0);
    let guard = SubscriberGuard;
    // Mark the current value unseen so the first poll sends it.
    rx.mark_changed();
    let state = (rx, guard, None::<u64>);
    let frames = futures::stream::unfold(state, |(mut rx, guard, sent)| async move {
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let current = rx.borrow_and_update().clone();
                    if let Some(chain) = current {
                        let lines = chain.lines_after(sent);
                        if lines.is_empty() {
                            continue;
                        }
                        let body = if lines.len() == 1 {
                            lines[0].clone()
                        } else {
                            Bytes::from(lines.concat())
                        };
                        return Some((body, (rx, guard, Some(chain.version()))));
                    }
                }
                _ = tokio::time::sleep(HEARTBEAT) => {
                    return Some((Bytes::from_static(b"\n"), (rx, guard, sent)));
                }
            }
        }
    })
    .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// Counts open streams in a gauge for as long as the stream lives.
struct SubscriberGuard;

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        metrics::gauge!(m::SUBSCRIBERS).decrement(1.0);
    }
}

fn ndjson(body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp
}

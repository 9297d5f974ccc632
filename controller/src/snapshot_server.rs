//! The controller's HTTP endpoint: the snapshot stream for gateways, plus
//! health and metrics.
//!
//! `GET /v1/snapshots` streams newline-delimited JSON [`SnapshotFrame`]s: the
//! current one at once, then each new one. Empty lines are heartbeats, so a
//! gateway can tell a silent controller from a dead connection.
//!
//! [`SnapshotFrame`]: gatehouse_model::SnapshotFrame

use crate::publisher::Subscription;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How often an idle stream sends a heartbeat line.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone)]
pub struct ServerState {
    pub snapshots: Subscription,
    pub metrics: Option<PrometheusHandle>,
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, state: ServerState) {
    let state = Arc::new(state);
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
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, &state)) }
            });
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%peer, "snapshot connection ended: {e}");
            }
        });
    }
}

fn route(req: Request<Incoming>, state: &ServerState) -> Response<Body> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/v1/snapshots" => stream(state.snapshots.clone()),
        "/v1/snapshot" => match state.snapshots.borrow().clone() {
            Some(p) => json(p.line.clone()),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n"),
        },
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match state.snapshots.borrow().is_some() {
            true => text(StatusCode::OK, "ok\n"),
            false => text(StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n"),
        },
        "/metrics" => match &state.metrics {
            Some(h) => text(StatusCode::OK, h.render()),
            None => text(StatusCode::NOT_FOUND, "metrics disabled\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn stream(mut rx: Subscription) -> Response<Body> {
    metrics::gauge!("gatehouse_controller_snapshot_subscribers").increment(1.0);
    let guard = SubscriberGuard;
    // Mark the current value unseen so the first poll sends it.
    rx.mark_changed();
    let frames = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let current = rx.borrow_and_update().clone();
                    if let Some(p) = current {
                        return Some((p.line.clone(), (rx, guard)));
                    }
                }
                _ = tokio::time::sleep(HEARTBEAT) => {
                    return Some((Bytes::from_static(b"\n"), (rx, guard)));
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
        metrics::gauge!("gatehouse_controller_snapshot_subscribers").decrement(1.0);
    }
}

fn json(body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp
}

//! The admin endpoint: `/healthz` (the process is up), `/readyz` (a snapshot
//! is installed), `/metrics` (Prometheus text).

use crate::install::SharedTable;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, shared: SharedTable, metrics: PrometheusHandle) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let resp = answer(&req, &shared, &metrics);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(
    req: &Request<Incoming>,
    shared: &SharedTable,
    metrics: &PrometheusHandle,
) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" if shared.is_ready() => (
            StatusCode::OK,
            format!("ready: snapshot version {}\n", shared.version()),
        ),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no snapshot yet\n".to_owned(),
        ),
        "/metrics" => (StatusCode::OK, metrics.render()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}

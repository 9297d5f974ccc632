//! The controller's admin endpoint: `/healthz` (the process is up),
//! `/readyz` (caches synced and a snapshot built), `/metrics`.

use crate::publisher::Subscription;
use crate::snapshot_server::text;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What `/readyz` reports on.
#[derive(Clone)]
pub struct Readiness {
    /// Every watched kind has been listed (always true in local mode).
    pub synced: Arc<AtomicBool>,
    /// The controller's snapshots; `None` for the speaker, which is ready
    /// once synced.
    pub snapshots: Option<Subscription>,
}

impl Readiness {
    /// `Ok` with a line for the body, or why not ready.
    fn check(&self) -> Result<String, &'static str> {
        if !self.synced.load(Ordering::Acquire) {
            return Err("not ready: caches not synced yet\n");
        }
        let Some(snapshots) = &self.snapshots else {
            return Ok("ready: synced\n".to_owned());
        };
        match snapshots.borrow().as_ref() {
            Some(chain) => Ok(format!("ready: snapshot version {}\n", chain.version())),
            None => Err("not ready: no snapshot yet\n"),
        }
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, readiness: Readiness, metrics: PrometheusHandle) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = match req.uri().path() {
                    "/healthz" => text(StatusCode::OK, "ok\n"),
                    "/readyz" => match readiness.check() {
                        Ok(line) => text(StatusCode::OK, line),
                        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
                    },
                    "/metrics" => text(StatusCode::OK, metrics.render()),
                    _ => text(StatusCode::NOT_FOUND, "not found\n"),
                };
                async move { Ok::<Response<_>, Infallible>(resp) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

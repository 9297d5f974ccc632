//! Stopping without dropping traffic. On SIGTERM the gateway keeps serving
//! for `--shutdown-grace` (load balancers and kube-proxy are still sending
//! new connections while the pod's endpoint is withdrawn), then stops
//! accepting, closes idle keep-alive connections, lets requests in flight
//! finish for up to `--shutdown-drain`, and exits as soon as no connection
//! is left. SIGINT stops at once.

use crate::metrics as m;
use async_trait::async_trait;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// Client connections being served (HTTP/1.x and HTTP/2, plain and TLS).
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

/// Counts one connection while it lives.
pub struct ConnectionGuard(OpenConnections);

impl OpenConnections {
    pub fn open(&self) -> ConnectionGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(m::OPEN_CONNECTIONS).increment(1.0);
        ConnectionGuard(self.clone())
    }

    /// Counts one more connection unless `limit` are open already.
    pub fn try_open(&self, limit: usize) -> Option<ConnectionGuard> {
        let before = self.0.fetch_add(1, Ordering::Relaxed);
        if before >= limit {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        metrics::gauge!(m::OPEN_CONNECTIONS).increment(1.0);
        Some(ConnectionGuard(self.clone()))
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(m::OPEN_CONNECTIONS).decrement(1.0);
    }
}

/// The shutdown signal handling described in the module docs.
pub struct GracefulTermination {
    pub grace: Duration,
    pub drain: Duration,
    pub connections: OpenConnections,
}

#[async_trait]
impl ShutdownSignalWatch for GracefulTermination {
    async fn recv(&self) -> ShutdownSignal {
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot watch for SIGTERM/SIGINT: {e}");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = term.recv() => {}
        }
        tracing::info!(grace = ?self.grace, "SIGTERM: serving on through the grace period");
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            () = tokio::time::sleep(self.grace) => {}
        }
        tracing::info!(
            drain = ?self.drain,
            open = self.connections.count(),
            "no longer accepting connections; draining"
        );
        exit_when_drained(self.connections.clone(), self.drain);
        ShutdownSignal::GracefulTerminate
    }
}

/// Ends the process once every connection is closed. Pingora would
/// otherwise wait out the whole drain period.
fn exit_when_drained(connections: OpenConnections, drain: Duration) {
    let spawned = std::thread::Builder::new()
        .name("gatehouse-drain".into())
        .spawn(move || {
            let deadline = Instant::now() + drain;
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                if connections.count() == 0 {
                    tracing::info!("all connections closed; exiting");
                    std::process::exit(0);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the drain: {e}");
    }
}

//! Installing snapshots: validate, compile off the request path, swap in
//! atomically. Requests in flight keep the table they started on.

use crate::metrics as m;
use crate::table::RouteTable;
use crate::tls::{CertStore, SniResolver};
use arc_swap::ArcSwap;
use gatehouse_model::{SnapshotError, SnapshotFrame};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The route table the proxy reads and whether one was ever installed.
#[derive(Clone, Default)]
pub struct SharedTable {
    pub table: Arc<ArcSwap<RouteTable>>,
    ready: Arc<AtomicBool>,
    /// Present when an HTTPS listener is configured.
    pub tls: Option<Arc<SniResolver>>,
}

/// Why a snapshot was not installed; the previous one keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("snapshot is not valid JSON: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("snapshot version {version} rejected: {source}")]
    Invalid { version: u64, source: SnapshotError },
}

/// Parses one frame (counted as rejected when it does not parse).
pub fn parse_frame(bytes: &[u8]) -> Result<SnapshotFrame, InstallError> {
    serde_json::from_slice(bytes).map_err(|e| {
        metrics::counter!(m::SNAPSHOT_REJECTED).increment(1);
        InstallError::Parse(e)
    })
}

impl SharedTable {
    /// An empty table; `tls` when an HTTPS listener is configured.
    pub fn new(tls: Option<Arc<SniResolver>>) -> Self {
        SharedTable {
            tls,
            ..SharedTable::default()
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn version(&self) -> u64 {
        self.table.load().version
    }

    /// Validates, compiles and installs a frame.
    pub fn install(&self, frame: &SnapshotFrame) -> Result<u64, InstallError> {
        let started = Instant::now();
        if let Err(source) = frame.snapshot.validate() {
            metrics::counter!(m::SNAPSHOT_REJECTED).increment(1);
            return Err(InstallError::Invalid {
                version: frame.version,
                source,
            });
        }
        let table = RouteTable::compile(frame.version, &frame.snapshot);
        let routes = table.route_count;
        if let Some(resolver) = &self.tls {
            let (store, errors) = CertStore::compile(&frame.snapshot);
            for e in errors {
                // The controller checked it; if it still fails here its hosts
                // get the default certificate and everything else goes on.
                tracing::error!("{e}; its hosts are served with the default certificate");
            }
            resolver.swap(store);
        }
        self.table.store(Arc::new(table));
        self.ready.store(true, Ordering::Release);
        metrics::gauge!(m::SNAPSHOT_VERSION).set(frame.version as f64);
        metrics::gauge!(m::SNAPSHOT_ROUTES).set(routes as f64);
        metrics::counter!(m::SNAPSHOT_UPDATES).increment(1);
        tracing::info!(
            version = frame.version,
            routes,
            compile_ms = started.elapsed().as_millis() as u64,
            "installed snapshot"
        );
        Ok(frame.version)
    }
}

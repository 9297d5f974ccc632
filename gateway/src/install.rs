//! Installing snapshots: validate, compile off the request path, swap in
//! atomically. Requests in flight keep the table they started on. Endpoint
//! updates replace the endpoint lists of the installed table's backends in
//! place, without compiling anything.

use crate::metrics as m;
use crate::table::RouteTable;
use crate::tls::{CertStore, SniResolver};
use arc_swap::ArcSwap;
use gatehouse_model::{BackendId, EndpointsFrame, SnapshotError, SnapshotFrame, StreamFrame};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The route table the proxy reads and whether one was ever installed.
#[derive(Clone, Default)]
pub struct SharedTable {
    pub table: Arc<ArcSwap<RouteTable>>,
    ready: Arc<AtomicBool>,
    /// The newest version applied (a full snapshot or an endpoint update).
    version: Arc<AtomicU64>,
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
    #[error("endpoint update {version} names backends the installed snapshot does not have: {unknown:?}")]
    UnknownBackends {
        version: u64,
        unknown: Vec<BackendId>,
    },
    #[error("endpoint update {version} arrived before any snapshot")]
    NoSnapshot { version: u64 },
    #[error("a snapshot file must hold a full snapshot, not an endpoint update")]
    NotASnapshot,
}

/// Parses one stream line (counted as rejected when it does not parse).
pub fn parse_frame(bytes: &[u8]) -> Result<StreamFrame, InstallError> {
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
        self.version.load(Ordering::Acquire)
    }

    /// Applies one stream frame.
    pub fn apply(&self, frame: &StreamFrame) -> Result<u64, InstallError> {
        match frame {
            StreamFrame::Snapshot(f) => self.install(f),
            StreamFrame::Endpoints(f) => self.update_endpoints(f),
        }
    }

    /// Replaces the endpoints of the listed backends of the installed table.
    /// All or nothing: an update naming an unknown backend changes nothing.
    pub fn update_endpoints(&self, frame: &EndpointsFrame) -> Result<u64, InstallError> {
        if !self.is_ready() {
            metrics::counter!(m::SNAPSHOT_REJECTED).increment(1);
            return Err(InstallError::NoSnapshot {
                version: frame.version,
            });
        }
        let table = self.table.load();
        let unknown: Vec<BackendId> = frame
            .endpoints
            .keys()
            .filter(|id| table.backend(id).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            metrics::counter!(m::SNAPSHOT_REJECTED).increment(1);
            return Err(InstallError::UnknownBackends {
                version: frame.version,
                unknown,
            });
        }
        for (id, endpoints) in &frame.endpoints {
            if let Some(backend) = table.backend(id) {
                backend.set_endpoints(endpoints);
            }
        }
        self.version.store(frame.version, Ordering::Release);
        metrics::gauge!(m::SNAPSHOT_VERSION).set(frame.version as f64);
        metrics::counter!(m::ENDPOINT_UPDATES).increment(1);
        tracing::debug!(
            version = frame.version,
            backends = frame.endpoints.len(),
            "applied endpoint update"
        );
        Ok(frame.version)
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
        self.version.store(frame.version, Ordering::Release);
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

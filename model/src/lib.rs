//! The routing snapshot the controller builds and the gateways serve, and the
//! matching semantics of its hosts and paths.
//!
//! Pure data and pure functions: no Kubernetes client, no proxy, no runtime. The
//! controller and the gateway both depend on this crate, so what the controller
//! tests about matching is exactly what the gateway does.
#![forbid(unsafe_code)]

pub mod host;
pub mod path;
pub mod router;
pub mod snapshot;
pub mod tls;

#[cfg(feature = "certs")]
pub mod certs;

pub use host::{HostError, HostMatch};
pub use path::{PathError, PathMatch};
pub use router::{Router, RouterBuilder};
pub use snapshot::{
    Backend, BackendId, Endpoint, EndpointsFrame, ObjectRef, PortRef, Route, Snapshot,
    SnapshotError, SnapshotFrame, StreamFrame, VirtualHost,
};
pub use tls::{Certificate, CertificateId, TlsHost};

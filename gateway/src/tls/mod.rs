//! TLS termination: certificates chosen per handshake by SNI from the
//! snapshot, a default certificate for everything else, and TLS metrics.

pub mod handshake_metrics;
pub mod resolver;
pub mod self_signed;
pub mod store;

pub use resolver::SniResolver;
pub use store::CertStore;

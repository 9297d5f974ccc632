//! TLS in the snapshot: which certificate serves which host, and the
//! certificate material itself (only what the gateways need to serve).

use crate::HostMatch;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Names a certificate by the Secret it came from: `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CertificateId(pub String);

impl CertificateId {
    pub fn new(namespace: &str, name: &str) -> Self {
        CertificateId(format!("{namespace}/{name}"))
    }
}

impl fmt::Display for CertificateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A certificate chain and its private key, PEM-encoded, as the Secret held
/// them. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// End-entity certificate first, then intermediates.
    pub chain_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// Which certificate a TLS host is served with. `certificate: None` means the
/// host has TLS but no usable certificate of its own: the default one serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsHost {
    pub host: HostMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateId>,
}

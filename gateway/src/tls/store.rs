//! The certificates of one snapshot, indexed for SNI lookup.

use gatehouse_model::certs::{parse_pem, ParsedCertificate};
use gatehouse_model::{CertificateId, HostMatch, Snapshot};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// Which kind of match chose a certificate (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Exact,
    Wildcard,
    /// SNI named a host no TLS host covers, or a TLS host has no usable
    /// certificate of its own.
    Default,
    /// The client sent no SNI.
    NoSni,
}

impl Selection {
    pub fn label(self) -> &'static str {
        match self {
            Selection::Exact => "exact",
            Selection::Wildcard => "wildcard",
            Selection::Default => "default",
            Selection::NoSni => "no_sni",
        }
    }
}

/// Certificates by host. Hosts whose certificate is missing or unusable are
/// absent, so they get the default certificate.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the wildcard's suffix (`*.a.com` → `a.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The snapshot's default certificate, if it carries one.
    default: Option<Arc<CertifiedKey>>,
    /// Expiry of every certificate in use, for metrics.
    pub expiries: Vec<(CertificateId, i64)>,
}

/// A certificate in the snapshot that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("certificate {id}: {source}")]
pub struct CertLoadError {
    pub id: CertificateId,
    pub source: gatehouse_model::certs::CertError,
}

impl CertStore {
    /// Loads the snapshot's certificates. A certificate that does not load is
    /// reported and left out (its hosts get the default); the rest load.
    pub fn compile(snapshot: &Snapshot) -> (Self, Vec<CertLoadError>) {
        let mut errors = Vec::new();
        let mut loaded: HashMap<&CertificateId, ParsedCertificate> = HashMap::new();
        for (id, material) in &snapshot.certificates {
            match parse_pem(material.chain_pem.as_bytes(), material.key_pem.as_bytes()) {
                Ok(parsed) => {
                    loaded.insert(id, parsed);
                }
                Err(source) => errors.push(CertLoadError {
                    id: id.clone(),
                    source,
                }),
            }
        }
        let mut store = CertStore {
            expiries: loaded
                .iter()
                .map(|(id, p)| ((*id).clone(), p.not_after))
                .collect(),
            ..CertStore::default()
        };
        store.expiries.sort();
        for tls in &snapshot.tls_hosts {
            let Some(parsed) = tls.certificate.as_ref().and_then(|id| loaded.get(id)) else {
                continue;
            };
            let key = parsed.key.clone();
            match &tls.host {
                HostMatch::Exact(h) => {
                    store.exact.insert(h.clone(), key);
                }
                HostMatch::Wildcard(s) => {
                    store.wildcard.insert(s.clone(), key);
                }
                HostMatch::Any => {}
            }
        }
        store.default = snapshot
            .default_certificate
            .as_ref()
            .and_then(|id| loaded.get(id))
            .map(|p| p.key.clone());
        (store, errors)
    }

    /// The most specific certificate for an SNI name (already lowercase):
    /// exact, then wildcard; `None` means "use the default".
    pub fn lookup(&self, sni: &str) -> Option<(Arc<CertifiedKey>, Selection)> {
        if let Some(k) = self.exact.get(sni) {
            return Some((k.clone(), Selection::Exact));
        }
        gatehouse_model::host::wildcard_suffix(sni)
            .and_then(|s| self.wildcard.get(s))
            .map(|k| (k.clone(), Selection::Wildcard))
    }

    pub fn default_certificate(&self) -> Option<&Arc<CertifiedKey>> {
        self.default.as_ref()
    }
}

//! rustls certificate selection by SNI. The store is swapped atomically when a
//! snapshot is installed: new handshakes see new certificates, established
//! connections keep theirs.

use super::store::{CertStore, Selection};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

pub const CERT_SELECTIONS: &str = "gatehouse_gateway_tls_certificate_selections_total";

#[derive(Debug)]
pub struct SniResolver {
    store: ArcSwap<CertStore>,
    /// Generated at start-up; serves when the snapshot has no default.
    fallback: Arc<CertifiedKey>,
}

impl SniResolver {
    pub fn new(fallback: Arc<CertifiedKey>) -> Self {
        SniResolver {
            store: ArcSwap::from_pointee(CertStore::default()),
            fallback,
        }
    }

    pub fn swap(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }

    /// Every certificate in use with its expiry (unix seconds); the
    /// generated fallback as `self-signed`.
    pub fn expiries(&self, fallback_not_after: i64) -> Vec<(String, i64)> {
        let store = self.store.load();
        let mut out: Vec<(String, i64)> = store
            .expiries
            .iter()
            .map(|(id, t)| (id.0.clone(), *t))
            .collect();
        out.push(("self-signed".to_owned(), fallback_not_after));
        out
    }

    /// The certificate a handshake with this SNI gets, and why.
    pub fn select(&self, sni: Option<&str>) -> (Arc<CertifiedKey>, Selection) {
        let store = self.store.load();
        let default = || {
            store
                .default_certificate()
                .unwrap_or(&self.fallback)
                .clone()
        };
        match sni {
            None => (default(), Selection::NoSni),
            Some(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                store
                    .lookup(&name)
                    .unwrap_or_else(|| (default(), Selection::Default))
            }
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let (key, how) = self.select(hello.server_name());
        metrics::counter!(CERT_SELECTIONS, "match" => how.label()).increment(1);
        Some(key)
    }
}

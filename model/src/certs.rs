//! Parsing and checking certificate material: PEM chain and key in, a
//! rustls `CertifiedKey` and the facts about it out. Shared by the
//! controller (to diagnose Secrets) and the gateway (to serve them).
//!
//! Errors never include key material.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    pub key: Arc<CertifiedKey>,
    /// Validity window of the end-entity certificate, seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names of the end-entity certificate (SANs; the CN if it has none).
    pub dns_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("tls.crt is not valid PEM: {0}")]
    BadCertificatePem(String),
    #[error("tls.key holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    #[error("tls.key cannot be used: {0}")]
    UnusableKey(String),
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("the certificate expired at {0} (unix seconds)")]
    Expired(i64),
    #[error("the certificate is not valid before {0} (unix seconds)")]
    NotYetValid(i64),
}

/// The crypto provider certificates are loaded with (ring, as the gateway's
/// TLS stack uses).
pub fn provider() -> &'static CryptoProvider {
    static PROVIDER: std::sync::OnceLock<CryptoProvider> = std::sync::OnceLock::new();
    PROVIDER.get_or_init(rustls::crypto::ring::default_provider)
}

/// Why PEM text yields no certificate or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("no PEM private key (PKCS#8, PKCS#1 or SEC1) found")]
    NoKey,
    #[error("not valid PEM: {0}")]
    Invalid(String),
}

/// Every certificate in PEM text (a chain, or a set of CA certificates).
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| PemError::Invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}

/// The first private key in PEM text.
pub fn pem_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PemError::NoKey,
        // Never echo the bytes: they may be key material.
        _ => PemError::Invalid("unreadable private key".into()),
    })
}

/// Parses a PEM chain and key and checks that they belong together.
pub fn parse_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<ParsedCertificate, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::BadCertificatePem(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate);
    };
    let (not_before, not_after, dns_names) = inspect(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertError::NoKey)?;
    let certified = CertifiedKey::from_der(chain, key, provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => CertError::KeyMismatch,
        other => CertError::UnusableKey(other.to_string()),
    })?;
    Ok(ParsedCertificate {
        key: Arc::new(certified),
        not_before,
        not_after,
        dns_names,
    })
}

impl ParsedCertificate {
    /// Whether the certificate is valid at `now` (unix seconds).
    pub fn check_time(&self, now: i64) -> Result<(), CertError> {
        if now > self.not_after {
            return Err(CertError::Expired(self.not_after));
        }
        if now < self.not_before {
            return Err(CertError::NotYetValid(self.not_before));
        }
        Ok(())
    }

    /// Whether the certificate names this host (exact, or by a wildcard SAN;
    /// a wildcard host needs the same wildcard SAN).
    pub fn covers(&self, host: &crate::HostMatch) -> bool {
        let wanted = host.to_string();
        self.dns_names.iter().any(|name| {
            let name = name.to_ascii_lowercase();
            name == wanted
                || name
                    .strip_prefix("*.")
                    .is_some_and(|suffix| crate::host::wildcard_suffix(&wanted) == Some(suffix))
        })
    }
}

fn inspect(leaf: &CertificateDer<'_>) -> Result<(i64, i64, Vec<String>), CertError> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    let validity = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_owned)),
        );
    }
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
        names,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostMatch;

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn parses_matching_pair_and_reports_names() {
        let (crt, key) = self_signed(&["a.example.com", "*.b.example.com"]);
        let parsed = parse_pem(crt.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(parsed.dns_names, vec!["a.example.com", "*.b.example.com"]);
        let cases = [
            ("exact", "a.example.com", true),
            ("wildcard_san_covers_label", "x.b.example.com", true),
            ("wildcard_host_needs_wildcard_san", "*.b.example.com", true),
            ("other", "c.example.com", false),
        ];
        for (name, host, want) in cases {
            assert_eq!(
                parsed.covers(&HostMatch::parse(host).unwrap()),
                want,
                "case {name}"
            );
        }
        assert!(parsed.check_time(parsed.not_before + 1).is_ok());
        assert_eq!(
            parsed.check_time(parsed.not_after + 1),
            Err(CertError::Expired(parsed.not_after))
        );
    }

    #[test]
    fn rejects_bad_material_without_leaking_the_key() {
        let (crt, key) = self_signed(&["a.example.com"]);
        let (_, other_key) = self_signed(&["b.example.com"]);
        let cases: [(&str, &str, &str, CertError); 3] = [
            (
                "key_of_another_cert",
                &crt,
                &other_key,
                CertError::KeyMismatch,
            ),
            ("no_certificate", "", &key, CertError::NoCertificate),
            ("no_key", &crt, "not a key", CertError::NoKey),
        ];
        for (name, c, k, want) in cases {
            let err = parse_pem(c.as_bytes(), k.as_bytes()).unwrap_err();
            assert_eq!(err, want, "case {name}");
            let text = err.to_string();
            assert!(!text.contains("PRIVATE KEY"), "case {name}: {text}");
        }
    }
}

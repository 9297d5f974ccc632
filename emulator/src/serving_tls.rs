//! The emulator's serving certificate: a CA made at start and a server
//! certificate for every name a client may use to reach the API, as the
//! real API server's certificate covers `kubernetes.default.svc` and the
//! `kubernetes` Service's ClusterIP. The CA is what every namespace's
//! `kube-root-ca.crt` ConfigMap publishes, so in-cluster clients (kube-rs's
//! `Config::incluster`) verify the server exactly as in a cluster.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::error::EmulatorError;

/// Names always in the certificate: the in-cluster DNS names of the
/// `default/kubernetes` Service and loopback.
const SERVICE_NAMES: [&str; 5] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
];

/// The CA and a rustls server configuration presenting a certificate it
/// signed.
#[derive(Clone)]
pub struct ServingTls {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingTls").finish_non_exhaustive()
    }
}

impl ServingTls {
    /// A fresh CA and a server certificate for [`SERVICE_NAMES`] and `ips`.
    pub fn generate(ips: &[IpAddr]) -> Result<Self, EmulatorError> {
        let tls = |e: rcgen::Error| EmulatorError::Tls(e.to_string());
        let ca_key = rcgen::KeyPair::generate().map_err(tls)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-emulator-ca");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let mut names: Vec<String> = SERVICE_NAMES.iter().map(|n| n.to_string()).collect();
        names.extend(ips.iter().map(IpAddr::to_string));
        names.sort();
        names.dedup();
        let key = rcgen::KeyPair::generate().map_err(tls)?;
        let mut params = rcgen::CertificateParams::new(names).map_err(tls)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        let cert = params.signed_by(&key, &issuer).map_err(tls)?;

        let chain = vec![
            CertificateDer::from(cert.der().to_vec()),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| EmulatorError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| EmulatorError::Tls(e.to_string()))?;
        // client-go and kube-rs both speak HTTP/2 when offered.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            server: Arc::new(server),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn the_certificate_names_the_service_and_the_given_addresses() {
        let ip: IpAddr = "10.96.0.1".parse().unwrap();
        let tls = ServingTls::generate(&[ip]).unwrap();
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            tls.server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // The CA parses and is a CA.
        let (_, pem) = parse_x509_pem(tls.ca_pem.as_bytes()).unwrap();
        let ca = pem.parse_x509().unwrap();
        assert!(ca.is_ca());
    }
}

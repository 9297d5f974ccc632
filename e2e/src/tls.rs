//! TLS for tests: a throwaway CA that issues certificates, Secret manifests
//! holding them, and a real rustls client that reports what the server
//! presented and negotiated.

use crate::client::Reply;
use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsTestError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
}

/// A CA for one test.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub cert_pem: String,
    cert_der: CertificateDer<'static>,
}

/// A certificate and key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> Result<Self, TlsTestError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Gatehouse Test CA");
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let cert_der = cert.der().clone();
        Ok(TestCa {
            issuer: rcgen::Issuer::new(params, key),
            cert_pem,
            cert_der,
        })
    }

    /// Issues a server certificate for these DNS names (`*.x` allowed).
    pub fn issue(&self, names: &[&str]) -> Result<Issued, TlsTestError> {
        let key = rcgen::KeyPair::generate()?;
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        // A CA we just made always parses.
        let _ = roots.add(self.cert_der.clone());
        roots
    }
}

/// A `kubernetes.io/tls` Secret manifest (stringData, as local mode allows).
pub fn tls_secret(name: &str, issued: &Issued) -> String {
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(&issued.cert_pem),
        indent(&issued.key_pem)
    )
}

/// What a handshake produced.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// DNS names (SAN) of the certificate the server presented, or its CN.
    pub names: Vec<String>,
    pub der: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
}

/// How to verify the server.
#[derive(Clone)]
pub enum Verify {
    /// Against these roots, with hostname checks.
    Roots(Arc<RootCertStore>),
    /// Accept anything (to look at default certificates).
    Nothing,
}

/// Client options for one connection.
#[derive(Clone)]
pub struct ClientOptions {
    pub verify: Verify,
    pub alpn: Vec<Vec<u8>>,
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
}

impl ClientOptions {
    pub fn new(verify: Verify) -> Self {
        ClientOptions {
            verify,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
        }
    }
}

fn client_config(opts: &ClientOptions) -> Result<ClientConfig, TlsTestError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider).with_protocol_versions(&opts.versions)?;
    let mut config = match &opts.verify {
        Verify::Roots(roots) => builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything))
            .with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.clone();
    Ok(config)
}

/// Connects with TLS; `sni: None` sends no SNI (connects by IP).
pub async fn connect(
    addr: SocketAddr,
    sni: Option<&str>,
    opts: &ClientOptions,
) -> Result<
    (
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        Handshake,
    ),
    TlsTestError,
> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(opts)?));
    let name = match sni {
        Some(s) => {
            ServerName::try_from(s.to_owned()).map_err(|e| TlsTestError::Http(e.to_string()))?
        }
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let stream = connector.connect(name, tcp).await?;
    let (_, conn) = stream.get_ref();
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let handshake = Handshake {
        names: names_of(&der),
        der,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version: conn.protocol_version(),
    };
    Ok((stream, handshake))
}

fn names_of(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::*;
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    names.extend(
        cert.subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(|s| format!("CN={s}"))),
    );
    names
}

/// An HTTP connection over TLS, HTTP/2 or HTTP/1.1 as ALPN chose.
pub enum TlsHttp {
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
}

impl TlsHttp {
    pub async fn open(
        addr: SocketAddr,
        sni: &str,
        opts: &ClientOptions,
    ) -> Result<(Self, Handshake), TlsTestError> {
        let (stream, hs) = connect(addr, Some(sni), opts).await?;
        let io = TokioIo::new(stream);
        let http_err = |e: hyper::Error| TlsTestError::Http(e.to_string());
        let conn = if hs.alpn.as_deref() == Some(b"h2") {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(http_err)?;
            tokio::spawn(conn);
            TlsHttp::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(http_err)?;
            tokio::spawn(conn);
            TlsHttp::H1(send)
        };
        Ok((conn, hs))
    }

    /// GET with this host (authority for h2, Host header for h1).
    pub async fn get(&mut self, host: &str, path: &str) -> Result<Reply, TlsTestError> {
        let http_err = |e: hyper::Error| TlsTestError::Http(e.to_string());
        let resp = match self {
            TlsHttp::H2(send) => {
                let req = Request::get(format!("https://{host}{path}"))
                    .body(Empty::new())
                    .map_err(|e| TlsTestError::Http(e.to_string()))?;
                send.send_request(req).await.map_err(http_err)?
            }
            TlsHttp::H1(send) => {
                let req = Request::get(path)
                    .header(http::header::HOST, host)
                    .body(Empty::new())
                    .map_err(|e| TlsTestError::Http(e.to_string()))?;
                send.send_request(req).await.map_err(http_err)?
            }
        };
        Reply::read(resp).await.map_err(http_err)
    }
}

#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

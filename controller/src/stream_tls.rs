//! Mutual TLS for the snapshot stream: the controller's certificate and key,
//! and the CA that gateway client certificates must chain to, from PEM files
//! (mounted from Secrets). The files are checked again before every
//! handshake and reloaded when they change, so rotating them needs no
//! restart; a broken new version is reported and the last good one kept.

use gatehouse_model::certs::{pem_certificates, pem_private_key, PemError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Where the stream's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamTlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Pem { path: String, source: PemError },
    #[error("--snapshot-client-ca {path}: {message}")]
    ClientCa { path: String, message: String },
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// What identifies a file version without reading it (kubelet swaps a
/// symlink on Secret updates, so the target's inode changes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// The server configuration, rebuilt when a file changes.
pub struct ReloadingServerConfig {
    files: StreamTlsFiles,
    current: Mutex<(Vec<Option<Stamp>>, Arc<ServerConfig>)>,
}

impl ReloadingServerConfig {
    /// Loads the files; fails (at start-up) if they do not make a config.
    pub fn load(files: StreamTlsFiles) -> Result<Self, StreamTlsError> {
        let stamps = files_stamps(&files);
        let config = build(&files)?;
        Ok(ReloadingServerConfig {
            files,
            current: Mutex::new((stamps, Arc::new(config))),
        })
    }

    /// The configuration for the next handshake.
    pub fn get(&self) -> Arc<ServerConfig> {
        let stamps = files_stamps(&self.files);
        // Values are only ever replaced whole, so a poisoned lock still
        // holds a usable config.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0 != stamps {
            match build(&self.files) {
                Ok(config) => {
                    tracing::info!("snapshot stream TLS files changed; new handshakes use them");
                    *current = (stamps, Arc::new(config));
                }
                Err(e) => {
                    tracing::error!("snapshot stream TLS files changed but cannot be used: {e}; keeping the previous ones");
                    // Do not retry on every handshake until they change again.
                    current.0 = stamps;
                }
            }
        }
        current.1.clone()
    }
}

fn files_stamps(files: &StreamTlsFiles) -> Vec<Option<Stamp>> {
    [&files.cert, &files.key, &files.client_ca]
        .into_iter()
        .map(|p| stamp(p))
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, StreamTlsError> {
    std::fs::read(path).map_err(|source| StreamTlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// PEM certificates from a file (a chain, or CA certificates).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, StreamTlsError> {
    pem_certificates(&read(path)?).map_err(|e| StreamTlsError::Pem {
        path: path.display().to_string(),
        source: e,
    })
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1) from a file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, StreamTlsError> {
    pem_private_key(&read(path)?).map_err(|e| StreamTlsError::Pem {
        path: path.display().to_string(),
        source: e,
    })
}

fn build(files: &StreamTlsFiles) -> Result<ServerConfig, StreamTlsError> {
    let chain = load_certificates(&files.cert)?;
    let key = load_key(&files.key)?;
    let ca_error = |message: String| StreamTlsError::ClientCa {
        path: files.client_ca.display().to_string(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for ca in load_certificates(&files.client_ca)? {
        roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ca_error(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

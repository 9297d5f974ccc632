//! Certificates for the mutual-TLS snapshot stream of cluster mode: a
//! throwaway CA, a server certificate for the controller on loopback
//! (`localhost`, `127.0.0.1`) and a client certificate for the gateway, as
//! PEM files in a directory.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The PEM files written.
#[derive(Debug, Clone)]
pub struct StreamCerts {
    pub ca: PathBuf,
    pub controller_cert: PathBuf,
    pub controller_key: PathBuf,
    pub gateway_cert: PathBuf,
    pub gateway_key: PathBuf,
}

impl StreamCerts {
    /// Makes a CA and the two certificates it signs; writes them to `dir`.
    pub fn create(dir: &Path) -> Result<Self, CertError> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gatehouse-bench CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let issue = |names: &[&str]| -> Result<(String, String), CertError> {
            let key = rcgen::KeyPair::generate()?;
            let params = rcgen::CertificateParams::new(
                names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )?;
            let cert = params.signed_by(&key, &issuer)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (controller_cert, controller_key) = issue(&["localhost", "127.0.0.1"])?;
        let (gateway_cert, gateway_key) = issue(&["gateway.gatehouse-bench.test"])?;
        let write = |name: &str, text: &str| -> Result<PathBuf, CertError> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| CertError::Write {
                path: path.display().to_string(),
                source,
            })?;
            Ok(path)
        };
        Ok(StreamCerts {
            ca: write("ca.crt", &ca_cert.pem())?,
            controller_cert: write("controller.crt", &controller_cert)?,
            controller_key: write("controller.key", &controller_key)?,
            gateway_cert: write("gateway.crt", &gateway_cert)?,
            gateway_key: write("gateway.key", &gateway_key)?,
        })
    }

    /// `--snapshot-tls-cert/-key --snapshot-client-ca` for the controller.
    pub fn controller_args(&self) -> Vec<String> {
        vec![
            "--snapshot-tls-cert".into(),
            self.controller_cert.display().to_string(),
            "--snapshot-tls-key".into(),
            self.controller_key.display().to_string(),
            "--snapshot-client-ca".into(),
            self.ca.display().to_string(),
        ]
    }

    /// `--controller-ca --controller-client-cert/-key` for the gateway.
    pub fn gateway_args(&self) -> Vec<String> {
        vec![
            "--controller-ca".into(),
            self.ca.display().to_string(),
            "--controller-client-cert".into(),
            self.gateway_cert.display().to_string(),
            "--controller-client-key".into(),
            self.gateway_key.display().to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_five_pem_files() {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-bench-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = StreamCerts::create(&dir).unwrap();
        for path in [&certs.ca, &certs.controller_cert, &certs.gateway_cert] {
            assert!(std::fs::read_to_string(path)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----"));
        }
        assert!(std::fs::read_to_string(&certs.gateway_key)
            .unwrap()
            .contains("PRIVATE KEY"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The certificate served when nothing else applies and the controller gave
//! no default: self-signed, generated at start-up, never written to disk.

use gatehouse_model::certs::{parse_pem, CertError, ParsedCertificate};

#[derive(Debug, thiserror::Error)]
pub enum SelfSignedError {
    #[error("generating the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("loading the generated certificate: {0}")]
    Load(#[from] CertError),
}

/// The subject name of the generated certificate, as ingress-nginx's
/// "fake certificate" makes clear it is not a real one.
pub const SELF_SIGNED_NAME: &str = "Gatehouse Default Certificate";

pub fn generate() -> Result<ParsedCertificate, SelfSignedError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["gatehouse.invalid".to_owned()])?;
    // Valid for a year from start-up (a day back for clock skew).
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SELF_SIGNED_NAME);
    let cert = params.self_signed(&key)?;
    Ok(parse_pem(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
    )?)
}

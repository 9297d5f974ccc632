//! TLS for Ingresses: Secrets of type `kubernetes.io/tls` become snapshot
//! certificates; broken ones are diagnosed and their hosts fall back to the
//! default certificate. Also the redirect annotations.

use super::diagnostics::{Diagnostics, Reason};
use crate::state::{ClusterState, ObjectKey};
use gatehouse_model::certs::{parse_pem, CertError};
use gatehouse_model::{Certificate, CertificateId, ObjectRef};
use k8s_openapi::api::networking::v1::Ingress;
use std::collections::BTreeMap;

pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Why a Secret cannot serve as a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    #[error("Secret {0} not found")]
    NotFound(String),
    #[error("Secret {secret} has type {found:?}, expected {TLS_SECRET_TYPE:?}")]
    WrongType { secret: String, found: String },
    #[error("Secret {secret} has no {key} entry")]
    MissingKey { secret: String, key: &'static str },
    #[error("Secret {secret}: {problem}")]
    Certificate { secret: String, problem: CertError },
}

impl SecretProblem {
    /// The diagnostic reason for this problem.
    pub fn reason(&self) -> Reason {
        match self {
            SecretProblem::NotFound(_) => Reason::SecretNotFound,
            SecretProblem::WrongType { .. } | SecretProblem::MissingKey { .. } => {
                Reason::InvalidSecret
            }
            SecretProblem::Certificate {
                problem: CertError::Expired(_) | CertError::NotYetValid(_),
                ..
            } => Reason::CertificateNotValidNow,
            SecretProblem::Certificate { .. } => Reason::InvalidCertificate,
        }
    }
}

/// A certificate that passed every check, with the names it covers.
#[derive(Debug, Clone)]
pub struct CheckedCertificate {
    pub id: CertificateId,
    pub material: Certificate,
    pub dns_names: Vec<String>,
    pub parsed: gatehouse_model::certs::ParsedCertificate,
}

/// Loads and checks Secrets once per translation.
pub struct SecretCache<'a> {
    state: &'a ClusterState,
    now: i64,
    checked: BTreeMap<ObjectKey, Result<CheckedCertificate, SecretProblem>>,
}

impl<'a> SecretCache<'a> {
    pub fn new(state: &'a ClusterState, now: i64) -> Self {
        SecretCache {
            state,
            now,
            checked: BTreeMap::new(),
        }
    }

    pub fn get(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> &Result<CheckedCertificate, SecretProblem> {
        let key = ObjectKey::new(namespace, name);
        let (state, now) = (self.state, self.now);
        self.checked
            .entry(key)
            .or_insert_with(|| check_secret(state, namespace, name, now))
    }
}

fn check_secret(
    state: &ClusterState,
    namespace: &str,
    name: &str,
    now: i64,
) -> Result<CheckedCertificate, SecretProblem> {
    let label = format!("{namespace}/{name}");
    let secret = state
        .secrets
        .get(&ObjectKey::new(namespace, name))
        .ok_or_else(|| SecretProblem::NotFound(label.clone()))?;
    let found = secret.type_.clone().unwrap_or_else(|| "Opaque".into());
    if found != TLS_SECRET_TYPE {
        return Err(SecretProblem::WrongType {
            secret: label,
            found,
        });
    }
    // `stringData` is write-only in a cluster, but manifests in local mode
    // may use it, so read both.
    let entry = |key: &'static str| -> Result<Vec<u8>, SecretProblem> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.as_bytes().to_vec())
            })
            .filter(|b| !b.is_empty())
            .ok_or_else(|| SecretProblem::MissingKey {
                secret: label.clone(),
                key,
            })
    };
    let chain = entry("tls.crt")?;
    let key = entry("tls.key")?;
    let certificate_problem = |problem| SecretProblem::Certificate {
        secret: label.clone(),
        problem,
    };
    let parsed = parse_pem(&chain, &key).map_err(certificate_problem)?;
    parsed.check_time(now).map_err(certificate_problem)?;
    let to_text = |b: Vec<u8>| String::from_utf8(b).unwrap_or_default();
    Ok(CheckedCertificate {
        id: CertificateId::new(namespace, name),
        material: Certificate {
            chain_pem: to_text(chain),
            key_pem: to_text(key),
        },
        dns_names: parsed.dns_names.clone(),
        parsed,
    })
}

/// Annotations that turn the HTTP→HTTPS redirect off or force it.
pub const SSL_REDIRECT: [&str; 2] = [
    "gatehouse.dev/ssl-redirect",
    "nginx.ingress.kubernetes.io/ssl-redirect",
];
pub const FORCE_SSL_REDIRECT: [&str; 2] = [
    "gatehouse.dev/force-ssl-redirect",
    "nginx.ingress.kubernetes.io/force-ssl-redirect",
];

/// An Ingress's redirect policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectPolicy {
    /// Redirect when the host has TLS (default on).
    pub when_tls: bool,
    /// Redirect even when the host has no TLS here (TLS terminated in front).
    pub always: bool,
}

/// Reads the redirect annotations; an unreadable value is diagnosed and the
/// default kept.
pub fn redirect_policy(ing: &Ingress, obj: &ObjectRef, diags: &mut Diagnostics) -> RedirectPolicy {
    let annotations = ing.metadata.annotations.as_ref();
    let mut flag = |names: [&str; 2], default: bool| {
        for name in names {
            let Some(value) = annotations.and_then(|a| a.get(name)) else {
                continue;
            };
            match value.trim() {
                "true" => return true,
                "false" => return false,
                other => diags.push(
                    obj,
                    Reason::InvalidAnnotation,
                    format!("{name}: {other:?} is not \"true\" or \"false\"; using {default}"),
                ),
            }
        }
        default
    };
    RedirectPolicy {
        when_tls: flag(SSL_REDIRECT, true),
        always: flag(FORCE_SSL_REDIRECT, false),
    }
}

//! What translation reports about objects or rules it left out.

use gatehouse_model::ObjectRef;
use std::fmt;

/// Why an object or rule was left out or served differently. The name is
/// the Kubernetes Event `reason` and the `reason` label of metrics, so it is
/// stable: renaming a variant's string is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An IngressClass with our name belongs to another controller.
    ForeignIngressClass,
    /// An Ingress without rules or a default backend.
    NoRules,
    InvalidHost,
    InvalidPath,
    InvalidBackend,
    /// A `resource` backend.
    UnsupportedBackend,
    /// The Service, its port, or its endpoints are missing (routes answer 503).
    BackendUnavailable,
    /// Another, older Ingress serves the same host and path.
    HostPathConflict,
    /// The same host and path twice in one Ingress.
    DuplicatePath,
    DefaultBackendConflict,
    InvalidTls,
    SecretNotFound,
    InvalidSecret,
    InvalidCertificate,
    CertificateNotValidNow,
    CertificateHostMismatch,
    TlsHostConflict,
    InvalidAnnotation,
}

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::ForeignIngressClass,
        Reason::NoRules,
        Reason::InvalidHost,
        Reason::InvalidPath,
        Reason::InvalidBackend,
        Reason::UnsupportedBackend,
        Reason::BackendUnavailable,
        Reason::HostPathConflict,
        Reason::DuplicatePath,
        Reason::DefaultBackendConflict,
        Reason::InvalidTls,
        Reason::SecretNotFound,
        Reason::InvalidSecret,
        Reason::InvalidCertificate,
        Reason::CertificateNotValidNow,
        Reason::CertificateHostMismatch,
        Reason::TlsHostConflict,
        Reason::InvalidAnnotation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ForeignIngressClass => "ForeignIngressClass",
            Reason::NoRules => "NoRules",
            Reason::InvalidHost => "InvalidHost",
            Reason::InvalidPath => "InvalidPath",
            Reason::InvalidBackend => "InvalidBackend",
            Reason::UnsupportedBackend => "UnsupportedBackend",
            Reason::BackendUnavailable => "BackendUnavailable",
            Reason::HostPathConflict => "HostPathConflict",
            Reason::DuplicatePath => "DuplicatePath",
            Reason::DefaultBackendConflict => "DefaultBackendConflict",
            Reason::InvalidTls => "InvalidTls",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::InvalidSecret => "InvalidSecret",
            Reason::InvalidCertificate => "InvalidCertificate",
            Reason::CertificateNotValidNow => "CertificateNotValidNow",
            Reason::CertificateHostMismatch => "CertificateHostMismatch",
            Reason::TlsHostConflict => "TlsHostConflict",
            Reason::InvalidAnnotation => "InvalidAnnotation",
        }
    }
}

// Alphabetical, so sorted diagnostics read the same whatever the
// declaration order.
impl Ord for Reason {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Reason {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem with one object, logged and (in cluster mode) recorded as an
/// Event on it. The rest of the snapshot is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Diagnostic {
    pub object: ObjectRef,
    pub reason: Reason,
    /// What is wrong and what happens instead; says what to fix.
    pub message: String,
    /// Another object the problem is about (the Secret or Service an
    /// Ingress names), for the Event's `related` field.
    pub related: Option<ObjectRef>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.reason, self.message)
    }
}

/// Collects diagnostics during one translation.
#[derive(Debug, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, object: &ObjectRef, reason: Reason, message: impl Into<String>) {
        self.0.push(Diagnostic {
            object: object.clone(),
            reason,
            message: message.into(),
            related: None,
        });
    }

    /// A diagnostic about `object` that concerns `related` too.
    pub fn push_related(
        &mut self,
        object: &ObjectRef,
        related: ObjectRef,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.0.push(Diagnostic {
            object: object.clone(),
            reason,
            message: message.into(),
            related: Some(related),
        });
    }

    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.0.sort();
        self.0.dedup();
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_with_its_own_name() {
        let names: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert_eq!(format!("{r:?}"), r.as_str());
        }
    }
}

//! The routing snapshot: everything a gateway needs to route, and nothing else
//! (no Kubernetes objects, no credentials beyond the certificates it serves).

use crate::{Certificate, CertificateId, HostMatch, PathMatch, TlsHost};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// Names a backend: `namespace/service:port` where port is the Service port's
/// number or name as the Ingress wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackendId(pub String);

impl BackendId {
    pub fn new(namespace: &str, service: &str, port: &str) -> Self {
        BackendId(format!("{namespace}/{service}:{port}"))
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Kubernetes object a route or diagnostic came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ObjectRef {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One matching rule: a path on a host, sent to a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub path: PathMatch,
    pub backend: BackendId,
    /// The Ingress the rule came from.
    pub source: ObjectRef,
    /// Plain-HTTP requests get a 308 redirect to HTTPS instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_to_https: bool,
}

/// All routes for one host match, in no particular order (precedence is a
/// property of the paths, not of the list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualHost {
    pub host: HostMatch,
    pub routes: Vec<Route>,
}

/// A pod address traffic may be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// The pod (or other target) behind the address, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A Service port and the endpoints that currently serve it. An empty list
/// means "answer 503".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub service: ObjectRef,
    /// The Service port as the Ingress named it (number or name).
    pub port: String,
    pub endpoints: Vec<Endpoint>,
}

/// What the gateways serve. Deterministic: the same cluster state always
/// yields an equal snapshot, so unchanged rebuilds can be skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sorted by host.
    pub virtual_hosts: Vec<VirtualHost>,
    /// The backend for requests no rule matches (`spec.defaultBackend` of the
    /// oldest Ingress that sets one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<BackendId>,
    pub backends: BTreeMap<BackendId, Backend>,
    /// Hosts served over TLS and their certificates, sorted by host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_hosts: Vec<TlsHost>,
    /// The certificate for handshakes no TLS host matches (the controller's
    /// `--default-certificate`); absent: the gateway's own self-signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_certificate: Option<CertificateId>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<CertificateId, Certificate>,
}

impl Snapshot {
    /// Checks the internal references a gateway relies on; a gateway refuses a
    /// snapshot that fails this and keeps the last good one.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let known = |id: &BackendId| self.backends.contains_key(id);
        for vh in &self.virtual_hosts {
            for r in &vh.routes {
                if !known(&r.backend) {
                    return Err(SnapshotError::UnknownBackend {
                        backend: r.backend.clone(),
                        host: vh.host.to_string(),
                        path: r.path.to_string(),
                    });
                }
            }
        }
        let cert_known = |id: &CertificateId| self.certificates.contains_key(id);
        for t in &self.tls_hosts {
            if let Some(id) = t.certificate.as_ref().filter(|id| !cert_known(id)) {
                return Err(SnapshotError::UnknownCertificate {
                    certificate: id.clone(),
                    host: t.host.to_string(),
                });
            }
        }
        if let Some(id) = self
            .default_certificate
            .as_ref()
            .filter(|id| !cert_known(id))
        {
            return Err(SnapshotError::UnknownCertificate {
                certificate: id.clone(),
                host: "default certificate".into(),
            });
        }
        if let Some(d) = &self.default_backend {
            if !known(d) {
                return Err(SnapshotError::UnknownBackend {
                    backend: d.clone(),
                    host: String::new(),
                    path: "default backend".into(),
                });
            }
        }
        Ok(())
    }
}

/// A snapshot that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("route {host:?} {path} names backend {backend} which the snapshot does not define")]
    UnknownBackend {
        backend: BackendId,
        host: String,
        path: String,
    },
    #[error("TLS host {host:?} names certificate {certificate} which the snapshot does not carry")]
    UnknownCertificate {
        certificate: CertificateId,
        host: String,
    },
}

/// One message on the snapshot stream: a full snapshot and its version.
/// Versions only go up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFrame {
    pub version: u64,
    pub snapshot: Snapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrips_through_json() {
        let id = BackendId::new("default", "web", "http");
        let mut backends = BTreeMap::new();
        backends.insert(
            id.clone(),
            Backend {
                service: ObjectRef::new("Service", "default", "web"),
                port: "http".into(),
                endpoints: vec![Endpoint {
                    address: "10.0.0.1:8080".parse().unwrap(),
                    target: Some("web-1".into()),
                    node: None,
                }],
            },
        );
        let frame = SnapshotFrame {
            version: 7,
            snapshot: Snapshot {
                virtual_hosts: vec![VirtualHost {
                    host: HostMatch::Wildcard("foo.com".into()),
                    routes: vec![Route {
                        path: PathMatch::Prefix("/".into()),
                        backend: id.clone(),
                        source: ObjectRef::new("Ingress", "default", "web"),
                        redirect_to_https: true,
                    }],
                }],
                default_backend: Some(id),
                backends,
                ..Snapshot::default()
            },
        };
        let json = serde_json::to_string(&frame).unwrap();
        let back: SnapshotFrame = serde_json::from_str(&json).unwrap();
        assert_eq!(back, frame);
        assert!(frame.snapshot.validate().is_ok());
    }

    #[test]
    fn validate_rejects_dangling_backend() {
        let snap = Snapshot {
            default_backend: Some(BackendId("x/y:1".into())),
            ..Snapshot::default()
        };
        assert!(matches!(
            snap.validate(),
            Err(SnapshotError::UnknownBackend { .. })
        ));
    }
}

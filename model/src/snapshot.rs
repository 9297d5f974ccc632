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
    pub fn new(namespace: &str, service: &str, port: &PortRef) -> Self {
        BackendId(format!("{namespace}/{service}:{port}"))
    }
}

/// A Service port as an Ingress names it: by number or by name. Serialized as
/// a JSON number or string; a name is never all digits (IANA service names
/// need a letter), so the two cannot be confused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => f.write_str(s),
        }
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
    /// The Service port as the Ingress named it.
    pub port: PortRef,
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

/// A full snapshot and its version. Versions only go up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFrame {
    pub version: u64,
    pub snapshot: Snapshot,
}

/// New endpoint lists for some backends of the snapshot before it: what pods
/// coming and going change, sent without the route set. Applies on top of
/// the previous frame of the same stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointsFrame {
    pub version: u64,
    /// Each listed backend's complete new endpoint list.
    pub endpoints: BTreeMap<BackendId, Vec<Endpoint>>,
}

/// One line of the snapshot stream: `{"version":N,"snapshot":{...}}` or
/// `{"version":N,"endpoints":{...}}`. Anything else is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    Snapshot(SnapshotFrame),
    Endpoints(EndpointsFrame),
}

impl StreamFrame {
    pub fn version(&self) -> u64 {
        match self {
            StreamFrame::Snapshot(f) => f.version,
            StreamFrame::Endpoints(f) => f.version,
        }
    }
}

/// The wire form: exactly one of the two bodies, no other field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrame {
    version: u64,
    #[serde(default)]
    snapshot: Option<Snapshot>,
    #[serde(default)]
    endpoints: Option<BTreeMap<BackendId, Vec<Endpoint>>>,
}

impl<'de> Deserialize<'de> for StreamFrame {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawFrame::deserialize(d)?;
        match (raw.snapshot, raw.endpoints) {
            (Some(snapshot), None) => Ok(StreamFrame::Snapshot(SnapshotFrame {
                version: raw.version,
                snapshot,
            })),
            (None, Some(endpoints)) => Ok(StreamFrame::Endpoints(EndpointsFrame {
                version: raw.version,
                endpoints,
            })),
            _ => Err(serde::de::Error::custom(
                "a frame carries exactly one of `snapshot` and `endpoints`",
            )),
        }
    }
}

impl Serialize for StreamFrame {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StreamFrame::Snapshot(f) => f.serialize(s),
            StreamFrame::Endpoints(f) => f.serialize(s),
        }
    }
}

impl Snapshot {
    /// Replaces the endpoint lists of the backends an update names. Backends
    /// the snapshot does not define are returned (and left alone): a stream
    /// that names them is inconsistent.
    pub fn apply_endpoints(&mut self, update: &EndpointsFrame) -> Vec<BackendId> {
        let mut unknown = Vec::new();
        for (id, endpoints) in &update.endpoints {
            match self.backends.get_mut(id) {
                Some(b) => b.endpoints.clone_from(endpoints),
                None => unknown.push(id.clone()),
            }
        }
        unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrips_through_json() {
        let id = BackendId::new("default", "web", &PortRef::Name("http".into()));
        let mut backends = BTreeMap::new();
        backends.insert(
            id.clone(),
            Backend {
                service: ObjectRef::new("Service", "default", "web"),
                port: PortRef::Name("http".into()),
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
    fn stream_frames_are_one_of_two_shapes() {
        let full: StreamFrame =
            serde_json::from_str(r#"{"version":3,"snapshot":{"virtual_hosts":[],"backends":{}}}"#)
                .unwrap();
        assert_eq!(full.version(), 3);
        assert!(matches!(full, StreamFrame::Snapshot(_)));
        let eps: StreamFrame = serde_json::from_str(
            r#"{"version":4,"endpoints":{"a/b:80":[{"address":"10.0.0.1:80"}]}}"#,
        )
        .unwrap();
        let StreamFrame::Endpoints(update) = &eps else {
            panic!("{eps:?}")
        };
        assert_eq!(update.endpoints.len(), 1);
        let back: StreamFrame =
            serde_json::from_str(&serde_json::to_string(&eps).unwrap()).unwrap();
        assert_eq!(back, eps);
        for bad in [
            r#"{"version":1}"#,
            r#"{"version":1,"snapshot":{"virtual_hosts":[],"backends":{}},"endpoints":{}}"#,
            r#"{"version":1,"endpoints":{},"extra":1}"#,
            r#"{"endpoints":{}}"#,
        ] {
            assert!(serde_json::from_str::<StreamFrame>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_updates_replace_lists_and_report_unknown_backends() {
        let id = BackendId::new("a", "b", &PortRef::Number(80));
        let mut snap = Snapshot::default();
        snap.backends.insert(
            id.clone(),
            Backend {
                service: ObjectRef::new("Service", "a", "b"),
                port: PortRef::Number(80),
                endpoints: vec![],
            },
        );
        let ep = Endpoint {
            address: "10.0.0.9:80".parse().unwrap(),
            target: None,
            node: None,
        };
        let ghost = BackendId::new("a", "ghost", &PortRef::Number(80));
        let update = EndpointsFrame {
            version: 2,
            endpoints: [(id.clone(), vec![ep.clone()]), (ghost.clone(), vec![])]
                .into_iter()
                .collect(),
        };
        assert_eq!(snap.apply_endpoints(&update), vec![ghost]);
        assert_eq!(snap.backends[&id].endpoints, vec![ep]);
    }

    #[test]
    fn port_refs_serialize_as_number_or_name() {
        assert_eq!(serde_json::to_string(&PortRef::Number(80)).unwrap(), "80");
        assert_eq!(
            serde_json::to_string(&PortRef::Name("http".into())).unwrap(),
            "\"http\""
        );
        assert_eq!(
            serde_json::from_str::<PortRef>("443").unwrap(),
            PortRef::Number(443)
        );
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

//! Writes to the Kubernetes API (the emulator) over plain HTTP/1.1 with JSON
//! bodies: create (POST) and merge patch (PATCH), on one keepalive
//! connection per client. Each write returns the object's new
//! resourceVersion, which orders writes the way watches deliver them.

use crate::http_probe::{Probe, ProbeError, Request};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Http(#[from] ProbeError),
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("{method} {path}: the reply is not an object with a resourceVersion: {body}")]
    Reply {
        method: String,
        path: String,
        body: String,
    },
}

/// Where an object lives in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Namespace,
    IngressClass,
    Service,
    EndpointSlice,
    Ingress,
    /// Cluster-scoped.
    CustomResourceDefinition,
    /// Gatehouse's IPPool (cluster-scoped).
    IpPool,
}

impl Resource {
    /// The collection path (objects of namespaced kinds in `namespace`).
    pub fn collection(self, namespace: &str) -> String {
        match self {
            Resource::Namespace => "/api/v1/namespaces".into(),
            Resource::IngressClass => "/apis/networking.k8s.io/v1/ingressclasses".into(),
            Resource::Service => format!("/api/v1/namespaces/{namespace}/services"),
            Resource::EndpointSlice => {
                format!("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices")
            }
            Resource::Ingress => {
                format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses")
            }
            Resource::CustomResourceDefinition => {
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into()
            }
            Resource::IpPool => "/apis/gatehouse.dev/v1alpha1/ippools".into(),
        }
    }

    pub fn object(self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection(namespace))
    }
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Create {
        resource: Resource,
        namespace: String,
        object: Value,
    },
    MergePatch {
        resource: Resource,
        namespace: String,
        name: String,
        patch: Value,
    },
}

/// A client on one keepalive connection.
pub struct ApiClient {
    probe: Probe,
    host: String,
}

impl ApiClient {
    pub fn new(addr: SocketAddr) -> Self {
        ApiClient {
            probe: Probe::new(addr, Duration::from_secs(30)),
            host: addr.to_string(),
        }
    }

    /// Sends a write; returns the resourceVersion of the written object.
    pub fn write(&mut self, write: &Write) -> Result<u64, ApiError> {
        let (method, path, content_type, body) = match write {
            Write::Create {
                resource,
                namespace,
                object,
            } => (
                "POST",
                resource.collection(namespace),
                "application/json",
                object,
            ),
            Write::MergePatch {
                resource,
                namespace,
                name,
                patch,
            } => (
                "PATCH",
                resource.object(namespace, name),
                "application/merge-patch+json",
                patch,
            ),
        };
        let bytes = body.to_string().into_bytes();
        self.send(method, path, Some((content_type, &bytes)))
    }

    /// Creates the objects of a YAML manifest (one document) in
    /// `resource`'s collection; returns the resourceVersion.
    pub fn create_yaml(&mut self, resource: Resource, yaml: &str) -> Result<u64, ApiError> {
        self.send(
            "POST",
            resource.collection(""),
            Some(("application/yaml", yaml.as_bytes())),
        )
    }

    /// Every object of a collection, listed in pages of `page` objects
    /// (`limit` and `continue`, as clients list large collections).
    pub fn list_all(&mut self, collection: &str, page: usize) -> Result<Vec<Value>, ApiError> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let mut path = format!("{collection}?limit={page}");
            if !token.is_empty() {
                path.push_str("&continue=");
                path.push_str(&query_escape(&token));
            }
            let reply = self.probe.get(&self.host, &path)?;
            let text = || String::from_utf8_lossy(&reply.body).into_owned();
            if reply.status != 200 {
                return Err(ApiError::Status {
                    method: "GET".into(),
                    path,
                    status: reply.status,
                    body: text(),
                });
            }
            let mut list: Value =
                serde_json::from_slice(&reply.body).map_err(|_| ApiError::Reply {
                    method: "GET".into(),
                    path: path.clone(),
                    body: text(),
                })?;
            if let Some(Value::Array(page_items)) = list.get_mut("items").map(Value::take) {
                items.extend(page_items);
            }
            token = list
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if token.is_empty() {
                return Ok(items);
            }
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: String,
        body: Option<(&str, &[u8])>,
    ) -> Result<u64, ApiError> {
        let reply = self.probe.send(&Request {
            method,
            host: &self.host,
            path: &path,
            body,
        })?;
        let text = || String::from_utf8_lossy(&reply.body).into_owned();
        if !(200..300).contains(&reply.status) {
            return Err(ApiError::Status {
                method: method.into(),
                path,
                status: reply.status,
                body: text(),
            });
        }
        serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| {
                v.pointer("/metadata/resourceVersion")?
                    .as_str()?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| ApiError::Reply {
                method: method.into(),
                path,
                body: text(),
            })
    }
}

/// `value` with everything but RFC 3986 unreserved characters escaped.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends `writes` over `connections` connections at once (each takes every
/// `connections`-th write, in order); returns each write's resourceVersion
/// in the order given.
pub fn write_all(
    addr: SocketAddr,
    writes: &[Write],
    connections: usize,
) -> Result<Vec<u64>, ApiError> {
    let connections = connections.clamp(1, writes.len().max(1));
    let results: Vec<Result<Vec<u64>, ApiError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                scope.spawn(move || {
                    let mut client = ApiClient::new(addr);
                    writes
                        .iter()
                        .skip(c)
                        .step_by(connections)
                        .map(|w| client.write(w))
                        .collect::<Result<Vec<u64>, ApiError>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let mut per_connection = Vec::with_capacity(connections);
    for r in results {
        per_connection.push(r?.into_iter());
    }
    // Interleave back into the given order.
    let mut out = Vec::with_capacity(writes.len());
    for i in 0..writes.len() {
        if let Some(rv) = per_connection[i % connections].next() {
            out.push(rv);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_api_groups() {
        assert_eq!(
            Resource::EndpointSlice.object("bench", "a-1"),
            "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices/a-1"
        );
        assert_eq!(
            Resource::IngressClass.collection("ignored"),
            "/apis/networking.k8s.io/v1/ingressclasses"
        );
        assert_eq!(
            Resource::Service.collection("bench"),
            "/api/v1/namespaces/bench/services"
        );
        assert_eq!(
            Resource::IpPool.object("", "a-team"),
            "/apis/gatehouse.dev/v1alpha1/ippools/a-team"
        );
    }

    #[test]
    fn continue_tokens_are_escaped_for_the_query() {
        assert_eq!(query_escape("eyJy-_x"), "eyJy-_x");
        assert_eq!(query_escape("a+b/c=&"), "a%2Bb%2Fc%3D%26");
    }
}

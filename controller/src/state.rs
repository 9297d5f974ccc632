//! The cluster objects translation reads, keyed for deterministic iteration.
//! Filled by a source (the manifests directory, or Kubernetes watches); both
//! produce the same [`ClusterState`], so everything after it is shared.

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Names an object of a known kind. Cluster-scoped objects have an empty
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        ObjectKey::new(String::new(), name)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The kinds of object the controller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    IngressClass,
    Ingress,
    Service,
    EndpointSlice,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::IngressClass,
        Kind::Ingress,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Secret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IngressClass => "IngressClass",
            Kind::Ingress => "Ingress",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
        }
    }

    /// The kind a name denotes (as in an `ObjectRef`).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::IngressClass | Kind::Ingress => "networking.k8s.io/v1",
            Kind::Service | Kind::Secret => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
        }
    }

    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::IngressClass)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object of a kind the controller reads. Shared, never mutated: sources
/// hand the same `Arc` to every state that holds it.
// Variants are pointers; nothing to box.
#[derive(Debug, Clone)]
pub enum Object {
    IngressClass(Arc<IngressClass>),
    Ingress(Arc<Ingress>),
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    Secret(Arc<Secret>),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::IngressClass(_) => Kind::IngressClass,
            Object::Ingress(_) => Kind::Ingress,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Secret(_) => Kind::Secret,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::IngressClass(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    /// Namespaced kinds without a namespace are in `default`, as kubectl
    /// would apply them.
    pub fn key(&self) -> ObjectKey {
        let m = self.metadata();
        let namespace = match self.kind().is_namespaced() {
            true => m
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            false => String::new(),
        };
        ObjectKey::new(namespace, m.name.clone().unwrap_or_default())
    }
}

/// Everything translation needs, as plain maps. Cloning is cheap (the
/// objects are shared); translation never mutates it.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// Keyed by name (cluster-scoped).
    pub ingress_classes: BTreeMap<String, Arc<IngressClass>>,
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    /// Keyed by (namespace, slice name).
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
}

impl ClusterState {
    /// Number of objects held, per kind, for logs and metrics.
    pub fn counts(&self) -> [(Kind, usize); 5] {
        [
            (Kind::IngressClass, self.ingress_classes.len()),
            (Kind::Ingress, self.ingresses.len()),
            (Kind::Service, self.services.len()),
            (Kind::EndpointSlice, self.endpoint_slices.len()),
            (Kind::Secret, self.secrets.len()),
        ]
    }

    /// Adds or replaces an object; returns the one it replaced.
    pub fn insert(&mut self, object: Object) -> Option<Object> {
        let key = object.key();
        match object {
            Object::IngressClass(o) => self
                .ingress_classes
                .insert(key.name, o)
                .map(Object::IngressClass),
            Object::Ingress(o) => self.ingresses.insert(key, o).map(Object::Ingress),
            Object::Service(o) => self.services.insert(key, o).map(Object::Service),
            Object::EndpointSlice(o) => self
                .endpoint_slices
                .insert(key, o)
                .map(Object::EndpointSlice),
            Object::Secret(o) => self.secrets.insert(key, o).map(Object::Secret),
        }
    }

    /// Removes an object; returns it if it was there.
    pub fn remove(&mut self, kind: Kind, key: &ObjectKey) -> Option<Object> {
        match kind {
            Kind::IngressClass => self
                .ingress_classes
                .remove(&key.name)
                .map(Object::IngressClass),
            Kind::Ingress => self.ingresses.remove(key).map(Object::Ingress),
            Kind::Service => self.services.remove(key).map(Object::Service),
            Kind::EndpointSlice => self.endpoint_slices.remove(key).map(Object::EndpointSlice),
            Kind::Secret => self.secrets.remove(key).map(Object::Secret),
        }
    }

    /// The keys of every object of one kind.
    pub fn keys(&self, kind: Kind) -> Vec<ObjectKey> {
        match kind {
            Kind::IngressClass => self
                .ingress_classes
                .keys()
                .map(|n| ObjectKey::cluster(n.clone()))
                .collect(),
            Kind::Ingress => self.ingresses.keys().cloned().collect(),
            Kind::Service => self.services.keys().cloned().collect(),
            Kind::EndpointSlice => self.endpoint_slices.keys().cloned().collect(),
            Kind::Secret => self.secrets.keys().cloned().collect(),
        }
    }

    /// The metadata of an object, if held (for Event references).
    pub fn metadata(&self, kind: Kind, key: &ObjectKey) -> Option<&ObjectMeta> {
        match kind {
            Kind::IngressClass => self.ingress_classes.get(&key.name).map(|o| &o.metadata),
            Kind::Ingress => self.ingresses.get(key).map(|o| &o.metadata),
            Kind::Service => self.services.get(key).map(|o| &o.metadata),
            Kind::EndpointSlice => self.endpoint_slices.get(key).map(|o| &o.metadata),
            Kind::Secret => self.secrets.get(key).map(|o| &o.metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn service(ns: Option<&str>, name: &str) -> Object {
        Object::Service(Arc::new(Service {
            metadata: ObjectMeta {
                namespace: ns.map(str::to_owned),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }))
    }

    #[test]
    fn insert_replace_and_remove_return_the_previous_object() {
        let mut st = ClusterState::default();
        assert!(st.insert(service(Some("a"), "web")).is_none());
        let old = st.insert(service(Some("a"), "web")).unwrap();
        assert_eq!(old.key(), ObjectKey::new("a", "web"));
        assert_eq!(st.keys(Kind::Service), vec![ObjectKey::new("a", "web")]);
        assert!(st
            .remove(Kind::Service, &ObjectKey::new("a", "web"))
            .is_some());
        assert!(st.services.is_empty());
    }

    #[test]
    fn namespaced_objects_without_namespace_are_in_default() {
        assert_eq!(service(None, "x").key(), ObjectKey::new("default", "x"));
        assert_eq!(service(Some(""), "x").key(), ObjectKey::new("default", "x"));
        let class = Object::IngressClass(Arc::new(IngressClass {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("ignored".into()),
                ..ObjectMeta::default()
            },
            ..IngressClass::default()
        }));
        assert_eq!(class.key(), ObjectKey::cluster("c"));
    }
}

//! The cluster objects translation reads, keyed for deterministic iteration.
//! Filled by a source (the manifests directory, or Kubernetes reflectors).

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::BTreeMap;

/// `(namespace, name)`; cluster-scoped objects use an empty namespace.
pub type ObjectKey = (String, String);

/// Everything translation needs, as plain maps. Cheap to build from a store;
/// translation never mutates it.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub ingress_classes: BTreeMap<String, IngressClass>,
    pub ingresses: BTreeMap<ObjectKey, Ingress>,
    pub services: BTreeMap<ObjectKey, Service>,
    /// Keyed by (namespace, slice name).
    pub endpoint_slices: BTreeMap<ObjectKey, EndpointSlice>,
    pub secrets: BTreeMap<ObjectKey, Secret>,
}

impl ClusterState {
    /// Number of objects held, per kind, for logs and metrics.
    pub fn counts(&self) -> [(&'static str, usize); 5] {
        [
            ("IngressClass", self.ingress_classes.len()),
            ("Ingress", self.ingresses.len()),
            ("Service", self.services.len()),
            ("EndpointSlice", self.endpoint_slices.len()),
            ("Secret", self.secrets.len()),
        ]
    }
}

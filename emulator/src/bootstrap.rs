//! Objects the real control plane keeps without being asked, made here the
//! moment they are due (the controllers that own them act instantly):
//!
//! - the API server's own `default/kubernetes` Service at the first address
//!   of the Service range, with the Endpoints and EndpointSlice naming the
//!   address the API server advertises (what in-cluster clients reach);
//! - in every namespace, the `default` ServiceAccount (the serviceaccount
//!   controller) and the `kube-root-ca.crt` ConfigMap holding the CA of the
//!   serving certificate (the root-ca-cert-publisher).
//!
//! Simplified: a deleted `default` ServiceAccount or `kube-root-ca.crt` is
//! not recreated.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::meta;
use super::resources::ResourceInfo;
use super::state::State;

/// The `kubernetes` Service's ClusterIP: the first address of the range the
/// emulator allocates from (10.96.0.0/16).
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
/// The port in-cluster clients use (`KUBERNETES_SERVICE_PORT`).
pub const KUBERNETES_SERVICE_PORT: u16 = 443;
/// The ConfigMap every namespace gets with the API server's CA.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// What the bootstrap objects say about the API server.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// PEM of the CA that signed the serving certificate.
    pub root_ca_pem: String,
    /// Where the `kubernetes` Service's endpoints point.
    pub api_endpoint: SocketAddr,
}

impl State {
    /// The `kubernetes` Service and its endpoints.
    pub(super) fn seed_kubernetes_service(&mut self) {
        let Some(plane) = self.control_plane.clone() else {
            return;
        };
        self.allocators.reserve_ip(KUBERNETES_SERVICE_IP);
        let port = plane.api_endpoint.port();
        let ip = plane.api_endpoint.ip().to_string();
        let family = if plane.api_endpoint.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        let labels = json!({"component": "apiserver", "provider": "kubernetes"});
        self.put_bootstrap(
            "",
            "services",
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": KUBERNETES_SERVICE_IP,
                    "clusterIPs": [KUBERNETES_SERVICE_IP],
                    "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster",
                    "sessionAffinity": "None",
                    "ports": [{
                        "name": "https",
                        "port": KUBERNETES_SERVICE_PORT,
                        "protocol": "TCP",
                        "targetPort": port,
                    }],
                },
                "status": {"loadBalancer": {}},
            }),
        );
        self.put_bootstrap(
            "",
            "endpoints",
            json!({
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {
                    "endpointslice.kubernetes.io/skip-mirror": "true",
                }},
                "subsets": [{
                    "addresses": [{"ip": ip}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                }],
            }),
        );
        self.put_bootstrap(
            "discovery.k8s.io",
            "endpointslices",
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                }},
                "addressType": family,
                "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }),
        );
    }

    /// What every new namespace gets: its `default` ServiceAccount and the
    /// root CA ConfigMap.
    pub(super) fn populate_namespace(&mut self, namespace: &str) {
        self.put_bootstrap(
            "",
            "serviceaccounts",
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": namespace},
            }),
        );
        let Some(plane) = &self.control_plane else {
            return;
        };
        let ca = plane.root_ca_pem.clone();
        self.put_bootstrap(
            "",
            "configmaps",
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ROOT_CA_CONFIGMAP,
                    "namespace": namespace,
                    "annotations": {
                        "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.",
                    },
                },
                "data": {"ca.crt": ca},
            }),
        );
    }

    /// Stores a control-plane object unless one of that name exists.
    pub(crate) fn put_bootstrap(&mut self, group: &str, plural: &str, mut object: Value) {
        let Some(key) = self.registry.get(group, plural).map(ResourceInfo::key) else {
            return;
        };
        if self
            .store
            .get(&key, meta::namespace(&object), meta::name(&object))
            .is_some()
        {
            return;
        }
        meta::stamp_created(&mut object);
        self.store.put(&key, object);
    }
}

//! The emulator's whole mutable state, guarded by one lock: the resource
//! registry, the object store and the Service address allocators.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::bootstrap::ControlPlane;
use super::resources::{Registry, ResourceInfo, ResourceKey};
use super::store::Store;

/// Which part of a resource a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: ResourceInfo,
    /// The version named in the URL; objects are shown in it.
    pub version: String,
    /// Namespace from the URL (None for cluster-scoped or all-namespaces).
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
}

impl Target {
    pub fn key(&self) -> ResourceKey {
        self.info.storage_key()
    }

    pub fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }

    pub fn api_version(&self) -> String {
        self.info.api_version(&self.version)
    }
}

/// Hands out Service cluster IPs and node ports, like the real allocators.
#[derive(Debug, Default)]
pub struct Allocators {
    next_ipv4: u32,
    next_ipv6: u32,
    used_ips: BTreeSet<String>,
    next_node_port: u16,
    used_node_ports: BTreeSet<u16>,
}

impl Allocators {
    /// Next free address in 10.96.0.0/16 (IPv4) or fd00:10:96::/112 (IPv6).
    pub fn cluster_ip(&mut self, ipv6: bool) -> String {
        loop {
            let ip = if ipv6 {
                self.next_ipv6 += 1;
                format!("fd00:10:96::{:x}", 9 + self.next_ipv6)
            } else {
                self.next_ipv4 += 1;
                let n = 9 + self.next_ipv4;
                format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
            };
            if self.used_ips.insert(ip.clone()) {
                return ip;
            }
        }
    }

    /// Records an address a client chose itself.
    pub fn reserve_ip(&mut self, ip: &str) {
        self.used_ips.insert(ip.to_string());
    }

    /// Next free port in 30000-32767.
    pub fn node_port(&mut self) -> u16 {
        for _ in 0..2768 {
            let port = 30000 + (self.next_node_port % 2768);
            self.next_node_port = self.next_node_port.wrapping_add(1);
            if self.used_node_ports.insert(port) {
                return port;
            }
        }
        30000
    }

    pub fn reserve_node_port(&mut self, port: u16) {
        self.used_node_ports.insert(port);
    }
}

#[derive(Debug)]
pub struct State {
    pub registry: Registry,
    pub store: Store,
    pub allocators: Allocators,
    /// What the control plane's own objects say about the API server
    /// (none: no `kubernetes` Service and no `kube-root-ca.crt`).
    pub control_plane: Option<ControlPlane>,
}

impl State {
    pub fn new(history_limit: usize, control_plane: Option<ControlPlane>) -> Self {
        let mut state = Self {
            registry: Registry::with_builtins(),
            store: Store::new(history_limit),
            allocators: Allocators::default(),
            control_plane,
        };
        state.seed();
        state
    }

    /// The namespaces every cluster starts with.
    fn seed(&mut self) {
        let Some(namespaces) = self.registry.get("", "namespaces").map(ResourceInfo::key) else {
            return;
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "uid": super::meta::new_uid(),
                    "creationTimestamp": super::meta::now_rfc3339(),
                    "labels": {"kubernetes.io/metadata.name": name},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            self.store.put(&namespaces, object);
            self.populate_namespace(name);
        }
        self.seed_kubernetes_service();
        self.seed_default_rbac();
    }
}

/// An object as a client sees it at `version`: custom resources are shown in
/// the requested version (without conversion; all versions share one schema
/// shape here), built-ins as stored or converted (events.k8s.io Events).
pub fn present(object: &Value, info: &ResourceInfo, version: &str) -> Value {
    let mut out = super::convert::from_storage(info, object.clone());
    if info.custom {
        if let Some(map) = out.as_object_mut() {
            map.insert("apiVersion".into(), json!(info.api_version(version)));
        }
    }
    out
}

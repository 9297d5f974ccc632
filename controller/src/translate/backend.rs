//! From an Ingress backend (Service + port by number or name) to the pod
//! addresses that serve it, through the Service's ports and its
//! EndpointSlices.

use crate::state::{ClusterState, ObjectKey};
pub use gatehouse_model::PortRef;
use gatehouse_model::{Backend, BackendId, Endpoint, ObjectRef, Snapshot};
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why a backend has no endpoints although it was asked for. The route is
/// still served (it answers 503), so these are warnings on the Ingress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendProblem {
    #[error("Service {namespace}/{name} not found; its routes answer 503")]
    ServiceNotFound { namespace: String, name: String },
    #[error("Service {namespace}/{name} has no port {port}; its routes answer 503")]
    PortNotFound {
        namespace: String,
        name: String,
        port: String,
    },
    #[error("Service {namespace}/{name} is of type ExternalName, which is not supported; its routes answer 503")]
    ExternalName { namespace: String, name: String },
}

/// EndpointSlices by namespace and Service, built once per translation so
/// that resolving a backend does not scan every slice of its namespace (that
/// scan made a rebuild quadratic: ~3 s at 10,000 Services in one namespace).
pub struct SliceIndex<'a> {
    /// Namespace → Service name → slices.
    by_service: HashMap<&'a str, HashMap<&'a str, Vec<&'a EndpointSlice>>>,
}

impl<'a> SliceIndex<'a> {
    pub fn new(state: &'a ClusterState) -> Self {
        let mut by_service: HashMap<&str, HashMap<&str, Vec<&EndpointSlice>>> = HashMap::new();
        for (key, slice) in &state.endpoint_slices {
            let namespace = &key.namespace;
            if let Some(service) = slice_service(slice) {
                by_service
                    .entry(namespace.as_str())
                    .or_default()
                    .entry(service)
                    .or_default()
                    .push(slice);
            }
        }
        SliceIndex { by_service }
    }

    /// Only the slices of the given Services (for endpoint-only updates).
    pub fn for_services(state: &'a ClusterState, services: &BTreeSet<ObjectKey>) -> Self {
        let mut by_service: HashMap<&str, HashMap<&str, Vec<&EndpointSlice>>> = HashMap::new();
        for (key, slice) in &state.endpoint_slices {
            let Some(service) = slice_service(slice) else {
                continue;
            };
            if services.contains(&ObjectKey::new(key.namespace.as_str(), service)) {
                by_service
                    .entry(key.namespace.as_str())
                    .or_default()
                    .entry(service)
                    .or_default()
                    .push(slice);
            }
        }
        SliceIndex { by_service }
    }

    fn slices(&self, namespace: &str, service: &str) -> &[&'a EndpointSlice] {
        self.by_service
            .get(namespace)
            .and_then(|services| services.get(service))
            .map_or(&[], Vec::as_slice)
    }
}

/// Resolves a backend. Always returns a backend (possibly without endpoints)
/// so that routes to it answer 503 instead of disappearing.
pub fn resolve(
    state: &ClusterState,
    slices: &SliceIndex<'_>,
    namespace: &str,
    service: &str,
    port: &PortRef,
) -> (Backend, Option<BackendProblem>) {
    let mut backend = Backend {
        service: ObjectRef::new("Service", namespace, service),
        port: port.clone(),
        endpoints: Vec::new(),
    };
    let key = ObjectKey::new(namespace, service);
    let Some(svc) = state.services.get(&key) else {
        let problem = BackendProblem::ServiceNotFound {
            namespace: namespace.into(),
            name: service.into(),
        };
        return (backend, Some(problem));
    };
    let spec = svc.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        let problem = BackendProblem::ExternalName {
            namespace: namespace.into(),
            name: service.into(),
        };
        return (backend, Some(problem));
    }
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let Some(service_port) = find_port(ports, port) else {
        let problem = BackendProblem::PortNotFound {
            namespace: namespace.into(),
            name: service.into(),
            port: port.to_string(),
        };
        return (backend, Some(problem));
    };
    let port_name = service_port.name.as_deref().unwrap_or("");
    let slices = slices.slices(namespace, service).iter().copied();
    backend.endpoints = select_endpoints(slices, port_name);
    (backend, None)
}

/// The new endpoint lists of the snapshot's backends that belong to the
/// given Services, where they differ from the snapshot's: what an
/// EndpointSlice-only change does to a snapshot, without translating it
/// again. Service and port resolution cannot change when only slices did,
/// so this equals what a full translation would produce.
pub fn refresh_endpoints(
    state: &ClusterState,
    snapshot: &Snapshot,
    services: &BTreeSet<ObjectKey>,
) -> BTreeMap<BackendId, Vec<Endpoint>> {
    let slices = SliceIndex::for_services(state, services);
    let mut updates = BTreeMap::new();
    for (id, backend) in &snapshot.backends {
        let svc = &backend.service;
        if !services.contains(&ObjectKey::new(svc.namespace.as_str(), svc.name.as_str())) {
            continue;
        }
        let (fresh, _) = resolve(state, &slices, &svc.namespace, &svc.name, &backend.port);
        if fresh.endpoints != backend.endpoints {
            updates.insert(id.clone(), fresh.endpoints);
        }
    }
    updates
}

/// The Service an EndpointSlice belongs to, by its label.
pub fn slice_owner(namespace: &str, slice: &EndpointSlice) -> Option<ObjectKey> {
    slice_service(slice).map(|name| ObjectKey::new(namespace, name))
}

fn find_port<'a>(ports: &'a [ServicePort], want: &PortRef) -> Option<&'a ServicePort> {
    ports.iter().find(|p| match want {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

fn slice_service(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .map(String::as_str)
}

/// An endpoint's state, with the API's defaults for unset conditions: `ready`
/// unknown means ready, `serving` unknown means `ready`, `terminating` unknown
/// means not terminating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conditions {
    ready: bool,
    serving: bool,
    terminating: bool,
}

impl From<Option<&EndpointConditions>> for Conditions {
    fn from(c: Option<&EndpointConditions>) -> Self {
        let ready = c.and_then(|c| c.ready).unwrap_or(true);
        Conditions {
            ready,
            serving: c.and_then(|c| c.serving).unwrap_or(ready),
            terminating: c.and_then(|c| c.terminating).unwrap_or(false),
        }
    }
}

/// Ready endpoints; if there are none, the serving-but-terminating ones (so a
/// rollout or scale-down never black-holes while pods can still answer).
/// Sorted and deduplicated across slices.
fn select_endpoints<'a>(
    slices: impl Iterator<Item = &'a EndpointSlice>,
    port_name: &str,
) -> Vec<Endpoint> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let Some(port) = slice
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in slice.endpoints.as_deref().unwrap_or_default() {
            // kube-proxy uses the first address; the others are the same pod.
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            let endpoint = Endpoint {
                address: SocketAddr::new(ip, port),
                target: ep.target_ref.as_ref().and_then(|t| t.name.clone()),
                node: ep.node_name.clone(),
            };
            let cond = Conditions::from(ep.conditions.as_ref());
            if cond.ready {
                ready.insert(endpoint);
            } else if cond.serving && cond.terminating {
                terminating.insert(endpoint);
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    dedup_by_address(chosen)
}

fn dedup_by_address(set: BTreeSet<Endpoint>) -> Vec<Endpoint> {
    let mut seen = BTreeSet::new();
    set.into_iter().filter(|e| seen.insert(e.address)).collect()
}

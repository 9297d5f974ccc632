//! What a Service's EndpointSlices should hold, from its selected Pods (as
//! upstream's `podToEndpoint`): one slice per address type and resolved
//! port set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::pod_state::{has_finished, is_ready, is_terminating, node_name, pod_ip};

/// The endpoints that share one address type and port list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SliceContents {
    pub address_type: String,
    pub ports: Option<Vec<EndpointPort>>,
    pub endpoints: Vec<Endpoint>,
}

/// The slices `service` should have, given every Pod in its namespace. With
/// no endpoints at all there is one empty slice (upstream's placeholder).
pub(crate) fn desired_slices(service: &Service, pods: &[&Pod]) -> Vec<SliceContents> {
    let spec = service.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut groups: BTreeMap<(String, String), SliceContents> = BTreeMap::new();
    let mut selected: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
        .filter(|p| !has_finished(p))
        .collect();
    selected.sort_by_key(|p| p.name_any());
    for pod in selected {
        let Some(ip) = pod_ip(pod) else {
            continue;
        };
        let address_type = if ip.contains(':') { "IPv6" } else { "IPv4" };
        let ports: Vec<EndpointPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| resolve_port(p, pod))
            .collect();
        let key = (
            address_type.to_string(),
            serde_json::to_string(&ports).unwrap_or_default(),
        );
        groups
            .entry(key)
            .or_insert_with(|| SliceContents {
                address_type: address_type.to_string(),
                ports: Some(ports),
                endpoints: Vec::new(),
            })
            .endpoints
            .push(endpoint(pod, ip, publish_not_ready));
    }
    if groups.is_empty() {
        let family = spec
            .ip_families
            .as_ref()
            .and_then(|f| f.first().cloned())
            .unwrap_or_else(|| "IPv4".to_string());
        return vec![SliceContents {
            address_type: family,
            ports: None,
            endpoints: Vec::new(),
        }];
    }
    groups.into_values().collect()
}

/// Ready means serving and not terminating (or `publishNotReadyAddresses`);
/// serving is the Pod's readiness, whether terminating or not.
fn endpoint(pod: &Pod, ip: &str, publish_not_ready: bool) -> Endpoint {
    let serving = is_ready(pod);
    let terminating = is_terminating(pod);
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        node_name: node_name(pod).map(str::to_string),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_string()),
            name: Some(pod.name_any()),
            namespace: pod.namespace(),
            uid: pod.uid(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service port on this Pod: a named targetPort is looked up among the
/// Pod's container ports (with the same protocol); absent there, the port
/// is left out for this Pod, as upstream.
fn resolve_port(port: &ServicePort, pod: &Pod) -> Option<EndpointPort> {
    let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".to_string());
    let number = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => {
                pod.spec
                    .as_ref()?
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|p| {
                        p.name.as_deref() == Some(name)
                            && p.protocol.as_deref().unwrap_or("TCP") == protocol
                    })?
                    .container_port
            }
        },
    };
    Some(EndpointPort {
        name: Some(port.name.clone().unwrap_or_default()),
        port: Some(number),
        protocol: Some(protocol),
        app_protocol: port.app_protocol.clone(),
    })
}

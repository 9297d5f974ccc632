//! kube-proxy's part, following the API: Services and EndpointSlices are
//! watched, and every change re-renders the nodes' nftables rules through
//! `Cluster::expose_service` (ClusterIP and LoadBalancer ingress IPs, TCP,
//! ready endpoints only, `externalTrafficPolicy` honoured).

use crate::cluster::{Cluster, Endpoint, Service, ServicePort, TrafficPolicy};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Keeps every node's rules in step with the API while it lives.
#[derive(Debug)]
pub struct ProxyFollower {
    task: JoinHandle<()>,
}

impl Drop for ProxyFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProxyFollower {
    /// Starts following (on a Tokio runtime).
    pub fn start(client: kube::Client, cluster: Arc<Cluster>) -> Self {
        let task = tokio::spawn(follow(client, cluster));
        Self { task }
    }
}

async fn follow(client: kube::Client, cluster: Arc<Cluster>) {
    let (services, service_writer) = reflector::store::<KubeService>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let service_events = watcher::watcher(
        Api::<KubeService>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(service_writer)
    .map(|_| ())
    .boxed();
    let slice_events = watcher::watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(slice_writer)
    .map(|_| ())
    .boxed();
    let mut changes = futures::stream::select(service_events, slice_events);
    let mut applied: BTreeMap<String, Service> = BTreeMap::new();
    while changes.next().await.is_some() {
        let node_index = |name: &str| cluster.nodes().iter().position(|n| n.name == name);
        let wanted = desired(&services, &slices, node_index);
        for (name, service) in &wanted {
            if applied.get(name) != Some(service) {
                if let Err(e) = cluster.expose_service(service.clone()) {
                    eprintln!("gatehouse-e2e kube-proxy: {name}: {e}");
                }
            }
        }
        for name in applied.keys().filter(|n| !wanted.contains_key(*n)) {
            if let Err(e) = cluster.remove_service(name) {
                eprintln!("gatehouse-e2e kube-proxy: removing {name}: {e}");
            }
        }
        applied = wanted;
    }
}

/// The rules' view of every Service with a ClusterIP, keyed by the name
/// the cluster knows it by (`<namespace>-<name>`).
fn desired(
    services: &Store<KubeService>,
    slices: &Store<EndpointSlice>,
    node_index: impl Fn(&str) -> Option<usize>,
) -> BTreeMap<String, Service> {
    let slices = slices.state();
    let mut out = BTreeMap::new();
    for service in services.state() {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let own: Vec<&EndpointSlice> = slices
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    == Some(&name)
            })
            .map(|s| s.as_ref())
            .collect();
        let key = format!("{namespace}-{name}");
        if let Some(mut rules) = rules_for(&service, &own, &node_index) {
            rules.name = key.clone();
            out.insert(key, rules);
        }
    }
    out
}

fn rules_for(
    service: &KubeService,
    slices: &[&EndpointSlice],
    node_index: &impl Fn(&str) -> Option<usize>,
) -> Option<Service> {
    let spec = service.spec.as_ref()?;
    let cluster_ip: Ipv4Addr = spec.cluster_ip.as_deref()?.parse().ok()?;
    // A Service whose endpoint is its own address is served there already
    // (the API: `system::ApiAccess` holds 10.96.0.1 on every node). Rules
    // would only get in the way: with no endpoint on a node, a reset.
    let served_in_place = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .flat_map(|e| e.addresses.iter())
        .any(|a| a.parse::<Ipv4Addr>().ok() == Some(cluster_ip));
    if served_in_place {
        return None;
    }
    let load_balancer_ip = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|ingress| ingress.iter().find_map(|i| i.ip.as_deref()?.parse().ok()));
    let mut ports = Vec::new();
    for port in spec.ports.iter().flatten() {
        if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
            continue;
        }
        // The slices say which number a (possibly named) targetPort is.
        let target = slices
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .find(|p| p.name == port.name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        let (Ok(number), Some(target_port)) = (u16::try_from(port.port), target) else {
            continue;
        };
        ports.push(ServicePort {
            port: number,
            target_port,
        });
    }
    let endpoints = slices
        .iter()
        .filter(|s| s.address_type == "IPv4")
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| {
            let node = e.node_name.as_deref().and_then(node_index);
            e.addresses.iter().filter_map(move |a| {
                Some(Endpoint {
                    ip: a.parse().ok()?,
                    node: node?,
                })
            })
        })
        .collect();
    let external_traffic_policy = match spec.external_traffic_policy.as_deref() {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    Some(Service {
        name: String::new(),
        cluster_ip,
        load_balancer_ip,
        ports,
        endpoints,
        external_traffic_policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(policy: &str) -> KubeService {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.202.0.5", "externalTrafficPolicy": policy,
                     "ports": [{"name": "http", "port": 80, "targetPort": "web"},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.200.0.200"}]}},
        }))
        .unwrap()
    }

    fn slice() -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "shop"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.201.0.1"], "nodeName": "node-0", "conditions": {"ready": true}},
                {"addresses": ["10.201.0.2"], "nodeName": "node-0", "conditions": {"ready": false}},
                {"addresses": ["10.201.0.33"], "nodeName": "node-1"},
                {"addresses": ["10.201.0.99"], "nodeName": "elsewhere"},
            ],
        }))
        .unwrap()
    }

    #[test]
    fn ready_endpoints_on_known_nodes_and_tcp_ports_by_name_become_rules() {
        let node = |name: &str| name.strip_prefix("node-").and_then(|i| i.parse().ok());
        let slice = slice();
        let rules = rules_for(&service("Local"), &[&slice], &node).unwrap();
        assert_eq!(rules.cluster_ip, Ipv4Addr::new(10, 202, 0, 5));
        assert_eq!(rules.load_balancer_ip, Some(Ipv4Addr::new(10, 200, 0, 200)));
        assert_eq!(
            rules.ports,
            [ServicePort {
                port: 80,
                target_port: 8080
            }]
        );
        let ips: Vec<(Ipv4Addr, usize)> = rules.endpoints.iter().map(|e| (e.ip, e.node)).collect();
        assert_eq!(
            ips,
            [
                (Ipv4Addr::new(10, 201, 0, 1), 0),
                (Ipv4Addr::new(10, 201, 0, 33), 1)
            ]
        );
        assert_eq!(rules.external_traffic_policy, TrafficPolicy::Local);
    }

    #[test]
    fn a_service_served_at_its_own_address_has_no_rules() {
        let api: KubeService = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]},
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": 443}],
            "endpoints": [{"addresses": ["10.96.0.1"]}],
        }))
        .unwrap();
        assert!(rules_for(&api, &[&slice], &|_: &str| Some(0)).is_none());
    }

    #[test]
    fn headless_services_have_no_rules() {
        let mut headless = service("Cluster");
        if let Some(spec) = headless.spec.as_mut() {
            spec.cluster_ip = Some("None".into());
        }
        assert!(rules_for(&headless, &[], &|_: &str| Some(0)).is_none());
    }
}

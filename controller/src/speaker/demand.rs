//! Which addresses the speakers announce and which nodes may announce
//! each, from the API's objects. Pure.
//!
//! - An address is announced if a Service we serve (`type: LoadBalancer`,
//!   our class) has it in `status.loadBalancer.ingress`, and an IPPool
//!   holds it whose `l2Advertisement` is not disabled. Addresses of no
//!   pool (a cloud's, say) are never announced.
//! - A node may announce it if the Node is Ready, schedulable, not
//!   labelled `node.kubernetes.io/exclude-from-external-load-balancers`,
//!   and matched by one of the pool's node selectors (any node when there
//!   are none). For `externalTrafficPolicy: Local`, only nodes with a ready
//!   endpoint of the Service (EndpointSlice `nodeName`) may.
//! - An address shared by several Services may be announced only by nodes
//!   allowed for all of them.

use super::decide::Demand;
use super::node::NodeName;
use super::status::annotation_for;
use crate::ipam::{AddressRange, LabelSelector};
use crate::lb::convert::{selector, ClassFilter};
use crate::state::ObjectKey;
use gatehouse_crds::IPPool;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The label that keeps a node out of load balancing (as for cloud load
/// balancers).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An address to announce, with where and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub demand: Demand,
    /// The Services that have the address.
    pub services: Vec<ServiceRef>,
    /// The pool that holds it.
    pub pool: String,
    /// Interfaces to announce on; empty: all of them.
    pub interfaces: Vec<String>,
}

/// A Service that has an announced address, with what the speaker's
/// writes need: the uid its Events refer to, and which node its
/// announcing-node annotation names for the address's family now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub key: ObjectKey,
    pub uid: Option<String>,
    pub announcing_node: Option<String>,
}

/// The objects the speaker reads.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub services: &'a [Service],
    pub slices: &'a [EndpointSlice],
    pub nodes: &'a [Node],
    pub pools: &'a [IPPool],
    pub filter: &'a ClassFilter,
}

struct PoolL2 {
    name: String,
    ranges: Vec<AddressRange>,
    /// `None`: a selector that cannot be read; the pool is announced from
    /// no node rather than from the wrong ones.
    node_selectors: Option<Vec<LabelSelector>>,
    interfaces: Vec<String>,
}

pub fn announced(view: View<'_>) -> Vec<Announced> {
    let pools: Vec<PoolL2> = view.pools.iter().filter_map(pool_l2).collect();
    let ready_nodes: Vec<(&Node, NodeName)> = view
        .nodes
        .iter()
        .filter(|n| node_can_announce(n))
        .filter_map(|n| Some((n, NodeName::new(n.metadata.name.clone()?))))
        .collect();
    let local_endpoints = local_endpoint_nodes(view.slices);

    let mut by_address: BTreeMap<IpAddr, Announced> = BTreeMap::new();
    for service in view.services.iter().filter(|s| view.filter.serves(s)) {
        let (Some(namespace), Some(name)) = (&service.metadata.namespace, &service.metadata.name)
        else {
            continue;
        };
        let key = ObjectKey::new(namespace, name);
        let local = service
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        for address in ingress_ips(service) {
            let Some(pool) = pools
                .iter()
                .find(|p| p.ranges.iter().any(|r| r.contains(address)))
            else {
                continue;
            };
            let mut candidates: BTreeSet<NodeName> = match &pool.node_selectors {
                None => BTreeSet::new(),
                Some(selectors) => ready_nodes
                    .iter()
                    .filter(|(node, _)| {
                        selectors.is_empty() || selectors.iter().any(|s| s.matches(&labels(node)))
                    })
                    .map(|(_, name)| name.clone())
                    .collect(),
            };
            if local {
                let with_endpoints = local_endpoints.get(&key);
                candidates.retain(|n| with_endpoints.is_some_and(|set| set.contains(n)));
            }
            let reference = ServiceRef {
                key: key.clone(),
                uid: service.metadata.uid.clone(),
                announcing_node: service
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(annotation_for(address)))
                    .cloned(),
            };
            by_address
                .entry(address)
                .and_modify(|a| {
                    a.demand.candidates.retain(|n| candidates.contains(n));
                    a.services.push(reference.clone());
                })
                .or_insert_with(|| Announced {
                    demand: Demand {
                        address,
                        candidates: candidates.clone(),
                    },
                    services: vec![reference.clone()],
                    pool: pool.name.clone(),
                    interfaces: pool.interfaces.clone(),
                });
        }
    }
    by_address.into_values().collect()
}

fn pool_l2(pool: &IPPool) -> Option<PoolL2> {
    // Absent: announced everywhere (`Default` would say `enabled: false`;
    // serde's default for the field is `true`).
    let l2 = pool
        .spec
        .l2_advertisement
        .clone()
        .unwrap_or(gatehouse_crds::L2Advertisement {
            enabled: true,
            ..Default::default()
        });
    if !l2.enabled {
        return None;
    }
    let ranges = pool
        .spec
        .addresses
        .iter()
        .filter_map(|a| AddressRange::parse(a.trim()).ok())
        .collect();
    let node_selectors = l2
        .node_selectors
        .iter()
        .map(|s| selector(s).ok())
        .collect::<Option<Vec<_>>>();
    Some(PoolL2 {
        name: pool.metadata.name.clone().unwrap_or_default(),
        ranges,
        node_selectors,
        interfaces: l2.interfaces,
    })
}

fn ingress_ips(service: &Service) -> impl Iterator<Item = IpAddr> + '_ {
    service
        .status
        .iter()
        .filter_map(|s| s.load_balancer.as_ref())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
}

/// Ready, schedulable, not excluded.
pub fn node_can_announce(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let excluded = node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(EXCLUDE_LABEL));
    ready && !unschedulable && !excluded
}

fn labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// Per Service, the nodes that have a ready endpoint of it.
fn local_endpoint_nodes(slices: &[EndpointSlice]) -> BTreeMap<ObjectKey, BTreeSet<NodeName>> {
    let mut out: BTreeMap<ObjectKey, BTreeSet<NodeName>> = BTreeMap::new();
    for slice in slices {
        let (Some(namespace), Some(service)) = (
            &slice.metadata.namespace,
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        let nodes = out.entry(ObjectKey::new(namespace, service)).or_default();
        for endpoint in slice.endpoints.iter().flatten() {
            // An absent `ready` means ready (the API's own reading).
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if let (true, Some(node)) = (ready, &endpoint.node_name) {
                nodes.insert(NodeName::new(node.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

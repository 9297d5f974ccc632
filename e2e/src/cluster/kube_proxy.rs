//! kube-proxy's part: nftables rules in each node namespace that send
//! ClusterIP:port and LoadBalancer-IP:port to a Service's endpoints.
//!
//! Every node gets one table, `ip gatehouse_proxy`, rendered from all
//! Services by the pure [`render`] and replaced atomically (`nft -f`) on
//! every change. Its shape follows kube-proxy's nftables mode:
//!
//! - `services` matches a VIP and port and jumps to the Service port's chain
//!   (hooked at prerouting for traffic arriving at the node, and at output
//!   for traffic the node itself sends);
//! - a Service port's chain picks an endpoint chain at random (`numgen`);
//! - an endpoint chain DNATs to the endpoint, marking hairpin traffic (a pod
//!   reaching itself through the VIP) for masquerade;
//! - postrouting masquerades marked traffic and DNATed traffic that leaves
//!   over the LAN (an endpoint on another node), so replies come back
//!   through this node;
//! - a VIP:port with no endpoints is rejected with a TCP reset, in filter
//!   chains, so clients fail fast.
//!
//! Simplified: TCP only, IPv4 only, no NodePorts, no session affinity; with
//! `externalTrafficPolicy: Cluster` traffic to a local endpoint keeps the
//! client's source address (kube-proxy would masquerade it).

use super::lan::LAN_INTERFACE;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// What kube-proxy sees of a Service and its EndpointSlices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Unique among the cluster's Services; `expose_service` with the same
    /// name replaces it.
    pub name: String,
    pub cluster_ip: Ipv4Addr,
    pub load_balancer_ip: Option<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    /// Ready endpoints.
    pub endpoints: Vec<Endpoint>,
    pub external_traffic_policy: TrafficPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePort {
    pub port: u16,
    /// The port on the endpoints.
    pub target_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    /// Index of the node the endpoint runs on (for `Local` traffic policy).
    pub node: usize,
}

/// `spec.externalTrafficPolicy`: which endpoints external traffic (to the
/// LoadBalancer IP) arriving at a node may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    /// Any endpoint in the cluster.
    #[default]
    Cluster,
    /// Only endpoints on the node the traffic arrived at; none there: the
    /// connection is refused.
    Local,
}

pub const TABLE: &str = "gatehouse_proxy";
const MASQUERADE_MARK: u32 = 0x4000;

/// The nftables script that makes `node`'s table match `services`.
pub fn render(node: usize, services: &[Service]) -> String {
    let mut dispatch = String::new();
    let mut no_endpoints = String::new();
    let mut chains = String::new();
    for (s, service) in services.iter().enumerate() {
        let local: Vec<Endpoint> = service
            .endpoints
            .iter()
            .filter(|e| e.node == node)
            .copied()
            .collect();
        let external = match service.external_traffic_policy {
            TrafficPolicy::Cluster => &service.endpoints,
            TrafficPolicy::Local => &local,
        };
        for port in &service.ports {
            let comment = format!("{}:{}", service.name, port.port);
            let mut route = |vip: Ipv4Addr, kind: &str, endpoints: &[Endpoint]| {
                let chain = format!("{kind}_{s}_{}", port.port);
                if endpoints.is_empty() {
                    let _ = writeln!(
                        no_endpoints,
                        "\t\tip daddr {vip} tcp dport {} reject with tcp reset comment \"{comment}\"",
                        port.port
                    );
                    return;
                }
                let _ = writeln!(
                    dispatch,
                    "\t\tip daddr {vip} tcp dport {} jump {chain} comment \"{comment}\"",
                    port.port
                );
                chains.push_str(&port_chain(&chain, endpoints, port.target_port));
            };
            route(service.cluster_ip, "svc", &service.endpoints);
            if let Some(lb_ip) = service.load_balancer_ip {
                route(lb_ip, "ext", external);
            }
        }
    }
    format!(
        "table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table ip {TABLE} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority -100; policy accept;\n\
         \t\tjump services\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         \t\tjump services\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority 100; policy accept;\n\
         \t\tmeta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade\n\
         \t\tct status dnat oifname \"{LAN_INTERFACE}\" masquerade\n\
         \t}}\n\
         \tchain filter_forward {{\n\
         \t\ttype filter hook forward priority 0; policy accept;\n\
         \t\tjump no_endpoints\n\
         \t}}\n\
         \tchain filter_output {{\n\
         \t\ttype filter hook output priority 0; policy accept;\n\
         \t\tjump no_endpoints\n\
         \t}}\n\
         \tchain no_endpoints {{\n{no_endpoints}\t}}\n\
         \tchain services {{\n{dispatch}\t}}\n\
         {chains}}}\n"
    )
}

/// The chain for one VIP:port: a random pick among endpoint chains.
fn port_chain(chain: &str, endpoints: &[Endpoint], target_port: u16) -> String {
    let mut text = String::new();
    let targets: Vec<String> = (0..endpoints.len())
        .map(|e| format!("{chain}_ep{e}"))
        .collect();
    let _ = writeln!(text, "\tchain {chain} {{");
    if let [only] = targets.as_slice() {
        let _ = writeln!(text, "\t\tjump {only}");
    } else {
        let arms: Vec<String> = targets
            .iter()
            .enumerate()
            .map(|(e, target)| format!("{e} : jump {target}"))
            .collect();
        let _ = writeln!(
            text,
            "\t\tnumgen random mod {} vmap {{ {} }}",
            targets.len(),
            arms.join(", ")
        );
    }
    text.push_str("\t}\n");
    for (endpoint, target) in endpoints.iter().zip(&targets) {
        let _ = writeln!(text, "\tchain {target} {{");
        let _ = writeln!(
            text,
            "\t\tip saddr {} meta mark set meta mark | {MASQUERADE_MARK:#x}",
            endpoint.ip
        );
        let _ = writeln!(
            text,
            "\t\tmeta l4proto tcp dnat to {}:{target_port}",
            endpoint.ip
        );
        text.push_str("\t}\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(policy: TrafficPolicy, endpoints: Vec<Endpoint>) -> Service {
        Service {
            name: "web".into(),
            cluster_ip: Ipv4Addr::new(10, 202, 0, 1),
            load_balancer_ip: Some(Ipv4Addr::new(10, 200, 0, 200)),
            ports: vec![ServicePort {
                port: 80,
                target_port: 8080,
            }],
            endpoints,
            external_traffic_policy: policy,
        }
    }

    fn endpoint(last: u8, node: usize) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 201, 0, last),
            node,
        }
    }

    #[test]
    fn cluster_policy_balances_both_vips_over_all_endpoints() {
        let script = render(
            0,
            &[web(
                TrafficPolicy::Cluster,
                vec![endpoint(1, 0), endpoint(33, 1)],
            )],
        );
        assert!(script.contains("ip daddr 10.202.0.1 tcp dport 80 jump svc_0_80"));
        assert!(script.contains("ip daddr 10.200.0.200 tcp dport 80 jump ext_0_80"));
        assert!(script
            .contains("numgen random mod 2 vmap { 0 : jump svc_0_80_ep0, 1 : jump svc_0_80_ep1 }"));
        assert!(script
            .contains("numgen random mod 2 vmap { 0 : jump ext_0_80_ep0, 1 : jump ext_0_80_ep1 }"));
        assert!(script.contains("dnat to 10.201.0.33:8080"));
        assert!(!script.contains("reject"));
    }

    #[test]
    fn local_policy_keeps_only_this_nodes_endpoints_for_external_traffic() {
        let service = web(TrafficPolicy::Local, vec![endpoint(1, 0), endpoint(33, 1)]);
        let on_node_1 = render(1, std::slice::from_ref(&service));
        assert!(on_node_1.contains("chain ext_0_80 {\n\t\tjump ext_0_80_ep0\n"));
        assert!(on_node_1.contains("chain ext_0_80_ep0 {\n\t\tip saddr 10.201.0.33"));
        // The ClusterIP still reaches every endpoint.
        assert!(on_node_1.contains("numgen random mod 2 vmap { 0 : jump svc_0_80_ep0"));
        let on_node_2 = render(2, &[service]);
        assert!(on_node_2.contains("ip daddr 10.200.0.200 tcp dport 80 reject with tcp reset"));
    }

    #[test]
    fn service_without_endpoints_is_rejected() {
        let script = render(0, &[web(TrafficPolicy::Cluster, vec![])]);
        assert!(script.contains("ip daddr 10.202.0.1 tcp dport 80 reject with tcp reset"));
        assert!(script.contains("ip daddr 10.200.0.200 tcp dport 80 reject with tcp reset"));
        assert!(!script.contains("jump svc_0_80"));
    }

    #[test]
    fn no_services_still_renders_a_valid_empty_table() {
        let script = render(0, &[]);
        assert!(script.starts_with("table ip gatehouse_proxy\ndelete table ip gatehouse_proxy\n"));
        assert!(script.contains("chain services {\n\t}"));
    }
}

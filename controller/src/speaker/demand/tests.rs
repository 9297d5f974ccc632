#![allow(clippy::unwrap_used)]

use super::*;

fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_yaml::from_str(s).unwrap()
}

fn filter() -> ClassFilter {
    ClassFilter {
        class: "gatehouse.dev/lb".into(),
        default_class: true,
    }
}

fn service(name: &str, ip: &str, policy: &str) -> Service {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: shop}}
spec: {{type: LoadBalancer, externalTrafficPolicy: {policy}, ports: [{{port: 80}}]}}
status: {{loadBalancer: {{ingress: [{{ip: '{ip}'}}]}}}}"
    ))
}

fn node(name: &str, extra: &str) -> Node {
    yaml(&format!(
        "metadata: {{name: {name}, labels: {{zone: a}}}}
{extra}
status: {{conditions: [{{type: Ready, status: 'True'}}]}}"
    ))
}

fn pool(extra: &str) -> IPPool {
    yaml(&format!(
        "apiVersion: gatehouse.dev/v1alpha1
kind: IPPool
metadata: {{name: lan}}
spec:
  addresses: [192.0.2.0/24]
{extra}"
    ))
}

fn slice(service: &str, endpoints: &str) -> EndpointSlice {
    yaml(&format!(
        "metadata: {{name: {service}-abc, namespace: shop, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
endpoints: {endpoints}"
    ))
}

fn nodes() -> Vec<Node> {
    vec![node("node-0", ""), node("node-1", ""), node("node-2", "")]
}

fn candidates(a: &Announced) -> Vec<&str> {
    a.demand.candidates.iter().map(|n| n.as_str()).collect()
}

fn run(
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
    pools: &[IPPool],
) -> Vec<Announced> {
    announced(View {
        services,
        slices,
        nodes,
        pools,
        filter: &filter(),
    })
}

#[test]
fn a_cluster_service_may_be_announced_by_every_ready_node() {
    let out = run(
        &[service("web", "192.0.2.10", "Cluster")],
        &[],
        &nodes(),
        &[pool("")],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].demand.address,
        "192.0.2.10".parse::<IpAddr>().unwrap()
    );
    assert_eq!(candidates(&out[0]), ["node-0", "node-1", "node-2"]);
    assert_eq!(out[0].services.len(), 1);
    assert_eq!(out[0].services[0].key, ObjectKey::new("shop", "web"));
    assert_eq!(out[0].services[0].announcing_node, None);
    assert_eq!(out[0].pool, "lan");
    assert!(out[0].interfaces.is_empty());
}

#[test]
fn a_local_service_only_by_nodes_with_a_ready_endpoint() {
    let slices = [slice(
        "web",
        "[{addresses: [10.0.1.5], nodeName: node-1, conditions: {ready: true}},
          {addresses: [10.0.2.5], nodeName: node-2, conditions: {ready: false}}]",
    )];
    let out = run(
        &[service("web", "192.0.2.10", "Local")],
        &slices,
        &nodes(),
        &[pool("")],
    );
    assert_eq!(candidates(&out[0]), ["node-1"]);
}

#[test]
fn a_local_service_without_ready_endpoints_has_no_candidate() {
    let slices = [slice(
        "web",
        "[{addresses: [10.0.2.5], nodeName: node-2, conditions: {ready: false}}]",
    )];
    let out = run(
        &[service("web", "192.0.2.10", "Local")],
        &slices,
        &nodes(),
        &[pool("")],
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].demand.candidates.is_empty());
    let out = run(
        &[service("web", "192.0.2.10", "Local")],
        &[],
        &nodes(),
        &[pool("")],
    );
    assert!(out[0].demand.candidates.is_empty());
}

#[test]
fn an_endpoint_without_a_ready_condition_counts_as_ready() {
    let slices = [slice("web", "[{addresses: [10.0.1.5], nodeName: node-0}]")];
    let out = run(
        &[service("web", "192.0.2.10", "Local")],
        &slices,
        &nodes(),
        &[pool("")],
    );
    assert_eq!(candidates(&out[0]), ["node-0"]);
}

#[test]
fn not_ready_cordoned_and_excluded_nodes_do_not_announce() {
    let mut list = nodes();
    list.push(yaml(
        "metadata: {name: node-3}\nstatus: {conditions: [{type: Ready, status: 'False'}]}",
    ));
    list[0] = node("node-0", "spec: {unschedulable: true}");
    list[1] = yaml(&format!(
        "metadata: {{name: node-1, labels: {{{EXCLUDE_LABEL}: ''}}}}\nstatus: {{conditions: [{{type: Ready, status: 'True'}}]}}"
    ));
    let out = run(
        &[service("web", "192.0.2.10", "Cluster")],
        &[],
        &list,
        &[pool("")],
    );
    assert_eq!(candidates(&out[0]), ["node-2"]);
}

#[test]
fn the_pools_node_selectors_and_interfaces_apply() {
    let mut list = nodes();
    list[2] = yaml("metadata: {name: node-2, labels: {zone: b}}\nstatus: {conditions: [{type: Ready, status: 'True'}]}");
    let p = pool(
        "  l2Advertisement:\n    nodeSelectors: [{matchLabels: {zone: b}}]\n    interfaces: [eth1]",
    );
    let out = run(&[service("web", "192.0.2.10", "Cluster")], &[], &list, &[p]);
    assert_eq!(candidates(&out[0]), ["node-2"]);
    assert_eq!(out[0].interfaces, ["eth1"]);
}

#[test]
fn an_unreadable_node_selector_announces_from_no_node() {
    let p = pool("  l2Advertisement:\n    nodeSelectors: [{matchExpressions: [{key: zone, operator: Near}]}]");
    let out = run(
        &[service("web", "192.0.2.10", "Cluster")],
        &[],
        &nodes(),
        &[p],
    );
    assert!(out[0].demand.candidates.is_empty());
}

#[test]
fn disabled_pools_foreign_addresses_and_other_classes_are_not_announced() {
    let disabled = pool("  l2Advertisement: {enabled: false}");
    assert!(run(
        &[service("web", "192.0.2.10", "Cluster")],
        &[],
        &nodes(),
        &[disabled]
    )
    .is_empty());
    assert!(run(
        &[service("web", "198.51.100.7", "Cluster")],
        &[],
        &nodes(),
        &[pool("")]
    )
    .is_empty());
    let mut other = service("web", "192.0.2.10", "Cluster");
    other.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    assert!(run(&[other], &[], &nodes(), &[pool("")]).is_empty());
}

#[test]
fn a_shared_address_is_announced_only_where_every_service_allows() {
    let slices = [slice("web", "[{addresses: [10.0.1.5], nodeName: node-1}]")];
    let out = run(
        &[
            service("web", "192.0.2.10", "Local"),
            service("api", "192.0.2.10", "Cluster"),
        ],
        &slices,
        &nodes(),
        &[pool("")],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(candidates(&out[0]), ["node-1"]);
    assert_eq!(out[0].services.len(), 2);
}

#[test]
fn the_current_announcing_node_annotation_is_read_per_family() {
    let mut svc = service("web", "192.0.2.10", "Cluster");
    svc.metadata.uid = Some("u-1".into());
    svc.metadata.annotations = Some(
        [
            (
                "gatehouse.dev/announcing-node-ipv4".to_owned(),
                "node-2".to_owned(),
            ),
            (
                "gatehouse.dev/announcing-node-ipv6".to_owned(),
                "node-0".to_owned(),
            ),
        ]
        .into(),
    );
    let out = run(&[svc], &[], &nodes(), &[pool("")]);
    assert_eq!(
        out[0].services[0].announcing_node.as_deref(),
        Some("node-2")
    );
    assert_eq!(out[0].services[0].uid.as_deref(), Some("u-1"));
}

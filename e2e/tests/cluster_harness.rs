//! The simulated cluster: three nodes and a client on a LAN, echo pods, and
//! kube-proxy-style DNAT rules. Needs root, iproute2 and nftables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::{
    echo_get, sweep_leftovers, Cluster, ClusterConfig, ClusterError, Endpoint, Netns, Pod, Service,
    ServicePort, TrafficPolicy,
};
use gatehouse_e2e::local::binary;
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const SERVICE_PORT: u16 = 80;
const POD_PORT: u16 = 8080;

fn three_node_cluster() -> Cluster {
    Cluster::new(ClusterConfig {
        nodes: 3,
        echo_binary: binary("gatehouse-echo").unwrap(),
    })
    // Display, not Debug: "needs root", "needs `nft`" must read clearly.
    .unwrap_or_else(|e| panic!("{e}"))
}

fn service(
    cluster: &Cluster,
    name: &str,
    index: u8,
    pods: &[&Pod],
    policy: TrafficPolicy,
) -> Service {
    Service {
        name: name.into(),
        cluster_ip: cluster.addresses().cluster_ip(index).unwrap(),
        load_balancer_ip: cluster.addresses().load_balancer_ip(index),
        ports: vec![ServicePort {
            port: SERVICE_PORT,
            target_port: POD_PORT,
        }],
        endpoints: pods.iter().map(|p| Endpoint::of(p)).collect(),
        external_traffic_policy: policy,
    }
}

fn vip(ip: std::net::Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, SERVICE_PORT))
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Pids of every process in the cluster's namespaces.
fn processes_of(cluster: &Cluster) -> Vec<u32> {
    let mut pids = Vec::new();
    for name in cluster.netns_names() {
        let out = Command::new("ip")
            .args(["netns", "pids", &name])
            .output()
            .unwrap();
        pids.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .split_whitespace()
                .map(|p| p.parse::<u32>().unwrap()),
        );
    }
    pids
}

fn assert_gone(names: &[String], pids: &[u32]) {
    let listed = netns_list();
    for name in names {
        let left = listed
            .lines()
            .any(|line| line.split_whitespace().next() == Some(name));
        assert!(!left, "namespace {name} left behind:\n{listed}");
    }
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left behind"
        );
    }
}

#[tokio::test]
async fn client_reaches_pods_through_a_nodes_dnat_rules() {
    let cluster = three_node_cluster();
    let web0 = cluster.add_echo_pod("web-0", 0, "web", POD_PORT).unwrap();
    let web1 = cluster.add_echo_pod("web-1", 1, "web", POD_PORT).unwrap();
    let web = service(&cluster, "web", 0, &[&web0, &web1], TrafficPolicy::Cluster);
    cluster.expose_service(web.clone()).unwrap();

    // ClusterIP from node 2, which has no pod of its own: random balancing
    // reaches both pods, each reporting its own node.
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let reply = echo_get(cluster.node(2).netns(), vip(web.cluster_ip))
            .await
            .unwrap();
        assert_eq!(reply.service, "web");
        let pod = cluster.pod(&reply.pod).unwrap();
        assert_eq!(reply.node, cluster.node(pod.node).name);
        seen.insert(reply.pod);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["web-0".to_owned(), "web-1".to_owned()])
    );

    // LoadBalancer IP from the client, routed to node 2 (standing in for a
    // speaker). The pod sees node 2: traffic to another node is masqueraded
    // so that replies come back through node 2.
    let lb_ip = web.load_balancer_ip.unwrap();
    cluster.route_from_client(lb_ip, 2).unwrap();
    let reply = echo_get(cluster.client(), vip(lb_ip)).await.unwrap();
    assert!(
        ["web-0", "web-1"].contains(&reply.pod.as_str()),
        "{reply:?}"
    );
    let client_ip: SocketAddr = reply.client.parse().unwrap();
    assert_eq!(client_ip.ip(), IpAddr::from(cluster.node(2).lan_ipv4));

    // Updating the Service's endpoints rewrites the rules on every node.
    cluster
        .expose_service(service(
            &cluster,
            "web",
            0,
            &[&web1],
            TrafficPolicy::Cluster,
        ))
        .unwrap();
    for _ in 0..5 {
        let reply = echo_get(cluster.client(), vip(lb_ip)).await.unwrap();
        assert_eq!(
            (reply.pod.as_str(), reply.node.as_str()),
            ("web-1", "node-1")
        );
    }

    // A pod reaching itself through its Service (hairpin).
    cluster
        .expose_service(service(
            &cluster,
            "web",
            0,
            &[&web0],
            TrafficPolicy::Cluster,
        ))
        .unwrap();
    let reply = echo_get(&web0.netns, vip(web.cluster_ip)).await.unwrap();
    assert_eq!(reply.pod, "web-0");

    // Without endpoints, the VIPs refuse connections at once.
    cluster
        .expose_service(service(&cluster, "web", 0, &[], TrafficPolicy::Cluster))
        .unwrap();
    assert_refused(echo_get(cluster.client(), vip(lb_ip)).await);

    // Removing the Service removes its rules from every node.
    cluster.remove_service("web").unwrap();
    for node in cluster.nodes() {
        let rules = nft_ruleset(node.netns());
        assert!(rules.contains("chain services"), "{rules}");
        assert!(!rules.contains(&web.cluster_ip.to_string()), "{rules}");
    }
}

/// Refused by a TCP reset, not timed out or unreachable.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, ClusterError>) {
    match result {
        Err(ClusterError::Io { source, .. }) if source.kind() == ErrorKind::ConnectionRefused => {}
        other => panic!("expected a refused connection, got {other:?}"),
    }
}

fn nft_ruleset(netns: &Netns) -> String {
    let out = netns
        .command("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn local_traffic_policy_keeps_external_traffic_on_the_node_and_the_client_address() {
    let cluster = three_node_cluster();
    let web0 = cluster.add_echo_pod("web-0", 0, "web", POD_PORT).unwrap();
    let web1 = cluster.add_echo_pod("web-1", 1, "web", POD_PORT).unwrap();
    let web = service(&cluster, "web", 3, &[&web0, &web1], TrafficPolicy::Local);
    cluster.expose_service(web.clone()).unwrap();
    let lb_ip = web.load_balancer_ip.unwrap();

    cluster.route_from_client(lb_ip, 1).unwrap();
    for _ in 0..5 {
        let reply = echo_get(cluster.client(), vip(lb_ip)).await.unwrap();
        assert_eq!(
            (reply.pod.as_str(), reply.node.as_str()),
            ("web-1", "node-1")
        );
        let seen: SocketAddr = reply.client.parse().unwrap();
        assert_eq!(seen.ip(), IpAddr::from(cluster.addresses().client_v4()));
    }

    // Node 2 has no local endpoint: it refuses instead of forwarding.
    cluster.route_from_client(lb_ip, 2).unwrap();
    assert_refused(echo_get(cluster.client(), vip(lb_ip)).await);
}

#[tokio::test]
async fn lan_members_reach_each_other_by_arp_and_ndp() {
    let cluster = three_node_cluster();
    let node = cluster.node(1);
    let mut addrs = vec![SocketAddr::from((node.lan_ipv4, 9000))];
    if let Some(v6) = node.lan_ipv6 {
        addrs.push(SocketAddr::from((v6, 9000)));
    }
    let mut args = vec!["--node".to_owned(), node.name.clone()];
    for addr in &addrs {
        args.extend(["--listen".to_owned(), addr.to_string()]);
    }
    let echo = node
        .netns()
        .spawn("echo on node-1", binary("gatehouse-echo").unwrap(), &args)
        .unwrap();
    for _ in &addrs {
        echo.wait_for_line(
            |l| l.starts_with("listening on"),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    }
    for addr in &addrs {
        let reply = echo_get(cluster.client(), *addr).await.unwrap();
        let seen: SocketAddr = reply.client.parse().unwrap();
        let client_ip: IpAddr = match addr {
            SocketAddr::V4(_) => cluster.addresses().client_v4().into(),
            SocketAddr::V6(_) => cluster.addresses().client_v6().into(),
        };
        assert_eq!(seen.ip(), client_ip);
        // The client learnt node 1's MAC address from the LAN itself.
        let neighbours = cluster
            .client()
            .ip(&["neigh", "show", &addr.ip().to_string()])
            .unwrap();
        assert!(neighbours.contains("lladdr"), "{neighbours}");
    }

    // A node cut off from the LAN is unreachable until plugged back in.
    cluster.set_node_connected(1, false).unwrap();
    let cut_off = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        echo_get(cluster.client(), addrs[0]),
    )
    .await;
    assert!(!matches!(cut_off, Ok(Ok(_))), "{cut_off:?}");
    cluster.set_node_connected(1, true).unwrap();
    let reply = echo_get(cluster.client(), addrs[0]).await.unwrap();
    assert_eq!(reply.node, "node-1");
}

#[tokio::test]
async fn dropping_the_cluster_removes_its_namespaces_and_processes() {
    let cluster = three_node_cluster();
    let web0 = cluster.add_echo_pod("web-0", 0, "web", POD_PORT).unwrap();
    // A process the test started itself, and still holds when the cluster
    // goes.
    let mut sleeper = cluster
        .node(2)
        .netns()
        .spawn("sleeper", "sleep", ["600"])
        .unwrap();
    let names = cluster.netns_names();
    let pids = processes_of(&cluster);
    assert_eq!(names.len(), 6, "lan, client, 3 nodes, 1 pod: {names:?}");
    assert!(pids.contains(&sleeper.pid()), "{pids:?}");
    assert!(netns_list().contains(web0.netns.name()));

    drop(cluster);
    assert!(!sleeper.is_running(), "killed with its namespace");
    assert_gone(&names, &pids);
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let created: Arc<Mutex<(Vec<String>, Vec<u32>)>> = Arc::default();
    let record = created.clone();
    let outcome = std::thread::spawn(move || {
        let cluster = three_node_cluster();
        cluster.add_echo_pod("web-0", 1, "web", POD_PORT).unwrap();
        *record.lock().unwrap() = (cluster.netns_names(), processes_of(&cluster));
        panic!("the test body fails with the cluster in scope");
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let (names, pids) = created.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(names.len(), 6);
    assert!(!pids.is_empty());
    assert_gone(&names, &pids);
}

#[test]
fn leftovers_of_dead_processes_are_swept() {
    // A pid that is certainly dead: a child we have reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let name = format!("gatehouse-{dead_pid}-0-lan");
    let status = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(status.success());
    let leftover = Netns::named(&name);
    let mut orphan = leftover.command("sleep");
    orphan.arg("600");
    let mut orphan = orphan.spawn().unwrap();
    // `ip netns exec` enters the namespace after spawn() returns; a sweep
    // before that would find no process to kill (and this test would wait
    // out the sleep).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !leftover.pids().unwrap().contains(&orphan.id()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan never entered {name}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let swept = sweep_leftovers();
    assert!(swept.contains(&name), "{swept:?}");
    assert!(!netns_list().contains(&name));
    // The process inside was killed.
    let status = orphan.wait().unwrap();
    assert!(!status.success());
}

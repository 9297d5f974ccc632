//! The LAN tools the L2 speaker's tests use, proven with real packets on a
//! simulated cluster: the capture on the bridge, arping and gratuitous ARP,
//! the client's neighbour table, and the prober. Node kernels stand in for
//! the speaker: an address added to a node's `eth0` makes its kernel answer
//! ARP for it. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::{
    echo_get, AnnouncementKind, ArpOp, Cluster, ClusterConfig, Endpoint, LanCapture, LanFrame,
    Prober, Service, ServicePort, TrafficPolicy,
};
use gatehouse_e2e::local::binary;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Generous: frames cross veths and a bridge on one host.
const SEEN_WITHIN: Duration = Duration::from_secs(3);
/// How long arping listens for replies.
const ARPING_LISTEN: Duration = Duration::from_millis(300);

fn three_node_cluster() -> Cluster {
    Cluster::new(ClusterConfig {
        nodes: 3,
        echo_binary: binary("gatehouse-echo").unwrap(),
    })
    .unwrap()
}

/// Gives node `node` the address, so that its kernel answers ARP for it.
fn add_address(cluster: &Cluster, node: usize, ip: Ipv4Addr) {
    cluster
        .node(node)
        .netns()
        .ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"])
        .unwrap();
}

fn remove_address(cluster: &Cluster, node: usize, ip: Ipv4Addr) {
    cluster
        .node(node)
        .netns()
        .ip(&["addr", "del", &format!("{ip}/32"), "dev", "eth0"])
        .unwrap();
}

#[test]
fn the_capture_sees_the_arp_reply_of_the_node_that_holds_the_ip() {
    let cluster = three_node_cluster();
    let capture = LanCapture::start(&cluster).unwrap();
    let lb_ip = cluster.addresses().load_balancer_ip(0).unwrap();
    let node1 = cluster.node_mac(1).unwrap();
    let client = cluster.client_mac().unwrap();
    let macs: BTreeSet<_> = (0..3).map(|n| cluster.node_mac(n).unwrap()).collect();
    assert_eq!(macs.len(), 3, "nodes share a MAC: {macs:?}");
    assert!(!macs.contains(&client));

    // Nobody has the IP yet: nobody answers.
    assert!(cluster.arping(lb_ip, ARPING_LISTEN).unwrap().is_empty());

    add_address(&cluster, 1, lb_ip);
    let mark = capture.mark();
    assert_eq!(
        cluster.arping(lb_ip, ARPING_LISTEN).unwrap(),
        BTreeSet::from([node1])
    );
    let seen = capture
        .wait_until(mark, "the request and node-1's reply", SEEN_WITHIN, |c| {
            !c.announcements(lb_ip).is_empty()
        })
        .unwrap();
    let request = seen.frames().iter().find_map(|s| match s.frame {
        LanFrame::Arp(arp) if arp.op == ArpOp::Request && arp.target_ip == lb_ip => Some(arp),
        _ => None,
    });
    let request = request.unwrap_or_else(|| panic!("no request in\n{}", seen.describe()));
    assert_eq!((request.eth_src, request.sender_mac), (client, client));
    assert_eq!(request.sender_ip, cluster.addresses().client_v4());

    let announcements = seen.announcements(lb_ip);
    assert!(
        announcements
            .iter()
            .all(|a| a.mac == node1 && a.eth_src == node1 && a.kind == AnnouncementKind::ArpReply),
        "{}",
        seen.describe()
    );
    assert_eq!(capture.announcers(lb_ip), BTreeSet::from([node1]));
    assert_eq!(capture.overlap(lb_ip), None);
    // The client's own request is a question, not a claim of its address.
    assert!(capture
        .announcers(cluster.addresses().client_v4())
        .is_empty());

    // The client's kernel resolves the IP to node-1 when it sends to it.
    cluster.flush_client_neighbors().unwrap();
    assert_eq!(cluster.client_neighbor(lb_ip).unwrap(), None);
    cluster
        .client()
        .run_inside(|| {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            socket.send_to(b"who", (lb_ip, 9)).unwrap();
        })
        .unwrap();
    let deadline = Instant::now() + SEEN_WITHIN;
    let entry = loop {
        let entry = cluster.client_neighbor(lb_ip).unwrap();
        if entry.as_ref().and_then(|e| e.mac).is_some() || Instant::now() > deadline {
            break entry;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let entry = entry.expect("no neighbour entry after sending to the IP");
    assert_eq!(entry.mac, Some(node1), "{entry:?}");
    assert!(!entry.states.is_empty(), "{entry:?}");

    cluster.flush_client_neighbors().unwrap();
    let flushed = cluster.client_neighbor(lb_ip).unwrap();
    assert_eq!(flushed.and_then(|e| e.mac), None);
}

#[test]
fn the_overlap_detector_fires_only_when_the_old_node_speaks_after_the_takeover() {
    let cluster = three_node_cluster();
    let capture = LanCapture::start(&cluster).unwrap();
    let lb_ip = cluster.addresses().load_balancer_ip(0).unwrap();
    let (node1, node2) = (cluster.node_mac(1).unwrap(), cluster.node_mac(2).unwrap());

    add_address(&cluster, 1, lb_ip);
    let start = capture.mark();
    assert_eq!(
        cluster.arping(lb_ip, ARPING_LISTEN).unwrap(),
        BTreeSet::from([node1])
    );
    capture
        .wait_for_announcement(start, lb_ip, node1, SEEN_WITHIN)
        .unwrap();

    // A clean failover: node-1 lets go first, then node-2 announces.
    let takeover = capture.mark();
    remove_address(&cluster, 1, lb_ip);
    add_address(&cluster, 2, lb_ip);
    assert_eq!(cluster.send_gratuitous_arp(2, lb_ip).unwrap(), node2);
    let garp = capture
        .wait_until(takeover, "node-2's gratuitous ARP", SEEN_WITHIN, |c| {
            c.announcements(lb_ip)
                .iter()
                .any(|a| a.mac == node2 && a.kind == AnnouncementKind::GratuitousArpRequest)
        })
        .unwrap();
    assert!(
        garp.announcements(lb_ip).iter().all(|a| a.eth_src == a.mac),
        "{}",
        garp.describe()
    );
    assert_eq!(
        cluster.arping(lb_ip, ARPING_LISTEN).unwrap(),
        BTreeSet::from([node2])
    );
    let after_failover = capture
        .wait_until(takeover, "node-2's reply", SEEN_WITHIN, |c| {
            c.announcements(lb_ip)
                .iter()
                .any(|a| a.kind == AnnouncementKind::ArpReply)
        })
        .unwrap();
    assert_eq!(after_failover.announcers(lb_ip), BTreeSet::from([node2]));
    let node2_first = after_failover.announcements(lb_ip)[0].at;
    let whole = capture.snapshot();
    assert_eq!(whole.announcers(lb_ip), BTreeSet::from([node1, node2]));
    assert_eq!(whole.overlap(lb_ip), None, "{}", whole.describe());

    // node-1 speaks again while node-2 holds the IP: two announcers.
    let again = capture.mark();
    assert_eq!(cluster.send_gratuitous_arp(1, lb_ip).unwrap(), node1);
    let late = capture
        .wait_for_announcement(again, lb_ip, node1, SEEN_WITHIN)
        .unwrap();
    let overlap = capture.overlap(lb_ip).unwrap_or_else(|| {
        panic!("no overlap found in\n{}", capture.snapshot().describe());
    });
    assert_eq!((overlap.older, overlap.newer), (node1, node2));
    assert_eq!(overlap.newer_first_at, node2_first);
    assert_eq!(overlap.older_again_at, late.at);
    assert!(overlap.older_again_at > overlap.newer_first_at);

    // Looking at one failover at a time: since `again`, node-1 alone spoke.
    let window = capture.since(again);
    assert_eq!(window.announcers(lb_ip), BTreeSet::from([node1]));
    assert_eq!(window.overlap(lb_ip), None);

    capture.clear();
    assert!(capture.announcers(lb_ip).is_empty());
    assert_eq!(capture.overlap(lb_ip), None);
}

#[test]
fn the_capture_sees_an_unsolicited_neighbor_advertisement() {
    let cluster = three_node_cluster();
    if !cluster.has_ipv6() {
        println!("skipped: this kernel has IPv6 disabled");
        return;
    }
    let capture = LanCapture::start(&cluster).unwrap();
    let target = cluster.node(2).lan_ipv6.unwrap();
    let mark = capture.mark();
    let node2 =
        gatehouse_e2e::cluster::send_unsolicited_na(cluster.node(2).netns(), "eth0", target)
            .unwrap();
    assert_eq!(node2, cluster.node_mac(2).unwrap());
    let seen = capture
        .wait_for_announcement(mark, target, node2, SEEN_WITHIN)
        .unwrap();
    assert_eq!(
        seen.kind,
        AnnouncementKind::NeighborAdvertisement { solicited: false }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prober_measures_an_outage_of_the_load_balancer_ip() {
    const POD_PORT: u16 = 8080;
    const SERVICE_PORT: u16 = 80;
    let cluster = three_node_cluster();
    let pod = cluster.add_echo_pod("web-0", 0, "web", POD_PORT).unwrap();
    let lb_ip = cluster.addresses().load_balancer_ip(1).unwrap();
    cluster
        .expose_service(Service {
            name: "web".into(),
            cluster_ip: cluster.addresses().cluster_ip(1).unwrap(),
            load_balancer_ip: Some(lb_ip),
            ports: vec![ServicePort {
                port: SERVICE_PORT,
                target_port: POD_PORT,
            }],
            endpoints: vec![Endpoint::of(&pod)],
            external_traffic_policy: TrafficPolicy::Cluster,
        })
        .unwrap();
    // The LAN reaches the IP through node 1, as if node 1 answered ARP.
    cluster.route_from_client(lb_ip, 1).unwrap();
    let addr = SocketAddr::from((lb_ip, SERVICE_PORT));
    echo_get(cluster.client(), addr).await.unwrap();

    let prober = Prober::start(&cluster, addr, "web.test").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let removed_at = Instant::now();
    cluster
        .client()
        .ip(&["route", "del", &format!("{lb_ip}/32")])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.route_from_client(lb_ip, 1).unwrap();
    let restored_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = prober.stop().await.unwrap();

    let successes: Vec<_> = log.successes().collect();
    assert!(
        successes.iter().any(|(r, _)| r.sent_at < removed_at),
        "no success before the outage"
    );
    assert!(
        successes.iter().any(|(r, _)| r.sent_at > restored_at),
        "no success after the outage"
    );
    for (_, success) in &successes {
        assert_eq!(success.status, 200, "{success:?}");
        let by = success.answered_by.as_ref().expect("not an echo reply");
        assert_eq!((by.pod.as_str(), by.node.as_str()), ("web-0", "node-0"));
    }
    assert!(log.failures().count() >= 5, "{:?}", log.gaps());

    let outage = log
        .outages()
        .into_iter()
        .find(|o| o.covers(removed_at + Duration::from_millis(150)))
        .unwrap_or_else(|| panic!("no outage around the removal; gaps {:?}", log.gaps()));
    assert!(outage.is_bounded(), "{outage:?}");
    let gap = outage.gap();
    println!(
        "outage of {gap:?} over {} failed probes; all gaps {:?}",
        outage.failures,
        log.gaps()
    );
    assert!(gap >= Duration::from_millis(250), "gap {gap:?}");
    assert!(gap < Duration::from_secs(2), "gap {gap:?}");
    let longest = log.longest_gap();
    assert!(longest >= Duration::from_millis(250), "{:?}", log.gaps());
    assert!(longest < Duration::from_secs(2), "{:?}", log.gaps());
}

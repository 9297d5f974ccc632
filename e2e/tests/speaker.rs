//! The L2 speaker on the simulated cluster: three nodes on a LAN bridge,
//! a client beside them, echo pods, and `gatehouse-controller speaker` on
//! every node, reaching the API emulator through a relay on the node's
//! loopback. What the client sees is real ARP between namespaces: no
//! static route stands in for the speaker here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::{
    relay, Cluster, ClusterConfig, Endpoint, LanCapture, NsProcess, Prober, Relay,
    Service as ProxyService, ServicePort, TrafficPolicy,
};
use gatehouse_e2e::emulator::TestApi;
use gatehouse_e2e::kube_mode::{
    apply_yaml, wait_for, ControllerProc, GatewayAddrs, GatewayProc, StreamCerts,
};
use gatehouse_e2e::local::binary;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const API_PORT: u16 = 16443;
const HEARTBEAT_PORT: u16 = 7947;
const ECHO_PORT: u16 = 8080;
/// How long an ARP probe collects replies.
const ARP_WAIT: Duration = Duration::from_millis(300);

struct Rig {
    api: TestApi,
    cluster: Cluster,
    _relays: Vec<Relay>,
    kubeconfig: tempfile::NamedTempFile,
    speakers: Vec<Option<NsProcess>>,
}

impl Rig {
    /// A cluster of `nodes` with Node objects, an IPPool over the
    /// harness's load-balancer range and a speaker on every node; `None`
    /// when the tests run against a real cluster (the simulated nodes reach
    /// only the emulator).
    async fn start(nodes: usize) -> Option<Rig> {
        let api = TestApi::start().await.unwrap();
        let emulator = api.emulator()?;
        let cluster = Cluster::new(ClusterConfig {
            nodes,
            echo_binary: binary("gatehouse-echo").unwrap(),
        })
        .unwrap();
        let relay_addr = SocketAddr::from(([127, 0, 0, 1], API_PORT));
        let relays = cluster
            .nodes()
            .iter()
            .map(|n| relay(n.netns(), relay_addr, emulator.addr()).unwrap())
            .collect();
        let kubeconfig = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            kubeconfig.path(),
            emulator
                .kubeconfig_yaml()
                .replace(&emulator.url(), &format!("http://{relay_addr}")),
        )
        .unwrap();
        let crd = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../charts/gatehouse/crds/ippools.gatehouse.dev.yaml"),
        )
        .unwrap();
        let client = api.client();
        apply_yaml(&client, &crd).await.unwrap();
        let (first, last) = cluster.addresses().load_balancer_range();
        wait_for("the IPPool CRD", Duration::from_secs(10), || async {
            apply_yaml(
                &client,
                &format!("apiVersion: gatehouse.dev/v1alpha1\nkind: IPPool\nmetadata: {{name: lan}}\nspec: {{addresses: ['{first}-{last}']}}\n"),
            )
            .await
            .ok()
        })
        .await
        .unwrap();
        let mut rig = Rig {
            api,
            cluster,
            _relays: relays,
            kubeconfig,
            speakers: Vec::new(),
        };
        for index in 0..nodes {
            rig.set_node(index, true).await;
        }
        for index in 0..nodes {
            let speaker = rig.spawn_speaker(index);
            rig.speakers.push(Some(speaker));
        }
        Some(rig)
    }

    fn client(&self) -> kube::Client {
        self.api.client()
    }

    /// Writes Node `node-<index>` with its LAN address, Ready or not.
    async fn set_node(&self, index: usize, ready: bool) {
        let node = self.cluster.node(index);
        let client = self.client();
        apply_yaml(
            &client,
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {}}}\n",
                node.name
            ),
        )
        .await
        .unwrap();
        let status = serde_json::json!({"status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "addresses": [{"type": "InternalIP", "address": node.lan_ipv4.to_string()}],
        }});
        Api::<Node>::all(client)
            .patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    fn spawn_speaker(&self, index: usize) -> NsProcess {
        let node = self.cluster.node(index);
        let mut command = node
            .netns()
            .command(binary("gatehouse-controller").unwrap());
        command
            .arg("speaker")
            .args(["--node-name", &node.name])
            .arg("--kubeconfig")
            .arg(self.kubeconfig.path())
            .args(["--heartbeat-addr", &format!("0.0.0.0:{HEARTBEAT_PORT}")])
            .args(["--admin-addr", "127.0.0.1:9903"])
            .env("GATEHOUSE_LOG", "info,gatehouse_controller=debug");
        let process = NsProcess::spawn(&format!("speaker on {}", node.name), command).unwrap();
        process
            .wait_for_line(|l| l.contains("speaker started"), Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}\n{}", process.output()));
        process
    }

    fn kill_speaker(&mut self, index: usize) {
        if let Some(mut speaker) = self.speakers[index].take() {
            speaker.kill();
        }
    }

    fn restart_speaker(&mut self, index: usize) {
        self.kill_speaker(index);
        self.speakers[index] = Some(self.spawn_speaker(index));
    }

    fn logs(&self) -> String {
        self.speakers
            .iter()
            .flatten()
            .map(|s| format!("--- {}\n{}", s.label(), s.output()))
            .collect()
    }

    /// A LoadBalancer Service `name` with address `ip`, its endpoints in
    /// an EndpointSlice and in every node's kube-proxy rules.
    async fn service(
        &self,
        name: &str,
        ip: Ipv4Addr,
        policy: TrafficPolicy,
        endpoints: &[(Ipv4Addr, usize, bool)],
    ) {
        self.service_on(name, ip, policy, ECHO_PORT, endpoints)
            .await;
    }

    /// [`Rig::service`] with endpoints listening on `target_port`.
    async fn service_on(
        &self,
        name: &str,
        ip: Ipv4Addr,
        policy: TrafficPolicy,
        target_port: u16,
        endpoints: &[(Ipv4Addr, usize, bool)],
    ) {
        let policy_name = match policy {
            TrafficPolicy::Local => "Local",
            TrafficPolicy::Cluster => "Cluster",
        };
        let index = 10 + name.len() as u8;
        let cluster_ip = self.cluster.addresses().cluster_ip(index).unwrap();
        let slice_endpoints: String = endpoints
            .iter()
            .map(|(ip, node, ready)| {
                format!("- {{addresses: ['{ip}'], nodeName: node-{node}, conditions: {{ready: {ready}}}}}\n")
            })
            .collect();
        let client = self.client();
        apply_yaml(
            &client,
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: {policy_name}\n  clusterIP: {cluster_ip}\n  ports: [{{port: 80, targetPort: {target_port}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-a\n  namespace: default\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{port: {target_port}}}]\nendpoints:\n{slice_endpoints}"
            ),
        )
        .await
        .unwrap();
        let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
        Api::<Service>::namespaced(client, "default")
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        self.cluster
            .expose_service(ProxyService {
                name: name.to_owned(),
                cluster_ip,
                load_balancer_ip: Some(ip),
                ports: vec![ServicePort {
                    port: 80,
                    target_port,
                }],
                endpoints: endpoints
                    .iter()
                    .filter(|(_, _, ready)| *ready)
                    .map(|(ip, node, _)| Endpoint {
                        ip: *ip,
                        node: *node,
                    })
                    .collect(),
                external_traffic_policy: policy,
            })
            .unwrap();
    }

    /// The node indexes whose MACs answer an ARP request for `ip` from the
    /// client.
    async fn answering_nodes(&self, ip: Ipv4Addr) -> BTreeSet<usize> {
        // arping blocks while it listens; the prober's tasks keep running
        // on the other workers.
        let macs = tokio::task::block_in_place(|| self.cluster.arping(ip, ARP_WAIT)).unwrap();
        macs.iter()
            .map(|mac| {
                (0..self.cluster.nodes().len())
                    .find(|i| self.cluster.node_mac(*i).unwrap() == *mac)
                    .unwrap_or_else(|| panic!("{mac} answered for {ip}, and it is no node's"))
            })
            .collect()
    }

    /// Waits until exactly `node` answers for `ip`.
    async fn wait_answered_by(&self, ip: Ipv4Addr, node: usize) {
        let want: BTreeSet<usize> = [node].into();
        let mut last = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            last = self.answering_nodes(ip).await;
            if last == want {
                return;
            }
        }
        panic!(
            "{ip}: answered by {last:?}, not by node {node} alone\n{}",
            self.logs()
        );
    }

    async fn annotation(&self, service: &str) -> Option<String> {
        let svc = Api::<Service>::namespaced(self.client(), "default")
            .get(service)
            .await
            .ok()?;
        svc.metadata
            .annotations?
            .get("gatehouse.dev/announcing-node-ipv4")
            .cloned()
    }

    async fn echo_from_client(&self, ip: Ipv4Addr) -> Option<gatehouse_e2e::echo::EchoReply> {
        gatehouse_e2e::cluster::echo_get(self.cluster.client(), SocketAddr::from((ip, 80)))
            .await
            .ok()
    }
}

fn lb_ip(rig: &Rig, index: u8) -> Ipv4Addr {
    rig.cluster.addresses().load_balancer_ip(index).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_service_is_answered_by_exactly_one_node_and_reachable() {
    let Some(rig) = Rig::start(3).await else {
        println!("skipped: needs the emulator");
        return;
    };
    let web0 = rig
        .cluster
        .add_echo_pod("web-0", 0, "web", ECHO_PORT)
        .unwrap();
    let web2 = rig
        .cluster
        .add_echo_pod("web-2", 2, "web", ECHO_PORT)
        .unwrap();
    let ip = lb_ip(&rig, 0);
    rig.service(
        "web",
        ip,
        TrafficPolicy::Cluster,
        &[(web0.ip, 0, true), (web2.ip, 2, true)],
    )
    .await;
    let capture = LanCapture::start(&rig.cluster).unwrap();

    let reply = wait_for(
        "the client reaches the address",
        Duration::from_secs(15),
        || rig.echo_from_client(ip),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.logs()));
    assert_eq!(reply.service, "web");
    let answering = rig.answering_nodes(ip).await;
    assert_eq!(
        answering.len(),
        1,
        "ARP replies for {ip} from {answering:?}"
    );
    let owner = *answering.iter().next().unwrap();
    // The Service names the node, and every speaker agrees on it.
    let named = wait_for(
        "the announcing-node annotation",
        Duration::from_secs(10),
        || rig.annotation("web"),
    )
    .await
    .unwrap();
    assert_eq!(named, format!("node-{owner}"));
    let event = wait_for(
        "the AnnouncingFromNode Event",
        Duration::from_secs(10),
        || async {
            gatehouse_e2e::kube_mode::events_about(&rig.client(), "default", "web")
                .await
                .into_iter()
                .find(|e| e.0 == "Normal" && e.1 == "AnnouncingFromNode")
        },
    )
    .await
    .unwrap();
    assert!(
        event.2.starts_with(&format!("node-{owner} announces {ip}")),
        "{event:?}"
    );
    assert_eq!(
        capture.announcers(ip),
        [rig.cluster.node_mac(owner).unwrap()].into()
    );
    assert!(capture.overlap(ip).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_service_is_answered_only_where_its_endpoint_is_and_follows_it() {
    let Some(rig) = Rig::start(3).await else {
        println!("skipped: needs the emulator");
        return;
    };
    let web1 = rig
        .cluster
        .add_echo_pod("web-1", 1, "web", ECHO_PORT)
        .unwrap();
    let ip = lb_ip(&rig, 1);
    rig.service("web", ip, TrafficPolicy::Local, &[(web1.ip, 1, true)])
        .await;
    rig.wait_answered_by(ip, 1).await;
    let reply = wait_for("the client reaches web-1", Duration::from_secs(10), || {
        rig.echo_from_client(ip)
    })
    .await
    .unwrap();
    assert_eq!(reply.pod, "web-1");
    // Local: the pod sees the client's own address.
    let client_ip = rig.cluster.addresses().client_v4().to_string();
    assert!(
        reply.client.starts_with(&format!("{client_ip}:")),
        "the pod saw {}",
        reply.client
    );

    // The endpoint moves to node 2: so does the address, and the client.
    let web2 = rig
        .cluster
        .add_echo_pod("web-2", 2, "web", ECHO_PORT)
        .unwrap();
    rig.service("web", ip, TrafficPolicy::Local, &[(web2.ip, 2, true)])
        .await;
    rig.cluster.remove_pod("web-1").unwrap();
    rig.wait_answered_by(ip, 2).await;
    let reply = wait_for(
        "the client follows to web-2",
        Duration::from_secs(10),
        || async { rig.echo_from_client(ip).await.filter(|r| r.pod == "web-2") },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.logs()));
    assert!(
        reply.client.starts_with(&format!("{client_ip}:")),
        "the pod saw {}",
        reply.client
    );
    assert_eq!(rig.annotation("web").await.as_deref(), Some("node-2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_service_without_ready_endpoints_is_answered_by_no_node() {
    let Some(rig) = Rig::start(3).await else {
        println!("skipped: needs the emulator");
        return;
    };
    let web1 = rig
        .cluster
        .add_echo_pod("web-1", 1, "web", ECHO_PORT)
        .unwrap();
    let ip = lb_ip(&rig, 2);
    rig.service("web", ip, TrafficPolicy::Local, &[(web1.ip, 1, false)])
        .await;
    // Long enough for every speaker to have joined and decided.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..3 {
        let answering = rig.answering_nodes(ip).await;
        assert!(
            answering.is_empty(),
            "answered by {answering:?}\n{}",
            rig.logs()
        );
    }
    // The same Service with its endpoint ready is answered (so the silence
    // above was the rule, not a broken rig).
    rig.service("web", ip, TrafficPolicy::Local, &[(web1.ip, 1, true)])
        .await;
    rig.wait_answered_by(ip, 1).await;
    wait_for(
        "the annotation names node-1",
        Duration::from_secs(10),
        || async { (rig.annotation("web").await.as_deref() == Some("node-1")).then_some(()) },
    )
    .await
    .unwrap();

    // Not ready again: node-1 stops answering, removes the annotation and
    // says why in a Warning.
    rig.service("web", ip, TrafficPolicy::Local, &[(web1.ip, 1, false)])
        .await;
    let warning = wait_for(
        "a NoAnnouncingNode Warning",
        Duration::from_secs(10),
        || async {
            gatehouse_e2e::kube_mode::events_about(&rig.client(), "default", "web")
                .await
                .into_iter()
                .find(|e| e.0 == "Warning" && e.1 == "NoAnnouncingNode")
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.logs()));
    assert!(warning.2.contains(&ip.to_string()), "{warning:?}");
    wait_for(
        "the annotation removed",
        Duration::from_secs(10),
        || async { rig.annotation("web").await.is_none().then_some(()) },
    )
    .await
    .unwrap();
    let answering = rig.answering_nodes(ip).await;
    assert!(answering.is_empty(), "answered by {answering:?}");
}

/// p50 and max of `gaps`.
fn summary(gaps: &[Duration]) -> (Duration, Duration) {
    let mut sorted = gaps.to_vec();
    sorted.sort();
    (sorted[sorted.len() / 2], *sorted.last().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn another_node_takes_over_when_the_speaker_dies_or_the_node_is_cut_off() {
    let Some(mut rig) = Rig::start(3).await else {
        println!("skipped: needs the emulator");
        return;
    };
    let pods: Vec<_> = (0..3)
        .map(|n| {
            rig.cluster
                .add_echo_pod(&format!("web-{n}"), n, "web", ECHO_PORT)
                .unwrap()
        })
        .collect();
    let ip = lb_ip(&rig, 3);
    let endpoints: Vec<_> = pods.iter().map(|p| (p.ip, p.node, true)).collect();
    rig.service("web", ip, TrafficPolicy::Cluster, &endpoints)
        .await;
    wait_for(
        "the client reaches the address",
        Duration::from_secs(15),
        || rig.echo_from_client(ip),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.logs()));

    let target = SocketAddr::from((ip, 80));
    let mut kill_gaps = Vec::new();
    let mut cut_gaps = Vec::new();
    let mut takeovers = Vec::new();
    for round in 0..20 {
        let cut = round % 2 == 1;
        let owners = rig.answering_nodes(ip).await;
        assert_eq!(owners.len(), 1, "round {round}: {owners:?}\n{}", rig.logs());
        let owner = *owners.iter().next().unwrap();
        let capture = LanCapture::start(&rig.cluster).unwrap();
        let prober = Prober::start(&rig.cluster, target, "web").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let failed_at = Instant::now();
        if cut {
            rig.cluster.set_node_connected(owner, false).unwrap();
        } else {
            rig.kill_speaker(owner);
        }
        // Until requests succeed again for a while, answered by another node.
        let new_owner = wait_for("another node answers", Duration::from_secs(10), || async {
            let now = rig.answering_nodes(ip).await;
            (now.len() == 1 && !now.contains(&owner)).then(|| *now.iter().next().unwrap())
        })
        .await
        .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", rig.logs()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let log = prober.stop().await.unwrap();
        assert!(
            log.successes().count() > 0,
            "round {round}: no request succeeded"
        );
        let gap = log.longest_gap();
        // Never two announcers on the bridge at once, even while the cut
        // off node could still (uselessly) answer on its side.
        if let Some(overlap) = capture.overlap(ip) {
            panic!(
                "round {round}: two announcers of {ip}: {overlap:?}\n{}",
                rig.logs()
            );
        }
        // When the new owner's first gratuitous ARP crossed the bridge.
        let new_mac = rig.cluster.node_mac(new_owner).unwrap();
        let took_over = capture
            .announcements(ip)
            .iter()
            .find(|a| a.mac == new_mac && a.at > failed_at)
            .map(|a| a.at - failed_at)
            .unwrap_or_else(|| panic!("round {round}: no announcement by node {new_owner} seen"));
        takeovers.push(took_over);
        println!(
            "round {round}: {} on node {owner}, node {new_owner} announced after {took_over:?}; client gap {gap:?}",
            if cut { "cut off" } else { "speaker killed" }
        );
        if cut {
            cut_gaps.push(gap);
            rig.cluster.set_node_connected(owner, true).unwrap();
        } else {
            kill_gaps.push(gap);
            rig.restart_speaker(owner);
        }
        // Let the restored node rejoin (it may take the address back: its
        // handover must be clean too, checked by the next round's capture).
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (take_p50, take_max) = summary(&takeovers);
    println!("takeover (failure to the new owner's first gratuitous ARP) over {} failovers: p50 {take_p50:?}, max {take_max:?}", takeovers.len());
    let (kill_p50, kill_max) = summary(&kill_gaps);
    let (cut_p50, cut_max) = summary(&cut_gaps);
    println!(
        "failover gaps over {} speaker kills: p50 {kill_p50:?}, max {kill_max:?}",
        kill_gaps.len()
    );
    println!(
        "failover gaps over {} cut-off nodes: p50 {cut_p50:?}, max {cut_max:?}",
        cut_gaps.len()
    );
    // A bound the mechanism must meet whatever the machine's load; the
    // sub-second target is measured, not asserted (README, speaker).
    assert!(kill_max < Duration::from_secs(5) && cut_max < Duration::from_secs(5));
    assert!(take_max < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_behind_a_local_service_sees_the_clients_own_address() {
    let Some(rig) = Rig::start(3).await else {
        println!("skipped: needs the emulator");
        return;
    };
    let node0 = rig.cluster.node(0);
    let node1 = rig.cluster.node(1);

    // The controller on node 0 (its relay is the rig's), the gateway on
    // node 1 with the node's network, as a hostNetwork pod.
    let node0_ip = node0.lan_ipv4.to_string();
    let certs = StreamCerts::new(&["controller.gatehouse.test", &node0_ip]).unwrap();
    let controller = ControllerProc::start(
        "controller",
        node0
            .netns()
            .command(binary("gatehouse-controller").unwrap()),
        rig.kubeconfig.path(),
        &certs,
        "0.0.0.0:7443",
        &["--publish-service", "default/gateway", "--no-load-balancer"],
    )
    .unwrap();
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    let gateway = GatewayProc::start_with(
        "gateway",
        node1.netns().command(binary("gatehouse-gateway").unwrap()),
        &format!("https://{node0_ip}:7443"),
        GatewayAddrs {
            http: any(80),
            https: any(443),
            admin: any(9901),
        },
        &certs.gateway_args("gateway"),
    )
    .unwrap();

    // An echo pod on node 2 behind an Ingress; the gateway's own Service is
    // the LoadBalancer with Local policy, its one endpoint node 1 itself.
    let web = rig
        .cluster
        .add_echo_pod("web-0", 2, "web", ECHO_PORT)
        .unwrap();
    let client = rig.client();
    apply_yaml(
        &client,
        &format!(
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: gatehouse}}\nspec: {{controller: gatehouse.dev/ingress-controller}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: {ECHO_PORT}}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-a\n  namespace: default\n  labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{{name: http, port: {ECHO_PORT}}}]\nendpoints:\n- {{addresses: ['{}'], nodeName: node-2, conditions: {{ready: true}}}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: shop, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: shop.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}\n",
            web.ip
        ),
    )
    .await
    .unwrap();
    let ip = lb_ip(&rig, 4);
    let gateway_svc = "gateway";
    let node1_ip = node1.lan_ipv4;
    rig.service_on(
        gateway_svc,
        ip,
        TrafficPolicy::Local,
        80,
        &[(node1_ip, 1, true)],
    )
    .await;
    rig.wait_answered_by(ip, 1).await;

    let front = SocketAddr::from((ip, 80));
    let reply = wait_for(
        "routed through the gateway",
        Duration::from_secs(20),
        || async {
            let answer =
                gatehouse_e2e::cluster::http_get(rig.cluster.client(), front, "shop.test", "/")
                    .await
                    .ok()?;
            serde_json::from_slice::<gatehouse_e2e::echo::EchoReply>(&answer.body).ok()
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n{}\n{}",
            controller.process.output(),
            gateway.process.output(),
            rig.logs()
        )
    });
    assert_eq!(reply.pod, "web-0");
    let client_ip = rig.cluster.addresses().client_v4().to_string();
    assert_eq!(
        reply.headers.get("x-forwarded-for"),
        Some(&client_ip),
        "{:?}",
        reply.headers
    );
    // And the Ingress is published with the address the speaker announces.
    let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(client, "default");
    wait_for("Ingress status", Duration::from_secs(10), || async {
        let ing = ingresses.get("shop").await.ok()?;
        let got = ing.status?.load_balancer?.ingress?.first()?.ip.clone()?;
        (got == ip.to_string()).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_address_is_answered_with_neighbor_advertisements_from_one_node() {
    let Some(rig) = Rig::start(3).await else {
        println!("skipped: needs the emulator");
        return;
    };
    if !rig.cluster.has_ipv6() {
        println!("skipped: the kernel has IPv6 disabled");
        return;
    }
    // An address of the LAN's IPv6 prefix that no member has.
    let mut segments = rig.cluster.addresses().client_v6().segments();
    segments[7] = 0x0e05;
    let ip = std::net::Ipv6Addr::from(segments);
    let client = rig.client();
    apply_yaml(
        &client,
        &format!(
            "apiVersion: gatehouse.dev/v1alpha1\nkind: IPPool\nmetadata: {{name: lan6}}\nspec: {{addresses: ['{ip}/128']}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web6, namespace: default}}\nspec:\n  type: LoadBalancer\n  ipFamilies: [IPv6]\n  ports: [{{port: 80}}]\n"
        ),
    )
    .await
    .unwrap();
    let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
    Api::<Service>::namespaced(client.clone(), "default")
        .patch_status("web6", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let capture = LanCapture::start(&rig.cluster).unwrap();
    let node_macs: Vec<_> = (0..3).map(|i| rig.cluster.node_mac(i).unwrap()).collect();

    // The client's kernel resolves the address (a datagram to it makes it
    // send a Neighbor Solicitation); the answer comes from one node.
    let resolved = wait_for(
        "the client resolves the address",
        Duration::from_secs(15),
        || async {
            rig.cluster
                .client()
                .run_inside(|| {
                    let socket = std::net::UdpSocket::bind("[::]:0").ok()?;
                    socket.send_to(b"x", SocketAddr::from((ip, 9))).ok()
                })
                .ok()
                .flatten()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            rig.cluster.client_neighbor(ip).ok().flatten()?.mac
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.logs()));
    let owner = node_macs
        .iter()
        .position(|m| *m == resolved)
        .unwrap_or_else(|| panic!("{ip} resolved to {resolved}, no node's MAC"));
    // On the bridge: Neighbor Advertisements for it from that node only
    // (the unsolicited ones on takeover and the answer to the client).
    assert_eq!(
        capture.announcers(ip),
        [node_macs[owner]].into(),
        "{}",
        capture.snapshot().describe()
    );
    assert!(capture.overlap(ip).is_none());
    let named = wait_for(
        "the announcing-node annotation",
        Duration::from_secs(10),
        || async {
            let svc = Api::<Service>::namespaced(client.clone(), "default")
                .get("web6")
                .await
                .ok()?;
            svc.metadata
                .annotations?
                .get("gatehouse.dev/announcing-node-ipv6")
                .cloned()
        },
    )
    .await
    .unwrap();
    assert_eq!(named, format!("node-{owner}"));
}

//! Cluster mode across a real network: nodes are network namespaces on a
//! LAN, the controller runs on node 0 (reaching the API emulator through a
//! relay), a gateway on node 1 follows it over mutual TLS across the LAN,
//! echo pods run behind their nodes, and a client outside the cluster sends
//! the traffic. Objects are applied with kubectl and kube-rs. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::{relay, Cluster, ClusterConfig, Netns, Pod};
use gatehouse_e2e::emulator::TestApi;
use gatehouse_e2e::kube_mode::{
    apply_yaml, wait_for, ControllerProc, GatewayAddrs, GatewayProc, StreamCerts,
};
use gatehouse_e2e::local::binary;
use gatehouse_e2e::tools::kubectl_binary;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const API_PORT: u16 = 6443;
const STREAM_PORT: u16 = 7443;

fn endpoint(pod: &Pod, ready: bool, serving: bool, terminating: bool) -> String {
    format!(
        "- addresses: [\"{}\"]\n  nodeName: node-{}\n  conditions: {{ready: {ready}, serving: {serving}, terminating: {terminating}}}\n  targetRef: {{kind: Pod, name: {}}}\n",
        pod.ip, pod.node, pod.name
    )
}

fn slice(endpoints: &[String]) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-abc\n  namespace: default\n  labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n{}",
        endpoints.concat()
    )
}

/// One keep-alive connection from the client namespace, sending GETs until
/// `stop`; counts answers that are not 200 (and broken connections).
async fn honest_client(
    client: Netns,
    gateway: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = client.connect(gateway).await else {
            failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            let req = http::Request::get("/")
                .header(http::header::HOST, "shop.test")
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
            let ok = match sender.send_request(req).await {
                Ok(resp) => resp.status() == 200 && resp.into_body().collect().await.is_ok(),
                Err(_) => false,
            };
            if !ok {
                failed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_outside_the_cluster_is_routed_to_pods_through_a_gateway_on_a_node() {
    let api = TestApi::start().await.unwrap();
    let Some(emulator) = api.emulator() else {
        println!("skipped: the controller on a simulated node reaches only the emulator");
        return;
    };
    let cluster = Cluster::new(ClusterConfig {
        nodes: 3,
        echo_binary: binary("gatehouse-echo").unwrap(),
    })
    .unwrap();
    let node0 = cluster.node(0);
    let node1 = cluster.node(1);

    // The controller on node 0, its API through a relay on node 0's loopback.
    let relay_addr = SocketAddr::from(([127, 0, 0, 1], API_PORT));
    let _relay = relay(node0.netns(), relay_addr, emulator.addr()).unwrap();
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        kubeconfig.path(),
        emulator
            .kubeconfig_yaml()
            .replace(&emulator.url(), &format!("http://{relay_addr}")),
    )
    .unwrap();
    let node0_ip = node0.lan_ipv4.to_string();
    let certs = StreamCerts::new(&["controller.gatehouse.test", &node0_ip]).unwrap();
    let gateway_ip = node1.lan_ipv4;
    let controller = ControllerProc::start(
        "controller",
        node0
            .netns()
            .command(binary("gatehouse-controller").unwrap()),
        kubeconfig.path(),
        &certs,
        &format!("0.0.0.0:{STREAM_PORT}"),
        &["--publish-address", &gateway_ip.to_string()],
    )
    .unwrap();

    // The gateway on node 1, following the controller across the LAN.
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    let gateway = GatewayProc::start_with(
        "gateway",
        node1.netns().command(binary("gatehouse-gateway").unwrap()),
        &format!("https://{node0_ip}:{STREAM_PORT}"),
        GatewayAddrs {
            http: any(80),
            https: any(443),
            admin: any(9901),
        },
        &certs.gateway_args("gateway"),
    )
    .unwrap();

    // Pods on nodes 0 and 2; the objects through kubectl and kube-rs.
    let web0 = cluster.add_echo_pod("web-0", 0, "web", 8080).unwrap();
    let web1 = cluster.add_echo_pod("web-1", 2, "web", 8080).unwrap();
    let manifests = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        manifests.path(),
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gatehouse}\nspec: {controller: gatehouse.dev/ingress-controller}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop, namespace: default}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: shop.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}\n",
    )
    .unwrap();
    let out = std::process::Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(api.kubeconfig())
        .args(["apply", "--server-side", "-f"])
        .arg(manifests.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = api.client();
    apply_yaml(&client, &slice(&[endpoint(&web0, true, true, false)]))
        .await
        .unwrap();

    let front = SocketAddr::from((gateway_ip, 80));
    let who = |cluster: &Cluster| {
        let from = cluster.client().clone();
        async move {
            let answer = gatehouse_e2e::cluster::http_get(&from, front, "shop.test", "/")
                .await
                .ok()?;
            let reply: gatehouse_e2e::echo::EchoReply =
                serde_json::from_slice(&answer.body).ok()?;
            Some((reply.pod, reply.node, reply.client))
        }
    };
    let (pod, node, seen_client) =
        wait_for("routed from the client", Duration::from_secs(15), || {
            who(&cluster)
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n{}\n{}",
                controller.process.output(),
                gateway.process.output()
            )
        });
    assert_eq!((pod.as_str(), node.as_str()), ("web-0", "node-0"));
    // The pod sees the gateway's node as its client (the gateway proxies).
    assert!(
        seen_client.starts_with(&gateway_ip.to_string()),
        "{seen_client}"
    );

    // The Ingress gets the gateway's address.
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    wait_for("Ingress status", Duration::from_secs(10), || async {
        let ing = ingresses.get("shop").await.ok()?;
        let ip = ing.status?.load_balancer?.ingress?.first()?.ip.clone()?;
        (ip == gateway_ip.to_string()).then_some(())
    })
    .await
    .unwrap();

    // A rolling update under load: web-1 comes up, web-0 terminates
    // (still serving), leaves the slice, then its process stops. Not one
    // request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(honest_client(
                cluster.client().clone(),
                front,
                stop.clone(),
                sent.clone(),
                failed.clone(),
            ))
        })
        .collect();
    let pause = || tokio::time::sleep(Duration::from_millis(400));
    pause().await;
    apply_yaml(
        &client,
        &slice(&[
            endpoint(&web0, true, true, false),
            endpoint(&web1, true, true, false),
        ]),
    )
    .await
    .unwrap();
    pause().await;
    apply_yaml(
        &client,
        &slice(&[
            endpoint(&web0, false, true, true),
            endpoint(&web1, true, true, false),
        ]),
    )
    .await
    .unwrap();
    pause().await;
    apply_yaml(&client, &slice(&[endpoint(&web1, true, true, false)]))
        .await
        .unwrap();
    pause().await;
    cluster.remove_pod("web-0").unwrap();
    pause().await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("rolling update under load: {sent} requests, {failed} failed");
    assert!(sent > 100, "too little load to mean anything: {sent}");
    assert_eq!(failed, 0, "{sent} sent\n{}", gateway.process.output());
    let (pod, _, _) = who(&cluster).await.unwrap();
    assert_eq!(pod, "web-1");
}

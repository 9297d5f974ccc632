//! Cluster mode end to end on loopback: objects written through the
//! Kubernetes API (the emulator, or a real cluster with
//! GATEHOUSE_E2E_KUBECONFIG) reach a gateway over the mutual-TLS snapshot
//! stream; the controller writes Ingress status and Events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::kube_mode::{apply_yaml, delete, wait_for, KubeGateway};
use gatehouse_e2e::local::EchoPod;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use std::time::Duration;

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gatehouse}\nspec: {controller: gatehouse.dev/ingress-controller}\n";

fn service(name: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ports: [{{name: http, port: 80}}]\n")
}

/// One EndpointSlice `name` for `service` listing `(pod, ready, serving, terminating)`.
fn slice(name: &str, service: &str, endpoints: &[(&EchoPod, bool, bool, bool)]) -> String {
    // Every pod of a test listens on its own port; a slice has one port, so
    // each slice lists pods of one port only.
    let port = endpoints.first().map_or(1, |e| e.0.addr.port());
    let mut out = format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints:\n");
    if endpoints.is_empty() {
        out = out.replace("endpoints:\n", "endpoints: []\n");
    }
    for (pod, ready, serving, terminating) in endpoints {
        out += &format!(
            "- addresses: [\"{}\"]\n  conditions: {{ready: {ready}, serving: {serving}, terminating: {terminating}}}\n  targetRef: {{kind: Pod, name: {}}}\n",
            pod.addr.ip(),
            pod.pod
        );
    }
    out
}

fn ingress(name: &str, host: &str, path: &str, path_type: &str, class: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: {class}\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: {path}, pathType: {path_type}, backend: {{service: {{name: web, port: {{name: http}}}}}}}}\n"
    )
}

async fn status_addresses(kg: &KubeGateway, name: &str) -> Vec<String> {
    let api: Api<Ingress> = Api::namespaced(kg.kube(), "default");
    let Ok(ing) = api.get(name).await else {
        return vec![];
    };
    ing.status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip.or(i.hostname))
        .collect()
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The pods that answer `rounds` requests.
async fn pods_seen(kg: &KubeGateway, rounds: usize) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..rounds {
        let r = kg.get("shop.test", "/").await;
        if r.status == 200 {
            seen.insert(r.echo().map(|e| e.pod).unwrap_or_default());
        } else {
            seen.insert(format!("status {}", r.status));
        }
    }
    seen
}

async fn eventually_pods(kg: &KubeGateway, want: &[&str]) {
    let want: std::collections::BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let ok = wait_for("pods", Duration::from_secs(10), || async {
        (pods_seen(kg, 8).await == want).then_some(())
    })
    .await;
    assert!(
        ok.is_ok(),
        "wanted {want:?}, saw {:?}\n{}",
        pods_seen(kg, 8).await,
        kg.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_written_through_the_api_are_served_and_the_ingress_gets_status() {
    let web1 = EchoPod::start("web", "web-1").unwrap();
    let web2 = EchoPod::start("web", "web-2").unwrap();
    let kg = KubeGateway::start(&["--publish-address", "192.0.2.10,lb.example.test"])
        .await
        .unwrap();
    let client = kg.kube();
    apply_yaml(&client, CLASS).await.unwrap();
    apply_yaml(&client, &service("web")).await.unwrap();
    apply_yaml(
        &client,
        &slice("web-a", "web", &[(&web1, true, true, false)]),
    )
    .await
    .unwrap();
    apply_yaml(
        &client,
        &ingress("shop", "shop.test", "/", "Prefix", "gatehouse"),
    )
    .await
    .unwrap();
    let r = kg.eventually("shop.test", "/", |r| r.status == 200).await;
    assert_eq!(r.status, 200, "{}", kg.logs());
    assert_eq!(r.echo().unwrap().pod, "web-1");

    // Status: both addresses, from the leader.
    let addrs = wait_for("Ingress status", Duration::from_secs(10), || async {
        let a = status_addresses(&kg, "shop").await;
        (a.len() == 2).then_some(a)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", kg.logs()));
    assert_eq!(addrs, vec!["lb.example.test", "192.0.2.10"]);
    let ready = kg.controller_admin("/readyz").await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );

    // Editing the Ingress: now only /v2, exactly.
    apply_yaml(
        &client,
        &ingress("shop", "shop.test", "/v2", "Exact", "gatehouse"),
    )
    .await
    .unwrap();
    let r = kg.eventually("shop.test", "/", |r| r.status == 404).await;
    assert_eq!(r.status, 404, "{}", kg.logs());
    assert_eq!(kg.get("shop.test", "/v2").await.status, 200);
    apply_yaml(
        &client,
        &ingress("shop", "shop.test", "/", "Prefix", "gatehouse"),
    )
    .await
    .unwrap();
    assert_eq!(
        kg.eventually("shop.test", "/", |r| r.status == 200)
            .await
            .status,
        200
    );

    // Pods come and go: a second pod (its own slice, its own port), the
    // first terminating (still serving: not used while another is ready),
    // then all terminating (serving ones are used), then gone (503).
    apply_yaml(
        &client,
        &slice("web-b", "web", &[(&web2, true, true, false)]),
    )
    .await
    .unwrap();
    eventually_pods(&kg, &["web-1", "web-2"]).await;
    apply_yaml(
        &client,
        &slice("web-a", "web", &[(&web1, false, true, true)]),
    )
    .await
    .unwrap();
    eventually_pods(&kg, &["web-2"]).await;
    apply_yaml(
        &client,
        &slice("web-b", "web", &[(&web2, false, true, true)]),
    )
    .await
    .unwrap();
    eventually_pods(&kg, &["web-1", "web-2"]).await;
    delete(
        &client,
        "discovery.k8s.io/v1",
        "EndpointSlice",
        Some("default"),
        "web-a",
    )
    .await
    .unwrap();
    delete(
        &client,
        "discovery.k8s.io/v1",
        "EndpointSlice",
        Some("default"),
        "web-b",
    )
    .await
    .unwrap();
    eventually_pods(&kg, &["status 503"]).await;

    // Those changes went out as endpoint-only updates. How many frames they
    // took is not fixed: the two deletes may coalesce, and a full rebuild
    // running at the same moment (a watch event of another kind) carries
    // the endpoint changes pending with it. At least one went the fast way.
    let gateway =
        gatehouse_e2e::kube_mode::get(&kg.client, kg.gateway.admin, "a", "/metrics").await;
    let gateway = String::from_utf8_lossy(&gateway.body).into_owned();
    assert!(
        metric(&gateway, "gatehouse_gateway_endpoint_updates_total") >= 1.0,
        "{gateway}"
    );
    let controller =
        String::from_utf8_lossy(&kg.controller_admin("/metrics").await.body).into_owned();
    assert!(
        metric(
            &controller,
            "gatehouse_controller_rebuilds_total{kind=\"endpoints\"}"
        ) >= 1.0,
        "{controller}"
    );
    assert_eq!(
        metric(&controller, "gatehouse_controller_leader"),
        1.0,
        "{controller}"
    );
    assert!(
        controller.contains("# HELP gatehouse_controller_rebuilds_total"),
        "{controller}"
    );

    // No longer ours (another class): the route goes and the status is cleared.
    apply_yaml(
        &client,
        &ingress("shop", "shop.test", "/", "Prefix", "someone-else"),
    )
    .await
    .unwrap();
    assert_eq!(
        kg.eventually("shop.test", "/", |r| r.status == 404)
            .await
            .status,
        404
    );
    wait_for("status cleared", Duration::from_secs(10), || async {
        status_addresses(&kg, "shop").await.is_empty().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", kg.logs()));
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_status_follows_the_publish_service() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Patch, PatchParams};
    let web = EchoPod::start("web", "web-1").unwrap();
    let kg = KubeGateway::start(&["--publish-service", "default/gateway"])
        .await
        .unwrap();
    let client = kg.kube();
    apply_yaml(&client, CLASS).await.unwrap();
    apply_yaml(&client, &service("web")).await.unwrap();
    apply_yaml(
        &client,
        &slice("web-a", "web", &[(&web, true, true, false)]),
    )
    .await
    .unwrap();
    apply_yaml(
        &client,
        &ingress("shop", "shop.test", "/", "Prefix", "gatehouse"),
    )
    .await
    .unwrap();
    apply_yaml(&client, "apiVersion: v1\nkind: Service\nmetadata: {name: gateway, namespace: default}\nspec:\n  type: LoadBalancer\n  ports: [{name: http, port: 80}]\n").await.unwrap();
    assert_eq!(
        kg.eventually("shop.test", "/", |r| r.status == 200)
            .await
            .status,
        200
    );
    // No address yet: none published.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(status_addresses(&kg, "shop").await.is_empty());
    // A load balancer gives the gateway Service an address, later another.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    for ip in ["198.51.100.7", "198.51.100.8"] {
        let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
        services
            .patch_status("gateway", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        wait_for(
            "status from the publish service",
            Duration::from_secs(10),
            || async { (status_addresses(&kg, "shop").await == vec![ip.to_owned()]).then_some(()) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", kg.logs()));
    }
}

/// Events (events.k8s.io/v1) about an object: (type, reason, note).
async fn events_about(kg: &KubeGateway, name: &str) -> Vec<(String, String, String)> {
    gatehouse_e2e::kube_mode::events_about(&kg.kube(), "default", name).await
}

#[tokio::test(flavor = "multi_thread")]
async fn problems_become_warning_events_and_the_rest_keeps_working() {
    let web = EchoPod::start("web", "web-1").unwrap();
    let kg = KubeGateway::start(&[]).await.unwrap();
    let client = kg.kube();
    apply_yaml(&client, CLASS).await.unwrap();
    apply_yaml(&client, &service("web")).await.unwrap();
    apply_yaml(
        &client,
        &slice("web-a", "web", &[(&web, true, true, false)]),
    )
    .await
    .unwrap();
    apply_yaml(
        &client,
        &ingress("good", "good.test", "/", "Prefix", "gatehouse"),
    )
    .await
    .unwrap();
    assert_eq!(
        kg.eventually("good.test", "/", |r| r.status == 200)
            .await
            .status,
        200
    );

    // An Ingress with an annotation value that means nothing, and one whose
    // TLS Secret does not exist.
    let bad_annotation = ingress("odd", "odd.test", "/", "Prefix", "gatehouse").replace(
        "namespace: default}",
        "namespace: default, annotations: {nginx.ingress.kubernetes.io/ssl-redirect: sometimes}}",
    );
    apply_yaml(&client, &bad_annotation).await.unwrap();
    let missing_secret = ingress("secure", "secure.test", "/", "Prefix", "gatehouse").replace(
        "  rules:",
        "  tls:\n  - hosts: [secure.test]\n    secretName: secure-tls\n  rules:",
    );
    apply_yaml(&client, &missing_secret).await.unwrap();

    for (object, reason, says) in [
        ("odd", "InvalidAnnotation", "ssl-redirect"),
        ("secure", "SecretNotFound", "default/secure-tls"),
    ] {
        let events = wait_for(reason, Duration::from_secs(10), || async {
            let e = events_about(&kg, object).await;
            e.iter()
                .any(|(t, r, _)| t == "Warning" && r == reason)
                .then_some(e)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", kg.logs()));
        let (_, _, note) = events.iter().find(|(_, r, _)| r == reason).unwrap();
        assert!(note.contains(says), "{note}");
        // The good Ingress was served all along.
        assert_eq!(kg.get("good.test", "/").await.status, 200);
    }
    // The broken ones are still served as well as they can be.
    assert_eq!(kg.get("odd.test", "/").await.status, 200);

    // The problem persists through rebuilds: it is not reported again.
    for i in 0..5 {
        apply_yaml(
            &client,
            &ingress(
                &format!("more-{i}"),
                &format!("m{i}.test"),
                "/",
                "Prefix",
                "gatehouse",
            ),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        kg.eventually("m4.test", "/", |r| r.status == 200)
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warnings = events_about(&kg, "secure")
        .await
        .into_iter()
        .filter(|(t, _, _)| t == "Warning")
        .count();
    assert_eq!(warnings, 1, "{:?}", events_about(&kg, "secure").await);

    // Fixed: a Normal event says so.
    let ca = gatehouse_e2e::tls::TestCa::new().unwrap();
    let secret = gatehouse_e2e::tls::tls_secret("secure-tls", &ca.issue(&["secure.test"]).unwrap())
        .replace(
            "metadata: {name: secure-tls}",
            "metadata: {name: secure-tls, namespace: default}",
        );
    apply_yaml(&client, &secret).await.unwrap();
    let resolved = wait_for("Resolved", Duration::from_secs(10), || async {
        let e = events_about(&kg, "secure").await;
        e.iter()
            .any(|(t, r, n)| t == "Normal" && r == "Resolved" && n.contains("SecretNotFound"))
            .then_some(())
    })
    .await;
    if let Err(e) = resolved {
        let events = events_about(&kg, "secure").await;
        panic!("{e}: {events:?}\n{}", kg.logs());
    }
    let controller =
        String::from_utf8_lossy(&kg.controller_admin("/metrics").await.body).into_owned();
    assert!(
        metric(
            &controller,
            "gatehouse_controller_events_total{type=\"Warning\",reason=\"SecretNotFound\"}"
        ) == 1.0,
        "{controller}"
    );
}

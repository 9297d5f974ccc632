//! Load-balancer address allocation end to end on the API emulator:
//! IPPools and `type: LoadBalancer` Services written through the API get
//! addresses in their status (with our condition and Events), MetalLB's
//! annotations work as written, pools report their counts, and a new
//! leader keeps every address where it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::kube_mode::{apply_yaml, delete, wait_for, ControllerProc, KubeGateway};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const CONDITION: &str = "gatehouse.dev/IPAllocated";

/// Lease timings short enough that a killed leader's successor takes over
/// within a test's patience.
const FAST_LEASE: &[&str] = &[
    "--leader-election-lease-duration",
    "2s",
    "--leader-election-renew-deadline",
    "1500ms",
    "--leader-election-retry-period",
    "250ms",
];

async fn start() -> KubeGateway {
    start_with(&[]).await
}

async fn start_with(args: &[&str]) -> KubeGateway {
    let kg = KubeGateway::start(args).await.unwrap();
    let crd = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/gatehouse/crds/ippools.gatehouse.dev.yaml"),
    )
    .unwrap();
    apply_yaml(&kg.kube(), &crd).await.unwrap();
    kg
}

fn pool(name: &str, addresses: &str, extra: &str) -> String {
    format!("apiVersion: gatehouse.dev/v1alpha1\nkind: IPPool\nmetadata: {{name: {name}}}\nspec:\n  addresses: [{addresses}]\n{extra}")
}

/// A LoadBalancer Service in `default`; `meta` and `spec` are extra YAML
/// lines (indented by two) of metadata and spec.
fn lb_service(name: &str, meta: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n{meta}spec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n{spec}")
}

fn ports(list: &[u16]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|p| format!("{{name: p{p}, port: {p}}}"))
        .collect();
    format!("  ports: [{}]\n", items.join(", "))
}

async fn get_service(kg: &KubeGateway, name: &str) -> Option<Service> {
    Api::<Service>::namespaced(kg.kube(), "default")
        .get(name)
        .await
        .ok()
}

fn addresses(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect()
}

/// Our condition's (status, reason, message).
fn condition(s: &Service) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the Service's status shows `want` addresses (in any order).
async fn wait_addresses(kg: &KubeGateway, name: &str, want: &[&str]) -> Service {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    let got = wait_for(&format!("{name} to get {want:?}"), WAIT, || {
        let want = want.clone();
        async move {
            let s = get_service(kg, name).await?;
            let mut a = addresses(&s);
            a.sort();
            (a == want).then_some(s)
        }
    })
    .await;
    match got {
        Ok(s) => s,
        Err(e) => panic!(
            "{e}: now {:?}\n{}",
            get_service(kg, name)
                .await
                .map(|s| (addresses(&s), condition(&s))),
            kg.logs()
        ),
    }
}

async fn wait_reason(kg: &KubeGateway, name: &str, status: &str, reason: &str) -> Service {
    let got = wait_for(&format!("{name}: {status}/{reason}"), WAIT, || async move {
        let s = get_service(kg, name).await?;
        let c = condition(&s)?;
        (c.0 == status && c.1 == reason).then_some(s)
    })
    .await;
    match got {
        Ok(s) => s,
        Err(e) => panic!(
            "{e}: now {:?}\n{}",
            get_service(kg, name).await.map(|s| condition(&s)),
            kg.logs()
        ),
    }
}

async fn events_for(kg: &KubeGateway, name: &str) -> Vec<(String, String, String)> {
    gatehouse_e2e::kube_mode::events_about(&kg.kube(), "default", name).await
}

async fn pool_counts(kg: &KubeGateway, name: &str) -> Option<(i64, i64, String)> {
    let api: Api<gatehouse_crds::IPPool> = Api::all(kg.kube());
    let p = api.get(name).await.ok()?;
    let st = p.status?;
    let valid = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Valid")
        .map(|c| format!("{}/{}", c.status, c.reason))
        .unwrap_or_default();
    Some((st.assigned_ipv4, st.available_ipv4, valid))
}

#[tokio::test(flavor = "multi_thread")]
async fn services_get_addresses_from_pools_as_metallb_users_write_them() {
    let kg = start().await;
    let k = kg.kube();
    apply_yaml(&k, &pool("blue", "192.0.2.0/29", "  avoidBuggyIPs: true\n"))
        .await
        .unwrap();
    apply_yaml(&k, &pool("six", "2001:db8::10-2001:db8::1f", ""))
        .await
        .unwrap();
    let gold = "  serviceAllocation:\n    priority: 1\n    namespaceSelectors: [{matchLabels: {env: prod}}]\n    serviceSelectors: [{matchLabels: {tier: gold}}]\n";
    apply_yaml(&k, &pool("gold", "198.51.100.7/32", gold))
        .await
        .unwrap();
    apply_yaml(
        &k,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {env: prod}}\n",
    )
    .await
    .unwrap();

    // The first address that is not .0: avoidBuggyIPs.
    apply_yaml(&k, &lb_service("web", "", &ports(&[80])))
        .await
        .unwrap();
    let web = wait_addresses(&kg, "web", &["192.0.2.1"]).await;
    let (status, reason, message) = condition(&web).unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Allocated"));
    assert_eq!(message, "assigned 192.0.2.1 (pool blue)");
    let ingress = web.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ingress[0].ip_mode.as_deref(), Some("VIP"));

    // Pool choice: a pool with a serviceAllocation for gold Services in
    // namespaces labelled env=prod comes first for them; others never use it.
    // (Pool and label were written before `web`: gold's status shows the
    // controller has seen the pool, web's address a round after the label.)
    wait_for("gold's status", WAIT, || async {
        pool_counts(&kg, "gold").await
    })
    .await
    .unwrap();
    apply_yaml(
        &k,
        &lb_service("vip", "  labels: {tier: gold}\n", &ports(&[80])),
    )
    .await
    .unwrap();
    wait_addresses(&kg, "vip", &["198.51.100.7"]).await;
    let vip = get_service(&kg, "vip").await.unwrap();
    assert_eq!(
        condition(&vip).unwrap().2,
        "assigned 198.51.100.7 (pool gold)"
    );

    // MetalLB's annotations: an exact address, and sharing by key on other ports.
    let ask =
        "  annotations: {metallb.io/loadBalancerIPs: 192.0.2.5, metallb.io/allow-shared-ip: k1}\n";
    apply_yaml(&k, &lb_service("dns", ask, &ports(&[53])))
        .await
        .unwrap();
    wait_addresses(&kg, "dns", &["192.0.2.5"]).await;
    let share = "  annotations: {metallb.universe.tf/allow-shared-ip: k1}\n";
    apply_yaml(&k, &lb_service("dns-admin", share, &ports(&[8053])))
        .await
        .unwrap();
    wait_addresses(&kg, "dns-admin", &["192.0.2.5"]).await;

    // A pool by name, and dual stack: asked for exactly, and automatic
    // (from two pools).
    let by_name = "  annotations: {gatehouse.dev/ip-pool: six}\n";
    apply_yaml(
        &k,
        &lb_service(
            "v6",
            by_name,
            &format!(
                "{}  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv6]\n",
                ports(&[443])
            ),
        ),
    )
    .await
    .unwrap();
    wait_addresses(&kg, "v6", &["2001:db8::10"]).await;
    let dual = "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n";
    let dual_ask = "  annotations: {gatehouse.dev/load-balancer-ips: '192.0.2.6,2001:db8::1f'}\n";
    apply_yaml(
        &k,
        &lb_service("dual", dual_ask, &format!("{}{dual}", ports(&[443]))),
    )
    .await
    .unwrap();
    wait_addresses(&kg, "dual", &["192.0.2.6", "2001:db8::1f"]).await;
    apply_yaml(
        &k,
        &lb_service("dual-auto", "", &format!("{}{dual}", ports(&[443]))),
    )
    .await
    .unwrap();
    wait_addresses(&kg, "dual-auto", &["192.0.2.2", "2001:db8::11"]).await;

    // Another class is never touched; a class of ours is served.
    let theirs = "  loadBalancerClass: other.example/lb\n";
    apply_yaml(
        &k,
        &lb_service("theirs", "", &format!("{}{theirs}", ports(&[80]))),
    )
    .await
    .unwrap();
    let ours = "  loadBalancerClass: gatehouse.dev/lb\n";
    apply_yaml(
        &k,
        &lb_service("classed", "", &format!("{}{ours}", ports(&[80]))),
    )
    .await
    .unwrap();
    wait_addresses(&kg, "classed", &["192.0.2.3"]).await;
    let theirs_now = get_service(&kg, "theirs").await.unwrap();
    assert!(addresses(&theirs_now).is_empty() && condition(&theirs_now).is_none());

    // The pool's status counts: .1 .2 .3 .5 .6 of the seven it offers (.0 avoided).
    let counts = wait_for("blue's status", WAIT, || async {
        pool_counts(&kg, "blue").await.filter(|c| c.0 == 5)
    })
    .await
    .unwrap();
    assert_eq!(counts, (5, 2, "True/Valid".to_owned()));

    // A request that cannot be read is refused with the reason, not guessed at.
    let bad = "  annotations: {gatehouse.dev/load-balancer-ips: 192.0.2.300}\n";
    apply_yaml(&k, &lb_service("typo", bad, &ports(&[80])))
        .await
        .unwrap();
    let typo = wait_reason(&kg, "typo", "False", "InvalidRequest").await;
    assert!(condition(&typo).unwrap().2.contains("192.0.2.300"));
    assert!(addresses(&typo).is_empty());

    // Exhaustion: the pool's last two go, the next Service waits with a
    // Warning, and gets the address a deleted Service frees.
    for name in ["fill-1", "fill-2"] {
        apply_yaml(&k, &lb_service(name, "", &ports(&[80])))
            .await
            .unwrap();
    }
    wait_addresses(&kg, "fill-2", &["192.0.2.7"]).await;
    apply_yaml(&k, &lb_service("waiting", "", &ports(&[80])))
        .await
        .unwrap();
    let waiting = wait_reason(&kg, "waiting", "False", "PoolExhausted").await;
    assert!(addresses(&waiting).is_empty());
    let warned = wait_for("a PoolExhausted Warning", WAIT, || async {
        events_for(&kg, "waiting")
            .await
            .into_iter()
            .find(|e| e.0 == "Warning" && e.1 == "PoolExhausted")
    })
    .await
    .unwrap();
    assert!(warned.2.contains("no free IPv4 address"), "{warned:?}");
    delete(&k, "v1", "Service", Some("default"), "web")
        .await
        .unwrap();
    wait_addresses(&kg, "waiting", &["192.0.2.1"]).await;
    // The Event follows the status write; it may land a moment later.
    let allocated = wait_for("a Normal Allocated Event", WAIT, || async {
        events_for(&kg, "waiting")
            .await
            .into_iter()
            .find(|e| e.0 == "Normal" && e.1 == "Allocated")
    })
    .await;
    assert!(allocated.is_ok(), "{:?}", events_for(&kg, "waiting").await);

    // No longer a LoadBalancer: our addresses and condition go, the address is free.
    apply_yaml(&k, "apiVersion: v1\nkind: Service\nmetadata: {name: classed, namespace: default}\nspec: {type: ClusterIP, selector: {app: classed}, ports: [{name: p80, port: 80}]}\n").await.unwrap();
    let released = wait_for("classed to be released", WAIT, || async {
        get_service(&kg, "classed")
            .await
            .filter(|s| condition(s).is_none())
    })
    .await
    .unwrap();
    assert!(addresses(&released).is_empty());
    // A pool deleted under its Services: they keep their addresses, with a
    // warning reason, and nobody else gets them.
    delete(&k, "gatehouse.dev/v1alpha1", "IPPool", None, "six")
        .await
        .unwrap();
    let v6 = wait_reason(&kg, "v6", "True", "AddressNotInAnyPool").await;
    assert_eq!(addresses(&v6), vec!["2001:db8::10".to_owned()]);
    assert!(
        condition(&v6).unwrap().2.contains("no longer in any pool"),
        "{:?}",
        condition(&v6)
    );

    let metrics = kg.controller_admin("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains("gatehouse_controller_lb_pool_addresses{pool=\"blue\",family=\"ipv4\",state=\"assigned\"}"),
        "{text}"
    );
    assert!(
        text.contains("# HELP gatehouse_controller_lb_services_failing"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_leader_s_successor_keeps_every_address_where_it_was() {
    let mut kg = start_with(FAST_LEASE).await;
    let k = kg.kube();
    apply_yaml(&k, &pool("blue", "192.0.2.0/28", ""))
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        apply_yaml(&k, &lb_service(name, "", &ports(&[80])))
            .await
            .unwrap();
    }
    wait_addresses(&kg, "c", &["192.0.2.2"]).await;
    let before: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for name in ["a", "b", "c"] {
            v.push(addresses(&get_service(&kg, name).await.unwrap()));
        }
        v
    };
    // The leader goes; while none runs, `a` is deleted and `d` created. The
    // next leader restores b and c from their status, and gives d the
    // lowest free address (a's), without moving anyone.
    // Killed: the Lease runs out (2 s here) before the next one leads.
    kg.controller.process.kill();
    delete(&k, "v1", "Service", Some("default"), "a")
        .await
        .unwrap();
    apply_yaml(&k, &lb_service("d", "", &ports(&[80])))
        .await
        .unwrap();
    let listen = kg.controller.snapshot.to_string();
    kg.controller = ControllerProc::start(
        "controller-2",
        ControllerProc::command().unwrap(),
        kg.api.kubeconfig(),
        &kg.certs,
        &listen,
        FAST_LEASE,
    )
    .unwrap();
    wait_addresses(
        &kg,
        "d",
        &before[0].iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(addresses(&get_service(&kg, "b").await.unwrap()), before[1]);
    assert_eq!(addresses(&get_service(&kg, "c").await.unwrap()), before[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_service_s_address_is_the_ingress_status() {
    let kg = start_with(&["--publish-service", "default/gateway"]).await;
    let k = kg.kube();
    apply_yaml(&k, &pool("edge", "203.0.113.40-203.0.113.41", ""))
        .await
        .unwrap();
    apply_yaml(&k, "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gatehouse}\nspec: {controller: gatehouse.dev/ingress-controller}\n").await.unwrap();
    apply_yaml(&k, "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{name: http, port: 80}]}\n").await.unwrap();
    apply_yaml(&k, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop, namespace: default}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: shop.test\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]}\n").await.unwrap();
    let gw = "  externalTrafficPolicy: Local\n  ports: [{name: http, port: 80}, {name: https, port: 443}]\n";
    apply_yaml(&k, &lb_service("gateway", "", gw))
        .await
        .unwrap();
    wait_addresses(&kg, "gateway", &["203.0.113.40"]).await;
    let api: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(k.clone(), "default");
    let shown = wait_for("the Ingress to show the gateway's address", WAIT, || {
        let api = api.clone();
        async move {
            let ing = api.get("shop").await.ok()?;
            let ips: Vec<String> = ing
                .status?
                .load_balancer?
                .ingress?
                .into_iter()
                .filter_map(|i| i.ip)
                .collect();
            (ips == ["203.0.113.40"]).then_some(ips)
        }
    })
    .await;
    assert!(shown.is_ok(), "{}", kg.logs());
}

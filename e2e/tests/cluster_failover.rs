//! Cluster mode when things fail: the leader dies, the controller restarts,
//! the API server restarts with its watch history compacted (410 Gone), and
//! peers without the right certificates try the snapshot stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::emulator::{AuditEntry, TestApi};
use gatehouse_e2e::kube_mode::{
    apply_yaml, get, wait_for, ControllerProc, GatewayProc, KubeGateway, StreamCerts,
};
use gatehouse_e2e::local::EchoPod;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use std::time::{Duration, Instant};

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gatehouse}\nspec: {controller: gatehouse.dev/ingress-controller}\n";
const LEASE: &str = "gatehouse-controller-leader";
/// Short election timings so a failover takes seconds.
const FAST_ELECTION: [&str; 6] = [
    "--leader-election-lease-duration",
    "2s",
    "--leader-election-renew-deadline",
    "1500ms",
    "--leader-election-retry-period",
    "200ms",
];

fn ingress(name: &str, host: &str, path: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
    )
}

fn web(pod: &EchoPod) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec:\n  ports: [{{port: 80}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-a\n  namespace: default\n  labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{{port: {}}}]\nendpoints:\n- addresses: [\"127.0.0.1\"]\n",
        pod.addr.port()
    )
}

async fn has_status(client: &kube::Client, name: &str) -> bool {
    let api: Api<Ingress> = Api::namespaced(client.clone(), "default");
    api.get(name)
        .await
        .ok()
        .and_then(|i| i.status)
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .is_some_and(|l| !l.is_empty())
}

async fn is_leader(admin: std::net::SocketAddr) -> bool {
    let client = gatehouse_e2e::client::TestClient::http1();
    let r = get(&client, admin, "admin", "/metrics").await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .any(|l| l == "gatehouse_controller_leader 1")
}

/// The identity in a controller's User-Agent: `gatehouse-controller/V (identity)`.
fn writer(entry: &AuditEntry) -> Option<&str> {
    entry
        .user_agent
        .strip_prefix("gatehouse-controller/")?
        .split_once(" (")?
        .1
        .strip_suffix(')')
}

/// Writes that only a leader may make: Ingress status and Events.
fn leader_only(entry: &AuditEntry) -> bool {
    (entry.path.contains("/ingresses/") && entry.path.ends_with("/status"))
        || entry.path.contains("/events")
}

/// Checks every leader-only write of the run: the writer held the Lease at
/// that moment, and the Lease was not expired. Returns the writes per writer.
fn assert_single_writer(audit: &[AuditEntry]) -> std::collections::BTreeMap<String, usize> {
    let mut per_writer = std::collections::BTreeMap::new();
    for entry in audit.iter().filter(|e| leader_only(e) && e.status < 300) {
        let who = writer(entry).unwrap_or_else(|| panic!("write by a non-controller: {entry:?}"));
        let lease = entry
            .leases
            .iter()
            .find(|l| l.name == LEASE)
            .unwrap_or_else(|| panic!("{who} wrote with no Lease at all: {entry:?}"));
        assert_eq!(
            lease.holder.as_deref(),
            Some(who),
            "written by a non-holder: {entry:?}"
        );
        let renewed: jiff::Timestamp = lease.renew_time.as_deref().unwrap().parse().unwrap();
        let at = jiff::Timestamp::try_from(entry.at).unwrap();
        let age = at.duration_since(renewed);
        let limit = jiff::SignedDuration::from_secs(lease.duration_seconds.unwrap());
        assert!(
            age <= limit,
            "{who} wrote {age:?} after its last renewal (lease {limit:?}): {entry:?}"
        );
        *per_writer.entry(who.to_owned()).or_insert(0) += 1;
    }
    per_writer
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_takes_over_when_the_leader_dies_and_only_the_leader_writes() {
    let api = TestApi::start().await.unwrap();
    if !api.is_emulated() {
        println!("skipped: needs the emulator's audit log");
        return;
    }
    let client = api.client();
    let certs = StreamCerts::new(&["localhost"]).unwrap();
    let mut args: Vec<&str> = FAST_ELECTION.to_vec();
    args.extend(["--publish-address", "192.0.2.1"]);
    let start = |label: &str| {
        ControllerProc::start(
            label,
            ControllerProc::command().unwrap(),
            api.kubeconfig(),
            &certs,
            "127.0.0.1:0",
            &args,
        )
        .unwrap()
    };
    let mut replicas = vec![start("controller-a"), start("controller-b")];
    apply_yaml(&client, CLASS).await.unwrap();
    apply_yaml(&client, &ingress("one", "one.test", "/"))
        .await
        .unwrap();
    wait_for("status of one", Duration::from_secs(10), || async {
        has_status(&client, "one").await.then_some(())
    })
    .await
    .unwrap();
    let leader = wait_for("a leader", Duration::from_secs(10), || async {
        for (i, r) in replicas.iter().enumerate() {
            if is_leader(r.admin).await {
                return Some(i);
            }
        }
        None
    })
    .await
    .unwrap();
    let standby = 1 - leader;
    assert!(!is_leader(replicas[standby].admin).await, "two leaders");

    // The leader dies without releasing the Lease: the standby waits out
    // the lease duration, then takes over and writes the next status.
    replicas[leader].process.kill();
    let died = Instant::now();
    apply_yaml(&client, &ingress("two", "two.test", "/"))
        .await
        .unwrap();
    wait_for("status of two", Duration::from_secs(15), || async {
        has_status(&client, "two").await.then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", replicas[standby].process.output()));
    let takeover = died.elapsed();
    assert!(is_leader(replicas[standby].admin).await);
    println!("takeover after the leader was killed: {takeover:?}");

    // A graceful stop releases the Lease: a third replica takes over at
    // once instead of waiting out the lease duration.
    replicas.push(start("controller-c"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!is_leader(replicas[2].admin).await);
    replicas[standby].process.stop(Duration::from_secs(5));
    apply_yaml(&client, &ingress("three", "three.test", "/"))
        .await
        .unwrap();
    wait_for("status of three", Duration::from_secs(10), || async {
        has_status(&client, "three").await.then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", replicas[2].process.output()));

    let audit = api.emulator().unwrap().audit();
    let released = audit.iter().any(|e| {
        e.path.contains("/leases/")
            && e.method == "PUT"
            && e.status < 300
            && e.leases
                .iter()
                .any(|l| l.name == LEASE && l.holder.is_none())
    });
    assert!(released, "no release of the Lease in the audit log");
    let per_writer = assert_single_writer(&audit);
    assert_eq!(
        per_writer.len(),
        3,
        "each leader in turn wrote: {per_writer:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_serves_while_the_controller_is_down_and_resyncs_after() {
    let pod = EchoPod::start("web", "web-1").unwrap();
    let mut kg = KubeGateway::start(&[]).await.unwrap();
    let client = kg.kube();
    apply_yaml(&client, CLASS).await.unwrap();
    apply_yaml(&client, &web(&pod)).await.unwrap();
    apply_yaml(&client, &ingress("shop", "shop.test", "/"))
        .await
        .unwrap();
    assert_eq!(
        kg.eventually("shop.test", "/", |r| r.status == 200)
            .await
            .status,
        200
    );

    kg.controller.process.kill();
    // Changed while no controller runs.
    apply_yaml(&client, &ingress("shop", "shop.test", "/new"))
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(kg.get("shop.test", "/").await.status, 200, "{}", kg.logs());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let listen = kg.controller.snapshot.to_string();
    kg.controller = ControllerProc::start(
        "controller-2",
        ControllerProc::command().unwrap(),
        kg.api.kubeconfig(),
        &kg.certs,
        &listen,
        &[],
    )
    .unwrap();
    let r = kg.eventually("shop.test", "/", |r| r.status == 404).await;
    assert_eq!(r.status, 404, "{}", kg.logs());
    assert_eq!(kg.get("shop.test", "/new").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_recovers_from_an_api_restart_with_compacted_history() {
    let pod = EchoPod::start("web", "web-1").unwrap();
    let mut kg = KubeGateway::start(&[]).await.unwrap();
    if !kg.api.is_emulated() {
        println!("skipped: needs the emulator to restart the API");
        return;
    }
    let client = kg.kube();
    apply_yaml(&client, CLASS).await.unwrap();
    apply_yaml(&client, &web(&pod)).await.unwrap();
    apply_yaml(&client, &ingress("shop", "shop.test", "/"))
        .await
        .unwrap();
    assert_eq!(
        kg.eventually("shop.test", "/", |r| r.status == 200)
            .await
            .status,
        200
    );

    // A write none of the watches sees, so every watch's resourceVersion is
    // older than the newest; after compaction each resumes from a version
    // the API no longer has (410 Gone) and must relist.
    apply_yaml(&client, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated, namespace: default}\ndata: {a: b}\n")
        .await
        .unwrap();
    let (http, probe) = (kg.gateway.http, gatehouse_e2e::client::TestClient::http1());
    let emulator = kg.api.emulator_mut().unwrap();
    emulator.compact_history();
    let restart = emulator.restart(Duration::from_millis(800));
    let (restarted, served) = tokio::join!(restart, async {
        let mut ok = 0;
        for _ in 0..10 {
            ok += usize::from(get(&probe, http, "shop.test", "/").await.status == 200);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ok
    });
    restarted.unwrap();
    assert_eq!(served, 10, "the gateway served while the API was down");

    apply_yaml(&client, &ingress("shop", "shop.test", "/after"))
        .await
        .unwrap();
    // ("/" stops matching once the change is in; "/after" matched before too.)
    let r = kg.eventually("shop.test", "/", |r| r.status == 404).await;
    assert_eq!(r.status, 404, "{}", kg.logs());
    assert_eq!(kg.get("shop.test", "/after").await.status, 200);
    let restarts = wait_for("every kind relisted", Duration::from_secs(15), || async {
        let metrics =
            String::from_utf8_lossy(&kg.controller_admin("/metrics").await.body).into_owned();
        let kinds = metrics
            .lines()
            .filter(|l| l.starts_with("gatehouse_controller_watch_restarts_total{"))
            .count();
        (kinds == 5).then_some(kinds)
    })
    .await;
    assert!(restarts.is_ok(), "{}", kg.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_stream_refuses_peers_without_the_right_certificates() {
    let kg = KubeGateway::start(&[]).await.unwrap();
    let controller_url = format!("https://localhost:{}", kg.controller.snapshot.port());

    // A gateway whose client certificate another CA issued.
    let rogue_ca = gatehouse_e2e::tls::TestCa::new().unwrap();
    kg.certs
        .write_pair(
            "rogue",
            &rogue_ca.issue(&["gateway.gatehouse.test"]).unwrap(),
        )
        .unwrap();
    let mut rogue = GatewayProc::start(
        "rogue-gateway",
        &controller_url,
        &kg.certs.gateway_args("rogue"),
    )
    .unwrap();

    // A gateway that does not trust the controller's certificate.
    std::fs::write(kg.certs.path("other-ca.crt"), &rogue_ca.cert_pem).unwrap();
    let mut args = kg.certs.gateway_args("gateway");
    args[1] = kg.certs.path("other-ca.crt").display().to_string();
    let mut distrustful =
        GatewayProc::start("distrustful-gateway", &controller_url, &args).unwrap();

    // The honest gateway is served.
    let client = gatehouse_e2e::client::TestClient::http1();
    wait_for("honest gateway ready", Duration::from_secs(10), || async {
        (get(&client, kg.gateway.admin, "a", "/readyz").await.status == 200).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", kg.logs()));

    // A client with no certificate at all gets no HTTP answer.
    let raw = no_certificate_request(&kg).await;
    assert!(
        !raw.contains("HTTP/1.1"),
        "answered without a client certificate: {raw}"
    );

    let refused = wait_for("refusals counted", Duration::from_secs(10), || async {
        let m = String::from_utf8_lossy(&kg.controller_admin("/metrics").await.body).into_owned();
        let n: f64 = m
            .lines()
            .find(|l| {
                l.starts_with("gatehouse_controller_snapshot_stream_refused_total{reason=\"tls\"}")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0);
        (n >= 2.0).then_some(n)
    })
    .await;
    assert!(refused.is_ok(), "{}", kg.controller.process.output());
    for g in [&mut rogue, &mut distrustful] {
        let admin = g.admin;
        wait_for("admin endpoint up", Duration::from_secs(10), || async {
            (get(&client, admin, "a", "/healthz").await.status == 200).then_some(())
        })
        .await
        .unwrap();
        assert_eq!(
            get(&client, g.admin, "a", "/readyz").await.status,
            503,
            "{}",
            g.process.output()
        );
        assert!(g.process.is_running());
    }
    let distrust_log = distrustful.process.output();
    assert!(distrust_log.contains("TLS handshake"), "{distrust_log}");
    let controller_log = kg.controller.process.output();
    assert!(
        controller_log.contains("snapshot stream connection refused"),
        "{controller_log}"
    );
}

/// Connects with TLS but without a client certificate, asks for the stream
/// and returns whatever came back (an error, or nothing).
async fn no_certificate_request(kg: &KubeGateway) -> String {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(kg.certs.ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(kg.controller.snapshot)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = match connector.connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => return format!("handshake failed: {e}"),
    };
    let _ = tls
        .write_all(b"GET /v1/snapshots HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let mut buf = vec![0; 4096];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Ok(Err(e)) => format!("read failed: {e}"),
        Err(_) => "timed out".into(),
    }
}

/// The certificate the controller presents to a client holding the gateway
/// certificate.
async fn presented_certificate(kg: &KubeGateway) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(kg.certs.ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(kg.certs.path("gateway.crt"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_file(kg.certs.path("gateway.key")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(kg.controller.snapshot)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_certificates_rotate_without_a_restart() {
    let pod = EchoPod::start("web", "web-1").unwrap();
    let kg = KubeGateway::start(&[]).await.unwrap();
    let client = kg.kube();
    apply_yaml(&client, CLASS).await.unwrap();
    apply_yaml(&client, &web(&pod)).await.unwrap();
    apply_yaml(&client, &ingress("shop", "shop.test", "/"))
        .await
        .unwrap();
    assert_eq!(
        kg.eventually("shop.test", "/", |r| r.status == 200)
            .await
            .status,
        200
    );
    let before = presented_certificate(&kg).await;

    // Replace the controller's pair the way a Secret update does: new files
    // renamed into place.
    let fresh = kg.certs.ca.issue(&["localhost", "127.0.0.1"]).unwrap();
    for (name, pem) in [
        ("controller.key", &fresh.key_pem),
        ("controller.crt", &fresh.cert_pem),
    ] {
        let tmp = kg.certs.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, kg.certs.path(name)).unwrap();
    }
    let after = presented_certificate(&kg).await;
    assert_ne!(
        before, after,
        "the new handshake still got the old certificate"
    );
    let fresh_der = rustls::pki_types::pem::PemObject::from_pem_slice(fresh.cert_pem.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    assert_eq!(after, fresh_der);

    // The open stream carries on; a change still arrives over it.
    apply_yaml(&client, &ingress("shop", "shop.test", "/new"))
        .await
        .unwrap();
    assert_eq!(
        kg.eventually("shop.test", "/", |r| r.status == 404)
            .await
            .status,
        404
    );
    // A half-written (unusable) key is reported and the last good pair kept.
    std::fs::write(
        kg.certs.path("controller.key"),
        "-----BEGIN PRIVATE KEY-----\ngarbage\n",
    )
    .unwrap();
    assert_eq!(presented_certificate(&kg).await, fresh_der);
    assert!(
        kg.controller.process.output().contains("cannot be used"),
        "{}",
        kg.controller.process.output()
    );
}

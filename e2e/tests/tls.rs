//! HTTPS end to end: certificates from Secrets chosen by SNI, the default
//! certificate, ALPN, redirects, HSTS, rotation without dropping
//! connections, broken Secrets isolated, TLS metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::local::{service_manifest, EchoPod, LocalGateway};
use gatehouse_e2e::tls::{connect, tls_secret, ClientOptions, TestCa, TlsHttp, Verify};
use std::sync::Arc;
use std::time::Duration;

/// An Ingress routing `hosts` to service `web`, with one tls entry per
/// (hosts, secret) pair and extra metadata (annotations).
fn ingress(
    name: &str,
    hosts: &[&str],
    tls: &[(&[&str], Option<&str>)],
    annotations: &str,
) -> String {
    let mut out = format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}{annotations}}}\nspec:\n  ingressClassName: gatehouse\n");
    if !tls.is_empty() {
        out += "  tls:\n";
        for (hs, secret) in tls {
            let list = hs
                .iter()
                .map(|h| format!("\"{h}\""))
                .collect::<Vec<_>>()
                .join(", ");
            out += &format!("  - hosts: [{list}]\n");
            if let Some(s) = secret {
                out += &format!("    secretName: {s}\n");
            }
        }
    }
    out += "  rules:\n";
    for h in hosts {
        out += &format!("  - host: \"{h}\"\n    http:\n      paths:\n      - {{pathType: Prefix, path: /, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n");
    }
    out
}

struct Setup {
    lg: LocalGateway,
    ca: TestCa,
    _web: EchoPod,
}

async fn setup(gateway_args: &[&str]) -> Setup {
    let web = EchoPod::start("web", "web-1").unwrap();
    let lg = LocalGateway::start(gateway_args).await.unwrap();
    let ca = TestCa::new().unwrap();
    lg.write("web.yaml", &service_manifest("web", &[(&web, true)]))
        .unwrap();
    Setup { lg, ca, _web: web }
}

/// Serves `a.test` over TLS with a certificate from the test CA (Secret `a`).
async fn serve_a_test(s: &Setup, annotations: &str) {
    let a = s.ca.issue(&["a.test"]).unwrap();
    let tls: &[(&[&str], Option<&str>)] = &[(&["a.test"], Some("a"))];
    s.lg.write(
        "tls.yaml",
        &[
            tls_secret("a", &a),
            ingress("a", &["a.test"], tls, annotations),
        ]
        .join("\n---\n"),
    )
    .unwrap();
    eventually_presents(&s.lg, "a.test", "a.test").await;
}

fn roots(ca: &TestCa) -> ClientOptions {
    ClientOptions::new(Verify::Roots(Arc::new(ca.roots())))
}

/// Waits until a handshake with this SNI presents a certificate naming `want`.
async fn eventually_presents(lg: &LocalGateway, sni: &str, want: &str) -> Vec<String> {
    let opts = ClientOptions::new(Verify::Nothing);
    let mut last = Vec::new();
    for _ in 0..200 {
        if let Ok((_, hs)) = connect(lg.https, Some(sni), &opts).await {
            last = hs.names;
            if last.iter().any(|n| n == want) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{sni}: never presented {want}; last {last:?}\n{}",
        lg.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sni_selects_exact_wildcard_and_default_certificates() {
    let s = setup(&[]).await;
    let a = s.ca.issue(&["a.test"]).unwrap();
    let w = s.ca.issue(&["*.w.test"]).unwrap();
    let b = s.ca.issue(&["b.test"]).unwrap();
    let other = s.ca.issue(&["b.test"]).unwrap();
    let broken = format!(
        "{}---\n",
        tls_secret(
            "broken",
            &gatehouse_e2e::tls::Issued {
                cert_pem: b.cert_pem.clone(),
                key_pem: other.key_pem.clone()
            }
        )
    );
    s.lg.write(
        "tls.yaml",
        &[
            tls_secret("a", &a),
            tls_secret("w", &w),
            broken,
            ingress("a", &["a.test"], &[(&["a.test"], Some("a"))], ""),
            ingress("w", &["x.w.test"], &[(&["*.w.test"], Some("w"))], ""),
            ingress("b", &["b.test"], &[(&["b.test"], Some("broken"))], ""),
            ingress("m", &["m.test"], &[(&["m.test"], Some("missing"))], ""),
        ]
        .join("\n---\n"),
    )
    .unwrap();
    eventually_presents(&s.lg, "a.test", "a.test").await;

    let any = ClientOptions::new(Verify::Nothing);
    let default_cn = "CN=Gatehouse Default Certificate";
    let cases = [
        ("exact", Some("a.test"), "a.test"),
        ("exact_case_insensitive", Some("A.TEST"), "a.test"),
        ("wildcard", Some("x.w.test"), "*.w.test"),
        ("wildcard_one_label_only", Some("y.x.w.test"), default_cn),
        ("unknown_sni_gets_default", Some("unknown.test"), default_cn),
        ("no_sni_gets_default", None, default_cn),
        ("key_mismatch_falls_back", Some("b.test"), default_cn),
        ("missing_secret_falls_back", Some("m.test"), default_cn),
    ];
    for (case, sni, want) in cases {
        let (_, hs) = connect(s.lg.https, sni, &any)
            .await
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert!(
            hs.names.iter().any(|n| n == want),
            "case {case}: presented {:?}",
            hs.names
        );
    }
    // The served chains verify against the CA, with hostname checks.
    for sni in ["a.test", "x.w.test"] {
        let (mut conn, hs) = TlsHttp::open(s.lg.https, sni, &roots(&s.ca))
            .await
            .unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(hs.alpn.as_deref(), Some(&b"h2"[..]), "{sni}: ALPN picks h2");
        let r = conn.get(sni, "/hello").await.unwrap();
        assert_eq!(r.status, 200, "{sni}");
        let echo = r.echo().unwrap();
        assert_eq!(echo.headers["x-forwarded-proto"], "https");
        assert_eq!(echo.host, sni);
    }
    // The default certificate does not verify (it is self-signed).
    assert!(connect(s.lg.https, Some("unknown.test"), &roots(&s.ca))
        .await
        .is_err());
    // Broken Secrets are diagnosed by name in the controller log, keys never shown.
    let logs = s.lg.controller.output();
    assert!(
        logs.contains("default/broken") && logs.contains("does not match"),
        "{logs}"
    );
    assert!(
        logs.contains("default/missing") && logs.contains("not found"),
        "{logs}"
    );
    assert!(!logs.contains("PRIVATE KEY") && !s.lg.gateway.output().contains("PRIVATE KEY"));
}

/// (case, client ALPN, client versions, negotiated ALPN, negotiated version)
type AlpnCase = (
    &'static str,
    Vec<&'static [u8]>,
    Vec<&'static rustls::SupportedProtocolVersion>,
    Option<&'static [u8]>,
    rustls::ProtocolVersion,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alpn_and_protocol_versions() {
    let s = setup(&[]).await;
    serve_a_test(&s, "").await;
    let base = roots(&s.ca);
    let cases: [AlpnCase; 4] = [
        (
            "h2_preferred",
            vec![b"h2", b"http/1.1"],
            vec![&rustls::version::TLS13],
            Some(b"h2"),
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            "http11_only_client",
            vec![b"http/1.1"],
            vec![&rustls::version::TLS13],
            Some(b"http/1.1"),
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            "no_alpn",
            vec![],
            vec![&rustls::version::TLS13],
            None,
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            "tls12_accepted",
            vec![b"h2"],
            vec![&rustls::version::TLS12],
            Some(b"h2"),
            rustls::ProtocolVersion::TLSv1_2,
        ),
    ];
    for (case, alpn, versions, want_alpn, want_version) in cases {
        let mut opts = base.clone();
        opts.alpn = alpn.into_iter().map(<[u8]>::to_vec).collect();
        opts.versions = versions;
        let (mut conn, hs) = TlsHttp::open(s.lg.https, "a.test", &opts)
            .await
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert_eq!(hs.alpn.as_deref(), want_alpn, "case {case}");
        assert_eq!(hs.version, Some(want_version), "case {case}");
        assert_eq!(
            conn.get("a.test", "/").await.unwrap().status,
            200,
            "case {case}"
        );
    }
    // TLS 1.0 and 1.1 are refused (rustls cannot offer them; openssl can).
    for flag in ["-tls1", "-tls1_1"] {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                flag,
                "-connect",
                &s.lg.https.to_string(),
                "-servername",
                "a.test",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} handshake succeeded:\n{text}");
        assert!(
            !text.contains("BEGIN CERTIFICATE"),
            "{flag}: a certificate was sent:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_redirects_to_https_unless_opted_out() {
    let s = setup(&[]).await;
    let a = s.ca.issue(&["a.test", "b.test", "c.test"]).unwrap();
    let off = ", annotations: {nginx.ingress.kubernetes.io/ssl-redirect: \"false\"}";
    let force = ", annotations: {gatehouse.dev/force-ssl-redirect: \"true\"}";
    s.lg.write(
        "tls.yaml",
        &[
            tls_secret("a", &a),
            ingress("a", &["a.test"], &[(&["a.test"], Some("a"))], ""),
            ingress("b", &["b.test"], &[(&["b.test"], Some("a"))], off),
            ingress("c", &["c.test"], &[], force),
            ingress("d", &["d.test"], &[], ""),
        ]
        .join("\n---\n"),
    )
    .unwrap();
    let r = s.lg.eventually("a.test", "/x", |r| r.status == 308).await;
    let port = s.lg.https.port();
    let cases = [
        (
            "tls_host_redirects",
            "a.test",
            "/shop?q=1",
            308,
            Some(format!("https://a.test:{port}/shop?q=1")),
        ),
        (
            "acme_challenge_not_redirected",
            "a.test",
            "/.well-known/acme-challenge/token",
            200,
            None,
        ),
        ("opt_out_annotation", "b.test", "/", 200, None),
        (
            "forced_without_tls",
            "c.test",
            "/p",
            308,
            Some(format!("https://c.test:{port}/p")),
        ),
        ("no_tls_no_redirect", "d.test", "/", 200, None),
    ];
    assert_eq!(r.status, 308);
    for (case, host, path, status, location) in cases {
        let r = s.lg.get(host, path).await;
        assert_eq!(r.status, status, "case {case}");
        let got = r
            .headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got, location, "case {case}");
    }
    // The redirect target answers over HTTPS.
    let (mut conn, _) = TlsHttp::open(s.lg.https, "a.test", &roots(&s.ca))
        .await
        .unwrap();
    assert_eq!(conn.get("a.test", "/shop?q=1").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hsts_header_over_https_only() {
    let s = setup(&["--hsts-max-age", "31536000", "--hsts-include-subdomains"]).await;
    serve_a_test(&s, ", annotations: {gatehouse.dev/ssl-redirect: \"false\"}").await;
    let (mut conn, _) = TlsHttp::open(s.lg.https, "a.test", &roots(&s.ca))
        .await
        .unwrap();
    let over_tls = conn.get("a.test", "/").await.unwrap();
    assert_eq!(
        over_tls.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let not_found = conn.get("nowhere.test", "/").await.unwrap();
    assert_eq!(not_found.status, 404);
    assert!(not_found.headers.contains_key("strict-transport-security"));
    let plain = s.lg.get("a.test", "/").await;
    assert_eq!(plain.status, 200);
    assert!(!plain.headers.contains_key("strict-transport-security"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificate_rotation_keeps_open_connections() {
    let s = setup(&[]).await;
    let first = s.ca.issue(&["a.test"]).unwrap();
    let ing = ingress("a", &["a.test"], &[(&["a.test"], Some("a"))], "");
    s.lg.write(
        "tls.yaml",
        &[tls_secret("a", &first), ing.clone()].join("\n---\n"),
    )
    .unwrap();
    eventually_presents(&s.lg, "a.test", "a.test").await;
    let (mut open, before) = TlsHttp::open(s.lg.https, "a.test", &roots(&s.ca))
        .await
        .unwrap();
    assert!(matches!(open, TlsHttp::H2(_)));
    assert_eq!(open.get("a.test", "/1").await.unwrap().status, 200);

    // Rotate: same Secret, new certificate.
    let second = s.ca.issue(&["a.test", "rotated.a.test"]).unwrap();
    s.lg.write("tls.yaml", &[tls_secret("a", &second), ing].join("\n---\n"))
        .unwrap();
    let names = eventually_presents(&s.lg, "a.test", "rotated.a.test").await;
    assert!(names.contains(&"a.test".to_owned()));
    let (_, after) = connect(s.lg.https, Some("a.test"), &roots(&s.ca))
        .await
        .unwrap();
    assert_ne!(
        before.der, after.der,
        "new handshakes get the new certificate"
    );
    // The HTTP/2 connection opened before the rotation still works.
    for i in 0..5 {
        let r = open.get("a.test", &format!("/after-{i}")).await.unwrap();
        assert_eq!(r.status, 200, "request {i} on the old connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_metrics() {
    let s = setup(&[]).await;
    serve_a_test(&s, "").await;
    // A plain HTTP request to the HTTPS port is a failed handshake.
    let _ = s.lg.client.get(s.lg.https, "a.test", "/", &[]).await;
    let mut text = String::new();
    for _ in 0..100 {
        text = s.lg.metrics().await;
        if text
            .contains("gatehouse_gateway_tls_certificate_expiry_seconds{certificate=\"default/a\"}")
            && text.contains("tls_handshake_failures_total")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let value = |prefix: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(
        value("gatehouse_gateway_tls_handshakes_total{version=\"TLSv1_3\"}") >= 1.0,
        "{text}"
    );
    assert!(value("gatehouse_gateway_tls_certificate_selections_total{match=\"exact\"}") >= 1.0);
    let expiry =
        value("gatehouse_gateway_tls_certificate_expiry_seconds{certificate=\"default/a\"}");
    assert!(expiry > 86400.0, "expiry in seconds from now: {expiry}");
    assert!(
        value("gatehouse_gateway_tls_certificate_expiry_seconds{certificate=\"self-signed\"}")
            > 0.0
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("gatehouse_gateway_tls_handshake_failures_total{reason=")),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_default_certificate_replaces_the_self_signed_one() {
    let web = EchoPod::start("web", "web-1").unwrap();
    let lg = LocalGateway::start_with(&["--default-certificate", "default/fallback"], &[])
        .await
        .unwrap();
    let ca = TestCa::new().unwrap();
    let fallback = ca.issue(&["fallback.test"]).unwrap();
    lg.write(
        "tls.yaml",
        &[
            service_manifest("web", &[(&web, true)]),
            tls_secret("fallback", &fallback),
            ingress("m", &["m.test"], &[(&["m.test"], Some("missing"))], ""),
        ]
        .join("\n---\n"),
    )
    .unwrap();
    // Unknown SNI, no SNI, and a host whose own Secret is missing all get
    // the controller's default certificate, which verifies against the CA.
    eventually_presents(&lg, "unknown.test", "fallback.test").await;
    let any = ClientOptions::new(Verify::Nothing);
    for (case, sni) in [("no_sni", None), ("broken_host", Some("m.test"))] {
        let (_, hs) = connect(lg.https, sni, &any).await.unwrap();
        assert!(
            hs.names.contains(&"fallback.test".to_owned()),
            "case {case}: {:?}",
            hs.names
        );
    }
    assert!(connect(lg.https, Some("fallback.test"), &roots(&ca))
        .await
        .is_ok());
}

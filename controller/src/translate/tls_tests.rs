//! TLS translation: Secrets to certificates, fallbacks, redirects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::tests::{config, ingress, state, with_services};
use super::translate;
use crate::state::ObjectKey;
use base64::Engine;
use gatehouse_model::{CertificateId, HostMatch};

struct Pem {
    crt: String,
    key: String,
}

fn cert(names: &[&str], expired: bool) -> Pem {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let c = params.self_signed(&key).unwrap();
    Pem {
        crt: c.pem(),
        key: key.serialize_pem(),
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret(name: &str, type_: &str, crt: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: {type_}\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(crt),
        b64(key)
    )
}

/// An Ingress for `host` → service `s` with a tls section for `tls_hosts`
/// using `secret`, and extra annotations.
fn tls_ingress(
    name: &str,
    host: &str,
    tls_hosts: &[&str],
    secret: Option<&str>,
    annotations: &str,
) -> String {
    let base = ingress(name, host, &[("Prefix", "/", "s")]);
    let base = base.replacen(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata: {{name: {name}{annotations}}}"),
        1,
    );
    let hosts = tls_hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let secret = secret
        .map(|s| format!(", secretName: {s}"))
        .unwrap_or_default();
    base.replacen(
        "  rules:\n",
        &format!("  tls:\n  - {{hosts: [{hosts}]{secret}}}\n  rules:\n"),
        1,
    )
}

fn reasons(t: &super::Translation) -> Vec<(String, &'static str)> {
    t.diagnostics
        .iter()
        .map(|d| (d.object.name.clone(), d.reason.as_str()))
        .collect()
}

#[test]
fn secrets_become_certificates_or_fall_back_with_a_diagnostic() {
    let good = cert(&["a.test"], false);
    let other = cert(&["a.test"], false);
    let expired = cert(&["a.test"], true);
    struct Case {
        name: &'static str,
        secret: String,
        want_cert: bool,
        want_reason: Option<&'static str>,
    }
    let cases = [
        Case { name: "valid", secret: secret("tls", "kubernetes.io/tls", &good.crt, &good.key), want_cert: true, want_reason: None },
        Case { name: "missing", secret: String::new(), want_cert: false, want_reason: Some("SecretNotFound") },
        Case { name: "wrong_type", secret: secret("tls", "Opaque", &good.crt, &good.key), want_cert: false, want_reason: Some("InvalidSecret") },
        Case { name: "key_of_other_cert", secret: secret("tls", "kubernetes.io/tls", &good.crt, &other.key), want_cert: false, want_reason: Some("InvalidCertificate") },
        Case { name: "expired", secret: secret("tls", "kubernetes.io/tls", &expired.crt, &expired.key), want_cert: false, want_reason: Some("CertificateNotValidNow") },
        Case { name: "not_pem", secret: secret("tls", "kubernetes.io/tls", "garbage", &good.key), want_cert: false, want_reason: Some("InvalidCertificate") },
        Case {
            name: "missing_key_entry",
            secret: format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: tls}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n", b64(&good.crt)),
            want_cert: false,
            want_reason: Some("InvalidSecret"),
        },
    ];
    for case in cases {
        let mut docs = vec![tls_ingress("a", "a.test", &["a.test"], Some("tls"), "")];
        if !case.secret.is_empty() {
            docs.push(case.secret.clone());
        }
        // An unrelated host with its own valid certificate is unaffected.
        let b = cert(&["b.test"], false);
        docs.push(secret("btls", "kubernetes.io/tls", &b.crt, &b.key));
        docs.push(tls_ingress("b", "b.test", &["b.test"], Some("btls"), ""));
        let t = translate(&state(&with_services(docs, &["s"])), &config());
        let snap = &t.snapshot;
        let a = snap
            .tls_hosts
            .iter()
            .find(|h| h.host == HostMatch::Exact("a.test".into()))
            .unwrap();
        assert_eq!(
            a.certificate.is_some(),
            case.want_cert,
            "case {}",
            case.name
        );
        let b_host = snap
            .tls_hosts
            .iter()
            .find(|h| h.host == HostMatch::Exact("b.test".into()))
            .unwrap();
        assert_eq!(
            b_host.certificate,
            Some(CertificateId::new("default", "btls")),
            "case {}",
            case.name
        );
        let want: Vec<(String, &str)> = case
            .want_reason
            .map(|r| ("a".to_owned(), r))
            .into_iter()
            .collect();
        assert_eq!(reasons(&t), want, "case {}", case.name);
        for d in &t.diagnostics {
            assert!(
                d.message.contains("default/tls"),
                "diagnostic names the Secret: {d}"
            );
            assert!(!d.message.contains("PRIVATE KEY"), "no key material: {d}");
        }
        // The redirect holds whether or not the certificate is usable.
        assert!(
            snap.virtual_hosts
                .iter()
                .all(|v| v.routes.iter().all(|r| r.redirect_to_https)),
            "case {}",
            case.name
        );
        assert!(snap.validate().is_ok());
    }
}

#[test]
fn redirect_annotations() {
    let c = cert(&["a.test", "*.w.test"], false);
    let sec = secret("tls", "kubernetes.io/tls", &c.crt, &c.key);
    let cases = [
        ("tls_host_redirects_by_default", tls_ingress("i", "a.test", &["a.test"], Some("tls"), ""), true),
        ("gatehouse_opt_out", tls_ingress("i", "a.test", &["a.test"], Some("tls"), ", annotations: {gatehouse.dev/ssl-redirect: \"false\"}"), false),
        ("nginx_opt_out", tls_ingress("i", "a.test", &["a.test"], Some("tls"), ", annotations: {nginx.ingress.kubernetes.io/ssl-redirect: \"false\"}"), false),
        ("no_tls_no_redirect", ingress("i", "a.test", &[("Prefix", "/", "s")]), false),
        ("nginx_force_without_tls", ingress("i", "a.test", &[("Prefix", "/", "s")]).replace("metadata: {name: i}", "metadata: {name: i, annotations: {nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"}}"), true),
        ("wildcard_tls_host_covers_route_host", tls_ingress("i", "x.w.test", &["*.w.test"], Some("tls"), ""), true),
        ("tls_without_secret_still_redirects", tls_ingress("i", "a.test", &["a.test"], None, ""), true),
    ];
    for (name, ing, want) in cases {
        let t = translate(
            &state(&with_services(vec![ing, sec.clone()], &["s"])),
            &config(),
        );
        assert!(t.diagnostics.is_empty(), "case {name}: {:?}", t.diagnostics);
        let r = &t.snapshot.virtual_hosts[0].routes[0];
        assert_eq!(r.redirect_to_https, want, "case {name}");
    }
    let bad = tls_ingress(
        "i",
        "a.test",
        &["a.test"],
        Some("tls"),
        ", annotations: {gatehouse.dev/ssl-redirect: \"nope\"}",
    );
    let t = translate(&state(&with_services(vec![bad, sec], &["s"])), &config());
    assert_eq!(reasons(&t), vec![("i".to_owned(), "InvalidAnnotation")]);
    assert!(
        t.snapshot.virtual_hosts[0].routes[0].redirect_to_https,
        "default kept"
    );
}

#[test]
fn tls_host_conflicts_and_mismatches() {
    let a = cert(&["a.test"], false);
    let b = cert(&["a.test"], false);
    let docs = vec![
        secret("one", "kubernetes.io/tls", &a.crt, &a.key),
        secret("two", "kubernetes.io/tls", &b.crt, &b.key),
        tls_ingress(
            "first",
            "a.test",
            &["a.test"],
            Some("one"),
            ", creationTimestamp: \"2026-01-01T00:00:00Z\"",
        ),
        tls_ingress(
            "second",
            "a.test",
            &["a.test", "other.test"],
            Some("two"),
            ", creationTimestamp: \"2026-02-01T00:00:00Z\"",
        ),
    ];
    let t = translate(&state(&with_services(docs, &["s"])), &config());
    let mut got = reasons(&t);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("second".to_owned(), "CertificateHostMismatch"),
            ("second".to_owned(), "HostPathConflict"),
            ("second".to_owned(), "TlsHostConflict")
        ]
    );
    let host = |h: &str| {
        t.snapshot
            .tls_hosts
            .iter()
            .find(|t| t.host == HostMatch::Exact(h.into()))
            .unwrap()
            .certificate
            .clone()
    };
    assert_eq!(host("a.test"), Some(CertificateId::new("default", "one")));
    assert_eq!(
        host("other.test"),
        Some(CertificateId::new("default", "two")),
        "mismatch is served anyway"
    );
    assert_eq!(t.snapshot.certificates.len(), 2);
}

#[test]
fn default_certificate_from_a_secret() {
    let c = cert(&["default.test"], false);
    let docs = with_services(
        vec![secret("fallback", "kubernetes.io/tls", &c.crt, &c.key)],
        &["s"],
    );
    let st = state(&docs);
    let mut cfg = config();
    cfg.default_certificate = Some(ObjectKey::new("default", "fallback"));
    let t = translate(&st, &cfg);
    assert_eq!(
        t.snapshot.default_certificate,
        Some(CertificateId::new("default", "fallback"))
    );
    assert!(t
        .snapshot
        .certificates
        .contains_key(&CertificateId::new("default", "fallback")));
    cfg.default_certificate = Some(ObjectKey::new("default", "nope"));
    let t = translate(&st, &cfg);
    assert_eq!(t.snapshot.default_certificate, None);
    assert_eq!(reasons(&t), vec![("nope".to_owned(), "SecretNotFound")]);
}

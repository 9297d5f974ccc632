//! Named, table-driven tests of translation, checked through the same router
//! the gateway uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{translate, TranslateConfig};
use crate::manifests::parse_manifest;
use crate::state::ClusterState;
use gatehouse_model::host::normalize_request_host;
use gatehouse_model::{Router, Snapshot};
use std::path::Path;

pub(super) const CLASS: &str = "
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: gatehouse}
spec: {controller: gatehouse.dev/ingress-controller}
";

pub(super) fn config() -> TranslateConfig {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    TranslateConfig::at(now)
}

pub(super) fn state(docs: &[String]) -> ClusterState {
    let mut st = ClusterState::default();
    for (i, doc) in docs.iter().enumerate() {
        let objs = parse_manifest(Path::new(&format!("doc{i}.yaml")), doc)
            .unwrap_or_else(|e| panic!("fixture {i} does not parse: {e}\n{doc}"));
        for o in objs {
            st.insert(o);
        }
    }
    st
}

/// A Service `name` with port 80 named `http`, and one ready endpoint
/// 10.0.0.N:8080 where N is derived from the name.
pub(super) fn service(name: &str) -> Vec<String> {
    let ip = 1 + name.bytes().map(u32::from).sum::<u32>() % 250;
    vec![
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n"
        ),
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-abc\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n- addresses: [10.0.0.{ip}]\n  conditions: {{ready: true}}\n"
        ),
    ]
}

/// An Ingress of our class with one rule for `host` and these (type, path,
/// service) paths.
pub(super) fn ingress(name: &str, host: &str, paths: &[(&str, &str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: \"{host}\"\n    http:\n      paths:\n"
    );
    for (ty, path, svc) in paths {
        s += &format!(
            "      - {{pathType: {ty}, path: \"{path}\", backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
        );
    }
    s
}

fn router(snap: &Snapshot) -> Router<String> {
    Router::from_snapshot(
        snap,
        |_, r| r.backend.0.clone(),
        |d| format!("default:{}", d.0),
    )
}

/// Which service a request reaches ("" = none, i.e. 404).
pub(super) fn route(snap: &Snapshot, host: &str, path: &str) -> String {
    let host = normalize_request_host(host);
    router(snap)
        .find(&host, path)
        .map(|b| {
            let svc = b.split('/').nth(1).unwrap_or("");
            let svc = svc.split(':').next().unwrap_or("");
            if b.starts_with("default:") {
                format!("default:{svc}")
            } else {
                svc.to_owned()
            }
        })
        .unwrap_or_default()
}

pub(super) fn with_services(mut docs: Vec<String>, names: &[&str]) -> Vec<String> {
    docs.push(CLASS.to_owned());
    for n in names {
        docs.extend(service(n));
    }
    docs
}

/// Every row of the "Examples" table in the Kubernetes Ingress documentation
/// (concepts/services-networking/ingress, "Path types" → "Examples").
#[test]
fn kubernetes_path_matching_examples() {
    type Row<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
        bool,
        Option<&'a str>,
    );
    // (case, rules as (type, path), request paths, matches?, which path wins)
    let rows: &[Row] = &[
        (
            "prefix_root_matches_all",
            &[("Prefix", "/")],
            &["/", "/anything", "/a/b/c"],
            true,
            Some("/"),
        ),
        (
            "exact_foo_matches_foo",
            &[("Exact", "/foo")],
            &["/foo"],
            true,
            Some("/foo"),
        ),
        (
            "exact_foo_not_bar",
            &[("Exact", "/foo")],
            &["/bar"],
            false,
            None,
        ),
        (
            "exact_foo_not_foo_slash",
            &[("Exact", "/foo")],
            &["/foo/"],
            false,
            None,
        ),
        (
            "exact_foo_slash_not_foo",
            &[("Exact", "/foo/")],
            &["/foo"],
            false,
            None,
        ),
        (
            "prefix_foo_matches_foo_and_slash",
            &[("Prefix", "/foo")],
            &["/foo", "/foo/"],
            true,
            Some("/foo"),
        ),
        (
            "prefix_foo_slash_matches_foo_and_slash",
            &[("Prefix", "/foo/")],
            &["/foo", "/foo/"],
            true,
            Some("/foo/"),
        ),
        (
            "prefix_aaa_bb_not_aaa_bbb",
            &[("Prefix", "/aaa/bb")],
            &["/aaa/bbb"],
            false,
            None,
        ),
        (
            "prefix_aaa_bbb_matches_itself",
            &[("Prefix", "/aaa/bbb")],
            &["/aaa/bbb"],
            true,
            Some("/aaa/bbb"),
        ),
        (
            "prefix_ignores_trailing_slash_of_rule",
            &[("Prefix", "/aaa/bbb/")],
            &["/aaa/bbb"],
            true,
            Some("/aaa/bbb/"),
        ),
        (
            "prefix_matches_trailing_slash_of_request",
            &[("Prefix", "/aaa/bbb")],
            &["/aaa/bbb/"],
            true,
            Some("/aaa/bbb"),
        ),
        (
            "prefix_matches_subpath",
            &[("Prefix", "/aaa/bbb")],
            &["/aaa/bbb/ccc"],
            true,
            Some("/aaa/bbb"),
        ),
        (
            "prefix_not_string_prefix",
            &[("Prefix", "/aaa/bbb")],
            &["/aaa/bbbxyz"],
            false,
            None,
        ),
        (
            "longest_of_root_and_aaa",
            &[("Prefix", "/"), ("Prefix", "/aaa")],
            &["/aaa/ccc"],
            true,
            Some("/aaa"),
        ),
        (
            "longest_of_three",
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            &["/aaa/bbb"],
            true,
            Some("/aaa/bbb"),
        ),
        (
            "root_when_nothing_longer",
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            &["/ccc"],
            true,
            Some("/"),
        ),
        (
            "no_match_uses_default_backend",
            &[("Prefix", "/aaa")],
            &["/ccc"],
            false,
            None,
        ),
        (
            "mixed_prefers_exact",
            &[("Prefix", "/foo"), ("Exact", "/foo")],
            &["/foo"],
            true,
            Some("Exact /foo"),
        ),
    ];
    for (case, rules, requests, matches, winner) in rows {
        // One service per rule, named after its position.
        let names: Vec<String> = (0..rules.len()).map(|i| format!("svc{i}")).collect();
        let paths: Vec<(&str, &str, &str)> = rules
            .iter()
            .zip(&names)
            .map(|((ty, p), n)| (*ty, *p, n.as_str()))
            .collect();
        let mut docs = vec![ingress("paths", "", &paths)];
        // A default backend in its own Ingress, so "no match" is visible.
        docs.push(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: zdefault}\nspec:\n  ingressClassName: gatehouse\n  defaultBackend: {service: {name: fallback, port: {number: 80}}}\n".into(),
        );
        let name_refs: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .chain(["fallback"])
            .collect();
        let st = state(&with_services(docs, &name_refs));
        let t = translate(&st, &config());
        assert!(t.diagnostics.is_empty(), "case {case}: {:?}", t.diagnostics);
        let want = match winner {
            None => "default:fallback".to_owned(),
            Some(w) => {
                let idx = rules
                    .iter()
                    .position(|(ty, p)| *w == *p || *w == format!("{ty} {p}"))
                    .unwrap();
                format!("svc{idx}")
            }
        };
        for req in *requests {
            let got = route(&t.snapshot, "any.host", req);
            assert_eq!(got, want, "case {case}: request {req}");
            assert_eq!(
                !got.starts_with("default:"),
                *matches,
                "case {case}: request {req}"
            );
        }
    }
}

#[test]
fn wildcard_host_matches_one_label_only() {
    let docs = with_services(
        vec![ingress("w", "*.foo.com", &[("Prefix", "/", "wild")])],
        &["wild"],
    );
    let t = translate(&state(&docs), &config());
    let cases = [
        ("one_label", "bar.foo.com", "wild"),
        ("two_labels", "baz.bar.foo.com", ""),
        ("bare_domain", "foo.com", ""),
        ("case_insensitive_with_port", "BAR.Foo.com:8080", "wild"),
    ];
    for (case, host, want) in cases {
        assert_eq!(route(&t.snapshot, host, "/x"), want, "case {case}");
    }
}

#[test]
fn exact_host_beats_wildcard_and_hostless_rules() {
    let docs = with_services(
        vec![
            ingress("a", "*.foo.com", &[("Prefix", "/", "wild")]),
            ingress("b", "api.foo.com", &[("Prefix", "/v1", "api")]),
            ingress("c", "", &[("Prefix", "/", "any")]),
        ],
        &["wild", "api", "any"],
    );
    let t = translate(&state(&docs), &config());
    let cases = [
        ("exact_host_path", "api.foo.com", "/v1/users", "api"),
        (
            "exact_host_other_path_falls_to_wildcard",
            "api.foo.com",
            "/v2",
            "wild",
        ),
        ("wildcard", "www.foo.com", "/", "wild"),
        ("hostless_for_other_hosts", "example.org", "/x", "any"),
    ];
    for (case, host, path, want) in cases {
        assert_eq!(route(&t.snapshot, host, path), want, "case {case}");
    }
}

#[test]
fn named_and_numbered_ports_resolve_through_endpoint_slices() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: multi}\nspec:\n  ports:\n  - {name: http, port: 80, targetPort: web}\n  - {name: admin, port: 9000, targetPort: 9001}\n";
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: multi-1\n  labels: {kubernetes.io/service-name: multi}\naddressType: IPv4\nports: [{name: http, port: 8080}, {name: admin, port: 9001}]\nendpoints:\n- addresses: [10.1.0.1]\n";
    let unnamed_svc = "apiVersion: v1\nkind: Service\nmetadata: {name: single}\nspec:\n  ports: [{port: 80, targetPort: 3000}]\n";
    let unnamed_slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: single-1\n  labels: {kubernetes.io/service-name: single}\naddressType: IPv4\nports: [{port: 3000}]\nendpoints:\n- addresses: [10.1.0.2]\n";
    let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ports}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - http:\n      paths:\n      - {pathType: Prefix, path: /by-name, backend: {service: {name: multi, port: {name: http}}}}\n      - {pathType: Prefix, path: /by-number, backend: {service: {name: multi, port: {number: 9000}}}}\n      - {pathType: Prefix, path: /unnamed, backend: {service: {name: single, port: {number: 80}}}}\n";
    let docs: Vec<String> = [CLASS, svc, slice, unnamed_svc, unnamed_slice, ing]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let t = translate(&state(&docs), &config());
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let addr = |id: &str| {
        let b = &t.snapshot.backends[&gatehouse_model::BackendId(id.into())];
        b.endpoints
            .iter()
            .map(|e| e.address.to_string())
            .collect::<Vec<_>>()
    };
    let cases = [
        ("port_by_name", "default/multi:http", vec!["10.1.0.1:8080"]),
        (
            "port_by_number_maps_to_named_slice_port",
            "default/multi:9000",
            vec!["10.1.0.1:9001"],
        ),
        ("unnamed_port", "default/single:80", vec!["10.1.0.2:3000"]),
    ];
    for (case, id, want) in cases {
        assert_eq!(addr(id), want, "case {case}");
    }
}

#[test]
fn endpoint_conditions_select_ready_then_serving_terminating() {
    let mk = |eps: &str| {
        vec![
            CLASS.to_owned(),
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{name: http, port: 80}]}\n".to_owned(),
            format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s-1\n  labels: {{kubernetes.io/service-name: s}}\naddressType: IPv4\nports: [{{name: http, port: 80}}]\nendpoints:\n{eps}"),
            ingress("i", "", &[("Prefix", "/", "s")]),
        ]
    };
    let cases: [(&str, &str, Vec<&str>); 5] = [
        (
            "only_ready_when_some_ready",
            "- {addresses: [10.0.0.1], conditions: {ready: true}}\n- {addresses: [10.0.0.2], conditions: {ready: false, serving: true, terminating: true}}\n- {addresses: [10.0.0.3], conditions: {ready: false, serving: false}}\n",
            vec!["10.0.0.1:80"],
        ),
        (
            "serving_terminating_when_none_ready",
            "- {addresses: [10.0.0.2], conditions: {ready: false, serving: true, terminating: true}}\n- {addresses: [10.0.0.3], conditions: {ready: false, serving: false, terminating: true}}\n",
            vec!["10.0.0.2:80"],
        ),
        ("unset_conditions_mean_ready", "- {addresses: [10.0.0.4]}\n", vec!["10.0.0.4:80"]),
        ("not_ready_not_serving_is_empty", "- {addresses: [10.0.0.5], conditions: {ready: false}}\n", vec![]),
        (
            "duplicates_across_addresses_collapse",
            "- {addresses: [10.0.0.6]}\n- {addresses: [10.0.0.6]}\n",
            vec!["10.0.0.6:80"],
        ),
    ];
    for (case, eps, want) in cases {
        let t = translate(&state(&mk(eps)), &config());
        let b = &t.snapshot.backends[&gatehouse_model::BackendId("default/s:80".into())];
        let got: Vec<String> = b.endpoints.iter().map(|e| e.address.to_string()).collect();
        assert_eq!(got, want, "case {case}");
    }
}

#[test]
fn missing_service_or_port_keeps_route_with_no_endpoints() {
    let docs = with_services(
        vec![
            ingress("gone", "a.com", &[("Prefix", "/", "nosuch")]),
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: badport}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: b.com\n    http:\n      paths:\n      - {pathType: Prefix, path: /, backend: {service: {name: real, port: {number: 81}}}}\n".into(),
        ],
        &["real"],
    );
    let t = translate(&state(&docs), &config());
    let reasons: Vec<(&str, &str)> = t
        .diagnostics
        .iter()
        .map(|d| (d.object.name.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("badport", "BackendUnavailable"),
            ("gone", "BackendUnavailable")
        ]
    );
    assert_eq!(route(&t.snapshot, "a.com", "/"), "nosuch");
    assert!(t.snapshot.backends.values().all(|b| b.endpoints.is_empty()));
}

fn aged(name: &str, ns: &str, created: Option<&str>, host: &str, svc: &str) -> String {
    let ts = created
        .map(|c| format!(", creationTimestamp: \"{c}\""))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {ns}{ts}}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{pathType: Prefix, path: /, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
    )
}

#[test]
fn conflicting_ingresses_older_wins() {
    struct Case {
        name: &'static str,
        docs: Vec<String>,
        winner: &'static str,
        loser: &'static str,
    }
    let svc_docs = |ns: &str, n: &str| {
        service(n)
            .into_iter()
            .map(|d| {
                d.replace(
                    "metadata: {name",
                    &format!("metadata: {{namespace: {ns}, name"),
                )
                .replace(
                    "metadata:\n  name",
                    &format!("metadata:\n  namespace: {ns}\n  name"),
                )
            })
            .collect::<Vec<_>>()
    };
    let cases = vec![
        Case {
            name: "older_creation_timestamp_wins",
            docs: vec![
                aged(
                    "new",
                    "default",
                    Some("2026-02-01T00:00:00Z"),
                    "x.com",
                    "newsvc",
                ),
                aged(
                    "old",
                    "default",
                    Some("2026-01-01T00:00:00Z"),
                    "x.com",
                    "oldsvc",
                ),
            ],
            winner: "oldsvc",
            loser: "new",
        },
        Case {
            name: "same_age_namespace_then_name_breaks_tie",
            docs: vec![
                aged("a", "zeta", Some("2026-01-01T00:00:00Z"), "x.com", "newsvc"),
                aged(
                    "z",
                    "alpha",
                    Some("2026-01-01T00:00:00Z"),
                    "x.com",
                    "oldsvc",
                ),
            ],
            winner: "oldsvc",
            loser: "a",
        },
    ];
    for case in cases {
        let mut docs = case.docs;
        for ns in ["default", "zeta", "alpha"] {
            docs.extend(svc_docs(ns, "newsvc"));
            docs.extend(svc_docs(ns, "oldsvc"));
        }
        docs.push(CLASS.into());
        let t = translate(&state(&docs), &config());
        assert_eq!(
            route(&t.snapshot, "x.com", "/"),
            case.winner,
            "case {}",
            case.name
        );
        let conflicts: Vec<_> = t
            .diagnostics
            .iter()
            .filter(|d| d.reason.as_str() == "HostPathConflict")
            .collect();
        assert_eq!(
            conflicts.len(),
            1,
            "case {}: {:?}",
            case.name,
            t.diagnostics
        );
        assert_eq!(conflicts[0].object.name, case.loser, "case {}", case.name);
    }
}

#[test]
fn default_backend_conflict_keeps_oldest() {
    let def = |name: &str, ts: &str, svc: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, creationTimestamp: \"{ts}\"}}\nspec:\n  ingressClassName: gatehouse\n  defaultBackend: {{service: {{name: {svc}, port: {{name: http}}}}}}\n")
    };
    let docs = with_services(
        vec![
            def("second", "2026-03-01T00:00:00Z", "b"),
            def("first", "2026-01-01T00:00:00Z", "a"),
        ],
        &["a", "b"],
    );
    let t = translate(&state(&docs), &config());
    assert_eq!(route(&t.snapshot, "whatever", "/x"), "default:a");
    assert_eq!(t.diagnostics.len(), 1);
    assert_eq!(
        (
            t.diagnostics[0].object.name.as_str(),
            t.diagnostics[0].reason.as_str()
        ),
        ("second", "DefaultBackendConflict")
    );
}

#[test]
fn ingress_class_selection() {
    let with_class = |class_doc: &str, ing: &str| {
        let mut docs = vec![ing.to_owned()];
        if !class_doc.is_empty() {
            docs.push(class_doc.to_owned());
        }
        docs.extend(service("s"));
        docs
    };
    let ing_with = |spec_class: &str, annotations: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{annotations}}}\nspec:\n{spec_class}  rules:\n  - http:\n      paths:\n      - {{pathType: Prefix, path: /, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}\n")
    };
    let default_class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: gatehouse\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: gatehouse.dev/ingress-controller}\n";
    let foreign_class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gatehouse}\nspec: {controller: k8s.io/ingress-nginx}\n";
    let cases: Vec<(&str, Vec<String>, bool)> = vec![
        (
            "our_class_name",
            with_class(CLASS, &ing_with("  ingressClassName: gatehouse\n", "")),
            true,
        ),
        (
            "other_class_name_ignored",
            with_class(CLASS, &ing_with("  ingressClassName: nginx\n", "")),
            false,
        ),
        (
            "legacy_annotation_ours",
            with_class(
                CLASS,
                &ing_with(
                    "",
                    ", annotations: {kubernetes.io/ingress.class: gatehouse}",
                ),
            ),
            true,
        ),
        (
            "legacy_annotation_other",
            with_class(
                CLASS,
                &ing_with("", ", annotations: {kubernetes.io/ingress.class: nginx}"),
            ),
            false,
        ),
        (
            "no_class_not_default",
            with_class(CLASS, &ing_with("", "")),
            false,
        ),
        (
            "no_class_and_we_are_default",
            with_class(default_class, &ing_with("", "")),
            true,
        ),
        (
            "class_object_absent_still_ours",
            with_class("", &ing_with("  ingressClassName: gatehouse\n", "")),
            true,
        ),
        (
            "class_owned_by_other_controller",
            with_class(
                foreign_class,
                &ing_with("  ingressClassName: gatehouse\n", ""),
            ),
            false,
        ),
    ];
    for (case, docs, served) in cases {
        let t = translate(&state(&docs), &config());
        assert_eq!(!t.served_ingresses.is_empty(), served, "case {case}");
        assert_eq!(!t.snapshot.virtual_hosts.is_empty(), served, "case {case}");
    }
}

#[test]
fn invalid_rules_are_skipped_and_the_rest_served() {
    let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: mixed}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: \"*.*.bad.com\"\n    http:\n      paths:\n      - {pathType: Prefix, path: /, backend: {service: {name: s, port: {number: 80}}}}\n  - host: good.com\n    http:\n      paths:\n      - {pathType: Prefix, path: /ok, backend: {service: {name: s, port: {number: 80}}}}\n      - {pathType: Exact, path: \"/a//b\", backend: {service: {name: s, port: {number: 80}}}}\n      - {pathType: Prefix, path: /noport, backend: {service: {name: s}}}\n      - {pathType: Prefix, path: /ok, backend: {service: {name: s, port: {number: 80}}}}\n";
    let docs = with_services(vec![ing.to_owned()], &["s"]);
    let t = translate(&state(&docs), &config());
    let reasons: Vec<&str> = t.diagnostics.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "DuplicatePath",
            "InvalidBackend",
            "InvalidHost",
            "InvalidPath"
        ]
    );
    assert_eq!(route(&t.snapshot, "good.com", "/ok/x"), "s");
    assert_eq!(t.snapshot.virtual_hosts.len(), 1);
}

#[test]
fn translation_is_deterministic_and_independent_of_input_order() {
    let mut docs = with_services(
        vec![
            ingress(
                "a",
                "a.com",
                &[("Prefix", "/", "s1"), ("Exact", "/x", "s2")],
            ),
            ingress("b", "*.b.com", &[("Prefix", "/api", "s2")]),
            ingress("c", "", &[("Prefix", "/", "s3")]),
        ],
        &["s1", "s2", "s3"],
    );
    let first = translate(&state(&docs), &config());
    docs.reverse();
    let second = translate(&state(&docs), &config());
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first.snapshot).unwrap(),
        serde_json::to_string(&second.snapshot).unwrap()
    );
}

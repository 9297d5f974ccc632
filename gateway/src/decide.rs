//! What to do with a request, decided from its head alone: refuse it, answer
//! it ourselves, or proxy it. Pure; shared by the HTTP/1.x and HTTP/2 paths
//! so both follow the same rules.

use crate::settings::{https_location, HttpsConfig, ACME_CHALLENGE};
use crate::table::{RouteTable, RouteTarget};
use gatehouse_model::host::normalize_request_host;
use std::sync::Arc;

/// The parts of a request head a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `:authority`, an absolute-form authority, or `Host` (as sent).
    pub authority: &'a str,
    /// The path without the query, for routing.
    pub path: &'a str,
    /// Path and query, for the redirect location.
    pub path_and_query: &'a str,
    /// Total size of the header fields.
    pub header_bytes: usize,
    /// The client connection is TLS.
    pub tls: bool,
}

#[derive(Debug)]
pub enum Decision {
    /// 431: header fields over `--max-request-header-bytes`.
    HeadersTooLarge,
    /// 404: no rule and no default backend.
    NotFound,
    /// 308 to HTTPS.
    Redirect {
        target: Arc<RouteTarget>,
        location: String,
    },
    /// 503: the backend has no endpoints.
    NoEndpoints(Arc<RouteTarget>),
    Proxy(Arc<RouteTarget>),
}

impl Decision {
    /// The route whose metrics the request counts towards.
    pub fn target(&self) -> Option<&Arc<RouteTarget>> {
        match self {
            Decision::HeadersTooLarge | Decision::NotFound => None,
            Decision::Redirect { target, .. }
            | Decision::NoEndpoints(target)
            | Decision::Proxy(target) => Some(target),
        }
    }
}

pub fn decide(
    table: &RouteTable,
    https: &HttpsConfig,
    max_header_bytes: usize,
    req: RequestFacts<'_>,
) -> Decision {
    if req.header_bytes > max_header_bytes {
        return Decision::HeadersTooLarge;
    }
    let host = normalize_request_host(req.authority);
    let Some(target) = table.find(&host, req.path).cloned() else {
        return Decision::NotFound;
    };
    if let Some(port) = https.redirect_port {
        // ACME HTTP-01 challenges must stay reachable over plain HTTP.
        if target.redirect_to_https && !req.tls && !req.path.starts_with(ACME_CHALLENGE) {
            return Decision::Redirect {
                location: https_location(&host, port, req.path_and_query),
                target,
            };
        }
    }
    if !target.backend.has_endpoints() {
        return Decision::NoEndpoints(target);
    }
    Decision::Proxy(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::Snapshot;

    /// `shop.test`: `/` to a backend with an endpoint (TLS, so plain HTTP
    /// is redirected), `/down` to one without.
    fn table() -> RouteTable {
        let json = r#"{
          "virtual_hosts": [{"host": {"kind": "exact", "value": "shop.test"}, "routes": [
            {"path": {"kind": "prefix", "value": "/"}, "backend": "ns/up:80",
             "source": {"kind": "Ingress", "namespace": "ns", "name": "shop"}, "redirect_to_https": true},
            {"path": {"kind": "prefix", "value": "/down"}, "backend": "ns/empty:80",
             "source": {"kind": "Ingress", "namespace": "ns", "name": "shop"}}]}],
          "backends": {
            "ns/up:80": {"service": {"kind": "Service", "namespace": "ns", "name": "up"}, "port": "80",
                         "endpoints": [{"address": "127.0.0.1:9"}]},
            "ns/empty:80": {"service": {"kind": "Service", "namespace": "ns", "name": "empty"}, "port": "80",
                            "endpoints": []}}
        }"#;
        let snapshot: Snapshot = serde_json::from_str(json).unwrap();
        RouteTable::compile(1, &snapshot)
    }

    fn facts(authority: &'static str, path: &'static str, tls: bool) -> RequestFacts<'static> {
        RequestFacts {
            authority,
            path,
            path_and_query: path,
            header_bytes: 100,
            tls,
        }
    }

    #[test]
    fn decisions() {
        let t = table();
        let https = HttpsConfig {
            redirect_port: Some(8443),
            hsts: None,
        };
        let name = |d: &Decision| match d {
            Decision::HeadersTooLarge => "431".to_owned(),
            Decision::NotFound => "404".to_owned(),
            Decision::Redirect { location, .. } => format!("308 {location}"),
            Decision::NoEndpoints(_) => "503".to_owned(),
            Decision::Proxy(_) => "proxy".to_owned(),
        };
        let cases = [
            ("unknown_host", facts("other.test", "/", true), "404"),
            ("tls_proxied", facts("Shop.Test:443", "/a", true), "proxy"),
            (
                "plain_redirected",
                facts("shop.test", "/a?b=1", false),
                "308 https://shop.test:8443/a?b=1",
            ),
            (
                "acme_not_redirected",
                facts("shop.test", "/.well-known/acme-challenge/x", false),
                "proxy",
            ),
            ("no_endpoints", facts("shop.test", "/down", true), "503"),
        ];
        for (case, f, want) in cases {
            assert_eq!(name(&decide(&t, &https, 1000, f)), want, "case {case}");
        }
        let big = RequestFacts {
            header_bytes: 1001,
            ..facts("shop.test", "/", true)
        };
        assert_eq!(name(&decide(&t, &https, 1000, big)), "431");
        let no_https = HttpsConfig::default();
        assert_eq!(
            name(&decide(&t, &no_https, 1000, facts("shop.test", "/", false))),
            "proxy"
        );
    }
}

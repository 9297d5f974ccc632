//! What a request asks to do, in the terms authorizers decide on, derived
//! from the method and URL alone the way kube-apiserver's request-info
//! resolver does (before routing, so a forbidden user learns nothing about
//! which resources exist).

use std::collections::HashMap;

/// A request for a resource (`/api/...`, `/apis/<group>/...`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceRequest {
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for cluster-scoped and all-namespaces requests.
    pub namespace: String,
    /// Empty for collections (unless a `metadata.name=` field selector names one).
    pub name: String,
}

impl ResourceRequest {
    /// `resource` or `resource/subresource`, as rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// A request as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAttributes {
    Resource(ResourceRequest),
    /// Discovery, `/version`, `/healthz` and other paths: the verb is the
    /// lower-cased HTTP method.
    NonResource {
        verb: String,
        path: String,
    },
}

impl RequestAttributes {
    pub fn verb(&self) -> &str {
        match self {
            Self::Resource(r) => &r.verb,
            Self::NonResource { verb, .. } => verb,
        }
    }

    /// Resolves a request: `query` holds the decoded query parameters.
    pub fn resolve(method: &str, path: &str, query: &HashMap<String, String>) -> Self {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let non_resource = || Self::NonResource {
            verb: method.to_ascii_lowercase(),
            path: path.to_string(),
        };
        // `/api/<v>/<resource>...` or `/apis/<group>/<v>/<resource>...`.
        let (api_group, rest) = match parts.as_slice() {
            ["api", rest @ ..] if rest.len() >= 2 => ("", rest),
            ["apis", group, rest @ ..] if rest.len() >= 2 => (*group, rest),
            _ => return non_resource(),
        };
        let mut request = ResourceRequest {
            api_group: api_group.to_string(),
            api_version: rest[0].to_string(),
            ..ResourceRequest::default()
        };
        let mut rest = &rest[1..];
        match rest {
            ["watch", tail @ ..] if !tail.is_empty() => {
                request.verb = "watch".into();
                rest = tail;
            }
            _ => request.verb = verb_of_method(method),
        }
        if let ["namespaces", namespace, tail @ ..] = rest {
            request.namespace = namespace.to_string();
            // `namespaces/<ns>/status|finalize` are the Namespace's own.
            if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") {
                rest = tail;
            }
        }
        if let Some(resource) = rest.first() {
            request.resource = resource.to_string();
        }
        if let Some(name) = rest.get(1) {
            request.name = name.to_string();
        }
        if let Some(subresource) = rest.get(2) {
            request.subresource = subresource.to_string();
        }
        if request.name.is_empty() {
            collection_verb(&mut request, query);
        }
        Self::Resource(request)
    }
}

fn verb_of_method(method: &str) -> String {
    match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string()
}

/// GET on a collection is `list` or `watch` (a `metadata.name=` field
/// selector names the object), DELETE on one is `deletecollection`.
fn collection_verb(request: &mut ResourceRequest, query: &HashMap<String, String>) {
    match request.verb.as_str() {
        "get" => {
            let watch = query
                .get("watch")
                .is_some_and(|w| matches!(w.as_str(), "true" | "1" | "t" | "True" | "TRUE"));
            request.verb = if watch { "watch" } else { "list" }.into();
        }
        "delete" => {
            request.verb = "deletecollection".into();
            return;
        }
        "watch" => {}
        _ => return,
    }
    if let Some(name) = query
        .get("fieldSelector")
        .and_then(|selector| exact_name(selector))
    {
        request.name = name;
    }
}

/// The name a field selector pins with `metadata.name=` (or `==`), when it
/// is a valid path segment.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        (!value.is_empty() && value != "." && value != ".." && !value.contains(['/', '%']))
            .then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(method: &str, path: &str, query: &[(&str, &str)]) -> RequestAttributes {
        let query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RequestAttributes::resolve(method, path, &query)
    }

    fn resource(method: &str, path: &str, query: &[(&str, &str)]) -> ResourceRequest {
        match resolve(method, path, query) {
            RequestAttributes::Resource(r) => r,
            other => panic!("{path} is not a resource request: {other:?}"),
        }
    }

    #[test]
    fn verbs_follow_the_method_and_whether_a_name_is_given() {
        let cases = [
            ("GET", "/api/v1/namespaces/a/services", vec![], "list"),
            (
                "GET",
                "/api/v1/namespaces/a/services",
                vec![("watch", "true")],
                "watch",
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/a/services",
                vec![],
                "watch",
            ),
            ("GET", "/api/v1/namespaces/a/services/web", vec![], "get"),
            ("POST", "/api/v1/namespaces/a/services", vec![], "create"),
            ("PUT", "/api/v1/namespaces/a/services/web", vec![], "update"),
            (
                "PATCH",
                "/api/v1/namespaces/a/services/web",
                vec![],
                "patch",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/services/web",
                vec![],
                "delete",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/services",
                vec![],
                "deletecollection",
            ),
        ];
        for (method, path, query, verb) in cases {
            assert_eq!(resource(method, path, &query).verb, verb, "{method} {path}");
        }
    }

    #[test]
    fn group_namespace_name_and_subresource_come_from_the_path() {
        let r = resource(
            "PATCH",
            "/apis/networking.k8s.io/v1/namespaces/web/ingresses/site/status",
            &[],
        );
        assert_eq!(
            (r.api_group.as_str(), r.namespace.as_str(), r.name.as_str()),
            ("networking.k8s.io", "web", "site")
        );
        assert_eq!(r.combined_resource(), "ingresses/status");
        let r = resource("POST", "/api/v1/namespaces/a/serviceaccounts/sa/token", &[]);
        assert_eq!(
            (r.verb.as_str(), r.combined_resource().as_str()),
            ("create", "serviceaccounts/token")
        );
    }

    #[test]
    fn a_namespace_is_its_own_namespace() {
        let r = resource("GET", "/api/v1/namespaces/web", &[]);
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.namespace.as_str()),
            ("namespaces", "web", "web")
        );
        let r = resource("PUT", "/api/v1/namespaces/web/finalize", &[]);
        assert_eq!(r.combined_resource(), "namespaces/finalize");
        let r = resource("GET", "/api/v1/namespaces", &[]);
        assert_eq!((r.verb.as_str(), r.namespace.as_str()), ("list", ""));
    }

    #[test]
    fn a_name_field_selector_names_the_object_of_a_list_or_watch() {
        let r = resource(
            "GET",
            "/api/v1/namespaces/a/configmaps",
            &[("fieldSelector", "metadata.name=leader"), ("watch", "1")],
        );
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("watch", "leader"));
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v3",
            "/healthz",
        ] {
            assert_eq!(
                resolve("GET", path, &[]),
                RequestAttributes::NonResource {
                    verb: "get".into(),
                    path: path.into()
                }
            );
        }
    }
}

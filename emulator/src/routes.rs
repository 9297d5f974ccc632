//! URL routing: which discovery document or resource a request path names.

use super::error::ApiError;
use super::resources::Registry;
use super::state::Target;

/// What a request path addresses.
#[derive(Debug, Clone)]
pub enum Route {
    Version,
    Health,
    /// `/openapi/v3`
    OpenApiRoot,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`
    OpenApiGroupVersion {
        group: String,
        version: String,
    },
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    ResourceList {
        group: String,
        version: String,
    },
    /// A resource, collection or subresource; `legacy_watch` for `/watch/` paths.
    Resource {
        target: Box<Target>,
        legacy_watch: bool,
    },
    /// `/apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (create only).
    SelfSubjectAccessReview,
}

/// Maps a path to a route, resolving resources through the registry.
pub fn route(path: &str, registry: &Registry) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Ok(Route::Health),
        ["openapi", "v3"] => Ok(Route::OpenApiRoot),
        ["openapi", "v3", "api", version] => Ok(Route::OpenApiGroupVersion {
            group: String::new(),
            version: version.to_string(),
        }),
        ["openapi", "v3", "apis", group, version] => Ok(Route::OpenApiGroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] => {
            Ok(Route::SelfSubjectAccessReview)
        }
        ["api"] => Ok(Route::CoreVersions),
        ["apis"] => Ok(Route::Groups),
        ["apis", group] => Ok(Route::Group(group.to_string())),
        ["api", version] => Ok(Route::ResourceList {
            group: String::new(),
            version: version.to_string(),
        }),
        ["apis", group, version] => Ok(Route::ResourceList {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["api", version, rest @ ..] => resource_route("", version, rest, registry),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest, registry),
        _ => Err(ApiError::no_such_path()),
    }
}

fn resource_route(
    group: &str,
    version: &str,
    rest: &[&str],
    registry: &Registry,
) -> Result<Route, ApiError> {
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    // `namespaces/<ns>/<resource>...` addresses namespaced resources, except
    // `namespaces/<name>/status|finalize`, the Namespace's own subresources.
    let (namespace, resource, name, subresource) = match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(*ns), Some(*sub))
        }
        ["namespaces", ns, resource, tail @ ..] => (
            Some(*ns),
            *resource,
            tail.first().copied(),
            tail.get(1).copied(),
        ),
        [resource, tail @ ..] => (None, *resource, tail.first().copied(), tail.get(1).copied()),
        [] => return Err(ApiError::no_such_path()),
    };
    if rest.len() > 5 {
        return Err(ApiError::no_such_path());
    }
    let info = registry
        .resolve(group, version, resource)
        .ok_or_else(ApiError::no_such_path)?
        .clone();
    if namespace.is_some() && !info.namespaced {
        return Err(ApiError::no_such_path());
    }
    let known_subresource = |sub: &str| match sub {
        "status" => info.has_status,
        // TokenRequest.
        "token" => info.group.is_empty() && info.plural == "serviceaccounts",
        _ => false,
    };
    if subresource.is_some_and(|sub| !known_subresource(sub)) {
        return Err(ApiError::no_such_path());
    }
    Ok(Route::Resource {
        target: Box::new(Target {
            info,
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: subresource.map(str::to_string),
        }),
        legacy_watch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match route(path, &Registry::with_builtins()).unwrap() {
            Route::Resource { target, .. } => *target,
            other => panic!("{path} routed to {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths_name_namespace_resource_name_and_subresource() {
        let t = target("/apis/networking.k8s.io/v1/namespaces/web/ingresses/site/status");
        assert_eq!(t.namespace.as_deref(), Some("web"));
        assert_eq!(t.info.kind, "Ingress");
        assert_eq!(t.name.as_deref(), Some("site"));
        assert!(t.is_status());
    }

    #[test]
    fn namespace_objects_and_their_status_are_cluster_scoped() {
        let t = target("/api/v1/namespaces/web");
        assert_eq!(
            (t.info.kind.as_str(), t.name.as_deref()),
            ("Namespace", Some("web"))
        );
        let t = target("/api/v1/namespaces/web/status");
        assert!(t.is_status() && t.namespace.is_none());
        let t = target("/api/v1/services");
        assert!(t.namespace.is_none() && t.name.is_none());
    }

    #[test]
    fn unknown_resources_and_subresources_are_not_found() {
        let registry = Registry::with_builtins();
        for path in [
            "/api/v1/widgets",
            "/api/v1/namespaces/a/configmaps/b/status",
            "/apis/x/v1/y",
            "/api/v1/namespaces/a/nodes",
        ] {
            assert_eq!(route(path, &registry).unwrap_err().code(), 404, "{path}");
        }
    }
}

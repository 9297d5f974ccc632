//! The 403 the real server answers when no authorizer allows a request,
//! worded as kube-apiserver words it.

use super::attributes::RequestAttributes;
use super::Identity;
use crate::error::ApiError;

/// `<resource>[ "<name>"] is forbidden: User "<user>" cannot <verb> ...`,
/// with the authorizer's reason appended when it gave one.
pub fn forbidden(user: &Identity, request: &RequestAttributes, reason: &str) -> ApiError {
    let mut cause = match request {
        RequestAttributes::NonResource { verb, path } => {
            format!("User {:?} cannot {verb} path {path:?}", user.name)
        }
        RequestAttributes::Resource(r) => {
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {:?}", r.namespace)
            };
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
                user.name,
                r.verb,
                r.combined_resource(),
                r.api_group
            )
        }
    };
    if !reason.is_empty() {
        cause = format!("{cause}: {reason}");
    }
    let (group, resource, name) = match request {
        RequestAttributes::Resource(r) => (r.api_group.clone(), r.resource.clone(), r.name.clone()),
        RequestAttributes::NonResource { .. } => Default::default(),
    };
    let qualified = if group.is_empty() {
        resource.clone()
    } else {
        format!("{resource}.{group}")
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {cause}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {cause}")
    } else {
        format!("{qualified} {name:?} is forbidden: {cause}")
    };
    ApiError::Forbidden {
        message,
        group,
        kind: resource,
        name,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn message(method: &str, path: &str) -> String {
        let request = RequestAttributes::resolve(method, path, &HashMap::new());
        forbidden(
            &Identity::service_account("gatehouse", "gatehouse-controller"),
            &request,
            "",
        )
        .to_string()
    }

    #[test]
    fn messages_name_the_object_verb_resource_group_and_scope() {
        assert_eq!(
            message("PATCH", "/api/v1/namespaces/default/services/web/status"),
            "services \"web\" is forbidden: User \"system:serviceaccount:gatehouse:gatehouse-controller\" \
             cannot patch resource \"services/status\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(
            message("GET", "/apis/networking.k8s.io/v1/ingresses"),
            "ingresses.networking.k8s.io is forbidden: User \"system:serviceaccount:gatehouse:gatehouse-controller\" \
             cannot list resource \"ingresses\" in API group \"networking.k8s.io\" at the cluster scope"
        );
        assert_eq!(
            message("GET", "/api"),
            "forbidden: User \"system:serviceaccount:gatehouse:gatehouse-controller\" cannot get path \"/api\""
        );
    }

    #[test]
    fn the_status_details_carry_group_resource_and_name() {
        let request = RequestAttributes::resolve(
            "GET",
            "/apis/networking.k8s.io/v1/namespaces/a/ingresses/site",
            &HashMap::new(),
        );
        let status = forbidden(&Identity::anonymous(), &request, "").to_status();
        assert_eq!(
            status["details"],
            serde_json::json!({"name": "site", "group": "networking.k8s.io", "kind": "ingresses"})
        );
        assert_eq!(
            (status["code"].as_u64(), status["reason"].as_str()),
            (Some(403), Some("Forbidden"))
        );
    }
}

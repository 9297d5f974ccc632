//! `SelfSubjectAccessReview`: a user asks whether they may do something
//! (what `kubectl auth can-i` sends), answered by the same authorizer that
//! guards requests.

use serde_json::{json, Value};

use super::attributes::{RequestAttributes, ResourceRequest};
use super::rbac::Decision;
use super::{decide, Identity};
use crate::error::ApiError;
use crate::state::State;

/// Answers a review `body` for `user` with `status.allowed` filled in.
pub fn review_access(state: &State, user: &Identity, body: &Value) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let text = |attributes: &Value, key: &str| {
        attributes
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let request = match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(r), None) => RequestAttributes::Resource(ResourceRequest {
            verb: text(r, "verb"),
            api_group: text(r, "group"),
            api_version: text(r, "version"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
        }),
        (None, Some(n)) => RequestAttributes::NonResource {
            verb: text(n, "verb"),
            path: text(n, "path"),
        },
        _ => {
            return Err(ApiError::invalid(
                "SelfSubjectAccessReview.authorization.k8s.io",
                "",
                vec![crate::error::Cause::new(
                    "FieldValueRequired",
                    "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    "spec.resourceAttributes",
                )],
            ))
        }
    };
    let mut status = json!({"allowed": false});
    match decide(state, user, &request) {
        Decision::Allow => status["allowed"] = json!(true),
        Decision::Deny { reason } if !reason.is_empty() => status["reason"] = json!(reason),
        Decision::Deny { .. } => {}
    }
    Ok(json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}

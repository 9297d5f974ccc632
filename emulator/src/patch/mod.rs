//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch (approximated, see [`strategic`]) and server-side
//! apply (handled by [`crate::ssa`]).

pub mod strategic;

use serde_json::Value;

use super::error::ApiError;

/// The patch flavours, chosen by the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiError::UnsupportedMediaType {
                message: format!(
                    "the body of the request was in an unknown format - accepted media types \
                     include: application/json-patch+json, application/merge-patch+json, \
                     application/apply-patch+yaml, application/strategic-merge-patch+json \
                     (got \"{content_type}\")"
                ),
            }),
        }
    }
}

/// Applies a JSON, merge or strategic patch to a copy of `current`.
/// `custom` resources refuse strategic merge patch, as the real server does.
pub fn apply_patch(
    kind: PatchKind,
    current: &Value,
    body: &[u8],
    custom: bool,
) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut patched = current.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut patched, &ops).map_err(|e| ApiError::Invalid {
                message: format!(
                    "the server rejected our request due to an error in our request: {e}"
                ),
                kind: String::new(),
                name: String::new(),
                causes: Vec::new(),
            })?;
        }
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(&mut patched, &patch);
        }
        PatchKind::Strategic => {
            if custom {
                return Err(ApiError::UnsupportedMediaType {
                    message: "strategic merge patch is not supported for custom resources; use \
                              a merge or JSON patch"
                        .to_string(),
                });
            }
            strategic::apply(&mut patched, &patch).map_err(ApiError::bad_request)?;
        }
        PatchKind::Apply => {
            return Err(ApiError::internal(
                "apply patches go through server-side apply",
            ));
        }
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_select_the_patch_kind() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchKind::Merge
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml").unwrap(),
            PatchKind::Apply
        );
        assert!(PatchKind::from_content_type("application/json").is_err());
    }

    #[test]
    fn json_patch_test_failure_is_invalid() {
        let current = json!({"spec": {"a": 1}});
        let body = br#"[{"op":"test","path":"/spec/a","value":2}]"#;
        let err = apply_patch(PatchKind::Json, &current, body, false).unwrap_err();
        assert_eq!(err.code(), 422);
        let body = br#"[{"op":"replace","path":"/spec/a","value":2}]"#;
        let patched = apply_patch(PatchKind::Json, &current, body, false).unwrap();
        assert_eq!(patched, json!({"spec": {"a": 2}}));
    }

    #[test]
    fn merge_patch_null_removes_fields() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let body = br#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#;
        let patched = apply_patch(PatchKind::Merge, &current, body, true).unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}})
        );
    }
}

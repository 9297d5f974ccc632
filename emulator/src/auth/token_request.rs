//! The TokenRequest subresource (`POST .../serviceaccounts/<name>/token`),
//! through which the kubelet (and `kubectl create token`) gets a token for
//! a ServiceAccount.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::tokens::TokenGrant;
use super::{service_account_uid, Authenticator, API_AUDIENCE};
use crate::error::{ApiError, Cause};
use crate::state::State;

/// The lifetime when the request names none.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The longest lifetime validation accepts (2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Issues a token for `namespace/name` as asked by a TokenRequest `body`,
/// answering the TokenRequest with `status.token` filled in.
pub fn issue_token(
    auth: &Authenticator,
    state: &State,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let uid = service_account_uid(state, namespace, name)
        .ok_or_else(|| ApiError::not_found("serviceaccounts", name))?;
    let expiration = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    validate_expiration(auth, name, expiration)?;
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .filter(|list: &Vec<String>| !list.is_empty())
        .unwrap_or_else(|| vec![API_AUDIENCE.to_string()]);
    let lifetime = Duration::from_secs(u64::try_from(expiration).unwrap_or(0));
    let expires_at = SystemTime::now() + lifetime;
    let token = auth.issue(TokenGrant {
        namespace: namespace.to_string(),
        service_account: name.to_string(),
        uid,
        audiences: audiences.clone(),
        expires_at,
    })?;
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": {
            "audiences": audiences,
            "expirationSeconds": expiration,
            "boundObjectRef": body.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null),
        },
        "status": {"token": token, "expirationTimestamp": rfc3339(expires_at)},
    }))
}

fn validate_expiration(auth: &Authenticator, name: &str, seconds: i64) -> Result<(), ApiError> {
    let min = i64::try_from(auth.min_token_expiration.as_secs()).unwrap_or(i64::MAX);
    let problem = if seconds < min {
        // The real minimum is 10 minutes; a test may lower it.
        Some(if min == 600 {
            "may not specify a duration less than 10 minutes".to_string()
        } else {
            format!("may not specify a duration less than {min} seconds")
        })
    } else if seconds > MAX_EXPIRATION_SECONDS {
        Some("may not specify a duration larger than 2^32 seconds".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(ApiError::invalid(
            "TokenRequest.authentication.k8s.io",
            name,
            vec![Cause::new(
                "FieldValueInvalid",
                format!("Invalid value: {seconds}: {problem}"),
                "spec.expirationSeconds",
            )],
        )),
    }
}

fn rfc3339(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

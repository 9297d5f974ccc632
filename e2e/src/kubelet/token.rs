//! Service-account tokens for projected volumes, from the TokenRequest
//! subresource.

use super::error::{KubeletError, Result};
use k8s_openapi::api::core::v1::ServiceAccountTokenProjection;
use serde_json::{json, Value};

/// A token for `account` from the TokenRequest subresource. A refusal is
/// the pod's setup failing (retried), as a real kubelet's volume mount
/// fails: a placeholder would only surface later as a confusing 401.
pub async fn issue(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    projection: &ServiceAccountTokenProjection,
) -> Result<String> {
    request(client, namespace, account, projection)
        .await
        .ok_or_else(|| {
            KubeletError::Pod(format!(
                "no token from the TokenRequest of serviceaccount {namespace}/{account}"
            ))
        })
}

async fn request(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    projection: &ServiceAccountTokenProjection,
) -> Option<String> {
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": projection.audience.iter().collect::<Vec<_>>(),
            "expirationSeconds": projection.expiration_seconds.unwrap_or(3607),
        },
    });
    let request = http::Request::post(format!(
        "/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    ))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(serde_json::to_vec(&body).ok()?)
    .ok()?;
    let answer: Value = client.request(request).await.ok()?;
    answer["status"]["token"].as_str().map(str::to_owned)
}

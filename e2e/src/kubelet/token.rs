//! Service-account tokens for projected volumes, from the TokenRequest
//! subresource when the API serves it.

use k8s_openapi::api::core::v1::ServiceAccountTokenProjection;
use serde_json::{json, Value};

/// A token for `account`, or, when the API has no TokenRequest subresource
/// (or refuses), a placeholder that no server accepts.
pub async fn issue(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    projection: &ServiceAccountTokenProjection,
) -> String {
    match request(client, namespace, account, projection).await {
        Some(token) => token,
        None => format!("placeholder-token-for-{namespace}-{account}"),
    }
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

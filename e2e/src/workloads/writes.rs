//! The API writes the controllers share: Pods created and deleted under an
//! owner's expectations, status patches, and tolerance of lost races.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::error::{is_benign_race, WorkloadError};
use super::expectations::Expectations;

/// `result`, with "not found" and "conflict" counted as done: the next pass
/// sees whatever won.
pub(crate) fn tolerate_races<T>(
    result: Result<T, kube::Error>,
    action: impl FnOnce() -> String,
) -> Result<(), WorkloadError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) if is_benign_race(&error) => Ok(()),
        Err(error) => Err(WorkloadError::api(action())(error)),
    }
}

/// Creates `pod` for the owner with uid `owner`, expecting to see it.
pub(crate) async fn create_pod(
    api: &Api<Pod>,
    expectations: &Expectations,
    owner: &str,
    pod: &Pod,
) -> Result<(), WorkloadError> {
    let created = api
        .create(&PostParams::default(), pod)
        .await
        .map_err(WorkloadError::api(format!(
            "create pod {}*",
            pod.metadata.generate_name.as_deref().unwrap_or_default()
        )))?;
    expectations.created(owner, created.name_any());
    Ok(())
}

/// Deletes `pod` (gracefully), expecting to see it go.
pub(crate) async fn delete_pod(
    api: &Api<Pod>,
    expectations: &Expectations,
    owner: &str,
    pod: &Pod,
) -> Result<(), WorkloadError> {
    let name = pod.name_any();
    let result = api.delete(&name, &DeleteParams::default()).await;
    if result.is_ok() {
        expectations.deleted(owner, name.clone());
    }
    tolerate_races(result, || format!("delete pod {name}"))
}

/// Writes `status` through the status subresource (a merge patch).
pub(crate) async fn patch_status<K, S>(
    api: &Api<K>,
    name: &str,
    status: &S,
) -> Result<(), WorkloadError>
where
    K: Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let result = api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await;
    tolerate_races(result, || format!("write status of {name}"))
}

//! What a workload controller's reconcile pass can fail with. Controllers log
//! these and retry with backoff; nothing here ends a controller.

/// A failed reconcile step.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A call to the Kubernetes API failed.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An object lacks a field the controller needs (name, uid, spec).
    #[error("{kind} {name}: {what}")]
    Incomplete {
        kind: &'static str,
        name: String,
        what: &'static str,
    },
    /// A rollout parameter (maxSurge, maxUnavailable) that is neither an
    /// integer nor a percentage.
    #[error("invalid {field} {value:?}")]
    InvalidIntOrPercent { field: &'static str, value: String },
}

impl WorkloadError {
    /// Wraps an API error with what was being attempted.
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Api { action, source }
    }
}

/// True for errors that mean "someone else changed it first" or "it is
/// already there / already gone": the next pass sees the new state.
pub(crate) fn is_benign_race(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 404 | 409))
}

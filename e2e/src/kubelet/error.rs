//! Errors of the process kubelet and the kube-proxy follower.

use crate::cluster::ClusterError;

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),

    #[error(transparent)]
    Cluster(#[from] ClusterError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("no node named {0} in the simulated cluster")]
    UnknownNode(String),

    /// A pod the kubelet cannot set up (bad spec, missing Secret, ...).
    #[error("{0}")]
    Pod(String),
}

impl KubeletError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

pub type Result<T, E = KubeletError> = std::result::Result<T, E>;

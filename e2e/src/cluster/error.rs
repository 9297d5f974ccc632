//! The one error type every public function of the simulated cluster returns.

use std::io;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the simulated cluster needs root (it creates network namespaces and nftables rules); \
         running as uid {uid}: run the e2e tests as root (CI does)"
    )]
    NotRoot { uid: u32 },

    #[error("the simulated cluster needs `{tool}` on PATH (Debian package `{package}`)")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },

    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid cluster request: {0}")]
    Invalid(String),

    #[error("process `{label}` exited before it was ready; its output:\n{output}")]
    ExitedEarly { label: String, output: String },

    #[error("timed out after {after:?} waiting for {what}; output so far:\n{output}")]
    Timeout {
        what: String,
        after: Duration,
        output: String,
    },
}

impl ClusterError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

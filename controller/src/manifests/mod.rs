//! Local mode's source: Kubernetes manifests in a directory, watched for
//! changes.

pub mod parse;
pub mod set;
pub mod watch;

pub use parse::{parse_manifest, ManifestError, ManifestObject};
pub use set::ManifestSet;

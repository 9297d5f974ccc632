//! Kubernetes API emulator: an in-memory API server speaking the real HTTP
//! API (discovery, CRUD, patches, server-side apply, status subresources,
//! list/watch with resourceVersions, bookmarks and 410 Gone, selectors, CRDs,
//! bearer-token authentication and RBAC) so the controller, kube-rs and
//! kubectl can be tested without a cluster.
//! See emulator/README.md for what it does and does not do.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gatehouse_kube_emulator::EmulatorError> {
//! let emulator = gatehouse_kube_emulator::Emulator::start("127.0.0.1:0").await?;
//! emulator.write_kubeconfig("/tmp/kubeconfig")?;
//! let client = emulator.kube_client()?;
//! # drop(client); Ok(()) }
//! ```

mod admission;
mod audit;
mod auth;
mod bootstrap;
mod convert;
mod crd;
mod defaults;
mod discovery;
mod engine;
mod error;
mod http;
mod kubeconfig;
mod list_keys;
mod meta;
mod openapi;
mod patch;
mod protobuf;
mod representation;
mod resources;
mod routes;
mod schema;
mod selectors;
mod server;
mod serving_tls;
mod ssa;
mod state;
mod store;
mod validation;
mod watch;

pub mod tools;

pub use admission::SERVICE_ACCOUNT_MOUNT_PATH;
pub use audit::{AuditEntry, LeaseView};
pub use auth::{ADMIN_USER, API_AUDIENCE};
pub use bootstrap::{KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_PORT, ROOT_CA_CONFIGMAP};
pub use error::{ApiError, EmulatorError};
pub use server::{Emulator, EmulatorConfig};

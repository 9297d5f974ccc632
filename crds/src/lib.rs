//! Gatehouse's custom resources. The Rust types here are the single source
//! of truth: the CRD manifests in `charts/gatehouse/crds/` are generated
//! from them (`cargo run -p gatehouse-crds`), and a test fails when the
//! checked-in manifests are stale.
#![forbid(unsafe_code)]

pub mod ip_pool;
pub mod metallb;

pub use ip_pool::{IPPool, IPPoolSpec, IPPoolStatus, L2Advertisement, ServiceAllocation};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Where generated manifests go, relative to the workspace root.
pub const CRD_DIR: &str = "charts/gatehouse/crds";

/// Every CRD with the file name it is written to.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![("ippools.gatehouse.dev.yaml", IPPool::crd())]
}

/// A CRD as the YAML file the chart ships.
pub fn render(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(crd)?;
    Ok(format!(
        "# Generated from crds/src by `cargo run -p gatehouse-crds`; do not edit.\n{body}"
    ))
}

//! Gatehouse's control plane.
//!
//! Pure decision-making ([`translate`], the leader election and status and
//! Event planning in [`cluster`]) is kept apart from I/O (the [`manifests`]
//! and Kubernetes sources, the [`snapshot_server`], the API writers).
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod ipam;
pub mod lb;
pub mod local;
pub mod manifests;
pub mod metrics;
pub mod publisher;
pub mod rebuild;
pub mod report;
pub mod snapshot_server;
pub mod speaker;
pub mod state;
pub mod stream_tls;
pub mod translate;

/// The `spec.controller` value of IngressClasses Gatehouse serves.
pub const CONTROLLER_NAME: &str = "gatehouse.dev/ingress-controller";

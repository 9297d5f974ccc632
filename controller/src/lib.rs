//! Gatehouse's control plane.
//!
//! Pure decision-making ([`translate`]) is kept apart from I/O (the
//! [`manifests`] source, the [`snapshot_server`]).
#![forbid(unsafe_code)]

pub mod local;
pub mod manifests;
pub mod publisher;
pub mod report;
pub mod snapshot_server;
pub mod state;
pub mod translate;

/// The `spec.controller` value of IngressClasses Gatehouse serves.
pub const CONTROLLER_NAME: &str = "gatehouse.dev/ingress-controller";

//! The Kubernetes API the tests talk to: the emulator (its own crate,
//! `gatehouse-kube-emulator`, re-exported here) and [`TestApi`], which picks
//! it or a real cluster.

mod harness;

pub use gatehouse_kube_emulator::*;
pub use harness::{TestApi, KUBECONFIG_ENV};

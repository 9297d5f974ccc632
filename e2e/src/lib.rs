//! Gatehouse's end-to-end harness: helpers that run the real binaries, and
//! (see the modules) the Kubernetes API emulator and the simulated cluster.

pub mod attack;
pub mod client;
pub mod cluster;
pub mod emulator;
pub mod kube_mode;
pub mod kubelet;
pub mod local;
pub mod raw_h2;
pub mod raw_http;
pub mod rig;
pub mod system;
pub mod tls;
pub mod workloads;
pub mod ws_client;

/// The echo backend (its own crate, `gatehouse-echo`, so that the quickstart
/// builds it without this harness).
pub use gatehouse_echo as echo;

/// kubectl and helm, located the same way by every test (in the emulator's
/// crate, whose own tests drive them too).
pub use gatehouse_kube_emulator::tools;

//! Gatehouse's end-to-end harness: the echo backend, helpers that run the real
//! binaries, and (see the modules) the Kubernetes API emulator and the
//! simulated cluster.

pub mod client;
pub mod cluster;
pub mod echo;
pub mod emulator;
pub mod local;
pub mod raw_h2;
pub mod raw_http;
pub mod tls;
pub mod ws_client;

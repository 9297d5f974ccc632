//! Gatehouse's data plane: a Pingora reverse proxy routing by the snapshots
//! the controller streams.
#![forbid(unsafe_code)]

pub mod admin;
pub mod controller_client;
pub mod forwarded;
pub mod install;
pub mod metrics;
pub mod proxy;
pub mod table;
pub mod tls;

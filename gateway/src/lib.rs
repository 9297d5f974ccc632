//! Gatehouse's data plane: a reverse proxy routing by the snapshots the
//! controller streams. HTTP/1.x is served by its own engine (`h1`), HTTP/2
//! and TLS by Pingora.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod controller_client;
pub mod forwarded;
pub mod h1;
pub mod install;
pub mod metrics;
pub mod proxy;
pub mod shutdown;
pub mod table;
pub mod tls;

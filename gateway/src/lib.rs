//! Gatehouse's data plane: a reverse proxy routing by the snapshots the
//! controller streams. HTTP/1.x (`h1`) and HTTP/2 (`http2`) are served by
//! its own engine; listeners, TLS handshakes and the process lifecycle are
//! Pingora's.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod controller_client;
pub mod decide;
pub mod fd_limit;
pub mod h1;
pub mod http2;
pub mod install;
pub mod metrics;
pub mod request_id;
pub mod settings;
pub mod shutdown;
pub mod table;
pub mod tls;

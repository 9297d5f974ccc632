//! The gateway's own HTTP/1.x proxy path.
//!
//! Pingora's general-purpose proxy costs about a third of a core more than
//! nginx per request on HTTP/1.1 (a large boxed future per request, header
//! maps built and cloned, a task per pooled upstream connection). This path
//! does the same job with one read buffer per connection, heads parsed in
//! place by httparse and written straight into an output buffer, bodies
//! forwarded as they are, and a pool that needs no background tasks.
//! HTTP/2 (h2c and ALPN h2) still goes through Pingora; see `app.rs`.

pub mod body;
pub mod chunked;
mod engine;
mod exchange;
pub mod head;
pub mod pool;
pub mod reply;

pub(crate) use engine::{client_info, shutting_down};
pub use engine::{Engine, Served};
pub(crate) use exchange::{read_response_head, Upstream, UpstreamError};

//! HTTP/2 from clients (ALPN `h2` over TLS, or the h2c preface on plain
//! TCP), proxied to HTTP/1.1 upstreams with the HTTP/1.x engine's routing,
//! pool and upstream code. Pingora's HTTP/2 proxy ran at 0.88× nginx here;
//! like `h1`, this path keeps only what a request needs: the h2 crate's
//! framing, the streams polled in their connection's task, and the
//! upstream head written straight into a buffer.
//!
//! - `connection`: one connection: its limits, timeouts and abuse rules.
//! - `resets`: when a client resets too many streams (pure).
//! - `stream`: one stream: route, answer locally or proxy.
//! - `exchange`: a proxied stream's upstream side and response relay.
//! - `response_body`: a response body cut into the pieces sent on.
//! - `send`: sending within flow control; noticing client resets.
//! - `drain`: reading the rest of a request the gateway answered itself.
//! - `translate`: HTTP/2 ↔ HTTP/1.1 heads.

mod connection;
mod drain;
mod exchange;
mod resets;
mod response_body;
mod send;
mod stream;
mod translate;

pub use connection::serve;

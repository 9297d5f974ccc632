//! The listening service: HTTP/2 connections (ALPN h2 over TLS, or the h2c
//! preface on plain TCP) go to `http2`, everything else to the HTTP/1.x
//! engine (`h1`). Connections beyond `--max-connections` are refused at
//! once, before any of them is read.

use crate::h1::{Engine, Served};
use crate::http2;
use crate::metrics as m;
use crate::shutdown::OpenConnections;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// What a refused HTTP/1.x client reads before the connection closes.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n";
/// How long a refusal may take to write; the socket buffer takes it at once
/// unless the client is stuck.
const REFUSAL_WRITE: Duration = Duration::from_millis(100);

pub struct GatewayApp {
    pub h1: Arc<Engine>,
    pub connections: OpenConnections,
    /// Client connections served at once (`--max-connections`).
    pub max_connections: usize,
}

#[async_trait]
impl ServerApp for GatewayApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(_open) = self.connections.try_open(self.max_connections) else {
            refuse(stream).await;
            return None;
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            http2::serve(self.h1.clone(), stream, shutdown).await;
            return None;
        }
        match self.h1.serve(stream, shutdown).await {
            Served::Closed => {}
            Served::H2c(stream) => http2::serve(self.h1.clone(), stream, shutdown).await,
        }
        None
    }
}

/// Closes a connection over the limit: a minimal 503 to HTTP/1.x clients
/// (an HTTP/2 one by ALPN just sees the close), counted, nothing read.
async fn refuse(mut stream: Stream) {
    metrics::counter!(m::CONNECTIONS_REFUSED).increment(1);
    if !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        let write = async {
            stream.write_all(REFUSAL).await?;
            stream.flush().await
        };
        let _ = tokio::time::timeout(REFUSAL_WRITE, write).await;
    }
}

//! The listening service: HTTP/2 connections (ALPN h2 over TLS, or the h2c
//! preface on plain TCP) go to `http2`, everything else to the HTTP/1.x
//! engine (`h1`).

use crate::h1::{Engine, Served};
use crate::http2;
use crate::shutdown::OpenConnections;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;

pub struct GatewayApp {
    pub h1: Arc<Engine>,
    pub connections: OpenConnections,
}

#[async_trait]
impl ServerApp for GatewayApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _open = self.connections.open();
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

//! The listening service: HTTP/1.x connections are served by the gateway's
//! own engine (`h1`); HTTP/2 ones (ALPN h2 over TLS, or the h2c preface on
//! plain TCP) by Pingora's proxy with the same routing (`proxy`).

use crate::h1::{Engine, Served};
use crate::proxy::Gateway;
use crate::shutdown::OpenConnections;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use std::sync::Arc;

pub struct GatewayApp {
    pub h1: Engine,
    pub h2: Arc<HttpProxy<Gateway>>,
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
            return self.h2.process_new(stream, shutdown).await;
        }
        match self.h1.serve(stream, shutdown).await {
            Served::Closed => None,
            Served::H2c(stream) => self.h2.process_new(stream, shutdown).await,
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.h2.as_ref()).await;
    }
}

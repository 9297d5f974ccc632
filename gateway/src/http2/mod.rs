//! HTTP/2 from clients (ALPN `h2` over TLS, or the h2c preface on plain
//! TCP), proxied to HTTP/1.1 upstreams with the HTTP/1.x engine's routing,
//! pool and upstream code. Pingora's HTTP/2 proxy ran at 0.88× nginx here;
//! like `h1`, this path keeps only what a request needs: the h2 crate's
//! framing, one task per stream, and the upstream head written straight
//! into a buffer.

mod stream;

use crate::h1::{self, Engine};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;

/// Concurrent streams per connection (nginx's default too).
const MAX_STREAMS: u32 = 128;
/// Flow-control windows: large enough that uploads are not held back on
/// a fast network, small enough to bound what one stream can buffer.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;

type Accepted = Result<
    (
        http::Request<h2::RecvStream>,
        h2::server::SendResponse<Bytes>,
    ),
    h2::Error,
>;

enum Event {
    /// A new stream (boxed: a request is much larger than the other cases).
    Stream(Option<Box<Accepted>>),
    StreamDone,
    ShuttingDown,
}

/// Serves one HTTP/2 connection until the client or a shutdown ends it.
pub async fn serve(engine: Arc<Engine>, io: Stream, shutdown: &ShutdownWatch) {
    let client = Arc::new(h1::client_info(&io));
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(u32::try_from(engine.max_request_header_bytes).unwrap_or(u32::MAX))
        .handshake::<_, Bytes>(io)
        .await;
    let mut conn = match handshake {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("HTTP/2 handshake failed: {e}");
            return;
        }
    };
    let mut shutdown = shutdown.clone();
    let mut draining = false;
    // The streams run inside this task, next to the connection they write
    // to: a response then goes out without a wake-up of another task.
    let mut streams = FuturesUnordered::new();
    loop {
        let event = tokio::select! {
            next = conn.accept() => Event::Stream(next.map(Box::new)),
            Some(()) = streams.next(), if !streams.is_empty() => Event::StreamDone,
            () = h1::shutting_down(&mut shutdown), if !draining => Event::ShuttingDown,
        };
        match event {
            // GOAWAY: streams already open finish, no new ones start.
            Event::ShuttingDown => {
                conn.graceful_shutdown();
                draining = true;
            }
            Event::Stream(Some(accepted)) => match *accepted {
                Ok((request, respond)) => {
                    let (engine, client) = (engine.clone(), client.clone());
                    streams.push(async move {
                        stream::serve(&engine, &client, request, respond).await;
                    });
                }
                Err(e) => {
                    tracing::debug!("HTTP/2 connection ended: {e}");
                    return;
                }
            },
            Event::StreamDone => {}
            Event::Stream(None) => return,
        }
    }
}

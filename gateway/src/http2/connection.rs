//! One HTTP/2 connection: the h2 crate's server with our limits, its
//! streams polled next to it, and the rules that end it.
//!
//! - **Preface.** The client's preface must arrive within
//!   `--client-timeout` of the connection being handed over.
//! - **Idle.** A connection without open streams for `--client-timeout`
//!   gets `GOAWAY(NO_ERROR)` and is closed. Only streams count as activity:
//!   PINGs, SETTINGS or WINDOW_UPDATEs alone do not keep it open.
//! - **Resets.** A stream the client resets is dropped at once, upstream
//!   exchange included; a client that resets too many (see `resets`) gets
//!   `GOAWAY(ENHANCE_YOUR_CALM)`.
//! - **Concurrency.** At most [`MAX_STREAMS`] streams run per connection.
//!   The h2 crate stops counting a stream once the client resets it, so
//!   the gateway counts its own work: a stream that arrives while
//!   [`MAX_STREAMS`] are still in progress is refused (`REFUSED_STREAM`).
//! - **Closing.** After a GOAWAY, the connection gets `--client-timeout`
//!   to flush it (a client that does not read cannot hold it open).

use super::resets::ResetBudget;
use super::stream::{self, Outcome};
use crate::h1::{self, Engine};
use crate::metrics as m;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use h2::Reason;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use tokio::time::Instant;

/// Concurrent streams per connection (nginx's default too).
pub const MAX_STREAMS: u32 = 128;
/// Flow-control windows: large enough that uploads are not held back on
/// a fast network, small enough to bound what one stream can buffer.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;
/// Streams reset by the client before they were accepted, at which the h2
/// crate sends `GOAWAY(ENHANCE_YOUR_CALM)`: the unpaced rapid reset (the
/// crate's default, stated here).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the gateway may reset for a client's protocol errors before
/// `GOAWAY(ENHANCE_YOUR_CALM)` (the crate's default is 1,024).
const MAX_LOCAL_ERROR_RESETS: usize = 128;
/// Response bytes buffered per stream beyond what the socket takes (the
/// crate's default is ~400 KB): bounds what a client that does not read
/// can make one connection hold to 128 × 64 KiB.
const MAX_SEND_BUFFER: usize = 64 * 1024;

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
    StreamDone(Outcome),
    ShuttingDown,
    Timer,
}

/// Serves one HTTP/2 connection until the client, a limit or a shutdown
/// ends it.
pub async fn serve(engine: Arc<Engine>, io: Stream, shutdown: &ShutdownWatch) {
    let client = Arc::new(h1::client_info(&io));
    let timeout = engine.client_timeout;
    // Counted from the start: the preface, the SETTINGS frame and a first
    // stream must all come within the idle limit.
    let mut idle_since = Instant::now();
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(u32::try_from(engine.max_request_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .handshake::<_, Bytes>(io);
    let mut conn = match tokio::time::timeout_at(idle_since + timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!("HTTP/2 handshake failed: {e}");
            return;
        }
        Err(_) => {
            m::http2_connection_closed("preface_timeout");
            return;
        }
    };
    let mut shutdown = shutdown.clone();
    let mut draining = false;
    // Set once a GOAWAY was sent because of a limit: the timer then bounds
    // how long the connection may take to flush it.
    let mut closing = false;
    let mut resets = ResetBudget::new();
    // The idle limit, then (once closing) the flush limit. Re-armed only
    // when it fires, not on every stream.
    let timer = tokio::time::sleep_until(idle_since + timeout);
    tokio::pin!(timer);
    // The streams run inside this task, next to the connection they write
    // to: a response then goes out without a wake-up of another task.
    let mut streams = FuturesUnordered::new();
    loop {
        let event = tokio::select! {
            next = conn.accept() => Event::Stream(next.map(Box::new)),
            Some(outcome) = streams.next(), if !streams.is_empty() => Event::StreamDone(outcome),
            () = h1::shutting_down(&mut shutdown), if !draining => Event::ShuttingDown,
            () = &mut timer, if closing || streams.is_empty() => Event::Timer,
        };
        match event {
            // GOAWAY: streams already open finish, no new ones start.
            Event::ShuttingDown => {
                conn.graceful_shutdown();
                draining = true;
            }
            Event::Stream(Some(accepted)) => match *accepted {
                Ok((request, mut respond)) => {
                    if streams.len() >= MAX_STREAMS as usize {
                        respond.send_reset(Reason::REFUSED_STREAM);
                        metrics::counter!(m::HTTP2_REFUSED_STREAMS).increment(1);
                        continue;
                    }
                    resets.stream_opened();
                    streams.push(stream::serve(
                        engine.clone(),
                        client.clone(),
                        request,
                        respond,
                    ));
                }
                Err(e) => {
                    if e.is_go_away() && e.is_library() {
                        tracing::debug!("HTTP/2 connection ended by the protocol layer: {e}");
                        m::http2_connection_closed("protocol_error");
                    } else {
                        tracing::debug!("HTTP/2 connection ended: {e}");
                    }
                    return;
                }
            },
            Event::Stream(None) => return,
            Event::StreamDone(outcome) => {
                if outcome == Outcome::ClientReset
                    && !closing
                    && resets.stream_reset(std::time::Instant::now())
                {
                    tracing::info!(
                        client = client.ip.as_deref().unwrap_or("-"),
                        "HTTP/2 client resets too many streams: GOAWAY"
                    );
                    m::http2_connection_closed("reset_flood");
                    conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    // Their upstream work goes now, not once GOAWAY is out.
                    streams.clear();
                    closing = true;
                    timer.as_mut().reset(Instant::now() + timeout);
                }
                if streams.is_empty() {
                    idle_since = Instant::now();
                }
            }
            Event::Timer if closing => {
                tracing::debug!("HTTP/2 connection did not take its GOAWAY in time");
                return;
            }
            Event::Timer => {
                let due = idle_since + timeout;
                if Instant::now() < due {
                    timer.as_mut().reset(due);
                    continue;
                }
                m::http2_connection_closed("idle");
                // No stream is open: an abrupt GOAWAY loses nothing, and a
                // request already on its way is refused by it unprocessed.
                conn.abrupt_shutdown(Reason::NO_ERROR);
                closing = true;
                timer.as_mut().reset(Instant::now() + timeout);
            }
        }
    }
}

//! The rest of a request the gateway answered itself (404, 503, 308, 431,
//! 400, 502, 504). The stream is read to its end and the data dropped, as
//! HTTP/1.x does, so the HTTP/2 layer keeps checking its frames (DATA
//! after a reset, windows past 2^31-1, trailers without END_STREAM or with
//! pseudo-header fields are errors whoever answered). Bounded: at most
//! [`DRAIN_LIMIT`] bytes, each frame within `--client-timeout`; past that
//! the stream is reset with `NO_ERROR` (RFC 9113 §8.1: the response is
//! complete, the client may stop sending).

use h2::RecvStream;
use std::time::Duration;

/// Request body bytes read and dropped after a local answer.
pub const DRAIN_LIMIT: usize = 64 * 1024;

/// Reads `body` to its end, or until the limits above.
pub async fn drain(body: &mut RecvStream, wait: Duration) {
    let mut drained = 0usize;
    while drained <= DRAIN_LIMIT {
        let data = match tokio::time::timeout(wait, body.data()).await {
            Ok(Some(Ok(data))) => data,
            // End of stream, a stream error (already answered by the
            // HTTP/2 layer) or the client went quiet.
            Ok(Some(Err(_)) | None) | Err(_) => return,
        };
        drained += data.len();
        let _ = body.flow_control().release_capacity(data.len());
    }
    // Trailers, if any, are checked as they arrive; beyond the limit the
    // stream ends when `body` is dropped (RST_STREAM NO_ERROR).
}

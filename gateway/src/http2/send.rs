//! Sending to the client within HTTP/2 flow control, and noticing when the
//! client resets a stream. A stream whose client grants no window for the
//! stall limit (`--client-timeout`) is reset (`CANCEL`): a client that
//! sets `SETTINGS_INITIAL_WINDOW_SIZE` to 0, or never reads, cannot hold a
//! stream — or the upstream connection behind it — open for longer.

use crate::metrics as m;
use bytes::Bytes;
use futures::FutureExt;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use std::time::Duration;

/// Why data did not reach the client.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the client reset the stream")]
    ClientReset,
    #[error("the client granted no window for {0:?}")]
    Stalled(Duration),
    #[error("client stream: {0}")]
    Stream(#[from] h2::Error),
    #[error("the stream closed before the response ended")]
    Closed,
}

/// Sends `data` as the client's window allows; `end` closes the stream.
pub async fn send_all(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    stall: Duration,
) -> Result<(), SendError> {
    if data.is_empty() {
        if end {
            send.send_data(Bytes::new(), true)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = match send.capacity() {
            0 => wait_for_window(send, stall).await?,
            n => n,
        };
        let chunk = data.split_to(granted.min(data.len()));
        send.send_data(chunk, end && data.is_empty())?;
    }
    Ok(())
}

/// Waits for window; resets the stream if none comes within `stall`.
async fn wait_for_window(
    send: &mut SendStream<Bytes>,
    stall: Duration,
) -> Result<usize, SendError> {
    let capacity = tokio::time::timeout(stall, async {
        loop {
            match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => return Ok(n),
                Some(Err(e)) => return Err(SendError::Stream(e)),
                None => return Err(SendError::Closed),
            }
        }
    })
    .await;
    match capacity {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) if was_reset(send) => {
            tracing::debug!("client reset a stream being answered: {e}");
            Err(SendError::ClientReset)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            send.send_reset(Reason::CANCEL);
            metrics::counter!(m::HTTP2_STALLED_STREAMS).increment(1);
            Err(SendError::Stalled(stall))
        }
    }
}

/// Whether the client has reset this stream (without waiting).
pub fn was_reset(send: &mut SendStream<Bytes>) -> bool {
    matches!(
        std::future::poll_fn(|cx| send.poll_reset(cx)).now_or_never(),
        Some(Ok(_))
    )
}

/// Whether the client has reset this stream before its response (without waiting).
pub fn was_reset_early(respond: &mut SendResponse<Bytes>) -> bool {
    matches!(
        std::future::poll_fn(|cx| respond.poll_reset(cx)).now_or_never(),
        Some(Ok(_))
    )
}

/// Resolves when the client resets the stream, or the connection is gone.
pub async fn reset_before_response(respond: &mut SendResponse<Bytes>) {
    let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
}

/// Resolves when the client resets the stream, or the connection is gone.
pub async fn reset_while_sending(send: &mut SendStream<Bytes>) {
    let _ = std::future::poll_fn(|cx| send.poll_reset(cx)).await;
}

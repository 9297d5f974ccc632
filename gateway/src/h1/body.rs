//! Moving message bodies between connections by their framing, leaving
//! whatever follows a body (a pipelined request) in the buffer.

use super::chunked::{ChunkError, ChunkedScanner};
use super::head::Framing;
use bytes::{Buf, BytesMut};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 16 * 1024;

/// Which side of a copy failed, and how.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading: {0}")]
    Read(io::Error),
    #[error("read timed out")]
    ReadTimeout,
    #[error("connection closed before the body ended")]
    Truncated,
    #[error("writing: {0}")]
    Write(io::Error),
    #[error("write timed out")]
    WriteTimeout,
    #[error("bad chunked body: {0}")]
    Chunked(#[from] ChunkError),
}

/// Reads more bytes into `buf`; `Ok(0)` at end of stream.
pub async fn read_more<R: AsyncRead + Unpin>(
    src: &mut R,
    buf: &mut BytesMut,
    limit: Duration,
) -> Result<usize, CopyError> {
    read_more_until(src, buf, Instant::now() + limit).await
}

/// Like [`read_more`], with a deadline instead of a time limit.
pub async fn read_more_until<R: AsyncRead + Unpin>(
    src: &mut R,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<usize, CopyError> {
    make_room(buf);
    read_into_until(src, buf, deadline).await
}

/// Reads into the room `buf` already has (at least one byte), before
/// `deadline`; `Ok(0)` at end of stream.
pub async fn read_into_until<R: AsyncRead + Unpin>(
    src: &mut R,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<usize, CopyError> {
    match tokio::time::timeout_at(deadline, src.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(CopyError::Read(e)),
        Err(_) => Err(CopyError::ReadTimeout),
    }
}

/// Like [`read_more`], waiting as long as it takes.
pub async fn read_more_untimed<R: AsyncRead + Unpin>(
    src: &mut R,
    buf: &mut BytesMut,
) -> Result<usize, CopyError> {
    make_room(buf);
    src.read_buf(buf).await.map_err(CopyError::Read)
}

fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// Writes all of `data`, then flushes (writers may buffer).
pub async fn write_flush<W: AsyncWrite + Unpin>(
    dst: &mut W,
    data: &[u8],
    limit: Duration,
) -> Result<(), CopyError> {
    let write = async {
        dst.write_all(data).await?;
        dst.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CopyError::Write(e)),
        Err(_) => Err(CopyError::WriteTimeout),
    }
}

/// Time limits of a copy.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub read: Duration,
    pub write: Duration,
}

/// Copies one body from `buf` (bytes already read) and then `src` to
/// `dst`. Chunked bodies are passed through as they are, or decoded when
/// `dechunk` is set. Bytes after the body stay in `buf`.
pub async fn copy_body<R, W>(
    src: &mut R,
    buf: &mut BytesMut,
    dst: &mut W,
    framing: Framing,
    dechunk: bool,
    limits: Limits,
) -> Result<(), CopyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::None => return Ok(()),
        Framing::Length(n) => n,
        Framing::Chunked | Framing::UntilClose => 0,
    };
    let mut scanner = ChunkedScanner::default();
    let mut payload = Vec::new();
    loop {
        if !buf.is_empty() {
            match framing {
                Framing::Length(_) => {
                    let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    write_flush(dst, &buf[..take], limits.write).await?;
                    buf.advance(take);
                    left -= take as u64;
                    if left == 0 {
                        return Ok(());
                    }
                }
                Framing::Chunked => {
                    payload.clear();
                    let used = scanner.feed(buf, |d| {
                        if dechunk {
                            payload.extend_from_slice(d);
                        }
                    })?;
                    let out = if dechunk { &payload[..] } else { &buf[..used] };
                    if !out.is_empty() {
                        write_flush(dst, out, limits.write).await?;
                    }
                    buf.advance(used);
                    if scanner.is_done() {
                        return Ok(());
                    }
                }
                Framing::UntilClose => {
                    write_flush(dst, buf, limits.write).await?;
                    buf.clear();
                }
                Framing::None => return Ok(()),
            }
        }
        if read_more(src, buf, limits.read).await? == 0 {
            return match framing {
                Framing::UntilClose => Ok(()),
                _ => Err(CopyError::Truncated),
            };
        }
    }
}

/// The length of a body that lies entirely in `buf`, if it does.
pub fn buffered_body_len(buf: &[u8], framing: Framing) -> Result<Option<usize>, ChunkError> {
    match framing {
        Framing::None => Ok(Some(0)),
        Framing::Length(n) => Ok(usize::try_from(n).ok().filter(|&n| n <= buf.len())),
        Framing::Chunked => {
            let mut scanner = ChunkedScanner::default();
            let used = scanner.feed(buf, |_| {})?;
            Ok(scanner.is_done().then_some(used))
        }
        Framing::UntilClose => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        read: Duration::from_secs(5),
        write: Duration::from_secs(5),
    };

    async fn copy(
        buffered: &[u8],
        rest: &[u8],
        framing: Framing,
        dechunk: bool,
    ) -> (Result<(), CopyError>, Vec<u8>, Vec<u8>) {
        let mut buf = BytesMut::from(buffered);
        let mut src = rest;
        let mut dst = Vec::new();
        let r = copy_body(&mut src, &mut buf, &mut dst, framing, dechunk, LIMITS).await;
        (r, dst, buf.to_vec())
    }

    #[tokio::test]
    async fn length_bodies_stop_at_their_length() {
        let (r, out, left) = copy(b"hel", b"lo, next", Framing::Length(5), false).await;
        r.unwrap();
        assert_eq!(out, b"hello");
        assert_eq!(left, b", next");
    }

    #[tokio::test]
    async fn truncated_length_body_is_an_error() {
        let (r, out, _) = copy(b"he", b"", Framing::Length(5), false).await;
        assert!(matches!(r, Err(CopyError::Truncated)));
        assert_eq!(out, b"he");
    }

    #[tokio::test]
    async fn chunked_bodies_pass_through_or_decode() {
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        let (r, out, left) = copy(
            &body[..4],
            &[&body[4..], b"NEXT"].concat(),
            Framing::Chunked,
            false,
        )
        .await;
        r.unwrap();
        assert_eq!(out, body);
        assert_eq!(left, b"NEXT");
        let (r, out, _) = copy(body, b"", Framing::Chunked, true).await;
        r.unwrap();
        assert_eq!(out, b"abc");
    }

    #[tokio::test]
    async fn until_close_reads_to_the_end() {
        let (r, out, _) = copy(b"ab", b"cd", Framing::UntilClose, false).await;
        r.unwrap();
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn buffered_lengths() {
        assert_eq!(
            buffered_body_len(b"abc", Framing::Length(2)).unwrap(),
            Some(2)
        );
        assert_eq!(buffered_body_len(b"abc", Framing::Length(4)).unwrap(), None);
        assert_eq!(
            buffered_body_len(b"0\r\n\r\nX", Framing::Chunked).unwrap(),
            Some(5)
        );
        assert_eq!(
            buffered_body_len(b"5\r\nab", Framing::Chunked).unwrap(),
            None
        );
        assert_eq!(buffered_body_len(b"", Framing::None).unwrap(), Some(0));
    }
}

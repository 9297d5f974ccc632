//! A response body cut out of what the upstream sent, by its framing, in
//! the pieces the client is sent. Bodies of known length up to
//! [`PREFETCH_LIMIT`] come out whole, so their upstream connection is free
//! before the client's window matters.

use crate::h1::chunked::{ChunkError, ChunkedScanner};
use crate::h1::head::Framing;
use bytes::{Buf, Bytes, BytesMut};

/// Response bodies of known length up to this size are read whole before
/// the client is sent any of it.
pub const PREFETCH_LIMIT: u64 = 64 * 1024;

/// Cuts a response body out of what the upstream sent, by its framing.
pub(super) struct ResponseBody {
    framing: Framing,
    /// Bytes still to come (`Framing::Length`).
    left: u64,
    scanner: ChunkedScanner,
}

impl ResponseBody {
    pub(super) fn new(framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        ResponseBody {
            framing,
            left,
            scanner: ChunkedScanner::default(),
        }
    }

    /// The next piece of the body from `resp` and whether it is the last;
    /// `None`: more must be read first.
    pub(super) fn next(
        &mut self,
        resp: &mut BytesMut,
    ) -> Result<Option<(Bytes, bool)>, ChunkError> {
        match self.framing {
            Framing::None => Ok(Some((Bytes::new(), true))),
            Framing::Length(_) if self.left == 0 => Ok(Some((Bytes::new(), true))),
            Framing::Length(n) => {
                let prefetching = n <= PREFETCH_LIMIT && (resp.len() as u64) < self.left;
                if resp.is_empty() || prefetching {
                    return Ok(None);
                }
                let take = resp
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= take as u64;
                Ok(Some((resp.split_to(take).freeze(), self.left == 0)))
            }
            Framing::Chunked => {
                let mut payload = Vec::new();
                let used = self.scanner.feed(resp, |d| payload.extend_from_slice(d))?;
                resp.advance(used);
                let done = self.scanner.is_done();
                if payload.is_empty() && !done {
                    return Ok(None);
                }
                Ok(Some((Bytes::from(payload), done)))
            }
            Framing::UntilClose if resp.is_empty() => Ok(None),
            Framing::UntilClose => Ok(Some((resp.split().freeze(), false))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a body yields: (payload, last) pairs.
    type Pieces = Vec<(Vec<u8>, bool)>;

    /// Feeds `wire` to a body of `framing` in pieces of `step` bytes.
    fn cut(framing: Framing, wire: &[u8], step: usize) -> Pieces {
        let mut body = ResponseBody::new(framing);
        let mut resp = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            resp.extend_from_slice(piece);
            while let Some((chunk, done)) = body.next(&mut resp).unwrap() {
                out.push((chunk.to_vec(), done));
                if done {
                    return out;
                }
            }
        }
        out
    }

    #[test]
    fn bodies_are_cut_by_framing() {
        let big = vec![7u8; 100_000];
        let cases: Vec<(&str, Framing, Vec<u8>, usize, Pieces)> = vec![
            (
                "small_length_is_prefetched_whole",
                Framing::Length(10),
                b"0123456789".to_vec(),
                3,
                vec![(b"0123456789".to_vec(), true)],
            ),
            (
                "large_length_streams",
                Framing::Length(100_000),
                big.clone(),
                60_000,
                vec![(vec![7; 60_000], false), (vec![7; 40_000], true)],
            ),
            (
                "bytes_past_the_length_stay_in_the_buffer",
                Framing::Length(2),
                b"abXYZ".to_vec(),
                5,
                vec![(b"ab".to_vec(), true)],
            ),
            (
                "chunked_payload_then_end",
                Framing::Chunked,
                b"3\r\nabc\r\n0\r\n\r\n".to_vec(),
                8,
                vec![(b"abc".to_vec(), false), (Vec::new(), true)],
            ),
            (
                "chunked_whole_in_one_read_ends_with_its_data",
                Framing::Chunked,
                b"3\r\nabc\r\n0\r\n\r\n".to_vec(),
                64,
                vec![(b"abc".to_vec(), true)],
            ),
        ];
        for (name, framing, wire, step, want) in cases {
            assert_eq!(cut(framing, &wire, step), want, "case {name}");
        }
    }

    #[test]
    fn empty_bodies_are_done_at_once() {
        for framing in [Framing::None, Framing::Length(0)] {
            let mut body = ResponseBody::new(framing);
            let mut resp = BytesMut::new();
            assert_eq!(
                body.next(&mut resp).unwrap(),
                Some((Bytes::new(), true)),
                "{framing:?}"
            );
        }
    }
}

//! An incremental, strict parser of the chunked transfer coding (RFC 9112
//! §7.1). The proxy forwards chunked bodies as they are; this only finds
//! where a body ends (and, for HTTP/1.0 clients, which bytes are payload).
//! Bare LF, oversized chunk sizes and endless trailers are refused: lenient
//! chunk parsing is how request smuggling gets in.

/// Largest trailer section accepted, in bytes.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// More hex digits than this cannot be a sane chunk size (2^64).
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size")]
    BadSize,
    #[error("chunk framing without CRLF")]
    BadLineEnding,
    #[error("trailer section too large")]
    TrailerTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` so far.
    Size {
        digits: u8,
    },
    /// Whitespace or an extension after the size, up to CR.
    Extension,
    /// CR seen after the size line; LF expected.
    SizeLf,
    /// Payload bytes left in the current chunk.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Where a chunked body stands.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    size: u64,
    trailer_bytes: usize,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: State::Size { digits: 0 },
            size: 0,
            trailer_bytes: 0,
        }
    }
}

impl ChunkedScanner {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes `input` up to the end of the body. Returns how many bytes
    /// belong to the body (all of `input` unless the body ends inside it).
    /// `on_payload` receives the payload bytes in order.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_payload: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => return Ok(i),
                State::Data(left) => {
                    let take = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    on_payload(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Size { digits } => match hex_value(b) {
                    Some(v) => {
                        if digits >= MAX_SIZE_DIGITS {
                            return Err(ChunkError::BadSize);
                        }
                        self.size = (self.size << 4) | u64::from(v);
                        self.state = State::Size { digits: digits + 1 };
                    }
                    None if digits == 0 => return Err(ChunkError::BadSize),
                    None => match b {
                        b'\r' => self.state = State::SizeLf,
                        b';' | b' ' | b'\t' => self.state = State::Extension,
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(ChunkError::BadLineEnding),
                    _ => {}
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(self.size)
                    };
                    self.size = 0;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    self.state = match b {
                        b'\r' => State::FinalLf,
                        b'\n' => return Err(ChunkError::BadLineEnding),
                        _ => State::TrailerLine,
                    };
                    self.count_trailer()?;
                }
                State::TrailerLine => {
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' => return Err(ChunkError::BadLineEnding),
                        _ => {}
                    }
                    self.count_trailer()?;
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = State::Done;
                    return Ok(i + 1);
                }
            }
            i += 1;
        }
        Ok(i)
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ChunkError::TrailerTooLarge);
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` in pieces of `step` bytes; returns (payload, bytes in
    /// body, done).
    fn scan(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut s = ChunkedScanner::default();
        let mut payload = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step.max(1)) {
            let n = s.feed(piece, |d| payload.extend_from_slice(d))?;
            used += n;
            if s.is_done() {
                break;
            }
        }
        Ok((payload, used, s.is_done()))
    }

    #[test]
    fn well_formed_bodies() {
        let cases: [(&str, &[u8], &[u8]); 5] = [
            ("single_chunk", b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (
                "two_chunks_hex",
                b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n",
                b"abc0123456789",
            ),
            ("extension", b"5;name=\"v\"\r\nhello\r\n0\r\n\r\n", b"hello"),
            (
                "trailers",
                b"2\r\nhi\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n",
                b"hi",
            ),
            ("empty", b"0\r\n\r\n", b""),
        ];
        for (name, input, want) in cases {
            for step in [1, 2, 7, input.len()] {
                let (payload, used, done) = scan(input, step).unwrap();
                assert!(done, "case {name} step {step}");
                assert_eq!(used, input.len(), "case {name} step {step}");
                assert_eq!(payload, want, "case {name} step {step}");
            }
        }
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let input = b"1\r\na\r\n0\r\n\r\nGET /next HTTP/1.1\r\n";
        let (payload, used, done) = scan(input, input.len()).unwrap();
        assert!(done);
        assert_eq!(payload, b"a");
        assert_eq!(&input[used..], b"GET /next HTTP/1.1\r\n");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let cases: [(&str, &[u8], ChunkError); 7] = [
            ("not_hex", b"zz\r\n", ChunkError::BadSize),
            ("empty_size", b"\r\n", ChunkError::BadSize),
            ("bare_lf_after_size", b"5\nhello\r\n", ChunkError::BadSize),
            (
                "bare_lf_after_data",
                b"1\r\na\n0\r\n\r\n",
                ChunkError::BadLineEnding,
            ),
            (
                "data_longer_than_size",
                b"1\r\nab\r\n",
                ChunkError::BadLineEnding,
            ),
            (
                "size_overflow",
                b"10000000000000000\r\n",
                ChunkError::BadSize,
            ),
            (
                "bare_lf_in_trailer",
                b"0\r\nX: 1\n\r\n",
                ChunkError::BadLineEnding,
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(scan(input, input.len()).unwrap_err(), want, "case {name}");
        }
        let endless = [b"0\r\n".as_slice(), &[b'x'; MAX_TRAILER_BYTES + 1]].concat();
        assert_eq!(
            scan(&endless, 4096).unwrap_err(),
            ChunkError::TrailerTooLarge
        );
    }

    fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    proptest! {
        #[test]
        fn any_split_yields_the_payload(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            step in 1usize..64,
        ) {
            let body = encode(&chunks);
            let (payload, used, done) = scan(&body, step).unwrap();
            prop_assert!(done);
            prop_assert_eq!(used, body.len());
            prop_assert_eq!(payload, chunks.concat());
        }
    }
}

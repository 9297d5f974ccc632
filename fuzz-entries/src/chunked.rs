//! The chunked decoder against a reference decoder written for this
//! target: straightforward, whole-input and line by line, where the real
//! one is an incremental state machine fed in pieces.

use gatehouse_gateway::h1::chunked::ChunkedScanner;

/// Same limits as the decoder under test.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
const MAX_SIZE_DIGITS: usize = 16;

/// What a decoder made of an input.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The body ended after `used` bytes with this payload.
    Done {
        used: usize,
        payload: Vec<u8>,
    },
    /// Every byte belongs to a body that has not ended yet.
    Incomplete,
    Invalid,
}

/// Input: the first byte picks the size of the pieces fed to the scanner
/// (1–64 bytes), the rest is the body.
pub fn run(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(first % 64) + 1;
    let ours = scan(body, step);
    let reference = reference(body);
    assert_eq!(
        ours,
        reference,
        "scanner (pieces of {step}) and reference disagree on {:?}",
        String::from_utf8_lossy(body)
    );
    let whole = scan(body, body.len().max(1));
    assert_eq!(whole, ours, "the result depends on how the input is split");
}

/// The scanner under test, fed `step` bytes at a time.
pub fn scan(body: &[u8], step: usize) -> Outcome {
    let mut scanner = ChunkedScanner::default();
    let mut payload = Vec::new();
    let mut used = 0;
    for piece in body.chunks(step) {
        match scanner.feed(piece, |d| payload.extend_from_slice(d)) {
            Ok(n) => used += n,
            Err(_) => return Outcome::Invalid,
        }
        if scanner.is_done() {
            return Outcome::Done { used, payload };
        }
    }
    Outcome::Incomplete
}

/// Where a CRLF-terminated line starting at `at` ends: `Ok(Some(end))`
/// with `end` just past the LF, `Ok(None)` if the input ends first,
/// `Err` for a bare LF or a CR not followed by LF.
fn line_end(body: &[u8], at: usize) -> Result<Option<usize>, ()> {
    let mut i = at;
    while i < body.len() {
        match body[i] {
            b'\n' => return Err(()),
            b'\r' => {
                return match body.get(i + 1) {
                    Some(b'\n') => Ok(Some(i + 2)),
                    Some(_) => Err(()),
                    None => Ok(None),
                }
            }
            _ => i += 1,
        }
    }
    Ok(None)
}

/// RFC 9112 §7.1 as the gateway applies it: `1*16HEXDIG [ext] CRLF`, where
/// an extension starts with `;`, SP or HTAB and runs to CR; data; CRLF;
/// after the last chunk, trailer lines until an empty line, at most 16 KiB
/// of them (line ends' LF not counted).
pub fn reference(body: &[u8]) -> Outcome {
    let mut at = 0;
    let mut payload = Vec::new();
    loop {
        // The size line.
        let digits = body[at..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits > MAX_SIZE_DIGITS {
            return Outcome::Invalid;
        }
        let after = at + digits;
        if after == body.len() {
            return Outcome::Incomplete;
        }
        if digits == 0 || !matches!(body[after], b'\r' | b';' | b' ' | b'\t') {
            return Outcome::Invalid;
        }
        let mut size = 0u64;
        for &d in &body[at..after] {
            size = size * 16 + u64::from((d as char).to_digit(16).unwrap_or(0));
        }
        at = match line_end(body, after) {
            Ok(Some(end)) => end,
            Ok(None) => return Outcome::Incomplete,
            Err(()) => return Outcome::Invalid,
        };
        if size == 0 {
            break;
        }
        // The data and its CRLF.
        let left = body.len() - at;
        if (left as u64) < size {
            return Outcome::Incomplete;
        }
        let end = at + size as usize;
        payload.extend_from_slice(&body[at..end]);
        at = end;
        match body.get(at..at + 2) {
            Some(b"\r\n") => at += 2,
            Some(_) => return Outcome::Invalid,
            None if body.get(at).is_some_and(|&b| b != b'\r') => return Outcome::Invalid,
            None => return Outcome::Incomplete,
        }
    }
    // Trailer lines, then the empty line.
    let mut counted = 0usize;
    loop {
        let end = match line_end(body, at) {
            Ok(Some(end)) => end,
            Ok(None) => {
                counted += body.len() - at;
                return if counted > MAX_TRAILER_BYTES {
                    Outcome::Invalid
                } else {
                    Outcome::Incomplete
                };
            }
            Err(()) => {
                // Counted up to the offending byte, the limit may hit first;
                // either way it is invalid.
                return Outcome::Invalid;
            }
        };
        counted += end - at - 1;
        if counted > MAX_TRAILER_BYTES {
            return Outcome::Invalid;
        }
        if end - at == 2 {
            return Outcome::Done { used: end, payload };
        }
        at = end;
    }
}

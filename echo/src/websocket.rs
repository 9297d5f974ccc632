//! WebSocket (RFC 6455) for the echo backend: the opening handshake and a
//! loop that echoes every message back. Written out here (SHA-1 and base64
//! for one header, a frame codec) rather than pulled in with a WebSocket
//! stack: an echo needs no client, no extensions, no message assembly.

use http::{HeaderMap, HeaderValue, Method, Version};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Frames larger than this are refused (close 1009) instead of buffered.
pub const MAX_FRAME_PAYLOAD: u64 = 16 * 1024 * 1024;

const HANDSHAKE_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

mod close_code {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const TOO_BIG: u16 = 1009;
}

/// Whether a request asks to switch to WebSocket (HTTP/1.1 upgrade; the
/// HTTP/2 extended CONNECT of RFC 8441 is not supported).
pub fn is_upgrade_request(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    method == Method::GET
        && version == Version::HTTP_11
        && has_token(http::header::CONNECTION, "upgrade")
        && has_token(http::header::UPGRADE, "websocket")
}

/// Why a handshake is refused, with the status to answer.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// 400: no `Sec-WebSocket-Key`.
    MissingKey,
    /// 426 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
}

/// Checks the client's handshake headers; the `Sec-WebSocket-Accept` value
/// to answer with.
pub fn accept_handshake(headers: &HeaderMap) -> Result<HeaderValue, HandshakeError> {
    let version = headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes);
    if version != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .ok_or(HandshakeError::MissingKey)?;
    HeaderValue::from_str(&accept_value(key.as_bytes())).map_err(|_| HandshakeError::MissingKey)
}

/// `base64(sha1(key + GUID))`, RFC 6455 section 4.2.2.
pub fn accept_value(key: &[u8]) -> String {
    let mut input = key.to_vec();
    input.extend_from_slice(HANDSHAKE_GUID.as_bytes());
    base64(&sha1(&input))
}

/// Echoes frames until the client closes or breaks the protocol. Data frames
/// go back as they came (fragments included), pings are answered with
/// pongs, a close is answered with a close carrying the same code. If
/// `greeting` is given it is sent first, as a text message.
pub async fn echo<S>(mut io: S, greeting: Option<String>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(text) = greeting {
        write_frame(&mut io, true, opcode::TEXT, text.as_bytes()).await?;
    }
    loop {
        let frame = match read_frame(&mut io).await? {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(()),
            Err(code) => return close(&mut io, &code.to_be_bytes()).await,
        };
        match frame.opcode {
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {
                write_frame(&mut io, frame.fin, frame.opcode, &frame.payload).await?
            }
            opcode::PING => write_frame(&mut io, true, opcode::PONG, &frame.payload).await?,
            opcode::PONG => {}
            opcode::CLOSE => {
                // Echo the status code, not the reason.
                let code = frame.payload.get(..2).unwrap_or_default();
                return close(&mut io, code).await;
            }
            _ => return close(&mut io, &close_code::PROTOCOL_ERROR.to_be_bytes()).await,
        }
    }
}

struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// The next frame, `Ok(None)` at a clean end of stream, or the close code a
/// protocol violation calls for.
async fn read_frame<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Result<Option<Frame>, u16>> {
    let mut head = [0u8; 2];
    match io.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Ok(None)),
        Err(e) => return Err(e),
    }
    let fin = head[0] & 0x80 != 0;
    let reserved_bits = head[0] & 0x70;
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    // No extension was negotiated, and clients must mask (section 5.1).
    if reserved_bits != 0 || !masked {
        return Ok(Err(close_code::PROTOCOL_ERROR));
    }
    let len = match head[1] & 0x7F {
        126 => u64::from(io.read_u16().await?),
        127 => io.read_u64().await?,
        short => u64::from(short),
    };
    if len > MAX_FRAME_PAYLOAD {
        return Ok(Err(close_code::TOO_BIG));
    }
    let mut mask = [0u8; 4];
    io.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await?;
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
    Ok(Ok(Some(Frame {
        fin,
        opcode,
        payload,
    })))
}

/// Writes one unmasked (server) frame.
async fn write_frame<S: AsyncWrite + Unpin>(
    io: &mut S,
    fin: bool,
    opcode: u8,
    payload: &[u8],
) -> io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        len @ 0..=125 => frame.push(len as u8),
        len @ 126..=0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    io.write_all(&frame).await?;
    io.flush().await
}

async fn close<S: AsyncWrite + Unpin>(io: &mut S, payload: &[u8]) -> io::Result<()> {
    write_frame(io, true, opcode::CLOSE, payload).await?;
    io.shutdown().await
}

/// SHA-1 (FIPS 180-4). Only for the handshake's accept value, which RFC 6455
/// defines with it; not for anything that needs security.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut state: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = state;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let next = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = next;
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut digest = [0u8; 20];
    for (chunk, s) in digest.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&s.to_be_bytes());
    }
    digest
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(
                    ALPHABET[((group >> (18 - 6 * i)) & 0x3F) as usize],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_standard_test_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn accept_value_matches_rfc_6455_example() {
        assert_eq!(
            accept_value(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrade_needs_both_connection_and_upgrade_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(!is_upgrade_request(
            &Method::GET,
            Version::HTTP_11,
            &headers
        ));
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade_request(&Method::GET, Version::HTTP_11, &headers));
        assert!(!is_upgrade_request(
            &Method::POST,
            Version::HTTP_11,
            &headers
        ));
        assert!(!is_upgrade_request(&Method::GET, Version::HTTP_2, &headers));
    }

    #[test]
    fn handshake_requires_version_13_and_a_key() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("8"),
        );
        assert_eq!(
            accept_handshake(&headers),
            Err(HandshakeError::UnsupportedVersion)
        );
        headers.insert(
            http::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        assert_eq!(accept_handshake(&headers), Err(HandshakeError::MissingKey));
    }
}

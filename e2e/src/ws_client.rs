//! A minimal WebSocket client (RFC 6455) for tests: the upgrade handshake and
//! single frames, written by hand so tests see exactly what goes over the
//! wire.

use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The RFC's example key and the accept value it must produce.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// How long a test waits for one frame.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// An upgrade request for `host` and `path` with this WebSocket version.
pub fn upgrade_request(host: &str, path: &str, version: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
    )
}

/// Sends a request head and reads the response head (up to the blank line).
pub async fn exchange_head(stream: &mut TcpStream, request: &str) -> io::Result<String> {
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await?);
    }
    String::from_utf8(head).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Connects and upgrades; returns the stream and the response head.
pub async fn open(addr: &str, host: &str, path: &str) -> io::Result<(TcpStream, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = exchange_head(&mut stream, &upgrade_request(host, path, "13")).await?;
    Ok((stream, head))
}

/// A header's value in a response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Sends one client frame (always masked).
pub async fn send(stream: &mut TcpStream, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else if payload.len() <= 0xFFFF {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await
}

/// Receives one server frame: (fin, opcode, payload). A masked server frame
/// is an error, as the RFC requires.
pub async fn receive(stream: &mut TcpStream) -> io::Result<(bool, u8, Vec<u8>)> {
    let read = async {
        let first = stream.read_u8().await?;
        let second = stream.read_u8().await?;
        if second & 0x80 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "server frame is masked",
            ));
        }
        let len = match second & 0x7F {
            126 => u64::from(stream.read_u16().await?),
            127 => stream.read_u64().await?,
            n => u64::from(n),
        };
        let len =
            usize::try_from(len).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await?;
        Ok((first & 0x80 != 0, first & 0x0F, payload))
    };
    tokio::time::timeout(FRAME_TIMEOUT, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no frame within 5 s"))?
}

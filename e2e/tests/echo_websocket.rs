//! The echo backend's WebSocket support, spoken to by a hand-written client
//! (RFC 6455 framing) over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::NsProcess;
use gatehouse_e2e::echo::EchoReply;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The RFC's example key and the accept value it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn start_echo() -> (NsProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse-echo"));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--pod",
        "ws-pod",
        "--node",
        "ws-node",
    ]);
    let echo = NsProcess::spawn("echo", command).unwrap();
    let line = echo
        .wait_for_line(|l| l.starts_with("listening on "), Duration::from_secs(10))
        .unwrap();
    let addr = line.trim_start_matches("listening on ").to_owned();
    (echo, addr)
}

/// Sends a request head and reads the response head (up to the blank line).
async fn exchange_head(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    String::from_utf8(head).unwrap()
}

fn upgrade_request(path: &str, version: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: echo.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
    )
}

async fn open(addr: &str, path: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = exchange_head(&mut stream, &upgrade_request(path, "13")).await;
    (stream, head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A client frame: always masked.
async fn send(stream: &mut TcpStream, fin: bool, opcode: u8, payload: &[u8]) {
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
    stream.write_all(&frame).await.unwrap();
}

/// A server frame: (fin, opcode, payload); servers must not mask.
async fn receive(stream: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let read = async {
        let first = stream.read_u8().await.unwrap();
        let second = stream.read_u8().await.unwrap();
        assert_eq!(second & 0x80, 0, "server frames are not masked");
        let len = match second & 0x7F {
            126 => u64::from(stream.read_u16().await.unwrap()),
            127 => stream.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        stream.read_exact(&mut payload).await.unwrap();
        (first & 0x80 != 0, first & 0x0F, payload)
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap()
}

#[tokio::test]
async fn upgrade_is_accepted_with_the_rfc_accept_value_and_names_the_echo() {
    let (_echo, addr) = start_echo();
    let (mut stream, head) = open(&addr, "/chat?ws_hello=1").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some(ACCEPT));
    assert_eq!(
        header(&head, "upgrade").map(str::to_lowercase).as_deref(),
        Some("websocket")
    );
    assert_eq!(header(&head, "sec-websocket-protocol"), Some("chat"));
    assert_eq!(header(&head, "x-echo-pod"), Some("ws-pod"));
    assert_eq!(header(&head, "x-echo-node"), Some("ws-node"));

    let (fin, opcode, greeting) = receive(&mut stream).await;
    assert!(fin);
    assert_eq!(opcode, TEXT);
    let reply: EchoReply = serde_json::from_slice(&greeting).unwrap();
    assert_eq!(reply.pod, "ws-pod");
    assert_eq!(reply.path, "/chat");
    assert_eq!(
        reply.headers.get("upgrade").map(String::as_str),
        Some("websocket")
    );
}

#[tokio::test]
async fn messages_of_every_size_are_echoed_back() {
    let (_echo, addr) = start_echo();
    let (mut stream, head) = open(&addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    send(&mut stream, true, TEXT, b"hello").await;
    assert_eq!(receive(&mut stream).await, (true, TEXT, b"hello".to_vec()));

    for len in [0usize, 125, 126, 300, 65_535, 65_536, 70_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        send(&mut stream, true, BINARY, &payload).await;
        assert_eq!(
            receive(&mut stream).await,
            (true, BINARY, payload),
            "length {len}"
        );
    }
}

#[tokio::test]
async fn fragments_pings_and_close_follow_the_protocol() {
    let (_echo, addr) = start_echo();
    let (mut stream, _) = open(&addr, "/").await;

    send(&mut stream, false, TEXT, b"hel").await;
    // A control frame may come between the fragments of a message.
    send(&mut stream, true, PING, b"are you there").await;
    send(&mut stream, true, CONTINUATION, b"lo").await;
    assert_eq!(receive(&mut stream).await, (false, TEXT, b"hel".to_vec()));
    assert_eq!(
        receive(&mut stream).await,
        (true, PONG, b"are you there".to_vec())
    );
    assert_eq!(
        receive(&mut stream).await,
        (true, CONTINUATION, b"lo".to_vec())
    );

    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    send(&mut stream, true, CLOSE, &close).await;
    assert_eq!(
        receive(&mut stream).await,
        (true, CLOSE, 1000u16.to_be_bytes().to_vec())
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing after the close frame");
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    let (_echo, addr) = start_echo();
    let (mut stream, _) = open(&addr, "/").await;
    stream.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(
        receive(&mut stream).await,
        (true, CLOSE, 1002u16.to_be_bytes().to_vec())
    );
}

#[tokio::test]
async fn refused_upgrades_get_a_plain_answer() {
    let (_echo, addr) = start_echo();

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = exchange_head(&mut stream, &upgrade_request("/", "8")).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"));

    // status=NNN refuses the upgrade with that status and the usual JSON.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = exchange_head(&mut stream, &upgrade_request("/?status=403", "13")).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
}

#[tokio::test]
async fn plain_requests_still_get_the_json_reply() {
    let (_echo, addr) = start_echo();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = exchange_head(
        &mut stream,
        "GET /plain?x=1 HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await.unwrap();
    let reply: EchoReply = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (reply.path.as_str(), reply.query.as_str()),
        ("/plain", "x=1")
    );
    assert_eq!(reply.protocol, "HTTP/1.1");
}

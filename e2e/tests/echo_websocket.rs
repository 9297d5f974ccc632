//! The echo backend's WebSocket support, spoken to by a hand-written client
//! (RFC 6455 framing) over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::cluster::NsProcess;
use gatehouse_e2e::echo::EchoReply;
use gatehouse_e2e::local::binary;
use gatehouse_e2e::ws_client::{
    exchange_head, header, open as open_ws, receive, send, upgrade_request, ACCEPT, BINARY, CLOSE,
    CONTINUATION, PING, PONG, TEXT,
};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn start_echo() -> (NsProcess, String) {
    let mut command = Command::new(binary("gatehouse-echo").unwrap());
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

#[tokio::test]
async fn upgrade_is_accepted_with_the_rfc_accept_value_and_names_the_echo() {
    let (_echo, addr) = start_echo();
    let (mut stream, head) = open_ws(&addr, "echo.test", "/chat?ws_hello=1")
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some(ACCEPT));
    assert_eq!(
        header(&head, "upgrade").map(str::to_lowercase).as_deref(),
        Some("websocket")
    );
    assert_eq!(header(&head, "sec-websocket-protocol"), Some("chat"));
    assert_eq!(header(&head, "x-echo-pod"), Some("ws-pod"));
    assert_eq!(header(&head, "x-echo-node"), Some("ws-node"));

    let (fin, opcode, greeting) = receive(&mut stream).await.unwrap();
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
    let (mut stream, head) = open_ws(&addr, "echo.test", "/").await.unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    send(&mut stream, true, TEXT, b"hello").await.unwrap();
    assert_eq!(
        receive(&mut stream).await.unwrap(),
        (true, TEXT, b"hello".to_vec())
    );

    for len in [0usize, 125, 126, 300, 65_535, 65_536, 70_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        send(&mut stream, true, BINARY, &payload).await.unwrap();
        assert_eq!(
            receive(&mut stream).await.unwrap(),
            (true, BINARY, payload),
            "length {len}"
        );
    }
}

#[tokio::test]
async fn fragments_pings_and_close_follow_the_protocol() {
    let (_echo, addr) = start_echo();
    let (mut stream, _) = open_ws(&addr, "echo.test", "/").await.unwrap();

    send(&mut stream, false, TEXT, b"hel").await.unwrap();
    // A control frame may come between the fragments of a message.
    send(&mut stream, true, PING, b"are you there")
        .await
        .unwrap();
    send(&mut stream, true, CONTINUATION, b"lo").await.unwrap();
    assert_eq!(
        receive(&mut stream).await.unwrap(),
        (false, TEXT, b"hel".to_vec())
    );
    assert_eq!(
        receive(&mut stream).await.unwrap(),
        (true, PONG, b"are you there".to_vec())
    );
    assert_eq!(
        receive(&mut stream).await.unwrap(),
        (true, CONTINUATION, b"lo".to_vec())
    );

    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    send(&mut stream, true, CLOSE, &close).await.unwrap();
    assert_eq!(
        receive(&mut stream).await.unwrap(),
        (true, CLOSE, 1000u16.to_be_bytes().to_vec())
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing after the close frame");
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    let (_echo, addr) = start_echo();
    let (mut stream, _) = open_ws(&addr, "echo.test", "/").await.unwrap();
    stream.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(
        receive(&mut stream).await.unwrap(),
        (true, CLOSE, 1002u16.to_be_bytes().to_vec())
    );
}

#[tokio::test]
async fn refused_upgrades_get_a_plain_answer() {
    let (_echo, addr) = start_echo();

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = exchange_head(&mut stream, &upgrade_request("echo.test", "/", "8"))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"));

    // status=NNN refuses the upgrade with that status and the usual JSON.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = exchange_head(
        &mut stream,
        &upgrade_request("echo.test", "/?status=403", "13"),
    )
    .await
    .unwrap();
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
    .await
    .unwrap();
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

//! Request bodies over HTTP/2 (issue 10, bug 4): a slow upload is not cut
//! by the upstream read timeout, which starts once the request is sent,
//! and an upload that stops is bounded by `--client-body-timeout`. Each
//! with an honest request served meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use gatehouse_e2e::raw_http::{fingerprint, response, Action, Request, READ_TIMEOUT};
use gatehouse_e2e::rig::ProxyRig;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::time::{Duration, Instant};

const HOST: &str = "uploads.test";

type BodySender = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// 200 with the fingerprint of the body received.
fn echo(r: &Request) -> Action {
    Action::Send(response(200, "", fingerprint(&r.body).as_bytes()))
}

/// Starts an h2c POST of `len` bytes whose body the caller sends through
/// the returned channel; resolves to (status, body) once answered.
async fn post(
    rig: &ProxyRig,
    path: &str,
    len: usize,
) -> (BodySender, tokio::task::JoinHandle<(u16, Vec<u8>)>) {
    let tcp = tokio::net::TcpStream::connect(rig.lg.http).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(4);
    let request = http::Request::post(format!("http://{HOST}{path}"))
        .header("content-length", len)
        .body(StreamBody::new(rx))
        .unwrap();
    let answer = tokio::spawn(async move {
        let resp = sender.send_request(request).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        (status, body.map(|b| b.to_vec()).unwrap_or_default())
    });
    (tx, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http2_upload_is_not_cut_by_the_upstream_read_timeout() {
    let rig = ProxyRig::start(&["--upstream-read-timeout", "1s"], echo)
        .await
        .unwrap();
    let body: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let (mut tx, answer) = post(&rig, "/slow", body.len()).await;
    // Three seconds of upload, three times the upstream read timeout.
    for piece in body.chunks(300) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if tx
            .send(Ok(Frame::data(Bytes::copy_from_slice(piece))))
            .await
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    rig.barrier("/honest").await;
    let (status, got) = answer.await.unwrap();
    assert_eq!(
        status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&got),
        rig.lg.logs()
    );
    assert_eq!(got, fingerprint(&body).into_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http2_upload_gets_408_after_the_client_body_timeout() {
    let rig = ProxyRig::start(&["--client-body-timeout", "1s"], echo)
        .await
        .unwrap();
    let (mut tx, answer) = post(&rig, "/stalled", 100).await;
    tx.send(Ok(Frame::data(Bytes::from_static(b"only part of it"))))
        .await
        .unwrap();
    let started = Instant::now();
    rig.barrier("/honest").await;
    let (status, _) = tokio::time::timeout(READ_TIMEOUT, answer)
        .await
        .expect("the stalled upload was never answered")
        .unwrap();
    assert_eq!(status, 408, "{}", rig.lg.logs());
    assert!(started.elapsed() < READ_TIMEOUT);
    drop(tx);
    rig.barrier("/after").await;
}

//! Plain HTTP/1.1 requests from inside a namespace, for tests that check
//! where traffic lands.

use super::error::{ClusterError, Result};
use super::netns::Netns;
use crate::echo::EchoReply;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a probe may take in all: a packet dropped somewhere in a broken
/// setup would otherwise hang the test in TCP retransmissions.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Bytes,
}

/// `GET path` to `addr` with the given Host, sent from inside `from`.
pub async fn http_get(
    from: &Netns,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<HttpAnswer> {
    let request = async {
        let stream = from.connect(addr).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http_error(addr, e))?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClusterError::Invalid(format!("request for {path}: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http_error(addr, e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http_error(addr, e))?
            .to_bytes();
        Ok(HttpAnswer { status, body })
    };
    tokio::time::timeout(PROBE_TIMEOUT, request)
        .await
        .map_err(|_| ClusterError::Timeout {
            what: format!("GET http://{addr}{path} from {}", from.name()),
            after: PROBE_TIMEOUT,
            output: String::new(),
        })?
}

/// `GET /` to an echo server at `addr`, from inside `from`; its reply.
pub async fn echo_get(from: &Netns, addr: SocketAddr) -> Result<EchoReply> {
    let answer = http_get(from, addr, &addr.to_string(), "/").await?;
    serde_json::from_slice(&answer.body).map_err(|e| {
        ClusterError::Invalid(format!(
            "{addr} answered {} with a body that is no echo reply ({e}): {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ))
    })
}

fn http_error(addr: SocketAddr, source: hyper::Error) -> ClusterError {
    ClusterError::io(
        format!("HTTP exchange with {addr}"),
        std::io::Error::other(source),
    )
}

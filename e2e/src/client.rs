//! A small HTTP client for tests: HTTP/1.1 or cleartext HTTP/2 (prior
//! knowledge), one request at a time, with the echo reply decoded.

use crate::echo::EchoReply;
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

/// An HTTP answer, body fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(resp: http::Response<hyper::body::Incoming>) -> Result<Reply, hyper::Error> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// The echo backend's JSON, if the body is one.
    pub fn echo(&self) -> Option<EchoReply> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `service/pod` of the echo backend that answered, or `status N`.
    pub fn who(&self) -> String {
        match self.echo() {
            Some(e) => format!("{}/{}", e.service, e.pod),
            None => format!("status {}", self.status),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request to {addr}{path} failed: {source}")]
    Request {
        addr: SocketAddr,
        path: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the body from {addr}{path}: {message}")]
    Body {
        addr: SocketAddr,
        path: String,
        message: String,
    },
    #[error("building the request: {0}")]
    Build(#[from] http::Error),
    #[error("request to {0} timed out")]
    Timeout(String),
}

/// A pooled client; keep one per test to reuse connections.
#[derive(Clone)]
pub struct TestClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
}

impl TestClient {
    /// HTTP/1.1 with keepalive.
    pub fn http1() -> Self {
        TestClient {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Cleartext HTTP/2 with prior knowledge.
    pub fn h2c() -> Self {
        TestClient {
            inner: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    /// GET `path` from `addr` with this Host (None: no Host header beyond
    /// what the URI implies) and extra headers.
    pub async fn get(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let mut req = Request::get(format!("http://{host}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::new())?;
        // Connect to addr whatever the Host says.
        let uri_addr = format!("http://{addr}{path}");
        let (mut parts, body) = req.into_parts();
        let host_header = http::HeaderValue::from_str(host).map_err(http::Error::from)?;
        parts.headers.insert(http::header::HOST, host_header);
        parts.uri = uri_addr.parse().map_err(http::Error::from)?;
        let req = Request::from_parts(parts, body);
        let fut = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|source| ClientError::Request {
                    addr,
                    path: path.to_owned(),
                    source,
                })?;
            Reply::read(resp).await.map_err(|e| ClientError::Body {
                addr,
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .map_err(|_| ClientError::Timeout(format!("{addr}{path}")))?
    }
}

/// One HTTP/2 (prior knowledge) GET over a fresh connection to `addr`, with
/// `authority` as the request's :authority (no Host header), as h2 clients
/// send it.
pub async fn h2c_get(addr: SocketAddr, authority: &str, path: &str) -> Result<Reply, ClientError> {
    let fail = |message: String| ClientError::Body {
        addr,
        path: path.to_owned(),
        message,
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .map_err(|e| fail(format!("h2 handshake: {e}")))?;
    let conn_task = tokio::spawn(conn);
    let req = Request::get(format!("http://{authority}{path}")).body(Empty::<Bytes>::new())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| fail(format!("send: {e}")))?;
    let reply = Reply::read(resp)
        .await
        .map_err(|e| fail(format!("body: {e}")))?;
    conn_task.abort();
    Ok(reply)
}

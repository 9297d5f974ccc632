//! The echo backend's server, usable in-process from tests or through the
//! `gatehouse-echo` binary. HTTP/1.1 and cleartext HTTP/2 on one port, and
//! WebSocket upgrades on HTTP/1.1 (messages are echoed back).
//!
//! A crate of its own, apart from the end-to-end harness (`gatehouse-e2e`,
//! which re-exports it as `gatehouse_e2e::echo`), so that the quickstart can
//! build the echo backend without the harness's dependencies.

pub mod websocket;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

/// Who this echo server says it is.
#[derive(Debug, Clone, Default)]
pub struct EchoIdentity {
    pub service: String,
    pub pod: String,
    pub node: String,
}

/// The JSON an echo server answers with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EchoReply {
    pub service: String,
    pub pod: String,
    pub node: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub host: String,
    pub protocol: String,
    pub client: String,
    /// Header names lowercased; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    pub body_bytes: usize,
}

/// Serves until the listener fails; each connection on its own task.
pub async fn serve(listener: TcpListener, identity: EchoIdentity) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let identity = identity.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let identity = identity.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, &identity, peer).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    id: &EchoIdentity,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    if let Some(ms) = param("delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = param("status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok());
    // `status=NNN` on an upgrade request refuses the upgrade with that status.
    if status.is_none()
        && websocket::is_upgrade_request(&parts.method, parts.version, &parts.headers)
    {
        let greeting = (param("ws_hello").as_deref() == Some("1"))
            .then(|| serde_json::to_string(&describe(&parts, id, peer, 0)).unwrap_or_default());
        return upgrade_to_websocket(&mut parts, id, greeting);
    }
    let body_bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let reply = describe(&parts, id, peer, body_bytes);
    let json = serde_json::to_vec(&reply).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(json)));
    *resp.status_mut() = status.unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What the echo says about a request.
fn describe(
    parts: &http::request::Parts,
    id: &EchoIdentity,
    peer: SocketAddr,
    body_bytes: usize,
) -> EchoReply {
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|old: &mut String| {
                old.push_str(", ");
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    EchoReply {
        service: id.service.clone(),
        pod: id.pod.clone(),
        node: id.node.clone(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        host,
        protocol: format!("{:?}", parts.version),
        client: peer.to_string(),
        headers,
        body_bytes,
    }
}

/// Answers a WebSocket upgrade with 101 and echoes messages on the upgraded
/// connection. The 101 names the echo (`x-echo-service`, `x-echo-pod`,
/// `x-echo-node`) and selects the first subprotocol the client offers.
fn upgrade_to_websocket(
    parts: &mut http::request::Parts,
    id: &EchoIdentity,
    greeting: Option<String>,
) -> Response<Full<Bytes>> {
    let accept = match websocket::accept_handshake(&parts.headers) {
        Ok(accept) => accept,
        Err(refusal) => {
            let mut resp = Response::new(Full::new(Bytes::from(format!("{refusal:?}"))));
            *resp.status_mut() = match refusal {
                websocket::HandshakeError::MissingKey => StatusCode::BAD_REQUEST,
                websocket::HandshakeError::UnsupportedVersion => {
                    resp.headers_mut().insert(
                        http::header::SEC_WEBSOCKET_VERSION,
                        http::HeaderValue::from_static("13"),
                    );
                    StatusCode::UPGRADE_REQUIRED
                }
            };
            return resp;
        }
    };
    if let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() {
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    if let Err(e) = websocket::echo(TokioIo::new(upgraded), greeting).await {
                        tracing::debug!("websocket echo ended: {e}");
                    }
                }
                Err(e) => tracing::warn!("websocket upgrade failed: {e}"),
            }
        });
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    let offered = parts
        .headers
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .and_then(|p| http::HeaderValue::from_str(p).ok());
    if let Some(protocol) = offered {
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    for (name, value) in [
        ("x-echo-service", &id.service),
        ("x-echo-pod", &id.pod),
        ("x-echo-node", &id.node),
    ] {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    resp
}

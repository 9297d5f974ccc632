//! Follows the controller's snapshot stream, reconnecting with backoff. While
//! the controller is away the last installed snapshot keeps serving.

use crate::install::{parse_frame, SharedTable};
use crate::metrics as m;
use bytes::{Bytes, BytesMut};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// A stream silent for this long is considered dead (the controller sends a
/// heartbeat every 10 s).
const READ_TIMEOUT: Duration = Duration::from_secs(35);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Largest frame accepted (a snapshot of ~100k routes fits easily).
const MAX_FRAME: usize = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("controller URL {0:?} must look like http://HOST:PORT")]
    BadUrl(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {0}: timed out")]
    ConnectTimeout(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building request: {0}")]
    Request(#[from] http::Error),
    #[error("controller answered {0}")]
    Status(http::StatusCode),
    #[error("no data for {0:?}; assuming the connection is dead")]
    Silent(Duration),
    #[error("stream ended")]
    Ended,
    #[error("frame larger than {MAX_FRAME} bytes")]
    FrameTooLarge,
}

/// The controller's address, checked once at start-up.
#[derive(Debug, Clone)]
pub struct ControllerUrl {
    authority: String,
}

impl ControllerUrl {
    pub fn parse(url: &str) -> Result<Self, StreamError> {
        let bad = || StreamError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.port_u16().is_none() {
            return Err(bad());
        }
        Ok(ControllerUrl {
            authority: authority.as_str().to_owned(),
        })
    }
}

/// Runs forever: connect, install every frame, reconnect on failure.
pub async fn follow(url: ControllerUrl, shared: SharedTable) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut installed = false;
        let result = stream_once(&url, &shared, &mut installed).await;
        metrics::gauge!(m::CONTROLLER_CONNECTED).set(0.0);
        if installed {
            backoff = BACKOFF_MIN;
        }
        let serving = if shared.is_ready() {
            format!("keeping snapshot version {}", shared.version())
        } else {
            "no snapshot yet".to_owned()
        };
        match result {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(controller = %url.authority, "snapshot stream: {e}; {serving}; retrying in {backoff:?}")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn stream_once(
    url: &ControllerUrl,
    shared: &SharedTable,
    installed: &mut bool,
) -> Result<(), StreamError> {
    let addr = url.authority.clone();
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| StreamError::ConnectTimeout(addr.clone()))?
        .map_err(|source| StreamError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let conn_task = tokio::spawn(conn);
    let _abort = AbortOnDrop(conn_task);
    let req = Request::get("/v1/snapshots")
        .header(http::header::HOST, &addr)
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        return Err(StreamError::Status(resp.status()));
    }
    tracing::info!(controller = %addr, "connected to controller");
    metrics::gauge!(m::CONTROLLER_CONNECTED).set(1.0);
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut last_version: Option<u64> = None;
    loop {
        let frame = match tokio::time::timeout(READ_TIMEOUT, body.frame()).await {
            Err(_) => return Err(StreamError::Silent(READ_TIMEOUT)),
            Ok(None) => return Err(StreamError::Ended),
            Ok(Some(f)) => f?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(pos + 1);
            let line = &line[..pos];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue; // heartbeat
            }
            handle_line(line, shared, &mut last_version, installed);
        }
        if buf.len() > MAX_FRAME {
            return Err(StreamError::FrameTooLarge);
        }
    }
}

/// Installs one frame. Within one connection versions must rise; the first
/// frame of a connection is always taken (the controller may have restarted).
fn handle_line(line: &[u8], shared: &SharedTable, last: &mut Option<u64>, installed: &mut bool) {
    let frame = match parse_frame(line) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("{e}; keeping snapshot version {}", shared.version());
            return;
        }
    };
    if last.is_some_and(|l| frame.version <= l) {
        tracing::debug!(
            version = frame.version,
            "ignoring snapshot that is not newer"
        );
        return;
    }
    match shared.install(&frame) {
        Ok(v) => {
            *last = Some(v);
            *installed = true;
        }
        Err(e) => tracing::error!("{e}; keeping snapshot version {}", shared.version()),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! Follows the controller's snapshot stream, reconnecting with backoff. While
//! the controller is away the last installed snapshot keeps serving.
//!
//! `https://` controllers are spoken to over mutual TLS: the gateway checks
//! the controller's certificate against `--controller-ca` and presents its
//! own client certificate. The files are read again for every connection,
//! so rotating them needs no restart.

use crate::install::{parse_frame, SharedTable};
use crate::metrics as m;
use bytes::{Bytes, BytesMut};
use gatehouse_model::certs::{pem_certificates, pem_private_key, PemError};
use gatehouse_model::StreamFrame;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

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
    #[error("controller URL {0:?} must look like http://HOST:PORT or https://HOST:PORT")]
    BadUrl(String),
    #[error("an https:// controller needs --controller-ca, --controller-client-cert and --controller-client-key; missing: {0}")]
    MissingTls(String),
    #[error("--controller-ca and the client certificate flags are for https:// controllers only")]
    TlsForPlain,
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Pem { path: String, source: PemError },
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    #[error("--controller-ca: {0}")]
    Ca(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {0}: timed out")]
    ConnectTimeout(String),
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
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
    #[error("{0}; reconnecting for a full snapshot")]
    Inconsistent(crate::install::InstallError),
}

/// The files of the gateway's side of mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The controller's address and how to reach it, checked once at start-up.
#[derive(Debug, Clone)]
pub struct ControllerUrl {
    authority: String,
    host: String,
    tls: Option<ClientTlsFiles>,
}

impl ControllerUrl {
    /// Parses `--controller` with the TLS flags given (`None` each when absent).
    pub fn parse(
        url: &str,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Self, StreamError> {
        let bad = || StreamError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.port_u16().is_none() {
            return Err(bad());
        }
        let tls = match uri.scheme_str() {
            Some("https") => match (ca, cert, key) {
                (Some(ca), Some(cert), Some(key)) => Some(ClientTlsFiles { ca, cert, key }),
                (ca, cert, key) => {
                    let missing: Vec<&str> = [
                        ("--controller-ca", ca.is_none()),
                        ("--controller-client-cert", cert.is_none()),
                        ("--controller-client-key", key.is_none()),
                    ]
                    .into_iter()
                    .filter_map(|(name, absent)| absent.then_some(name))
                    .collect();
                    return Err(StreamError::MissingTls(missing.join(", ")));
                }
            },
            Some("http") if ca.is_none() && cert.is_none() && key.is_none() => None,
            Some("http") => return Err(StreamError::TlsForPlain),
            _ => return Err(bad()),
        };
        Ok(ControllerUrl {
            authority: authority.as_str().to_owned(),
            host: authority.host().trim_matches(['[', ']']).to_owned(),
            tls,
        })
    }

    /// Checks that the TLS files make a client configuration (at start-up,
    /// so a typo fails fast instead of in the reconnect loop).
    pub fn check(&self) -> Result<(), StreamError> {
        match &self.tls {
            Some(files) => client_config(files).map(|_| ()),
            None => Ok(()),
        }
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
        if let Err(e) = result {
            tracing::warn!(controller = %url.authority, "snapshot stream: {e}; {serving}; retrying in {backoff:?}");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn read(path: &Path) -> Result<Vec<u8>, StreamError> {
    std::fs::read(path).map_err(|source| StreamError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn pem_error(path: &Path) -> impl FnOnce(PemError) -> StreamError + '_ {
    move |source| StreamError::Pem {
        path: path.display().to_string(),
        source,
    }
}

fn client_config(files: &ClientTlsFiles) -> Result<rustls::ClientConfig, StreamError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certificates(&read(&files.ca)?).map_err(pem_error(&files.ca))? {
        roots.add(ca).map_err(|e| StreamError::Ca(e.to_string()))?;
    }
    let chain = pem_certificates(&read(&files.cert)?).map_err(pem_error(&files.cert))?;
    let key = pem_private_key(&read(&files.key)?).map_err(pem_error(&files.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
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
    let (body, _conn) = match &url.tls {
        None => open(tcp, &addr).await?,
        Some(files) => {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(files)?));
            let name = ServerName::try_from(url.host.clone())
                .map_err(|_| StreamError::BadUrl(url.authority.clone()))?;
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| StreamError::ConnectTimeout(addr.clone()))?
                .map_err(|source| StreamError::Handshake {
                    addr: addr.clone(),
                    source,
                })?;
            open(tls, &addr).await?
        }
    };
    tracing::info!(controller = %addr, tls = url.tls.is_some(), "connected to controller");
    metrics::gauge!(m::CONTROLLER_CONNECTED).set(1.0);
    read_frames(body, shared, installed).await
}

/// Sends the stream request; the connection task stops when the returned
/// guard is dropped.
async fn open<IO>(io: IO, addr: &str) -> Result<(Incoming, AbortOnDrop), StreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let guard = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let req = Request::get("/v1/snapshots")
        .header(http::header::HOST, addr)
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        return Err(StreamError::Status(resp.status()));
    }
    Ok((resp.into_body(), guard))
}

async fn read_frames(
    mut body: Incoming,
    shared: &SharedTable,
    installed: &mut bool,
) -> Result<(), StreamError> {
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
            handle_line(line, shared, &mut last_version, installed)?;
        }
        if buf.len() > MAX_FRAME {
            return Err(StreamError::FrameTooLarge);
        }
    }
}

/// Applies one frame. Within one connection versions must rise; the first
/// frame of a connection is always taken (the controller may have restarted).
/// An invalid snapshot is refused and the last good one kept; an endpoint
/// update that does not fit the installed snapshot ends the connection, as
/// the reconnect starts with a full snapshot.
fn handle_line(
    line: &[u8],
    shared: &SharedTable,
    last: &mut Option<u64>,
    installed: &mut bool,
) -> Result<(), StreamError> {
    let frame = match parse_frame(line) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("{e}; keeping snapshot version {}", shared.version());
            return Ok(());
        }
    };
    if last.is_some_and(|l| frame.version() <= l) {
        tracing::debug!(
            version = frame.version(),
            "ignoring frame that is not newer"
        );
        return Ok(());
    }
    match shared.apply(&frame) {
        Ok(v) => {
            *last = Some(v);
            *installed = true;
            Ok(())
        }
        Err(e) if matches!(frame, StreamFrame::Endpoints(_)) => Err(StreamError::Inconsistent(e)),
        Err(e) => {
            tracing::error!("{e}; keeping snapshot version {}", shared.version());
            Ok(())
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! The running emulator: a listener on loopback serving the API over plain
//! HTTP or HTTPS, owned by an [`Emulator`] handle that stops everything when
//! dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::audit::AuditEntry;
use super::auth::Authenticator;
use super::bootstrap::{ControlPlane, KUBERNETES_SERVICE_IP};
use super::error::{ApiError, EmulatorError};
use super::http::handle;
use super::kubeconfig;
use super::serving_tls::ServingTls;
use super::state::State;

/// Tunables; the defaults suit tests.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// How many change events are kept for watches to resume from; a watch
    /// or continue token older than that gets 410 Gone.
    pub history_limit: usize,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// Serve HTTPS with the emulator's own CA (published in every
    /// namespace's `kube-root-ca.crt`) instead of plain HTTP.
    pub serve_tls: bool,
    /// Where the `default/kubernetes` Service's endpoints point, for clients
    /// inside a simulated cluster (default: the listening address). Its IP
    /// is also in the serving certificate.
    pub advertise_address: Option<SocketAddr>,
    /// Requests without a bearer token are `system:anonymous` and need an
    /// RBAC grant like anyone else (default: they act as the admin).
    pub require_authentication: bool,
    /// The shortest `expirationSeconds` a TokenRequest may ask for: 10
    /// minutes on a real server; tests may lower it to see tokens expire.
    pub min_token_expiration: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(10),
            default_watch_timeout: Duration::from_secs(1800),
            serve_tls: false,
            advertise_address: None,
            require_authentication: false,
            min_token_expiration: Duration::from_secs(600),
        }
    }
}

/// State shared by the listener, request handlers and watch streams.
#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<State>,
    /// Carries the latest resourceVersion; watches wake on every change.
    pub changes: watch::Sender<u64>,
    pub config: EmulatorConfig,
    /// Flips (or closes) when the emulator stops.
    pub shutdown: watch::Receiver<bool>,
    /// Bumped to end every open connection and watch at once (a restart).
    pub disconnects: watch::Sender<u64>,
    /// Every write served, in order.
    pub audit: Mutex<Vec<AuditEntry>>,
    /// Bearer tokens: the admin's and those issued to ServiceAccounts.
    pub auth: Authenticator,
}

impl Shared {
    pub fn lock(&self) -> Result<MutexGuard<'_, State>, ApiError> {
        self.state
            .lock()
            .map_err(|_| ApiError::internal("emulator state lock poisoned"))
    }

    /// Runs a mutation and wakes the watches if it wrote anything.
    pub fn write<T>(
        &self,
        mutation: impl FnOnce(&mut State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut state = self.lock()?;
        let before = state.store.current_rv();
        let result = mutation(&mut state);
        let after = state.store.current_rv();
        drop(state);
        if after != before {
            self.changes.send_replace(after);
        }
        result
    }
}

/// A running Kubernetes API emulator. Dropping it stops the listener, all
/// connections and all watch streams.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    accept_loop: JoinHandle<()>,
    tls: ServingTls,
}

impl Emulator {
    /// Starts an emulator listening on `listen` (e.g. `127.0.0.1:0`).
    pub async fn start(listen: &str) -> Result<Self, EmulatorError> {
        Self::start_with(listen, EmulatorConfig::default()).await
    }

    pub async fn start_with(listen: &str, config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let advertised = config.advertise_address.unwrap_or(addr);
        let mut ips = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            addr.ip(),
            advertised.ip(),
        ];
        ips.extend(KUBERNETES_SERVICE_IP.parse::<IpAddr>());
        let tls = ServingTls::generate(&ips)?;
        let control_plane = ControlPlane {
            root_ca_pem: tls.ca_pem.clone(),
            api_endpoint: advertised,
        };
        let auth = Authenticator::new(config.require_authentication, config.min_token_expiration)
            .map_err(|e| EmulatorError::Credentials(e.to_string()))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = State::new(config.history_limit, Some(control_plane));
        let (changes, _) = watch::channel(state.store.current_rv());
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changes,
            config,
            shutdown: shutdown_rx,
            disconnects: watch::channel(0).0,
            audit: Mutex::new(Vec::new()),
            auth,
        });
        let acceptor = shared.config.serve_tls.then(|| tls.server.clone());
        let accept_loop = tokio::spawn(accept_loop(listener, shared.clone(), acceptor));
        tracing::info!(%addr, "kube-emulator listening");
        Ok(Self {
            addr,
            shared,
            shutdown,
            accept_loop,
            tls,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` (or `https://` when serving TLS), the server URL
    /// clients use.
    pub fn url(&self) -> String {
        let scheme = if self.serves_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn serves_tls(&self) -> bool {
        self.shared.config.serve_tls
    }

    /// PEM of the CA behind the serving certificate (also in every
    /// namespace's `kube-root-ca.crt`).
    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
    }

    /// A kubeconfig (YAML) pointing at this emulator with the admin token.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(&self.url(), self.kubeconfig_ca(), self.admin_token())
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), EmulatorError> {
        kubeconfig::write(
            path.as_ref(),
            &self.url(),
            self.kubeconfig_ca(),
            self.admin_token(),
        )
    }

    /// The bearer token of the admin identity (`kube-emulator-admin`,
    /// group `system:masters`), made at start.
    pub fn admin_token(&self) -> &str {
        self.shared.auth.admin_token()
    }

    fn kubeconfig_ca(&self) -> Option<&str> {
        self.serves_tls().then_some(self.tls.ca_pem.as_str())
    }

    /// A kube-rs client for this emulator (default namespace `default`),
    /// authenticated as the admin.
    pub fn kube_client(&self) -> Result<kube::Client, EmulatorError> {
        self.kube_client_with_token(self.admin_token())
    }

    /// A kube-rs client sending `token` as its bearer token (e.g. one
    /// from a TokenRequest).
    pub fn kube_client_with_token(&self, token: &str) -> Result<kube::Client, EmulatorError> {
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e| EmulatorError::Client(format!("bad emulator URL: {e}")))?;
        let mut config = kube::Config::new(uri);
        config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
        if self.serves_tls() {
            config.root_cert = Some(vec![self.tls.ca_der.clone()]);
        }
        kube::Client::try_from(config).map_err(|e| EmulatorError::Client(e.to_string()))
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.shared
            .lock()
            .map(|s| s.store.current_rv())
            .unwrap_or(0)
    }

    /// Forgets all watch history, as an etcd compaction would: every watch
    /// or continue token from before now gets 410 Gone.
    pub fn compact_history(&self) {
        if let Ok(mut state) = self.shared.lock() {
            state.store.compact();
        }
    }

    /// Every write served so far (oldest first).
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.shared
            .audit
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Restarts the API server as clients see it: every connection and
    /// watch ends, nothing is accepted for `downtime`, then it serves again
    /// on the same address with the same objects (etcd survives a restart).
    pub async fn restart(&mut self, downtime: Duration) -> Result<(), EmulatorError> {
        self.accept_loop.abort();
        let _ = (&mut self.accept_loop).await;
        self.shared.disconnects.send_modify(|n| *n += 1);
        tokio::time::sleep(downtime).await;
        let bind_error = |source| EmulatorError::Bind {
            addr: self.addr.to_string(),
            source,
        };
        // The old listener is gone; the port is ours to take again.
        let socket = tokio::net::TcpSocket::new_v4().map_err(bind_error)?;
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(self.addr).map_err(bind_error)?;
        let listener = socket.listen(1024).map_err(bind_error)?;
        let acceptor = self.serves_tls().then(|| self.tls.server.clone());
        self.accept_loop = tokio::spawn(accept_loop(listener, self.shared.clone(), acceptor));
        tracing::info!(addr = %self.addr, "kube-emulator restarted");
        Ok(())
    }

    /// Stops serving (the same as dropping the handle).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, _peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "kube-emulator accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(shared, stream).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => serve_connection(shared, stream).await,
                    Err(error) => tracing::debug!(%error, "kube-emulator TLS handshake failed"),
                },
            }
        });
    }
}

/// Serves one connection until it ends, the emulator stops or restarts.
async fn serve_connection<S>(shared: Arc<Shared>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = shared.shutdown.clone();
    let mut disconnects = shared.disconnects.subscribe();
    let service = service_fn(move |request| handle(shared.clone(), request));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "kube-emulator connection ended with an error");
            }
        }
        _ = shutdown.changed() => {}
        _ = disconnects.changed() => {}
    }
}

//! The command line of `gatehouse-gateway`, in the library so that tests
//! (the Helm chart's) can check arguments against the real definition.

use clap::{ArgGroup, Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-gateway",
    version,
    about = "Gatehouse data plane: routes HTTP traffic by the controller's snapshots",
    group(ArgGroup::new("source").required(true).args(["controller", "snapshot_file"]))
)]
pub struct Args {
    /// The controller's snapshot stream (its --snapshot-addr): https://HOST:PORT
    /// (mutual TLS, cluster mode) or http://HOST:PORT (local mode).
    #[arg(long, env = "GATEHOUSE_CONTROLLER")]
    pub controller: Option<String>,

    /// PEM CA certificates the controller's certificate must chain to.
    #[arg(long, env = "GATEHOUSE_CONTROLLER_CA")]
    pub controller_ca: Option<PathBuf>,

    /// PEM client certificate chain presented to the controller.
    #[arg(long, env = "GATEHOUSE_CONTROLLER_CLIENT_CERT")]
    pub controller_client_cert: Option<PathBuf>,

    /// PEM private key of --controller-client-cert.
    #[arg(long, env = "GATEHOUSE_CONTROLLER_CLIENT_KEY")]
    pub controller_client_key: Option<PathBuf>,

    /// Serve a snapshot from this JSON file instead of following a controller.
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_FILE")]
    pub snapshot_file: Option<PathBuf>,

    /// Address for HTTP/1.1 and cleartext HTTP/2 (prior knowledge) traffic.
    #[arg(long, env = "GATEHOUSE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address for HTTPS (TLS 1.2/1.3, ALPN h2 and http/1.1). Off unless set.
    #[arg(long, env = "GATEHOUSE_HTTPS_ADDR")]
    pub https_addr: Option<SocketAddr>,

    /// The port HTTP→HTTPS redirects point to (the port clients reach the
    /// HTTPS listener on from outside, e.g. through a load balancer).
    #[arg(long, env = "GATEHOUSE_HTTPS_REDIRECT_PORT", default_value_t = 443)]
    pub https_redirect_port: u16,

    /// Send `Strict-Transport-Security` with this max-age (seconds) on
    /// responses over HTTPS; 0 disables HSTS.
    #[arg(long, env = "GATEHOUSE_HSTS_MAX_AGE", default_value_t = 0)]
    pub hsts_max_age: u64,

    /// Add `includeSubDomains` to the HSTS header.
    #[arg(long, env = "GATEHOUSE_HSTS_INCLUDE_SUBDOMAINS")]
    pub hsts_include_subdomains: bool,

    /// Add `preload` to the HSTS header.
    #[arg(long, env = "GATEHOUSE_HSTS_PRELOAD")]
    pub hsts_preload: bool,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "GATEHOUSE_ADMIN_ADDR", default_value = "0.0.0.0:9901")]
    pub admin_addr: SocketAddr,

    /// Largest total size of a request's header fields; larger requests get
    /// 431 and are not forwarded.
    #[arg(long, env = "GATEHOUSE_MAX_REQUEST_HEADER_BYTES", default_value_t = 32 * 1024)]
    pub max_request_header_bytes: usize,

    /// How long a client may take to send a request head (also the idle
    /// keep-alive limit between requests) and to accept each write.
    #[arg(long, env = "GATEHOUSE_CLIENT_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub client_timeout: Duration,

    /// Longest wait for each read of a request body (nginx's
    /// client_body_timeout); exceeded: 408 and the connection closes.
    #[arg(long, env = "GATEHOUSE_CLIENT_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub client_body_timeout: Duration,

    /// Forward request header fields whose names contain an underscore
    /// (dropped by default, as nginx does without underscores_in_headers).
    #[arg(long, env = "GATEHOUSE_ALLOW_UNDERSCORES_IN_HEADERS")]
    pub allow_underscores_in_headers: bool,

    /// Client connections served at once; more are refused at once (HTTP/1.x
    /// clients get a 503). Default: what fits in the open-files limit.
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Proxy worker threads (default: one per CPU).
    #[arg(long, env = "GATEHOUSE_THREADS")]
    pub threads: Option<usize>,

    /// Upstream connect timeout.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,

    /// Upstream read timeout (time to wait for each read of the response); 504 when exceeded.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_read_timeout: Duration,

    /// Upstream write timeout.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_WRITE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_write_timeout: Duration,

    /// How long an idle upstream keepalive connection is kept.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_idle_timeout: Duration,

    /// Idle upstream connections kept for reuse (per gateway process).
    #[arg(long, env = "GATEHOUSE_UPSTREAM_KEEPALIVE", default_value_t = 256)]
    pub upstream_keepalive: usize,

    /// Connection attempts per request; after a connect failure another endpoint is tried.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_CONNECT_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub upstream_connect_attempts: u8,

    /// On SIGTERM, keep accepting connections this long (while load balancers
    /// stop sending traffic), then stop accepting and drain.
    #[arg(long, env = "GATEHOUSE_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// After the grace period, how long requests in flight may take to
    /// finish; the gateway exits as soon as no connection is open.
    #[arg(long, env = "GATEHOUSE_SHUTDOWN_DRAIN", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_drain: Duration,

    /// Log format.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 250ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: unit must be ms, s or m")),
    }
}

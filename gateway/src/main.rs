//! `gatehouse-gateway`: the data plane binary.

use anyhow::Context;
use clap::{ArgGroup, Parser, ValueEnum};
use gatehouse_gateway::controller_client::{self, ControllerUrl};
use gatehouse_gateway::install::{parse_frame, SharedTable};
use gatehouse_gateway::proxy::{Gateway, UpstreamConfig};
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-gateway",
    version,
    about = "Gatehouse data plane: routes HTTP traffic by the controller's snapshots",
    group(ArgGroup::new("source").required(true).args(["controller", "snapshot_file"]))
)]
struct Args {
    /// The controller's snapshot stream, as http://HOST:PORT (its --snapshot-addr).
    #[arg(long, env = "GATEHOUSE_CONTROLLER")]
    controller: Option<String>,

    /// Serve a snapshot from this JSON file instead of following a controller.
    #[arg(long, env = "GATEHOUSE_SNAPSHOT_FILE")]
    snapshot_file: Option<PathBuf>,

    /// Address for HTTP/1.1 and cleartext HTTP/2 (prior knowledge) traffic.
    #[arg(long, env = "GATEHOUSE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "GATEHOUSE_ADMIN_ADDR", default_value = "0.0.0.0:9901")]
    admin_addr: SocketAddr,

    /// Proxy worker threads (default: one per CPU).
    #[arg(long, env = "GATEHOUSE_THREADS")]
    threads: Option<usize>,

    /// Upstream connect timeout.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    upstream_connect_timeout: Duration,

    /// Upstream read timeout (time to wait for each read of the response); 504 when exceeded.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    upstream_read_timeout: Duration,

    /// Upstream write timeout.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_WRITE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    upstream_write_timeout: Duration,

    /// How long an idle upstream keepalive connection is kept.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    upstream_idle_timeout: Duration,

    /// Idle upstream connections kept for reuse (per gateway process).
    #[arg(long, env = "GATEHOUSE_UPSTREAM_KEEPALIVE", default_value_t = 256)]
    upstream_keepalive: usize,

    /// Connection attempts per request; after a connect failure another endpoint is tried.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_CONNECT_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    upstream_connect_attempts: u8,

    /// On SIGTERM, keep accepting connections this long (while load balancers
    /// stop sending traffic), then finish in-flight requests.
    #[arg(long, env = "GATEHOUSE_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    shutdown_grace: Duration,

    /// Log format.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;

    let shared = SharedTable::default();
    if let Some(path) = &args.snapshot_file {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading --snapshot-file {}", path.display()))?;
        let frame =
            parse_frame(&bytes).with_context(|| format!("--snapshot-file {}", path.display()))?;
        shared
            .install(&frame)
            .with_context(|| format!("--snapshot-file {}", path.display()))?;
    }
    let controller = args
        .controller
        .as_deref()
        .map(ControllerUrl::parse)
        .transpose()?;

    // The control side (admin endpoint, snapshot stream) runs on its own
    // thread and runtime, apart from the proxy workers.
    let admin_listener = std::net::TcpListener::bind(args.admin_addr)
        .with_context(|| format!("binding --admin-addr {}", args.admin_addr))?;
    admin_listener.set_nonblocking(true)?;
    let control_shared = shared.clone();
    std::thread::Builder::new()
        .name("gatehouse-control".into())
        .spawn(move || control_plane(admin_listener, control_shared, metrics, controller))
        .context("starting the control thread")?;

    let conf = ServerConf {
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        upstream_keepalive_pool_size: args.upstream_keepalive,
        grace_period_seconds: Some(args.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(10),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gateway = Gateway {
        table: shared.table.clone(),
        upstream: UpstreamConfig {
            connect_timeout: args.upstream_connect_timeout,
            read_timeout: args.upstream_read_timeout,
            write_timeout: args.upstream_write_timeout,
            idle_timeout: args.upstream_idle_timeout,
            connect_attempts: args.upstream_connect_attempts,
        },
    };
    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        gateway,
        "gatehouse-http",
    );
    proxy.add_tcp(&args.http_addr.to_string());
    if let Some(app) = proxy.app_logic_mut() {
        let mut opts = HttpServerOptions::default();
        opts.h2c = true;
        app.server_options = Some(opts);
    }
    server.add_service(proxy);
    tracing::info!(http = %args.http_addr, admin = %args.admin_addr, "gateway starting");
    server.run_forever();
}

fn control_plane(
    admin: std::net::TcpListener,
    shared: SharedTable,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    controller: Option<ControllerUrl>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the control runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(admin) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("admin listener: {e}");
                std::process::exit(1);
            }
        };
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
        tokio::spawn(gatehouse_gateway::admin::serve(
            listener,
            shared.clone(),
            metrics,
        ));
        match controller {
            Some(url) => controller_client::follow(url, shared).await,
            None => std::future::pending().await,
        }
    });
}

//! `gatehouse-gateway`: the data plane binary.

use anyhow::Context;
use clap::Parser;
use gatehouse_gateway::app::GatewayApp;
use gatehouse_gateway::cli::{Args, LogFormat};
use gatehouse_gateway::controller_client::{self, ControllerUrl};
use gatehouse_gateway::fd_limit;
use gatehouse_gateway::h1::pool::Pool;
use gatehouse_gateway::h1::Engine;
use gatehouse_gateway::install::{parse_frame, InstallError, SharedTable};
use gatehouse_gateway::metrics::CERTIFICATE_EXPIRY;
use gatehouse_gateway::settings::{HttpsConfig, UpstreamConfig};
use gatehouse_gateway::shutdown::{GracefulTermination, OpenConnections};
use gatehouse_gateway::tls::handshake_metrics::{
    HandshakeCounter, HandshakeFailureLayer, QuietHandshakeFailures,
};
use gatehouse_gateway::tls::{self_signed, SniResolver};
use gatehouse_model::StreamFrame;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::listening::Service;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No socket read buffer under the HTTP engines: each reads into its own
/// buffer (taken when a request arrives), and Pingora's default 64 KiB one
/// would be held by every idle connection. Writes keep Pingora's default
/// (1460 bytes); going without it has not been measured.
const L4_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(0),
    write: None,
};

fn init_logging(format: LogFormat) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let quiet = QuietHandshakeFailures {
        log_them: std::env::var("GATEHOUSE_LOG_HANDSHAKE_ERRORS").is_ok_and(|v| v == "1"),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(HandshakeFailureLayer)
        .with(fmt.with_filter(quiet))
        .init();
}

fn hsts_header(args: &Args) -> anyhow::Result<Option<http::HeaderValue>> {
    if args.hsts_max_age == 0 {
        return Ok(None);
    }
    let mut value = format!("max-age={}", args.hsts_max_age);
    if args.hsts_include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if args.hsts_preload {
        value.push_str("; preload");
    }
    Ok(Some(http::HeaderValue::from_str(&value)?))
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
    gatehouse_gateway::metrics::describe();

    // With HTTPS, a self-signed certificate serves whatever no snapshot
    // certificate covers, until the controller names a default.
    let fallback = match args.https_addr {
        Some(_) => Some(self_signed::generate().context("default certificate")?),
        None => None,
    };
    let resolver = fallback
        .as_ref()
        .map(|f| Arc::new(SniResolver::new(f.key.clone())));
    let shared = SharedTable::new(resolver.clone());
    if let Some(path) = &args.snapshot_file {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading --snapshot-file {}", path.display()))?;
        let frame =
            parse_frame(&bytes).with_context(|| format!("--snapshot-file {}", path.display()))?;
        let StreamFrame::Snapshot(frame) = frame else {
            return Err(InstallError::NotASnapshot)
                .with_context(|| format!("--snapshot-file {}", path.display()));
        };
        shared
            .install(&frame)
            .with_context(|| format!("--snapshot-file {}", path.display()))?;
    }
    let controller = args
        .controller
        .as_deref()
        .map(|url| {
            ControllerUrl::parse(
                url,
                args.controller_ca.clone(),
                args.controller_client_cert.clone(),
                args.controller_client_key.clone(),
            )
        })
        .transpose()?;
    if let Some(c) = &controller {
        c.check().context("--controller TLS files")?;
    }

    // The control side (admin endpoint, snapshot stream) runs on its own
    // thread and runtime, apart from the proxy workers.
    let admin_listener = std::net::TcpListener::bind(args.admin_addr)
        .with_context(|| format!("binding --admin-addr {}", args.admin_addr))?;
    admin_listener.set_nonblocking(true)?;
    let control_shared = shared.clone();
    let fallback_expiry = fallback.as_ref().map_or(0, |f| f.not_after);
    std::thread::Builder::new()
        .name("gatehouse-control".into())
        .spawn(move || {
            control_plane(
                admin_listener,
                control_shared,
                metrics,
                controller,
                fallback_expiry,
            )
        })
        .context("starting the control thread")?;

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let max_connections = connection_limit(&args, threads);
    let conf = ServerConf {
        threads,
        // Pingora's grace period starts once accepting has stopped: it is our
        // drain (the grace before it is handled by `GracefulTermination`).
        grace_period_seconds: Some(args.shutdown_drain.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let h1 = Engine {
        table: shared.table.clone(),
        upstream: UpstreamConfig {
            connect_timeout: args.upstream_connect_timeout,
            read_timeout: args.upstream_read_timeout,
            write_timeout: args.upstream_write_timeout,
            idle_timeout: args.upstream_idle_timeout,
            connect_attempts: args.upstream_connect_attempts,
        },
        https: HttpsConfig {
            redirect_port: args.https_addr.map(|_| args.https_redirect_port),
            hsts: hsts_header(&args)?,
        },
        max_request_header_bytes: args.max_request_header_bytes,
        client_timeout: args.client_timeout,
        client_body_timeout: args.client_body_timeout,
        allow_underscores_in_headers: args.allow_underscores_in_headers,
        pool: Pool::new(args.upstream_keepalive, args.upstream_idle_timeout),
    };
    let h1 = Arc::new(h1);
    let sweeper = h1.clone();
    std::thread::Builder::new()
        .name("gatehouse-pool-sweep".into())
        .spawn(move || loop {
            std::thread::sleep(sweeper.pool.sweep_interval());
            sweeper.pool.evict_expired();
        })
        .context("starting the upstream pool sweeper")?;
    let connections = OpenConnections::default();
    let app = GatewayApp {
        h1,
        connections: connections.clone(),
        max_connections,
    };
    let mut proxy = Service::new("gatehouse-http".to_owned(), app);
    proxy.add_listener(ListenerConfig::tcp(args.http_addr.to_string()).l4_buffer(L4_BUFFERS));
    if let (Some(addr), Some(resolver)) = (args.https_addr, resolver) {
        let mut tls =
            TlsSettings::with_callbacks(Box::new(HandshakeCounter)).context("TLS settings")?;
        tls.set_cert_resolver(resolver);
        tls.enable_h2();
        proxy.add_listener(
            ListenerConfig::tcp(addr.to_string())
                .tls(tls)
                .l4_buffer(L4_BUFFERS),
        );
    }
    server.add_service(proxy);
    tracing::info!(
        http = %args.http_addr,
        https = ?args.https_addr,
        admin = %args.admin_addr,
        max_connections,
        "gateway starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(GracefulTermination {
            grace: args.shutdown_grace,
            drain: args.shutdown_drain,
            connections,
        }),
    });
    std::process::exit(0)
}

/// `--max-connections`, or what fits in the open-files limit (raised to
/// its hard limit first); warns when the flag asks for more than fits.
fn connection_limit(args: &Args, threads: usize) -> usize {
    let (open_files, raise_error) = fd_limit::raise_open_files_limit();
    if let Some(e) = raise_error {
        tracing::warn!("{e}");
    }
    let fit = fd_limit::connections_that_fit(open_files, args.upstream_keepalive, threads);
    let limit = match args.max_connections {
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > fit {
                tracing::warn!(
                    max_connections = n,
                    open_files,
                    "--max-connections is more than the open-files limit leaves room for ({fit}); \
                     new connections may fail (and /healthz with them) before the limit is reached"
                );
            }
            n
        }
        None => fit,
    };
    metrics::gauge!(gatehouse_gateway::metrics::MAX_CONNECTIONS).set(limit as f64);
    limit
}

fn control_plane(
    admin: std::net::TcpListener,
    shared: SharedTable,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    controller: Option<ControllerUrl>,
    fallback_expiry: i64,
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
        if let Some(resolver) = shared.tls.clone() {
            tokio::spawn(publish_certificate_expiry(resolver, fallback_expiry));
        }
        match controller {
            Some(url) => controller_client::follow(url, shared).await,
            None => std::future::pending().await,
        }
    });
}

/// Keeps `gatehouse_gateway_tls_certificate_expiry_seconds` current. A
/// certificate no longer in use reads NaN (the exporter cannot drop series).
async fn publish_certificate_expiry(resolver: Arc<SniResolver>, fallback_expiry: i64) {
    let mut published: std::collections::BTreeSet<String> = Default::default();
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let current = resolver.expiries(fallback_expiry);
        let names: std::collections::BTreeSet<String> =
            current.iter().map(|(n, _)| n.clone()).collect();
        for gone in published.difference(&names) {
            metrics::gauge!(CERTIFICATE_EXPIRY, "certificate" => gone.clone()).set(f64::NAN);
        }
        for (name, not_after) in current {
            metrics::gauge!(CERTIFICATE_EXPIRY, "certificate" => name)
                .set((not_after - now) as f64);
        }
        published = names;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

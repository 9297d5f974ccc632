//! `gatehouse-controller`: the control plane binary.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use gatehouse_controller::publisher::Publisher;
use gatehouse_controller::snapshot_server::{self, ServerState};
use gatehouse_controller::translate::class::ClassConfig;
use gatehouse_controller::translate::TranslateConfig;
use gatehouse_controller::{local, CONTROLLER_NAME};
use std::net::SocketAddr;
use std::path::PathBuf;

// Rebuilds allocate and free every object of the cluster state; mimalloc
// does that faster than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-controller",
    version,
    about = "Gatehouse control plane: translates Ingresses into routing snapshots for the gateways"
)]
struct Args {
    /// Local mode: read Kubernetes manifests (*.yaml, *.yml, *.json, recursively)
    /// from this directory instead of a cluster, and follow changes to it.
    #[arg(long, env = "GATEHOUSE_MANIFESTS")]
    manifests: PathBuf,

    /// Address the snapshot stream (and /healthz, /readyz, /metrics) is served on.
    #[arg(
        long,
        env = "GATEHOUSE_SNAPSHOT_ADDR",
        default_value = "127.0.0.1:7400"
    )]
    snapshot_addr: SocketAddr,

    /// The IngressClass name this controller serves.
    #[arg(long, env = "GATEHOUSE_INGRESS_CLASS", default_value = "gatehouse")]
    ingress_class: String,

    /// The IngressClass `spec.controller` value that marks a class as ours.
    #[arg(long, env = "GATEHOUSE_CONTROLLER_NAME", default_value = CONTROLLER_NAME)]
    controller_name: String,

    /// The Secret (`namespace/name`, type kubernetes.io/tls) served for TLS
    /// handshakes that match no Ingress TLS host. Without it, gateways serve a
    /// self-signed certificate they generate at start-up.
    #[arg(long, env = "GATEHOUSE_DEFAULT_CERTIFICATE", value_parser = parse_object_name)]
    default_certificate: Option<(String, String)>,

    /// Log format.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_object_name(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{s:?} must be namespace/name")),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    let publisher = Publisher::new();
    let listener = tokio::net::TcpListener::bind(args.snapshot_addr)
        .await
        .with_context(|| format!("binding --snapshot-addr {}", args.snapshot_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving snapshots");
    tokio::spawn(snapshot_server::serve(
        listener,
        ServerState {
            snapshots: publisher.subscribe(),
            metrics: Some(metrics),
        },
    ));

    let config = TranslateConfig {
        classes: ClassConfig {
            class_name: args.ingress_class,
            controller_name: args.controller_name,
        },
        default_certificate: args.default_certificate,
        now: 0, // set at each rebuild
    };
    tracing::info!(dir = %args.manifests.display(), class = %config.classes.class_name, "local mode");
    tokio::select! {
        res = local::run(args.manifests, config, publisher) => res.context("local mode")?,
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

//! `kube-emulator --listen <HOST:PORT> --kubeconfig <PATH>`: runs the
//! Kubernetes API emulator until interrupted, after writing a kubeconfig that
//! points at it.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use gatehouse_kube_emulator::{Emulator, EmulatorConfig};

#[derive(Debug, Parser)]
#[command(
    name = "kube-emulator",
    about = "An in-memory Kubernetes API server for tests"
)]
struct Args {
    /// Address to serve on (loopback), e.g. 127.0.0.1:6443; port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Where to write a kubeconfig pointing at the emulator.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Change events kept for watches; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 1000)]
    history: usize,
    /// Seconds between BOOKMARK events on watches that ask for them.
    #[arg(long, default_value_t = 10)]
    bookmark_interval: u64,
    /// Serve HTTPS with a CA made at start (the kubeconfig carries it)
    /// instead of plain HTTP.
    #[arg(long)]
    tls: bool,
    /// Treat requests without a bearer token as `system:anonymous` (RBAC
    /// decides) instead of as the admin.
    #[arg(long)]
    require_authentication: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = EmulatorConfig {
        history_limit: args.history,
        bookmark_interval: std::time::Duration::from_secs(args.bookmark_interval.max(1)),
        serve_tls: args.tls,
        require_authentication: args.require_authentication,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start_with(&args.listen, config)
        .await
        .context("starting the emulator")?;
    emulator
        .write_kubeconfig(&args.kubeconfig)
        .context("writing the kubeconfig")?;
    // The address on stdout lets a parent process find a port chosen with :0.
    println!("{}", emulator.url());
    tracing::info!(url = %emulator.url(), kubeconfig = %args.kubeconfig.display(), "ready");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    drop(emulator);
    Ok(())
}

//! `gatehouse-controller`: the control plane binary.

use anyhow::{bail, Context};
use clap::Parser;
use gatehouse_controller::admin::{self, Readiness};
use gatehouse_controller::cli::{Args, Command, LogFormat, SpeakerArgs};
use gatehouse_controller::cluster::election::ElectionTiming;
use gatehouse_controller::cluster::lease::LeaseConfig;
use gatehouse_controller::cluster::status_plan::PublishSource;
use gatehouse_controller::cluster::watch::WatchScope;
use gatehouse_controller::cluster::{self, ClusterOptions};
use gatehouse_controller::lb::LbOptions;
use gatehouse_controller::local;
use gatehouse_controller::publisher::Publisher;
use gatehouse_controller::rebuild::Rebuilder;
use gatehouse_controller::snapshot_server;
use gatehouse_controller::speaker::decide::Timing;
use gatehouse_controller::speaker::node::NodeName;
use gatehouse_controller::speaker::run::SpeakerOptions;
use gatehouse_controller::stream_tls::{ReloadingServerConfig, StreamTlsFiles};
use gatehouse_controller::translate::class::ClassConfig;
use gatehouse_controller::translate::TranslateConfig;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

// Rebuilds allocate and free every object of the cluster state; mimalloc
// does that faster than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    if let Some(Command::Speaker(speaker)) = args.command {
        return speaker_main(speaker).await;
    }
    init_logging(args.log_format);
    let metrics = install_metrics()?;
    gatehouse_controller::metrics::describe();

    // Cluster mode streams private keys: never without mutual TLS.
    let tls = stream_tls_files(&args)?;
    if args.manifests.is_none() && tls.is_none() {
        bail!("cluster mode serves the snapshot stream over mutual TLS only: --snapshot-tls-cert, --snapshot-tls-key and --snapshot-client-ca are required (local mode, --manifests, may stay plain)");
    }
    let tls = tls
        .map(ReloadingServerConfig::load)
        .transpose()
        .context("snapshot stream TLS")?
        .map(Arc::new);

    let publisher = Publisher::new();
    let snapshots = publisher.subscribe();
    let listener = tokio::net::TcpListener::bind(args.snapshot_addr)
        .await
        .with_context(|| format!("binding --snapshot-addr {}", args.snapshot_addr))?;
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "serving snapshots");
    tokio::spawn(snapshot_server::serve(listener, snapshots.clone(), tls));

    let synced = Arc::new(AtomicBool::new(args.manifests.is_some()));
    let admin_listener = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding --admin-addr {}", args.admin_addr))?;
    tracing::info!(addr = %admin_listener.local_addr()?, "serving admin endpoints");
    tokio::spawn(admin::serve(
        admin_listener,
        Readiness {
            synced: synced.clone(),
            snapshots: Some(snapshots),
        },
        metrics,
    ));

    let config = TranslateConfig {
        classes: ClassConfig {
            class_name: args.ingress_class.clone(),
            controller_name: args.controller_name.clone(),
        },
        default_certificate: args.default_certificate.clone(),
        now: 0, // set at each rebuild
    };
    let rebuilder = Rebuilder::new(config, publisher);
    if let Some(dir) = args.manifests.clone() {
        tracing::info!(dir = %dir.display(), class = %args.ingress_class, "local mode");
        tokio::select! {
            res = local::run(dir, rebuilder) => res.context("local mode")?,
            _ = shutdown_signal() => tracing::info!("shutting down"),
        }
        return Ok(());
    }

    let identity = match &args.leader_election_identity {
        Some(id) if !id.is_empty() => id.clone(),
        _ => default_identity(),
    };
    // The identity lets an API audit log tell replicas apart.
    let agent = format!(
        "gatehouse-controller/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    let client = kube_client(args.kubeconfig.as_deref(), &agent).await?;
    let options = cluster_options(&args, &client, identity)?;
    tracing::info!(
        class = %args.ingress_class,
        namespace = ?args.watch_namespace,
        lease = %format!("{}/{}", options.lease.namespace, options.lease.name),
        identity = %options.lease.identity,
        "cluster mode"
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let run = cluster::run(client, options, rebuilder, synced, stop);
    tokio::pin!(run);
    tokio::select! {
        res = &mut run => return res.context("cluster mode"),
        _ = shutdown_signal() => tracing::info!("shutting down: releasing leadership"),
    }
    stop_tx.send_replace(true);
    // Bounded: the Lease release has its own timeout.
    run.await.context("cluster mode")
}

fn install_metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(metrics)
}

/// `gatehouse-controller speaker`.
async fn speaker_main(args: SpeakerArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let metrics = install_metrics()?;
    gatehouse_controller::speaker::metrics::describe();
    let agent = format!(
        "gatehouse-speaker/{} ({})",
        env!("CARGO_PKG_VERSION"),
        args.node_name
    );
    let client = kube_client(args.kubeconfig.as_deref(), &agent).await?;
    let synced = Arc::new(AtomicBool::new(false));
    let admin_listener = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding --admin-addr {}", args.admin_addr))?;
    tokio::spawn(admin::serve(
        admin_listener,
        Readiness {
            synced: synced.clone(),
            snapshots: None,
        },
        metrics,
    ));
    let options = SpeakerOptions {
        me: NodeName::new(args.node_name.clone()),
        filter: args.class.filter(),
        timing: Timing {
            heartbeat_interval: args.heartbeat_interval,
            peer_timeout: args.peer_timeout,
            contact_timeout: args.contact_timeout,
            member_window: args.member_window,
        },
        heartbeat_addr: args.heartbeat_addr,
        api_timeout: args.api_timeout,
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let run = gatehouse_controller::speaker::run::run(client, options, synced, stop);
    tokio::pin!(run);
    tokio::select! {
        res = &mut run => return res.context("speaker"),
        _ = shutdown_signal() => tracing::info!("shutting down: releasing every address"),
    }
    stop_tx.send_replace(true);
    run.await.context("speaker")
}

fn stream_tls_files(args: &Args) -> anyhow::Result<Option<StreamTlsFiles>> {
    let given = [
        ("--snapshot-tls-cert", &args.snapshot_tls_cert),
        ("--snapshot-tls-key", &args.snapshot_tls_key),
        ("--snapshot-client-ca", &args.snapshot_client_ca),
    ];
    let missing: Vec<&str> = given
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    match (&args.snapshot_tls_cert, &args.snapshot_tls_key, &args.snapshot_client_ca) {
        (Some(cert), Some(key), Some(ca)) => Ok(Some(StreamTlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: ca.clone(),
        })),
        _ if missing.len() == given.len() => Ok(None),
        _ => bail!("the snapshot stream's TLS needs all three of --snapshot-tls-cert, --snapshot-tls-key and --snapshot-client-ca; missing: {}", missing.join(", ")),
    }
}

async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
    agent: &str,
) -> anyhow::Result<kube::Client> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding the Kubernetes API (KUBECONFIG, ~/.kube/config or in-cluster); for local mode pass --manifests")?,
    };
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(agent).context("user agent")?,
    ));
    kube::Client::try_from(config).context("building the Kubernetes client")
}

fn cluster_options(
    args: &Args,
    client: &kube::Client,
    identity: String,
) -> anyhow::Result<ClusterOptions> {
    let timing = ElectionTiming {
        lease_duration: args.leader_election_lease_duration,
        renew_deadline: args.leader_election_renew_deadline,
        retry_period: args.leader_election_retry_period,
    };
    timing.validate()?;
    let publish = match (&args.publish_service, args.publish_address.is_empty()) {
        (Some(svc), _) => Some(PublishSource::Service(svc.clone())),
        (None, false) => Some(PublishSource::Addresses(args.publish_address.clone())),
        (None, true) => None,
    };
    let scope = WatchScope {
        namespace: args.watch_namespace.clone(),
    };
    let load_balancer = (!args.no_load_balancer).then(|| LbOptions {
        filter: args.class.filter(),
        scope: scope.clone(),
    });
    Ok(ClusterOptions {
        load_balancer,
        scope,
        lease: LeaseConfig {
            namespace: args
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            name: args.leader_election_id.clone(),
            identity,
            timing,
        },
        publish,
        controller_name: args.controller_name.clone(),
    })
}

/// The host name (a pod's name) and a suffix unique to this process, so two
/// processes never share an identity.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "gatehouse-controller".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}_{:x}{nanos:08x}", std::process::id())
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

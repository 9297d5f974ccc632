//! `gatehouse-attack`: hostile clients for the soak benchmark
//! (`gatehouse-bench --soak`). Runs a mix of attackers against a proxy's
//! plain port for a number of seconds, then prints one result line:
//! `GATEHOUSE_ATTACK connections=N cut_off=N refused=N`.
//!
//! Example: `gatehouse-attack --target 127.0.0.1:8080 --host a.test
//! --seconds 30 --mix idle-h2=200,paced-reset=2,zero-window=4`.

use anyhow::{bail, Context};
use clap::Parser;
use gatehouse_e2e::attack::{self, Aim, Kind, Tally};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-attack",
    about = "Hostile clients for the soak benchmark"
)]
struct Args {
    /// The proxy's plain (HTTP/1.1 and h2c) address; loopback only.
    #[arg(long)]
    target: SocketAddr,
    /// Host (and :authority) to send.
    #[arg(long)]
    host: String,
    /// Path of the attackers' requests.
    #[arg(long, default_value = "/")]
    path: String,
    /// How long to attack.
    #[arg(long)]
    seconds: u64,
    /// Attackers as kind=count, comma-separated; kinds: slow-heads,
    /// slow-bodies, idle-h2, paced-reset, zero-window, floods.
    #[arg(long, value_delimiter = ',')]
    mix: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.target.ip().is_loopback() {
        bail!("--target must be a loopback address");
    }
    let mut mix = Vec::new();
    for item in &args.mix {
        let (name, count) = item
            .split_once('=')
            .with_context(|| format!("{item:?}: expected kind=count"))?;
        let kind = Kind::parse(name).with_context(|| format!("unknown attacker {name:?}"))?;
        let count: usize = count
            .parse()
            .with_context(|| format!("{item:?}: bad count"))?;
        mix.push((kind, count));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let aim = Arc::new(Aim {
        addr: args.target,
        host: args.host,
        path: args.path,
    });
    let mut all = tokio::task::JoinSet::new();
    for (kind, count) in mix {
        all.spawn(attack::run(
            kind,
            count,
            aim.clone(),
            stop.clone(),
            tally.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    // Attackers notice within a second; do not wait on a stuck write.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while all.join_next().await.is_some() {}
    })
    .await;
    println!(
        "GATEHOUSE_ATTACK connections={} cut_off={} refused={}",
        tally.connections.load(Ordering::Relaxed),
        tally.cut_off.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed)
    );
    Ok(())
}

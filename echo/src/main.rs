//! `gatehouse-echo`: the backend every test routes to. Answers each request
//! with JSON naming its service, pod and node, and echoing what it received.
//!
//! Query parameters shape the answer: `status=NNN` sets the status code,
//! `delay_ms=N` waits before answering (upstream timeout tests).
//!
//! A WebSocket upgrade (HTTP/1.1) is answered with 101, naming the echo in
//! `x-echo-service`, `x-echo-pod` and `x-echo-node`; every message is then
//! echoed back, pings get pongs, a close gets a close. With `ws_hello=1` the
//! JSON reply for the upgrade request is sent first, as a text message;
//! with `status=NNN` the upgrade is refused with that status.

use anyhow::Context;
use clap::Parser;
use gatehouse_echo::{serve, EchoIdentity};
use std::net::SocketAddr;

#[derive(Parser, Debug)]
#[command(name = "gatehouse-echo", about = "Echo backend for Gatehouse tests")]
struct Args {
    /// Address to listen on; repeat for several.
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Service name reported in answers.
    #[arg(long, default_value = "echo")]
    service: String,
    /// Pod name reported in answers.
    #[arg(long, default_value = "echo-0")]
    pod: String,
    /// Node name reported in answers.
    #[arg(long, default_value = "")]
    node: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let identity = EchoIdentity {
        service: args.service,
        pod: args.pod,
        node: args.node,
    };
    let mut tasks = Vec::new();
    for addr in args.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        println!("listening on {}", listener.local_addr()?);
        tasks.push(tokio::spawn(serve(listener, identity.clone())));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

//! A TCP relay from inside a namespace to an address of the test process's
//! own namespace: how a process on a simulated node reaches the Kubernetes
//! API emulator, which listens on the host's loopback. Nothing is added to
//! the host's network; the relay's listening socket lives in the namespace.

use super::error::{ClusterError, Result};
use super::netns::Netns;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// Relays connections while it lives.
#[derive(Debug)]
pub struct Relay {
    pub listen: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts on `listen` inside `netns` and forwards each connection to
/// `target` (reached from the test process's namespace).
pub fn relay(netns: &Netns, listen: SocketAddr, target: SocketAddr) -> Result<Relay> {
    let socket = netns.tcp_socket(listen)?;
    let io = |what: &str, e| ClusterError::io(format!("{what} {listen} in {}", netns.name()), e);
    socket.set_reuseaddr(true).map_err(|e| io("reusing", e))?;
    socket.bind(listen).map_err(|e| io("binding", e))?;
    let listener = socket.listen(128).map_err(|e| io("listening on", e))?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(Relay { listen, task })
}

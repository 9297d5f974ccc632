//! Idle upstream connections kept for reuse, per endpoint address.
//!
//! No task watches an idle connection: whether the upstream closed it is
//! checked when it is taken (the reactor has marked it readable by then),
//! and the rare race with a close in flight is covered by the caller
//! retrying once on a fresh connection. Connections idle for longer than
//! the idle timeout are closed by [`Pool::evict_expired`], which one
//! thread calls every [`Pool::sweep_interval`] for the whole pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    by_address: HashMap<SocketAddr, Vec<Idle>>,
    count: usize,
}

/// The pool shared by all proxy threads.
#[derive(Debug)]
pub struct Pool {
    inner: Mutex<Inner>,
    capacity: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// At most `capacity` idle connections in all, each kept `idle_timeout`.
    pub fn new(capacity: usize, idle_timeout: Duration) -> Self {
        Pool {
            inner: Mutex::default(),
            capacity,
            idle_timeout,
        }
    }

    /// The most recently used live idle connection to `address`, if any.
    pub fn take(&self, address: SocketAddr) -> Option<TcpStream> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        loop {
            let idle = inner.by_address.get_mut(&address)?.pop()?;
            inner.count -= 1;
            if now.duration_since(idle.since) < self.idle_timeout && is_quiet(&idle.stream) {
                return Some(idle.stream);
            }
        }
    }

    /// Keeps a connection whose last response was read completely.
    pub fn put(&self, address: SocketAddr, stream: TcpStream) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.count >= self.capacity {
            // Drop the oldest connection of this address, else refuse.
            match inner.by_address.get_mut(&address) {
                Some(list) if !list.is_empty() => {
                    list.remove(0);
                    inner.count -= 1;
                }
                _ => return,
            }
        }
        inner.count += 1;
        inner.by_address.entry(address).or_default().push(Idle {
            stream,
            since: Instant::now(),
        });
    }

    /// Closes every connection idle for the idle timeout or longer.
    /// Returns how many were closed.
    pub fn evict_expired(&self) -> usize {
        let mut expired = Vec::new();
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let timeout = self.idle_timeout;
            inner.by_address.retain(|_, list| {
                // Oldest first: expired connections are a prefix.
                let keep_from = list
                    .iter()
                    .position(|idle| now.duration_since(idle.since) < timeout)
                    .unwrap_or(list.len());
                expired.extend(list.drain(..keep_from));
                !list.is_empty()
            });
            inner.count -= expired.len();
        }
        // Closed outside the lock.
        expired.len()
    }

    /// How often [`Pool::evict_expired`] should run: a quarter of the idle
    /// timeout, between 50 ms and 5 s, so that no connection outlives the
    /// timeout by more than that.
    pub fn sweep_interval(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.count)
    }
}

/// An idle connection must have nothing to read: data or EOF means the
/// upstream closed it or broke the protocol.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn reuses_live_connections_and_drops_closed_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(8, Duration::from_secs(60));
        let (live, _live_server) = pair(&listener).await;
        let (dead, dead_server) = pair(&listener).await;
        pool.put(addr, live);
        pool.put(addr, dead);
        drop(dead_server);
        // Let the reactor see the FIN.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.idle(), 2);
        assert!(
            pool.take(addr).is_some(),
            "the live connection is handed out"
        );
        assert!(pool.take(addr).is_none());
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn connections_with_unexpected_data_are_not_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(8, Duration::from_secs(60));
        let (client, mut server) = pair(&listener).await;
        pool.put(addr, client);
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(addr).is_none());
    }

    #[tokio::test]
    async fn capacity_and_idle_timeout_are_honoured() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(1, Duration::from_secs(60));
        let (a, _sa) = pair(&listener).await;
        let (b, _sb) = pair(&listener).await;
        pool.put(addr, a);
        pool.put(addr, b);
        assert_eq!(pool.idle(), 1, "the oldest is dropped at capacity");

        let expiring = Pool::new(4, Duration::from_millis(1));
        let (c, _sc) = pair(&listener).await;
        expiring.put(addr, c);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            expiring.take(addr).is_none(),
            "expired connections are dropped"
        );
    }

    #[tokio::test]
    async fn expired_connections_are_closed_without_being_taken() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(8, Duration::from_millis(100));
        let (old, mut old_server) = pair(&listener).await;
        pool.put(addr, old);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (fresh, _fresh_server) = pair(&listener).await;
        pool.put(addr, fresh);
        assert_eq!(pool.evict_expired(), 1);
        assert_eq!(pool.idle(), 1, "the fresh connection stays");
        // The upstream sees the expired one closed.
        let mut byte = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut old_server, &mut byte)
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(pool.sweep_interval(), Duration::from_millis(50));
    }
}

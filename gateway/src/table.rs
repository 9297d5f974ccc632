//! The compiled route table a gateway serves from: built from a snapshot off
//! the request path, then swapped in whole. Immutable once built; requests
//! hold an `Arc` to the table they started on.

use crate::metrics::RouteMetrics;
use gatehouse_model::{BackendId, Router, Snapshot};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An endpoint traffic may go to.
#[derive(Debug)]
pub struct UpstreamEndpoint {
    pub address: SocketAddr,
}

/// One backend's endpoints and its round-robin position.
#[derive(Debug)]
pub struct BackendState {
    pub id: BackendId,
    pub endpoints: Box<[UpstreamEndpoint]>,
    next: AtomicUsize,
}

impl BackendState {
    /// Picks the next endpoint in round-robin order that `tried` does not
    /// contain yet. `tried` is a bitmask over endpoint indices (the first 64
    /// endpoints are tracked; beyond that, retries may repeat one).
    pub fn pick(&self, tried: u64) -> Option<(usize, &UpstreamEndpoint)> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start.wrapping_add(i)) % n)
            .find(|&i| i >= 64 || tried & (1 << i) == 0)
            .map(|i| (i, &self.endpoints[i]))
    }
}

/// What a matched request is sent to.
#[derive(Debug)]
pub struct RouteTarget {
    pub backend: Arc<BackendState>,
    pub metrics: RouteMetrics,
    /// Plain-HTTP requests are redirected to HTTPS (when an HTTPS listener exists).
    pub redirect_to_https: bool,
}

/// A compiled snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub version: u64,
    router: Router<Arc<RouteTarget>>,
    pub route_count: usize,
}

impl RouteTable {
    /// Compiles a (validated) snapshot.
    pub fn compile(version: u64, snapshot: &Snapshot) -> Self {
        let backends: HashMap<&BackendId, Arc<BackendState>> = snapshot
            .backends
            .iter()
            .map(|(id, b)| {
                let state = BackendState {
                    id: id.clone(),
                    endpoints: b
                        .endpoints
                        .iter()
                        .map(|e| UpstreamEndpoint { address: e.address })
                        .collect(),
                    next: AtomicUsize::new(0),
                };
                (id, Arc::new(state))
            })
            .collect();
        let empty = |id: &BackendId| {
            Arc::new(BackendState {
                id: id.clone(),
                endpoints: Box::new([]),
                next: AtomicUsize::new(0),
            })
        };
        let backend = |id: &BackendId| backends.get(id).cloned().unwrap_or_else(|| empty(id));
        let mut route_count = 0;
        let router = Router::from_snapshot(
            snapshot,
            |vh, route| {
                route_count += 1;
                Arc::new(RouteTarget {
                    backend: backend(&route.backend),
                    metrics: RouteMetrics::new(vh.host.to_string(), route.backend.0.clone()),
                    redirect_to_https: route.redirect_to_https,
                })
            },
            |id| {
                Arc::new(RouteTarget {
                    backend: backend(id),
                    metrics: RouteMetrics::new(String::new(), id.0.clone()),
                    redirect_to_https: false,
                })
            },
        );
        RouteTable {
            version,
            router,
            route_count,
        }
    }

    /// Finds the route for a normalized host and a path.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<RouteTarget>> {
        self.router.find(host, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(n: usize) -> BackendState {
        BackendState {
            id: BackendId("ns/s:80".into()),
            endpoints: (0..n)
                .map(|i| UpstreamEndpoint {
                    address: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    #[test]
    fn round_robin_visits_every_endpoint() {
        let b = backend(3);
        let picks: Vec<usize> = (0..6).map(|_| b.pick(0).unwrap().0).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn retry_skips_tried_endpoints_and_ends() {
        let b = backend(3);
        let (first, _) = b.pick(0).unwrap();
        let mut tried = 1u64 << first;
        let (second, _) = b.pick(tried).unwrap();
        assert_ne!(first, second);
        tried |= 1 << second;
        let (third, _) = b.pick(tried).unwrap();
        tried |= 1 << third;
        assert_eq!(tried, 0b111);
        assert!(b.pick(tried).is_none());
        assert!(backend(0).pick(0).is_none());
    }
}

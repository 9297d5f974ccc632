//! The compiled route table a gateway serves from: built from a snapshot off
//! the request path, then swapped in whole. Immutable once built; requests
//! hold an `Arc` to the table they started on.

use crate::metrics::RouteMetrics;
use arc_swap::ArcSwap;
use gatehouse_model::{BackendId, Endpoint, Router, Snapshot};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One backend's endpoints and its round-robin position. The endpoint list
/// sits behind its own swap, so an endpoints update replaces it without
/// recompiling routes; requests read it without locking.
#[derive(Debug)]
pub struct BackendState {
    pub id: BackendId,
    endpoints: ArcSwap<Box<[SocketAddr]>>,
    next: AtomicUsize,
}

impl BackendState {
    pub fn new(id: BackendId, endpoints: &[Endpoint]) -> Self {
        BackendState {
            id,
            endpoints: ArcSwap::from_pointee(addresses(endpoints)),
            next: AtomicUsize::new(0),
        }
    }

    /// Replaces the endpoint list (requests already past `pick` keep theirs).
    pub fn set_endpoints(&self, endpoints: &[Endpoint]) {
        self.endpoints.store(Arc::new(addresses(endpoints)));
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.load().len()
    }

    pub fn has_endpoints(&self) -> bool {
        self.endpoint_count() > 0
    }

    /// Picks the next endpoint in round-robin order that `tried` does not
    /// contain yet. `tried` is a bitmask over endpoint indices (the first 64
    /// endpoints are tracked; beyond that, retries may repeat one).
    pub fn pick(&self, tried: u64) -> Option<(usize, SocketAddr)> {
        let endpoints = self.endpoints.load();
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start.wrapping_add(i)) % n)
            .find(|&i| i >= 64 || tried & (1 << i) == 0)
            .map(|i| (i, endpoints[i]))
    }
}

fn addresses(endpoints: &[Endpoint]) -> Box<[SocketAddr]> {
    endpoints.iter().map(|e| e.address).collect()
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
    /// Every backend of the snapshot, shared with the routes that use it.
    backends: HashMap<BackendId, Arc<BackendState>>,
}

impl RouteTable {
    /// Compiles a (validated) snapshot.
    pub fn compile(version: u64, snapshot: &Snapshot) -> Self {
        let backends: HashMap<BackendId, Arc<BackendState>> = snapshot
            .backends
            .iter()
            .map(|(id, b)| {
                (
                    id.clone(),
                    Arc::new(BackendState::new(id.clone(), &b.endpoints)),
                )
            })
            .collect();
        let empty = |id: &BackendId| Arc::new(BackendState::new(id.clone(), &[]));
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
            backends,
        }
    }

    /// A backend by id, to update its endpoints.
    pub fn backend(&self, id: &BackendId) -> Option<&Arc<BackendState>> {
        self.backends.get(id)
    }

    /// Finds the route for a normalized host and a path.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<RouteTarget>> {
        self.router.find(host, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| Endpoint {
                address: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                target: None,
                node: None,
            })
            .collect()
    }

    fn backend(n: usize) -> BackendState {
        BackendState::new(BackendId("ns/s:80".into()), &endpoints(n))
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

    #[test]
    fn endpoint_updates_change_what_is_picked() {
        let b = backend(1);
        assert_eq!(b.pick(0).unwrap().1.port(), 1000);
        b.set_endpoints(&endpoints(3)[2..]);
        assert_eq!(b.pick(0).unwrap().1.port(), 1002);
        b.set_endpoints(&[]);
        assert!(!b.has_endpoints());
        assert!(b.pick(0).is_none());
    }
}

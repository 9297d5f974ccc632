//! The routes every proxy is configured with, and the Gatehouse snapshot for
//! them. Route `i` is host `r<i>.bench.test`, path prefix `/`, sent to
//! backend `i % backends`; each backend is its own upstream port, so every
//! proxy keeps one keepalive pool per backend.

use gatehouse_model::{
    Backend, BackendId, Endpoint, HostMatch, ObjectRef, PathMatch, PortRef, Route, Snapshot,
    SnapshotFrame, VirtualHost,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Most backends a route set uses.
pub const MAX_BACKENDS: usize = 10;

/// Hosts the load generator cycles through (spread over the whole set, so
/// lookups do not hit one hot entry).
pub const MAX_LOAD_HOSTS: usize = 64;

/// A set of `count` host routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSet {
    pub count: usize,
}

impl RouteSet {
    pub fn backends(&self) -> usize {
        self.count.clamp(1, MAX_BACKENDS)
    }

    pub fn host(i: usize) -> String {
        format!("r{i}.bench.test")
    }

    pub fn backend_of(&self, route: usize) -> usize {
        route % self.backends()
    }

    /// The backend's name in every proxy's configuration.
    pub fn backend_name(backend: usize) -> String {
        format!("b{backend}")
    }

    /// Hosts requests are sent to: up to [`MAX_LOAD_HOSTS`], evenly spaced,
    /// always including the last route.
    pub fn load_hosts(&self) -> Vec<String> {
        let k = self.count.min(MAX_LOAD_HOSTS);
        (0..k)
            .map(|j| Self::host((j + 1) * self.count / k - 1))
            .collect()
    }
}

/// The snapshot a gateway serves for this route set, with backend `b`
/// at `upstreams[b]`.
pub fn gateway_snapshot(routes: RouteSet, upstreams: &[SocketAddr]) -> SnapshotFrame {
    let ids: Vec<BackendId> = (0..routes.backends())
        .map(|b| BackendId::new("bench", &RouteSet::backend_name(b), &PortRef::Number(80)))
        .collect();
    let backends: BTreeMap<BackendId, Backend> = ids
        .iter()
        .enumerate()
        .map(|(b, id)| {
            let backend = Backend {
                service: ObjectRef::new("Service", "bench", &RouteSet::backend_name(b)),
                port: PortRef::Number(80),
                endpoints: upstreams
                    .get(b)
                    .map(|&address| Endpoint {
                        address,
                        target: Some(format!("upstream-{b}")),
                        node: None,
                    })
                    .into_iter()
                    .collect(),
            };
            (id.clone(), backend)
        })
        .collect();
    let virtual_hosts = (0..routes.count)
        .map(|i| VirtualHost {
            host: HostMatch::Exact(RouteSet::host(i)),
            routes: vec![Route {
                path: PathMatch::Prefix("/".into()),
                backend: ids[routes.backend_of(i)].clone(),
                source: ObjectRef::new("Ingress", "bench", &format!("route-{i}")),
                redirect_to_https: false,
            }],
        })
        .collect();
    SnapshotFrame {
        version: 1,
        snapshot: Snapshot {
            virtual_hosts,
            default_backend: None,
            backends,
            ..Snapshot::default()
        },
    }
}

/// Adds host `host` (prefix `/`) with a backend of its own at `address`.
pub fn add_host(frame: &mut SnapshotFrame, host: &str, address: SocketAddr) {
    let name = host.split('.').next().unwrap_or(host);
    let id = BackendId::new("bench", name, &PortRef::Number(80));
    frame.snapshot.backends.insert(
        id.clone(),
        Backend {
            service: ObjectRef::new("Service", "bench", name),
            port: PortRef::Number(80),
            endpoints: vec![Endpoint {
                address,
                target: Some(name.to_owned()),
                node: None,
            }],
        },
    );
    frame.snapshot.virtual_hosts.push(VirtualHost {
        host: HostMatch::Exact(host.to_owned()),
        routes: vec![Route {
            path: PathMatch::Prefix("/".into()),
            backend: id,
            source: ObjectRef::new("Ingress", "bench", name),
            redirect_to_https: false,
        }],
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_hosts_spread_over_the_set() {
        let cases = [
            ("ten", 10, 10, "r0.bench.test", "r9.bench.test"),
            (
                "ten_thousand",
                10_000,
                64,
                "r155.bench.test",
                "r9999.bench.test",
            ),
        ];
        for (name, count, want_len, first, last) in cases {
            let hosts = RouteSet { count }.load_hosts();
            assert_eq!(hosts.len(), want_len, "case {name}");
            assert_eq!(
                hosts.first().map(String::as_str),
                Some(first),
                "case {name}"
            );
            assert_eq!(hosts.last().map(String::as_str), Some(last), "case {name}");
        }
    }

    #[test]
    fn snapshot_is_valid_and_routes_every_host() {
        let upstreams: Vec<SocketAddr> = (0..10)
            .map(|b| SocketAddr::from(([127, 0, 0, 1], 20_000 + b)))
            .collect();
        let frame = gateway_snapshot(RouteSet { count: 25 }, &upstreams);
        assert!(frame.snapshot.validate().is_ok());
        assert_eq!(frame.snapshot.virtual_hosts.len(), 25);
        assert_eq!(frame.snapshot.backends.len(), 10);
        let router = gatehouse_model::Router::from_snapshot(
            &frame.snapshot,
            |_, r| r.backend.clone(),
            |id| id.clone(),
        );
        assert_eq!(
            router.find("r13.bench.test", "/"),
            Some(&BackendId::new("bench", "b3", &PortRef::Number(80)))
        );
        assert_eq!(router.find("r25.bench.test", "/"), None);
    }

    #[test]
    fn added_hosts_route_to_their_own_backend() {
        let upstreams = [SocketAddr::from(([127, 0, 0, 1], 20_000))];
        let mut frame = gateway_snapshot(RouteSet { count: 1 }, &upstreams);
        add_host(
            &mut frame,
            "slow.bench.test",
            SocketAddr::from(([127, 0, 0, 1], 30_000)),
        );
        assert!(frame.snapshot.validate().is_ok());
        let router = gatehouse_model::Router::from_snapshot(
            &frame.snapshot,
            |_, r| r.backend.clone(),
            |id| id.clone(),
        );
        assert_eq!(
            router.find("slow.bench.test", "/x"),
            Some(&BackendId::new("bench", "slow", &PortRef::Number(80)))
        );
    }
}

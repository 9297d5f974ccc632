//! HAProxy as the proxy under test: one thread, routing by a host map (how
//! HAProxy-based ingress controllers route many hosts: one tree lookup, not
//! one ACL per host), one backend with connection reuse per upstream.

use crate::routes::RouteSet;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

/// The configuration; the host map lives in `map_path` (see [`host_map`]).
pub fn config(
    map_path: &Path,
    routes: RouteSet,
    http1: SocketAddr,
    http2: SocketAddr,
    upstreams: &[SocketAddr],
) -> String {
    let mut out = String::new();
    // The same forwarding headers the gateway sets; the client's request id
    // is kept when it sent one.
    let _ = write!(
        out,
        "global\n  nbthread 1\n  maxconn 4096\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         \x20 timeout http-keep-alive 300s\n  http-reuse always\n  option forwardfor\n\
         frontend proxy\n  bind {http1} backlog 4096\n  bind {http2} proto h2 backlog 4096\n\
         \x20 http-request set-header X-Real-IP %[src]\n\
         \x20 http-request set-header X-Forwarded-Proto http\n\
         \x20 http-request set-header X-Forwarded-Host %[req.hdr(host)]\n\
         \x20 http-request set-header X-Forwarded-Port %[dst_port]\n\
         \x20 http-request set-header X-Request-ID %[uuid] unless {{ req.hdr(x-request-id) -m found }}\n\
         \x20 use_backend %[req.hdr(host),field(1,:),lower,map_str({map})]\n\
         \x20 default_backend no_route\n\
         backend no_route\n  http-request return status 404\n",
        map = map_path.display()
    );
    for b in 0..routes.backends() {
        if let Some(addr) = upstreams.get(b) {
            let _ = writeln!(
                out,
                "backend {name}\n  server {name} {addr} pool-max-conn 256",
                name = RouteSet::backend_name(b)
            );
        }
    }
    out
}

/// `host backend` lines for `map_str`.
pub fn host_map(routes: RouteSet) -> String {
    let mut out = String::new();
    for i in 0..routes.count {
        let _ = writeln!(
            out,
            "{} {}",
            RouteSet::host(i),
            RouteSet::backend_name(routes.backend_of(i))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_has_every_host_and_config_every_backend() {
        let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let ups: Vec<SocketAddr> = (0..10).map(|i| a(30_000 + i)).collect();
        let routes = RouteSet { count: 25 };
        let map = host_map(routes);
        assert_eq!(map.lines().count(), 25);
        assert!(map.contains("r24.bench.test b4\n"));
        let conf = config(Path::new("/tmp/hosts.map"), routes, a(1), a(2), &ups);
        assert_eq!(conf.matches("pool-max-conn 256").count(), 10);
        assert!(conf.contains("map_str(/tmp/hosts.map)"));
    }
}

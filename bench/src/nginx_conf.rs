//! nginx configurations: the static upstream every proxy forwards to, and
//! nginx as the proxy under test. Both run as one process (no master, one
//! worker) so their CPU time is one PID's.

use crate::routes::RouteSet;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

/// The upstream's answer: 100 bytes.
pub const UPSTREAM_BODY: &str =
    "gatehouse-bench upstream: a static body for proxy benchmarks, ......................................";

/// Settings shared by both configurations: foreground, one process, no
/// access log, long keepalive, temp files inside the run directory.
fn preamble(out: &mut String, dir: &Path, name: &str) {
    let d = dir.display();
    let _ = write!(
        out,
        "daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile 16384;\n\
         error_log {d}/{name}-error.log warn;\npid {d}/{name}.pid;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n\
         \x20 client_body_temp_path {d}/{name}-tmp/body;\n  proxy_temp_path {d}/{name}-tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/{name}-tmp/fastcgi;\n  uwsgi_temp_path {d}/{name}-tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/{name}-tmp/scgi;\n"
    );
}

/// The upstream: one static answer on each of `ports`.
pub fn upstream(dir: &Path, ports: &[SocketAddr]) -> String {
    let mut out = String::new();
    preamble(&mut out, dir, "upstream");
    out += "  server {\n";
    for addr in ports {
        let _ = writeln!(out, "    listen {addr} backlog=4096;");
    }
    let _ = write!(
        out,
        "    location / {{\n      default_type text/plain;\n      return 200 \"{}\";\n    }}\n  }}\n}}\n",
        UPSTREAM_BODY
    );
    out
}

/// nginx as the proxy: one `server` per host (as ingress-nginx generates),
/// one `upstream` with a keepalive pool per backend, the same forwarding
/// headers the gateway sets, unknown hosts answered 404.
pub fn proxy(
    dir: &Path,
    routes: RouteSet,
    http1: SocketAddr,
    http2: SocketAddr,
    upstreams: &[SocketAddr],
) -> String {
    let mut out = String::new();
    preamble(&mut out, dir, "nginx");
    // Room for every server name without bucket overflows.
    let hash_size = (routes.count * 4).next_power_of_two().max(1024);
    let _ = write!(
        out,
        "  server_names_hash_max_size {hash_size};\n  server_names_hash_bucket_size 128;\n\
         \x20 proxy_http_version 1.1;\n\
         \x20 proxy_set_header Connection \"\";\n\
         \x20 proxy_set_header Host $http_host;\n\
         \x20 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20 proxy_set_header X-Real-IP $remote_addr;\n\
         \x20 proxy_set_header X-Forwarded-Proto $scheme;\n\
         \x20 proxy_set_header X-Forwarded-Host $host;\n\
         \x20 proxy_set_header X-Forwarded-Port $server_port;\n\
         \x20 proxy_set_header X-Request-ID $gatehouse_request_id;\n\
         \x20 map $http_x_request_id $gatehouse_request_id {{ \"\" $request_id; default $http_x_request_id; }}\n"
    );
    for b in 0..routes.backends() {
        if let Some(addr) = upstreams.get(b) {
            let _ = writeln!(
                out,
                "  upstream {} {{ server {addr}; keepalive 256; keepalive_requests 1000000; keepalive_timeout 300s; }}",
                RouteSet::backend_name(b)
            );
        }
    }
    let _ = writeln!(
        out,
        "  server {{ listen {http1} default_server backlog=4096; listen {http2} http2 default_server backlog=4096; server_name _; return 404; }}"
    );
    for i in 0..routes.count {
        let _ = writeln!(
            out,
            "  server {{ listen {http1}; listen {http2} http2; server_name {}; location / {{ proxy_pass http://{}; }} }}",
            RouteSet::host(i),
            RouteSet::backend_name(routes.backend_of(i))
        );
    }
    out += "}\n";
    out
}

/// Creates the temp directories a configuration names.
pub fn make_temp_dirs(dir: &Path, name: &str) -> std::io::Result<()> {
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(format!("{name}-tmp")).join(sub))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_body_is_100_bytes() {
        assert_eq!(UPSTREAM_BODY.len(), 100);
    }

    #[test]
    fn proxy_config_has_a_server_per_host_and_a_pool_per_backend() {
        let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let ups: Vec<SocketAddr> = (0..10).map(|i| a(30_000 + i)).collect();
        let conf = proxy(
            Path::new("/tmp/x"),
            RouteSet { count: 25 },
            a(1),
            a(2),
            &ups,
        );
        assert_eq!(conf.matches("server_name r").count(), 25);
        assert_eq!(conf.matches("keepalive 256;").count(), 10);
        assert!(conf.contains("server_name r24.bench.test; location / { proxy_pass http://b4; }"));
    }
}

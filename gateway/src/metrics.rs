//! Request metrics with handles resolved once per route, so the request path
//! does a relaxed atomic add instead of a registry lookup.

use metrics::{Counter, Histogram, SharedString};
use std::sync::OnceLock;

pub const REQUESTS: &str = "gatehouse_gateway_requests_total";
pub const DURATION: &str = "gatehouse_gateway_request_duration_seconds";
pub const SNAPSHOT_VERSION: &str = "gatehouse_gateway_snapshot_version";
pub const SNAPSHOT_ROUTES: &str = "gatehouse_gateway_snapshot_routes";
pub const SNAPSHOT_UPDATES: &str = "gatehouse_gateway_snapshot_updates_total";
pub const SNAPSHOT_REJECTED: &str = "gatehouse_gateway_snapshot_rejected_total";
pub const ENDPOINT_UPDATES: &str = "gatehouse_gateway_endpoint_updates_total";
pub const CONTROLLER_CONNECTED: &str = "gatehouse_gateway_controller_connected";
pub const UPSTREAM_RETRIES: &str = "gatehouse_gateway_upstream_retries_total";
pub const OPEN_CONNECTIONS: &str = "gatehouse_gateway_open_connections";
pub const CERTIFICATE_EXPIRY: &str = "gatehouse_gateway_tls_certificate_expiry_seconds";
pub const CONNECTIONS_REFUSED: &str = "gatehouse_gateway_connections_refused_total";
pub const MAX_CONNECTIONS: &str = "gatehouse_gateway_max_connections";

/// Registers the HELP text of the metrics this module names (once, after
/// the recorder is installed).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "Requests answered, by route host, backend and status."
    );
    describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Time from request to response end."
    );
    describe_gauge!(SNAPSHOT_VERSION, "Version of the installed snapshot.");
    describe_gauge!(SNAPSHOT_ROUTES, "Routes in the installed snapshot.");
    describe_counter!(SNAPSHOT_UPDATES, "Snapshots installed.");
    describe_counter!(
        SNAPSHOT_REJECTED,
        "Snapshots refused (unparsable or invalid)."
    );
    describe_gauge!(
        CONTROLLER_CONNECTED,
        "1 while the snapshot stream is connected."
    );
    describe_counter!(
        UPSTREAM_RETRIES,
        "Upstream connect failures retried on another endpoint."
    );
    describe_gauge!(
        OPEN_CONNECTIONS,
        "Client connections open now (HTTP/1.x and HTTP/2)."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Client connections refused at once because --max-connections were open."
    );
    describe_gauge!(
        MAX_CONNECTIONS,
        "Client connections served at once (--max-connections, or derived from the file descriptor limit)."
    );
    describe_gauge!(
        CERTIFICATE_EXPIRY,
        "Seconds until the certificate expires (NaN: no longer in use)."
    );
}

/// Status codes with a pre-resolved counter; others take the slow path.
const COMMON_STATUS: [u16; 16] = [
    200, 201, 204, 301, 302, 304, 308, 400, 401, 403, 404, 429, 500, 502, 503, 504,
];

/// The metrics of one route (host as configured, backend id).
#[derive(Debug)]
pub struct RouteMetrics {
    host: SharedString,
    backend: SharedString,
    by_status: [OnceLock<Counter>; COMMON_STATUS.len()],
    duration: OnceLock<Histogram>,
}

impl RouteMetrics {
    pub fn new(host: String, backend: String) -> Self {
        RouteMetrics {
            host: host.into(),
            backend: backend.into(),
            by_status: Default::default(),
            duration: OnceLock::new(),
        }
    }

    /// Records one finished request.
    pub fn record(&self, status: u16, seconds: f64) {
        let counter = |status: u16| {
            metrics::counter!(REQUESTS,
                "host" => self.host.clone(),
                "backend" => self.backend.clone(),
                "status" => status.to_string())
        };
        match COMMON_STATUS.iter().position(|&s| s == status) {
            Some(i) => self.by_status[i]
                .get_or_init(|| counter(status))
                .increment(1),
            None => counter(status).increment(1),
        }
        self.duration
            .get_or_init(|| {
                metrics::histogram!(DURATION,
                    "host" => self.host.clone(),
                    "backend" => self.backend.clone())
            })
            .record(seconds);
    }
}

/// Metrics for requests that matched no route (they carry empty labels).
pub fn unmatched() -> &'static RouteMetrics {
    static UNMATCHED: OnceLock<RouteMetrics> = OnceLock::new();
    UNMATCHED.get_or_init(|| RouteMetrics::new(String::new(), String::new()))
}

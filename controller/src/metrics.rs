//! The controller's Prometheus metrics: names in one place, with HELP text.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const REBUILDS: &str = "gatehouse_controller_rebuilds_total";
pub const REBUILD_SECONDS: &str = "gatehouse_controller_rebuild_duration_seconds";
pub const SNAPSHOT_VERSION: &str = "gatehouse_controller_snapshot_version";
pub const SNAPSHOT_BYTES: &str = "gatehouse_controller_snapshot_bytes";
pub const SUBSCRIBERS: &str = "gatehouse_controller_snapshot_subscribers";
pub const STREAM_REFUSED: &str = "gatehouse_controller_snapshot_stream_refused_total";
pub const OBJECTS: &str = "gatehouse_controller_objects";
pub const DIAGNOSTICS: &str = "gatehouse_controller_diagnostics";
pub const MANIFEST_ERRORS: &str = "gatehouse_controller_manifest_errors";
pub const MANIFEST_FILES: &str = "gatehouse_controller_manifest_files";
pub const WATCH_RESTARTS: &str = "gatehouse_controller_watch_restarts_total";
pub const WATCH_ERRORS: &str = "gatehouse_controller_watch_errors_total";
pub const CACHES_SYNCED: &str = "gatehouse_controller_caches_synced";
pub const LEADER: &str = "gatehouse_controller_leader";
pub const LEADER_TRANSITIONS: &str = "gatehouse_controller_leader_transitions_total";
pub const STATUS_UPDATES: &str = "gatehouse_controller_ingress_status_updates_total";
pub const EVENTS: &str = "gatehouse_controller_events_total";
pub const EVENTS_SUPPRESSED: &str = "gatehouse_controller_events_suppressed_total";
pub const LB_SERVICES: &str = "gatehouse_controller_lb_services";
pub const LB_FAILING: &str = "gatehouse_controller_lb_services_failing";
pub const LB_POOL_ADDRESSES: &str = "gatehouse_controller_lb_pool_addresses";
pub const LB_STATUS_UPDATES: &str = "gatehouse_controller_lb_status_updates_total";
pub const LB_ROUND_SECONDS: &str = "gatehouse_controller_lb_round_duration_seconds";

/// Registers the HELP text of every metric (call once, after installing the
/// recorder).
pub fn describe() {
    describe_gauge!(LB_SERVICES, "LoadBalancer Services this controller serves (leader only), by state: allocated (has its addresses) or pending (has none; see the failing gauge).");
    describe_gauge!(LB_FAILING, "Served LoadBalancer Services without addresses, by reason (PoolExhausted, NoPoolMatches, InvalidRequest, ...).");
    describe_gauge!(
        LB_POOL_ADDRESSES,
        "Addresses of each IPPool, by pool, family (ipv4, ipv6) and state (assigned, available)."
    );
    describe_counter!(LB_STATUS_UPDATES, "Status writes of the load-balancer reconciler, by kind (Service, IPPool) and result (updated, conflict, error).");
    describe_histogram!(
        LB_ROUND_SECONDS,
        Unit::Seconds,
        "Time one load-balancer reconcile round takes to plan (all served Services, all pools)."
    );
    describe_counter!(REBUILDS, "Rebuilds run, by kind: full (translation of the whole state) or endpoints (EndpointSlice-only update).");
    describe_histogram!(
        REBUILD_SECONDS,
        Unit::Seconds,
        "Time from the start of a rebuild to its publication, by kind."
    );
    describe_gauge!(
        SNAPSHOT_VERSION,
        "Version of the newest frame on the snapshot stream (milliseconds since the epoch)."
    );
    describe_gauge!(
        SNAPSHOT_BYTES,
        Unit::Bytes,
        "Size of the current full snapshot frame."
    );
    describe_gauge!(SUBSCRIBERS, "Gateways connected to the snapshot stream.");
    describe_counter!(STREAM_REFUSED, "Snapshot stream connections refused, by reason (tls: failed or unauthenticated handshake).");
    describe_gauge!(OBJECTS, "Objects held, by kind.");
    describe_gauge!(
        DIAGNOSTICS,
        "Current problems with objects (left out or served differently), by reason."
    );
    describe_gauge!(
        MANIFEST_ERRORS,
        "Local mode: manifest files whose current version cannot be used."
    );
    describe_gauge!(MANIFEST_FILES, "Local mode: manifest files seen.");
    describe_counter!(
        WATCH_RESTARTS,
        "Relists of a watched kind after the first (410 Gone, reconnects), by kind."
    );
    describe_counter!(
        WATCH_ERRORS,
        "Errors of a kind's watch (retried with backoff), by kind."
    );
    describe_gauge!(CACHES_SYNCED, "1 once every watched kind has been listed.");
    describe_gauge!(
        LEADER,
        "1 while this replica holds the leader Lease and may write to the API."
    );
    describe_counter!(
        LEADER_TRANSITIONS,
        "Times this replica gained or lost leadership, by change (acquired, lost, released)."
    );
    describe_counter!(
        STATUS_UPDATES,
        "Ingress status writes, by result (updated, cleared, conflict, error)."
    );
    describe_counter!(EVENTS, "Kubernetes Events published, by type and reason.");
    describe_counter!(
        EVENTS_SUPPRESSED,
        "Events not published because the object or the controller was over its rate limit."
    );
}

//! One measured change in cluster mode, and where its time went: the API
//! write itself, the controller (watch delivery, debounce, rebuild), the
//! stream to the gateway and its install, read from the logs' timestamps.

use crate::log_times::{first_at_or_after, timed_lines, TimedLine};
use std::time::Duration;

/// What kind of object a change writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The target Ingress's backend Service (a full rebuild).
    Ingress,
    /// The switch Service's EndpointSlice (an endpoints frame).
    EndpointSlice,
}

impl ChangeKind {
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::Ingress => "Ingress",
            ChangeKind::EndpointSlice => "EndpointSlice",
        }
    }

    /// The controller's log line for its publication, and the key of the
    /// rebuild's duration in it with the factor to milliseconds.
    fn published(self) -> (&'static str, &'static str, f64) {
        match self {
            ChangeKind::Ingress => ("published snapshot", "elapsed_ms=", 1.0),
            ChangeKind::EndpointSlice => ("published endpoints", "elapsed_us=", 1e-3),
        }
    }

    /// The gateway's log line for installing it.
    fn installed(self) -> &'static str {
        match self {
            ChangeKind::Ingress => "installed snapshot",
            ChangeKind::EndpointSlice => "applied endpoint update",
        }
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// When the write was sent (seconds since the epoch).
    pub sent_at: f64,
    /// Until the API answered the write.
    pub ack: Duration,
    /// Until the gateway answered from the new backend.
    pub total: Duration,
    /// From the logs, seconds after `sent_at`: the controller published it,
    /// the gateway installed it.
    pub published: Option<f64>,
    pub installed: Option<f64>,
    /// The controller's rebuild time for it, ms.
    pub rebuild_ms: Option<f64>,
}

impl Change {
    pub fn new(sent_at: f64, ack: Duration, total: Duration) -> Self {
        Change {
            sent_at,
            ack,
            total,
            published: None,
            installed: None,
            rebuild_ms: None,
        }
    }
}

/// Fills in `published`, `installed` and `rebuild_ms` from the logs: the
/// first publication of the right kind after the write was sent, and the
/// first install after that. Left empty when the logs have no such lines
/// (or they come after the change was served, which cannot be it).
pub fn attribute(changes: &mut [Change], kind: ChangeKind, controller: &str, gateway: &str) {
    let (marker, key, to_ms) = kind.published();
    let published = timed_lines(controller, marker);
    let installed = timed_lines(gateway, kind.installed());
    // Log timestamps have microseconds; the write is timed just before it
    // goes out, so nothing it caused can be logged earlier.
    let within = |line: Option<&TimedLine>, c: &Change| {
        line.filter(|l| l.at <= c.sent_at + c.total.as_secs_f64())
            .cloned()
    };
    for c in changes.iter_mut() {
        let Some(p) = within(first_at_or_after(&published, c.sent_at), c) else {
            continue;
        };
        c.published = Some(p.at - c.sent_at);
        c.rebuild_ms = p.value(key).map(|v| v * to_ms);
        if let Some(i) = within(first_at_or_after(&installed, p.at), c) {
            c.installed = Some(i.at - c.sent_at);
        }
    }
}

/// Nearest-rank percentile (`q` in 0..=1) of `values`; with 25 values p99
/// is the largest.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_times::parse_timestamp;

    #[test]
    fn a_change_is_matched_to_the_next_publication_and_install() {
        let controller = "2026-11-23T10:00:00.100000Z  INFO gatehouse_controller::rebuild: published snapshot version=1 elapsed_ms=30\n\
                          2026-11-23T10:00:01.080000Z  INFO gatehouse_controller::rebuild: published snapshot version=2 elapsed_ms=40\n";
        let gateway = "2026-11-23T10:00:00.110000Z  INFO gatehouse_gateway::install: installed snapshot version=1 compile_ms=3\n\
                       2026-11-23T10:00:01.095000Z  INFO gatehouse_gateway::install: installed snapshot version=2 compile_ms=4\n";
        let base = parse_timestamp("2026-11-23T10:00:01Z").unwrap();
        let mut changes = vec![
            Change::new(base, Duration::from_millis(2), Duration::from_millis(100)),
            // Served before any publication after it: left unattributed.
            Change::new(
                base + 5.0,
                Duration::from_millis(2),
                Duration::from_millis(10),
            ),
        ];
        attribute(&mut changes, ChangeKind::Ingress, controller, gateway);
        let ms = |v: Option<f64>| v.map(|s| (s * 1e3).round());
        assert_eq!(ms(changes[0].published), Some(80.0));
        assert_eq!(ms(changes[0].installed), Some(95.0));
        assert_eq!(changes[0].rebuild_ms, Some(40.0));
        assert_eq!(changes[1].published, None);
    }

    #[test]
    fn endpoint_rebuilds_are_logged_in_microseconds() {
        let controller = "2026-11-23T10:00:00.005000Z DEBUG gatehouse_controller::rebuild: published endpoints version=7 backends=1 services=1 elapsed_us=250\n";
        let gateway = "2026-11-23T10:00:00.006000Z DEBUG gatehouse_gateway::install: applied endpoint update version=7 backends=1\n";
        let base = parse_timestamp("2026-11-23T10:00:00Z").unwrap();
        let mut changes = vec![Change::new(
            base,
            Duration::from_millis(1),
            Duration::from_millis(8),
        )];
        attribute(&mut changes, ChangeKind::EndpointSlice, controller, gateway);
        assert_eq!(changes[0].rebuild_ms, Some(0.25));
        assert!(changes[0].installed.is_some());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.99), Some(20.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}

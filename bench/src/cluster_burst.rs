//! A burst of object changes written as fast as the API takes them, and
//! what it cost the controller: its `gatehouse_controller_rebuilds_total`
//! counters before and after, the time until the gateway served the last
//! change, and a check that every change was served.

use crate::cluster_objects::{app_host, app_name, switch_backend, switch_endpoints};
use crate::http_probe::{Probe, ProbeError};
use crate::kube_api::{write_all, ApiError};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Connections the burst is written over at once.
pub const CONNECTIONS: usize = 4;
/// The counters count as settled when unchanged this long (longer than
/// the controller's longest debounce delay, 250 ms).
const SETTLED: Duration = Duration::from_millis(600);
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum BurstError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("controller metrics: {0}")]
    Metrics(#[from] ProbeError),
    #[error("{0}")]
    Timeout(String),
}

/// What the burst changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstKind {
    /// Each of the other Services' EndpointSlice moves to the green pod.
    EndpointSlices,
    /// Each of the other Ingresses moves to the `blue` Service.
    Ingresses,
}

impl BurstKind {
    pub fn label(self) -> &'static str {
        match self {
            BurstKind::EndpointSlices => "EndpointSlices",
            BurstKind::Ingresses => "Ingresses",
        }
    }

    /// The pod that answers once a change is served.
    fn pod(self) -> &'static str {
        match self {
            BurstKind::EndpointSlices => "green",
            BurstKind::Ingresses => "blue",
        }
    }
}

/// Rebuilds by kind, from the controller's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilds {
    pub full: u64,
    pub endpoints: u64,
}

impl Rebuilds {
    fn since(self, before: Rebuilds) -> Rebuilds {
        Rebuilds {
            full: self.full.saturating_sub(before.full),
            endpoints: self.endpoints.saturating_sub(before.endpoints),
        }
    }
}

/// Reads `gatehouse_controller_rebuilds_total{kind="..."}` from a
/// Prometheus text exposition.
pub fn parse_rebuilds(metrics: &str) -> Rebuilds {
    let mut out = Rebuilds::default();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("gatehouse_controller_rebuilds_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if labels.contains("kind=\"full\"") {
            out.full = value as u64;
        } else if labels.contains("kind=\"endpoints\"") {
            out.endpoints = value as u64;
        }
    }
    out
}

/// The value of an unlabelled metric (e.g. a gauge) in a Prometheus text
/// exposition.
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The controller's metrics page.
pub fn metrics_text(admin: &mut Probe) -> Result<String, ProbeError> {
    let reply = admin.get("admin", "/metrics")?;
    Ok(String::from_utf8_lossy(&reply.body).into_owned())
}

pub fn rebuilds(admin: &mut Probe) -> Result<Rebuilds, ProbeError> {
    Ok(parse_rebuilds(&metrics_text(admin)?))
}

/// The processes a burst talks to.
pub struct Endpoints {
    pub api: SocketAddr,
    pub admin: SocketAddr,
    pub gateway: SocketAddr,
    pub green: SocketAddr,
}

/// What one burst measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstResult {
    pub kind: BurstKind,
    pub changes: usize,
    /// Time to write all of them (every reply received).
    pub write: Duration,
    /// From the first write to the gateway serving the last one.
    pub served: Duration,
    /// Rebuilds from the first write until the counters settled.
    pub rebuilds: Rebuilds,
    /// Changes the gateway was checked to serve afterwards.
    pub verified: usize,
}

/// Which echo pod answers `host` through the gateway, if any.
pub fn answered_by(probe: &mut Probe, host: &str) -> Option<String> {
    let reply = probe.get(host, "/").ok()?;
    if reply.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
    v.get("pod")?.as_str().map(str::to_owned)
}

/// Changes the first `count` other objects (`app-1`...).
pub fn run(ends: &Endpoints, kind: BurstKind, count: usize) -> Result<BurstResult, BurstError> {
    let mut admin = Probe::new(ends.admin, Duration::from_secs(5));
    let mut gateway = Probe::new(ends.gateway, Duration::from_secs(5));
    let before = settle(&mut admin, Instant::now())?;
    let writes: Vec<_> = (1..=count)
        .map(|n| match kind {
            BurstKind::EndpointSlices => switch_endpoints(&app_name(n), ends.green),
            BurstKind::Ingresses => switch_backend(&app_name(n), &app_host(n), "blue"),
        })
        .collect();
    let started = Instant::now();
    let versions = write_all(ends.api, &writes, CONNECTIONS)?;
    let write = started.elapsed();
    // Watches deliver in resourceVersion order: once the newest write is
    // served, every earlier one has reached the controller too.
    let newest = versions
        .iter()
        .enumerate()
        .max_by_key(|(_, rv)| **rv)
        .map_or(1, |(i, _)| i + 1);
    let host = app_host(newest);
    while answered_by(&mut gateway, &host).as_deref() != Some(kind.pod()) {
        if started.elapsed() > TIMEOUT {
            return Err(BurstError::Timeout(format!(
                "the last change of the {} burst ({host}) was not served within {TIMEOUT:?}",
                kind.label()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let served = started.elapsed();
    let after = settle(&mut admin, started)?;
    let verified = (1..=count)
        .filter(|&n| answered_by(&mut gateway, &app_host(n)).as_deref() == Some(kind.pod()))
        .count();
    Ok(BurstResult {
        kind,
        changes: count,
        write,
        served,
        rebuilds: after.since(before),
        verified,
    })
}

/// Polls the counters until they stop moving.
fn settle(admin: &mut Probe, started: Instant) -> Result<Rebuilds, BurstError> {
    let mut last = rebuilds(admin)?;
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = rebuilds(admin)?;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= SETTLED {
            return Ok(last);
        }
        if started.elapsed() > TIMEOUT {
            return Err(BurstError::Timeout(format!(
                "the controller kept rebuilding for {TIMEOUT:?} after a burst"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_counters_are_read_by_kind() {
        let text = "# HELP gatehouse_controller_rebuilds_total Rebuilds run\n\
                    # TYPE gatehouse_controller_rebuilds_total counter\n\
                    gatehouse_controller_rebuilds_total{kind=\"full\"} 12\n\
                    gatehouse_controller_rebuilds_total{kind=\"endpoints\"} 40\n\
                    gatehouse_controller_rebuild_duration_seconds_count{kind=\"full\"} 12\n\
                    gatehouse_controller_snapshot_bytes 4194304\n";
        assert_eq!(
            metric_value(text, "gatehouse_controller_snapshot_bytes"),
            Some(4194304.0)
        );
        assert_eq!(metric_value(text, "gatehouse_controller_snapshot"), None);
        let r = parse_rebuilds(text);
        assert_eq!(
            r,
            Rebuilds {
                full: 12,
                endpoints: 40
            }
        );
        assert_eq!(
            r.since(Rebuilds {
                full: 10,
                endpoints: 41
            }),
            Rebuilds {
                full: 2,
                endpoints: 0
            }
        );
    }
}

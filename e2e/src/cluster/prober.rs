//! A steady stream of HTTP probes from the client, to measure how long a
//! failover leaves a service unreachable.
//!
//! Every [`PROBE_INTERVAL`] the prober starts a GET on a fresh TCP
//! connection, on its own task, so a probe stuck on a dead path does not
//! delay the next one: the outage is seen at the interval's resolution, not
//! at the timeouts'.

use super::error::{ClusterError, Result};
use super::netns::Netns;
use super::Cluster;
use crate::echo::EchoReply;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How often a probe starts.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long a probe may take to connect.
pub const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a probe may take in all, connecting included.
pub const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_millis(300);
/// How much of a body a record keeps.
const SNIPPET: usize = 256;

/// Which echo pod answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Answerer {
    pub pod: String,
    pub node: String,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSuccess {
    pub status: u16,
    /// The body's first bytes (lossy UTF-8).
    pub snippet: String,
    /// The pod and node, when the body is an echo reply.
    pub answered_by: Option<Answerer>,
}

/// Why a probe got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeFailure {
    /// No socket could be made in the client namespace.
    Socket,
    /// The connection was not established within [`PROBE_CONNECT_TIMEOUT`].
    ConnectTimeout,
    /// The connection failed (refused, unreachable...).
    Connect(io::ErrorKind),
    /// The HTTP exchange failed after connecting.
    Http,
    /// No whole answer within [`PROBE_REQUEST_TIMEOUT`].
    RequestTimeout,
}

pub type ProbeOutcome = std::result::Result<ProbeSuccess, ProbeFailure>;

/// One probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    pub sent_at: Instant,
    pub finished_at: Instant,
    pub outcome: ProbeOutcome,
}

/// A run of failed probes between two successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When the last success before it was sent; `None` when the log starts
    /// with failures (the first probe's time then stands in for it).
    pub last_success_before: Option<Instant>,
    pub first_failure: Instant,
    pub last_failure: Instant,
    /// When the first success after it was sent; `None` when the log ends
    /// in failures (the last probe's time then stands in for it).
    pub first_success_after: Option<Instant>,
    pub failures: usize,
    start: Instant,
    end: Instant,
}

impl Outage {
    /// From the last success before to the first success after; an outage
    /// at either end of the log counts to the first or last probe, so one
    /// that never ended is not hidden.
    pub fn gap(&self) -> Duration {
        self.end.duration_since(self.start)
    }

    /// Whether it began and ended between successes.
    pub fn is_bounded(&self) -> bool {
        self.last_success_before.is_some() && self.first_success_after.is_some()
    }

    /// Whether `at` lies within the outage's gap.
    pub fn covers(&self, at: Instant) -> bool {
        self.start <= at && at <= self.end
    }
}

/// What a [`Prober`] recorded, in the order the probes were sent.
#[derive(Debug, Clone, Default)]
pub struct ProbeLog {
    records: Vec<ProbeRecord>,
}

impl ProbeLog {
    pub fn records(&self) -> &[ProbeRecord] {
        &self.records
    }

    pub fn successes(&self) -> impl Iterator<Item = (&ProbeRecord, &ProbeSuccess)> {
        self.records
            .iter()
            .filter_map(|r| r.outcome.as_ref().ok().map(|s| (r, s)))
    }

    pub fn failures(&self) -> impl Iterator<Item = (&ProbeRecord, ProbeFailure)> {
        self.records
            .iter()
            .filter_map(|r| r.outcome.as_ref().err().map(|f| (r, *f)))
    }

    /// Every run of failures, in order.
    pub fn outages(&self) -> Vec<Outage> {
        let (Some(first), Some(last)) = (self.records.first(), self.records.last()) else {
            return Vec::new();
        };
        let mut outages = Vec::new();
        let mut last_success: Option<Instant> = None;
        let mut current: Option<Outage> = None;
        for record in &self.records {
            match (&record.outcome, current.as_mut()) {
                (Ok(_), Some(outage)) => {
                    outage.first_success_after = Some(record.sent_at);
                    outage.end = record.sent_at;
                    outages.extend(current.take());
                    last_success = Some(record.sent_at);
                }
                (Ok(_), None) => last_success = Some(record.sent_at),
                (Err(_), Some(outage)) => {
                    outage.last_failure = record.sent_at;
                    outage.failures += 1;
                }
                (Err(_), None) => {
                    current = Some(Outage {
                        last_success_before: last_success,
                        first_failure: record.sent_at,
                        last_failure: record.sent_at,
                        first_success_after: None,
                        failures: 1,
                        start: last_success.unwrap_or(first.sent_at),
                        end: last.sent_at,
                    });
                }
            }
        }
        outages.extend(current);
        outages
    }

    /// The gap of every outage, in order.
    pub fn gaps(&self) -> Vec<Duration> {
        self.outages().iter().map(Outage::gap).collect()
    }

    /// The longest gap; zero when nothing failed.
    pub fn longest_gap(&self) -> Duration {
        self.gaps().into_iter().max().unwrap_or_default()
    }

    /// Who answered each success, in order (`None` for answers that are no
    /// echo reply).
    pub fn answerers(&self) -> Vec<Option<Answerer>> {
        self.successes()
            .map(|(_, s)| s.answered_by.clone())
            .collect()
    }
}

/// Probes running in the background; [`stop`](Self::stop) them for the
/// log. Dropped without `stop`, the probes are abandoned.
#[derive(Debug)]
pub struct Prober {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Vec<ProbeRecord>>>,
}

impl Prober {
    /// Starts probing `GET /` at `addr` with `host` as Host from the
    /// client namespace. Must be called on a Tokio runtime.
    pub fn start(cluster: &Cluster, addr: SocketAddr, host: &str) -> Result<Self> {
        Self::start_from(cluster.client(), addr, host)
    }

    /// Starts probing from any namespace.
    pub fn start_from(from: &Netns, addr: SocketAddr, host: &str) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ClusterError::Invalid(format!("the prober needs a Tokio runtime: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(run(from.clone(), addr, host.to_owned(), stopped));
        Ok(Self {
            stop,
            task: Some(task),
        })
    }

    /// Stops starting probes, waits for those in flight (at most
    /// [`PROBE_REQUEST_TIMEOUT`]) and returns the log.
    pub async fn stop(mut self) -> Result<ProbeLog> {
        let _ = self.stop.send(true);
        let task = self
            .task
            .take()
            .ok_or_else(|| ClusterError::Invalid("the prober was stopped already".to_owned()))?;
        let mut records = task
            .await
            .map_err(|e| ClusterError::Invalid(format!("the prober task failed: {e}")))?;
        records.sort_by_key(|r| r.sent_at);
        Ok(ProbeLog { records })
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    from: Netns,
    addr: SocketAddr,
    host: String,
    mut stopped: watch::Receiver<bool>,
) -> Vec<ProbeRecord> {
    let mut records = Vec::new();
    let mut in_flight = JoinSet::new();
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = ticks.tick() => {
                in_flight.spawn(probe(from.clone(), addr, host.clone()));
            }
            Some(done) = in_flight.join_next() => records.extend(done.ok()),
        }
    }
    while let Some(done) = in_flight.join_next().await {
        records.extend(done.ok());
    }
    records
}

async fn probe(from: Netns, addr: SocketAddr, host: String) -> ProbeRecord {
    let sent_at = Instant::now();
    let outcome =
        match tokio::time::timeout(PROBE_REQUEST_TIMEOUT, exchange(&from, addr, &host)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ProbeFailure::RequestTimeout),
        };
    ProbeRecord {
        sent_at,
        finished_at: Instant::now(),
        outcome,
    }
}

async fn exchange(from: &Netns, addr: SocketAddr, host: &str) -> ProbeOutcome {
    let socket = from.tcp_socket(addr).map_err(|_| ProbeFailure::Socket)?;
    let stream = match tokio::time::timeout(PROBE_CONNECT_TIMEOUT, socket.connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(ProbeFailure::Connect(e.kind())),
        Err(_) => return Err(ProbeFailure::ConnectTimeout),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ProbeFailure::Http)?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get("/")
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| ProbeFailure::Http)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| ProbeFailure::Http)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| ProbeFailure::Http)?
        .to_bytes();
    connection.abort();
    let answered_by = serde_json::from_slice::<EchoReply>(&body)
        .ok()
        .map(|reply| Answerer {
            pod: reply.pod,
            node: reply.node,
        });
    let snippet = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]).into_owned();
    Ok(ProbeSuccess {
        status,
        snippet,
        answered_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(pattern: &str) -> (Instant, ProbeLog) {
        let start = Instant::now();
        let records = pattern
            .chars()
            .zip(0u64..)
            .map(|(c, i)| {
                let sent_at = start + Duration::from_millis(i * 10);
                let outcome = match c {
                    '+' => Ok(ProbeSuccess {
                        status: 200,
                        snippet: String::new(),
                        answered_by: None,
                    }),
                    _ => Err(ProbeFailure::ConnectTimeout),
                };
                ProbeRecord {
                    sent_at,
                    finished_at: sent_at,
                    outcome,
                }
            })
            .collect();
        (start, ProbeLog { records })
    }

    #[test]
    fn gaps_run_from_success_to_success() {
        let (start, log) = log("++--+++-----++");
        assert_eq!(
            log.gaps(),
            [Duration::from_millis(30), Duration::from_millis(60)]
        );
        assert_eq!(log.longest_gap(), Duration::from_millis(60));
        let outages = log.outages();
        assert!(outages.iter().all(Outage::is_bounded));
        assert_eq!(outages[1].failures, 5);
        assert!(outages[1].covers(start + Duration::from_millis(100)));
        assert!(!outages[0].covers(start + Duration::from_millis(100)));
        assert_eq!(log.successes().count(), 7);
        assert_eq!(log.failures().count(), 7);
    }

    #[test]
    fn outages_at_the_ends_are_not_hidden() {
        let (_, log) = log("--++---");
        let outages = log.outages();
        assert_eq!(outages.len(), 2);
        assert!(!outages[0].is_bounded() && !outages[1].is_bounded());
        assert_eq!(
            log.gaps(),
            [Duration::from_millis(20), Duration::from_millis(30)]
        );
        assert_eq!(self::log("+++").1.longest_gap(), Duration::ZERO);
        assert!(ProbeLog::default().outages().is_empty());
    }
}

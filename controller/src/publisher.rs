//! Versioned snapshots for the stream: skips rebuilds that change nothing,
//! serializes each frame once for all gateways, and sends endpoint changes
//! as small [`EndpointsFrame`]s instead of the whole route set.
//!
//! What subscribers see is a [`Chain`]: the last full snapshot line and the
//! endpoint lines published since. A subscriber that already sent part of
//! the chain sends only the rest; one that is new, or fell behind a newer
//! full snapshot, sends the whole chain. So a gateway never misses an update
//! and never applies one to the wrong base, however the watch channel
//! coalesces values.

use bytes::Bytes;
use gatehouse_model::{BackendId, Endpoint, EndpointsFrame, Snapshot, SnapshotFrame};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One serialized stream line (JSON + `\n`) and its version.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub line: Bytes,
}

/// The current full snapshot and the endpoint updates published after it.
#[derive(Debug)]
pub struct Chain {
    pub full: Arc<Published>,
    /// In version order, each newer than `full`.
    pub deltas: Vec<Arc<Published>>,
}

impl Chain {
    /// The newest version in the chain.
    pub fn version(&self) -> u64 {
        self.deltas.last().map_or(self.full.version, |d| d.version)
    }

    /// The lines a subscriber that last sent `sent` must send now, in order.
    pub fn lines_after(&self, sent: Option<u64>) -> Vec<Bytes> {
        match sent {
            Some(v) if v >= self.full.version => self
                .deltas
                .iter()
                .filter(|d| d.version > v)
                .map(|d| d.line.clone())
                .collect(),
            _ => std::iter::once(&self.full)
                .chain(&self.deltas)
                .map(|p| p.line.clone())
                .collect(),
        }
    }
}

/// What gateways subscribe to: `None` until the first snapshot exists.
pub type Subscription = watch::Receiver<Option<Arc<Chain>>>;

/// A chain is re-based on a fresh full snapshot once it holds this many
/// endpoint updates, or once they add up to half the full line, so that a
/// gateway that (re)connects gets little more than one snapshot.
const MAX_DELTAS: usize = 64;

pub struct Publisher {
    tx: watch::Sender<Option<Arc<Chain>>>,
    /// The snapshot as gateways have it now (endpoint updates applied).
    last: Option<Snapshot>,
    version: u64,
}

impl Publisher {
    pub fn new() -> Self {
        let (tx, _) = watch::channel(None);
        Publisher {
            tx,
            last: None,
            version: 0,
        }
    }

    pub fn subscribe(&self) -> Subscription {
        self.tx.subscribe()
    }

    /// The snapshot gateways currently serve, if any.
    pub fn current(&self) -> Option<&Snapshot> {
        self.last.as_ref()
    }

    /// Publishes a full snapshot unless it equals the current one. Returns
    /// the new version, or `None` when nothing changed.
    pub fn publish(&mut self, snapshot: Snapshot) -> Result<Option<u64>, serde_json::Error> {
        if self.last.as_ref() == Some(&snapshot) {
            return Ok(None);
        }
        let version = self.next_version();
        let frame = SnapshotFrame { version, snapshot };
        let full = Arc::new(Published {
            version,
            line: line(&frame)?,
        });
        self.version = version;
        self.last = Some(frame.snapshot);
        self.tx.send_replace(Some(Arc::new(Chain {
            full,
            deltas: Vec::new(),
        })));
        Ok(Some(version))
    }

    /// Publishes new endpoint lists for backends of the current snapshot.
    /// Lists equal to the current ones, and backends the snapshot does not
    /// have, are left out; `None` when nothing is left (or there is no
    /// snapshot yet).
    pub fn publish_endpoints(
        &mut self,
        updates: BTreeMap<BackendId, Vec<Endpoint>>,
    ) -> Result<Option<u64>, serde_json::Error> {
        let version = self.next_version();
        let Some(current) = self.last.as_mut() else {
            return Ok(None);
        };
        let endpoints: BTreeMap<BackendId, Vec<Endpoint>> = updates
            .into_iter()
            .filter(|(id, eps)| {
                current
                    .backends
                    .get(id)
                    .is_some_and(|b| &b.endpoints != eps)
            })
            .collect();
        if endpoints.is_empty() {
            return Ok(None);
        }
        let frame = EndpointsFrame { version, endpoints };
        current.apply_endpoints(&frame);
        let delta = Arc::new(Published {
            version,
            line: line(&frame)?,
        });
        self.version = version;
        let chain = match self.tx.borrow().as_ref() {
            Some(chain) => {
                let mut deltas = chain.deltas.clone();
                deltas.push(delta);
                Chain {
                    full: chain.full.clone(),
                    deltas,
                }
            }
            // Unreachable while `last` is set; publish the update alone.
            None => Chain {
                full: delta,
                deltas: Vec::new(),
            },
        };
        let rebase = chain.deltas.len() >= MAX_DELTAS
            || chain.deltas.iter().map(|d| d.line.len()).sum::<usize>() > chain.full.line.len() / 2;
        self.tx.send_replace(Some(Arc::new(chain)));
        if rebase {
            // Same version: subscribers that sent the update send nothing.
            if let Some(snapshot) = &self.last {
                let full = SnapshotFrame {
                    version,
                    snapshot: snapshot.clone(),
                };
                let full = Arc::new(Published {
                    version,
                    line: line(&full)?,
                });
                self.tx.send_replace(Some(Arc::new(Chain {
                    full,
                    deltas: Vec::new(),
                })));
            }
        }
        Ok(Some(version))
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Size of the current full snapshot line, in bytes.
    pub fn full_line_len(&self) -> usize {
        self.tx.borrow().as_ref().map_or(0, |c| c.full.line.len())
    }

    /// Milliseconds since the epoch, bumped by one when two frames fall in
    /// the same millisecond, so versions also keep going up across
    /// controller restarts.
    fn next_version(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        now.max(self.version + 1)
    }
}

fn line<T: serde::Serialize>(frame: &T) -> Result<Bytes, serde_json::Error> {
    let mut line = serde_json::to_vec(frame)?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gatehouse_model::{Backend, ObjectRef, PortRef, StreamFrame};

    fn backend_id(n: u8) -> BackendId {
        BackendId::new("ns", &format!("s{n}"), &PortRef::Number(80))
    }

    fn endpoint(n: u8) -> Endpoint {
        Endpoint {
            address: format!("10.0.0.{n}:80").parse().unwrap(),
            target: None,
            node: None,
        }
    }

    fn snapshot(backends: u8) -> Snapshot {
        let mut s = Snapshot::default();
        for n in 0..backends {
            s.backends.insert(
                backend_id(n),
                Backend {
                    service: ObjectRef::new("Service", "ns", &format!("s{n}")),
                    port: PortRef::Number(80),
                    endpoints: vec![endpoint(1)],
                },
            );
        }
        s
    }

    /// Replays lines as a gateway would: full frames replace, endpoint frames apply.
    fn replay(lines: &[Bytes], into: &mut Option<(u64, Snapshot)>) {
        for l in lines {
            match serde_json::from_slice::<StreamFrame>(l).unwrap() {
                StreamFrame::Snapshot(f) => *into = Some((f.version, f.snapshot)),
                StreamFrame::Endpoints(f) => {
                    let (v, snap) = into.as_mut().unwrap();
                    assert!(f.version > *v);
                    assert!(snap.apply_endpoints(&f).is_empty());
                    *v = f.version;
                }
            }
        }
    }

    #[test]
    fn equal_snapshots_are_not_republished_and_versions_rise() {
        let mut p = Publisher::new();
        let rx = p.subscribe();
        let v1 = p.publish(Snapshot::default()).unwrap().unwrap();
        assert_eq!(p.publish(Snapshot::default()).unwrap(), None);
        let changed = snapshot(1);
        let v2 = p.publish(changed).unwrap().unwrap();
        assert!(v2 > v1);
        let current = rx.borrow().clone().unwrap();
        assert_eq!(current.version(), v2);
        let frame: SnapshotFrame = serde_json::from_slice(&current.full.line).unwrap();
        assert_eq!(frame.version, v2);
    }

    #[test]
    fn endpoint_updates_are_deltas_that_late_and_early_subscribers_both_replay() {
        let mut p = Publisher::new();
        let rx = p.subscribe();
        assert_eq!(
            p.publish_endpoints(BTreeMap::new()).unwrap(),
            None,
            "no snapshot yet"
        );
        let v1 = p.publish(snapshot(3)).unwrap().unwrap();
        let mut early = None;
        replay(&rx.borrow().as_ref().unwrap().lines_after(None), &mut early);

        // Unchanged lists and unknown backends are dropped; nothing left: nothing sent.
        let same = [(backend_id(0), vec![endpoint(1)]), (backend_id(9), vec![])];
        assert_eq!(
            p.publish_endpoints(same.into_iter().collect()).unwrap(),
            None
        );

        let v2 = p
            .publish_endpoints([(backend_id(1), vec![endpoint(2), endpoint(3)])].into())
            .unwrap()
            .unwrap();
        let v3 = p
            .publish_endpoints([(backend_id(2), vec![])].into())
            .unwrap()
            .unwrap();
        assert!(v1 < v2 && v2 < v3);
        let chain = rx.borrow().clone().unwrap();
        assert_eq!(chain.version(), v3);
        // The early subscriber sent v1 and sends only the two deltas, each
        // without the route set.
        let rest = chain.lines_after(Some(v1));
        assert_eq!(rest.len(), 2);
        assert!(rest
            .iter()
            .all(|l| !l.windows(10).any(|w| w == b"\"snapshot\"")));
        replay(&rest, &mut early);
        // A new subscriber gets the full snapshot and the deltas.
        let mut late = None;
        replay(&chain.lines_after(None), &mut late);
        assert_eq!(early, late);
        assert_eq!(
            early.as_ref().map(|(v, s)| (*v, s)),
            Some((v3, p.current().unwrap()))
        );
        // A subscriber that is up to date sends nothing.
        assert!(chain.lines_after(Some(v3)).is_empty());
    }

    #[test]
    fn long_chains_are_rebased_on_a_full_snapshot_at_the_same_version() {
        let mut p = Publisher::new();
        let rx = p.subscribe();
        p.publish(snapshot(2)).unwrap();
        let mut follower = None;
        replay(
            &rx.borrow().as_ref().unwrap().lines_after(None),
            &mut follower,
        );
        let mut sent = follower.as_ref().map(|(v, _)| *v);
        for i in 0..(MAX_DELTAS as u8 + 5) {
            p.publish_endpoints([(backend_id(i % 2), vec![endpoint(i + 2)])].into())
                .unwrap()
                .unwrap();
            let chain = rx.borrow().clone().unwrap();
            assert!(chain.deltas.len() < MAX_DELTAS);
            replay(&chain.lines_after(sent), &mut follower);
            sent = Some(chain.version());
        }
        assert_eq!(follower.map(|(_, s)| s).as_ref(), p.current());
    }
}

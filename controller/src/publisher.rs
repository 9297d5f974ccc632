//! Versioned snapshots for the stream: skips rebuilds that change nothing,
//! serializes each new snapshot once for all gateways.

use bytes::Bytes;
use gatehouse_model::{Snapshot, SnapshotFrame};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// A published snapshot, serialized as one stream line (JSON + `\n`).
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub line: Bytes,
}

/// What gateways subscribe to: `None` until the first snapshot exists.
pub type Subscription = watch::Receiver<Option<Arc<Published>>>;

pub struct Publisher {
    tx: watch::Sender<Option<Arc<Published>>>,
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

    /// Publishes a snapshot unless it equals the last one. Returns the new
    /// version, or `None` when nothing changed.
    ///
    /// Versions are milliseconds since the epoch, bumped by one when two
    /// snapshots fall in the same millisecond, so they also keep going up
    /// across controller restarts.
    pub fn publish(&mut self, snapshot: Snapshot) -> Result<Option<u64>, serde_json::Error> {
        if self.last.as_ref() == Some(&snapshot) {
            return Ok(None);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let version = now.max(self.version + 1);
        let frame = SnapshotFrame { version, snapshot };
        let mut line = serde_json::to_vec(&frame)?;
        line.push(b'\n');
        self.version = version;
        self.last = Some(frame.snapshot);
        self.tx.send_replace(Some(Arc::new(Published {
            version,
            line: Bytes::from(line),
        })));
        Ok(Some(version))
    }

    pub fn version(&self) -> u64 {
        self.version
    }
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
    use gatehouse_model::{BackendId, Snapshot};

    #[test]
    fn equal_snapshots_are_not_republished_and_versions_rise() {
        let mut p = Publisher::new();
        let rx = p.subscribe();
        let v1 = p.publish(Snapshot::default()).unwrap().unwrap();
        assert_eq!(p.publish(Snapshot::default()).unwrap(), None);
        let changed = Snapshot {
            default_backend: Some(BackendId("a/b:1".into())),
            ..Snapshot::default()
        };
        let v2 = p.publish(changed).unwrap().unwrap();
        assert!(v2 > v1);
        let current = rx.borrow().clone().unwrap();
        assert_eq!(current.version, v2);
        let frame: SnapshotFrame = serde_json::from_slice(&current.line).unwrap();
        assert_eq!(frame.version, v2);
    }
}

//! Change notification for the manifests directory, debounced so that an
//! editor's write-rename-chmod burst (or `cp -r` of many files) causes one
//! rebuild, not dozens.

use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the directory must be quiet before a rebuild starts.
const QUIET: Duration = Duration::from_millis(20);
/// The longest a burst may delay a rebuild.
const MAX_DELAY: Duration = Duration::from_millis(150);

/// Watches a directory tree; [`DirWatcher::changed`] resolves after changes.
pub struct DirWatcher {
    // Kept alive for as long as we want events.
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    path: String,
    source: notify::Error,
}

impl DirWatcher {
    pub fn new(root: &Path) -> Result<Self, WatchError> {
        let (tx, events) = mpsc::unbounded_channel();
        let wrap = |source| WatchError {
            path: root.display().to_string(),
            source,
        };
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if ev.kind.is_access() => {}
                Ok(_) => {
                    let _ = tx.send(());
                }
                Err(e) => {
                    tracing::warn!("file watch error: {e}; rescanning");
                    let _ = tx.send(());
                }
            })
            .map_err(wrap)?;
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(wrap)?;
        Ok(DirWatcher {
            _watcher: watcher,
            events,
        })
    }

    /// Waits for a change, then for the burst to settle. `false` if the
    /// watcher stopped.
    pub async fn changed(&mut self) -> bool {
        if self.events.recv().await.is_none() {
            return false;
        }
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            let quiet_until = (Instant::now() + QUIET).min(deadline);
            match tokio::time::timeout_at(quiet_until, self.events.recv()).await {
                Ok(Some(())) if Instant::now() < deadline => continue,
                Ok(None) => return false,
                _ => return true,
            }
        }
    }
}

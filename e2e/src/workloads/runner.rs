//! The loop every controller runs: wait for the cache, reconcile everything
//! it owns, then wait for a change (or the resync tick), retrying failures
//! with exponential backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::cache::Cache;
use super::error::WorkloadError;

/// How often a controller reconciles even without changes: time-based
/// conditions (minReadySeconds) and retries of unschedulable Pods need it.
const RESYNC: Duration = Duration::from_millis(500);
/// Lets a burst of watch events settle into one pass.
const SETTLE: Duration = Duration::from_millis(10);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A controller: one pass reconciles everything it owns.
pub(crate) trait Reconcile: Send + Sync + 'static {
    fn pass(&self) -> impl Future<Output = Result<(), WorkloadError>> + Send;
}

/// Runs `controller` forever (until the task is aborted).
pub(crate) async fn run<C: Reconcile>(name: &'static str, cache: Cache, controller: Arc<C>) {
    cache.wait_until_ready().await;
    let mut changes = cache.changes();
    let mut backoff = BACKOFF_FIRST;
    loop {
        changes.mark_unchanged();
        match controller.pass().await {
            Ok(()) => backoff = BACKOFF_FIRST,
            Err(error) => {
                tracing::warn!(controller = name, %error, "reconcile failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        let _ = tokio::time::timeout(RESYNC, changes.changed()).await;
        tokio::time::sleep(SETTLE).await;
    }
}

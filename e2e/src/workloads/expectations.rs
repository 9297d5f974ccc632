//! Writes a controller made that its cache has not shown yet (client-go's
//! "expectations"): until they show, the owner is not reconciled again, so a
//! stale cache cannot make it create or delete twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::ownership::controlled_by;
use super::pod_state::is_active;

/// A write older than this is given up on (its watch event was lost).
const EXPIRY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Pending {
    created: HashSet<String>,
    deleted: HashSet<String>,
    since: Option<Instant>,
}

/// Pending creations and deletions per owner uid.
#[derive(Default)]
pub(crate) struct Expectations {
    owners: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    pub fn created(&self, owner: &str, name: String) {
        self.with(owner, |p| {
            p.created.insert(name);
        });
    }

    pub fn deleted(&self, owner: &str, name: String) {
        self.with(owner, |p| {
            p.deleted.insert(name);
        });
    }

    /// The Pods in `namespace` that the owner with `uid` controls, or None
    /// while the cache has not caught up with its writes.
    pub fn owned_pods<'p>(
        &self,
        pods: &'p [Arc<Pod>],
        namespace: &str,
        uid: &str,
    ) -> Option<Vec<&'p Arc<Pod>>> {
        let owned: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace) && controlled_by(&***p, uid))
            .collect();
        let by_name: HashMap<String, &Arc<Pod>> =
            owned.iter().map(|p| (p.name_any(), *p)).collect();
        let caught_up = self.satisfied(
            uid,
            |name| by_name.contains_key(name),
            |name| by_name.get(name).is_some_and(|p| is_active(p)),
        );
        caught_up.then_some(owned)
    }

    /// Whether the cache has caught up with `owner`'s writes: created names
    /// `exist` there, deleted ones are no longer `active`.
    pub fn satisfied(
        &self,
        owner: &str,
        exists: impl Fn(&str) -> bool,
        active: impl Fn(&str) -> bool,
    ) -> bool {
        let Ok(mut owners) = self.owners.lock() else {
            return true;
        };
        let Some(pending) = owners.get_mut(owner) else {
            return true;
        };
        pending.created.retain(|name| !exists(name));
        pending.deleted.retain(|name| active(name));
        let expired = pending.since.is_some_and(|t| t.elapsed() > EXPIRY);
        if expired || (pending.created.is_empty() && pending.deleted.is_empty()) {
            owners.remove(owner);
            return true;
        }
        false
    }

    fn with(&self, owner: &str, change: impl FnOnce(&mut Pending)) {
        if let Ok(mut owners) = self.owners.lock() {
            let pending = owners.entry(owner.to_string()).or_default();
            pending.since.get_or_insert_with(Instant::now);
            change(pending);
        }
    }
}

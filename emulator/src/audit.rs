//! A record of every write the emulator served, with the leader Leases as
//! they stood at that moment, so a test can check afterwards that only the
//! Lease holder wrote (something a real API server's audit log can show
//! too, but not with the Lease state attached).

use std::time::SystemTime;

use serde_json::Value;

use super::resources::ResourceKey;
use super::store::Store;

/// One Lease as it stood when a write was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub namespace: String,
    pub name: String,
    pub holder: Option<String>,
    /// `spec.renewTime` as written (RFC 3339).
    pub renew_time: Option<String>,
    pub duration_seconds: Option<i64>,
}

/// One served write (any method but GET).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: SystemTime,
    pub method: String,
    pub path: String,
    /// The authenticated user (empty when authentication failed).
    pub user: String,
    pub user_agent: String,
    pub status: u16,
    pub leases: Vec<LeaseView>,
}

/// The Leases in the store, for an entry.
pub fn leases(store: &Store) -> Vec<LeaseView> {
    let key = ResourceKey {
        group: "coordination.k8s.io".into(),
        plural: "leases".into(),
    };
    store
        .list(&key, None, None)
        .into_iter()
        .map(|lease| {
            let text =
                |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
            LeaseView {
                namespace: text(&lease, "/metadata/namespace").unwrap_or_default(),
                name: text(&lease, "/metadata/name").unwrap_or_default(),
                holder: text(&lease, "/spec/holderIdentity"),
                renew_time: text(&lease, "/spec/renewTime"),
                duration_seconds: lease
                    .pointer("/spec/leaseDurationSeconds")
                    .and_then(Value::as_i64),
            }
        })
        .collect()
}

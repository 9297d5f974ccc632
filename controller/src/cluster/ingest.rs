//! Applies watch events to the cluster state and records what changed, so
//! the rebuild loop knows whether a full translation is needed. A relist
//! (start-up, 410 Gone, reconnect) replaces a kind's objects as a whole:
//! objects missing from it are deleted, unchanged ones cause no rebuild.

use super::watch::SourceEvent;
use crate::metrics as m;
use crate::rebuild::ChangeSet;
use crate::state::{ClusterState, Kind, Object, ObjectKey};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Ingest {
    state: ClusterState,
    /// Kinds in the middle of a relist, with what it has delivered so far.
    relisting: BTreeMap<Kind, BTreeMap<ObjectKey, Object>>,
    /// Kinds listed completely at least once.
    listed: BTreeSet<Kind>,
    changes: ChangeSet,
}

fn same_version(a: &Object, b: &Object) -> bool {
    let (a, b) = (a.metadata(), b.metadata());
    a.resource_version.is_some() && a.resource_version == b.resource_version && a.uid == b.uid
}

impl Ingest {
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Every kind has been listed once: the state is complete.
    pub fn synced(&self) -> bool {
        Kind::ALL.iter().all(|k| self.listed.contains(k))
    }

    /// The changes recorded since the last call.
    pub fn take_changes(&mut self) -> ChangeSet {
        std::mem::take(&mut self.changes)
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Whether the pending changes need a full translation.
    pub fn pending_full(&self) -> bool {
        self.changes.needs_full()
    }

    /// Makes the next rebuild a full one (periodic resync).
    pub fn force_full(&mut self) {
        self.changes.mark_full();
    }

    pub fn apply(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Apply(object) => self.upsert(object),
            SourceEvent::Delete(kind, key) => {
                if let Some(old) = self.state.remove(kind, &key) {
                    self.changes.record(kind, Some(&old), None);
                }
            }
            SourceEvent::RelistStart(kind) => {
                if self.listed.contains(&kind) {
                    metrics::counter!(m::WATCH_RESTARTS, "kind" => kind.as_str()).increment(1);
                    tracing::info!(%kind, "watch restarted; relisting");
                }
                self.relisting.insert(kind, BTreeMap::new());
            }
            SourceEvent::RelistItem(object) => {
                let kind = object.kind();
                match self.relisting.get_mut(&kind) {
                    Some(items) => {
                        items.insert(object.key(), object);
                    }
                    // Not announced by a start: treat as an ordinary change.
                    None => self.upsert(object),
                }
            }
            SourceEvent::RelistDone(kind) => {
                let items = self.relisting.remove(&kind).unwrap_or_default();
                for key in self.state.keys(kind) {
                    if !items.contains_key(&key) {
                        if let Some(old) = self.state.remove(kind, &key) {
                            self.changes.record(kind, Some(&old), None);
                        }
                    }
                }
                for (_, object) in items {
                    self.upsert(object);
                }
                if self.listed.insert(kind) {
                    tracing::info!(%kind, "listed");
                }
            }
            SourceEvent::Error(kind, message) => {
                tracing::warn!(%kind, "watch error: {message}; retrying with backoff, serving the last snapshot meanwhile");
            }
        }
    }

    fn upsert(&mut self, object: Object) {
        let kind = object.kind();
        let old = self.state.insert(object.clone());
        if old.as_ref().is_some_and(|old| same_version(old, &object)) {
            return;
        }
        self.changes.record(kind, old.as_ref(), Some(&object));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::sync::Arc;

    fn meta(name: &str, rv: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        }
    }

    fn svc(name: &str, rv: &str) -> Object {
        Object::Service(Arc::new(Service {
            metadata: meta(name, rv),
            ..Service::default()
        }))
    }

    fn slice(name: &str, rv: &str) -> Object {
        let mut m = meta(name, rv);
        m.labels = Some([("kubernetes.io/service-name".to_owned(), "web".to_owned())].into());
        Object::EndpointSlice(Arc::new(EndpointSlice {
            metadata: m,
            address_type: "IPv4".into(),
            ..EndpointSlice::default()
        }))
    }

    fn list(ingest: &mut Ingest, kind: Kind, objects: Vec<Object>) {
        ingest.apply(SourceEvent::RelistStart(kind));
        for o in objects {
            ingest.apply(SourceEvent::RelistItem(o));
        }
        ingest.apply(SourceEvent::RelistDone(kind));
    }

    #[test]
    fn synced_once_every_kind_is_listed() {
        let mut ingest = Ingest::default();
        for kind in Kind::ALL {
            assert!(!ingest.synced());
            list(&mut ingest, kind, vec![]);
        }
        assert!(ingest.synced());
        assert!(!ingest.has_changes(), "empty lists change nothing");
    }

    #[test]
    fn a_relist_deletes_what_is_gone_and_ignores_what_is_unchanged() {
        let mut ingest = Ingest::default();
        list(
            &mut ingest,
            Kind::Service,
            vec![svc("a", "1"), svc("b", "2")],
        );
        assert!(ingest.take_changes().needs_full());
        // After a 410 the same objects come again: nothing to rebuild.
        list(
            &mut ingest,
            Kind::Service,
            vec![svc("a", "1"), svc("b", "2")],
        );
        assert!(!ingest.has_changes());
        // b was deleted while the watch was down, a changed.
        list(&mut ingest, Kind::Service, vec![svc("a", "7")]);
        let changes = ingest.take_changes();
        assert_eq!(changes.len(), 2);
        assert_eq!(
            ingest.state().keys(Kind::Service),
            vec![ObjectKey::new("ns", "a")]
        );
    }

    #[test]
    fn objects_keep_being_served_during_a_relist() {
        let mut ingest = Ingest::default();
        list(&mut ingest, Kind::Service, vec![svc("a", "1")]);
        ingest.apply(SourceEvent::RelistStart(Kind::Service));
        assert_eq!(ingest.state().services.len(), 1);
    }

    #[test]
    fn slice_changes_are_endpoint_only_and_redeliveries_are_ignored() {
        let mut ingest = Ingest::default();
        ingest.apply(SourceEvent::Apply(slice("s1", "1")));
        let c = ingest.take_changes();
        assert!(!c.is_empty() && !c.needs_full());
        ingest.apply(SourceEvent::Apply(slice("s1", "1")));
        assert!(!ingest.has_changes());
        ingest.apply(SourceEvent::Delete(
            Kind::EndpointSlice,
            ObjectKey::new("ns", "s1"),
        ));
        assert!(!ingest.take_changes().needs_full());
        ingest.apply(SourceEvent::Delete(
            Kind::EndpointSlice,
            ObjectKey::new("ns", "s1"),
        ));
        assert!(
            !ingest.has_changes(),
            "deleting what is not there changes nothing"
        );
    }
}

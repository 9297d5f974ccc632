//! Object storage: the current objects, one global monotonically increasing
//! resourceVersion (like etcd's revision), and a bounded history of changes
//! that watches replay from. Events older than the history are "compacted":
//! a watch or continue token from before that point gets 410 Gone.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use super::meta;
use super::resources::ResourceKey;

/// Namespace and name; the namespace is empty for cluster-scoped objects.
pub type ObjectName = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub resource_version: u64,
    pub resource: ResourceKey,
    pub event_type: EventType,
    /// The object after the change (for deletions: its last state, stamped
    /// with the deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change, so a selector-filtered watch can tell
    /// an object entering or leaving its selection.
    pub previous: Option<Arc<Value>>,
}

#[derive(Debug)]
pub struct Store {
    objects: BTreeMap<ResourceKey, BTreeMap<ObjectName, Arc<Value>>>,
    history: VecDeque<StoredEvent>,
    history_limit: usize,
    current_rv: u64,
    /// Events at or below this version are no longer in `history`.
    compacted_rv: u64,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            current_rv: 0,
            compacted_rv: 0,
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.current_rv
    }

    pub fn compacted_rv(&self) -> u64 {
        self.compacted_rv
    }

    pub fn get(&self, resource: &ResourceKey, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(resource)
            .and_then(|objects| objects.get(&(namespace.to_string(), name.to_string())))
            .cloned()
    }

    /// Objects of one resource in (namespace, name) order, optionally within
    /// one namespace, starting after `after` (for continue tokens).
    pub fn list(
        &self,
        resource: &ResourceKey,
        namespace: Option<&str>,
        after: Option<&ObjectName>,
    ) -> Vec<Arc<Value>> {
        let Some(objects) = self.objects.get(resource) else {
            return Vec::new();
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        objects
            .range::<ObjectName, _>((from, Bound::Unbounded))
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Whether any object of any resource lives in `namespace`.
    pub fn namespace_is_empty(&self, namespace: &str) -> bool {
        self.objects
            .values()
            .all(|objects| objects.keys().all(|(ns, _)| ns != namespace))
    }

    /// Stores a new or changed object, stamping the next resourceVersion.
    pub fn put(&mut self, resource: &ResourceKey, mut object: Value) -> Arc<Value> {
        let rv = self.next_rv();
        meta::set_meta(
            &mut object,
            "resourceVersion",
            Some(Value::String(rv.to_string())),
        );
        let key = (
            meta::namespace(&object).to_string(),
            meta::name(&object).to_string(),
        );
        let object = Arc::new(object);
        let previous = self
            .objects
            .entry(resource.clone())
            .or_default()
            .insert(key, object.clone());
        let event_type = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(StoredEvent {
            resource_version: rv,
            resource: resource.clone(),
            event_type,
            object: object.clone(),
            previous,
        });
        object
    }

    /// Removes an object; returns its last state stamped with the deletion's
    /// resourceVersion, as DELETED watch events carry it.
    pub fn remove(
        &mut self,
        resource: &ResourceKey,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let objects = self.objects.get_mut(resource)?;
        let previous = objects.remove(&(namespace.to_string(), name.to_string()))?;
        let rv = self.next_rv();
        let mut last = (*previous).clone();
        meta::set_meta(
            &mut last,
            "resourceVersion",
            Some(Value::String(rv.to_string())),
        );
        let last = Arc::new(last);
        self.record(StoredEvent {
            resource_version: rv,
            resource: resource.clone(),
            event_type: EventType::Deleted,
            object: last.clone(),
            previous: Some(previous),
        });
        Some(last)
    }

    /// Events after `rv`, or `None` when some of them were compacted away.
    pub fn events_after(&self, rv: u64) -> Option<impl Iterator<Item = &StoredEvent>> {
        if rv < self.compacted_rv {
            return None;
        }
        let start = self.history.partition_point(|e| e.resource_version <= rv);
        Some(self.history.iter().skip(start))
    }

    /// Drops all history, as an etcd compaction would: older versions are gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.current_rv;
    }

    fn next_rv(&mut self) -> u64 {
        self.current_rv += 1;
        self.current_rv
    }

    fn record(&mut self, event: StoredEvent) {
        self.history.push_back(event);
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_rv = dropped.resource_version;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn services() -> ResourceKey {
        ResourceKey {
            group: String::new(),
            plural: "services".into(),
        }
    }

    fn svc(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}})
    }

    #[test]
    fn every_write_gets_a_higher_resource_version() {
        let mut store = Store::new(10);
        let a = store.put(&services(), svc("a"));
        let b = store.put(&services(), svc("b"));
        let a2 = store.put(&services(), svc("a"));
        let rv = |o: &Value| meta::meta_str(o, "resourceVersion").parse::<u64>().unwrap();
        assert!(rv(&a) < rv(&b) && rv(&b) < rv(&a2));
        let gone = store.remove(&services(), "default", "a").unwrap();
        assert!(rv(&gone) > rv(&a2));
        assert_eq!(store.list(&services(), Some("default"), None).len(), 1);
    }

    #[test]
    fn lists_continue_after_a_key() {
        let mut store = Store::new(10);
        for name in ["a", "b", "c"] {
            store.put(&services(), svc(name));
        }
        let after = ("default".to_string(), "a".to_string());
        let names: Vec<String> = store
            .list(&services(), Some("default"), Some(&after))
            .iter()
            .map(|o| meta::name(o).to_string())
            .collect();
        assert_eq!(names, vec!["b", "c"]);
        assert!(store.list(&services(), Some("other"), None).is_empty());
    }

    #[test]
    fn history_beyond_the_limit_is_compacted() {
        let mut store = Store::new(2);
        for name in ["a", "b", "c", "d"] {
            store.put(&services(), svc(name));
        }
        assert_eq!(store.compacted_rv(), 2);
        assert!(store.events_after(1).is_none());
        let replay: Vec<u64> = store
            .events_after(2)
            .unwrap()
            .map(|e| e.resource_version)
            .collect();
        assert_eq!(replay, vec![3, 4]);
    }
}

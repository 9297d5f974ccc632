//! Conversion between the shapes one stored object has in two APIs. The
//! real server stores core/v1 Events and events.k8s.io/v1 Events as one
//! resource; the emulator does the same and renames fields on the way in
//! and out, as the real conversion does.

use serde_json::{Map, Value};

use super::resources::ResourceInfo;

/// events.k8s.io/v1 field ↔ core/v1 field. Fields not listed (reason, type,
/// action, eventTime, series, related, reportingInstance) share their names.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(info: &ResourceInfo) -> bool {
    !info.custom && info.group == "events.k8s.io" && info.plural == "events"
}

/// A body written through `info`, in the stored shape.
pub fn to_storage(info: &ResourceInfo, object: Value) -> Value {
    if !is_events_v1(info) {
        return object;
    }
    let renamed = rename(object, |name| {
        EVENT_FIELDS
            .iter()
            .find(|(events, _)| *events == name)
            .map(|(_, core)| *core)
    });
    with_type(renamed, "v1")
}

/// A stored object as `info` shows it.
pub fn from_storage(info: &ResourceInfo, object: Value) -> Value {
    if !is_events_v1(info) {
        return object;
    }
    let renamed = rename(object, |name| {
        EVENT_FIELDS
            .iter()
            .find(|(_, core)| *core == name)
            .map(|(events, _)| *events)
    });
    with_type(renamed, "events.k8s.io/v1")
}

fn rename(object: Value, target_name: impl Fn(&str) -> Option<&'static str>) -> Value {
    let Value::Object(map) = object else {
        return object;
    };
    let renamed: Map<String, Value> = map
        .into_iter()
        .map(|(key, value)| match target_name(&key) {
            Some(new) => (new.to_string(), value),
            None => (key, value),
        })
        .collect();
    Value::Object(renamed)
}

fn with_type(mut object: Value, api_version: &str) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(api_version.into()));
        map.insert("kind".into(), Value::String("Event".into()));
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_apis() {
        let registry = Registry::with_builtins();
        let events_v1 = registry.get("events.k8s.io", "events").unwrap();
        let written = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"},
            "regarding": {"kind": "Service", "name": "web"},
            "note": "allocated 192.0.2.1", "reason": "Allocated",
            "reportingController": "gatehouse"
        });
        let stored = to_storage(events_v1, written.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "allocated 192.0.2.1");
        assert_eq!(stored["reportingComponent"], "gatehouse");
        assert_eq!(from_storage(events_v1, stored), written);
    }
}

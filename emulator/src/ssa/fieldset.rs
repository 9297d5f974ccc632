//! Sets of field paths, as recorded in `metadata.managedFields` (`FieldsV1`
//! encoding: `f:<field>`, `k:<key json>`, `v:<value json>`, `.` for a node
//! that is itself owned), and the object operations SSA needs on them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::list_keys::{list_merge, ListMerge};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// A map field.
    Field(String),
    /// An item of a keyed list, identified by its key fields (canonical JSON object).
    Key(String),
    /// An item of a set list, identified by its value (canonical JSON).
    Value(String),
}

pub type FieldPath = Vec<PathElement>;

/// Which part of an object a request may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (resources without a status subresource).
    Whole,
    /// Everything but `status` (main resource of a type with a status subresource).
    WithoutStatus,
    /// Only `status` (the status subresource).
    StatusOnly,
}

/// Metadata the server owns; never part of a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The leaf paths set in `object` within `scope`. `builtin` objects have
/// keyed lists (see `list_keys`); custom resources' lists are atomic.
pub fn fields_of(object: &Value, scope: Scope, builtin: bool) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Value::Object(map) = object else {
        return out;
    };
    for (key, value) in map {
        let included = match (scope, key.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::StatusOnly, k) => k == "status",
            (Scope::WithoutStatus, k) => k != "status",
            (Scope::Whole, _) => true,
        };
        if !included {
            continue;
        }
        let mut path = vec![PathElement::Field(key.clone())];
        let mut names = vec![key.clone()];
        if key == "metadata" {
            if let Value::Object(meta) = value {
                for (mkey, mvalue) in meta {
                    if SERVER_METADATA.contains(&mkey.as_str()) {
                        continue;
                    }
                    path.push(PathElement::Field(mkey.clone()));
                    names.push(mkey.clone());
                    collect(mvalue, &mut path, &mut names, builtin, &mut out);
                    path.pop();
                    names.pop();
                }
            }
            continue;
        }
        collect(value, &mut path, &mut names, builtin, &mut out);
    }
    out
}

fn collect(
    value: &Value,
    path: &mut FieldPath,
    names: &mut Vec<String>,
    builtin: bool,
    out: &mut BTreeSet<FieldPath>,
) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                names.push(key.clone());
                collect(child, path, names, builtin, out);
                path.pop();
                names.pop();
            }
        }
        Value::Array(items) if builtin => {
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_merge(&name_refs) {
                Some(ListMerge::ByKey(key)) if items.iter().all(|i| i.get(key).is_some()) => {
                    for item in items {
                        path.push(item_key(item, key));
                        out.insert(path.clone());
                        if let Value::Object(fields) = item {
                            for (field, child) in fields {
                                path.push(PathElement::Field(field.clone()));
                                names.push(field.clone());
                                collect(child, path, names, builtin, out);
                                path.pop();
                                names.pop();
                            }
                        }
                        path.pop();
                    }
                }
                Some(ListMerge::Set) => {
                    for item in items {
                        path.push(PathElement::Value(item.to_string()));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                _ => {
                    out.insert(path.clone());
                }
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn item_key(item: &Value, key: &str) -> PathElement {
    let mut key_object = Map::new();
    if let Some(v) = item.get(key) {
        key_object.insert(key.to_string(), v.clone());
    }
    PathElement::Key(Value::Object(key_object).to_string())
}

/// Whether a list item matches a `Key` element's key fields.
fn item_matches_key(item: &Value, key_json: &str) -> bool {
    let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(key_json) else {
        return false;
    };
    keys.iter().all(|(k, v)| item.get(k) == Some(v))
}

fn item_matches_value(item: &Value, value_json: &str) -> bool {
    serde_json::from_str::<Value>(value_json).is_ok_and(|v| &v == item)
}

/// The value at `path`, if present.
pub fn value_at<'a>(object: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut current = object;
    for element in path {
        current = match element {
            PathElement::Field(name) => current.get(name)?,
            PathElement::Key(key) => current
                .as_array()?
                .iter()
                .find(|i| item_matches_key(i, key))?,
            PathElement::Value(value) => current
                .as_array()?
                .iter()
                .find(|i| item_matches_value(i, value))?,
        };
    }
    Some(current)
}

/// Removes the field or list item at `path`, if present.
pub fn remove_at(object: &mut Value, path: &[PathElement]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for element in parents {
        let next = match element {
            PathElement::Field(name) => current.get_mut(name),
            PathElement::Key(key) => current
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|i| item_matches_key(i, key))),
            PathElement::Value(value) => current
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|i| item_matches_value(i, value))),
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match last {
        PathElement::Field(name) => {
            if let Some(map) = current.as_object_mut() {
                map.remove(name);
            }
        }
        PathElement::Key(key) => {
            if let Some(items) = current.as_array_mut() {
                items.retain(|i| !item_matches_key(i, key));
            }
        }
        PathElement::Value(value) => {
            if let Some(items) = current.as_array_mut() {
                items.retain(|i| !item_matches_value(i, value));
            }
        }
    }
}

/// Dotted form for conflict messages: `.spec.ports[port=80].targetPort`.
pub fn display_path(path: &[PathElement]) -> String {
    let mut out = String::new();
    for element in path {
        match element {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElement::Key(key) => {
                let inner = serde_json::from_str::<Value>(key)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string))
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                out.push_str(&format!("[{inner}]"));
            }
            PathElement::Value(value) => out.push_str(&format!("[={value}]")),
        }
    }
    out
}

/// Encodes a path set as a `FieldsV1` object.
pub fn encode(paths: &BTreeSet<FieldPath>) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn to_json(node: &Node) -> Value {
        let mut map = Map::new();
        if node.member && !node.children.is_empty() {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (key, child) in &node.children {
            map.insert(key.clone(), to_json(child));
        }
        Value::Object(map)
    }
    let mut root = Node::default();
    for path in paths {
        let mut node = &mut root;
        for element in path {
            let key = match element {
                PathElement::Field(f) => format!("f:{f}"),
                PathElement::Key(k) => format!("k:{k}"),
                PathElement::Value(v) => format!("v:{v}"),
            };
            node = node.children.entry(key).or_default();
        }
        node.member = true;
    }
    to_json(&root)
}

/// Decodes a `FieldsV1` object into a path set (unknown prefixes are skipped).
pub fn decode(fields: &Value) -> BTreeSet<FieldPath> {
    fn walk(node: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Some(map) = node.as_object() else {
            return;
        };
        if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (key, child) in map {
            let element = if let Some(f) = key.strip_prefix("f:") {
                PathElement::Field(f.to_string())
            } else if let Some(k) = key.strip_prefix("k:") {
                PathElement::Key(k.to_string())
            } else if let Some(v) = key.strip_prefix("v:") {
                PathElement::Value(v.to_string())
            } else {
                continue;
            };
            path.push(element);
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["x"]},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "web"}},
            "status": {"loadBalancer": {}}
        });
        let fields = fields_of(&svc, Scope::WithoutStatus, true);
        let encoded = encode(&fields);
        assert_eq!(
            encoded,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"x\"": {}}},
                "f:spec": {
                    "f:ports": {"k:{\"port\":80}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                    "f:selector": {"f:app": {}}
                }
            })
        );
        assert_eq!(decode(&encoded), fields);
    }

    #[test]
    fn keyed_items_are_found_and_removed() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
        let path = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("ports".into()),
            PathElement::Key("{\"port\":443}".into()),
        ];
        assert!(value_at(&svc, &path).is_some());
        assert_eq!(display_path(&path), ".spec.ports[port=443]");
        remove_at(&mut svc, &path);
        assert_eq!(svc, json!({"spec": {"ports": [{"port": 80}]}}));
    }
}

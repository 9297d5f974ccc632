//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Simplified from the real structured-merge-diff:
//! - ownership is tracked per leaf field; built-in lists named in `list_keys`
//!   are keyed (by one key field), every other list is atomic;
//! - an apply conflicts when another manager owns a field the applied
//!   configuration sets to a different value; `force=true` takes it over;
//! - fields the applier set before, no longer sets, and nobody else owns are
//!   removed; emptied parent maps are left in place;
//! - non-apply writes (create/update/patch) give the writing manager every
//!   field whose value they changed, taking it from other managers.

pub mod fieldset;

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use self::fieldset::{display_path, fields_of, remove_at, value_at, FieldPath, PathElement, Scope};
use crate::list_keys::{list_merge, ListMerge};

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    /// `status` for writes through the status subresource, else empty.
    pub subresource: String,
    pub fields: BTreeSet<FieldPath>,
}

impl ManagerEntry {
    fn same_identity(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// Reads `metadata.managedFields` of a stored object.
pub fn read_managers(object: &Value) -> Vec<ManagerEntry> {
    let Some(entries) = object
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            ManagerEntry {
                manager: text("manager"),
                operation: text("operation"),
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: text("subresource"),
                fields: e.get("fieldsV1").map(fieldset::decode).unwrap_or_default(),
            }
        })
        .collect()
}

/// Writes entries back as `metadata.managedFields` (dropping empty ones).
pub fn write_managers(object: &mut Value, managers: &[ManagerEntry]) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut entry = json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fieldset::encode(&m.fields),
            });
            if !m.subresource.is_empty() {
                entry["subresource"] = json!(m.subresource);
            }
            entry
        })
        .collect();
    let meta = crate::meta::metadata_mut(object);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".to_string(), Value::Array(entries));
    }
}

/// Who is writing, for ownership bookkeeping.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: String,
    pub time: String,
    pub scope: Scope,
    pub builtin: bool,
}

/// Ownership after a non-apply write: the writer takes every field it changed.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    mut managers: Vec<ManagerEntry>,
    writer: &Writer<'_>,
) -> Vec<ManagerEntry> {
    let new_fields = fields_of(new, writer.scope, writer.builtin);
    let old_fields = old
        .map(|o| fields_of(o, writer.scope, writer.builtin))
        .unwrap_or_default();
    let changed: BTreeSet<FieldPath> = new_fields
        .iter()
        .filter(|p| match old {
            None => true,
            Some(old) => is_changed(p, old, new),
        })
        .cloned()
        .collect();
    let removed: BTreeSet<&FieldPath> = old_fields.difference(&new_fields).collect();
    for entry in &mut managers {
        entry
            .fields
            .retain(|p| !removed.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let entry = entry_for(&mut managers, writer, "Update");
        entry.fields.extend(changed);
    }
    managers.retain(|m| !m.fields.is_empty());
    managers
}

fn is_changed(path: &FieldPath, old: &Value, new: &Value) -> bool {
    match path.last() {
        // A list item as a whole changes owner only when it first appears.
        Some(PathElement::Key(_) | PathElement::Value(_)) => value_at(old, path).is_none(),
        _ => value_at(old, path) != value_at(new, path),
    }
}

fn entry_for<'m>(
    managers: &'m mut Vec<ManagerEntry>,
    writer: &Writer<'_>,
    operation: &str,
) -> &'m mut ManagerEntry {
    let position = managers
        .iter()
        .position(|m| m.same_identity(writer.manager, operation, writer.subresource));
    let index = match position {
        Some(i) => i,
        None => {
            managers.push(ManagerEntry {
                manager: writer.manager.to_string(),
                operation: operation.to_string(),
                api_version: writer.api_version.clone(),
                time: writer.time.clone(),
                subresource: writer.subresource.to_string(),
                fields: BTreeSet::new(),
            });
            managers.len() - 1
        }
    };
    let entry = &mut managers[index];
    entry.time = writer.time.clone();
    entry.api_version = writer.api_version.clone();
    entry
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// The result of a successful apply.
#[derive(Debug, Clone)]
pub struct Applied {
    pub object: Value,
    pub managers: Vec<ManagerEntry>,
}

/// Server-side apply of `config` onto `current` (or onto nothing, creating).
pub fn apply(
    current: Option<&Value>,
    config: &Value,
    force: bool,
    writer: &Writer<'_>,
) -> Result<Applied, Vec<Conflict>> {
    let mut managers = current.map(read_managers).unwrap_or_default();
    let applied_fields = fields_of(config, writer.scope, writer.builtin);
    let is_self = |m: &ManagerEntry| m.same_identity(writer.manager, "Apply", writer.subresource);

    if let Some(current) = current {
        let mut conflicts = Vec::new();
        for other in managers.iter().filter(|m| !is_self(m)) {
            for path in applied_fields.intersection(&other.fields) {
                if is_changed(path, current, config) {
                    conflicts.push(Conflict {
                        manager: other.manager.clone(),
                        field: display_path(path),
                    });
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflicts);
        }
        if force {
            for other in managers.iter_mut().filter(|m| !is_self(m)) {
                other
                    .fields
                    .retain(|p| !applied_fields.contains(p) || !is_changed(p, current, config));
            }
        }
    }

    let mut object = current.cloned().unwrap_or_else(|| {
        json!({
            "apiVersion": config.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": config.get("kind").cloned().unwrap_or(Value::Null),
            "metadata": {},
        })
    });
    let previously_applied = managers
        .iter()
        .find(|m| is_self(m))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let owned_by_others: BTreeSet<&FieldPath> = managers
        .iter()
        .filter(|m| !is_self(m))
        .flat_map(|m| m.fields.iter())
        .collect();
    for stale in previously_applied.difference(&applied_fields) {
        if !owned_by_others.contains(stale) {
            remove_at(&mut object, stale);
        }
    }
    merge_config(&mut object, config, &mut Vec::new(), writer);

    let entry = entry_for(&mut managers, writer, "Apply");
    entry.fields = applied_fields;
    managers.retain(|m| !m.fields.is_empty());
    Ok(Applied { object, managers })
}

/// Sets every field of the applied configuration on `target`, merging maps
/// and keyed lists, replacing atomic values.
fn merge_config(target: &mut Value, config: &Value, names: &mut Vec<String>, writer: &Writer<'_>) {
    let Value::Object(config_map) = config else {
        *target = config.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in config_map {
        if names.is_empty() {
            let in_scope = match writer.scope {
                Scope::Whole => true,
                Scope::WithoutStatus => key != "status",
                Scope::StatusOnly => key == "status",
            };
            if !in_scope {
                continue;
            }
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        names.push(key.clone());
        let slot = target_map.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) => merge_config(slot, value, names, writer),
            Value::Array(items) => merge_list(slot, items, names, writer),
            _ => *slot = value.clone(),
        }
        names.pop();
    }
}

fn merge_list(slot: &mut Value, items: &[Value], names: &mut Vec<String>, writer: &Writer<'_>) {
    let mode = if writer.builtin {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        list_merge(&refs)
    } else {
        None
    };
    let Some(mode) = mode else {
        *slot = Value::Array(items.to_vec());
        return;
    };
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let Value::Array(existing) = slot else {
        return;
    };
    match mode {
        ListMerge::Set => {
            for item in items {
                if !existing.contains(item) {
                    existing.push(item.clone());
                }
            }
        }
        ListMerge::ByKey(key) => {
            for item in items {
                let id = item.get(key);
                match existing
                    .iter_mut()
                    .find(|e| id.is_some() && e.get(key) == id)
                {
                    Some(found) => merge_config(found, item, names, writer),
                    None => existing.push(item.clone()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1".to_string(),
            time: "2026-01-01T00:00:00Z".to_string(),
            scope: Scope::WithoutStatus,
            builtin: true,
        }
    }

    fn with_managers(mut object: Value, managers: &[ManagerEntry]) -> Value {
        write_managers(&mut object, managers);
        object
    }

    #[test]
    fn second_manager_conflicts_on_a_different_value_unless_forced() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "1", "b": "1"}});
        let created = apply(None, &first, false, &writer("one")).unwrap();
        let stored = with_managers(created.object, &created.managers);

        let second = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "2"}});
        let conflicts = apply(Some(&stored), &second, false, &writer("two")).unwrap_err();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "one".into(),
                field: ".data.a".into()
            }]
        );

        let same_value = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"b": "1"}});
        assert!(apply(Some(&stored), &same_value, false, &writer("two")).is_ok());

        let forced = apply(Some(&stored), &second, true, &writer("two")).unwrap();
        assert_eq!(forced.object["data"], json!({"a": "2", "b": "1"}));
        let one = forced.managers.iter().find(|m| m.manager == "one").unwrap();
        assert_eq!(
            one.fields.len(),
            1,
            "one keeps only data.b: {:?}",
            one.fields
        );
    }

    #[test]
    fn fields_dropped_from_the_applied_config_are_removed() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1", "b": "1"}});
        let created = apply(None, &first, false, &writer("one")).unwrap();
        let stored = with_managers(created.object, &created.managers);
        let shrunk = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "1"}});
        let applied = apply(Some(&stored), &shrunk, false, &writer("one")).unwrap();
        assert_eq!(applied.object["data"], json!({"a": "1"}));
        assert_eq!(applied.object["metadata"]["labels"], json!({}));
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "1"}});
        let created = apply(None, &first, false, &writer("one")).unwrap();
        let stored = with_managers(created.object, &created.managers);
        let mut edited = stored.clone();
        edited["data"]["a"] = json!("9");
        let managers = record_update(
            Some(&stored),
            &edited,
            read_managers(&stored),
            &writer("editor"),
        );
        assert_eq!(managers.len(), 1);
        assert_eq!(managers[0].manager, "editor");
        assert_eq!(managers[0].operation, "Update");
    }
}

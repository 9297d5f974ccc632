//! Strategic merge patch, approximated: a JSON merge patch in which the lists
//! named in [`list_merge`](super::super::list_keys::list_merge) are merged
//! item by item (by key, or as a set), plus the directives kubectl emits:
//! `$patch: replace|delete|merge`, `$retainKeys`, `$deleteFromPrimitiveList/<f>`
//! and `$setElementOrder/<f>` (order hints are accepted and ignored).

use serde_json::{Map, Value};

use crate::list_keys::{list_merge, ListMerge};

/// Applies `patch` to `target` in place. Errors describe a malformed directive.
pub fn apply(target: &mut Value, patch: &Value) -> Result<(), String> {
    let mut path = Vec::new();
    merge_value(target, patch, &mut path)
}

fn merge_value(target: &mut Value, patch: &Value, path: &mut Vec<String>) -> Result<(), String> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(without_directives(patch_map));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch directive $patch: {other}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(());
    };
    for (key, value) in patch_map {
        if key == "$patch" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if key == "$retainKeys" {
            let keep: Vec<&str> = value
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            target_map.retain(|k, _| keep.contains(&k.as_str()) || patch_map.contains_key(k));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) =
                (target_map.get_mut(field), value.as_array())
            {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        path.push(key.clone());
        let slot = target_map.entry(key.clone()).or_insert(Value::Null);
        let result = match value {
            Value::Array(items) => merge_list(slot, items, path),
            Value::Object(_) => merge_value(slot, value, path),
            _ => {
                *slot = value.clone();
                Ok(())
            }
        };
        path.pop();
        result?;
        if target_map.get(key).is_some_and(Value::is_null) && !value.is_null() {
            // `$patch: delete` on a map removes the field.
            target_map.remove(key);
        }
    }
    Ok(())
}

fn merge_list(slot: &mut Value, items: &[Value], path: &[String]) -> Result<(), String> {
    let path_refs: Vec<&str> = path.iter().map(String::as_str).collect();
    let Some(mode) = list_merge(&path_refs) else {
        *slot = Value::Array(items.to_vec());
        return Ok(());
    };
    if items.iter().any(|i| {
        i.get("$patch")
            .and_then(Value::as_str)
            .is_some_and(|d| d == "replace")
    }) {
        let kept = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        *slot = Value::Array(kept);
        return Ok(());
    }
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let Value::Array(existing) = slot else {
        return Ok(());
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
            let mut item_path = path.to_vec();
            for item in items {
                let Some(id) = item.get(key) else {
                    return Err(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ));
                };
                let position = existing.iter().position(|e| e.get(key) == Some(id));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        existing.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => merge_value(&mut existing[i], item, &mut item_path)?,
                    (None, false) => {
                        let mut fresh = Value::Object(Map::new());
                        merge_value(&mut fresh, item, &mut item_path)?;
                        existing.push(fresh);
                    }
                }
            }
        }
    }
    Ok(())
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_other_lists_are_replaced() {
        let mut pod = json!({"spec": {
            "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}],
            "tolerations": [{"key": "x"}]
        }});
        let patch = json!({"spec": {
            "containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}],
            "tolerations": [{"key": "y"}]
        }});
        apply(&mut pod, &patch).unwrap();
        assert_eq!(
            pod,
            json!({"spec": {
                "containers": [
                    {"name": "a", "image": "a:1"},
                    {"name": "b", "image": "b:2"},
                    {"name": "c", "image": "c:1"}
                ],
                "tolerations": [{"key": "y"}]
            }})
        );
    }

    #[test]
    fn delete_directives_remove_items_and_fields() {
        let mut svc = json!({
            "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
            "spec": {"ports": [{"port": 80}, {"port": 443}]}
        });
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"x": null}},
            "spec": {"ports": [{"port": 80, "$patch": "delete"}]}
        });
        apply(&mut svc, &patch).unwrap();
        assert_eq!(
            svc,
            json!({
                "metadata": {"finalizers": ["b"], "labels": {"y": "2"}},
                "spec": {"ports": [{"port": 443}]}
            })
        );
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let mut obj = json!({"metadata": {"finalizers": ["a"]}});
        apply(&mut obj, &json!({"metadata": {"finalizers": ["a", "b"]}})).unwrap();
        assert_eq!(obj, json!({"metadata": {"finalizers": ["a", "b"]}}));
    }
}

//! Structural-schema handling of custom resources: fields the CRD's
//! `openAPIV3Schema` does not declare are pruned (as the real server does),
//! and types, `required`, `enum`, item counts, string lengths and numeric
//! bounds are checked (422), then the schema's CEL rules
//! (`x-kubernetes-validations`, with Kubernetes' CEL libraries). Formats and
//! patterns are not checked.

use serde_json::{Map, Value};

use super::error::Cause;
use super::validation::required;

/// Prunes undeclared fields from `object` and returns the validation causes.
/// `apiVersion`, `kind` and `metadata` are the server's and never pruned.
pub fn prune_and_validate(object: &mut Value, schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Value::Object(map) = object else {
        return causes;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let preserve = preserves_unknown(schema);
    map.retain(|key, _| {
        matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
            || preserve
            || properties.is_some_and(|p| p.contains_key(key))
    });
    for key in required_fields(schema) {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") && !map.contains_key(&key) {
            causes.push(required(&key));
        }
    }
    if let Some(properties) = properties {
        for (key, value) in map.iter_mut() {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(child_schema) = properties.get(key) {
                check(value, child_schema, key, &mut causes);
            }
        }
    }
    causes
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn required_fields(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn check(value: &mut Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if !schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            causes.push(type_error(path, value, schema_type(schema)));
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            causes.push(type_error(path, value, "integer or string"));
        }
        return;
    }
    let expected = schema_type(schema);
    let type_ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        causes.push(type_error(path, value, expected));
        return;
    }
    bounds(value, schema, path, causes);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            causes.push(Cause::new(
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    list.join(", ")
                ),
                path,
            ));
        }
    }
    match value {
        Value::Object(map) => check_object(map, schema, path, causes),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

/// Item counts, string lengths and numeric bounds, worded as the real
/// server words them.
fn bounds(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let limit = |key: &str| schema.get(key).and_then(Value::as_u64);
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    match value {
        Value::Array(items) => {
            if let Some(max) = limit("maxItems").filter(|m| items.len() as u64 > *m) {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    format!("Too many: {}: must have at most {max} items", items.len()),
                    path,
                ));
            }
            if let Some(min) = limit("minItems").filter(|m| (items.len() as u64) < *m) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                    path,
                ));
            }
        }
        Value::String(text) => {
            let chars = text.chars().count() as u64;
            if let Some(max) = limit("maxLength").filter(|m| chars > *m) {
                causes.push(Cause::new(
                    "FieldValueTooLong",
                    format!("Too long: may not be more than {max} bytes"),
                    path,
                ));
            }
            if let Some(min) = limit("minLength").filter(|m| chars < *m) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("Invalid value: {value}: {path} in body should be at least {min} chars long"),
                    path,
                ));
            }
        }
        Value::Number(n) => {
            let Some(v) = n.as_f64() else { return };
            if let Some(min) = number("minimum").filter(|m| v < *m) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("Invalid value: {value}: {path} in body should be greater than or equal to {min}"),
                    path,
                ));
            }
            if let Some(max) = number("maximum").filter(|m| v > *m) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("Invalid value: {value}: {path} in body should be less than or equal to {max}"),
                    path,
                ));
            }
        }
        _ => {}
    }
}

/// The schema's CEL rules, evaluated on the whole object (`old`: the
/// stored object, for transition rules).
pub fn cel_causes(object: &Value, schema: &Value, old: Option<&Value>) -> Vec<Cause> {
    let Err(errors) = kube_cel::validate(schema, object, old) else {
        return Vec::new();
    };
    errors
        .into_vec()
        .into_iter()
        .map(|e| {
            let value = e
                .field_path
                .split('.')
                .filter(|p| !p.is_empty())
                .try_fold(object, |v, part| v.get(part));
            let kind = match value {
                Some(Value::Array(_)) => "array",
                Some(Value::Object(_)) => "object",
                Some(Value::String(_)) => "string",
                Some(Value::Number(_)) => "number",
                Some(Value::Bool(_)) => "boolean",
                _ => "object",
            };
            Cause::new(
                "FieldValueInvalid",
                format!("Invalid value: \"{kind}\": {}", e.message),
                e.field_path,
            )
        })
        .collect()
}

fn check_object(map: &mut Map<String, Value>, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let preserve = preserves_unknown(schema);
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if !preserve && additional.is_none() {
        // With no declared properties and no preserve flag, the real server
        // prunes everything below; keep that behaviour.
        map.retain(|key, _| properties.is_some_and(|p| p.contains_key(key)));
    }
    for key in required_fields(schema) {
        if !map.contains_key(&key) {
            causes.push(required(&format!("{path}.{key}")));
        }
    }
    for (key, child) in map.iter_mut() {
        let child_path = format!("{path}.{key}");
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(child_schema), _) | (None, Some(child_schema)) => {
                check(child, child_schema, &child_path, causes)
            }
            (None, None) => {}
        }
    }
}

fn schema_type(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

fn type_error(path: &str, value: &Value, expected: &str) -> Cause {
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    Cause::new(
        "FieldValueTypeInvalid",
        format!(
            "Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
        ),
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }})
    }

    #[test]
    fn undeclared_fields_are_pruned() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"size": 1, "bogus": true, "extra": {"anything": 1}},
            "status": {"ready": true, "other": 1}, "top": 1});
        let causes = prune_and_validate(&mut obj, &schema());
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
                "spec": {"size": 1, "extra": {"anything": 1}}, "status": {"ready": true}})
        );
    }

    #[test]
    fn wrong_types_missing_required_and_enum_violations_are_reported() {
        let mut obj = json!({"spec": {"mode": "c"}, "status": {"ready": "yes"}});
        let fields: Vec<String> = prune_and_validate(&mut obj, &schema())
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, vec!["spec.size", "spec.mode", "status.ready"]);
    }
}

//! CustomResourceDefinitions: validating them, turning them into served
//! resource types, and the status the real apiextensions controller writes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::{ApiError, Cause};
use super::meta;
use super::resources::{version_priority, PrinterColumn, ResourceInfo};
use super::validation::{invalid_value, is_dns_label, is_dns_subdomain, required};

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut current = value;
    for p in path {
        match current.get(p) {
            Some(next) => current = next,
            None => return "",
        }
    }
    current.as_str().unwrap_or("")
}

/// Checks a CRD the way the real server does for the fields the emulator uses.
pub fn validate(crd: &Value) -> Result<(), ApiError> {
    let mut causes: Vec<Cause> = Vec::new();
    let group = text(crd, &["spec", "group"]);
    let plural = text(crd, &["spec", "names", "plural"]);
    let kind = text(crd, &["spec", "names", "kind"]);
    if group.is_empty() {
        causes.push(required("spec.group"));
    } else if !group.contains('.') || !is_dns_subdomain(group) {
        causes.push(invalid_value(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(required("spec.names.plural"));
    } else if !is_dns_label(plural) {
        causes.push(invalid_value(
            "spec.names.plural",
            &json!(plural),
            "must be a DNS label",
        ));
    }
    if kind.is_empty() {
        causes.push(required("spec.names.kind"));
    }
    let scope = text(crd, &["spec", "scope"]);
    if !matches!(scope, "Namespaced" | "Cluster") {
        causes.push(invalid_value(
            "spec.scope",
            &json!(scope),
            "must be either Namespaced or Cluster",
        ));
    }
    let expected_name = format!("{plural}.{group}");
    if meta::name(crd) != expected_name {
        causes.push(invalid_value(
            "metadata.name",
            &json!(meta::name(crd)),
            &format!("must be spec.names.plural+\".\"+spec.group ({expected_name})"),
        ));
    }
    let versions = crd
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(invalid_value(
            "spec.versions",
            &json!(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, version) in versions.iter().enumerate() {
        let name = text(version, &["name"]);
        if version_priority(name) == (0, 0, 0) {
            causes.push(invalid_value(
                &format!("spec.versions[{i}].name"),
                &json!(name),
                "must be a Kubernetes version such as v1, v1beta1, v2alpha1",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "CustomResourceDefinition",
            meta::name(crd),
            causes,
        ))
    }
}

/// The resource type a (validated) CRD defines.
pub fn resource_info(crd: &Value) -> ResourceInfo {
    let names = crd
        .get("spec")
        .and_then(|s| s.get("names"))
        .cloned()
        .unwrap_or(Value::Null);
    let list = |key: &str| -> Vec<String> {
        names
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions: Vec<Value> = crd
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let served: Vec<&Value> = versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .collect();
    let mut version_names: Vec<String> = served
        .iter()
        .map(|v| text(v, &["name"]).to_string())
        .collect();
    version_names.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    let has_status = served.iter().any(|v| {
        v.get("subresources")
            .and_then(|s| s.get("status"))
            .is_some()
    });
    let mut schemas = BTreeMap::new();
    for v in &served {
        if let Some(schema) = v.get("schema").and_then(|s| s.get("openAPIV3Schema")) {
            schemas.insert(text(v, &["name"]).to_string(), schema.clone());
        }
    }
    let storage = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true));
    let printer_columns = storage
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: text(c, &["name"]).to_string(),
                    column_type: text(c, &["type"]).to_string(),
                    json_path: text(c, &["jsonPath"]).to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let selectable_fields = storage
        .and_then(|v| v.get("selectableFields"))
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .map(|f| text(f, &["jsonPath"]).trim_start_matches('.').to_string())
                .collect()
        })
        .unwrap_or_default();
    let kind = text(&names, &["kind"]).to_string();
    let singular = match text(&names, &["singular"]) {
        "" => kind.to_ascii_lowercase(),
        s => s.to_string(),
    };
    ResourceInfo {
        group: text(crd, &["spec", "group"]).to_string(),
        versions: version_names,
        plural: text(&names, &["plural"]).to_string(),
        singular,
        kind,
        namespaced: text(crd, &["spec", "scope"]) == "Namespaced",
        has_status,
        short_names: list("shortNames"),
        categories: list("categories"),
        selectable_fields,
        schemas,
        printer_columns,
        custom: true,
        stored_as: None,
    }
}

/// The status the apiextensions controller would write: names accepted,
/// established, storage version recorded.
pub fn established_status(crd: &Value) -> Value {
    let now = meta::now_rfc3339();
    let storage: Vec<Value> = crd
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .map(|versions| {
            versions
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .map(|v| json!(text(v, &["name"])))
                .collect()
        })
        .unwrap_or_default();
    let mut stored_versions: Vec<Value> = crd
        .get("status")
        .and_then(|s| s.get("storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored_versions.contains(&v) {
            stored_versions.push(v);
        }
    }
    json!({
        "acceptedNames": crd.get("spec").and_then(|s| s.get("names")).cloned().unwrap_or(json!({})),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored_versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        })
    }

    #[test]
    fn crd_becomes_a_served_resource_with_preferred_version_first() {
        let crd = widget_crd();
        validate(&crd).unwrap();
        let info = resource_info(&crd);
        assert_eq!(info.versions, vec!["v1", "v1beta1"]);
        assert_eq!(info.singular, "widget");
        assert!(info.has_status && info.namespaced && info.custom);
    }

    #[test]
    fn crd_name_must_match_plural_and_group() {
        let mut crd = widget_crd();
        crd["metadata"]["name"] = json!("gadgets.example.com");
        assert_eq!(validate(&crd).unwrap_err().code(), 422);
    }
}

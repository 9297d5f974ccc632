//! A minimal OpenAPI v3 surface. kubectl (apply, create, replace) downloads
//! `/openapi/v3` to learn whether the server validates fields itself (the
//! `fieldValidation` query parameter on PATCH); without it kubectl refuses to
//! send anything unless `--validate=false`. The documents list, per group
//! version, the operations with their query parameters and
//! `x-kubernetes-group-version-kind`; they carry no schemas, so `kubectl
//! explain` does not work.

use serde_json::{json, Map, Value};

use super::resources::{Registry, ResourceInfo};

/// `GET /openapi/v3`: one entry per served group version. `hash` changes
/// whenever the set of resources may have changed, so clients refetch.
pub fn root(registry: &Registry, hash: u64) -> Value {
    let mut paths = Map::new();
    for gv in group_versions(registry) {
        let (group, version) = &gv;
        let key = gv_path(group, version);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash:016X}")}),
        );
    }
    json!({"paths": paths})
}

fn group_versions(registry: &Registry) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for info in registry.all() {
        for version in &info.versions {
            let gv = (info.group.clone(), version.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    out
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`.
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let infos = registry.resources_at(group, version);
    if infos.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for info in infos {
        let collection = collection_path(info, group, version);
        let gvk = json!({"group": group, "version": version, "kind": info.kind});
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(&gvk, "list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
                "post": operation(&gvk, "post", WRITE_PARAMS),
            }),
        );
        let item = format!("{collection}/{{name}}");
        paths.insert(item.clone(), item_operations(&gvk));
        if info.has_status {
            paths.insert(format!("{item}/status"), item_operations(&gvk));
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];

fn collection_path(info: &ResourceInfo, group: &str, version: &str) -> String {
    let prefix = format!("/{}", gv_path(group, version));
    if info.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{prefix}/{}", info.plural)
    }
}

fn item_operations(gvk: &Value) -> Value {
    json!({
        "get": operation(gvk, "get", &[]),
        "put": operation(gvk, "put", WRITE_PARAMS),
        "patch": operation(gvk, "patch", PATCH_PARAMS),
        "delete": operation(gvk, "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
    })
}

fn operation(gvk: &Value, action: &str, params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patch_operation_declares_field_validation() {
        let registry = Registry::with_builtins();
        let doc = group_version(&registry, "networking.k8s.io", "v1").unwrap();
        let patch = &doc["paths"]
            ["/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Ingress");
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"fieldValidation"));
        let root = root(&registry, 7);
        assert!(root["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash="));
    }
}

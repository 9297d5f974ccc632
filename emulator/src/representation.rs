//! Content negotiation on `Accept`: plain objects, `PartialObjectMetadata`
//! (kube-rs metadata watchers) or `Table` (kubectl get), and the rendering of
//! each.

use serde_json::{json, Value};

use super::error::ApiError;
use super::meta;
use super::resources::ResourceInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// How objects are shown in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Representation {
    Full,
    /// `meta.k8s.io` `Table` of this version (`v1` or `v1beta1`).
    Table(String),
    Metadata,
}

/// Picks the first representation in `accept` that the emulator can serve.
pub fn negotiate(accept: Option<&str>) -> Result<Representation, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Representation::Full);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let mut as_kind = "";
        let mut group = "";
        let mut version = "";
        for param in parts {
            match param.split_once('=') {
                Some(("as", v)) => as_kind = v,
                Some(("g", v)) => group = v,
                Some(("v", v)) => version = v,
                _ => {}
            }
        }
        match (as_kind, group) {
            ("", _) => return Ok(Representation::Full),
            ("Table", "meta.k8s.io") if matches!(version, "v1" | "v1beta1") => {
                return Ok(Representation::Table(version.to_string()))
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io")
                if matches!(version, "v1" | "v1beta1") =>
            {
                return Ok(Representation::Metadata)
            }
            _ => continue,
        }
    }
    Err(ApiError::NotAcceptable {
        message: format!(
            "only the following media types are accepted: application/json (asked for {accept})"
        ),
    })
}

/// `PartialObjectMetadata` of one object.
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// A column of a Table, and how to fill its cells.
struct Column {
    name: String,
    column_type: String,
    description: String,
    cell: Box<dyn Fn(&Value) -> Value>,
}

fn column(name: &str, description: &str, cell: impl Fn(&Value) -> Value + 'static) -> Column {
    Column {
        name: name.to_string(),
        column_type: "string".to_string(),
        description: description.to_string(),
        cell: Box::new(cell),
    }
}

fn age_cell(object: &Value) -> Value {
    let created = meta::meta_str(object, "creationTimestamp");
    json!(meta::age_seconds(created).map_or("<unknown>".to_string(), meta::human_age))
}

fn columns(info: &ResourceInfo) -> Vec<Column> {
    let mut columns = vec![column("Name", "Name of the object", |o| {
        json!(meta::name(o))
    })];
    if info.custom {
        for pc in &info.printer_columns {
            let path = pc.json_path.clone();
            columns.push(Column {
                name: pc.name.clone(),
                column_type: pc.column_type.clone(),
                description: String::new(),
                cell: Box::new(move |o| json_path(o, &path).unwrap_or(Value::Null)),
            });
        }
    } else if info.group.is_empty() && info.plural == "services" {
        columns.push(column("Type", "Service type", |o| {
            o.pointer("/spec/type").cloned().unwrap_or(json!(""))
        }));
        columns.push(column("Cluster-IP", "Cluster IP", |o| {
            o.pointer("/spec/clusterIP")
                .cloned()
                .unwrap_or(json!("<none>"))
        }));
        columns.push(column("External-IP", "Load balancer addresses", |o| {
            json!(load_balancer_addresses(o, "/status/loadBalancer/ingress"))
        }));
        columns.push(column("Port(s)", "Service ports", |o| {
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| {
                            let port = p.get("port").map(Value::to_string).unwrap_or_default();
                            let protocol =
                                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort") {
                                Some(n) => format!("{port}:{n}/{protocol}"),
                                None => format!("{port}/{protocol}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            })
        }));
    } else if info.group == "networking.k8s.io" && info.plural == "ingresses" {
        columns.push(column("Class", "Ingress class", |o| {
            o.pointer("/spec/ingressClassName")
                .cloned()
                .unwrap_or(json!("<none>"))
        }));
        columns.push(column("Hosts", "Hosts", |o| {
            let hosts: Vec<String> = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| {
                            r.get("host")
                                .and_then(Value::as_str)
                                .unwrap_or("*")
                                .to_string()
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!(if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts.join(",")
            })
        }));
        columns.push(column("Address", "Load balancer addresses", |o| {
            json!(load_balancer_addresses(o, "/status/loadBalancer/ingress"))
        }));
    } else if info.group.is_empty() && info.plural == "pods" {
        columns.push(column("Ready", "Ready containers", pod_ready));
        columns.push(column("Status", "Pod phase", |o| {
            if meta::is_deleting(o) {
                return json!("Terminating");
            }
            o.pointer("/status/phase")
                .cloned()
                .unwrap_or(json!("Unknown"))
        }));
        columns.push(column("IP", "Pod IP", |o| {
            o.pointer("/status/podIP")
                .cloned()
                .unwrap_or(json!("<none>"))
        }));
        columns.push(column("Node", "Node the pod runs on", |o| {
            o.pointer("/spec/nodeName")
                .cloned()
                .unwrap_or(json!("<none>"))
        }));
    } else if info.group.is_empty() && info.plural == "nodes" {
        columns.push(column("Status", "Node readiness", node_status));
        columns.push(column("Version", "Kubelet version", |o| {
            o.pointer("/status/nodeInfo/kubeletVersion")
                .cloned()
                .unwrap_or(json!(""))
        }));
    } else if info.group == "discovery.k8s.io" && info.plural == "endpointslices" {
        columns.push(column("AddressType", "Address type", |o| {
            o.get("addressType").cloned().unwrap_or(json!(""))
        }));
        columns.push(column("Endpoints", "Endpoint addresses", |o| {
            let addresses: Vec<String> = o
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.pointer("/addresses/0").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            json!(if addresses.is_empty() {
                "<unset>".to_string()
            } else {
                addresses.join(",")
            })
        }));
    }
    columns.push(column("Age", "Time since creation", age_cell));
    columns
}

/// `ready/total` containers, as `kubectl get pods` shows it.
fn pod_ready(pod: &Value) -> Value {
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |statuses| {
            statuses
                .iter()
                .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                .count()
        });
    json!(format!("{ready}/{total}"))
}

/// `Ready`, `NotReady` or `Unknown`, plus `SchedulingDisabled` when cordoned.
fn node_status(node: &Value) -> Value {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str));
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

fn load_balancer_addresses(object: &Value, pointer: &str) -> String {
    let addresses: Vec<String> = object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|i| i.get("ip").or_else(|| i.get("hostname")))
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if addresses.is_empty() {
        "<none>".to_string()
    } else {
        addresses.join(",")
    }
}

/// A `Table` of `objects`; `with_columns` false omits the column definitions
/// (watch events after the first).
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    table_version: &str,
    resource_version: Option<u64>,
    with_columns: bool,
) -> Value {
    let columns = columns(info);
    let definitions: Vec<Value> = if with_columns {
        columns
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.column_type,
                    "format": if c.name == "Name" { "name" } else { "" },
                    "description": c.description,
                    "priority": 0,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| (c.cell)(object)).collect();
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(object),
                IncludeObject::Object => row["object"] = object.clone(),
            }
            row
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`,
/// `.a[?(@.k=="v")].b`.
pub fn json_path(object: &Value, path: &str) -> Option<Value> {
    let mut current = object.clone();
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            current = current.get(&after[..end])?.clone();
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            rest = &after[end + 1..];
            current = if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (key, value) = filter.split_once("==")?;
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                current
                    .as_array()?
                    .iter()
                    .find(|item| {
                        item.get(key.trim()).is_some_and(|v| match v {
                            Value::String(s) => s == value,
                            other => {
                                serde_json::from_str::<Value>(value).ok().as_ref() == Some(other)
                            }
                        })
                    })?
                    .clone()
            } else {
                current.get(inner.parse::<usize>().ok()?)?.clone()
            };
        } else {
            return None;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_table_accept_header_selects_a_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(accept)).unwrap(),
            Representation::Table("v1".into())
        );
        let metadata = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(metadata)).unwrap(), Representation::Metadata);
        assert_eq!(negotiate(None).unwrap(), Representation::Full);
        assert!(negotiate(Some("application/vnd.kubernetes.protobuf")).is_err());
    }

    #[test]
    fn node_and_pod_columns_read_their_status() {
        let node = json!({"spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(node_status(&node), json!("Ready,SchedulingDisabled"));
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"containerStatuses": [{"name": "a", "ready": true}]}});
        assert_eq!(pod_ready(&pod), json!("1/2"));
    }

    #[test]
    fn json_path_follows_fields_indices_and_filters() {
        let obj = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}
        ]}, "spec": {"items": [1, 2]}});
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Synced\")].status"),
            Some(json!("False"))
        );
        assert_eq!(json_path(&obj, ".spec.items[1]"), Some(json!(2)));
        assert_eq!(json_path(&obj, ".spec.missing"), None);
    }
}

//! Server-side defaulting of built-in objects, as far as controllers can
//! observe it: Service addressing and ports, Namespace and Pod status.

use serde_json::{json, Map, Value};

use super::resources::ResourceInfo;
use super::state::Allocators;

/// Fills defaults on `object`. `old` is the stored object on update, whose
/// allocated values (cluster IPs, node ports) are kept when omitted.
pub fn apply(info: &ResourceInfo, object: &mut Value, old: Option<&Value>, alloc: &mut Allocators) {
    if info.custom {
        return;
    }
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "services") => default_service(object, old, alloc),
        ("", "namespaces") => {
            let name = super::meta::name(object).to_string();
            super::meta::metadata_mut(object)
                .entry("labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|l| l.insert("kubernetes.io/metadata.name".into(), json!(name)));
            let spec = object_field(object, "spec");
            spec.entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
            let status = object_field(object, "status");
            status.entry("phase").or_insert_with(|| json!("Active"));
        }
        ("", "pods") => {
            let status = object_field(object, "status");
            status.entry("phase").or_insert_with(|| json!("Pending"));
        }
        ("", "secrets") => {
            if let Some(map) = object.as_object_mut() {
                let unset = map.get("type").is_none_or(|t| t.is_null() || t == "");
                if unset {
                    map.insert("type".into(), json!("Opaque"));
                }
            }
            fold_string_data(object);
        }
        _ => {}
    }
}

/// `stringData` is write-only: the real server base64-encodes it into `data`.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or("").as_bytes().to_vec();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, Value::String(encoded));
        }
    }
}

/// `object.<field>` as a map, created if missing or not a map.
fn object_field<'a>(object: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    let slot = &mut object[field];
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("slot was made a map above"),
    }
}

fn default_service(object: &mut Value, old: Option<&Value>, alloc: &mut Allocators) {
    let old_spec = old
        .and_then(|o| o.get("spec"))
        .cloned()
        .unwrap_or(json!({}));
    let spec = object_field(object, "spec");
    let service_type = spec
        .entry("type")
        .or_insert_with(|| json!("ClusterIP"))
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));

    if service_type != "ExternalName" {
        // Allocated values survive updates that omit them (as with kubectl apply).
        for kept in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if spec.get(kept).is_none_or(|v| v.is_null() || v == "") {
                if let Some(value) = old_spec.get(kept) {
                    spec.insert(kept.to_string(), value.clone());
                }
            }
        }
        let families = spec
            .entry("ipFamilies")
            .or_insert_with(|| json!(["IPv4"]))
            .clone();
        spec.entry("ipFamilyPolicy")
            .or_insert_with(|| json!("SingleStack"));
        let cluster_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
        if cluster_ip.is_empty() {
            let ipv6 = families
                .get(0)
                .and_then(Value::as_str)
                .is_some_and(|f| f == "IPv6");
            let ip = alloc.cluster_ip(ipv6);
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        } else {
            if cluster_ip != "None" {
                alloc.reserve_ip(cluster_ip);
            }
            let ip = json!(cluster_ip);
            spec.entry("clusterIPs").or_insert_with(|| json!([ip]));
        }
        spec.entry("internalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }

    let exposes_node_ports = matches!(service_type.as_str(), "NodePort" | "LoadBalancer");
    if exposes_node_ports {
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert_with(|| json!(true));
    }
    let wants_node_ports = exposes_node_ports
        && spec
            .get("allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true);
    let old_ports = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert_with(|| json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                port.entry("targetPort").or_insert(number);
            }
            if !wants_node_ports {
                continue;
            }
            match port.get("nodePort").and_then(Value::as_u64) {
                Some(n) => alloc.reserve_node_port(u16::try_from(n).unwrap_or(0)),
                None => {
                    let previous = old_ports
                        .iter()
                        .find(|p| p.get("port") == port.get("port"))
                        .and_then(|p| p.get("nodePort"))
                        .and_then(Value::as_u64);
                    let node_port = previous.unwrap_or_else(|| u64::from(alloc.node_port()));
                    port.insert("nodePort".into(), json!(node_port));
                }
            }
        }
    }
    let status = object_field(object, "status");
    status.entry("loadBalancer").or_insert_with(|| json!({}));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    #[test]
    fn load_balancer_service_gets_an_ip_node_ports_and_policies() {
        let registry = Registry::with_builtins();
        let info = registry.get("", "services").unwrap();
        let mut alloc = Allocators::default();
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {
            "type": "LoadBalancer", "ports": [{"port": 80}]}});
        apply(info, &mut svc, None, &mut alloc);
        let spec = &svc["spec"];
        assert_eq!(spec["clusterIP"], json!("10.96.0.10"));
        assert_eq!(spec["ports"][0]["protocol"], json!("TCP"));
        assert_eq!(spec["ports"][0]["targetPort"], json!(80));
        assert_eq!(spec["ports"][0]["nodePort"], json!(30000));
        assert_eq!(spec["externalTrafficPolicy"], json!("Cluster"));

        // An update that omits allocated values keeps them.
        let mut update = json!({"metadata": {"name": "web"}, "spec": {
            "type": "LoadBalancer", "ports": [{"port": 80}]}});
        apply(info, &mut update, Some(&svc), &mut alloc);
        assert_eq!(update["spec"]["clusterIP"], json!("10.96.0.10"));
        assert_eq!(update["spec"]["ports"][0]["nodePort"], json!(30000));
    }
}

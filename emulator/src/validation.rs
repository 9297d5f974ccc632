//! The validation the real API server would answer with 422 Invalid, for the
//! fields Gatehouse and its tests depend on: object names, labels, Services,
//! Ingresses, IngressClasses, EndpointSlices, TLS Secrets. (CRDs and custom
//! resources are validated in `crd` and `schema`.)

use serde_json::Value;

use super::error::{ApiError, Cause};
use super::meta;
use super::resources::ResourceInfo;

/// Checks `object` (already defaulted) and answers 422 with every problem found.
pub fn validate(info: &ResourceInfo, object: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    validate_metadata(info, object, &mut causes);
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "services") => validate_service(object, &mut causes),
        ("", "secrets") => validate_secret(object, &mut causes),
        ("networking.k8s.io", "ingresses") => validate_ingress(object, &mut causes),
        ("networking.k8s.io", "ingressclasses")
            if str_at(object, &["spec", "controller"]).is_empty() =>
        {
            causes.push(required("spec.controller"));
        }
        ("discovery.k8s.io", "endpointslices") => validate_endpoint_slice(object, &mut causes),
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&info.kind, meta::name(object), causes))
    }
}

pub fn required(field: &str) -> Cause {
    Cause::new("FieldValueRequired", "Required value", field)
}

pub fn invalid_value(field: &str, value: &Value, detail: &str) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        format!("Invalid value: {value}: {detail}"),
        field,
    )
}

fn not_supported(field: &str, value: &Value, allowed: &[&str]) -> Cause {
    let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    Cause::new(
        "FieldValueNotSupported",
        format!(
            "Unsupported value: {value}: supported values: {}",
            allowed.join(", ")
        ),
        field,
    )
}

fn str_at<'a>(object: &'a Value, path: &[&str]) -> &'a str {
    let mut current = object;
    for p in path {
        match current.get(p) {
            Some(next) => current = next,
            None => return "",
        }
    }
    current.as_str().unwrap_or("")
}

/// RFC 1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && !name.is_empty() && name.split('.').all(is_dns_label)
}

/// RFC 1123 label: lowercase alphanumerics and '-', at most 63, alphanumeric ends.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric))
}

fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

fn validate_metadata(info: &ResourceInfo, object: &Value, causes: &mut Vec<Cause>) {
    let name = meta::name(object);
    // Names that become DNS labels (namespaces, services) are stricter.
    let label_only = matches!(info.plural.as_str(), "namespaces" | "services") && !info.custom;
    let valid = if label_only {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if name.is_empty() {
        causes.push(required("metadata.name"));
    } else if !valid {
        let detail = if label_only {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
        };
        causes.push(invalid_value("metadata.name", &Value::from(name), detail));
    }
    if let Some(labels) = meta::labels(object) {
        for (key, value) in labels {
            let field = format!("metadata.labels[{key}]");
            if !is_label_key(key) {
                causes.push(invalid_value(
                    &field,
                    &Value::from(key.as_str()),
                    "invalid label key",
                ));
            }
            match value.as_str() {
                Some(v) if is_label_value(v) => {}
                _ => causes.push(invalid_value(
                    &field,
                    value,
                    "a valid label must be an empty string or consist of alphanumeric \
                     characters, '-', '_' or '.', at most 63 characters",
                )),
            }
        }
    }
}

fn validate_service(object: &Value, causes: &mut Vec<Cause>) {
    const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    let service_type = str_at(object, &["spec", "type"]);
    if !TYPES.contains(&service_type) {
        causes.push(not_supported(
            "spec.type",
            &Value::from(service_type),
            TYPES,
        ));
    }
    let ports = object
        .get("spec")
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array);
    let headless = str_at(object, &["spec", "clusterIP"]) == "None";
    let ports = match ports {
        Some(p) if !p.is_empty() => p,
        _ => {
            if service_type != "ExternalName" && !headless {
                causes.push(required("spec.ports"));
            }
            return;
        }
    };
    let mut names = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        match port.get("port").and_then(Value::as_u64) {
            Some(1..=65535) => {}
            Some(_) => causes.push(invalid_value(
                &format!("{field}.port"),
                &port["port"],
                "must be between 1 and 65535, inclusive",
            )),
            None => causes.push(required(&format!("{field}.port"))),
        }
        const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            causes.push(not_supported(
                &format!("{field}.protocol"),
                &Value::from(protocol),
                PROTOCOLS,
            ));
        }
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            causes.push(required(&format!("{field}.name")));
        } else if !name.is_empty() && names.contains(&name) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                format!("Duplicate value: \"{name}\""),
                format!("{field}.name"),
            ));
        }
        names.push(name);
    }
}

fn validate_secret(object: &Value, causes: &mut Vec<Cause>) {
    if object.get("type").and_then(Value::as_str) != Some("kubernetes.io/tls") {
        return;
    }
    for key in ["tls.crt", "tls.key"] {
        let present = object.get("data").and_then(|d| d.get(key)).is_some()
            || object.get("stringData").and_then(|d| d.get(key)).is_some();
        if !present {
            causes.push(required(&format!("data[{key}]")));
        }
    }
}

fn validate_ingress(object: &Value, causes: &mut Vec<Cause>) {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let rules = spec.get("rules").and_then(Value::as_array);
    if spec.get("defaultBackend").is_none() && rules.is_none_or(Vec::is_empty) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "Invalid value: either `defaultBackend` or `rules` must be specified",
            "spec",
        ));
    }
    if let Some(backend) = spec.get("defaultBackend") {
        validate_ingress_backend(backend, "spec.defaultBackend", causes);
    }
    for (r, rule) in rules.into_iter().flatten().enumerate() {
        let paths = rule
            .get("http")
            .and_then(|h| h.get("paths"))
            .and_then(Value::as_array);
        for (p, path) in paths.into_iter().flatten().enumerate() {
            let field = format!("spec.rules[{r}].http.paths[{p}]");
            const PATH_TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific"];
            match path.get("pathType").and_then(Value::as_str) {
                None => causes.push(required(&format!("{field}.pathType"))),
                Some(t) if !PATH_TYPES.contains(&t) => causes.push(not_supported(
                    &format!("{field}.pathType"),
                    &Value::from(t),
                    PATH_TYPES,
                )),
                Some("ImplementationSpecific") => {}
                Some(_) => {
                    let value = path.get("path").and_then(Value::as_str).unwrap_or("");
                    if !value.starts_with('/') {
                        causes.push(invalid_value(
                            &format!("{field}.path"),
                            &Value::from(value),
                            "must be an absolute path",
                        ));
                    }
                }
            }
            match path.get("backend") {
                Some(backend) => {
                    validate_ingress_backend(backend, &format!("{field}.backend"), causes)
                }
                None => causes.push(required(&format!("{field}.backend"))),
            }
        }
    }
}

fn validate_ingress_backend(backend: &Value, field: &str, causes: &mut Vec<Cause>) {
    match (backend.get("service"), backend.get("resource")) {
        (Some(service), None) => {
            if service
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(required(&format!("{field}.service.name")));
            }
            let port = service.get("port");
            let has_name = port.and_then(|p| p.get("name")).is_some();
            let has_number = port.and_then(|p| p.get("number")).is_some();
            if has_name == has_number {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "Invalid value: exactly one of port name or number must be specified",
                    format!("{field}.service.port"),
                ));
            }
        }
        (None, Some(_)) => {}
        _ => causes.push(Cause::new(
            "FieldValueInvalid",
            "Invalid value: exactly one of `service` or `resource` must be specified",
            field,
        )),
    }
}

fn validate_endpoint_slice(object: &Value, causes: &mut Vec<Cause>) {
    const ADDRESS_TYPES: &[&str] = &["IPv4", "IPv6", "FQDN"];
    match object.get("addressType").and_then(Value::as_str) {
        None => causes.push(required("addressType")),
        Some(t) if !ADDRESS_TYPES.contains(&t) => {
            causes.push(not_supported("addressType", &Value::from(t), ADDRESS_TYPES))
        }
        Some(_) => {}
    }
    let endpoints = object.get("endpoints").and_then(Value::as_array);
    for (i, endpoint) in endpoints.into_iter().flatten().enumerate() {
        let addresses = endpoint.get("addresses").and_then(Value::as_array);
        if addresses.is_none_or(Vec::is_empty) {
            causes.push(required(&format!("endpoints[{i}].addresses")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    fn check(plural: &str, group: &str, object: Value) -> Vec<String> {
        let registry = Registry::with_builtins();
        let info = registry.get(group, plural).unwrap();
        match validate(info, &object) {
            Ok(()) => Vec::new(),
            Err(ApiError::Invalid { causes, .. }) => causes.into_iter().map(|c| c.field).collect(),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn service_without_ports_is_invalid() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP"}});
        assert_eq!(check("services", "", svc), vec!["spec.ports"]);
    }

    #[test]
    fn ingress_path_needs_a_path_type() {
        let ing = json!({"metadata": {"name": "web"}, "spec": {"rules": [{"http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
        ]}}]}});
        assert_eq!(
            check("ingresses", "networking.k8s.io", ing),
            vec!["spec.rules[0].http.paths[0].pathType"]
        );
    }

    #[test]
    fn names_must_be_dns_compatible() {
        let cm = json!({"metadata": {"name": "Not_Valid"}});
        assert_eq!(check("configmaps", "", cm), vec!["metadata.name"]);
        let cm = json!({"metadata": {"name": "ok.name-1", "labels": {"app": "x y"}}});
        assert_eq!(check("configmaps", "", cm), vec!["metadata.labels[app]"]);
    }
}

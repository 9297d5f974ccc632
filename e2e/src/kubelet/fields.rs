//! The downward API: the pod fields a `fieldRef` may name.

use k8s_openapi::api::core::v1::Pod;

/// What the kubelet knows of a pod once its sandbox exists.
#[derive(Debug, Clone)]
pub struct PodFacts {
    pub pod: Pod,
    pub pod_ip: String,
    pub host_ip: String,
}

impl PodFacts {
    /// The value of `path` (`metadata.name`, `metadata.labels['app']`,
    /// `status.podIP`, ...), or `None` for a field the downward API has not.
    pub fn field(&self, path: &str) -> Option<String> {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.as_ref();
        if let Some(key) = subscript(path, "metadata.labels") {
            return Some(meta.labels.as_ref()?.get(key)?.clone());
        }
        if let Some(key) = subscript(path, "metadata.annotations") {
            return Some(meta.annotations.as_ref()?.get(key)?.clone());
        }
        let value = match path {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            "spec.serviceAccountName" => spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            "status.podIP" | "status.podIPs" => self.pod_ip.clone(),
            "status.hostIP" | "status.hostIPs" => self.host_ip.clone(),
            _ => return None,
        };
        Some(value)
    }
}

/// `key` of `prefix['key']` (or `prefix["key"]`).
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let inner = path
        .strip_prefix(prefix)?
        .strip_prefix('[')?
        .strip_suffix(']')?;
    inner
        .strip_prefix('\'')
        .and_then(|k| k.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_spec_and_status_fields_resolve() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "sa", "containers": []},
        }))
        .unwrap();
        let facts = PodFacts {
            pod,
            pod_ip: "10.201.0.33".into(),
            host_ip: "10.200.0.11".into(),
        };
        assert_eq!(
            facts.field("metadata.labels['app']").as_deref(),
            Some("web")
        );
        assert_eq!(facts.field("metadata.labels['nope']"), None);
        assert_eq!(facts.field("spec.nodeName").as_deref(), Some("node-1"));
        assert_eq!(facts.field("status.podIP").as_deref(), Some("10.201.0.33"));
        assert_eq!(facts.field("status.hostIP").as_deref(), Some("10.200.0.11"));
        assert_eq!(facts.field("metadata.namespace").as_deref(), Some("shop"));
        assert_eq!(facts.field("spec.containers"), None);
    }
}

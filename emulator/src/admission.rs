//! The ServiceAccount admission plugin, as kube-apiserver runs it on every
//! Pod created: the Pod gets a ServiceAccount (`default` when it names
//! none), which must exist, and unless automounting is turned off (on the
//! Pod, else on the ServiceAccount) a projected `kube-api-access-<random>`
//! volume with a service-account token, the cluster CA and the namespace,
//! mounted read-only at the well-known path in every container.

use serde_json::{json, Value};

use super::bootstrap::ROOT_CA_CONFIGMAP;
use super::error::ApiError;
use super::meta;
use super::resources::ResourceInfo;
use super::state::State;

/// Where in-cluster clients read the token, CA and namespace.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token lifetime the admission plugin asks the kubelet for.
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

impl State {
    /// Admits a Pod being created, mutating it as the plugin does.
    pub(super) fn admit_pod(&self, pod: &mut Value) -> Result<(), ApiError> {
        let namespace = meta::namespace(pod).to_string();
        let pod_name = meta::name(pod).to_string();
        let spec = pod
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("a Pod needs a spec"))?;
        let account = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .or_else(|| {
                spec.get("serviceAccount")
                    .and_then(Value::as_str)
                    .filter(|name| !name.is_empty())
            })
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), json!(account));
        spec.insert("serviceAccount".into(), json!(account));
        let stored = self
            .registry
            .get("", "serviceaccounts")
            .map(ResourceInfo::key)
            .and_then(|key| self.store.get(&key, &namespace, &account))
            .ok_or_else(|| ApiError::Forbidden {
                message: format!(
                    "pods \"{pod_name}\" is forbidden: error looking up service account \
                     {namespace}/{account}: serviceaccount \"{account}\" not found"
                ),
                group: String::new(),
                kind: "pods".into(),
                name: pod_name.clone(),
            })?;
        let automount = spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| {
                stored
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            })
            .unwrap_or(true);
        if !automount || mounts_token_path(spec) {
            return Ok(());
        }
        let volume_name = format!("kube-api-access-{}", meta::random_suffix());
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(api_access_volume(&volume_name));
        }
        for list in ["initContainers", "containers"] {
            let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
                continue;
            };
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
                if let Some(mounts) = mounts.as_array_mut() {
                    mounts.push(json!({
                        "name": volume_name,
                        "readOnly": true,
                        "mountPath": SERVICE_ACCOUNT_MOUNT_PATH,
                    }));
                }
            }
        }
        Ok(())
    }
}

/// Whether some container already mounts something at the token path (the
/// plugin then leaves the Pod alone).
fn mounts_token_path(spec: &serde_json::Map<String, Value>) -> bool {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("volumeMounts").and_then(Value::as_array))
        .flatten()
        .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_MOUNT_PATH))
}

fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {
                    "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    "path": "token",
                }},
                {"configMap": {
                    "name": ROOT_CA_CONFIGMAP,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }},
                {"downwardAPI": {"items": [{
                    "path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                }]}},
            ],
        },
    })
}

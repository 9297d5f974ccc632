//! The Secrets and ConfigMaps a pod's env and volumes read, as key → bytes.

use super::error::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use std::collections::BTreeMap;

pub type Data = BTreeMap<String, Vec<u8>>;

/// A Secret's or ConfigMap's data, or `None` if there is no such object.
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<Data>> {
    match kind {
        Kind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let Some(secret) = api.get_opt(name).await? else {
                return Ok(None);
            };
            let mut data: Data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in secret.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            Ok(Some(data))
        }
        Kind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let Some(map) = api.get_opt(name).await? else {
                return Ok(None);
            };
            let mut data: Data = map
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for (k, v) in map.binary_data.unwrap_or_default() {
                data.insert(k, v.0);
            }
            Ok(Some(data))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Secret,
    ConfigMap,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Secret => "secret",
            Self::ConfigMap => "configmap",
        })
    }
}

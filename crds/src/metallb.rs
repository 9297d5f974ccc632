//! Converting MetalLB `IPAddressPool` manifests into `IPPool`s, field by
//! field. Strict: a field this converter does not know is an error naming
//! it, never silently dropped. Other MetalLB kinds are skipped with a note.

use crate::ip_pool::{IPPool, IPPoolSpec, ServiceAllocation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use std::collections::BTreeMap;

/// MetalLB's API groups (current and pre-0.13).
const GROUPS: [&str; 2] = ["metallb.io/", "metallb.universe.tf/"];
/// Set by `kubectl apply`; not carried over.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("document {index}: {message}")]
    Document { index: usize, message: String },
    #[error("IPAddressPool {name}: {message}")]
    Pool { name: String, message: String },
    #[error("two IPAddressPools are named {name} (namespaces {first} and {second}); IPPools are cluster-scoped, rename one")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// The output, and what was skipped.
#[derive(Debug, Default)]
pub struct Converted {
    /// `IPPool` manifests, `---`-separated.
    pub yaml: String,
    pub pools: Vec<IPPool>,
    /// Objects not converted, and why.
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetallbPool {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: ObjectMeta,
    spec: MetallbSpec,
    /// Exported from a cluster; dropped (the controller writes its own).
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetallbSpec {
    addresses: Vec<String>,
    #[serde(default)]
    auto_assign: Option<bool>,
    #[serde(default, rename = "avoidBuggyIPs")]
    avoid_buggy_ips: Option<bool>,
    #[serde(default)]
    service_allocation: Option<MetallbAllocation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetallbAllocation {
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    namespace_selectors: Vec<LabelSelector>,
    #[serde(default)]
    service_selectors: Vec<LabelSelector>,
}

/// Converts every IPAddressPool in a YAML stream (several documents, and
/// `kind: List` as `kubectl get -o yaml` prints it).
pub fn convert(input: &str) -> Result<Converted, ConvertError> {
    let mut out = Converted::default();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| ConvertError::Document {
            index: index + 1,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let items = match value.get("kind").and_then(|k| k.as_str()) {
            Some("List") => value
                .get("items")
                .and_then(|i| i.as_sequence())
                .cloned()
                .unwrap_or_default(),
            _ => vec![value],
        };
        for item in items {
            convert_one(item, &mut names, &mut out)?;
        }
    }
    for pool in &out.pools {
        out.yaml.push_str("---\n");
        out.yaml.push_str(&serde_yaml::to_string(pool)?);
    }
    Ok(out)
}

fn convert_one(
    item: serde_yaml::Value,
    names: &mut BTreeMap<String, String>,
    out: &mut Converted,
) -> Result<(), ConvertError> {
    let text = |key: &str| {
        item.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let name = item
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_owned();
    let metallb = GROUPS.iter().any(|g| api_version.starts_with(g));
    if !metallb || kind != "IPAddressPool" {
        let why = if metallb && kind == "L2Advertisement" {
            "not converted: copy its nodeSelectors and interfaces into spec.l2Advertisement of the IPPools it names (without it every node announces on every interface)"
        } else if metallb {
            "not an address pool"
        } else {
            "not a MetalLB object"
        };
        out.notes
            .push(format!("skipped {api_version} {kind} {name}: {why}"));
        return Ok(());
    }
    let pool: MetallbPool = serde_yaml::from_value(item).map_err(|e| ConvertError::Pool {
        name: name.clone(),
        message: e.to_string(),
    })?;
    let namespace = pool.metadata.namespace.clone().unwrap_or_default();
    if let Some(first) = names.insert(name.clone(), namespace.clone()) {
        return Err(ConvertError::DuplicateName {
            name,
            first,
            second: namespace,
        });
    }
    let mut annotations = pool.metadata.annotations.unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    let metadata = ObjectMeta {
        name: Some(name),
        labels: pool.metadata.labels.filter(|l| !l.is_empty()),
        annotations: Some(annotations).filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    };
    let spec = IPPoolSpec {
        addresses: pool.spec.addresses,
        auto_assign: pool.spec.auto_assign.unwrap_or(true),
        avoid_buggy_ips: pool.spec.avoid_buggy_ips.unwrap_or(false),
        service_allocation: pool.spec.service_allocation.map(|a| ServiceAllocation {
            priority: a.priority,
            namespaces: a.namespaces,
            namespace_selectors: a.namespace_selectors,
            service_selectors: a.service_selectors,
        }),
        // MetalLB keeps this in separate L2Advertisement objects; every
        // node and interface announces until the user narrows it.
        l2_advertisement: None,
    };
    out.pools.push(IPPool {
        metadata,
        spec,
        status: None,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const METALLB: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: production
  namespace: metallb-system
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    team: edge
spec:
  addresses:
  - 192.168.10.0/24
  - 192.168.9.1-192.168.9.5
  - fc00:f853:0ccd:e799::/124
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [shop]
    namespaceSelectors:
    - matchLabels: {tier: frontend}
    serviceSelectors:
    - matchExpressions:
      - {key: app, operator: In, values: [web, api]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: reserved, namespace: metallb-system}
spec:
  addresses: [10.0.0.100/32]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  ipAddressPools: [production]
"#;

    #[test]
    fn pools_carry_over_field_by_field() {
        let c = convert(METALLB).unwrap();
        assert_eq!(c.pools.len(), 2);
        let p = &c.pools[0];
        assert_eq!(p.metadata.name.as_deref(), Some("production"));
        assert_eq!(p.metadata.namespace, None, "IPPools are cluster-scoped");
        let annotations = p.metadata.annotations.clone().unwrap();
        assert_eq!(
            annotations.len(),
            1,
            "kubectl's copy is dropped: {annotations:?}"
        );
        assert_eq!(p.spec.addresses.len(), 3);
        assert!(p.spec.auto_assign && p.spec.avoid_buggy_ips);
        let alloc = p.spec.service_allocation.clone().unwrap();
        assert_eq!(alloc.priority, Some(50));
        assert_eq!(alloc.namespaces, vec!["shop"]);
        assert_eq!(alloc.namespace_selectors.len(), 1);
        assert_eq!(
            alloc.service_selectors[0]
                .match_expressions
                .as_ref()
                .unwrap()[0]
                .values
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        assert!(!c.pools[1].spec.auto_assign);
        assert_eq!(c.notes.len(), 1);
        assert!(c.notes[0].contains("L2Advertisement"), "{:?}", c.notes);
        // The output parses back into the same pools.
        let back: Vec<IPPool> = serde_yaml::Deserializer::from_str(&c.yaml)
            .map(|d| IPPool::deserialize(d).unwrap())
            .collect();
        let specs = |p: &[IPPool]| {
            p.iter()
                .map(|p| (p.metadata.clone(), p.spec.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(specs(&back), specs(&c.pools));
        assert!(c.yaml.contains("apiVersion: gatehouse.dev/v1alpha1"));
        assert!(c.yaml.contains("kind: IPPool"));
    }

    #[test]
    fn lists_and_the_old_api_group_are_read() {
        let list = r#"
apiVersion: v1
kind: List
items:
- apiVersion: metallb.universe.tf/v1beta1
  kind: IPAddressPool
  metadata: {name: a, namespace: x, uid: 0b9e8c3a-1111-2222-3333-444455556666, resourceVersion: "9"}
  spec: {addresses: [10.1.0.0/28]}
  status: {}
"#;
        let c = convert(list).unwrap();
        assert_eq!(c.pools.len(), 1);
        assert!(
            c.pools[0].metadata.uid.is_none(),
            "cluster bookkeeping is not carried over"
        );
    }

    #[test]
    fn unknown_fields_and_duplicate_names_are_errors() {
        let unknown = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [10.0.0.0/24], autoassign: true}\n";
        let err = convert(unknown).unwrap_err().to_string();
        assert!(err.contains("autoassign"), "{err}");
        let twice = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: x}\nspec: {addresses: [10.0.0.0/24]}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: y}\nspec: {addresses: [10.0.1.0/24]}\n";
        assert!(matches!(
            convert(twice),
            Err(ConvertError::DuplicateName { .. })
        ));
    }
}

//! The resource types the emulator serves: the built-in ones and those that
//! CustomResourceDefinitions add at run time. Everything else (discovery,
//! routing, tables) reads this registry.

use std::collections::BTreeMap;

/// Identifies a resource independently of its version: objects are stored
/// under this key so every served version sees the same objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name, e.g. `services`.
    pub plural: String,
}

/// A printer column of a custom resource (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub column_type: String,
    /// A simple JSONPath such as `.spec.replicas`.
    pub json_path: String,
}

/// Everything the emulator needs to know about one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    /// Served versions; the first is the preferred one.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub has_status: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Field selector paths accepted besides `metadata.name`/`metadata.namespace`.
    pub selectable_fields: Vec<String>,
    /// Present for custom resources: their OpenAPI schema per version.
    pub schemas: BTreeMap<String, serde_json::Value>,
    pub printer_columns: Vec<PrinterColumn>,
    /// True for resources defined by a CRD (no strategic merge patch,
    /// schema pruning, etc.).
    pub custom: bool,
    /// Another resource whose objects this one shows in its own shape
    /// (events.k8s.io Events are core Events, see `convert`).
    pub stored_as: Option<ResourceKey>,
}

impl ResourceInfo {
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Where this resource's objects live in the store.
    pub fn storage_key(&self) -> ResourceKey {
        self.stored_as.clone().unwrap_or_else(|| self.key())
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// `apiVersion` as written in objects: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The resource as named in error messages, e.g. `services` or
    /// `ingresses.networking.k8s.io`.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether a field selector may name `path`.
    pub fn selects_on(&self, path: &str) -> bool {
        path == "metadata.name"
            || path == "metadata.namespace"
            || self.selectable_fields.iter().any(|f| f == path)
    }
}

/// A compact description of one built-in resource.
struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    has_status: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    selectable_fields: &'static [&'static str],
}

const CORE_EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        has_status: true,
        short_names: &["ns"],
        categories: &[],
        selectable_fields: &["status.phase"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        has_status: true,
        short_names: &["svc"],
        categories: &["all"],
        selectable_fields: &["spec.clusterIP", "spec.type"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        has_status: false,
        short_names: &["ep"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &["type"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        has_status: false,
        short_names: &["cm"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        has_status: true,
        short_names: &["no"],
        categories: &[],
        selectable_fields: &["spec.unschedulable"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        has_status: true,
        short_names: &["po"],
        categories: &["all"],
        selectable_fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        has_status: false,
        short_names: &["ev"],
        categories: &[],
        selectable_fields: CORE_EVENT_FIELDS,
    },
    Builtin {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        namespaced: true,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
        has_status: true,
        short_names: &["ing"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingressclasses",
        kind: "IngressClass",
        namespaced: false,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        has_status: false,
        short_names: &["ev"],
        categories: &[],
        selectable_fields: &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "reason",
            "reportingController",
            "type",
        ],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        has_status: false,
        short_names: &["sa"],
        categories: &[],
        selectable_fields: &[],
    },
    // Stored and served as they are (no controllers act on them): what a
    // Helm chart installs besides the kinds above.
    Builtin {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        has_status: true,
        short_names: &["deploy"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
        has_status: true,
        short_names: &["ds"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        has_status: true,
        short_names: &["rs"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        kind: "Role",
        namespaced: true,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        kind: "RoleBinding",
        namespaced: true,
        has_status: false,
        short_names: &[],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
        has_status: true,
        short_names: &["pdb"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        has_status: true,
        short_names: &["hpa"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        kind: "NetworkPolicy",
        namespaced: true,
        has_status: false,
        short_names: &["netpol"],
        categories: &[],
        selectable_fields: &[],
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        namespaced: false,
        has_status: true,
        short_names: &["crd", "crds"],
        categories: &[],
        selectable_fields: &[],
    },
];

/// All served resource types, keyed by group and plural.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: BTreeMap<ResourceKey, ResourceInfo>,
}

impl Registry {
    /// A registry holding the built-in resources only.
    pub fn with_builtins() -> Self {
        let mut resources = BTreeMap::new();
        for b in BUILTINS {
            let info = ResourceInfo {
                group: b.group.to_string(),
                versions: vec![b.version.to_string()],
                plural: b.plural.to_string(),
                singular: b.kind.to_ascii_lowercase(),
                kind: b.kind.to_string(),
                namespaced: b.namespaced,
                has_status: b.has_status,
                short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
                categories: b.categories.iter().map(|s| s.to_string()).collect(),
                selectable_fields: b.selectable_fields.iter().map(|s| s.to_string()).collect(),
                schemas: BTreeMap::new(),
                printer_columns: Vec::new(),
                custom: false,
                stored_as: (b.group == "events.k8s.io").then(|| ResourceKey {
                    group: String::new(),
                    plural: "events".to_string(),
                }),
            };
            resources.insert(info.key(), info);
        }
        Self { resources }
    }

    pub fn get(&self, group: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources.get(&ResourceKey {
            group: group.to_string(),
            plural: plural.to_string(),
        })
    }

    /// The resource served at `group/version` with this plural name.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.get(group, plural).filter(|info| info.serves(version))
    }

    pub fn insert(&mut self, info: ResourceInfo) {
        self.resources.insert(info.key(), info);
    }

    pub fn remove(&mut self, key: &ResourceKey) -> Option<ResourceInfo> {
        self.resources.remove(key)
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.resources.values()
    }

    /// Groups in discovery order: built-in groups first (as the real server
    /// lists them), then custom groups alphabetically. The core group is not
    /// included (it lives under `/api`).
    pub fn groups(&self) -> Vec<String> {
        let mut builtin: Vec<String> = Vec::new();
        let mut custom: Vec<String> = Vec::new();
        for info in self.resources.values() {
            if info.group.is_empty() {
                continue;
            }
            let list = if info.custom {
                &mut custom
            } else {
                &mut builtin
            };
            if !list.contains(&info.group) {
                list.push(info.group.clone());
            }
        }
        custom.sort();
        builtin.extend(
            custom
                .into_iter()
                .filter(|g| !BUILTIN_GROUPS.contains(&g.as_str())),
        );
        builtin
    }

    /// Versions served in `group`, preferred first.
    pub fn group_versions(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = Vec::new();
        for info in self.resources.values().filter(|i| i.group == group) {
            for v in &info.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        versions
    }

    /// Resources served at exactly `group/version`.
    pub fn resources_at(&self, group: &str, version: &str) -> Vec<&ResourceInfo> {
        self.resources
            .values()
            .filter(|i| i.group == group && i.serves(version))
            .collect()
    }
}

const BUILTIN_GROUPS: &[&str] = &[
    "apps",
    "rbac.authorization.k8s.io",
    "policy",
    "autoscaling",
    "discovery.k8s.io",
    "networking.k8s.io",
    "coordination.k8s.io",
    "events.k8s.io",
    "apiextensions.k8s.io",
];

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stability, minor_text) = if tail.is_empty() {
        (3, "")
    } else if let Some(t) = tail.strip_prefix("beta") {
        (2, t)
    } else if let Some(t) = tail.strip_prefix("alpha") {
        (1, t)
    } else {
        return (0, 0, 0);
    };
    (stability, major, minor_text.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_versions_sort_before_beta_and_alpha() {
        let mut versions = vec!["v1alpha1", "v2beta1", "v1", "v1beta2", "v2"];
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(versions, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn builtins_resolve_by_group_version_and_plural() {
        let registry = Registry::with_builtins();
        let ingress = registry.resolve("networking.k8s.io", "v1", "ingresses");
        assert_eq!(ingress.map(|i| i.kind.as_str()), Some("Ingress"));
        assert!(registry
            .resolve("networking.k8s.io", "v1beta1", "ingresses")
            .is_none());
        assert!(registry.groups().contains(&"events.k8s.io".to_string()));
        // What a Helm chart installs besides the kinds the controller reads.
        for (group, version, plural, kind) in [
            ("apps", "v1", "deployments", "Deployment"),
            ("apps", "v1", "daemonsets", "DaemonSet"),
            ("apps", "v1", "replicasets", "ReplicaSet"),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
            ),
            (
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
            ),
            (
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
            ),
            (
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
            ),
            ("", "v1", "serviceaccounts", "ServiceAccount"),
        ] {
            let info = registry.resolve(group, version, plural);
            assert_eq!(
                info.map(|i| i.kind.as_str()),
                Some(kind),
                "{group}/{plural}"
            );
        }
        assert!(
            !registry
                .get("rbac.authorization.k8s.io", "clusterroles")
                .unwrap()
                .namespaced
        );
    }
}

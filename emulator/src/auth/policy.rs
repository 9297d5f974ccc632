//! The RBAC objects in the store, read as the authorizer needs them for one
//! request: every ClusterRole and ClusterRoleBinding, and the Roles and
//! RoleBindings of the request's namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;

use super::rbac::{effective_cluster_roles, Policy};
use crate::resources::ResourceInfo;
use crate::state::State;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

impl State {
    /// The policy for a request in `namespace` (empty: cluster scope).
    pub(crate) fn rbac_policy(&self, namespace: &str) -> Policy {
        let cluster_roles: Vec<ClusterRole> = self.rbac_objects("clusterroles", None);
        let mut policy = Policy {
            cluster_roles: effective_cluster_roles(&cluster_roles),
            cluster_role_bindings: self.rbac_objects("clusterrolebindings", None),
            ..Policy::default()
        };
        if !namespace.is_empty() {
            let roles: Vec<Role> = self.rbac_objects("roles", Some(namespace));
            policy.roles = roles
                .into_iter()
                .map(|role| {
                    (
                        role.metadata.name.unwrap_or_default(),
                        role.rules.unwrap_or_default(),
                    )
                })
                .collect::<BTreeMap<String, Vec<PolicyRule>>>();
            policy.role_bindings =
                self.rbac_objects::<RoleBinding>("rolebindings", Some(namespace));
        }
        policy
    }

    /// Stored objects of one RBAC resource; any that do not parse as the
    /// typed object are skipped (they grant nothing).
    fn rbac_objects<T: DeserializeOwned>(&self, plural: &str, namespace: Option<&str>) -> Vec<T> {
        let Some(key) = self.registry.get(RBAC_GROUP, plural).map(ResourceInfo::key) else {
            return Vec::new();
        };
        self.store
            .list(&key, namespace, None)
            .iter()
            .filter_map(|object| serde_json::from_value(object.as_ref().clone()).ok())
            .collect()
    }
}

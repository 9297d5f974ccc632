//! The default ClusterRoles and ClusterRoleBindings kube-apiserver keeps
//! that matter here: `cluster-admin` for `system:masters`, discovery and
//! public information for everyone, self-access reviews for every
//! authenticated user. Stored as objects so kubectl shows them and tests
//! can read what grants the open paths.

use serde_json::{json, Value};

use crate::state::State;

const RBAC_API: &str = "rbac.authorization.k8s.io/v1";

/// A default role: its name, rules and the (kind, name) subjects bound to it.
type DefaultRole = (&'static str, Value, &'static [(&'static str, &'static str)]);

impl State {
    /// Stores the default roles and their bindings.
    pub(crate) fn seed_default_rbac(&mut self) {
        let defaults: [DefaultRole; 4] = [
            (
                "cluster-admin",
                json!([
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]},
                ]),
                &[("Group", "system:masters")],
            ),
            (
                "system:discovery",
                json!([{"nonResourceURLs": [
                    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                    "/openapi", "/openapi/*", "/readyz", "/version", "/version/",
                ], "verbs": ["get"]}]),
                &[("Group", "system:authenticated")],
            ),
            (
                "system:public-info-viewer",
                json!([{"nonResourceURLs": [
                    "/healthz", "/livez", "/readyz", "/version", "/version/",
                ], "verbs": ["get"]}]),
                &[
                    ("Group", "system:authenticated"),
                    ("Group", "system:unauthenticated"),
                ],
            ),
            (
                "system:basic-user",
                json!([
                    {"apiGroups": ["authorization.k8s.io"],
                     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                     "verbs": ["create"]},
                    {"apiGroups": ["authentication.k8s.io"],
                     "resources": ["selfsubjectreviews"],
                     "verbs": ["create"]},
                ]),
                &[("Group", "system:authenticated")],
            ),
        ];
        for (name, rules, subjects) in defaults {
            self.put_bootstrap(
                "rbac.authorization.k8s.io",
                "clusterroles",
                json!({
                    "apiVersion": RBAC_API,
                    "kind": "ClusterRole",
                    "metadata": default_metadata(name),
                    "rules": rules,
                }),
            );
            let subjects: Vec<Value> = subjects
                .iter()
                .map(|(kind, subject)| {
                    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject})
                })
                .collect();
            self.put_bootstrap(
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                json!({
                    "apiVersion": RBAC_API,
                    "kind": "ClusterRoleBinding",
                    "metadata": default_metadata(name),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": subjects,
                }),
            );
        }
    }
}

fn default_metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

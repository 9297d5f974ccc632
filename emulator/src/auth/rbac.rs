//! The RBAC authorizer's evaluation, as kube-apiserver's does it: a request
//! is allowed when some rule of some role bound to the user covers it
//! (ClusterRoleBindings everywhere, RoleBindings in their namespace), and
//! nothing ever denies. Pure: the policy is handed in.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, Subject,
};

use super::attributes::{RequestAttributes, ResourceRequest};
use super::Identity;
use crate::selectors::LabelSelector;

/// The roles and bindings that can apply to a request in one namespace.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Each ClusterRole's rules, aggregation resolved.
    pub cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// Roles of the request's namespace.
    pub roles: BTreeMap<String, Vec<PolicyRule>>,
    /// RoleBindings of the request's namespace.
    pub role_bindings: Vec<RoleBinding>,
}

/// The authorizer's answer; `reason` explains a denial where RBAC can
/// (bindings naming roles that do not exist), empty otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { reason: String },
}

/// The rules of every ClusterRole, those with an `aggregationRule` getting
/// the rules of every other ClusterRole its selectors match, as the
/// clusterrole-aggregation controller writes them (here at evaluation
/// time, one level deep: an aggregated role contributes its own `rules`).
pub fn effective_cluster_roles(roles: &[ClusterRole]) -> BTreeMap<String, Vec<PolicyRule>> {
    roles
        .iter()
        .map(|role| {
            let name = role.metadata.name.clone().unwrap_or_default();
            let selectors = role
                .aggregation_rule
                .as_ref()
                .and_then(|rule| rule.cluster_role_selectors.as_ref());
            let rules = match selectors {
                None => role.rules.clone().unwrap_or_default(),
                Some(selectors) => aggregated_rules(&name, selectors, roles),
            };
            (name, rules)
        })
        .collect()
}

fn aggregated_rules(
    name: &str,
    selectors: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector],
    roles: &[ClusterRole],
) -> Vec<PolicyRule> {
    let selectors: Vec<LabelSelector> = selectors
        .iter()
        .filter_map(|s| LabelSelector::from_structured(s).ok())
        .collect();
    let mut rules: Vec<PolicyRule> = Vec::new();
    for role in roles {
        if role.metadata.name.as_deref() == Some(name) {
            continue;
        }
        let labels = role.metadata.labels.as_ref();
        if !selectors.iter().any(|s| s.matches_labels(labels)) {
            continue;
        }
        for rule in role.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    rules
}

/// Decides a request. The user's groups are taken as given (the
/// authenticator adds `system:authenticated` and the like).
pub fn authorize(policy: &Policy, user: &Identity, request: &RequestAttributes) -> Decision {
    let mut errors = Vec::new();
    for binding in &policy.cluster_role_bindings {
        if !binds(binding.subjects.as_deref(), user, "") {
            continue;
        }
        let role = &binding.role_ref;
        if role.kind != "ClusterRole" {
            continue;
        }
        match policy.cluster_roles.get(&role.name) {
            Some(rules) if rules.iter().any(|rule| allows(rule, request)) => {
                return Decision::Allow
            }
            Some(_) => {}
            None => errors.push(not_found("clusterrole", &role.name)),
        }
    }
    let namespace = match request {
        RequestAttributes::Resource(r) => r.namespace.as_str(),
        RequestAttributes::NonResource { .. } => "",
    };
    if !namespace.is_empty() {
        for binding in &policy.role_bindings {
            let binding_namespace = binding.metadata.namespace.as_deref().unwrap_or("");
            if binding_namespace != namespace
                || !binds(binding.subjects.as_deref(), user, namespace)
            {
                continue;
            }
            let role = &binding.role_ref;
            let (rules, kind) = match role.kind.as_str() {
                "Role" => (policy.roles.get(&role.name), "role"),
                "ClusterRole" => (policy.cluster_roles.get(&role.name), "clusterrole"),
                _ => continue,
            };
            match rules {
                Some(rules) if rules.iter().any(|rule| allows(rule, request)) => {
                    return Decision::Allow
                }
                Some(_) => {}
                None => errors.push(not_found(kind, &role.name)),
            }
        }
    }
    let reason = match errors.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    };
    Decision::Deny { reason }
}

fn not_found(kind: &str, name: &str) -> String {
    format!("{kind}.rbac.authorization.k8s.io \"{name}\" not found")
}

/// Whether a binding's subjects include the user; ServiceAccount subjects
/// without a namespace mean the binding's own (none for cluster bindings).
fn binds(subjects: Option<&[Subject]>, user: &Identity, namespace: &str) -> bool {
    subjects
        .into_iter()
        .flatten()
        .any(|subject| match subject.kind.as_str() {
            "User" => subject.name == user.name,
            "Group" => user.groups.contains(&subject.name),
            "ServiceAccount" => {
                let sa_namespace = subject
                    .namespace
                    .as_deref()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(namespace);
                !sa_namespace.is_empty()
                    && user.name == super::service_account_user(sa_namespace, &subject.name)
            }
            _ => false,
        })
}

/// Whether one rule covers the request.
pub fn allows(rule: &PolicyRule, request: &RequestAttributes) -> bool {
    let verb_matches = rule.verbs.iter().any(|v| v == "*" || v == request.verb());
    match request {
        RequestAttributes::Resource(r) => verb_matches && covers_resource(rule, r),
        RequestAttributes::NonResource { path, .. } => {
            verb_matches
                && rule
                    .non_resource_urls
                    .iter()
                    .flatten()
                    .any(|url| url_matches(url, path))
        }
    }
}

fn covers_resource(rule: &PolicyRule, request: &ResourceRequest) -> bool {
    let group_matches = rule
        .api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || *g == request.api_group);
    let combined = request.combined_resource();
    let resource_matches = rule.resources.iter().flatten().any(|resource| {
        resource == "*"
            || *resource == combined
            || (!request.subresource.is_empty()
                && resource.strip_prefix("*/") == Some(request.subresource.as_str()))
    });
    // Named rules never match a request without a name (list, create).
    let name_matches = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.contains(&request.name),
    };
    group_matches && resource_matches && name_matches
}

/// `*` matches every path, `/prefix*` every path under the prefix.
fn url_matches(rule_url: &str, path: &str) -> bool {
    rule_url == "*"
        || rule_url == path
        || (rule_url.ends_with('*') && path.starts_with(rule_url.trim_end_matches('*')))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use k8s_openapi::api::rbac::v1::{AggregationRule, RoleRef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use proptest::prelude::*;

    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let list = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: list(groups),
            resources: list(resources),
            resource_names: if names.is_empty() { None } else { list(names) },
            non_resource_urls: None,
        }
    }

    fn request(method: &str, path: &str) -> RequestAttributes {
        RequestAttributes::resolve(method, path, &HashMap::new())
    }

    fn service_account(namespace: &str, name: &str) -> Identity {
        Identity::service_account(namespace, name)
    }

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(str::to_string),
            api_group: None,
        }
    }

    fn role_binding(
        namespace: &str,
        kind: &str,
        role: &str,
        subjects: Vec<Subject>,
    ) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("{role}-binding")),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: kind.into(),
                name: role.into(),
            },
            subjects: Some(subjects),
        }
    }

    fn cluster_binding(role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(role.into()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(subjects),
        }
    }

    fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            rules: Some(rules),
            aggregation_rule: None,
        }
    }

    #[test]
    fn resources_subresources_and_wildcards() {
        let read = rule(&["get", "list"], &[""], &["services"], &[]);
        assert!(allows(
            &read,
            &request("GET", "/api/v1/namespaces/a/services")
        ));
        assert!(!allows(
            &read,
            &request("PATCH", "/api/v1/namespaces/a/services/web")
        ));
        assert!(!allows(
            &read,
            &request("GET", "/api/v1/namespaces/a/services/web/status")
        ));
        assert!(!allows(
            &read,
            &request("GET", "/apis/apps/v1/namespaces/a/services")
        ));
        let status = rule(&["patch"], &[""], &["services/status"], &[]);
        assert!(allows(
            &status,
            &request("PATCH", "/api/v1/namespaces/a/services/web/status")
        ));
        assert!(!allows(
            &status,
            &request("PATCH", "/api/v1/namespaces/a/services/web")
        ));
        let any_status = rule(&["patch"], &["*"], &["*/status"], &[]);
        assert!(allows(
            &any_status,
            &request(
                "PATCH",
                "/apis/networking.k8s.io/v1/namespaces/a/ingresses/i/status"
            )
        ));
        assert!(!allows(
            &any_status,
            &request("PATCH", "/api/v1/namespaces/a/pods/p/log")
        ));
        let everything = rule(&["*"], &["*"], &["*"], &[]);
        assert!(allows(
            &everything,
            &request("DELETE", "/api/v1/namespaces/a/pods/p/log")
        ));
    }

    #[test]
    fn resource_names_never_match_requests_without_a_name() {
        let named = rule(
            &["get", "list", "update", "create"],
            &["coordination.k8s.io"],
            &["leases"],
            &["leader"],
        );
        let path = "/apis/coordination.k8s.io/v1/namespaces/a/leases";
        assert!(allows(&named, &request("GET", &format!("{path}/leader"))));
        assert!(allows(&named, &request("PUT", &format!("{path}/leader"))));
        assert!(!allows(&named, &request("GET", &format!("{path}/other"))));
        assert!(!allows(&named, &request("GET", path)));
        assert!(!allows(&named, &request("POST", path)));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_trailing_star() {
        let discovery = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/api".into(), "/apis/*".into()]),
            ..PolicyRule::default()
        };
        assert!(allows(&discovery, &request("GET", "/api")));
        assert!(allows(&discovery, &request("GET", "/apis/apps/v1")));
        assert!(!allows(&discovery, &request("GET", "/api/v1")));
        assert!(!allows(&discovery, &request("POST", "/api")));
        assert!(!allows(
            &discovery,
            &request("GET", "/api/v1/namespaces/a/services")
        ));
    }

    #[test]
    fn role_bindings_grant_only_in_their_namespace() {
        let user = service_account("gatehouse", "controller");
        let policy = Policy {
            roles: [(
                "reader".to_string(),
                vec![rule(&["list"], &[""], &["services"], &[])],
            )]
            .into(),
            role_bindings: vec![role_binding(
                "gatehouse",
                "Role",
                "reader",
                vec![subject("ServiceAccount", "controller", None)],
            )],
            ..Policy::default()
        };
        let in_namespace = request("GET", "/api/v1/namespaces/gatehouse/services");
        assert_eq!(authorize(&policy, &user, &in_namespace), Decision::Allow);
        let other = service_account("other", "controller");
        assert_ne!(authorize(&policy, &other, &in_namespace), Decision::Allow);
        let cluster_wide = request("GET", "/api/v1/services");
        assert_ne!(authorize(&policy, &user, &cluster_wide), Decision::Allow);
    }

    #[test]
    fn cluster_role_bindings_need_namespaced_service_account_subjects() {
        let user = service_account("gatehouse", "controller");
        let roles = [cluster_role(
            "reader",
            &[],
            vec![rule(&["list"], &[""], &["services"], &[])],
        )];
        let mut policy = Policy {
            cluster_roles: effective_cluster_roles(&roles),
            cluster_role_bindings: vec![cluster_binding(
                "reader",
                vec![subject("ServiceAccount", "controller", None)],
            )],
            ..Policy::default()
        };
        let list = request("GET", "/api/v1/services");
        assert_ne!(authorize(&policy, &user, &list), Decision::Allow);
        policy.cluster_role_bindings = vec![cluster_binding(
            "reader",
            vec![subject("Group", "system:serviceaccounts:gatehouse", None)],
        )];
        assert_eq!(authorize(&policy, &user, &list), Decision::Allow);
    }

    #[test]
    fn missing_roles_are_named_in_the_denial() {
        let user = service_account("a", "sa");
        let policy = Policy {
            cluster_role_bindings: vec![cluster_binding(
                "gone",
                vec![subject("ServiceAccount", "sa", Some("a"))],
            )],
            role_bindings: vec![role_binding(
                "a",
                "Role",
                "missing",
                vec![subject("ServiceAccount", "sa", None)],
            )],
            ..Policy::default()
        };
        assert_eq!(
            authorize(&policy, &user, &request("GET", "/api/v1/namespaces/a/pods")),
            Decision::Deny {
                reason: "RBAC: [clusterrole.rbac.authorization.k8s.io \"gone\" not found, \
                         role.rbac.authorization.k8s.io \"missing\" not found]"
                    .into()
            }
        );
    }

    #[test]
    fn aggregated_roles_collect_the_rules_of_the_roles_they_select() {
        let mut aggregate = cluster_role("aggregate", &[], vec![]);
        aggregate.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some([("aggregate-to".to_string(), "me".to_string())].into()),
                    match_expressions: None,
                },
            ]),
        });
        let picked = rule(&["get"], &[""], &["services"], &[]);
        let roles = [
            aggregate,
            cluster_role("picked", &[("aggregate-to", "me")], vec![picked.clone()]),
            cluster_role("ignored", &[], vec![rule(&["*"], &["*"], &["*"], &[])]),
        ];
        let effective = effective_cluster_roles(&roles);
        assert_eq!(effective["aggregate"], vec![picked]);
    }

    proptest! {
        /// A rule naming exactly the request's verb, group and resource
        /// allows it; a rule for another verb never does.
        #[test]
        fn exact_rules_allow_and_other_verbs_do_not(
            verb in prop::sample::select(vec!["get", "list", "watch", "create", "update", "patch", "delete"]),
            group in "[a-z]{0,6}",
            resource in "[a-z]{1,8}",
            namespace in "[a-z]{1,6}",
            name in "[a-z]{0,6}",
        ) {
            let request = RequestAttributes::Resource(ResourceRequest {
                verb: verb.to_string(),
                api_group: group.clone(),
                api_version: "v1".into(),
                resource: resource.clone(),
                subresource: String::new(),
                namespace,
                name,
            });
            prop_assert!(allows(&rule(&[verb], &[&group], &[&resource], &[]), &request));
            prop_assert!(allows(&rule(&["*"], &["*"], &["*"], &[]), &request));
            prop_assert!(!allows(&rule(&["deletecollection"], &[&group], &[&resource], &[]), &request));
            let status = format!("{resource}/status");
            prop_assert!(!allows(&rule(&[verb], &[&group], &[&status], &[]), &request));
        }
    }
}

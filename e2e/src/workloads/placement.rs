//! Whether a Pod may run on a Node, as kube-scheduler's filters decide it
//! (and the DaemonSet controller, which asks the same questions): node
//! selector, required node affinity, taints and tolerations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};
use kube::ResourceExt;

/// Why a node does not fit (the scheduler's message fragments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Misfit {
    NodeSelector,
    UntoleratedTaint,
    HostPort,
}

impl Misfit {
    pub fn describe(self) -> &'static str {
        match self {
            Self::NodeSelector => "node(s) didn't match Pod's node affinity/selector",
            Self::UntoleratedTaint => "node(s) had untolerated taint",
            Self::HostPort => "node(s) didn't have free ports for the requested pod ports",
        }
    }
}

/// Selector, affinity and taints (everything but ports).
pub(crate) fn node_fits(spec: &PodSpec, node: &Node) -> Result<(), Misfit> {
    if !matches_selector(spec, node) {
        return Err(Misfit::NodeSelector);
    }
    if !tolerates_node(spec.tolerations.as_deref().unwrap_or_default(), node) {
        return Err(Misfit::UntoleratedTaint);
    }
    Ok(())
}

fn matches_selector(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.labels();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    // The terms are ORed; no required affinity at all matches every node.
    let affinity_ok = terms.is_none_or(|terms| {
        terms
            .iter()
            .any(|term| term_matches(term, labels, &node.name_any()))
    });
    selector_ok && affinity_ok
}

/// One term: all its expressions (on labels) and fields (on the name); an
/// empty term matches nothing, as upstream.
fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let fields_ok = fields.iter().all(|r| {
        let value = (r.key == "metadata.name").then_some(name);
        requirement_matches(r, value)
    });
    fields_ok
        && expressions
            .iter()
            .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) = (
                value.and_then(number),
                values.first().and_then(|s| number(s)),
            ) else {
                return false;
            };
            if requirement.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// Every NoSchedule/NoExecute taint tolerated; `spec.unschedulable` counts
/// as the `node.kubernetes.io/unschedulable:NoSchedule` taint it implies.
fn tolerates_node(tolerations: &[Toleration], node: &Node) -> bool {
    let spec = node.spec.as_ref();
    let cordon = spec
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
        .then(|| Taint {
            key: "node.kubernetes.io/unschedulable".to_string(),
            effect: "NoSchedule".to_string(),
            ..Default::default()
        });
    spec.and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .chain(cordon.as_ref())
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or_default();
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    let key_ok = match operator {
        // An empty key with Exists tolerates every taint.
        "Exists" => key.is_empty() || key == taint.key,
        "Equal" | "" => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    };
    effect_ok && key_ok
}

/// The host ports a Pod occupies: explicit `hostPort`s, and with
/// `hostNetwork` every container port (it binds them on the node).
pub(crate) fn host_ports(spec: &PodSpec) -> Vec<(String, i32)> {
    let host_network = spec.host_network.unwrap_or(false);
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p
                .host_port
                .filter(|h| *h > 0)
                .or(host_network.then_some(p.container_port))?;
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector, NodeSpec};
    use kube::api::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn requirement(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn with_affinity(terms: Vec<NodeSelectorTerm>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn affinity_expressions_and_fields() {
        let n = node("n1", &[("zone", "a"), ("size", "4")], vec![]);
        let expr = |r| NodeSelectorTerm {
            match_expressions: Some(vec![r]),
            match_fields: None,
        };
        for (req, want) in [
            (requirement("zone", "In", &["a", "b"]), true),
            (requirement("zone", "NotIn", &["a"]), false),
            (requirement("gpu", "NotIn", &["yes"]), true),
            (requirement("zone", "Exists", &[]), true),
            (requirement("zone", "DoesNotExist", &[]), false),
            (requirement("size", "Gt", &["3"]), true),
            (requirement("size", "Lt", &["3"]), false),
        ] {
            let spec = with_affinity(vec![expr(req.clone())]);
            assert_eq!(node_fits(&spec, &n).is_ok(), want, "{req:?}");
        }
        let pinned = |name: &str| NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.name", "In", &[name])]),
        };
        assert!(node_fits(&with_affinity(vec![pinned("n1")]), &n).is_ok());
        assert_eq!(
            node_fits(&with_affinity(vec![pinned("n2")]), &n),
            Err(Misfit::NodeSelector)
        );
        // Terms are ORed; an empty term matches nothing.
        assert!(node_fits(&with_affinity(vec![pinned("n2"), pinned("n1")]), &n).is_ok());
        assert!(node_fits(&with_affinity(vec![NodeSelectorTerm::default()]), &n).is_err());
    }

    #[test]
    fn taints_need_tolerations() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("lb".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let n = node("n1", &[], vec![taint]);
        let spec = |tolerations: Vec<Toleration>| PodSpec {
            tolerations: Some(tolerations),
            ..Default::default()
        };
        let t =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(Into::into),
                operator: Some(op.into()),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                ..Default::default()
            };
        assert_eq!(node_fits(&spec(vec![]), &n), Err(Misfit::UntoleratedTaint));
        assert!(node_fits(&spec(vec![t(None, "Exists", None, None)]), &n).is_ok());
        assert!(node_fits(
            &spec(vec![t(Some("dedicated"), "Equal", Some("lb"), None)]),
            &n
        )
        .is_ok());
        assert!(node_fits(
            &spec(vec![t(Some("dedicated"), "Equal", Some("x"), None)]),
            &n
        )
        .is_err());
        assert!(node_fits(
            &spec(vec![t(
                Some("dedicated"),
                "Exists",
                None,
                Some("NoExecute")
            )]),
            &n
        )
        .is_err());
        let prefer = node(
            "n2",
            &[],
            vec![Taint {
                key: "soft".into(),
                effect: "PreferNoSchedule".into(),
                ..Default::default()
            }],
        );
        assert!(node_fits(&spec(vec![]), &prefer).is_ok());
    }
}

//! One reconcile round over everything the allocator serves, as a plan of
//! writes. Pure: the caller gathers the objects and carries out the plan.
//!
//! Level-triggered: every round looks at every served Service, so nothing
//! depends on which change woke it. The allocator persists through a
//! leadership term (it holds what this leader assigned); a new term starts
//! from a fresh one restored from the Services' status, oldest first.

use super::convert::{pool_name, pool_spec, service_request, ClassFilter};
use super::pool_status::{self, PoolView};
use super::service_status::{self, ServiceStatusWrite, Verdict};
use crate::ipam::{Allocator, PoolIssue, PoolName, PoolSpec};
use crate::state::ObjectKey;
use gatehouse_crds::{IPPool, IPPoolStatus};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The objects a round reads.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub services: Vec<Arc<Service>>,
    pub pools: Vec<Arc<IPPool>>,
    pub namespaces: Vec<Arc<Namespace>>,
}

/// What a round decided.
#[derive(Debug, Default)]
pub struct Plan {
    pub services: Vec<(ObjectKey, ServiceStatusWrite)>,
    pub pools: Vec<(PoolName, IPPoolStatus)>,
    /// Every served Service's verdict (for metrics and Events).
    pub verdicts: BTreeMap<ObjectKey, Verdict>,
}

/// The allocator of one leadership term and the pools it was given.
#[derive(Debug, Default)]
pub struct Reconciler {
    filter: Option<ClassFilter>,
    term: Option<Term>,
}

#[derive(Debug)]
struct Term {
    allocator: Allocator,
    pools: BTreeMap<PoolName, PoolSpec>,
}

fn key_of(service: &Service) -> ObjectKey {
    ObjectKey::new(
        service.metadata.namespace.as_deref().unwrap_or_default(),
        service.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Oldest first, then namespace/name: the order that makes a restart
/// reproduce the assignment and the oldest Service win a contested address.
fn age_order(services: &mut [Arc<Service>]) {
    services.sort_by(|a, b| {
        let t = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b)).then_with(|| key_of(a).cmp(&key_of(b)))
    });
}

impl Reconciler {
    pub fn new(filter: ClassFilter) -> Reconciler {
        Reconciler {
            filter: Some(filter),
            term: None,
        }
    }

    /// The pools' counts and issues as the current term's allocator has them.
    pub fn pool_statuses(&self) -> Vec<crate::ipam::PoolStatus> {
        self.term
            .as_ref()
            .map(|t| t.allocator.pool_statuses())
            .unwrap_or_default()
    }

    /// Leadership ended: the next term restores from status again.
    pub fn end_term(&mut self) {
        self.term = None;
    }

    pub fn round(&mut self, inputs: &Inputs, now: Timestamp) -> Plan {
        let Some(filter) = self.filter.clone() else {
            return Plan::default();
        };
        let labels: BTreeMap<&str, BTreeMap<String, String>> = inputs
            .namespaces
            .iter()
            .filter_map(|n| {
                let name = n.metadata.name.as_deref()?;
                Some((name, n.metadata.labels.clone().unwrap_or_default()))
            })
            .collect();
        let mut specs: BTreeMap<PoolName, PoolSpec> = BTreeMap::new();
        let mut refused: BTreeMap<PoolName, PoolIssue> = BTreeMap::new();
        for pool in &inputs.pools {
            match pool_spec(pool) {
                Ok(spec) => {
                    specs.insert(pool_name(pool), spec);
                }
                Err(issue) => {
                    refused.insert(pool_name(pool), issue);
                }
            }
        }

        let mut services = inputs.services.clone();
        age_order(&mut services);
        let (served, others): (Vec<_>, Vec<_>) =
            services.into_iter().partition(|s| filter.serves(s));
        let no_labels = BTreeMap::new();
        let requests: Vec<_> = served
            .iter()
            .map(|s| {
                let ns = s.metadata.namespace.as_deref().unwrap_or_default();
                (s, service_request(s, labels.get(ns).unwrap_or(&no_labels)))
            })
            .collect();

        let term = match &mut self.term {
            Some(term) => {
                if term.pools != specs {
                    term.allocator.set_pools(specs.clone());
                    term.pools = specs;
                }
                term
            }
            None => {
                let mut allocator = Allocator::new();
                allocator.set_pools(specs.clone());
                for (service, request) in &requests {
                    let addresses = service_status::status_addresses(service);
                    if let (Ok(req), false) = (request, addresses.is_empty()) {
                        let restored = allocator.restore(req, &addresses);
                        for (ip, why) in restored.dropped {
                            tracing::warn!(service = %req.key, %ip, "not keeping the address the Service's status shows: {why}");
                        }
                    }
                }
                self.term.insert(Term {
                    allocator,
                    pools: specs,
                })
            }
        };

        // Releases first, so what they free is there for this round's assigns.
        let served_keys: BTreeSet<ObjectKey> = requests
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(s, _)| key_of(s))
            .collect();
        let held: Vec<ObjectKey> = term.allocator.services().map(|(k, _)| k.clone()).collect();
        for key in held.iter().filter(|k| !served_keys.contains(*k)) {
            term.allocator.release(key);
        }
        let mut verdicts: BTreeMap<ObjectKey, Verdict> = BTreeMap::new();
        // A second pass gives a Service that failed the first one what a
        // later Service's change freed.
        for pass in 0..2 {
            let mut freed = false;
            for (service, request) in &requests {
                let key = key_of(service);
                if pass == 1 && !matches!(verdicts.get(&key), Some(Verdict::Failed(_))) {
                    continue;
                }
                let verdict = match request {
                    Err(e) => Verdict::Invalid {
                        reason: e.reason(),
                        message: e.to_string(),
                    },
                    Ok(req) => {
                        let before = term.allocator.assignment(&req.key).map(|a| a.ips());
                        let result = term.allocator.assign(req);
                        let after = result.as_ref().map(|a| a.ips()).unwrap_or_default();
                        if before.is_some_and(|b| b.iter().any(|ip| !after.contains(ip))) {
                            freed = true;
                        }
                        match result {
                            Ok(a) => Verdict::Allocated(a),
                            Err(e) => Verdict::Failed(e),
                        }
                    }
                };
                verdicts.insert(key, verdict);
            }
            let failed = verdicts.values().any(|v| matches!(v, Verdict::Failed(_)));
            if !(freed && failed) {
                break;
            }
        }

        let mut plan = Plan::default();
        for service in &served {
            let key = key_of(service);
            if let Some(write) = verdicts
                .get(&key)
                .and_then(|v| service_status::plan_served(service, v, now))
            {
                plan.services.push((key, write));
            }
        }
        for service in &others {
            if let Some(write) = service_status::plan_released(service) {
                plan.services.push((key_of(service), write));
            }
        }
        let statuses: BTreeMap<PoolName, _> = term
            .allocator
            .pool_statuses()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        for pool in &inputs.pools {
            let name = pool_name(pool);
            let view = match (refused.get(&name), statuses.get(&name)) {
                (Some(issue), _) => PoolView::Refused(issue),
                (None, Some(status)) => PoolView::Known(status),
                (None, None) => continue,
            };
            if let Some(status) = pool_status::plan(pool, view, now) {
                plan.pools.push((name, status));
            }
        }
        plan.verdicts = verdicts;
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn filter() -> ClassFilter {
        ClassFilter {
            class: "gatehouse.dev/lb".into(),
            default_class: true,
        }
    }

    fn service(ns: &str, name: &str, created: i64, extra: &str) -> Arc<Service> {
        let mut s: Service = serde_yaml::from_str(&format!(
            "metadata: {{name: {name}, namespace: {ns}, resourceVersion: '1'}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]{extra}}}"
        ))
        .unwrap();
        s.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        Arc::new(s)
    }

    fn pool(name: &str, addresses: &[&str]) -> Arc<IPPool> {
        Arc::new(IPPool::new(
            name,
            gatehouse_crds::IPPoolSpec {
                addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
                auto_assign: true,
                avoid_buggy_ips: false,
                service_allocation: None,
                l2_advertisement: None,
            },
        ))
    }

    /// Applies a round's writes to the inputs, as the API server would.
    fn apply(inputs: &mut Inputs, plan: &Plan) {
        for (key, write) in &plan.services {
            for s in inputs.services.iter_mut() {
                if key_of(s) == *key {
                    let mut next = (**s).clone();
                    next.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
                        load_balancer: Some(k8s_openapi::api::core::v1::LoadBalancerStatus {
                            ingress: Some(write.ingress.clone()),
                        }),
                        conditions: Some(write.conditions.clone()),
                    });
                    *s = Arc::new(next);
                }
            }
        }
        for (name, status) in &plan.pools {
            for p in inputs.pools.iter_mut() {
                if pool_name(p) == *name {
                    let mut next = (**p).clone();
                    next.status = Some(status.clone());
                    *p = Arc::new(next);
                }
            }
        }
    }

    fn ips(inputs: &Inputs, name: &str) -> Vec<String> {
        let s = inputs
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap();
        service_status::status_addresses(s)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn oldest_service_wins_the_last_address_and_a_release_hands_it_on() {
        let mut inputs = Inputs {
            services: vec![service("b", "young", 20, ""), service("a", "old", 10, "")],
            pools: vec![pool("one", &["192.0.2.1/32"])],
            namespaces: vec![],
        };
        let mut r = Reconciler::new(filter());
        let plan = r.round(&inputs, Timestamp::UNIX_EPOCH);
        assert!(matches!(
            plan.verdicts[&ObjectKey::new("b", "young")],
            Verdict::Failed(_)
        ));
        apply(&mut inputs, &plan);
        assert_eq!(ips(&inputs, "old"), vec!["192.0.2.1"]);
        assert!(ips(&inputs, "young").is_empty());
        assert_eq!(inputs.pools[0].status.as_ref().unwrap().assigned_ipv4, 1);
        // Nothing changed: nothing to write.
        let plan = r.round(&inputs, Timestamp::UNIX_EPOCH);
        assert!(
            plan.services.is_empty() && plan.pools.is_empty(),
            "{plan:?}"
        );
        // The old one stops being a LoadBalancer: its address goes to the young one.
        inputs.services[1] = service("a", "old", 10, ", type: ClusterIP");
        let plan = r.round(&inputs, Timestamp::UNIX_EPOCH);
        apply(&mut inputs, &plan);
        assert_eq!(ips(&inputs, "young"), vec!["192.0.2.1"]);
    }

    #[test]
    fn a_new_term_restores_status_instead_of_reallocating() {
        let mut inputs = Inputs {
            services: vec![service("a", "s1", 10, ""), service("a", "s2", 20, "")],
            pools: vec![pool("one", &["192.0.2.0/29"])],
            namespaces: vec![],
        };
        let mut r = Reconciler::new(filter());
        let plan = r.round(&inputs, Timestamp::UNIX_EPOCH);
        apply(&mut inputs, &plan);
        let s1 = ips(&inputs, "s1");
        let s2 = ips(&inputs, "s2");
        assert_ne!(s1, s2);
        // s1 is deleted, a new s3 comes: a new leader must not move s2.
        inputs.services.remove(0);
        inputs.services.push(service("a", "s3", 30, ""));
        let mut next = Reconciler::new(filter());
        let plan = next.round(&inputs, Timestamp::UNIX_EPOCH);
        apply(&mut inputs, &plan);
        assert_eq!(ips(&inputs, "s2"), s2);
        assert_eq!(ips(&inputs, "s3"), s1, "the lowest free address again");
    }

    #[test]
    fn services_of_another_class_are_never_touched() {
        let inputs = Inputs {
            services: vec![service(
                "a",
                "theirs",
                10,
                ", loadBalancerClass: other.example/lb",
            )],
            pools: vec![pool("one", &["192.0.2.0/29"])],
            namespaces: vec![],
        };
        let plan = Reconciler::new(filter()).round(&inputs, Timestamp::UNIX_EPOCH);
        assert!(plan.services.is_empty());
        assert!(plan.verdicts.is_empty());
    }
}

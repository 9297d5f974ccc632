//! Which Ingresses need a status write, and what to write: pure.
//!
//! Served Ingresses get the gateway's addresses in
//! `status.loadBalancer.ingress`. An Ingress we do not serve (another
//! class, or no longer ours) is cleared only if its status holds exactly our
//! addresses, so another controller's status is never touched.

use crate::state::ObjectKey;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress, IngressPortStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Where the addresses come from (`--publish-service` or `--publish-address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishSource {
    /// The gateway Service's own `status.loadBalancer.ingress`.
    Service(ObjectKey),
    /// Fixed IPs or hostnames.
    Addresses(Vec<String>),
}

/// The addresses to publish, sorted.
pub fn desired_addresses(
    source: &PublishSource,
    service: Option<&Service>,
) -> Vec<IngressLoadBalancerIngress> {
    let mut out: Vec<IngressLoadBalancerIngress> = match source {
        PublishSource::Addresses(list) => list
            .iter()
            .map(|a| match a.parse::<IpAddr>() {
                Ok(ip) => IngressLoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ..IngressLoadBalancerIngress::default()
                },
                Err(_) => IngressLoadBalancerIngress {
                    hostname: Some(a.clone()),
                    ..IngressLoadBalancerIngress::default()
                },
            })
            .collect(),
        PublishSource::Service(_) => service
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .map(|i| IngressLoadBalancerIngress {
                ip: i.ip.clone(),
                hostname: i.hostname.clone(),
                ports: i.ports.as_ref().map(|ports| {
                    ports
                        .iter()
                        .map(|p| IngressPortStatus {
                            port: p.port,
                            protocol: p.protocol.clone(),
                            error: p.error.clone(),
                        })
                        .collect()
                }),
            })
            .collect(),
    };
    out.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    out.dedup();
    out
}

/// One status write.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    pub ingress: ObjectKey,
    /// The resourceVersion the write is conditional on.
    pub resource_version: String,
    /// Empty: clear.
    pub addresses: Vec<IngressLoadBalancerIngress>,
}

fn current(ing: &Ingress) -> Vec<IngressLoadBalancerIngress> {
    let mut v = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    v.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    v
}

/// The writes that bring every Ingress's status where it should be.
pub fn plan(
    ingresses: &BTreeMap<ObjectKey, Arc<Ingress>>,
    served: &BTreeSet<ObjectKey>,
    desired: &[IngressLoadBalancerIngress],
) -> Vec<StatusWrite> {
    let mut writes = Vec::new();
    for (key, ing) in ingresses {
        let now = current(ing);
        let target = if served.contains(key) {
            desired
        } else if !now.is_empty() && now == desired {
            &[][..]
        } else {
            continue;
        };
        if now != target {
            writes.push(StatusWrite {
                ingress: key.clone(),
                resource_version: ing.metadata.resource_version.clone().unwrap_or_default(),
                addresses: target.to_vec(),
            });
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
    use k8s_openapi::api::networking::v1::{IngressLoadBalancerStatus, IngressStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ingress(name: &str, ips: &[&str]) -> (ObjectKey, Arc<Ingress>) {
        let status = (!ips.is_empty()).then(|| IngressStatus {
            load_balancer: Some(IngressLoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| IngressLoadBalancerIngress {
                            ip: Some((*ip).into()),
                            ..IngressLoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
        });
        let ing = Ingress {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            status,
            ..Ingress::default()
        };
        (ObjectKey::new("ns", name), Arc::new(ing))
    }

    fn addrs(list: &[&str]) -> Vec<IngressLoadBalancerIngress> {
        desired_addresses(
            &PublishSource::Addresses(list.iter().map(|s| s.to_string()).collect()),
            None,
        )
    }

    #[test]
    fn addresses_from_flags_are_ips_or_hostnames_sorted() {
        let a = addrs(&["lb.example.com", "10.0.0.2", "10.0.0.1", "10.0.0.1"]);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].hostname.as_deref(), Some("lb.example.com"));
        assert_eq!(a[1].ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn addresses_from_the_publish_service_status() {
        let svc = Service {
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some("192.0.2.7".into()),
                        ..LoadBalancerIngress::default()
                    }]),
                }),
                ..ServiceStatus::default()
            }),
            ..Service::default()
        };
        let source = PublishSource::Service(ObjectKey::new("gh", "gateway"));
        let a = desired_addresses(&source, Some(&svc));
        assert_eq!(a[0].ip.as_deref(), Some("192.0.2.7"));
        assert!(desired_addresses(&source, None).is_empty());
    }

    #[test]
    fn plan_cases() {
        let ours = addrs(&["10.0.0.1"]);
        struct Case {
            name: &'static str,
            ips: &'static [&'static str],
            served: bool,
            want: Option<&'static [&'static str]>,
        }
        #[rustfmt::skip]
        let cases = [
            Case { name: "served_without_status_gets_it", ips: &[], served: true, want: Some(&["10.0.0.1"]) },
            Case { name: "served_with_it_needs_nothing", ips: &["10.0.0.1"], served: true, want: None },
            Case { name: "served_with_stale_address_is_updated", ips: &["10.9.9.9"], served: true, want: Some(&["10.0.0.1"]) },
            Case { name: "no_longer_ours_is_cleared", ips: &["10.0.0.1"], served: false, want: Some(&[]) },
            Case { name: "other_controllers_status_is_left_alone", ips: &["10.9.9.9"], served: false, want: None },
            Case { name: "not_ours_without_status_is_left_alone", ips: &[], served: false, want: None },
        ];
        for case in cases {
            let (key, ing) = ingress(case.name, case.ips);
            let ingresses: BTreeMap<_, _> = [(key.clone(), ing)].into();
            let served: BTreeSet<_> = if case.served {
                [key.clone()].into()
            } else {
                BTreeSet::new()
            };
            let writes = plan(&ingresses, &served, &ours);
            let want: Vec<StatusWrite> = case
                .want
                .map(|w| StatusWrite {
                    ingress: key,
                    resource_version: "7".into(),
                    addresses: addrs(w),
                })
                .into_iter()
                .collect();
            assert_eq!(writes, want, "{}", case.name);
        }
    }

    #[test]
    fn served_ingresses_are_cleared_when_the_gateway_has_no_address() {
        let (key, ing) = ingress("a", &["10.0.0.1"]);
        let writes = plan(&[(key.clone(), ing)].into(), &[key].into(), &[]);
        assert_eq!(writes.len(), 1);
        assert!(writes[0].addresses.is_empty());
    }
}

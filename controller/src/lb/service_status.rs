//! What a served Service's status should say, and whether that needs a
//! write: `status.loadBalancer.ingress` (one entry per address, `ipMode:
//! VIP`) and our condition, next to any conditions others own. Pure.

use crate::ipam::{AssignError, Assignment};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The condition type this controller owns on Services.
pub const CONDITION_TYPE: &str = "gatehouse.dev/IPAllocated";
/// `ipMode` of our addresses: traffic reaches the node with the address as
/// its destination (the gateway or kube-proxy handles it there).
pub const IP_MODE: &str = "VIP";

/// The allocator's answer for one Service, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allocated(Assignment),
    /// The Service's own request cannot be read (annotations, spec).
    Invalid {
        reason: &'static str,
        message: String,
    },
    Failed(AssignError),
}

/// Our condition, as the Service should carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    pub allocated: bool,
    pub reason: String,
    pub message: String,
}

impl Verdict {
    pub fn addresses(&self) -> Vec<std::net::IpAddr> {
        match self {
            Verdict::Allocated(a) => a.ips(),
            _ => Vec::new(),
        }
    }

    pub fn condition(&self) -> DesiredCondition {
        match self {
            Verdict::Allocated(a) => {
                let listed = a
                    .addresses
                    .iter()
                    .map(|x| match &x.pool {
                        Some(p) => format!("{} (pool {p})", x.ip),
                        None => x.ip.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let warnings: Vec<String> = a
                    .addresses
                    .iter()
                    .flat_map(|x| x.warnings.iter().map(ToString::to_string))
                    .chain(
                        a.missing
                            .iter()
                            .map(|m| format!("no {} address: {}", m.family, m.error)),
                    )
                    .collect();
                let reason = if let Some(w) = a.addresses.iter().find_map(|x| x.warnings.first()) {
                    w.reason()
                } else if !a.missing.is_empty() {
                    "PartiallyAllocated"
                } else {
                    "Allocated"
                };
                let mut message = format!("assigned {listed}");
                if !warnings.is_empty() {
                    message.push_str("; ");
                    message.push_str(&warnings.join("; "));
                }
                DesiredCondition {
                    allocated: true,
                    reason: reason.to_owned(),
                    message,
                }
            }
            Verdict::Invalid { reason, message } => DesiredCondition {
                allocated: false,
                reason: (*reason).to_owned(),
                message: message.clone(),
            },
            Verdict::Failed(e) => DesiredCondition {
                allocated: false,
                reason: e.reason().to_owned(),
                message: e.to_string(),
            },
        }
    }
}

/// A status write for one Service: the whole `ingress` list and the whole
/// `conditions` list (a merge patch replaces lists), conditional on the
/// resourceVersion it was planned from.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatusWrite {
    pub resource_version: String,
    pub ingress: Vec<LoadBalancerIngress>,
    pub conditions: Vec<Condition>,
    /// Whether our condition changes (worth an Event).
    pub condition_changed: bool,
}

fn ingress_of(ips: &[std::net::IpAddr]) -> Vec<LoadBalancerIngress> {
    ips.iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ip_mode: Some(IP_MODE.to_owned()),
            ..LoadBalancerIngress::default()
        })
        .collect()
}

fn current_ingress(service: &Service) -> Vec<LoadBalancerIngress> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
}

fn current_conditions(service: &Service) -> Vec<Condition> {
    service
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// The addresses a Service's status shows now (what a new leader restores).
pub fn status_addresses(service: &Service) -> Vec<std::net::IpAddr> {
    current_ingress(service)
        .iter()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// Whether the Service carries our condition (we wrote its status).
pub fn has_our_condition(service: &Service) -> bool {
    current_conditions(service)
        .iter()
        .any(|c| c.type_ == CONDITION_TYPE)
}

/// The write that makes a served Service's status say `verdict`, or `None`
/// when it already does.
pub fn plan_served(
    service: &Service,
    verdict: &Verdict,
    now: Timestamp,
) -> Option<ServiceStatusWrite> {
    let desired = verdict.condition();
    let ingress = ingress_of(&verdict.addresses());
    let generation = service.metadata.generation;
    let mut conditions = current_conditions(service);
    let existing = conditions.iter().position(|c| c.type_ == CONDITION_TYPE);
    let status = if desired.allocated { "True" } else { "False" };
    let unchanged_condition = existing.is_some_and(|i| {
        let c = &conditions[i];
        c.status == status
            && c.reason == desired.reason
            && c.message == desired.message
            && c.observed_generation == generation
    });
    if unchanged_condition && current_ingress(service) == ingress {
        return None;
    }
    let transition = match existing {
        Some(i) if conditions[i].status == status => conditions[i].last_transition_time.clone(),
        _ => Time(now),
    };
    let ours = Condition {
        type_: CONDITION_TYPE.to_owned(),
        status: status.to_owned(),
        reason: desired.reason,
        message: desired.message,
        observed_generation: generation,
        last_transition_time: transition,
    };
    match existing {
        Some(i) => conditions[i] = ours,
        None => conditions.push(ours),
    }
    Some(ServiceStatusWrite {
        resource_version: service
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
        ingress,
        conditions,
        condition_changed: !unchanged_condition,
    })
}

/// The write that takes our addresses and condition off a Service that is
/// no longer ours (type or class changed), or `None` if it has neither.
pub fn plan_released(service: &Service) -> Option<ServiceStatusWrite> {
    if !has_our_condition(service) {
        return None;
    }
    let conditions = current_conditions(service)
        .into_iter()
        .filter(|c| c.type_ != CONDITION_TYPE)
        .collect();
    Some(ServiceStatusWrite {
        resource_version: service
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
        ingress: Vec::new(),
        conditions,
        condition_changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{AssignedAddress, Family, PoolName, PoolNames};
    use k8s_openapi::api::core::v1::{LoadBalancerStatus, ServiceStatus};

    fn service() -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("shop".into());
        s.metadata.resource_version = Some("7".into());
        s.metadata.generation = Some(2);
        s
    }

    fn allocated(ip: &str) -> Verdict {
        Verdict::Allocated(Assignment {
            addresses: vec![AssignedAddress {
                ip: ip.parse().unwrap(),
                pool: Some(PoolName::new("blue")),
                shared_with: vec![],
                warnings: vec![],
            }],
            missing: vec![],
        })
    }

    fn applied(mut s: Service, w: &ServiceStatusWrite) -> Service {
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(w.ingress.clone()),
            }),
            conditions: Some(w.conditions.clone()),
        });
        s
    }

    fn foreign() -> Condition {
        Condition {
            type_: "example.com/Other".into(),
            status: "True".into(),
            reason: "Fine".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn an_allocation_is_written_once_with_vip_mode_and_foreign_conditions_kept() {
        let mut s = service();
        s.status = Some(ServiceStatus {
            conditions: Some(vec![foreign()]),
            ..ServiceStatus::default()
        });
        let now = Timestamp::from_second(1_000).unwrap();
        let w = plan_served(&s, &allocated("192.0.2.1"), now).unwrap();
        assert_eq!(w.resource_version, "7");
        assert_eq!(w.ingress.len(), 1);
        assert_eq!(w.ingress[0].ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(w.ingress[0].ip_mode.as_deref(), Some("VIP"));
        assert_eq!(w.conditions.len(), 2);
        assert_eq!(w.conditions[0], foreign());
        let ours = &w.conditions[1];
        assert_eq!(
            (ours.status.as_str(), ours.reason.as_str()),
            ("True", "Allocated")
        );
        assert_eq!(ours.message, "assigned 192.0.2.1 (pool blue)");
        assert_eq!(ours.observed_generation, Some(2));
        assert!(w.condition_changed);
        let s = applied(s, &w);
        assert_eq!(
            status_addresses(&s),
            vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );
        // Level-triggered: the same verdict again writes nothing.
        assert_eq!(plan_served(&s, &allocated("192.0.2.1"), now), None);
    }

    #[test]
    fn a_failure_clears_addresses_and_keeps_the_transition_time_while_false() {
        let s = applied(
            service(),
            &plan_served(&service(), &allocated("192.0.2.1"), Timestamp::UNIX_EPOCH).unwrap(),
        );
        let exhausted = Verdict::Failed(AssignError::PoolExhausted {
            family: Family::V4,
            pools: PoolNames(vec![PoolName::new("blue")]),
        });
        let t1 = Timestamp::from_second(10).unwrap();
        let w = plan_served(&s, &exhausted, t1).unwrap();
        assert!(w.ingress.is_empty());
        let c = &w.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "PoolExhausted")
        );
        assert_eq!(c.last_transition_time, Time(t1));
        let s = applied(s, &w);
        let other = Verdict::Invalid {
            reason: "InvalidRequest",
            message: "bad".into(),
        };
        let w = plan_served(&s, &other, Timestamp::from_second(20).unwrap()).unwrap();
        assert_eq!(
            w.conditions[0].last_transition_time,
            Time(t1),
            "still False"
        );
        assert_eq!(w.conditions[0].reason, "InvalidRequest");
    }

    #[test]
    fn a_released_service_loses_only_what_we_wrote() {
        assert_eq!(plan_released(&service()), None, "never ours: untouched");
        let mut s = applied(
            service(),
            &plan_served(&service(), &allocated("192.0.2.1"), Timestamp::UNIX_EPOCH).unwrap(),
        );
        if let Some(st) = s.status.as_mut() {
            st.conditions
                .get_or_insert_with(Vec::new)
                .insert(0, foreign());
        }
        let w = plan_released(&s).unwrap();
        assert!(w.ingress.is_empty());
        assert_eq!(w.conditions, vec![foreign()]);
    }
}

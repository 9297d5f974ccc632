//! What a Service asks of the allocator, converted by the reconciler from
//! the Service, its namespace and its annotations. No Kubernetes types: the
//! reconciler parses annotations and `spec.loadBalancerIP` into addresses
//! and names, and passes them here.

use super::error::AssignError;
use super::family::Family;
use super::pool::PoolName;
use super::selector::Labels;
use crate::state::ObjectKey;
use std::fmt;
use std::net::IpAddr;

/// A Service's `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FamilyPolicy {
    /// One address, of the first of `ip_families`.
    #[default]
    SingleStack,
    /// One address of each listed family if it can get them; what it can
    /// get otherwise (the first family preferred), at least one.
    PreferDualStack,
    /// One address of each family, or none.
    RequireDualStack,
}

/// A Service's sharing key (`gatehouse.dev/allow-shared-ip` or MetalLB's
/// `allow-shared-ip`). Never empty: an empty annotation means no sharing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharingKey(String);

impl SharingKey {
    /// `None` for the empty string, which allows no sharing (as MetalLB).
    pub fn new(key: impl Into<String>) -> Option<SharingKey> {
        let key = key.into();
        (!key.is_empty()).then_some(SharingKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SharingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Service port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// A (protocol, port) a Service listens on at its load-balancer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    pub protocol: Protocol,
    pub port: u16,
}

impl ServicePort {
    pub fn new(protocol: Protocol, port: u16) -> ServicePort {
        ServicePort { protocol, port }
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// A Service's `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// Everything the allocator needs to know about one LoadBalancer Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    pub key: ObjectKey,
    /// Labels of the Service's namespace (for `namespace_selectors`).
    pub namespace_labels: Labels,
    /// The Service's own labels (for `service_selectors`).
    pub labels: Labels,
    pub family_policy: FamilyPolicy,
    /// `spec.ipFamilies` as the API server filled it in, primary first.
    /// Empty means `[IPv4]`.
    pub ip_families: Vec<Family>,
    /// Exact addresses asked for (load-balancer-IPs annotations or
    /// `spec.loadBalancerIP`), at most one per family. If any are given the
    /// Service gets exactly these and nothing automatic.
    pub requested_ips: Vec<IpAddr>,
    /// A pool asked for by name (`gatehouse.dev/ip-pool` or MetalLB's
    /// `address-pool`).
    pub requested_pool: Option<PoolName>,
    pub sharing_key: Option<SharingKey>,
    pub ports: Vec<ServicePort>,
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector` (matters for sharing under the `Local` policy).
    pub selector: Labels,
}

impl ServiceRequest {
    /// A single-stack IPv4, Cluster-policy request with nothing else set.
    pub fn new(key: ObjectKey) -> ServiceRequest {
        ServiceRequest {
            key,
            namespace_labels: Labels::new(),
            labels: Labels::new(),
            family_policy: FamilyPolicy::SingleStack,
            ip_families: Vec::new(),
            requested_ips: Vec::new(),
            requested_pool: None,
            sharing_key: None,
            ports: Vec::new(),
            traffic_policy: TrafficPolicy::Cluster,
            selector: Labels::new(),
        }
    }

    /// Whether the Service itself is unchanged, i.e. everything but its
    /// namespace's labels is equal (ports and requested addresses compared
    /// as sets). Addresses that
    /// no longer fit the pools stay with a Service until it changes.
    pub(crate) fn same_service(&self, other: &ServiceRequest) -> bool {
        let ports = |r: &ServiceRequest| {
            let mut p = r.ports.clone();
            p.sort();
            p.dedup();
            p
        };
        let ips = |r: &ServiceRequest| {
            let mut p = r.requested_ips.clone();
            p.sort();
            p
        };
        self.key == other.key
            && self.labels == other.labels
            && self.family_policy == other.family_policy
            && self.ip_families == other.ip_families
            && ips(self) == ips(other)
            && self.requested_pool == other.requested_pool
            && self.sharing_key == other.sharing_key
            && self.traffic_policy == other.traffic_policy
            && self.selector == other.selector
            && ports(self) == ports(other)
    }
}

/// The families a request resolves to, and whether all are required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// One or two distinct families, primary first.
    pub families: Vec<Family>,
    /// RequireDualStack and SingleStack: every family or nothing.
    pub all_required: bool,
}

impl ServiceRequest {
    /// Resolves `ipFamilies`/`ipFamilyPolicy` and checks the requested
    /// addresses against them.
    pub(crate) fn wanted(&self) -> Result<Wanted, AssignError> {
        let invalid = || AssignError::InvalidIpFamilies {
            policy: self.family_policy,
            families: self.ip_families.clone(),
        };
        let listed: Vec<Family> = match self.ip_families.as_slice() {
            [] => vec![Family::V4],
            [a] => vec![*a],
            [a, b] if a != b => vec![*a, *b],
            _ => return Err(invalid()),
        };
        let wanted = match self.family_policy {
            FamilyPolicy::SingleStack => Wanted {
                families: listed[..1].to_vec(),
                all_required: true,
            },
            FamilyPolicy::PreferDualStack => Wanted {
                families: listed,
                all_required: false,
            },
            FamilyPolicy::RequireDualStack if listed.len() == 2 => Wanted {
                families: listed,
                all_required: true,
            },
            FamilyPolicy::RequireDualStack => return Err(invalid()),
        };
        let mut seen: Vec<IpAddr> = Vec::new();
        for ip in &self.requested_ips {
            let family = Family::of(*ip);
            if !wanted.families.contains(&family) {
                return Err(AssignError::RequestedFamilyNotWanted { ip: *ip, family });
            }
            if let Some(first) = seen.iter().find(|s| Family::of(**s) == family) {
                if first != ip {
                    return Err(AssignError::DuplicateRequestedFamily {
                        family,
                        first: *first,
                        second: *ip,
                    });
                }
            }
            seen.push(*ip);
        }
        if !seen.is_empty() && wanted.all_required {
            if let Some(missing) = wanted
                .families
                .iter()
                .find(|f| !seen.iter().any(|s| Family::of(*s) == **f))
            {
                return Err(AssignError::RequestedIpsIncomplete { missing: *missing });
            }
        }
        Ok(wanted)
    }

    /// The requested address of a family, if any.
    pub(crate) fn requested(&self, family: Family) -> Option<IpAddr> {
        self.requested_ips
            .iter()
            .copied()
            .find(|ip| Family::of(*ip) == family)
    }
}

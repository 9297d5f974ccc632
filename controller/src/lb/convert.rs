//! Kubernetes objects into the allocator's terms: which Services are ours,
//! a Service (with its namespace's labels) into a [`ServiceRequest`], an
//! IPPool into a [`PoolSpec`]. Pure; every refusal is typed.

use crate::ipam::{
    Family, FamilyPolicy, LabelRequirement, LabelSelector, Labels, PoolIssue, PoolName, PoolSpec,
    Protocol, SelectorError, SelectorList, SelectorOperator, ServiceAllocation, ServicePort,
    ServiceRequest, SharingKey, TrafficPolicy,
};
use crate::state::ObjectKey;
use gatehouse_crds::IPPool;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as KubeSelector;
use std::net::IpAddr;
use thiserror::Error;

/// Annotations that ask for exact addresses (comma-separated), ours first.
pub const IPS_ANNOTATIONS: [&str; 3] = [
    "gatehouse.dev/load-balancer-ips",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
/// Annotations that ask for a pool by name.
pub const POOL_ANNOTATIONS: [&str; 3] = [
    "gatehouse.dev/ip-pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// Annotations that name a sharing key.
pub const SHARING_ANNOTATIONS: [&str; 3] = [
    "gatehouse.dev/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];

/// Which Services the allocator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFilter {
    /// `--load-balancer-class`.
    pub class: String,
    /// Whether Services without `spec.loadBalancerClass` are ours too
    /// (unless `--no-default-load-balancer-class`).
    pub default_class: bool,
}

impl ClassFilter {
    /// `type: LoadBalancer` with our class, or with none if we are the
    /// default.
    pub fn serves(&self, service: &Service) -> bool {
        let Some(spec) = &service.spec else {
            return false;
        };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return false;
        }
        match &spec.load_balancer_class {
            Some(class) => *class == self.class,
            None => self.default_class,
        }
    }
}

/// Why a Service's request cannot be read. The Service gets no address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("annotation {annotation}: {value:?} is not an IP address")]
    BadAddress { annotation: String, value: String },
    #[error("spec.loadBalancerIP: {0:?} is not an IP address")]
    BadLoadBalancerIp(String),
    #[error("annotations {first} and {second} ask for different addresses")]
    ConflictingAddresses { first: String, second: String },
    #[error("annotations {first} and {second} name different pools")]
    ConflictingPools { first: String, second: String },
    #[error("annotations {first} and {second} name different sharing keys")]
    ConflictingSharingKeys { first: String, second: String },
    #[error("spec.ipFamilies: unknown family {0:?} (IPv4, IPv6)")]
    UnknownFamily(String),
    #[error("spec.ipFamilyPolicy: unknown policy {0:?} (SingleStack, PreferDualStack, RequireDualStack)")]
    UnknownFamilyPolicy(String),
    #[error("spec.ports[{index}]: unknown protocol {protocol:?}")]
    UnknownProtocol { index: usize, protocol: String },
    #[error("spec.ports[{index}]: port {port} is out of range")]
    BadPort { index: usize, port: i32 },
}

impl RequestError {
    /// The condition and Event reason.
    pub fn reason(&self) -> &'static str {
        "InvalidRequest"
    }
}

/// The allocator's view of a served Service.
pub fn service_request(
    service: &Service,
    namespace_labels: &Labels,
) -> Result<ServiceRequest, RequestError> {
    let meta = &service.metadata;
    let key = ObjectKey::new(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    );
    let mut req = ServiceRequest::new(key);
    req.namespace_labels = namespace_labels.clone();
    req.labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let annotation = |names: &[&str; 3]| -> Vec<(String, String)> {
        names
            .iter()
            .filter_map(|n| {
                annotations
                    .get(*n)
                    .map(|v| ((*n).to_owned(), v.trim().to_owned()))
            })
            .collect()
    };

    let Some(spec) = &service.spec else {
        return Ok(req);
    };
    req.family_policy = match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack") => FamilyPolicy::SingleStack,
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        Some(other) => return Err(RequestError::UnknownFamilyPolicy(other.to_owned())),
    };
    for family in spec.ip_families.iter().flatten() {
        req.ip_families.push(match family.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            other => return Err(RequestError::UnknownFamily(other.to_owned())),
        });
    }
    req.traffic_policy = match spec.external_traffic_policy.as_deref() {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    req.selector = spec.selector.clone().unwrap_or_default();
    for (index, port) in spec.ports.iter().flatten().enumerate() {
        let protocol = match port.protocol.as_deref() {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            Some(other) => {
                return Err(RequestError::UnknownProtocol {
                    index,
                    protocol: other.to_owned(),
                })
            }
        };
        let number =
            u16::try_from(port.port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or(RequestError::BadPort {
                    index,
                    port: port.port,
                })?;
        req.ports.push(ServicePort::new(protocol, number));
    }

    req.requested_ips = requested_ips(
        &annotation(&IPS_ANNOTATIONS),
        spec.load_balancer_ip.as_deref(),
    )?;
    req.requested_pool = agree(&annotation(&POOL_ANNOTATIONS), |first, second| {
        RequestError::ConflictingPools { first, second }
    })?
    .filter(|p| !p.is_empty())
    .map(PoolName::new);
    req.sharing_key = agree(&annotation(&SHARING_ANNOTATIONS), |first, second| {
        RequestError::ConflictingSharingKeys { first, second }
    })?
    .and_then(SharingKey::new);
    Ok(req)
}

/// The value all given annotations agree on; refuses disagreement.
fn agree(
    given: &[(String, String)],
    conflict: impl Fn(String, String) -> RequestError,
) -> Result<Option<String>, RequestError> {
    let Some((first_name, first)) = given.first() else {
        return Ok(None);
    };
    if let Some((name, _)) = given.iter().find(|(_, v)| v != first) {
        return Err(conflict(first_name.clone(), name.clone()));
    }
    Ok(Some(first.clone()))
}

/// Addresses from the annotations (all that are given must ask for the
/// same set) or, failing those, the deprecated `spec.loadBalancerIP`.
fn requested_ips(
    given: &[(String, String)],
    load_balancer_ip: Option<&str>,
) -> Result<Vec<IpAddr>, RequestError> {
    let mut chosen: Option<(&str, Vec<IpAddr>)> = None;
    for (name, value) in given {
        let mut ips = Vec::new();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let ip = part
                .parse::<IpAddr>()
                .map_err(|_| RequestError::BadAddress {
                    annotation: name.clone(),
                    value: part.to_owned(),
                })?;
            ips.push(ip);
        }
        ips.sort();
        ips.dedup();
        match &chosen {
            Some((first, earlier)) if *earlier != ips => {
                return Err(RequestError::ConflictingAddresses {
                    first: (*first).to_owned(),
                    second: name.clone(),
                })
            }
            Some(_) => {}
            None => chosen = Some((name.as_str(), ips)),
        }
    }
    if let Some((_, ips)) = chosen {
        return Ok(ips);
    }
    match load_balancer_ip.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse::<IpAddr>()
            .map(|ip| vec![ip])
            .map_err(|_| RequestError::BadLoadBalancerIp(s.to_owned())),
        None => Ok(Vec::new()),
    }
}

/// An IPPool's spec for the allocator, or the issue that makes it unusable
/// before the allocator sees it (a selector that cannot be expressed).
pub fn pool_spec(pool: &IPPool) -> Result<PoolSpec, PoolIssue> {
    let spec = &pool.spec;
    let service_allocation = match &spec.service_allocation {
        None => None,
        Some(a) => Some(ServiceAllocation {
            priority: a.priority.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
            namespaces: a.namespaces.clone(),
            namespace_selectors: selectors(&a.namespace_selectors, SelectorList::Namespace)?,
            service_selectors: selectors(&a.service_selectors, SelectorList::Service)?,
        }),
    };
    Ok(PoolSpec {
        addresses: spec.addresses.clone(),
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        service_allocation,
    })
}

fn selectors(list: &[KubeSelector], which: SelectorList) -> Result<Vec<LabelSelector>, PoolIssue> {
    list.iter()
        .enumerate()
        .map(|(index, s)| {
            selector(s).map_err(|error| PoolIssue::InvalidSelector {
                list: which,
                index,
                error,
            })
        })
        .collect()
}

/// Converts a `metav1.LabelSelector` into the matcher (the speaker uses it
/// for pools' node selectors too).
pub(crate) fn selector(s: &KubeSelector) -> Result<LabelSelector, SelectorError> {
    let match_expressions = s
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            SelectorOperator::from_parts(&e.key, &e.operator, e.values.clone().unwrap_or_default())
                .map(|operator| LabelRequirement {
                    key: e.key.clone(),
                    operator,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions,
    })
}

/// The pool's name as the allocator knows it.
pub fn pool_name(pool: &IPPool) -> PoolName {
    PoolName::new(pool.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).unwrap()
    }

    const BASE: &str = "
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80}, {port: 53, protocol: UDP}]
";

    fn with(extra_meta: &str, extra_spec: &str) -> Service {
        let mut s = service(BASE);
        if !extra_meta.is_empty() {
            let a: BTreeMap<String, String> = serde_yaml::from_str(extra_meta).unwrap();
            s.metadata.annotations = Some(a);
        }
        if !extra_spec.is_empty() {
            let mut v = serde_json::to_value(&s).unwrap();
            let patch: serde_json::Value = serde_yaml::from_str(extra_spec).unwrap();
            for (k, val) in patch.as_object().unwrap() {
                v["spec"][k] = val.clone();
            }
            s = serde_json::from_value(v).unwrap();
        }
        s
    }

    fn filter(default_class: bool) -> ClassFilter {
        ClassFilter {
            class: "gatehouse.dev/lb".into(),
            default_class,
        }
    }

    #[test]
    fn serves_load_balancers_of_our_class_and_classless_ones_when_default() {
        assert!(filter(true).serves(&with("", "")));
        assert!(!filter(false).serves(&with("", "")));
        assert!(filter(false).serves(&with("", "loadBalancerClass: gatehouse.dev/lb")));
        assert!(!filter(true).serves(&with("", "loadBalancerClass: other.example/lb")));
        assert!(!filter(true).serves(&with("", "type: ClusterIP")));
        assert!(!filter(true).serves(&with("", "type: NodePort")));
    }

    #[test]
    fn reads_families_ports_policy_and_selector() {
        let s = with(
            "",
            "{ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv6, IPv4], externalTrafficPolicy: Local}",
        );
        let r = service_request(&s, &Labels::new()).unwrap();
        assert_eq!(r.key, ObjectKey::new("shop", "web"));
        assert_eq!(r.family_policy, FamilyPolicy::RequireDualStack);
        assert_eq!(r.ip_families, vec![Family::V6, Family::V4]);
        assert_eq!(r.traffic_policy, TrafficPolicy::Local);
        assert_eq!(
            r.ports,
            vec![
                ServicePort::new(Protocol::Tcp, 80),
                ServicePort::new(Protocol::Udp, 53)
            ]
        );
        assert_eq!(r.selector.get("app").map(String::as_str), Some("web"));
        assert!(
            r.requested_ips.is_empty() && r.requested_pool.is_none() && r.sharing_key.is_none()
        );
    }

    #[test]
    fn metallb_and_gatehouse_annotations_are_equivalent() {
        for (ips, pool, share) in [
            (
                "gatehouse.dev/load-balancer-ips",
                "gatehouse.dev/ip-pool",
                "gatehouse.dev/allow-shared-ip",
            ),
            (
                "metallb.io/loadBalancerIPs",
                "metallb.io/address-pool",
                "metallb.io/allow-shared-ip",
            ),
            (
                "metallb.universe.tf/loadBalancerIPs",
                "metallb.universe.tf/address-pool",
                "metallb.universe.tf/allow-shared-ip",
            ),
        ] {
            let s = with(
                &format!("{{'{ips}': '192.0.2.10, 2001:db8::10', '{pool}': blue, '{share}': k1}}"),
                "",
            );
            let r = service_request(&s, &Labels::new()).unwrap();
            let want: Vec<IpAddr> = vec![
                "192.0.2.10".parse().unwrap(),
                "2001:db8::10".parse().unwrap(),
            ];
            assert_eq!(r.requested_ips, want, "{ips}");
            assert_eq!(r.requested_pool, Some(PoolName::new("blue")), "{pool}");
            assert_eq!(r.sharing_key, SharingKey::new("k1"), "{share}");
        }
    }

    #[test]
    fn load_balancer_ip_is_used_only_without_annotations() {
        let s = with("", "loadBalancerIP: 192.0.2.7");
        let r = service_request(&s, &Labels::new()).unwrap();
        assert_eq!(
            r.requested_ips,
            vec!["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        let s = with(
            "{'metallb.io/loadBalancerIPs': 192.0.2.8}",
            "loadBalancerIP: 192.0.2.7",
        );
        let r = service_request(&s, &Labels::new()).unwrap();
        assert_eq!(
            r.requested_ips,
            vec!["192.0.2.8".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn refuses_what_it_cannot_read_one_way() {
        let cases = [
            with("{'gatehouse.dev/load-balancer-ips': '192.0.2.300'}", ""),
            with(
                "{'gatehouse.dev/load-balancer-ips': 192.0.2.1, 'metallb.io/loadBalancerIPs': 192.0.2.2}",
                "",
            ),
            with("{'gatehouse.dev/ip-pool': a, 'metallb.universe.tf/address-pool': b}", ""),
            with("{'gatehouse.dev/allow-shared-ip': a, 'metallb.io/allow-shared-ip': b}", ""),
            with("", "loadBalancerIP: nope"),
            with("", "ipFamilies: [IPv5]"),
            with("", "ipFamilyPolicy: MaybeDualStack"),
            with("", "ports: [{port: 80, protocol: QUIC}]"),
            with("", "ports: [{port: 70000}]"),
        ];
        for s in cases {
            let err = service_request(&s, &Labels::new()).unwrap_err();
            assert_eq!(err.reason(), "InvalidRequest");
        }
        // The same address twice, in any spelling order, is one request.
        let s = with(
            "{'gatehouse.dev/load-balancer-ips': '192.0.2.1,2001:db8::1', 'metallb.io/loadBalancerIPs': '2001:db8::1, 192.0.2.1'}",
            "",
        );
        assert_eq!(
            service_request(&s, &Labels::new())
                .unwrap()
                .requested_ips
                .len(),
            2
        );
    }

    #[test]
    fn pools_convert_field_by_field_and_bad_selectors_are_pool_issues() {
        let pool: IPPool = serde_yaml::from_str(
            "
apiVersion: gatehouse.dev/v1alpha1
kind: IPPool
metadata: {name: blue}
spec:
  addresses: [192.0.2.0/28]
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 5
    namespaces: [shop]
    namespaceSelectors: [{matchLabels: {env: prod}}]
    serviceSelectors: [{matchExpressions: [{key: app, operator: In, values: [web]}]}]
",
        )
        .unwrap();
        let spec = pool_spec(&pool).unwrap();
        assert_eq!(pool_name(&pool), PoolName::new("blue"));
        assert!(!spec.auto_assign && spec.avoid_buggy_ips);
        let a = spec.service_allocation.unwrap();
        assert_eq!(a.priority, 5);
        assert_eq!(a.namespaces, vec!["shop".to_owned()]);
        let mut prod = Labels::new();
        prod.insert("env".into(), "prod".into());
        assert!(a.namespace_selectors[0].matches(&prod));
        let mut web = Labels::new();
        web.insert("app".into(), "web".into());
        assert!(a.service_selectors[0].matches(&web));

        let mut bad = pool.clone();
        if let Some(a) = bad.spec.service_allocation.as_mut() {
            a.service_selectors[0].match_expressions.as_mut().unwrap()[0].operator = "Near".into();
        }
        let issue = pool_spec(&bad).unwrap_err();
        assert!(issue.is_fatal());
        assert_eq!(issue.reason(), "InvalidSelector");
    }
}

//! When two Services may hold the same address.
//!
//! The rule (MetalLB's, with one deliberate difference):
//! 1. both have a sharing key, and the keys are equal;
//! 2. no (protocol, port) of one is a (protocol, port) of the other;
//! 3. their traffic policies agree: two `Cluster` Services may share; two
//!    `Local` Services only if their pod selectors are equal and not empty;
//!    a `Local` and a `Cluster` Service never.
//!
//! Why 3: a `Local` address is announced only from a node with a ready
//! endpoint of the Service, so every `Local` Service on one address must
//! have its endpoints on the same nodes, which equal selectors give. MetalLB
//! compares a "backend key" (the selector for `Local`, empty for `Cluster`),
//! so a `Local` Service *without* a selector counts as `Cluster` there and
//! may share with anything; here it shares with nothing, since nothing says
//! its hand-made endpoints sit where the others' do.
//!
//! A Service that is the only holder of its address may change its key,
//! ports or policy and keep the address (as in MetalLB): rules apply between
//! different Services only.

use super::request::{ServicePort, ServiceRequest, SharingKey, TrafficPolicy};
use super::selector::Labels;
use crate::state::ObjectKey;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a Service may not join the holders of an address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShareDenied {
    #[error("this Service has no sharing key")]
    RequesterNotSharing,
    #[error("the holders have no sharing key")]
    HoldersNotSharing,
    #[error("the holders' sharing key is {theirs:?}, this Service's is {ours:?}")]
    DifferentKey {
        theirs: SharingKey,
        ours: SharingKey,
    },
    #[error("port {port} is already used there by {by}")]
    PortInUse { port: ServicePort, by: ObjectKey },
    #[error("externalTrafficPolicy differs: Local Services share only with Local Services")]
    TrafficPolicyDiffers,
    #[error("Local Services share only if they select the same pods; the selectors differ")]
    SelectorDiffers,
    #[error("a Local Service without a pod selector cannot share")]
    LocalWithoutSelector,
}

impl ShareDenied {
    /// True when the keys already forbid sharing (the address is simply
    /// someone else's), false when the keys agree but the Services clash.
    pub fn is_key_mismatch(&self) -> bool {
        matches!(
            self,
            ShareDenied::RequesterNotSharing
                | ShareDenied::HoldersNotSharing
                | ShareDenied::DifferentKey { .. }
        )
    }
}

/// What holders of one address have in common: the sharing key and the
/// policy part of the rule. Equal for every holder of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShareClass {
    pub key: Option<SharingKey>,
    pub policy: TrafficPolicy,
    /// Only kept for `Local`.
    pub selector: Labels,
}

impl ShareClass {
    pub fn of(req: &ServiceRequest) -> ShareClass {
        ShareClass {
            key: req.sharing_key.clone(),
            policy: req.traffic_policy,
            selector: match req.traffic_policy {
                TrafficPolicy::Local => req.selector.clone(),
                TrafficPolicy::Cluster => Labels::new(),
            },
        }
    }
}

/// Whether `req` may join an address whose other holders have `class` and
/// use `ports` (port → holder; `req`'s own entries are ignored).
pub(crate) fn may_join(
    class: &ShareClass,
    ports: &BTreeMap<ServicePort, ObjectKey>,
    req: &ServiceRequest,
) -> Result<(), ShareDenied> {
    let ours = req
        .sharing_key
        .as_ref()
        .ok_or(ShareDenied::RequesterNotSharing)?;
    let theirs = class.key.as_ref().ok_or(ShareDenied::HoldersNotSharing)?;
    if ours != theirs {
        return Err(ShareDenied::DifferentKey {
            theirs: theirs.clone(),
            ours: ours.clone(),
        });
    }
    match (class.policy, req.traffic_policy) {
        (TrafficPolicy::Cluster, TrafficPolicy::Cluster) => {}
        (TrafficPolicy::Local, TrafficPolicy::Local) => {
            if req.selector.is_empty() || class.selector.is_empty() {
                return Err(ShareDenied::LocalWithoutSelector);
            }
            if req.selector != class.selector {
                return Err(ShareDenied::SelectorDiffers);
            }
        }
        _ => return Err(ShareDenied::TrafficPolicyDiffers),
    }
    for port in &req.ports {
        if let Some(by) = ports.get(port).filter(|by| **by != req.key) {
            return Err(ShareDenied::PortInUse {
                port: *port,
                by: by.clone(),
            });
        }
    }
    Ok(())
}

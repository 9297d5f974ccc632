//! Why an assignment failed, with what a Service condition message and an
//! Event need. `reason()` gives the condition reason.

use super::family::Family;
use super::pool::{PoolIssue, PoolName};
use super::request::FamilyPolicy;
use super::sharing::ShareDenied;
use crate::state::ObjectKey;
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// Holders of an address, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holders(pub Vec<ObjectKey>);

impl fmt::Display for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

/// Pool names, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNames(pub Vec<PoolName>);

impl fmt::Display for PoolNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why a Service got no (or not every required) address. After an error
/// the Service holds no address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AssignError {
    /// `ipFamilies` does not fit `ipFamilyPolicy` (e.g. RequireDualStack
    /// with one family, a family listed twice).
    #[error("ipFamilies {families:?} do not fit ipFamilyPolicy {policy:?}")]
    InvalidIpFamilies {
        policy: FamilyPolicy,
        families: Vec<Family>,
    },
    #[error("requested address {ip} is {family}, which is not in the Service's ipFamilies")]
    RequestedFamilyNotWanted { ip: IpAddr, family: Family },
    #[error("requested addresses {first} and {second} are both {family}: at most one per family")]
    DuplicateRequestedFamily {
        family: Family,
        first: IpAddr,
        second: IpAddr,
    },
    #[error("the Service needs an {missing} address too, but requests none")]
    RequestedIpsIncomplete { missing: Family },
    #[error("pool {pool} does not exist")]
    UnknownPool { pool: PoolName },
    #[error("pool {pool} is invalid: {issue}")]
    PoolInvalid { pool: PoolName, issue: PoolIssue },
    #[error("pool {pool} does not serve this Service (its serviceAllocation excludes the namespace or labels)")]
    PoolNotAllowed { pool: PoolName, ip: Option<IpAddr> },
    #[error("pool {pool} has no {family} addresses")]
    PoolLacksFamily { pool: PoolName, family: Family },
    #[error("no pool with {family} addresses serves this Service automatically")]
    NoPoolMatches { family: Family },
    #[error("no free {family} address in pool(s) {pools}")]
    PoolExhausted { family: Family, pools: PoolNames },
    #[error("requested address {ip} is not in any pool{}", avoided_by.as_ref().map(|p| format!(" (pool {p} avoids .0 and .255 addresses)")).unwrap_or_default())]
    RequestedIpNotInAnyPool {
        ip: IpAddr,
        avoided_by: Option<PoolName>,
    },
    #[error("requested address {ip} is in pool {actual}, not in the requested pool {requested}")]
    RequestedIpNotInRequestedPool {
        ip: IpAddr,
        requested: PoolName,
        actual: PoolName,
    },
    /// The address is someone else's: the sharing keys forbid sharing.
    #[error("requested address {ip} is in use by {holders}: {reason}")]
    RequestedIpTaken {
        ip: IpAddr,
        holders: Holders,
        reason: ShareDenied,
    },
    /// The sharing keys agree but the Services clash (ports, policy).
    #[error("requested address {ip} is shared by {holders}, but cannot be shared with this Service: {reason}")]
    SharingConflict {
        ip: IpAddr,
        holders: Holders,
        reason: ShareDenied,
    },
}

impl AssignError {
    /// The condition reason (CamelCase, as Kubernetes conditions have).
    pub fn reason(&self) -> &'static str {
        match self {
            AssignError::InvalidIpFamilies { .. } => "InvalidIPFamilies",
            AssignError::RequestedFamilyNotWanted { .. } => "RequestedIPFamilyMismatch",
            AssignError::DuplicateRequestedFamily { .. } => "RequestedIPFamilyMismatch",
            AssignError::RequestedIpsIncomplete { .. } => "RequestedIPFamilyMismatch",
            AssignError::UnknownPool { .. } => "UnknownPool",
            AssignError::PoolInvalid { .. } => "PoolInvalid",
            AssignError::PoolNotAllowed { .. } => "PoolNotAllowed",
            AssignError::PoolLacksFamily { .. } => "NoPoolMatches",
            AssignError::NoPoolMatches { .. } => "NoPoolMatches",
            AssignError::PoolExhausted { .. } => "PoolExhausted",
            AssignError::RequestedIpNotInAnyPool { .. } => "RequestedIPNotInAnyPool",
            AssignError::RequestedIpNotInRequestedPool { .. } => "RequestedIPNotInRequestedPool",
            AssignError::RequestedIpTaken { .. } => "RequestedIPTaken",
            AssignError::SharingConflict { .. } => "SharingConflict",
        }
    }

    /// The family the failure is about, where it is about one.
    pub fn family(&self) -> Option<Family> {
        match self {
            AssignError::RequestedFamilyNotWanted { family, .. }
            | AssignError::DuplicateRequestedFamily { family, .. }
            | AssignError::PoolLacksFamily { family, .. }
            | AssignError::NoPoolMatches { family }
            | AssignError::PoolExhausted { family, .. } => Some(*family),
            AssignError::RequestedIpsIncomplete { missing } => Some(*missing),
            AssignError::RequestedIpNotInAnyPool { ip, .. }
            | AssignError::RequestedIpNotInRequestedPool { ip, .. }
            | AssignError::RequestedIpTaken { ip, .. }
            | AssignError::SharingConflict { ip, .. } => Some(Family::of(*ip)),
            AssignError::PoolNotAllowed { ip, .. } => ip.map(Family::of),
            AssignError::InvalidIpFamilies { .. }
            | AssignError::UnknownPool { .. }
            | AssignError::PoolInvalid { .. } => None,
        }
    }
}

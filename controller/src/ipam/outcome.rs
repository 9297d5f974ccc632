//! What the allocator reports back: a Service's addresses (with warnings
//! for addresses it keeps although the pools would no longer give them),
//! what a restore could not take over, and per-pool usage.

use super::error::{AssignError, Holders};
use super::family::Family;
use super::pool::{PoolIssue, PoolName};
use super::sharing::ShareDenied;
use crate::state::ObjectKey;
use std::net::IpAddr;
use thiserror::Error;

/// The addresses a Service holds, primary family first (the order for
/// `status.loadBalancer.ingress`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub addresses: Vec<AssignedAddress>,
    /// PreferDualStack families the Service wanted but could not get this
    /// time, with why (it is retried on every `assign`).
    pub missing: Vec<MissingFamily>,
}

impl Assignment {
    pub fn ips(&self) -> Vec<IpAddr> {
        self.addresses.iter().map(|a| a.ip).collect()
    }

    /// Whether any address is kept only because the Service has not
    /// changed (the reconciler sets a condition saying so).
    pub fn has_warnings(&self) -> bool {
        self.addresses.iter().any(|a| !a.warnings.is_empty())
    }
}

/// One address of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedAddress {
    pub ip: IpAddr,
    /// The pool it lies in now (`None`: outside every pool).
    pub pool: Option<PoolName>,
    /// Other Services holding the same address.
    pub shared_with: Vec<ObjectKey>,
    /// Why the current pools would not give this address to the Service.
    /// The address stays until the Service changes, and no other Service
    /// gets it meanwhile.
    pub warnings: Vec<HoldWarning>,
}

/// Why an address a Service keeps would not be given to it now.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HoldWarning {
    /// Its pool shrank, was deleted or became invalid.
    #[error("{0} is no longer in any pool")]
    NotInAnyPool(IpAddr),
    /// Its pool now avoids `.0`/`.255` addresses.
    #[error("{ip} is avoided by pool {pool} (avoidBuggyIPs)")]
    AvoidedByPool { ip: IpAddr, pool: PoolName },
    /// The pool's `serviceAllocation` no longer includes the Service.
    #[error("pool {pool} of {ip} no longer serves this Service")]
    PoolExcludesService { ip: IpAddr, pool: PoolName },
    /// The Service asks for another pool than the one the address is in.
    #[error("{ip} is in pool {actual}, not in the requested pool {requested}")]
    NotInRequestedPool {
        ip: IpAddr,
        requested: PoolName,
        actual: PoolName,
    },
}

impl HoldWarning {
    pub fn reason(&self) -> &'static str {
        match self {
            HoldWarning::NotInAnyPool(_) => "AddressNotInAnyPool",
            HoldWarning::AvoidedByPool { .. } => "AddressAvoidedByPool",
            HoldWarning::PoolExcludesService { .. } => "PoolExcludesService",
            HoldWarning::NotInRequestedPool { .. } => "AddressNotInRequestedPool",
        }
    }
}

/// A family a PreferDualStack Service did not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFamily {
    pub family: Family,
    pub error: AssignError,
}

/// Result of [`super::Allocator::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restored {
    /// What the Service holds now.
    pub assignment: Assignment,
    /// Status addresses that were not taken over.
    pub dropped: Vec<(IpAddr, RestoreDrop)>,
}

/// Why a status address was not taken over on restore. Only the Service's
/// own spec or an earlier Service's claim drops an address; the pools never
/// do (see [`HoldWarning`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreDrop {
    #[error("the Service's request is invalid: {0}")]
    InvalidRequest(AssignError),
    #[error("{0} is not in the Service's ipFamilies")]
    FamilyNotWanted(Family),
    #[error("the Service already has an {0} address")]
    DuplicateFamily(Family),
    #[error("the Service requests other addresses")]
    NotRequested,
    /// An earlier restored Service holds it and may not share it.
    #[error("held by {holders}: {reason}")]
    HeldByOther {
        holders: Holders,
        reason: ShareDenied,
    },
}

/// Usage of one family in one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamilyUsage {
    /// Addresses the pool may hand out (after overlaps and avoided ones);
    /// saturates at `u128::MAX`.
    pub capacity: u128,
    /// Distinct addresses held (a shared address counts once).
    pub assigned: u128,
    pub free: u128,
}

/// A pool's state, for its status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    pub name: PoolName,
    /// False if a fatal issue makes the pool unusable.
    pub valid: bool,
    pub issues: Vec<PoolIssue>,
    pub ipv4: FamilyUsage,
    pub ipv6: FamilyUsage,
}

impl PoolStatus {
    pub fn family(&self, family: Family) -> FamilyUsage {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }
}

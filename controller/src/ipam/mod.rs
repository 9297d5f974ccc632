//! Load-balancer address allocation (IPAM): pure, no I/O, no Kubernetes
//! types. The leader-only Service reconciler converts IPPools into
//! [`PoolSpec`]s and Services into [`ServiceRequest`]s, drives an
//! [`Allocator`], and writes what it returns into Service status,
//! conditions and Events, and IPPool status.
//!
//! # How the reconciler drives it
//!
//! 1. On becoming leader: a fresh [`Allocator`], [`Allocator::set_pools`]
//!    with every IPPool, then [`Allocator::restore`] for every served
//!    Service that has addresses in `status.loadBalancer.ingress`, then
//!    [`Allocator::assign`] for every served Service.
//! 2. Afterwards: `assign` on every change of a served Service (and for
//!    all of them after `set_pools` on any IPPool change: a new pool may
//!    satisfy a waiting Service); [`Allocator::release`] when a Service is
//!    deleted, stops being `type: LoadBalancer` or changes to a class that
//!    is not ours.
//!
//! **Order.** Feed Services oldest first: by `metadata.creationTimestamp`,
//! then namespace/name. The allocator is deterministic (same calls in the
//! same order, same result), so that order makes a restart reproduce the
//! assignment, and makes the oldest Service win when two claim the same
//! address or the last free one.
//!
//! # Rules
//!
//! **Pool choice** for a Service without requested addresses, per family:
//! the requested pool alone if it names one (`auto_assign` does not matter
//! then); otherwise the valid `auto_assign` pools with addresses of that
//! family whose `serviceAllocation` serves the Service, ordered: pools with
//! a `serviceAllocation` before those without (MetalLB's order), then by
//! `priority` (lower first, 0 = none = last), then the pool with the most
//! free addresses, then by name. A Service with a sharing key first joins an
//! address already held under its key in one of those pools (best pool,
//! then lowest address) if sharing allows; otherwise it gets the lowest free
//! address of the first pool that has one. A pool's `serviceAllocation`
//! restricts explicit requests too (a requested pool or address in a pool
//! that does not serve the Service is refused).
//!
//! **Families.** `SingleStack`: the first of `ipFamilies`.
//! `RequireDualStack`: one address of each family or none.
//! `PreferDualStack`: each listed family it can get, at least one; a missing
//! family is retried on every `assign`. Each family is chosen on its own, so
//! a dual-stack Service may get its IPv4 and IPv6 addresses from different
//! pools (MetalLB needs one pool with both). Requested addresses (at most one
//! per family, each of a listed family) are exact: the Service gets those
//! and nothing automatic; RequireDualStack must request both.
//!
//! **Sharing**: see [`sharing`](self::sharing) (same key, no common
//! (protocol, port), `Local` only with `Local` of equal non-empty selector).
//!
//! **Overlap**: see [`pool`](self::pool) (the pool whose name sorts first
//! keeps the overlap; the other loses only the overlapping part).
//!
//! **Addresses that no longer fit** (pool shrank, deleted, invalid, now
//! avoiding `.0`/`.255`, no longer serving the Service, another pool
//! requested): they stay with their Service while the Service is unchanged
//! (namespace label changes do not count as changes), reported as
//! [`HoldWarning`]s for a condition, and are never given to another Service
//! while held. When the Service changes, they are replaced.
//!
//! **Failures** leave the failing Service without addresses and every other
//! Service untouched.

mod allocator;
mod error;
mod family;
mod free;
mod outcome;
mod pool;
mod range;
mod request;
mod selector;
pub mod sharing;

pub use allocator::Allocator;
pub use error::{AssignError, Holders, PoolNames};
pub use family::Family;
pub use outcome::{
    AssignedAddress, Assignment, FamilyUsage, HoldWarning, MissingFamily, PoolStatus, RestoreDrop,
    Restored,
};
pub use pool::{PoolIssue, PoolName, PoolSpec, SelectorList, ServiceAllocation};
pub use range::{AddressRange, RangeError};
pub use request::{FamilyPolicy, Protocol, ServicePort, ServiceRequest, SharingKey, TrafficPolicy};
pub use selector::{LabelRequirement, LabelSelector, Labels, SelectorError, SelectorOperator};
pub use sharing::ShareDenied;

#[cfg(test)]
mod tests;

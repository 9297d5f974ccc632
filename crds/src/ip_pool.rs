//! `IPPool` (`gatehouse.dev/v1alpha1`, cluster-scoped): addresses that
//! Gatehouse hands out to `type: LoadBalancer` Services. Shaped after
//! MetalLB's `IPAddressPool` so that pools carry over field by field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The CEL rule `addresses` must pass: every entry a CIDR, or a range of two
/// addresses of one family. (Whether a range's first address comes before
/// its last is checked by the controller: the pool's `Valid` condition.)
pub const ADDRESS_RULE: &str = "self.all(a, isCIDR(a) || (a.split('-').size() == 2 && isIP(a.split('-')[0].trim()) && isIP(a.split('-')[1].trim()) && ip(a.split('-')[0].trim()).family() == ip(a.split('-')[1].trim()).family()))";
pub const ADDRESS_MESSAGE: &str = "each address must be a CIDR (192.0.2.0/24, 2001:db8::/120) or a range of two addresses of one family (192.0.2.10-192.0.2.20)";

/// Addresses Gatehouse may assign to LoadBalancer Services.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "IPPool",
    plural = "ippools",
    shortname = "ippool",
    status = "IPPoolStatus",
    doc = "An IPPool: addresses Gatehouse assigns to LoadBalancer Services.",
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#,
    printcolumn = r#"{"name":"Auto assign","type":"boolean","jsonPath":".spec.autoAssign"}"#,
    printcolumn = r#"{"name":"Assigned v4","type":"integer","jsonPath":".status.assignedIPv4"}"#,
    printcolumn = r#"{"name":"Available v4","type":"integer","jsonPath":".status.availableIPv4"}"#,
    printcolumn = r#"{"name":"Valid","type":"string","jsonPath":".status.conditions[?(@.type==\"Valid\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// The addresses of the pool: CIDRs (`192.0.2.0/24`, `2001:db8::/120`)
    /// and ranges (`192.0.2.10-192.0.2.20`), IPv4 and IPv6 in any mix.
    #[schemars(length(min = 1, max = 64), inner(length(max = 100)))]
    #[x_kube(validation = Rule::new(ADDRESS_RULE).message(ADDRESS_MESSAGE))]
    pub addresses: Vec<String>,

    /// Whether Services get addresses from this pool without asking for it
    /// (by pool name or address). `false` keeps a pool for explicit requests.
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// Never assign addresses ending in `.0` or `.255` (IPv4), which some
    /// old routers and clients drop.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,

    /// Which Services the pool serves, and its precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,

    /// How the speakers announce the pool's addresses on the LAN (ARP for
    /// IPv4, NDP for IPv6). Absent: from every eligible node, on every
    /// interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2_advertisement: Option<L2Advertisement>,
}

/// Where a pool's addresses are announced, after MetalLB's L2Advertisement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2Advertisement {
    /// `false`: no speaker announces this pool's addresses (another router
    /// does, or they are reached some other way).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Only nodes matched by one of these selectors (on the Node's labels)
    /// announce; every node when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub node_selectors: Vec<LabelSelector>,
    /// Only on these network interfaces (by name); every interface that is
    /// up and has a MAC address when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 15)))]
    pub interfaces: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// Which Services a pool serves (all, when absent).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Pools with a lower number are tried first; pools without a priority
    /// come after all pools with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,
    /// Only Services in these namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only Services in namespaces these selectors match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Only Services these selectors match (on the Service's labels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// What the controller observed about a pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// IPv4 addresses assigned to Services.
    #[serde(rename = "assignedIPv4", default)]
    pub assigned_ipv4: i64,
    /// IPv4 addresses still free (capacity minus assigned; saturates at the
    /// largest int64).
    #[serde(rename = "availableIPv4", default)]
    pub available_ipv4: i64,
    #[serde(rename = "assignedIPv6", default)]
    pub assigned_ipv6: i64,
    #[serde(rename = "availableIPv6", default)]
    pub available_ipv6: i64,
    /// `Valid` (reasons `Valid`, `InvalidAddress`) and `Overlapping`
    /// (reason `OverlapsPool`: addresses another pool also holds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

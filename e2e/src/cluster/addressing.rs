//! The address plan of one cluster. Everything hangs off one "slot" byte so
//! that clusters running side by side use different subnets:
//!
//! | what                  | range                        |
//! |-----------------------|------------------------------|
//! | LAN (IPv4)            | 10.200.<slot>.0/24           |
//! | client                | 10.200.<slot>.2              |
//! | node i                | 10.200.<slot>.(10+i)         |
//! | LoadBalancer IP pool  | 10.200.<slot>.200 - .249     |
//! | LAN (IPv6 ULA)        | fd67:6768:0:<slot>::/64, same host numbers |
//! | pods of node i        | 10.201.<slot>.(32*i)/27      |
//! | ClusterIPs            | 10.202.<slot>.0/24           |
//!
//! The LoadBalancer pool is inside the LAN subnet on purpose: the client
//! reaches those IPs by ARP/NDP on the LAN, as on a real bare-metal network.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// At most this many nodes: the pod ranges are /27s of one /24.
pub const MAX_NODES: usize = 8;
/// At most this many pods on one node (a /27 less network and broadcast).
pub const MAX_PODS_PER_NODE: usize = 30;
/// How many LoadBalancer IPs the LAN pool holds.
pub const LOAD_BALANCER_POOL_SIZE: u8 = 50;

const CLIENT_HOST: u8 = 2;
const FIRST_NODE_HOST: u8 = 10;
const FIRST_LOAD_BALANCER_HOST: u8 = 200;

/// The address a pod uses as its default gateway: the node's end of the
/// pod's veth answers ARP for it (the way Calico wires pods).
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// An IPv4 network or an address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPlan {
    slot: u8,
}

impl AddressPlan {
    pub fn new(slot: u8) -> Self {
        Self { slot }
    }

    pub fn lan_v4(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::new(10, 200, self.slot, 0),
            prefix: 24,
        }
    }

    pub fn lan_v6_prefix(&self) -> (Ipv6Addr, u8) {
        (self.lan_v6_host(0), 64)
    }

    pub fn client_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.slot, CLIENT_HOST)
    }

    pub fn client_v6(&self) -> Ipv6Addr {
        self.lan_v6_host(CLIENT_HOST)
    }

    /// `node` must be below [`MAX_NODES`].
    pub fn node_v4(&self, node: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.slot, FIRST_NODE_HOST + node as u8)
    }

    /// `node` must be below [`MAX_NODES`].
    pub fn node_v6(&self, node: usize) -> Ipv6Addr {
        self.lan_v6_host(FIRST_NODE_HOST + node as u8)
    }

    /// The `index`-th LoadBalancer IP of the LAN pool, if the pool has one.
    pub fn load_balancer_ip(&self, index: u8) -> Option<Ipv4Addr> {
        (index < LOAD_BALANCER_POOL_SIZE)
            .then(|| Ipv4Addr::new(10, 200, self.slot, FIRST_LOAD_BALANCER_HOST + index))
    }

    /// First and last address of the LoadBalancer pool (for an IP pool object).
    pub fn load_balancer_range(&self) -> (Ipv4Addr, Ipv4Addr) {
        let first = Ipv4Addr::new(10, 200, self.slot, FIRST_LOAD_BALANCER_HOST);
        let last = Ipv4Addr::new(
            10,
            200,
            self.slot,
            FIRST_LOAD_BALANCER_HOST + LOAD_BALANCER_POOL_SIZE - 1,
        );
        (first, last)
    }

    /// The pod range routed to `node`.
    pub fn pod_cidr(&self, node: usize) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::new(10, 201, self.slot, (node * 32) as u8),
            prefix: 27,
        }
    }

    /// The `index`-th pod IP of `node`, if the node's range has one.
    pub fn pod_ip(&self, node: usize, index: usize) -> Option<Ipv4Addr> {
        (node < MAX_NODES && index < MAX_PODS_PER_NODE)
            .then(|| Ipv4Addr::new(10, 201, self.slot, (node * 32 + 1 + index) as u8))
    }

    /// Where ClusterIPs come from; nodes route it to the LAN so that
    /// connections to a ClusterIP get as far as the nat hooks.
    pub fn service_cidr(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::new(10, 202, self.slot, 0),
            prefix: 24,
        }
    }

    /// The `index`-th ClusterIP (0 to 253).
    pub fn cluster_ip(&self, index: u8) -> Option<Ipv4Addr> {
        (index < 254).then(|| Ipv4Addr::new(10, 202, self.slot, index + 1))
    }

    fn lan_v6_host(&self, host: u8) -> Ipv6Addr {
        Ipv6Addr::new(
            0xfd67,
            0x6768,
            0,
            u16::from(self.slot),
            0,
            0,
            0,
            u16::from(host),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_client_share_the_lan_and_pool() {
        let plan = AddressPlan::new(9);
        let lan = plan.lan_v4();
        assert!(lan.contains(plan.client_v4()));
        assert!(lan.contains(plan.node_v4(MAX_NODES - 1)));
        let (first, last) = plan.load_balancer_range();
        assert!(lan.contains(first) && lan.contains(last));
        assert!(u32::from(plan.node_v4(MAX_NODES - 1)) < u32::from(first));
    }

    #[test]
    fn pod_ranges_do_not_overlap() {
        let plan = AddressPlan::new(1);
        for node in 0..MAX_NODES {
            for index in 0..MAX_PODS_PER_NODE {
                let Some(ip) = plan.pod_ip(node, index) else {
                    panic!("node {node} pod {index} has no ip");
                };
                for other in 0..MAX_NODES {
                    assert_eq!(plan.pod_cidr(other).contains(ip), other == node);
                }
            }
        }
        assert_eq!(plan.pod_ip(0, MAX_PODS_PER_NODE), None);
    }

    #[test]
    fn pools_end_where_documented() {
        let plan = AddressPlan::new(3);
        assert_eq!(
            plan.load_balancer_ip(0),
            Some(Ipv4Addr::new(10, 200, 3, 200))
        );
        assert_eq!(plan.load_balancer_ip(LOAD_BALANCER_POOL_SIZE), None);
        assert_eq!(plan.cluster_ip(253), Some(Ipv4Addr::new(10, 202, 3, 254)));
        assert_eq!(plan.cluster_ip(254), None);
        assert_eq!(plan.node_v6(1).to_string(), "fd67:6768:0:3::b");
    }
}

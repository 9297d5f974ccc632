//! Which node announces an address: rendezvous (highest random weight)
//! hashing of the address over the candidate nodes. Every speaker computes
//! it on the same inputs and gets the same answer, with no round trip; the
//! addresses spread evenly over nodes, and when a node leaves only the
//! addresses it held move.
//!
//! The hash is written here (FNV-1a, then a 64-bit finalizer), not taken
//! from `std`, whose hasher may change between Rust releases: speakers of
//! different builds must agree.

use super::node::NodeName;
use std::net::IpAddr;

/// The weight of `node` for `address`: the highest weight wins.
pub fn score(address: IpAddr, node: &NodeName) -> u64 {
    let mut hash = FNV_OFFSET;
    let octets: Vec<u8> = match address {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    for byte in octets
        .iter()
        .chain(std::iter::once(&0xff))
        .chain(node.as_str().as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    finalize(hash)
}

/// The candidate that announces `address`, if there is any candidate.
/// Equal weights (practically never) go to the smaller name.
pub fn winner<'a>(
    address: IpAddr,
    candidates: impl IntoIterator<Item = &'a NodeName>,
) -> Option<&'a NodeName> {
    candidates
        .into_iter()
        .map(|node| (score(address, node), node))
        .max_by(|(sa, na), (sb, nb)| sa.cmp(sb).then_with(|| nb.cmp(na)))
        .map(|(_, node)| node)
}

/// Whether `a` outranks `b` for `address` (the rule [`winner`] applies).
pub fn outranks(address: IpAddr, a: &NodeName, b: &NodeName) -> bool {
    let (sa, sb) = (score(address, a), score(address, b));
    sa > sb || (sa == sb && a < b)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A 64-bit mix (SplitMix64's finalizer): FNV's low bits alone spread
/// short inputs poorly.
fn finalize(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    fn nodes(n: usize) -> Vec<NodeName> {
        (0..n).map(|i| NodeName::new(format!("node-{i}"))).collect()
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn the_weight_is_a_fixed_function_of_address_and_node() {
        // Pinned: a change here changes who announces what across a rolling
        // upgrade, when old and new speakers run side by side.
        let a = score(ip(1), &NodeName::new("node-0"));
        assert_eq!(a, score(ip(1), &NodeName::new("node-0")));
        assert_eq!(a, 0xb1c1_a626_28ff_d97d, "got {a:#x}");
    }

    #[test]
    fn no_candidates_means_no_winner() {
        assert_eq!(winner(ip(1), &[]), None);
    }

    #[test]
    fn the_winner_does_not_depend_on_the_order_of_candidates() {
        let mut list = nodes(5);
        for i in 0..50 {
            let first = winner(ip(i), &list).cloned();
            list.reverse();
            assert_eq!(winner(ip(i), &list).cloned(), first);
            list.rotate_left(2);
            assert_eq!(winner(ip(i), &list).cloned(), first);
        }
    }

    #[test]
    fn addresses_spread_over_nodes() {
        let list = nodes(3);
        let mut per_node: BTreeMap<NodeName, usize> = BTreeMap::new();
        for i in 0..3000 {
            *per_node
                .entry(winner(ip(i), &list).unwrap().clone())
                .or_default() += 1;
        }
        assert_eq!(per_node.len(), 3);
        for (node, count) in per_node {
            assert!((850..1150).contains(&count), "{node}: {count} of 3000");
        }
    }

    #[test]
    fn node_churn_moves_only_the_addresses_of_the_node_that_left() {
        let all = nodes(4);
        let without_two: Vec<NodeName> = all
            .iter()
            .filter(|n| n.as_str() != "node-2")
            .cloned()
            .collect();
        for i in 0..500 {
            let before = winner(ip(i), &all).unwrap();
            let after = winner(ip(i), &without_two).unwrap();
            if before.as_str() != "node-2" {
                assert_eq!(before, after, "address {i} moved though its node stayed");
            }
        }
    }

    #[test]
    fn a_joining_node_takes_addresses_only_for_itself() {
        let three = nodes(3);
        let four = nodes(4);
        let mut taken = 0;
        for i in 0..500 {
            let before = winner(ip(i), &three).unwrap();
            let after = winner(ip(i), &four).unwrap();
            if before != after {
                assert_eq!(after.as_str(), "node-3");
                taken += 1;
            }
        }
        assert!(
            (80..170).contains(&taken),
            "the new node took {taken} of 500"
        );
    }

    #[test]
    fn outranks_agrees_with_winner() {
        let list = nodes(2);
        for i in 0..100 {
            let w = winner(ip(i), &list).unwrap();
            let other = list.iter().find(|n| *n != w).unwrap();
            assert!(outranks(ip(i), w, other));
            assert!(!outranks(ip(i), other, w));
        }
    }

    #[test]
    fn ipv6_addresses_are_elected_too() {
        let list = nodes(3);
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        assert!(winner(v6, &list).is_some());
    }
}

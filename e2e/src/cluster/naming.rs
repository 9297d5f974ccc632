//! Names of everything a cluster creates.
//!
//! Every namespace name is `gatehouse-<pid>-<seq>-<role>`: the pid of the test
//! process that owns it (so a sweeper can tell leftovers of dead processes from
//! namespaces of tests still running) and a per-process sequence number (so
//! parallel tests in one process never collide). Interface names never need to
//! be unique: each lives in a namespace of its own cluster.

use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every network namespace the harness creates.
pub const NETNS_PREFIX: &str = "gatehouse-";

/// Identifies one cluster among all clusters of all test processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterId {
    pub pid: u32,
    pub seq: u32,
}

impl ClusterId {
    /// A fresh id for this process.
    pub fn next() -> Self {
        static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);
        Self {
            pid: std::process::id(),
            seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Name of the network namespace playing `role` ("lan", "client",
    /// "node-0", "pod-web-1", ...).
    pub fn netns_name(&self, role: &str) -> String {
        format!("{NETNS_PREFIX}{}-{}-{role}", self.pid, self.seq)
    }

    /// A byte that differs between clusters running at the same time (in
    /// practice; the networks are isolated anyway, so a clash only makes
    /// addresses less telling in logs).
    pub fn subnet_slot(&self) -> u8 {
        let mixed = self.pid.wrapping_mul(2_654_435_761).wrapping_add(self.seq);
        (mixed % 256) as u8
    }
}

/// The pid of the process that created a namespace we named, if `netns_name`
/// is one of ours.
pub fn owner_pid(netns_name: &str) -> Option<u32> {
    let rest = netns_name.strip_prefix(NETNS_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Pod and node names become parts of namespace names and echo replies: keep
/// them to what Kubernetes allows in a DNS label.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_back_from_a_name() {
        let id = ClusterId { pid: 4242, seq: 7 };
        assert_eq!(owner_pid(&id.netns_name("node-0")), Some(4242));
    }

    #[test]
    fn foreign_names_have_no_owner() {
        assert_eq!(owner_pid("cni-1234"), None);
        assert_eq!(owner_pid("gatehouse-notapid-1-lan"), None);
    }

    #[test]
    fn successive_ids_differ() {
        assert_ne!(ClusterId::next(), ClusterId::next());
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("web-0"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label("a/b"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(""));
    }
}

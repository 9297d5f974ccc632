//! The compiled route lookup: a hash on the host, then a hash of exact paths
//! and a trie over path elements. Lookup cost depends on the request (number of
//! path elements), not on how many routes exist.
//!
//! Precedence, as the Ingress spec defines it:
//! * hosts: an exact host, then a one-label wildcard, then rules without a host,
//!   then the default backend. A more specific host with no matching path falls
//!   through to the next level (a host-less rule "applies to all traffic").
//! * paths: the longest match wins; at equal length `Exact` beats `Prefix`.
//!   An exact match is always at least as long as any matching prefix, so it is
//!   tried first.

use crate::host::wildcard_suffix;
use crate::path::segments;
use crate::{HostMatch, PathMatch};
use std::collections::HashMap;

/// Routes for one host.
#[derive(Debug, Clone)]
struct PathTable<T> {
    exact: HashMap<Box<str>, T>,
    prefix: PrefixNode<T>,
}

#[derive(Debug, Clone)]
struct PrefixNode<T> {
    value: Option<T>,
    children: HashMap<Box<str>, PrefixNode<T>>,
}

impl<T> Default for PrefixNode<T> {
    fn default() -> Self {
        PrefixNode {
            value: None,
            children: HashMap::new(),
        }
    }
}

impl<T> Default for PathTable<T> {
    fn default() -> Self {
        PathTable {
            exact: HashMap::new(),
            prefix: PrefixNode::default(),
        }
    }
}

impl<T> PathTable<T> {
    fn find(&self, path: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(path) {
            return Some(v);
        }
        let mut node = &self.prefix;
        let mut best = node.value.as_ref();
        for seg in segments(path) {
            match node.children.get(seg) {
                Some(child) => {
                    node = child;
                    if let Some(v) = &node.value {
                        best = Some(v);
                    }
                }
                None => break,
            }
        }
        best
    }

    /// Inserts unless the slot is taken; gives the value back if it was.
    fn insert(&mut self, path: &PathMatch, value: T) -> Result<(), T> {
        match path {
            PathMatch::Exact(p) => match self.exact.entry(p.as_str().into()) {
                std::collections::hash_map::Entry::Occupied(_) => Err(value),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(value);
                    Ok(())
                }
            },
            PathMatch::Prefix(p) => {
                let mut node = &mut self.prefix;
                for seg in segments(p) {
                    node = node.children.entry(seg.into()).or_default();
                }
                if node.value.is_some() {
                    return Err(value);
                }
                node.value = Some(value);
                Ok(())
            }
        }
    }
}

/// Route lookup by (host, path). Immutable once built; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Router<T> {
    exact_hosts: HashMap<Box<str>, PathTable<T>>,
    wildcard_hosts: HashMap<Box<str>, PathTable<T>>,
    any_host: PathTable<T>,
    default: Option<T>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router {
            exact_hosts: HashMap::new(),
            wildcard_hosts: HashMap::new(),
            any_host: PathTable::default(),
            default: None,
        }
    }
}

impl<T> Router<T> {
    /// Finds the route for a normalized host (see
    /// [`crate::host::normalize_request_host`]) and a request path without
    /// query string. Falls back to the default backend.
    pub fn find(&self, host: &str, path: &str) -> Option<&T> {
        self.find_rule(host, path).or(self.default.as_ref())
    }

    /// Like [`Router::find`], without the default backend.
    pub fn find_rule(&self, host: &str, path: &str) -> Option<&T> {
        if let Some(v) = self.exact_hosts.get(host).and_then(|t| t.find(path)) {
            return Some(v);
        }
        if let Some(v) = wildcard_suffix(host)
            .and_then(|s| self.wildcard_hosts.get(s))
            .and_then(|t| t.find(path))
        {
            return Some(v);
        }
        self.any_host.find(path)
    }

    /// Whether any rule names this exact host or a wildcard covering it.
    pub fn has_host(&self, host: &str) -> bool {
        self.exact_hosts.contains_key(host)
            || wildcard_suffix(host).is_some_and(|s| self.wildcard_hosts.contains_key(s))
    }

    /// The default backend, if one is set.
    pub fn default_route(&self) -> Option<&T> {
        self.default.as_ref()
    }

    /// Visits every route value (each once), e.g. to collect metrics handles.
    pub fn for_each(&self, mut f: impl FnMut(&T)) {
        fn walk<T>(node: &PrefixNode<T>, f: &mut impl FnMut(&T)) {
            if let Some(v) = &node.value {
                f(v);
            }
            for child in node.children.values() {
                walk(child, f);
            }
        }
        let tables = self
            .exact_hosts
            .values()
            .chain(self.wildcard_hosts.values())
            .chain(std::iter::once(&self.any_host));
        for table in tables {
            table.exact.values().for_each(&mut f);
            walk(&table.prefix, &mut f);
        }
        if let Some(d) = &self.default {
            f(d);
        }
    }
}

/// Builds a [`Router`]. The first value inserted for a (host, path) slot wins;
/// callers insert in precedence order and report the losers.
#[derive(Debug)]
pub struct RouterBuilder<T> {
    router: Router<T>,
}

impl<T> Default for RouterBuilder<T> {
    fn default() -> Self {
        RouterBuilder {
            router: Router::default(),
        }
    }
}

impl<T> RouterBuilder<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route; `Err(value)` if that exact (host, path) slot is taken.
    pub fn insert(&mut self, host: &HostMatch, path: &PathMatch, value: T) -> Result<(), T> {
        let table = match host {
            HostMatch::Any => &mut self.router.any_host,
            HostMatch::Exact(h) => self
                .router
                .exact_hosts
                .entry(h.as_str().into())
                .or_default(),
            HostMatch::Wildcard(s) => self
                .router
                .wildcard_hosts
                .entry(s.as_str().into())
                .or_default(),
        };
        table.insert(path, value)
    }

    /// Sets the default backend; `Err(value)` if one is set already.
    pub fn set_default(&mut self, value: T) -> Result<(), T> {
        if self.router.default.is_some() {
            return Err(value);
        }
        self.router.default = Some(value);
        Ok(())
    }

    pub fn build(self) -> Router<T> {
        self.router
    }
}

impl<T> Router<T> {
    /// Compiles a snapshot's routes, mapping each route (and the default
    /// backend) to the value lookups should return. Routes that collide with
    /// an earlier one are dropped; translation never emits such pairs.
    pub fn from_snapshot(
        snapshot: &crate::Snapshot,
        mut route: impl FnMut(&crate::VirtualHost, &crate::Route) -> T,
        default: impl FnOnce(&crate::BackendId) -> T,
    ) -> Self {
        let mut b = RouterBuilder::new();
        for vh in &snapshot.virtual_hosts {
            for r in &vh.routes {
                let _ = b.insert(&vh.host, &r.path, route(vh, r));
            }
        }
        if let Some(id) = &snapshot.default_backend {
            let _ = b.set_default(default(id));
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(p: &str) -> PathMatch {
        PathMatch::Exact(p.into())
    }
    fn prefix(p: &str) -> PathMatch {
        PathMatch::parse("Prefix", Some(p)).unwrap()
    }

    #[test]
    fn host_precedence_and_fallthrough() {
        let mut b = RouterBuilder::new();
        b.insert(
            &HostMatch::Exact("a.foo.com".into()),
            &prefix("/x"),
            "exact-x",
        )
        .unwrap();
        b.insert(&HostMatch::Wildcard("foo.com".into()), &prefix("/"), "wild")
            .unwrap();
        b.insert(&HostMatch::Any, &prefix("/any"), "any").unwrap();
        b.set_default("default").unwrap();
        let r = b.build();
        let cases = [
            ("exact_host_path", "a.foo.com", "/x/y", Some("exact-x")),
            (
                "exact_host_falls_to_wildcard",
                "a.foo.com",
                "/other",
                Some("wild"),
            ),
            ("wildcard_host", "b.foo.com", "/x", Some("wild")),
            (
                "wildcard_not_two_labels",
                "c.b.foo.com",
                "/any",
                Some("any"),
            ),
            (
                "bare_domain_not_wildcard",
                "foo.com",
                "/zzz",
                Some("default"),
            ),
            (
                "unknown_host_any_rule",
                "bar.org",
                "/any/thing",
                Some("any"),
            ),
            (
                "unknown_host_default",
                "bar.org",
                "/nothing",
                Some("default"),
            ),
        ];
        for (name, host, path, want) in cases {
            assert_eq!(r.find(host, path).copied(), want, "case {name}");
        }
    }

    #[test]
    fn first_insert_wins() {
        let mut b = RouterBuilder::new();
        assert!(b.insert(&HostMatch::Any, &prefix("/a/"), 1).is_ok());
        assert_eq!(b.insert(&HostMatch::Any, &prefix("/a"), 2), Err(2));
        assert!(b.insert(&HostMatch::Any, &exact("/a"), 3).is_ok());
        assert_eq!(b.insert(&HostMatch::Any, &exact("/a"), 4), Err(4));
        assert!(b.set_default(5).is_ok());
        assert_eq!(b.set_default(6), Err(6));
    }

    /// The reference semantics, written as plainly as possible: every matching
    /// rule of the most specific host level with a match, longest path first,
    /// Exact before Prefix at equal length.
    fn reference<'a>(
        rules: &'a [(HostMatch, PathMatch, usize)],
        host: &str,
        path: &str,
    ) -> Option<&'a usize> {
        let levels: [fn(&HostMatch, &str) -> bool; 3] = [
            |h, host| matches!(h, HostMatch::Exact(_)) && h.matches(host),
            |h, host| matches!(h, HostMatch::Wildcard(_)) && h.matches(host),
            |h, _| matches!(h, HostMatch::Any),
        ];
        for level in levels {
            let best = rules
                .iter()
                .filter(|(h, p, _)| level(h, host) && p.matches(path))
                .max_by_key(|(_, p, _)| {
                    let len = match p {
                        PathMatch::Exact(s) => s.len(),
                        PathMatch::Prefix(s) => segments(s).map(|s| s.len() + 1).sum(),
                    };
                    (len, matches!(p, PathMatch::Exact(_)))
                });
            if let Some((_, _, v)) = best {
                return Some(v);
            }
        }
        None
    }

    fn arb_host() -> impl Strategy<Value = HostMatch> {
        prop_oneof![
            Just(HostMatch::Any),
            Just(HostMatch::Exact("a.x.com".into())),
            Just(HostMatch::Exact("b.x.com".into())),
            Just(HostMatch::Wildcard("x.com".into())),
        ]
    }

    fn arb_path_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("ab")], 0..4)
            .prop_flat_map(|segs| {
                let base = format!("/{}", segs.join("/"));
                prop_oneof![
                    Just(base.clone()),
                    Just(format!("{base}/").replace("//", "/"))
                ]
            })
    }

    fn arb_rule() -> impl Strategy<Value = (HostMatch, PathMatch)> {
        (arb_host(), any::<bool>(), arb_path_text()).prop_map(|(h, is_exact, p)| {
            let m = if is_exact {
                PathMatch::Exact(p)
            } else {
                prefix(&p)
            };
            (h, m)
        })
    }

    fn build(rules: &[(HostMatch, PathMatch, usize)]) -> Router<usize> {
        let mut b = RouterBuilder::new();
        for (h, p, v) in rules {
            let _ = b.insert(h, p, *v);
        }
        b.build()
    }

    proptest! {
        /// The trie agrees with the plain reference on every lookup, and the
        /// insertion order of non-conflicting rules does not matter.
        #[test]
        fn trie_matches_reference_in_any_order(
            raw in proptest::collection::vec(arb_rule(), 0..12),
            host in prop_oneof![Just("a.x.com"), Just("b.x.com"), Just("c.x.com"), Just("x.com")],
            path in arb_path_text(),
            seed in any::<u64>(),
        ) {
            // Drop duplicate slots so that "first wins" does not depend on order.
            let mut seen = std::collections::HashSet::new();
            let rules: Vec<(HostMatch, PathMatch, usize)> = raw
                .into_iter()
                .filter(|(h, p)| seen.insert((h.clone(), p.clone())))
                .enumerate()
                .map(|(i, (h, p))| (h, p, i))
                .collect();
            let mut shuffled = rules.clone();
            let n = shuffled.len();
            if n > 1 {
                let mut s = seed;
                for i in (1..n).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    shuffled.swap(i, (s >> 33) as usize % (i + 1));
                }
            }
            let want = reference(&rules, host, &path).copied();
            prop_assert_eq!(build(&rules).find_rule(host, &path).copied(), want);
            prop_assert_eq!(build(&shuffled).find_rule(host, &path).copied(), want);
        }
    }
}

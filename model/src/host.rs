//! Ingress host matching: exact hosts, `*.example.com` wildcards (exactly one
//! label), and the empty host that matches everything.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a virtual host matches the request's host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "camelCase")]
pub enum HostMatch {
    /// An Ingress rule without a host: applies to every request.
    Any,
    /// `foo.example.com`: this host only (lowercase).
    Exact(String),
    /// `*.example.com`, stored as its suffix `example.com`: any host with exactly
    /// one more label in front (`a.example.com`, not `a.b.example.com` nor
    /// `example.com`).
    Wildcard(String),
}

/// Why an Ingress host was rejected. Mirrors the API server's validation so that
/// local mode refuses what a cluster would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("host {0:?} is longer than 253 characters")]
    TooLong(String),
    #[error("host {0:?} must be lowercase letters, digits, '-' and '.', with each label starting and ending with a letter or digit")]
    InvalidName(String),
    #[error("host {0:?}: a wildcard is allowed only as the whole first label ('*.example.com')")]
    MisplacedWildcard(String),
    #[error("host {0:?} is an IP address; Ingress hosts must be DNS names")]
    IpAddress(String),
}

impl HostMatch {
    /// Parses an Ingress rule's `host` field ("" means any host).
    pub fn parse(host: &str) -> Result<Self, HostError> {
        if host.is_empty() {
            return Ok(HostMatch::Any);
        }
        if host.len() > 253 {
            return Err(HostError::TooLong(host.to_owned()));
        }
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Err(HostError::IpAddress(host.to_owned()));
        }
        let (wildcard, rest) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        if rest.contains('*') {
            return Err(HostError::MisplacedWildcard(host.to_owned()));
        }
        if !is_dns1123_subdomain(rest) {
            return Err(HostError::InvalidName(host.to_owned()));
        }
        Ok(if wildcard {
            HostMatch::Wildcard(rest.to_owned())
        } else {
            HostMatch::Exact(rest.to_owned())
        })
    }

    /// Whether a normalized request host (see [`normalize_request_host`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Wildcard(suffix) => wildcard_suffix(host) == Some(suffix.as_str()),
        }
    }

    /// The rule's host as written in an Ingress (`""`, `a.com`, `*.a.com`).
    pub fn as_ingress_host(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => Ok(()),
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// The part of a host a one-label wildcard is keyed by: `a.example.com` →
/// `example.com`. `None` for a single-label host.
pub fn wildcard_suffix(host: &str) -> Option<&str> {
    let dot = host.find('.')?;
    let (first, rest) = (&host[..dot], &host[dot + 1..]);
    if first.is_empty() || rest.is_empty() {
        return None;
    }
    Some(rest)
}

/// Strips the port (also from `[v6]:port`) and a trailing dot from a Host
/// header or :authority, and lowercases it. Borrowed when nothing changes, which
/// is the common case on the request path.
pub fn normalize_request_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let without_port = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal: keep the brackets' content.
        match rest.find(']') {
            Some(end) => &rest[..end],
            None => raw,
        }
    } else {
        match raw.rfind(':') {
            Some(i) if raw[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &raw[..i],
            _ => raw,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        let cases: &[(&str, &str, Result<HostMatch, ()>)] = &[
            ("empty_is_any", "", Ok(HostMatch::Any)),
            (
                "exact",
                "foo.bar.com",
                Ok(HostMatch::Exact("foo.bar.com".into())),
            ),
            (
                "wildcard",
                "*.foo.com",
                Ok(HostMatch::Wildcard("foo.com".into())),
            ),
            ("uppercase_rejected", "Foo.com", Err(())),
            ("wildcard_in_middle", "a.*.com", Err(())),
            ("double_wildcard", "*.*.com", Err(())),
            ("partial_wildcard_label", "*foo.com", Err(())),
            ("ip_rejected", "10.0.0.1", Err(())),
            ("leading_dash", "-a.com", Err(())),
            ("empty_label", "a..com", Err(())),
        ];
        for (name, input, want) in cases {
            let got = HostMatch::parse(input).map_err(|_| ());
            assert_eq!(&got, want, "case {name}");
        }
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let w = HostMatch::parse("*.foo.com").unwrap();
        let cases = [
            ("one_label", "bar.foo.com", true),
            ("two_labels", "baz.bar.foo.com", false),
            ("bare_domain", "foo.com", false),
            ("other_domain", "bar.goo.com", false),
            ("suffix_without_dot", "barfoo.com", false),
        ];
        for (name, host, want) in cases {
            assert_eq!(w.matches(host), want, "case {name}");
        }
    }

    #[test]
    fn request_host_normalization() {
        let cases = [
            ("plain", "foo.com", "foo.com"),
            ("port", "foo.com:8080", "foo.com"),
            ("case", "FoO.CoM", "foo.com"),
            ("trailing_dot", "foo.com.", "foo.com"),
            ("trailing_dot_and_port", "foo.com.:80", "foo.com"),
            ("ipv6_with_port", "[::1]:8080", "::1"),
            ("ipv6_bare", "[::1]", "::1"),
        ];
        for (name, raw, want) in cases {
            assert_eq!(normalize_request_host(raw), want, "case {name}");
        }
    }
}

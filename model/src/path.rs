//! Ingress path matching: `Exact` compares the whole path, `Prefix` compares
//! element by element on `/`, ignoring a trailing slash.
//!
//! `ImplementationSpecific` is treated as `Prefix` (documented in the README).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A rule's path match, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "camelCase")]
pub enum PathMatch {
    /// The request path must equal this string (case-sensitive, slash-sensitive).
    Exact(String),
    /// The request path's elements must begin with these elements. Stored
    /// without a trailing slash; `/` is stored as `/`.
    Prefix(String),
}

/// Why an Ingress path was rejected (the API server's own rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} must be absolute (start with '/')")]
    NotAbsolute(String),
    #[error("path {path:?} must not contain {sequence:?}")]
    InvalidSequence {
        path: String,
        sequence: &'static str,
    },
    #[error("path {path:?} must not end with {suffix:?}")]
    InvalidSuffix { path: String, suffix: &'static str },
    #[error("unknown pathType {0:?} (expected Exact, Prefix or ImplementationSpecific)")]
    UnknownPathType(String),
}

const INVALID_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

impl PathMatch {
    /// Builds a match from an Ingress path and its `pathType`. A missing path
    /// means `/`.
    pub fn parse(path_type: &str, path: Option<&str>) -> Result<Self, PathError> {
        let path = match path {
            None | Some("") => "/",
            Some(p) => p,
        };
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute(path.to_owned()));
        }
        match path_type {
            "Exact" | "Prefix" => {
                for sequence in INVALID_SEQUENCES {
                    if path.contains(sequence) {
                        return Err(PathError::InvalidSequence {
                            path: path.to_owned(),
                            sequence,
                        });
                    }
                }
                for suffix in INVALID_SUFFIXES {
                    if path.ends_with(suffix) {
                        return Err(PathError::InvalidSuffix {
                            path: path.to_owned(),
                            suffix,
                        });
                    }
                }
            }
            "ImplementationSpecific" => {}
            other => return Err(PathError::UnknownPathType(other.to_owned())),
        }
        Ok(match path_type {
            "Exact" => PathMatch::Exact(path.to_owned()),
            _ => PathMatch::Prefix(normalize_prefix(path)),
        })
    }

    /// Whether this match applies to a request path (no query string).
    pub fn matches(&self, request_path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == request_path,
            PathMatch::Prefix(p) => {
                let mut req = segments(request_path);
                segments(p).all(|want| req.next() == Some(want))
            }
        }
    }

    /// The path as a string (normalized for prefixes).
    pub fn path(&self) -> &str {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p,
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatch::Exact(p) => write!(f, "{p} (Exact)"),
            PathMatch::Prefix(p) => write!(f, "{p} (Prefix)"),
        }
    }
}

/// The elements of a path: split on `/`, empty elements skipped (so a trailing
/// slash and repeated slashes do not count as elements).
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn normalize_prefix(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for seg in segments(path) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        type Want = Result<PathMatch, ()>;
        let cases: &[(&str, &str, Option<&str>, Want)] = &[
            (
                "missing_path_is_root",
                "Prefix",
                None,
                Ok(PathMatch::Prefix("/".into())),
            ),
            (
                "prefix_trailing_slash_dropped",
                "Prefix",
                Some("/foo/"),
                Ok(PathMatch::Prefix("/foo".into())),
            ),
            (
                "exact_keeps_trailing_slash",
                "Exact",
                Some("/foo/"),
                Ok(PathMatch::Exact("/foo/".into())),
            ),
            (
                "impl_specific_is_prefix",
                "ImplementationSpecific",
                Some("/a/"),
                Ok(PathMatch::Prefix("/a".into())),
            ),
            ("relative_rejected", "Prefix", Some("foo"), Err(())),
            ("double_slash_rejected", "Exact", Some("/a//b"), Err(())),
            ("dot_dot_rejected", "Prefix", Some("/a/../b"), Err(())),
            ("encoded_slash_rejected", "Prefix", Some("/a%2fb"), Err(())),
            ("dot_suffix_rejected", "Prefix", Some("/a/."), Err(())),
            ("unknown_type", "Regex", Some("/a"), Err(())),
        ];
        for (name, ty, path, want) in cases {
            assert_eq!(
                &PathMatch::parse(ty, *path).map_err(|_| ()),
                want,
                "case {name}"
            );
        }
    }
}

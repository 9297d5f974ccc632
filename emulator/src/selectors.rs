//! `labelSelector` and `fieldSelector` query parameters: parsing and matching.

use serde_json::Value;

use super::error::ApiError;
use super::meta;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Whether this selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h` (`==` works as `=`).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_label_term(term)?);
        }
        Ok(Self { requirements })
    }

    /// The structured form (`matchLabels`, `matchExpressions`) used in
    /// objects, e.g. a ClusterRole's `aggregationRule`.
    pub fn from_structured(
        selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<Self, ApiError> {
        let mut requirements: Vec<LabelRequirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| LabelRequirement::Equals(k.clone(), v.clone()))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let key = expression.key.clone();
            let values = expression.values.clone().unwrap_or_default();
            requirements.push(match expression.operator.as_str() {
                "In" => LabelRequirement::In(key, values),
                "NotIn" => LabelRequirement::NotIn(key, values),
                "Exists" => LabelRequirement::Exists(key),
                "DoesNotExist" => LabelRequirement::DoesNotExist(key),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "{other:?} is not a valid label selector operator"
                    )))
                }
            });
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = meta::labels(object);
        self.matches_with(|key| labels.and_then(|l| l.get(key)).and_then(Value::as_str))
    }

    /// Matches a typed object's labels.
    pub fn matches_labels(
        &self,
        labels: Option<&std::collections::BTreeMap<String, String>>,
    ) -> bool {
        self.matches_with(|key| labels.and_then(|l| l.get(key)).map(String::as_str))
    }

    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside a `( ... )` value set.
fn split_terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 0 => terms.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    terms.push(current);
    terms
}

fn invalid_selector(term: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: invalid label selector term \"{term}\""
    ))
}

fn parse_label_term(term: &str) -> Result<LabelRequirement, ApiError> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelRequirement::DoesNotExist(label_key(key, term)?));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            label_key(key, term)?,
            label_value(value, term)?,
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::Equals(
            label_key(key, term)?,
            label_value(value, term)?,
        ));
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("").trim_start();
    if rest.is_empty() {
        return Ok(LabelRequirement::Exists(label_key(key, term)?));
    }
    let (operator, set) = if let Some(set) = rest.strip_prefix("notin") {
        ("notin", set)
    } else if let Some(set) = rest.strip_prefix("in") {
        ("in", set)
    } else {
        return Err(invalid_selector(term));
    };
    let values = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| invalid_selector(term))?
        .split(',')
        .map(|v| label_value(v, term))
        .collect::<Result<Vec<_>, _>>()?;
    let key = label_key(key, term)?;
    Ok(if operator == "in" {
        LabelRequirement::In(key, values)
    } else {
        LabelRequirement::NotIn(key, values)
    })
}

fn label_key(key: &str, term: &str) -> Result<String, ApiError> {
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(invalid_selector(term))
    }
}

fn label_value(value: &str, term: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let valid = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid && value.len() <= 63 {
        Ok(value.to_string())
    } else {
        Err(invalid_selector(term))
    }
}

/// One requirement of a field selector: `path=value` or `path!=value`.
#[derive(Debug, Clone, PartialEq)]
struct FieldRequirement {
    path: String,
    value: String,
    negated: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Whether this selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses `metadata.name=foo,status.phase!=Running`; `supported` says
    /// which paths this resource allows (the real server rejects others).
    pub fn parse(text: &str, supported: impl Fn(&str) -> bool) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.trim().is_empty() {
                continue;
            }
            let (path, value, negated) = if let Some((p, v)) = split_operator(&term, "!=") {
                (p, v, true)
            } else if let Some((p, v)) = split_operator(&term, "==") {
                (p, v, false)
            } else if let Some((p, v)) = split_operator(&term, "=") {
                (p, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let path = path.trim().to_string();
            if !supported(&path) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            requirements.push(FieldRequirement {
                path,
                value: unescape(&value),
                negated,
            });
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|req| {
            let actual = field_value(object, &req.path);
            (actual == req.value) != req.negated
        })
    }
}

/// The value a field selector compares: scalars as text, absent as "".
fn field_value(object: &Value, path: &str) -> String {
    let mut current = object;
    for segment in path.split('.') {
        match current.get(segment) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Splits at `sep` unless escaped by a backslash (escapes are kept).
fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Splits `term` at the first unescaped `operator`.
fn split_operator(term: &str, operator: &str) -> Option<(String, String)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if term[i..].starts_with(operator) {
            return Some((
                term[..i].to_string(),
                term[i + operator.len()..].to_string(),
            ));
        }
    }
    None
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in value.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn structured_selectors_match_labels_and_expressions() {
        let selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
            serde_json::from_value(json!({
                "matchLabels": {"tier": "web"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            }))
            .unwrap();
        let selector = LabelSelector::from_structured(&selector).unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(selector.matches_labels(Some(&labels(&[("tier", "web"), ("env", "prod")]))));
        assert!(!selector.matches_labels(Some(&labels(&[("tier", "web"), ("env", "dev")]))));
        assert!(!selector.matches_labels(Some(&labels(&[
            ("tier", "web"),
            ("env", "prod"),
            ("legacy", "yes")
        ]))));
        assert!(!selector.matches_labels(None));
        let bad: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
            serde_json::from_value(json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}))
                .unwrap();
        assert!(LabelSelector::from_structured(&bad).is_err());
    }

    #[test]
    fn label_selector_operators_match_as_the_api_does() {
        let obj = labelled(json!({"app": "web", "tier": "front"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier=back", false),
            ("", true),
        ];
        for (selector, expected) in cases {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&obj), expected, "selector {selector:?}");
        }
    }

    #[test]
    fn malformed_label_selector_is_rejected() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selector_matches_paths_and_rejects_unsupported_ones() {
        let obj =
            json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"type": "LoadBalancer"}});
        let supported = |p: &str| p.starts_with("metadata.") || p == "spec.type";
        let sel = FieldSelector::parse("metadata.name=a,spec.type!=ClusterIP", supported).unwrap();
        assert!(sel.matches(&obj));
        let sel = FieldSelector::parse("metadata.namespace==other", supported).unwrap();
        assert!(!sel.matches(&obj));
        assert!(FieldSelector::parse("spec.clusterIP=1", supported).is_err());
    }

    #[test]
    fn field_selector_values_may_escape_separators() {
        let obj = json!({"metadata": {"name": "a,b=c"}});
        let sel = FieldSelector::parse(r"metadata.name=a\,b\=c", |_| true).unwrap();
        assert!(sel.matches(&obj));
    }
}

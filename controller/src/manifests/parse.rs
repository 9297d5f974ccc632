//! Parsing one manifest file: multi-document YAML or JSON, `kind: List`
//! included. Only the kinds translation reads are kept; anything else is
//! ignored.

use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;

/// An object from a manifest that translation uses: the same type cluster
/// mode's watches produce.
pub use crate::state::Object as ManifestObject;

/// A manifest that could not be read or parsed. Names the file and, where the
/// parser knows it, the line.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: {kind}: {message}")]
    Invalid {
        path: String,
        line: usize,
        kind: String,
        message: String,
    },
}

/// Parses a whole file. One error fails the whole file, so that a
/// half-edited file never serves half its objects.
pub fn parse_manifest(path: &Path, text: &str) -> Result<Vec<ManifestObject>, ManifestError> {
    let path_s = path.display().to_string();
    let is_json = path.extension().is_some_and(|e| e == "json");
    let mut out = Vec::new();
    if is_json {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ManifestError::Syntax {
                path: path_s.clone(),
                line: e.line(),
                message: e.to_string(),
            })?;
        collect(value, &path_s, 1, &mut out)?;
        return Ok(out);
    }
    for (start_line, doc) in split_documents(text) {
        let value: serde_yaml::Value =
            serde_yaml::from_str(doc).map_err(|e| ManifestError::Syntax {
                path: path_s.clone(),
                line: start_line + e.location().map_or(0, |l| l.line().saturating_sub(1)),
                message: strip_location(&e.to_string()),
            })?;
        if value.is_null() {
            continue;
        }
        let json = serde_json::to_value(value).map_err(|e| ManifestError::Syntax {
            path: path_s.clone(),
            line: start_line,
            message: format!("not representable as JSON: {e}"),
        })?;
        collect(json, &path_s, start_line, &mut out)?;
    }
    Ok(out)
}

/// Splits multi-document YAML on `---` lines, remembering where each
/// document starts (1-based) so errors point at the right line.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn collect(
    value: serde_json::Value,
    path: &str,
    line: usize,
    out: &mut Vec<ManifestObject>,
) -> Result<(), ManifestError> {
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_owned();
    let api_version = value
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_owned();
    let invalid = |message: String| ManifestError::Invalid {
        path: path.to_owned(),
        line,
        kind: if kind.is_empty() {
            "document".into()
        } else {
            kind.clone()
        },
        message,
    };
    if kind.is_empty() || api_version.is_empty() {
        return Err(invalid("every document needs apiVersion and kind".into()));
    }
    // Namespaced objects without a namespace go to `default`, as kubectl
    // would apply them.
    let mut value = value;
    if kind != "IngressClass" && kind != "List" {
        if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            let missing = meta
                .get("namespace")
                .and_then(|n| n.as_str())
                .is_none_or(str::is_empty);
            if missing {
                meta.insert("namespace".into(), "default".into());
            }
        }
    }
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            let items = match value.get("items") {
                Some(serde_json::Value::Array(items)) => items.clone(),
                _ => return Err(invalid("a List needs an items array".into())),
            };
            for item in items {
                collect(item, path, line, out)?;
            }
            return Ok(());
        }
        ("networking.k8s.io/v1", "IngressClass") => ManifestObject::IngressClass(typed(value).map_err(invalid)?),
        ("networking.k8s.io/v1", "Ingress") => ManifestObject::Ingress(typed(value).map_err(invalid)?),
        ("v1", "Service") => ManifestObject::Service(typed(value).map_err(invalid)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => ManifestObject::EndpointSlice(typed(value).map_err(invalid)?),
        ("v1", "Secret") => ManifestObject::Secret(typed(value).map_err(invalid)?),
        (_, "Ingress" | "IngressClass" | "EndpointSlice") => {
            return Err(invalid(format!(
                "apiVersion {api_version} is not supported for {kind}; use networking.k8s.io/v1 (Ingress, IngressClass) or discovery.k8s.io/v1 (EndpointSlice)"
            )))
        }
        _ => {
            tracing::debug!(path, line, %api_version, %kind, "ignoring object of a kind Gatehouse does not read");
            return Ok(());
        }
    };
    if object.metadata().name.as_deref().unwrap_or("").is_empty() {
        return Err(invalid("metadata.name is required".into()));
    }
    out.push(object);
    Ok(())
}

/// Deserializes into a typed object, naming the field that failed.
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<Arc<T>, String> {
    serde_path_to_error::deserialize(value)
        .map(Arc::new)
        .map_err(|e| {
            let field = e.path().to_string();
            if field == "." {
                e.inner().to_string()
            } else {
                format!("{field}: {}", e.inner())
            }
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::{Kind, ObjectKey};

    fn parse(name: &str, text: &str) -> Result<Vec<ManifestObject>, ManifestError> {
        parse_manifest(Path::new(name), text)
    }

    #[test]
    fn multi_document_yaml_keeps_known_kinds() {
        let text = "\
apiVersion: v1
kind: Service
metadata: {name: web}
---
# a comment-only document is skipped
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
";
        let objs = parse("a.yaml", text).unwrap();
        let kinds: Vec<_> = objs.iter().map(|o| (o.kind(), o.key())).collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::Service, ObjectKey::new("default", "web")),
                (Kind::Ingress, ObjectKey::new("shop", "web")),
            ]
        );
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: [b\n";
        let err = parse("dir/broken.yaml", text).unwrap_err().to_string();
        assert!(err.starts_with("dir/broken.yaml:"), "{err}");
        let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
        assert!((7..=8).contains(&line), "line in {err}");
    }

    #[test]
    fn type_error_names_field() {
        let text = "\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: x}
spec:
  rules:
  - http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: s, port: {number: eighty}}}
";
        let err = parse("i.yaml", text).unwrap_err().to_string();
        assert!(
            err.contains("spec.rules[0].http.paths[0].backend.service.port.number"),
            "{err}"
        );
        assert!(err.starts_with("i.yaml:1: Ingress:"), "{err}");
    }

    #[test]
    fn json_list_is_flattened() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},
            {"apiVersion":"v1","kind":"Secret","metadata":{"name":"b","namespace":"x"}}]}"#;
        let objs = parse("l.json", text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].key(), ObjectKey::new("x", "b"));
    }

    #[test]
    fn missing_name_and_kind_are_errors() {
        assert!(parse("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {}\n").is_err());
        assert!(parse("a.yaml", "foo: bar\n").is_err());
        assert!(parse(
            "a.yaml",
            "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: a}\n"
        )
        .is_err());
    }
}

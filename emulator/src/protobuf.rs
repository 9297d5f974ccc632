//! Decoding of the few Kubernetes protobuf bodies real clients send.
//! client-go's typed clients encode built-in objects as protobuf, so helm
//! (its release Secrets) and kubectl's `create namespace|secret|configmap`
//! write protobuf. The emulator stores JSON; this module turns those bodies
//! into JSON using hand-written field tables for Namespace, Secret, ConfigMap,
//! DeleteOptions, TokenRequest (`kubectl create token`) and
//! SelfSubjectAccessReview (`kubectl auth can-i`). Anything else is answered 415.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::error::ApiError;

/// Every Kubernetes protobuf body starts with these bytes.
const MAGIC: &[u8] = b"k8s\0";

/// How one field of a message is decoded.
#[derive(Clone, Copy)]
enum Kind {
    String,
    /// Bytes, shown base64-encoded as in JSON.
    Bytes,
    Bool,
    Int,
    /// A `meta.v1.Time` (seconds, nanos), shown as RFC 3339.
    Time,
    StringMap,
    BytesMap,
    RepeatedString,
    Message(&'static [Field]),
    RepeatedMessage(&'static [Field]),
}

struct Field {
    number: u64,
    name: &'static str,
    kind: Kind,
}

const fn field(number: u64, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind }
}

const OWNER_REFERENCE: &[Field] = &[
    field(5, "apiVersion", Kind::String),
    field(1, "kind", Kind::String),
    field(3, "name", Kind::String),
    field(4, "uid", Kind::String),
    field(6, "controller", Kind::Bool),
    field(7, "blockOwnerDeletion", Kind::Bool),
];

const OBJECT_META: &[Field] = &[
    field(1, "name", Kind::String),
    field(2, "generateName", Kind::String),
    field(3, "namespace", Kind::String),
    field(5, "uid", Kind::String),
    field(6, "resourceVersion", Kind::String),
    field(7, "generation", Kind::Int),
    field(8, "creationTimestamp", Kind::Time),
    field(9, "deletionTimestamp", Kind::Time),
    field(10, "deletionGracePeriodSeconds", Kind::Int),
    field(11, "labels", Kind::StringMap),
    field(12, "annotations", Kind::StringMap),
    field(
        13,
        "ownerReferences",
        Kind::RepeatedMessage(OWNER_REFERENCE),
    ),
    field(14, "finalizers", Kind::RepeatedString),
];

const SECRET: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "data", Kind::BytesMap),
    field(3, "type", Kind::String),
    field(4, "stringData", Kind::StringMap),
    field(5, "immutable", Kind::Bool),
];

const CONFIG_MAP: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "data", Kind::StringMap),
    field(3, "binaryData", Kind::BytesMap),
    field(4, "immutable", Kind::Bool),
];

const NAMESPACE_SPEC: &[Field] = &[field(1, "finalizers", Kind::RepeatedString)];
const NAMESPACE_STATUS: &[Field] = &[field(1, "phase", Kind::String)];
const NAMESPACE: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "spec", Kind::Message(NAMESPACE_SPEC)),
    field(3, "status", Kind::Message(NAMESPACE_STATUS)),
];

const PRECONDITIONS: &[Field] = &[
    field(1, "uid", Kind::String),
    field(2, "resourceVersion", Kind::String),
];

const DELETE_OPTIONS: &[Field] = &[
    field(1, "gracePeriodSeconds", Kind::Int),
    field(2, "preconditions", Kind::Message(PRECONDITIONS)),
    field(3, "orphanDependents", Kind::Bool),
    field(4, "propagationPolicy", Kind::String),
    field(5, "dryRun", Kind::RepeatedString),
];

const BOUND_OBJECT_REFERENCE: &[Field] = &[
    field(1, "kind", Kind::String),
    field(2, "apiVersion", Kind::String),
    field(3, "name", Kind::String),
    field(4, "uid", Kind::String),
];

const TOKEN_REQUEST_SPEC: &[Field] = &[
    field(1, "audiences", Kind::RepeatedString),
    field(4, "expirationSeconds", Kind::Int),
    field(3, "boundObjectRef", Kind::Message(BOUND_OBJECT_REFERENCE)),
];

/// What `kubectl create token` sends (the status is the server's to fill).
const TOKEN_REQUEST: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "spec", Kind::Message(TOKEN_REQUEST_SPEC)),
];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    field(1, "namespace", Kind::String),
    field(2, "verb", Kind::String),
    field(3, "group", Kind::String),
    field(4, "version", Kind::String),
    field(5, "resource", Kind::String),
    field(6, "subresource", Kind::String),
    field(7, "name", Kind::String),
];

const NON_RESOURCE_ATTRIBUTES: &[Field] = &[
    field(1, "path", Kind::String),
    field(2, "verb", Kind::String),
];

const ACCESS_REVIEW_SPEC: &[Field] = &[
    field(1, "resourceAttributes", Kind::Message(RESOURCE_ATTRIBUTES)),
    field(
        2,
        "nonResourceAttributes",
        Kind::Message(NON_RESOURCE_ATTRIBUTES),
    ),
];

/// What `kubectl auth can-i` sends.
const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "spec", Kind::Message(ACCESS_REVIEW_SPEC)),
];

const TYPE_META: &[Field] = &[
    field(1, "apiVersion", Kind::String),
    field(2, "kind", Kind::String),
];

/// `runtime.Unknown`, the envelope around every object.
const UNKNOWN: &[Field] = &[
    field(1, "typeMeta", Kind::Message(TYPE_META)),
    field(2, "raw", Kind::Bytes),
];

fn unsupported(what: &str) -> ApiError {
    ApiError::UnsupportedMediaType {
        message: format!(
            "the kube emulator decodes protobuf only for Namespace, Secret, ConfigMap, \
             DeleteOptions, TokenRequest and SelfSubjectAccessReview, not {what}; send JSON or YAML instead (e.g. `kubectl apply` or \
             `kubectl create -f`)"
        ),
    }
}

fn malformed(detail: &str) -> ApiError {
    ApiError::bad_request(format!("malformed protobuf body: {detail}"))
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("missing the k8s protobuf prefix"))?;
    let unknown = decode_message(envelope, UNKNOWN)?;
    let text = |k: &str| unknown["typeMeta"][k].as_str().unwrap_or("").to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let raw_b64 = unknown.get("raw").and_then(Value::as_str).unwrap_or("");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(raw_b64)
        .map_err(|_| malformed("raw object"))?;
    let schema = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => SECRET,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Namespace") => NAMESPACE,
        ("v1" | "meta.k8s.io/v1", "DeleteOptions") => DELETE_OPTIONS,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => SELF_SUBJECT_ACCESS_REVIEW,
        _ => return Err(unsupported(&format!("{api_version} {kind}"))),
    };
    let mut object = decode_message(&raw, schema)?;
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    Ok(object)
}

/// A cursor over protobuf wire data.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .data
                .split_first()
                .ok_or_else(|| malformed("truncated varint"))?;
            self.data = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = usize::try_from(self.varint()?).map_err(|_| malformed("length"))?;
        if len > self.data.len() {
            return Err(malformed("truncated field"));
        }
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(head)
    }

    fn skip(&mut self, wire_type: u64) -> Result<(), ApiError> {
        let width = match wire_type {
            0 => return self.varint().map(|_| ()),
            2 => return self.bytes().map(|_| ()),
            1 => 8,
            5 => 4,
            _ => return Err(malformed("unsupported wire type")),
        };
        if width > self.data.len() {
            return Err(malformed("truncated fixed field"));
        }
        self.data = &self.data[width..];
        Ok(())
    }
}

fn decode_message(data: &[u8], schema: &[Field]) -> Result<Value, ApiError> {
    let mut reader = Reader { data };
    let mut out = Map::new();
    while !reader.data.is_empty() {
        let tag = reader.varint()?;
        let (number, wire_type) = (tag >> 3, tag & 7);
        let Some(field) = schema.iter().find(|f| f.number == number) else {
            reader.skip(wire_type)?;
            continue;
        };
        let expects_length = !matches!(field.kind, Kind::Bool | Kind::Int);
        if expects_length != (wire_type == 2) {
            return Err(malformed(&format!(
                "unexpected wire type for {}",
                field.name
            )));
        }
        match field.kind {
            Kind::Bool => {
                out.insert(field.name.into(), json!(reader.varint()? != 0));
            }
            Kind::Int => {
                // int64 fields are plain two's-complement varints.
                out.insert(field.name.into(), json!(reader.varint()? as i64));
            }
            Kind::String => {
                // Go writes unset strings as ""; JSON would omit them.
                let text = utf8(reader.bytes()?)?;
                if !text.is_empty() {
                    out.insert(field.name.into(), json!(text));
                }
            }
            Kind::Bytes => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(reader.bytes()?);
                out.insert(field.name.into(), json!(encoded));
            }
            Kind::Time => {
                if let Some(timestamp) = time(reader.bytes()?)? {
                    out.insert(field.name.into(), timestamp);
                }
            }
            Kind::Message(inner) => {
                out.insert(field.name.into(), decode_message(reader.bytes()?, inner)?);
            }
            Kind::RepeatedString => {
                let item = json!(utf8(reader.bytes()?)?);
                push(&mut out, field.name, item);
            }
            Kind::RepeatedMessage(inner) => {
                let item = decode_message(reader.bytes()?, inner)?;
                push(&mut out, field.name, item);
            }
            Kind::StringMap | Kind::BytesMap => {
                let (key, value) =
                    map_entry(reader.bytes()?, matches!(field.kind, Kind::BytesMap))?;
                let map = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(map) = map.as_object_mut() {
                    map.insert(key, value);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: &str, item: Value) {
    let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = list.as_array_mut() {
        list.push(item);
    }
}

fn utf8(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string is not UTF-8"))
}

/// One `map<string, string|bytes>` entry: key = 1, value = 2.
fn map_entry(data: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let mut reader = Reader { data };
    let mut key = String::new();
    let mut value = Value::String(String::new());
    while !reader.data.is_empty() {
        let tag = reader.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => key = utf8(reader.bytes()?)?,
            (2, 2) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(reader.bytes()?))
            }
            (2, 2) => value = json!(utf8(reader.bytes()?)?),
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok((key, value))
}

/// `meta.v1.Time`: seconds = 1, nanos = 2; None for the zero time.
fn time(data: &[u8]) -> Result<Option<Value>, ApiError> {
    let mut reader = Reader { data };
    let mut seconds = 0i64;
    while !reader.data.is_empty() {
        let tag = reader.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => seconds = reader.varint()? as i64,
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    if seconds == 0 {
        return Ok(None);
    }
    let timestamp =
        jiff::Timestamp::from_second(seconds).map_err(|_| malformed("timestamp out of range"))?;
    Ok(Some(json!(timestamp
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal protobuf writer for building test bodies.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bytes_field(1, key.as_bytes(), &mut e);
        bytes_field(2, value, &mut e);
        e
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut body = MAGIC.to_vec();
        bytes_field(1, &type_meta, &mut body);
        bytes_field(2, raw, &mut body);
        body
    }

    #[test]
    fn secret_bodies_decode_to_json_with_base64_data() {
        let mut meta = Vec::new();
        bytes_field(1, b"sh.helm.release.v1.demo.v1", &mut meta);
        bytes_field(11, &entry("owner", b"helm"), &mut meta);
        let mut secret = Vec::new();
        bytes_field(1, &meta, &mut secret);
        bytes_field(2, &entry("release", b"\x00\x01binary"), &mut secret);
        bytes_field(3, b"helm.sh/release.v1", &mut secret);
        let decoded = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "sh.helm.release.v1.demo.v1", "labels": {"owner": "helm"}},
                "data": {"release": "AAFiaW5hcnk="},
                "type": "helm.sh/release.v1",
            })
        );
    }

    #[test]
    fn delete_options_and_unknown_kinds() {
        let mut preconditions = Vec::new();
        bytes_field(2, b"42", &mut preconditions);
        let mut options = Vec::new();
        bytes_field(2, &preconditions, &mut options);
        bytes_field(4, b"Background", &mut options);
        let decoded = decode(&envelope("meta.k8s.io/v1", "DeleteOptions", &options)).unwrap();
        assert_eq!(decoded["preconditions"]["resourceVersion"], "42");
        assert_eq!(decoded["propagationPolicy"], "Background");
        assert_eq!(
            decode(&envelope("apps/v1", "Deployment", &[]))
                .unwrap_err()
                .code(),
            415
        );
        assert_eq!(decode(b"not protobuf").unwrap_err().code(), 400);
    }
}

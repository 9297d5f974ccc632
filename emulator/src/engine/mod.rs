//! The API operations on the state: create, get, list, update (PUT), patch,
//! server-side apply and delete, with the real server's bookkeeping
//! (resourceVersion preconditions, uid, generation, finalizers, status
//! subresource rules, managed fields, namespace and CRD lifecycles).

mod delete;
mod grace;
mod read;
mod write;

use std::sync::Arc;

use serde_json::{json, Value};

use super::error::ApiError;
use super::meta;
use super::resources::ResourceInfo;
use super::selectors::{FieldSelector, LabelSelector};
use super::state::{State, Target};

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager` query parameter, or one derived from the User-Agent.
    pub field_manager: String,
    /// Whether `fieldManager` was given explicitly (apply requires it).
    pub explicit_manager: bool,
    pub dry_run: bool,
    pub force: bool,
}

/// Label and field selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// Whether every object matches.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// What a DELETE did: removed the object, or marked it (finalizers pending).
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    Deleted(Value),
    Pending(Value),
}

impl State {
    fn require_name(target: &Target) -> Result<&str, ApiError> {
        target
            .name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("a resource name is required"))
    }

    fn namespace_of(target: &Target) -> &str {
        if target.info.namespaced {
            target.namespace.as_deref().unwrap_or("")
        } else {
            ""
        }
    }

    fn stored(&self, target: &Target, name: &str) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&target.key(), Self::namespace_of(target), name)
            .ok_or_else(|| ApiError::not_found(&target.info.qualified_name(), name))
    }

    fn check_namespace_open(&self, namespace: &str) -> Result<(), ApiError> {
        let key = self
            .registry
            .get("", "namespaces")
            .map(ResourceInfo::key)
            .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
        let ns = self
            .store
            .get(&key, "", namespace)
            .ok_or_else(|| ApiError::not_found("namespaces", namespace))?;
        if meta::is_deleting(&ns) {
            return Err(ApiError::Forbidden {
                message: format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
                group: String::new(),
                kind: "namespaces".into(),
                name: namespace.into(),
            });
        }
        Ok(())
    }

    /// Checks kind/apiVersion, name and namespace of a body against the URL,
    /// filling in what the body leaves out.
    fn check_identity(
        &self,
        target: &Target,
        object: &mut Value,
        url_name: Option<&str>,
    ) -> Result<(), ApiError> {
        let info = &target.info;
        let Some(map) = object.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        if !kind.is_empty() && kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the kind of the resource ({})",
                info.kind
            )));
        }
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group_of = |av: &str| {
            av.rsplit_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default()
        };
        if !api_version.is_empty() && group_of(api_version) != info.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API \
                 version ({})",
                target.api_version()
            )));
        }
        map.insert("kind".into(), json!(info.kind));
        map.insert("apiVersion".into(), json!(target.api_version()));
        let body_name = meta::name(object).to_string();
        if let Some(url_name) = url_name {
            if body_name.is_empty() {
                meta::set_meta(object, "name", Some(json!(url_name)));
            } else if body_name != url_name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
                )));
            }
        }
        let body_namespace = meta::namespace(object).to_string();
        if info.namespaced {
            let url_namespace = target.namespace.clone().unwrap_or_default();
            if url_namespace.is_empty() {
                return Err(ApiError::bad_request(
                    "a namespace is required for namespaced resources",
                ));
            }
            if body_namespace.is_empty() {
                meta::set_meta(object, "namespace", Some(json!(url_namespace)));
            } else if body_namespace != url_namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request",
                ));
            }
        } else if !body_namespace.is_empty() {
            meta::set_meta(object, "namespace", None);
        }
        Ok(())
    }
}

fn is_crd(info: &ResourceInfo) -> bool {
    !info.custom
        && info.group == "apiextensions.k8s.io"
        && info.plural == "customresourcedefinitions"
}

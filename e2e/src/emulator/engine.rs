//! The API operations on the state: create, get, list, update (PUT), patch,
//! server-side apply and delete, with the real server's bookkeeping
//! (resourceVersion preconditions, uid, generation, finalizers, status
//! subresource rules, managed fields, namespace and CRD lifecycles).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use super::convert;
use super::crd;
use super::defaults;
use super::error::{ApiError, Cause};
use super::meta;
use super::patch::{self, PatchKind};
use super::resources::{ResourceInfo, ResourceKey};
use super::schema;
use super::selectors::{FieldSelector, LabelSelector};
use super::ssa::{self, fieldset::Scope, Writer};
use super::state::{present, State, Target};
use super::validation;

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
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// How ownership of the written fields is recorded.
enum Ownership {
    /// A plain write by this manager.
    Update(String),
    /// Server-side apply already computed the managers.
    Applied(Vec<ssa::ManagerEntry>),
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

    pub fn get(&self, target: &Target) -> Result<Value, ApiError> {
        let name = Self::require_name(target)?;
        let object = self.stored(target, name)?;
        Ok(present(&object, &target.info, &target.version))
    }

    pub fn list(
        &self,
        target: &Target,
        selectors: &Selectors,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let (list_rv, after) = match continue_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, after) = decode_continue(token)?;
                if rv < self.store.compacted_rv() {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent \
                         list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(after))
            }
            None => (self.store.current_rv(), None),
        };
        let namespace = target
            .namespace
            .as_deref()
            .filter(|_| target.info.namespaced);
        // Selectors see objects as this API shows them (field names differ
        // between the two Event APIs).
        let matching: Vec<Value> = self
            .store
            .list(&target.key(), namespace, after.as_ref())
            .into_iter()
            .map(|o| present(&o, &target.info, &target.version))
            .filter(|o| selectors.matches(o))
            .collect();
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let total = matching.len();
        let page: Vec<Value> = matching.into_iter().take(limit).collect();
        let (continue_token, remaining) = match page.last() {
            Some(last) if total > limit => (
                Some(encode_continue(
                    list_rv,
                    meta::namespace(last),
                    meta::name(last),
                )),
                Some(total - limit),
            ),
            _ => (None, None),
        };
        Ok(ListPage {
            items: page,
            resource_version: list_rv,
            continue_token,
            remaining,
        })
    }

    pub fn create(
        &mut self,
        target: &Target,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if target.subresource.is_some() {
            return Err(ApiError::method_not_allowed(
                "create is not supported on subresources",
            ));
        }
        let mut object = body;
        self.check_identity(target, &mut object, None)?;
        let mut object = convert::to_storage(&target.info, object);
        if !meta::meta_str(&object, "resourceVersion").is_empty() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if meta::name(&object).is_empty() {
            let prefix = meta::meta_str(&object, "generateName").to_string();
            if !prefix.is_empty() {
                let generated = format!("{prefix}{}", meta::random_suffix());
                meta::set_meta(&mut object, "name", Some(json!(generated)));
            }
        }
        let ownership = Ownership::Update(options.field_manager.clone());
        self.insert_new(target, object, ownership, options.dry_run)
    }

    /// The shared tail of create and create-by-apply.
    fn insert_new(
        &mut self,
        target: &Target,
        mut object: Value,
        ownership: Ownership,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let info = &target.info;
        let name = meta::name(&object).to_string();
        let namespace = meta::namespace(&object).to_string();
        if info.namespaced {
            self.check_namespace_open(&namespace)?;
        }
        if self
            .store
            .get(&info.storage_key(), &namespace, &name)
            .is_some()
        {
            return Err(ApiError::already_exists(&info.qualified_name(), &name));
        }
        // Status is the controllers' to write; only Nodes may bring one along.
        let keeps_status = !info.custom && info.group.is_empty() && info.plural == "nodes";
        if info.has_status && !keeps_status {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        for server_field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ] {
            meta::set_meta(&mut object, server_field, None);
        }
        meta::set_meta(&mut object, "uid", Some(json!(meta::new_uid())));
        meta::set_meta(
            &mut object,
            "creationTimestamp",
            Some(json!(meta::now_rfc3339())),
        );
        meta::set_meta(&mut object, "generation", Some(json!(1)));
        let managers = match ownership {
            Ownership::Update(manager) => {
                let writer = self.writer(target, &manager);
                ssa::record_update(None, &object, Vec::new(), &writer)
            }
            Ownership::Applied(managers) => managers,
        };
        ssa::write_managers(&mut object, &managers);
        stamp_managers(&mut object, &target.api_version());
        self.finish_object(target, &mut object, None)?;
        if dry_run {
            return Ok(present(&object, info, &target.version));
        }
        let stored = self.store.put(&info.storage_key(), object);
        self.after_write(info, &stored);
        Ok(present(&stored, info, &target.version))
    }

    /// Defaulting, validation and type-specific hooks shared by every write.
    fn finish_object(
        &mut self,
        target: &Target,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let info = &target.info;
        defaults::apply(info, object, old, &mut self.allocators);
        if info.custom {
            if let Some(schema) = info.schemas.get(&target.version) {
                let causes = schema::prune_and_validate(object, schema);
                if !causes.is_empty() {
                    return Err(ApiError::invalid(&info.kind, meta::name(object), causes));
                }
            }
        }
        validation::validate(info, object)?;
        if is_crd(info) {
            crd::validate(object)?;
            let status = crd::established_status(object);
            if let Some(map) = object.as_object_mut() {
                map.insert("status".into(), status);
            }
        }
        Ok(())
    }

    fn after_write(&mut self, info: &ResourceInfo, stored: &Value) {
        if is_crd(info) {
            self.registry.insert(crd::resource_info(stored));
        }
    }

    /// PUT: replaces the object (or its status) after checking preconditions.
    pub fn update(
        &mut self,
        target: &Target,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let name = Self::require_name(target)?.to_string();
        let old = self.stored(target, &name)?;
        let mut object = body;
        self.check_identity(target, &mut object, Some(&name))?;
        let object = convert::to_storage(&target.info, object);
        let ownership = Ownership::Update(options.field_manager.clone());
        self.replace(target, &old, object, ownership, options.dry_run)
    }

    /// PATCH with a JSON, merge or strategic patch, or server-side apply.
    /// Returns the object and whether the patch created it (apply can).
    pub fn patch(
        &mut self,
        target: &Target,
        kind: PatchKind,
        body: &[u8],
        options: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        if kind == PatchKind::Apply {
            return self.apply(target, body, options);
        }
        let name = Self::require_name(target)?.to_string();
        let old = self.stored(target, &name)?;
        let current = present(&old, &target.info, &target.version);
        let mut patched = patch::apply_patch(kind, &current, body, target.info.custom)?;
        self.check_identity(target, &mut patched, Some(&name))?;
        let patched = convert::to_storage(&target.info, patched);
        let ownership = Ownership::Update(options.field_manager.clone());
        let object = self.replace(target, &old, patched, ownership, options.dry_run)?;
        Ok((object, false))
    }

    fn apply(
        &mut self,
        target: &Target,
        body: &[u8],
        options: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let name = Self::require_name(target)?.to_string();
        if !options.explicit_manager {
            return Err(ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "",
                vec![validation::required("fieldManager")],
            ));
        }
        let mut config: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "apply configuration must be an object",
            ));
        }
        self.check_identity(target, &mut config, Some(&name))?;
        let config = convert::to_storage(&target.info, config);
        let current = self
            .store
            .get(&target.key(), Self::namespace_of(target), &name);
        if current.is_none() && target.is_status() {
            return Err(ApiError::not_found(&target.info.qualified_name(), &name));
        }
        let writer = self.writer(target, &options.field_manager);
        let applied = ssa::apply(current.as_deref(), &config, options.force, &writer)
            .map_err(|conflicts| apply_conflict(&target.info, &name, conflicts))?;
        let ownership = Ownership::Applied(applied.managers);
        match current {
            None => {
                let created =
                    self.insert_new(target, applied.object, ownership, options.dry_run)?;
                Ok((created, true))
            }
            Some(old) => {
                let mut object = applied.object;
                // The applied configuration carries no resourceVersion precondition
                // unless it names one.
                let wanted_rv = meta::meta_str(&config, "resourceVersion").to_string();
                let rv = if wanted_rv.is_empty() {
                    None
                } else {
                    Some(json!(wanted_rv))
                };
                meta::set_meta(&mut object, "resourceVersion", rv);
                let updated = self.replace(target, &old, object, ownership, options.dry_run)?;
                Ok((updated, false))
            }
        }
    }

    fn writer<'a>(&self, target: &'a Target, manager: &'a str) -> Writer<'a> {
        let scope = if target.is_status() {
            Scope::StatusOnly
        } else if target.info.has_status {
            Scope::WithoutStatus
        } else {
            Scope::Whole
        };
        Writer {
            manager,
            subresource: target.subresource.as_deref().unwrap_or(""),
            api_version: API_VERSION_PLACEHOLDER,
            time: TIME_PLACEHOLDER,
            scope,
            builtin: !target.info.custom,
        }
    }

    /// The shared tail of update, patch and apply-to-existing.
    fn replace(
        &mut self,
        target: &Target,
        old: &Arc<Value>,
        mut object: Value,
        ownership: Ownership,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let info = &target.info;
        let name = meta::name(old).to_string();
        let wanted_rv = meta::meta_str(&object, "resourceVersion");
        if !wanted_rv.is_empty() && wanted_rv != meta::meta_str(old, "resourceVersion") {
            return Err(ApiError::stale(&info.qualified_name(), &name));
        }
        // Server-owned metadata cannot be changed by clients.
        for kept in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
        ] {
            let value = old.get("metadata").and_then(|m| m.get(kept)).cloned();
            meta::set_meta(&mut object, kept, value);
        }
        // The status subresource and the main resource each own their part.
        if target.is_status() {
            let status = object.get("status").cloned();
            let mut merged = (**old).clone();
            if let Some(map) = merged.as_object_mut() {
                match status {
                    Some(s) => map.insert("status".into(), s),
                    None => map.remove("status"),
                };
            }
            object = merged;
        } else if info.has_status {
            if let Some(map) = object.as_object_mut() {
                match old.get("status") {
                    Some(s) => map.insert("status".into(), s.clone()),
                    None => map.remove("status"),
                };
            }
        }
        if meta::is_deleting(old) {
            let before = meta::finalizers(old);
            if meta::finalizers(&object)
                .iter()
                .any(|f| !before.contains(f))
            {
                return Err(ApiError::invalid(
                    &info.kind,
                    &name,
                    vec![Cause::new(
                        "FieldValueForbidden",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                        "metadata.finalizers",
                    )],
                ));
            }
        }
        self.finish_object(target, &mut object, Some(old))?;
        if spec_changed(old, &object, info.has_status) {
            let generation = old
                .get("metadata")
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::set_meta(&mut object, "generation", Some(json!(generation + 1)));
        }
        let managers = match ownership {
            Ownership::Update(manager) => {
                let writer = self.writer(target, &manager);
                ssa::record_update(Some(old), &object, ssa::read_managers(old), &writer)
            }
            Ownership::Applied(managers) => managers,
        };
        ssa::write_managers(&mut object, &managers);
        stamp_managers(&mut object, &target.api_version());
        if same_content(old, &object) {
            // No-op writes do not bump the resourceVersion or notify watchers.
            return Ok(present(old, info, &target.version));
        }
        if dry_run {
            return Ok(present(&object, info, &target.version));
        }
        if meta::is_deleting(&object) && meta::finalizers(&object).is_empty() {
            let namespace = meta::namespace(&object).to_string();
            let gone = self.remove_object(&info.storage_key(), &namespace, &name);
            let last = gone.map(|g| (*g).clone()).unwrap_or(object);
            return Ok(present(&last, info, &target.version));
        }
        let stored = self.store.put(&info.storage_key(), object);
        self.after_write(info, &stored);
        Ok(present(&stored, info, &target.version))
    }

    /// DELETE of one object, honouring preconditions and finalizers.
    pub fn delete(
        &mut self,
        target: &Target,
        delete_options: &Value,
        dry_run: bool,
    ) -> Result<DeleteOutcome, ApiError> {
        let name = Self::require_name(target)?.to_string();
        let old = self.stored(target, &name)?;
        let info = &target.info;
        let preconditions = delete_options.get("preconditions");
        for (field, what) in [("resourceVersion", "ResourceVersion"), ("uid", "UID")] {
            let wanted = preconditions
                .and_then(|p| p.get(field))
                .and_then(Value::as_str)
                .unwrap_or("");
            let actual = meta::meta_str(&old, field);
            if !wanted.is_empty() && wanted != actual {
                return Err(ApiError::precondition_failed(
                    &info.qualified_name(),
                    &name,
                    &format!(
                        "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
                    ),
                ));
            }
        }
        if dry_run {
            return Ok(DeleteOutcome::Deleted(present(&old, info, &target.version)));
        }
        if meta::is_deleting(&old) {
            return Ok(DeleteOutcome::Pending(present(&old, info, &target.version)));
        }
        let namespace = meta::namespace(&old).to_string();
        let is_namespace = !info.custom && info.group.is_empty() && info.plural == "namespaces";
        if !meta::finalizers(&old).is_empty() || is_namespace {
            let mut marked = (*old).clone();
            meta::set_meta(
                &mut marked,
                "deletionTimestamp",
                Some(json!(meta::now_rfc3339())),
            );
            meta::set_meta(&mut marked, "deletionGracePeriodSeconds", Some(json!(0)));
            if is_namespace {
                marked["status"] = json!({"phase": "Terminating"});
            }
            let stored = self.store.put(&info.storage_key(), marked);
            if is_namespace {
                self.empty_namespace(&name);
                if let Some(finished) = self.finish_namespace(&name) {
                    return Ok(DeleteOutcome::Deleted(present(
                        &finished,
                        info,
                        &target.version,
                    )));
                }
                let current = self
                    .store
                    .get(&info.storage_key(), "", &name)
                    .unwrap_or(stored);
                return Ok(DeleteOutcome::Pending(present(
                    &current,
                    info,
                    &target.version,
                )));
            }
            return Ok(DeleteOutcome::Pending(present(
                &stored,
                info,
                &target.version,
            )));
        }
        let gone = self
            .remove_object(&info.storage_key(), &namespace, &name)
            .unwrap_or(old);
        Ok(DeleteOutcome::Deleted(present(
            &gone,
            info,
            &target.version,
        )))
    }

    /// DELETE on a collection: deletes every matching object.
    pub fn delete_collection(
        &mut self,
        target: &Target,
        selectors: &Selectors,
        delete_options: &Value,
        dry_run: bool,
    ) -> Result<ListPage, ApiError> {
        let page = self.list(target, selectors, None, None)?;
        let mut deleted = Vec::new();
        for item in &page.items {
            let mut one = target.clone();
            one.name = Some(meta::name(item).to_string());
            if target.info.namespaced {
                one.namespace = Some(meta::namespace(item).to_string());
            }
            match self.delete(&one, delete_options, dry_run)? {
                DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => deleted.push(o),
            }
        }
        Ok(ListPage {
            items: deleted,
            resource_version: self.store.current_rv(),
            continue_token: None,
            remaining: None,
        })
    }

    /// Removes an object for good, with the cascades the real control plane
    /// would run: a CRD takes its custom resources and type with it, and the
    /// last object of a terminating namespace lets the namespace go.
    fn remove_object(
        &mut self,
        resource: &ResourceKey,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let removed = self.store.remove(resource, namespace, name)?;
        let removed_crd = self
            .registry
            .get(&resource.group, &resource.plural)
            .is_some_and(is_crd);
        if removed_crd {
            let defined = crd::resource_info(&removed).key();
            for object in self.store.list(&defined, None, None) {
                self.store
                    .remove(&defined, meta::namespace(&object), meta::name(&object));
            }
            self.registry.remove(&defined);
        }
        if !namespace.is_empty() {
            self.finish_namespace(namespace);
        }
        Some(removed)
    }

    /// Deletes everything in a terminating namespace (objects with finalizers
    /// are only marked).
    fn empty_namespace(&mut self, namespace: &str) {
        let namespaced: Vec<ResourceInfo> = self
            .registry
            .all()
            .filter(|i| i.namespaced)
            .cloned()
            .collect();
        for info in namespaced {
            for object in self.store.list(&info.storage_key(), Some(namespace), None) {
                let name = meta::name(&object).to_string();
                if meta::finalizers(&object).is_empty() {
                    self.store.remove(&info.storage_key(), namespace, &name);
                } else if !meta::is_deleting(&object) {
                    let mut marked = (*object).clone();
                    meta::set_meta(
                        &mut marked,
                        "deletionTimestamp",
                        Some(json!(meta::now_rfc3339())),
                    );
                    meta::set_meta(&mut marked, "deletionGracePeriodSeconds", Some(json!(0)));
                    self.store.put(&info.storage_key(), marked);
                }
            }
        }
    }

    /// Removes a terminating namespace once it is empty and unfinalized.
    fn finish_namespace(&mut self, namespace: &str) -> Option<Arc<Value>> {
        let key = self.registry.get("", "namespaces")?.key();
        let ns = self.store.get(&key, "", namespace)?;
        if meta::is_deleting(&ns)
            && meta::finalizers(&ns).is_empty()
            && self.store.namespace_is_empty(namespace)
        {
            return self.store.remove(&key, "", namespace);
        }
        None
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

/// What a DELETE did: removed the object, or marked it (finalizers pending).
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    Deleted(Value),
    Pending(Value),
}

const API_VERSION_PLACEHOLDER: &str = "";
const TIME_PLACEHOLDER: &str = "";

/// Fills apiVersion and time into entries written during this request.
fn stamp_managers(object: &mut Value, api_version: &str) {
    let now = meta::now_rfc3339();
    if let Some(Value::Array(entries)) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
    {
        for entry in entries.iter_mut() {
            if entry.get("time").and_then(Value::as_str) == Some(TIME_PLACEHOLDER) {
                entry["time"] = json!(now);
            }
            if entry.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION_PLACEHOLDER) {
                entry["apiVersion"] = json!(api_version);
            }
        }
    }
}

fn is_crd(info: &ResourceInfo) -> bool {
    !info.custom
        && info.group == "apiextensions.k8s.io"
        && info.plural == "customresourcedefinitions"
}

/// Whether anything besides metadata (and status, where it is a
/// subresource) changed: that is what bumps `metadata.generation`.
fn spec_changed(old: &Value, new: &Value, has_status: bool) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            if has_status {
                map.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// Equal but for resourceVersion and managed-field timestamps.
fn same_content(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta::set_meta(&mut v, "resourceVersion", None);
        if let Some(Value::Array(entries)) = v
            .get_mut("metadata")
            .and_then(|m| m.get_mut("managedFields"))
        {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
        v
    };
    strip(old) == strip(new)
}

fn apply_conflict(info: &ResourceInfo, name: &str, conflicts: Vec<ssa::Conflict>) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|c| {
            Cause::new(
                "FieldManagerConflict",
                format!("conflict with \"{}\"", c.manager),
                c.field.clone(),
            )
        })
        .collect();
    let listed: Vec<String> = conflicts
        .iter()
        .map(|c| format!("- conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    let noun = if conflicts.len() == 1 {
        "conflict"
    } else {
        "conflicts"
    };
    ApiError::Conflict {
        message: format!(
            "Apply failed with {} {noun}: {}",
            conflicts.len(),
            listed.join("\n")
        ),
        kind: info.qualified_name(),
        name: name.to_string(),
        causes,
    }
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let token = json!({"rv": rv, "ns": namespace, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let invalid = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = value
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    let text = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok((rv, (text("ns"), text("name"))))
}

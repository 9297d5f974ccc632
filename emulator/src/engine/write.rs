//! Writes: create, update (PUT), patch and server-side apply, sharing one
//! pipeline for preconditions, server-owned metadata, status rules,
//! defaulting and validation, generation, managed fields and no-op detection.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{is_crd, WriteOptions};
use crate::convert;
use crate::crd;
use crate::defaults;
use crate::error::{ApiError, Cause};
use crate::meta;
use crate::patch::{self, PatchKind};
use crate::resources::ResourceInfo;
use crate::schema;
use crate::ssa::{self, fieldset::Scope, Writer};
use crate::state::{present, State, Target};
use crate::validation;

/// How ownership of the written fields is recorded.
enum Ownership {
    /// A plain write by this manager.
    Update(String),
    /// Server-side apply already computed the managers.
    Applied(Vec<ssa::ManagerEntry>),
}

impl State {
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
        meta::stamp_created(&mut object);
        let managers = match ownership {
            Ownership::Update(manager) => {
                let writer = self.writer(target, &manager);
                ssa::record_update(None, &object, Vec::new(), &writer)
            }
            Ownership::Applied(managers) => managers,
        };
        ssa::write_managers(&mut object, &managers);
        if !info.custom && info.group.is_empty() && info.plural == "pods" {
            self.admit_pod(&mut object)?;
        }
        self.finish_object(target, &mut object, None)?;
        if dry_run {
            return Ok(present(&object, info, &target.version));
        }
        let stored = self.store.put(&info.storage_key(), object);
        self.after_write(info, &stored);
        // Only on create: the controllers that make these act once, when the
        // namespace appears.
        if !info.custom && info.group.is_empty() && info.plural == "namespaces" {
            self.populate_namespace(meta::name(&stored));
        }
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
                let mut causes = schema::prune_and_validate(object, schema);
                if causes.is_empty() {
                    causes = schema::cel_causes(object, schema, old);
                }
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
            api_version: target.api_version(),
            time: meta::now_rfc3339(),
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
        if same_content(old, &object) {
            // No-op writes do not bump the resourceVersion or notify watchers.
            return Ok(present(old, info, &target.version));
        }
        if dry_run {
            return Ok(present(&object, info, &target.version));
        }
        // As the real server's ShouldDeleteDuringUpdate: an object still in
        // its grace period (a Pod its kubelet is stopping) stays.
        let in_grace = object["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|grace| grace > 0);
        if meta::is_deleting(&object) && meta::finalizers(&object).is_empty() && !in_grace {
            let namespace = meta::namespace(&object).to_string();
            let gone = self.remove_object(&info.storage_key(), &namespace, &name);
            let last = gone.map(|g| (*g).clone()).unwrap_or(object);
            return Ok(present(&last, info, &target.version));
        }
        let stored = self.store.put(&info.storage_key(), object);
        self.after_write(info, &stored);
        Ok(present(&stored, info, &target.version))
    }
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

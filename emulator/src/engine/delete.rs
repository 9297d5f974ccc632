//! Deletion: preconditions, finalizers and deletionTimestamp, collections,
//! and the cascades the real control plane runs (namespace contents, a
//! CRD's custom resources).

use std::sync::Arc;

use serde_json::{json, Value};

use super::{grace, is_crd, DeleteOutcome, ListPage, Selectors};
use crate::crd;
use crate::error::ApiError;
use crate::meta;
use crate::resources::{ResourceInfo, ResourceKey};
use crate::state::{present, State, Target};

impl State {
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
        let is_pod = !info.custom && info.group.is_empty() && info.plural == "pods";
        if is_pod {
            if let Some(outcome) = self.delete_pod_gracefully(target, &old, delete_options) {
                return Ok(outcome);
            }
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

    /// A Pod's graceful deletion: marks it (or shortens its deadline) when it
    /// gets a grace period, removes it when a grace-0 DELETE follows one.
    /// None: the ordinary deletion applies.
    fn delete_pod_gracefully(
        &mut self,
        target: &Target,
        old: &Arc<Value>,
        delete_options: &Value,
    ) -> Option<DeleteOutcome> {
        let info = &target.info;
        let grace = grace::pod_grace_seconds(old, delete_options);
        if grace == 0 {
            if !meta::is_deleting(old) || !meta::finalizers(old).is_empty() {
                return None;
            }
            let gone = self
                .remove_object(&info.storage_key(), meta::namespace(old), meta::name(old))
                .unwrap_or_else(|| old.clone());
            return Some(DeleteOutcome::Deleted(present(
                &gone,
                info,
                &target.version,
            )));
        }
        if meta::is_deleting(old) && !grace::shortens(old, grace) {
            return Some(DeleteOutcome::Pending(present(old, info, &target.version)));
        }
        let mut marked = (**old).clone();
        meta::set_meta(
            &mut marked,
            "deletionTimestamp",
            Some(json!(meta::rfc3339_after(grace))),
        );
        meta::set_meta(
            &mut marked,
            "deletionGracePeriodSeconds",
            Some(json!(grace)),
        );
        let stored = self.store.put(&info.storage_key(), marked);
        Some(DeleteOutcome::Pending(present(
            &stored,
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
    pub(super) fn remove_object(
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
}

//! `translate`: cluster objects in, routing snapshot and diagnostics out.
//! Pure and deterministic: no I/O, no clock, no randomness. Every object or
//! rule it leaves out yields a [`Diagnostic`]; nothing else is affected.

pub mod backend;
pub mod class;
pub mod diagnostics;

#[cfg(test)]
mod tests;

use crate::state::ClusterState;
use backend::PortRef;
use class::{class_status, is_ours, ClassConfig, ClassStatus};
pub use diagnostics::Diagnostic;
use diagnostics::Diagnostics;
use gatehouse_model::{
    Backend, BackendId, HostMatch, ObjectRef, PathMatch, Route, Snapshot, VirtualHost,
};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use std::collections::{BTreeMap, HashMap};

/// The result of one translation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translation {
    pub snapshot: Snapshot,
    pub diagnostics: Vec<Diagnostic>,
    /// The Ingresses this controller serves (for status and metrics).
    pub served_ingresses: Vec<ObjectRef>,
}

/// Builds the snapshot for the current cluster state.
pub fn translate(state: &ClusterState, config: &ClassConfig) -> Translation {
    let mut diags = Diagnostics::default();
    let status = class_status(config, &state.ingress_classes);
    if let ClassStatus::Foreign { controller } = &status {
        diags.push(
            &ObjectRef::new("IngressClass", "", &config.class_name),
            "ForeignIngressClass",
            format!(
                "IngressClass {} belongs to controller {controller:?}, not {:?}; no Ingress is served",
                config.class_name, config.controller_name
            ),
        );
    }

    let mut ours: Vec<&Ingress> = state
        .ingresses
        .values()
        .filter(|ing| is_ours(config, &status, ing))
        .collect();
    // Oldest first: on conflicts the first claim wins.
    ours.sort_by(|a, b| age_key(a).cmp(&age_key(b)));

    let mut builder = SnapshotBuilder::new(state);
    for ingress in &ours {
        builder.add_ingress(ingress, &mut diags);
    }
    let served_ingresses = ours.iter().map(|i| ingress_ref(i)).collect();
    Translation {
        snapshot: builder.finish(),
        diagnostics: diags.into_sorted(),
        served_ingresses,
    }
}

fn age_key(
    ing: &Ingress,
) -> (
    Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    &str,
    &str,
) {
    let m = &ing.metadata;
    (
        m.creation_timestamp.as_ref(),
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or(""),
    )
}

fn ingress_ref(ing: &Ingress) -> ObjectRef {
    ObjectRef::new(
        "Ingress",
        ing.metadata.namespace.as_deref().unwrap_or("default"),
        ing.metadata.name.as_deref().unwrap_or(""),
    )
}

/// Accumulates routes while enforcing "first claim wins".
struct SnapshotBuilder<'a> {
    state: &'a ClusterState,
    hosts: BTreeMap<HostMatch, Vec<Route>>,
    claims: HashMap<(HostMatch, PathMatch), ObjectRef>,
    default_backend: Option<(BackendId, ObjectRef)>,
    backends: BTreeMap<BackendId, Backend>,
    /// Backend problems, reported on every Ingress that uses the backend.
    backend_problems: HashMap<BackendId, Option<String>>,
}

impl<'a> SnapshotBuilder<'a> {
    fn new(state: &'a ClusterState) -> Self {
        SnapshotBuilder {
            state,
            hosts: BTreeMap::new(),
            claims: HashMap::new(),
            default_backend: None,
            backends: BTreeMap::new(),
            backend_problems: HashMap::new(),
        }
    }

    fn add_ingress(&mut self, ing: &Ingress, diags: &mut Diagnostics) {
        let obj = ingress_ref(ing);
        let namespace = obj.namespace.clone();
        let Some(spec) = ing.spec.as_ref() else {
            diags.push(&obj, "NoRules", "Ingress has no spec; nothing to serve");
            return;
        };
        let rules = spec.rules.as_deref().unwrap_or_default();
        if rules.is_empty() && spec.default_backend.is_none() {
            diags.push(
                &obj,
                "NoRules",
                "Ingress has neither rules nor a defaultBackend",
            );
        }

        if let Some(def) = &spec.default_backend {
            if let Some(id) = self.backend(&namespace, def, &obj, "spec.defaultBackend", diags) {
                match &self.default_backend {
                    None => self.default_backend = Some((id, obj.clone())),
                    Some((_, owner)) if owner != &obj => diags.push(
                        &obj,
                        "DefaultBackendConflict",
                        format!("spec.defaultBackend ignored: {owner} is older and sets the default backend"),
                    ),
                    Some(_) => {}
                }
            }
        }

        for (ri, rule) in rules.iter().enumerate() {
            let raw_host = rule.host.as_deref().unwrap_or("");
            let host = match HostMatch::parse(raw_host) {
                Ok(h) => h,
                Err(e) => {
                    diags.push(
                        &obj,
                        "InvalidHost",
                        format!("spec.rules[{ri}] skipped: {e}"),
                    );
                    continue;
                }
            };
            let Some(http) = &rule.http else { continue };
            for (pi, p) in http.paths.iter().enumerate() {
                let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                let path = match PathMatch::parse(&p.path_type, p.path.as_deref()) {
                    Ok(m) => m,
                    Err(e) => {
                        diags.push(&obj, "InvalidPath", format!("{field} skipped: {e}"));
                        continue;
                    }
                };
                let Some(backend) = self.backend(&namespace, &p.backend, &obj, &field, diags)
                else {
                    continue;
                };
                self.claim(&obj, host.clone(), path, backend, &field, diags);
            }
        }
    }

    fn claim(
        &mut self,
        obj: &ObjectRef,
        host: HostMatch,
        path: PathMatch,
        backend: BackendId,
        field: &str,
        diags: &mut Diagnostics,
    ) {
        let slot = (host.clone(), path.clone());
        if let Some(owner) = self.claims.get(&slot) {
            let (reason, why) = if owner == obj {
                (
                    "DuplicatePath",
                    "an earlier rule of this Ingress has the same host and path".to_owned(),
                )
            } else {
                (
                    "HostPathConflict",
                    format!("{owner} is older and serves the same host and path"),
                )
            };
            let host_text = if host == HostMatch::Any {
                "*".to_owned()
            } else {
                host.to_string()
            };
            diags.push(
                obj,
                reason,
                format!("{field} ({host_text} {path}) skipped: {why}"),
            );
            return;
        }
        self.claims.insert(slot, obj.clone());
        self.hosts.entry(host).or_default().push(Route {
            path,
            backend,
            source: obj.clone(),
        });
    }

    /// Resolves an Ingress backend to a snapshot backend id, registering the
    /// backend. `None` (with a diagnostic) when the reference itself is unusable.
    fn backend(
        &mut self,
        namespace: &str,
        backend: &IngressBackend,
        obj: &ObjectRef,
        field: &str,
        diags: &mut Diagnostics,
    ) -> Option<BackendId> {
        if backend.resource.is_some() {
            diags.push(
                obj,
                "UnsupportedBackend",
                format!("{field}: resource backends are not supported; skipped"),
            );
            return None;
        }
        let Some(svc) = &backend.service else {
            diags.push(
                obj,
                "InvalidBackend",
                format!("{field}: backend names no service; skipped"),
            );
            return None;
        };
        let port = match svc.port.as_ref().map(|p| (p.number, p.name.as_deref())) {
            Some((Some(n), None)) => PortRef::Number(n),
            Some((None, Some(name))) if !name.is_empty() => PortRef::Name(name.to_owned()),
            _ => {
                diags.push(
                    obj,
                    "InvalidBackend",
                    format!("{field}: service {} needs exactly one of port.number or port.name; skipped", svc.name),
                );
                return None;
            }
        };
        let id = BackendId::new(namespace, &svc.name, &port.as_key());
        if !self.backends.contains_key(&id) {
            let (resolved, problem) = backend::resolve(self.state, namespace, &svc.name, &port);
            self.backends.insert(id.clone(), resolved);
            self.backend_problems
                .insert(id.clone(), problem.map(|p| p.to_string()));
        }
        if let Some(Some(problem)) = self.backend_problems.get(&id) {
            diags.push(obj, "BackendUnavailable", format!("{field}: {problem}"));
        }
        Some(id)
    }

    fn finish(mut self) -> Snapshot {
        // Keep only backends that a served route or the default backend uses.
        let mut used: std::collections::HashSet<BackendId> = self
            .hosts
            .values()
            .flatten()
            .map(|r| r.backend.clone())
            .collect();
        if let Some((id, _)) = &self.default_backend {
            used.insert(id.clone());
        }
        self.backends.retain(|id, _| used.contains(id));
        let virtual_hosts = self
            .hosts
            .into_iter()
            .map(|(host, mut routes)| {
                routes.sort_by(|a, b| a.path.cmp(&b.path));
                VirtualHost { host, routes }
            })
            .collect();
        Snapshot {
            virtual_hosts,
            default_backend: self.default_backend.map(|(id, _)| id),
            backends: self.backends,
        }
    }
}

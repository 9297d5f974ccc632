//! `translate`: cluster objects in, routing snapshot and diagnostics out.
//! Pure and deterministic: no I/O, no clock, no randomness. Every object or
//! rule it leaves out yields a [`Diagnostic`]; nothing else is affected.

pub mod backend;
pub mod class;
pub mod diagnostics;
pub mod tls;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use crate::state::{ClusterState, ObjectKey};
use backend::PortRef;
use class::{class_status, is_ours, ClassConfig, ClassStatus};
use diagnostics::Diagnostics;
pub use diagnostics::{Diagnostic, Reason};
use gatehouse_model::{
    Backend, BackendId, Certificate, CertificateId, HostMatch, ObjectRef, PathMatch, Route,
    Snapshot, TlsHost, VirtualHost,
};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressTLS};
use std::collections::{BTreeMap, HashMap};
use tls::{redirect_policy, RedirectPolicy, SecretCache};

/// Everything translation depends on besides the cluster objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateConfig {
    pub classes: ClassConfig,
    /// `namespace/name` of the Secret for handshakes no TLS host matches.
    pub default_certificate: Option<ObjectKey>,
    /// The current time (unix seconds), for certificate validity.
    pub now: i64,
}

impl TranslateConfig {
    /// Defaults, at the given time.
    pub fn at(now: i64) -> Self {
        TranslateConfig {
            classes: ClassConfig::default(),
            default_certificate: None,
            now,
        }
    }
}

/// The result of one translation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translation {
    pub snapshot: Snapshot,
    pub diagnostics: Vec<Diagnostic>,
    /// The Ingresses this controller serves (for status and metrics).
    pub served_ingresses: Vec<ObjectRef>,
}

/// Builds the snapshot for the current cluster state.
pub fn translate(state: &ClusterState, config: &TranslateConfig) -> Translation {
    let mut diags = Diagnostics::default();
    let classes = &config.classes;
    let status = class_status(classes, &state.ingress_classes);
    if let ClassStatus::Foreign { controller } = &status {
        diags.push(
            &ObjectRef::new("IngressClass", "", &classes.class_name),
            Reason::ForeignIngressClass,
            format!(
                "IngressClass {} belongs to controller {controller:?}, not {:?}; no Ingress is served",
                classes.class_name, classes.controller_name
            ),
        );
    }

    let mut ours: Vec<&Ingress> = state
        .ingresses
        .values()
        .map(|ing| &**ing)
        .filter(|ing| is_ours(classes, &status, ing))
        .collect();
    // Oldest first: on conflicts the first claim wins.
    ours.sort_by(|a, b| age_key(a).cmp(&age_key(b)));

    let mut builder = SnapshotBuilder::new(state, config.now);
    if let Some(key) = &config.default_certificate {
        builder.set_default_certificate(&key.namespace, &key.name, &mut diags);
    }
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
    slices: backend::SliceIndex<'a>,
    hosts: BTreeMap<HostMatch, Vec<Route>>,
    claims: HashMap<(HostMatch, PathMatch), ObjectRef>,
    default_backend: Option<(BackendId, ObjectRef)>,
    backends: BTreeMap<BackendId, Backend>,
    /// Backend problems, reported on every Ingress that uses the backend.
    backend_problems: HashMap<BackendId, Option<String>>,
    secrets: SecretCache<'a>,
    /// TLS hosts: first claim wins, like routes.
    tls_hosts: BTreeMap<HostMatch, (ObjectRef, Option<CertificateId>)>,
    certificates: BTreeMap<CertificateId, Certificate>,
    default_certificate: Option<CertificateId>,
    redirects: HashMap<ObjectRef, RedirectPolicy>,
}

impl<'a> SnapshotBuilder<'a> {
    fn new(state: &'a ClusterState, now: i64) -> Self {
        SnapshotBuilder {
            state,
            slices: backend::SliceIndex::new(state),
            hosts: BTreeMap::new(),
            claims: HashMap::new(),
            default_backend: None,
            backends: BTreeMap::new(),
            backend_problems: HashMap::new(),
            secrets: SecretCache::new(state, now),
            tls_hosts: BTreeMap::new(),
            certificates: BTreeMap::new(),
            default_certificate: None,
            redirects: HashMap::new(),
        }
    }

    fn set_default_certificate(&mut self, namespace: &str, name: &str, diags: &mut Diagnostics) {
        match self.secrets.get(namespace, name) {
            Ok(cert) => {
                self.certificates.insert(cert.id.clone(), cert.material.clone());
                self.default_certificate = Some(cert.id.clone());
            }
            Err(problem) => diags.push(
                &ObjectRef::new("Secret", namespace, name),
                problem.reason(),
                format!("--default-certificate not used: {problem}; the gateways' self-signed certificate serves instead"),
            ),
        }
    }

    /// Registers the Ingress's `tls` entries.
    fn add_tls(
        &mut self,
        ing: &Ingress,
        obj: &ObjectRef,
        entries: &[IngressTLS],
        diags: &mut Diagnostics,
    ) {
        for (ti, entry) in entries.iter().enumerate() {
            let field = format!("spec.tls[{ti}]");
            let hosts: Vec<String> = match entry.hosts.as_deref() {
                Some(h) if !h.is_empty() => h.to_vec(),
                // No hosts: the entry covers the hosts of this Ingress's rules.
                _ => ing
                    .spec
                    .as_ref()
                    .and_then(|s| s.rules.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.host.clone())
                    .filter(|h| !h.is_empty())
                    .collect(),
            };
            if hosts.is_empty() {
                diags.push(
                    obj,
                    Reason::InvalidTls,
                    format!("{field} names no hosts and the Ingress has no rule hosts; skipped"),
                );
                continue;
            }
            let certificate = match entry.secret_name.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(secret) => match self.secrets.get(&obj.namespace, secret) {
                    Ok(cert) => {
                        self.certificates
                            .insert(cert.id.clone(), cert.material.clone());
                        Some(cert.clone())
                    }
                    Err(problem) => {
                        diags.push_related(
                            obj,
                            ObjectRef::new("Secret", &obj.namespace, secret),
                            problem.reason(),
                            format!("{field}: {problem}; its hosts are served with the default certificate"),
                        );
                        None
                    }
                },
            };
            for raw in &hosts {
                let host = match HostMatch::parse(raw) {
                    Ok(h) => h,
                    Err(e) => {
                        diags.push(obj, Reason::InvalidHost, format!("{field}: {e}; skipped"));
                        continue;
                    }
                };
                if let Some(cert) = &certificate {
                    if !cert.parsed.covers(&host) {
                        diags.push_related(
                            obj,
                            ObjectRef::new("Secret", &obj.namespace, entry.secret_name.as_deref().unwrap_or_default()),
                            Reason::CertificateHostMismatch,
                            format!("{field}: certificate {} does not name {raw} (it names {:?}); served anyway", cert.id, cert.dns_names),
                        );
                    }
                }
                let cert_id = certificate.as_ref().map(|c| c.id.clone());
                match self.tls_hosts.get(&host) {
                    None => {
                        self.tls_hosts.insert(host, (obj.clone(), cert_id));
                    }
                    Some((owner, existing)) if owner != obj && existing != &cert_id => diags.push(
                        obj,
                        Reason::TlsHostConflict,
                        format!("{field}: {owner} is older and sets the certificate for {raw}; this one is ignored for it"),
                    ),
                    Some(_) => {}
                }
            }
        }
    }

    /// Whether requests for a route host are covered by a TLS host.
    fn host_has_tls(&self, host: &HostMatch) -> bool {
        if self.tls_hosts.contains_key(host) {
            return true;
        }
        match host {
            HostMatch::Exact(h) => gatehouse_model::host::wildcard_suffix(h).is_some_and(|s| {
                self.tls_hosts
                    .contains_key(&HostMatch::Wildcard(s.to_owned()))
            }),
            _ => false,
        }
    }

    fn add_ingress(&mut self, ing: &Ingress, diags: &mut Diagnostics) {
        let obj = ingress_ref(ing);
        let namespace = obj.namespace.clone();
        let Some(spec) = ing.spec.as_ref() else {
            diags.push(
                &obj,
                Reason::NoRules,
                "Ingress has no spec; nothing to serve",
            );
            return;
        };
        let rules = spec.rules.as_deref().unwrap_or_default();
        if rules.is_empty() && spec.default_backend.is_none() {
            diags.push(
                &obj,
                Reason::NoRules,
                "Ingress has neither rules nor a defaultBackend",
            );
        }
        self.redirects
            .insert(obj.clone(), redirect_policy(ing, &obj, diags));
        if let Some(entries) = &spec.tls {
            self.add_tls(ing, &obj, entries, diags);
        }

        if let Some(def) = &spec.default_backend {
            if let Some(id) = self.backend(&namespace, def, &obj, "spec.defaultBackend", diags) {
                match &self.default_backend {
                    None => self.default_backend = Some((id, obj.clone())),
                    Some((_, owner)) if owner != &obj => diags.push(
                        &obj,
                        Reason::DefaultBackendConflict,
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
                        Reason::InvalidHost,
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
                        diags.push(&obj, Reason::InvalidPath, format!("{field} skipped: {e}"));
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
                    Reason::DuplicatePath,
                    "an earlier rule of this Ingress has the same host and path".to_owned(),
                )
            } else {
                (
                    Reason::HostPathConflict,
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
            redirect_to_https: false, // decided in finish(), once all TLS hosts are known
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
                Reason::UnsupportedBackend,
                format!("{field}: resource backends are not supported; skipped"),
            );
            return None;
        }
        let Some(svc) = &backend.service else {
            diags.push(
                obj,
                Reason::InvalidBackend,
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
                    Reason::InvalidBackend,
                    format!("{field}: service {} needs exactly one of port.number or port.name; skipped", svc.name),
                );
                return None;
            }
        };
        let id = BackendId::new(namespace, &svc.name, &port);
        if !self.backends.contains_key(&id) {
            let (resolved, problem) =
                backend::resolve(self.state, &self.slices, namespace, &svc.name, &port);
            self.backends.insert(id.clone(), resolved);
            self.backend_problems
                .insert(id.clone(), problem.map(|p| p.to_string()));
        }
        if let Some(Some(problem)) = self.backend_problems.get(&id) {
            diags.push_related(
                obj,
                ObjectRef::new("Service", namespace, &svc.name),
                Reason::BackendUnavailable,
                format!("{field}: {problem}"),
            );
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
        let hosts = std::mem::take(&mut self.hosts);
        let virtual_hosts = hosts
            .into_iter()
            .map(|(host, mut routes)| {
                let has_tls = self.host_has_tls(&host);
                for r in &mut routes {
                    let policy = self
                        .redirects
                        .get(&r.source)
                        .copied()
                        .unwrap_or(RedirectPolicy {
                            when_tls: true,
                            always: false,
                        });
                    r.redirect_to_https = policy.always || (has_tls && policy.when_tls);
                }
                routes.sort_by(|a, b| a.path.cmp(&b.path));
                VirtualHost { host, routes }
            })
            .collect();
        let tls_hosts: Vec<TlsHost> = self
            .tls_hosts
            .into_iter()
            .map(|(host, (_, certificate))| TlsHost { host, certificate })
            .collect();
        let mut certificates = self.certificates;
        certificates.retain(|id, _| {
            self.default_certificate.as_ref() == Some(id)
                || tls_hosts.iter().any(|t| t.certificate.as_ref() == Some(id))
        });
        Snapshot {
            virtual_hosts,
            default_backend: self.default_backend.map(|(id, _)| id),
            backends: self.backends,
            tls_hosts,
            default_certificate: self.default_certificate,
            certificates,
        }
    }
}

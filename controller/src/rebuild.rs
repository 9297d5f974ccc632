//! The rebuild step both sources share: cluster state in, snapshot (or
//! endpoint update) out to the gateways, diagnostics and served Ingresses
//! out to whoever reports them (logs; in cluster mode Events and status).
//!
//! A source records what changed in a [`ChangeSet`]. When only
//! EndpointSlices changed, the backends of the affected Services get new
//! endpoint lists ([`refresh_endpoints`]) and the gateways an endpoints
//! frame; anything else translates the whole state again.

use crate::metrics as m;
use crate::publisher::Publisher;
use crate::report::DiagnosticLog;
use crate::state::{ClusterState, Kind, Object, ObjectKey};
use crate::translate::backend::{refresh_endpoints, slice_owner};
use crate::translate::{translate, Diagnostic, TranslateConfig};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// What changed since the last rebuild.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Something other than EndpointSlices changed: translate everything.
    full: bool,
    /// Services whose EndpointSlices changed.
    endpoint_services: BTreeSet<ObjectKey>,
    /// Object changes recorded, for logs.
    changes: usize,
}

impl ChangeSet {
    /// A change that needs a full translation (start-up, relists, resyncs).
    pub fn everything() -> Self {
        ChangeSet {
            full: true,
            ..ChangeSet::default()
        }
    }

    /// Records one object change: `old` is what the state held before,
    /// `new` what it holds now (`None` for a deletion).
    pub fn record(&mut self, kind: Kind, old: Option<&Object>, new: Option<&Object>) {
        self.changes += 1;
        if kind != Kind::EndpointSlice {
            self.full = true;
            return;
        }
        // A slice may move between Services (its label changed): both count.
        for object in [old, new].into_iter().flatten() {
            if let Object::EndpointSlice(slice) = object {
                if let Some(service) = slice_owner(&object.key().namespace, slice) {
                    self.endpoint_services.insert(service);
                }
            }
        }
    }

    /// Requires a full translation (a resync).
    pub fn mark_full(&mut self) {
        self.full = true;
    }

    pub fn is_empty(&self) -> bool {
        !self.full && self.endpoint_services.is_empty()
    }

    pub fn needs_full(&self) -> bool {
        self.full
    }

    pub fn len(&self) -> usize {
        self.changes
    }
}

/// The result of a full rebuild, for the reporters (Events, status).
#[derive(Debug)]
pub struct Outcome {
    pub state: ClusterState,
    /// Ingresses this controller serves.
    pub served: BTreeSet<ObjectKey>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Which kind of rebuild ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildKind {
    Full,
    Endpoints,
}

impl RebuildKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RebuildKind::Full => "full",
            RebuildKind::Endpoints => "endpoints",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("cannot serialize snapshot: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Translates and publishes; owns the publisher and the diagnostic log.
pub struct Rebuilder {
    config: TranslateConfig,
    publisher: Publisher,
    log: DiagnosticLog,
    outcomes: watch::Sender<Option<Arc<Outcome>>>,
}

impl Rebuilder {
    pub fn new(config: TranslateConfig, publisher: Publisher) -> Self {
        Rebuilder {
            config,
            publisher,
            log: DiagnosticLog::default(),
            outcomes: watch::channel(None).0,
        }
    }

    /// Full rebuilds' outcomes, newest only.
    pub fn outcomes(&self) -> watch::Receiver<Option<Arc<Outcome>>> {
        self.outcomes.subscribe()
    }

    /// Whether a snapshot has been published.
    pub fn has_snapshot(&self) -> bool {
        self.publisher.current().is_some()
    }

    /// Runs one rebuild for the changes recorded since the last one.
    pub fn rebuild(
        &mut self,
        state: &ClusterState,
        changes: &ChangeSet,
    ) -> Result<RebuildKind, RebuildError> {
        let started = Instant::now();
        let kind = match (changes.full, self.publisher.current()) {
            (false, Some(current)) => {
                let updates = refresh_endpoints(state, current, &changes.endpoint_services);
                let backends = updates.len();
                if let Some(version) = self.publisher.publish_endpoints(updates)? {
                    metrics::gauge!(m::SNAPSHOT_VERSION).set(version as f64);
                    tracing::debug!(
                        version,
                        backends,
                        services = changes.endpoint_services.len(),
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "published endpoints"
                    );
                }
                RebuildKind::Endpoints
            }
            _ => {
                self.full(state, changes, started)?;
                RebuildKind::Full
            }
        };
        metrics::counter!(m::REBUILDS, "kind" => kind.as_str()).increment(1);
        metrics::histogram!(m::REBUILD_SECONDS, "kind" => kind.as_str())
            .record(started.elapsed().as_secs_f64());
        Ok(kind)
    }

    fn full(
        &mut self,
        state: &ClusterState,
        changes: &ChangeSet,
        started: Instant,
    ) -> Result<(), RebuildError> {
        for (kind, n) in state.counts() {
            metrics::gauge!(m::OBJECTS, "kind" => kind.as_str()).set(n as f64);
        }
        let config = TranslateConfig {
            now: unix_now(),
            ..self.config.clone()
        };
        let translation = translate(state, &config);
        self.log.update(&translation.diagnostics);
        let routes: usize = translation
            .snapshot
            .virtual_hosts
            .iter()
            .map(|v| v.routes.len())
            .sum();
        let served: BTreeSet<ObjectKey> = translation
            .served_ingresses
            .iter()
            .map(|o| ObjectKey::new(o.namespace.as_str(), o.name.as_str()))
            .collect();
        if let Some(version) = self.publisher.publish(translation.snapshot)? {
            metrics::gauge!(m::SNAPSHOT_VERSION).set(version as f64);
            metrics::gauge!(m::SNAPSHOT_BYTES).set(self.publisher.full_line_len() as f64);
            tracing::info!(
                version,
                ingresses = served.len(),
                routes,
                changes = changes.changes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "published snapshot"
            );
        }
        self.outcomes.send_replace(Some(Arc::new(Outcome {
            state: state.clone(),
            served,
            diagnostics: translation.diagnostics,
        })));
        Ok(())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::manifests::parse_manifest;
    use gatehouse_model::{Snapshot, StreamFrame};
    use std::path::Path;

    const BASE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: gatehouse
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {ports: [{port: 80}]}
"#;

    fn slice(name: &str, service: &str, port: (&str, u16), ips: &[(&str, bool)]) -> Object {
        let endpoints: Vec<String> = ips
            .iter()
            .map(|(ip, ready)| {
                format!("{{addresses: [{ip}], conditions: {{ready: {ready}, serving: true, terminating: {}}}}}", !ready)
            })
            .collect();
        let yaml = format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: shop, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{name: '{}', port: {}}}]\nendpoints: [{}]\n",
            port.0,
            port.1,
            endpoints.join(", ")
        );
        parse_manifest(Path::new("s.yaml"), &yaml)
            .unwrap()
            .remove(0)
    }

    fn base_state() -> ClusterState {
        let mut st = ClusterState::default();
        for o in parse_manifest(Path::new("b.yaml"), BASE).unwrap() {
            st.insert(o);
        }
        st
    }

    /// Applies a change to the state and records it, as a source does.
    fn apply(st: &mut ClusterState, changes: &mut ChangeSet, object: Object) {
        let kind = object.kind();
        let old = st.insert(object.clone());
        changes.record(kind, old.as_ref(), Some(&object));
    }

    fn delete(st: &mut ClusterState, changes: &mut ChangeSet, kind: Kind, key: &ObjectKey) {
        let old = st.remove(kind, key);
        changes.record(kind, old.as_ref(), None);
    }

    #[test]
    fn endpoint_only_changes_match_a_full_translation_at_every_step() {
        let mut st = base_state();
        let publisher = Publisher::new();
        let rx = publisher.subscribe();
        let mut rb = Rebuilder::new(TranslateConfig::at(0), publisher);
        assert_eq!(
            rb.rebuild(&st, &ChangeSet::everything()).unwrap(),
            RebuildKind::Full
        );

        type Step = fn(&mut ClusterState, &mut ChangeSet);
        let steps: Vec<(&str, Step)> = vec![
            ("pods appear", |st, c| {
                apply(
                    st,
                    c,
                    slice(
                        "web-a",
                        "web",
                        ("http", 8080),
                        &[("10.0.0.1", true), ("10.0.0.2", true)],
                    ),
                );
                apply(
                    st,
                    c,
                    slice("api-a", "api", ("", 80), &[("10.0.1.1", true)]),
                );
            }),
            ("one pod terminates", |st, c| {
                apply(
                    st,
                    c,
                    slice(
                        "web-a",
                        "web",
                        ("http", 8080),
                        &[("10.0.0.1", true), ("10.0.0.2", false)],
                    ),
                );
            }),
            ("all pods terminating: serving ones are used", |st, c| {
                apply(
                    st,
                    c,
                    slice(
                        "web-a",
                        "web",
                        ("http", 8080),
                        &[("10.0.0.1", false), ("10.0.0.2", false)],
                    ),
                );
            }),
            ("second slice for the same service", |st, c| {
                apply(
                    st,
                    c,
                    slice("web-b", "web", ("http", 8080), &[("10.0.0.3", true)]),
                );
            }),
            ("slice moves to another service", |st, c| {
                apply(
                    st,
                    c,
                    slice("web-b", "api", ("", 80), &[("10.0.0.3", true)]),
                );
            }),
            ("slice of an unrelated service", |st, c| {
                apply(
                    st,
                    c,
                    slice("other", "nobody", ("", 80), &[("10.9.9.9", true)]),
                );
            }),
            ("slices deleted", |st, c| {
                delete(st, c, Kind::EndpointSlice, &ObjectKey::new("shop", "web-a"));
                delete(st, c, Kind::EndpointSlice, &ObjectKey::new("shop", "api-a"));
            }),
        ];
        // A gateway following the stream from the start.
        let mut gateway = None;
        let mut sent = None;
        for (name, step) in steps {
            let mut changes = ChangeSet::default();
            step(&mut st, &mut changes);
            assert!(!changes.needs_full(), "{name}");
            assert_eq!(
                rb.rebuild(&st, &changes).unwrap(),
                RebuildKind::Endpoints,
                "{name}"
            );
            let chain = rx.borrow().clone().unwrap();
            for line in chain.lines_after(sent) {
                match serde_json::from_slice::<StreamFrame>(&line).unwrap() {
                    StreamFrame::Snapshot(f) => gateway = Some(f.snapshot),
                    StreamFrame::Endpoints(f) => {
                        let snap: &mut Snapshot = gateway.as_mut().unwrap();
                        assert!(snap.apply_endpoints(&f).is_empty(), "{name}");
                    }
                }
            }
            sent = Some(chain.version());
            let full = translate(&st, &TranslateConfig::at(0)).snapshot;
            assert_eq!(rb.publisher.current(), Some(&full), "{name}");
            assert_eq!(
                gateway.as_ref(),
                Some(&full),
                "{name}: what the gateway has"
            );
        }
    }

    #[test]
    fn other_kinds_need_a_full_rebuild() {
        let st = base_state();
        for (kind, object) in [
            (
                Kind::Service,
                st.services.values().next().cloned().map(Object::Service),
            ),
            (
                Kind::Ingress,
                st.ingresses.values().next().cloned().map(Object::Ingress),
            ),
        ] {
            let mut c = ChangeSet::default();
            c.record(kind, None, object.as_ref());
            assert!(c.needs_full(), "{kind}");
        }
        let mut c = ChangeSet::default();
        assert!(c.is_empty());
        c.record(
            Kind::EndpointSlice,
            None,
            Some(&slice("x", "web", ("", 1), &[])),
        );
        assert!(!c.is_empty() && !c.needs_full());
    }
}

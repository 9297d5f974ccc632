//! Cluster mode's source: one kube-rs watcher per kind, merged into one
//! stream of typed [`SourceEvent`]s. The watchers relist on 410 Gone and
//! reconnect with backoff on errors by themselves; this module only names
//! what happened.

use crate::metrics as m;
use crate::state::{Kind, Object, ObjectKey};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;

/// Only Secrets of this type are ever read.
pub const TLS_SECRET_FIELD_SELECTOR: &str = "type=kubernetes.io/tls";
/// Set by `kubectl apply`: a copy of the whole object, never needed here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the watches report.
#[derive(Debug)]
pub enum SourceEvent {
    /// An object was added or changed.
    Apply(Object),
    Delete(Kind, ObjectKey),
    /// A (re)list of a kind begins: the objects that follow replace all of
    /// that kind once [`SourceEvent::RelistDone`] arrives.
    RelistStart(Kind),
    RelistItem(Object),
    RelistDone(Kind),
    /// The watch failed; it retries by itself with backoff.
    Error(Kind, String),
}

/// Which objects to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchScope {
    /// Namespaced kinds only in this namespace (`--watch-namespace`).
    pub namespace: Option<String>,
}

type Events = Pin<Box<dyn Stream<Item = SourceEvent> + Send>>;

/// The merged event stream of every kind.
pub fn watch_all(client: kube::Client, scope: &WatchScope) -> Events {
    let streams: Vec<Events> = vec![
        kind_stream(
            Api::<IngressClass>::all(client.clone()),
            watcher::Config::default(),
            Kind::IngressClass,
            |o| Object::IngressClass(Arc::new(o)),
        ),
        kind_stream(
            namespaced::<Ingress>(&client, scope),
            watcher::Config::default(),
            Kind::Ingress,
            |o| Object::Ingress(Arc::new(o)),
        ),
        kind_stream(
            namespaced::<Service>(&client, scope),
            watcher::Config::default(),
            Kind::Service,
            |o| Object::Service(Arc::new(o)),
        ),
        kind_stream(
            namespaced::<EndpointSlice>(&client, scope),
            watcher::Config::default(),
            Kind::EndpointSlice,
            |o| Object::EndpointSlice(Arc::new(o)),
        ),
        kind_stream(
            namespaced::<Secret>(&client, scope),
            watcher::Config::default().fields(TLS_SECRET_FIELD_SELECTOR),
            Kind::Secret,
            |o| Object::Secret(Arc::new(o)),
        ),
    ];
    Box::pin(futures::stream::select_all(streams))
}

fn namespaced<K>(client: &kube::Client, scope: &WatchScope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn kind_stream<K>(api: Api<K>, config: watcher::Config, kind: Kind, wrap: fn(K) -> Object) -> Events
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let stream = watcher(api, config)
        .default_backoff()
        .map(move |event| match event {
            Ok(Event::Apply(o)) => SourceEvent::Apply(wrap(slim(o))),
            Ok(Event::Delete(o)) => {
                let object = wrap(o);
                SourceEvent::Delete(kind, object.key())
            }
            Ok(Event::Init) => SourceEvent::RelistStart(kind),
            Ok(Event::InitApply(o)) => SourceEvent::RelistItem(wrap(slim(o))),
            Ok(Event::InitDone) => SourceEvent::RelistDone(kind),
            Err(e) => {
                metrics::counter!(m::WATCH_ERRORS, "kind" => kind.as_str()).increment(1);
                SourceEvent::Error(kind, e.to_string())
            }
        });
    Box::pin(stream)
}

/// Drops what translation never reads but every object carries, so a large
/// cluster's state stays small: managed fields and kubectl's copy of the
/// last applied object.
fn slim<K: Resource>(mut o: K) -> K {
    slim_in_place(&mut o);
    o
}

/// [`slim`] for a watch stream's `modify`.
pub(crate) fn slim_in_place<K: Resource>(o: &mut K) {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

//! The controllers' view of the cluster: one reflector per kind (watch +
//! local store, as client-go's informers), and a signal that something
//! changed. Every controller reads from here and writes through the API.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Local copies of every object the controllers act on.
#[derive(Clone)]
pub(crate) struct Cache {
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
    pub replica_sets: Store<ReplicaSet>,
    pub deployments: Store<Deployment>,
    pub daemon_sets: Store<DaemonSet>,
    pub services: Store<Service>,
    pub endpoint_slices: Store<EndpointSlice>,
    changes: watch::Receiver<u64>,
    ready: watch::Receiver<bool>,
}

impl Cache {
    /// Starts the reflectors; their tasks are returned so the owner stops them.
    pub fn start(client: &Client) -> (Self, Vec<JoinHandle<()>>) {
        let (notify, changes) = watch::channel(0u64);
        let notify = Arc::new(notify);
        let mut tasks = Vec::new();
        let pods = reflect::<Pod>(Api::all(client.clone()), &notify, &mut tasks);
        let nodes = reflect::<Node>(Api::all(client.clone()), &notify, &mut tasks);
        let replica_sets = reflect::<ReplicaSet>(Api::all(client.clone()), &notify, &mut tasks);
        let deployments = reflect::<Deployment>(Api::all(client.clone()), &notify, &mut tasks);
        let daemon_sets = reflect::<DaemonSet>(Api::all(client.clone()), &notify, &mut tasks);
        let services = reflect::<Service>(Api::all(client.clone()), &notify, &mut tasks);
        let endpoint_slices =
            reflect::<EndpointSlice>(Api::all(client.clone()), &notify, &mut tasks);
        let (announce, ready) = watch::channel(false);
        let cache = Self {
            pods,
            nodes,
            replica_sets,
            deployments,
            daemon_sets,
            services,
            endpoint_slices,
            changes,
            ready,
        };
        // A store wakes only its last waiter, so one task waits for them all.
        let stores = cache.clone();
        tasks.push(tokio::spawn(async move {
            stores.wait_for_stores().await;
            let _ = announce.send(true);
        }));
        (cache, tasks)
    }

    /// Waits until every store holds its initial list.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }

    async fn wait_for_stores(&self) {
        // A writer is only dropped when its task ends, i.e. when we are stopping.
        let _ = futures::join!(
            self.pods.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.replica_sets.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.daemon_sets.wait_until_ready(),
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready(),
        );
    }

    /// A receiver that wakes whenever any store changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

fn reflect<K>(
    api: Api<K>,
    notify: &Arc<watch::Sender<u64>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let notify = Arc::clone(notify);
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tasks.push(tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::warn!(%error, kind = %K::kind(&Default::default()), "watch failed; retrying");
                // The backoff above already paces retries; this only spares the log.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            notify.send_modify(|n| *n = n.wrapping_add(1));
        }
    }));
    store
}

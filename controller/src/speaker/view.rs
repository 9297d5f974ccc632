//! The speaker's view of the API: reflector stores of Services,
//! EndpointSlices, Nodes and IPPools (no Secrets, nothing else), a signal
//! on every change, and whether every kind has been listed.

use crate::lb::{reflect, Changes};
use futures::StreamExt;
use gatehouse_crds::IPPool;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Watched {
    Services,
    EndpointSlices,
    Nodes,
    IPPools,
}

const KINDS: usize = 4;

/// The stores and their change signal.
#[derive(Clone)]
pub struct SpeakerView {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub nodes: Store<Node>,
    pub pools: Store<IPPool>,
    /// Notified on every change of any kind.
    pub changed: Arc<Notify>,
    /// True once every kind has been listed.
    pub synced: watch::Receiver<bool>,
}

/// A snapshot of the stores, for one evaluation.
pub struct Objects {
    pub services: Vec<Service>,
    pub slices: Vec<EndpointSlice>,
    pub nodes: Vec<Node>,
    pub pools: Vec<IPPool>,
}

impl SpeakerView {
    /// Starts the watches (they relist and reconnect with backoff by
    /// themselves, for as long as the process runs).
    pub fn start(client: kube::Client) -> SpeakerView {
        let (services, s) = reflect(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            Watched::Services,
        );
        let (slices, e) = reflect(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
            Watched::EndpointSlices,
        );
        let (nodes, n) = reflect(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            Watched::Nodes,
        );
        let (pools, p) = reflect(
            Api::<IPPool>::all(client),
            watcher::Config::default(),
            Watched::IPPools,
        );
        let changed = Arc::new(Notify::new());
        let (synced_tx, synced) = watch::channel(false);
        tokio::spawn(pump(
            Box::pin(futures::stream::select_all([s, e, n, p])),
            changed.clone(),
            synced_tx,
        ));
        SpeakerView {
            services,
            slices,
            nodes,
            pools,
            changed,
            synced,
        }
    }

    pub fn objects(&self) -> Objects {
        fn owned<K>(store: &Store<K>) -> Vec<K>
        where
            K: kube::Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store.state().iter().map(|o| (**o).clone()).collect()
        }
        Objects {
            services: owned(&self.services),
            slices: owned(&self.slices),
            nodes: owned(&self.nodes),
            pools: owned(&self.pools),
        }
    }
}

async fn pump(mut changes: Changes<Watched>, changed: Arc<Notify>, synced: watch::Sender<bool>) {
    let mut listed = BTreeSet::new();
    while let Some((which, init_done)) = changes.next().await {
        if init_done && listed.insert(which) && listed.len() == KINDS {
            tracing::info!("speaker: every watched kind listed");
            synced.send_replace(true);
        }
        changed.notify_one();
    }
}

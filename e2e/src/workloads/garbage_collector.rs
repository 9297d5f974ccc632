//! The garbage collector: deletes (background propagation) Pods,
//! ReplicaSets and EndpointSlices whose owners are all gone, as upstream
//! decides it by ownerReference uid. Owners of kinds it does not know are
//! taken to exist.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DeleteParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::cache::Cache;
use super::error::WorkloadError;
use super::runner::Reconcile;
use super::writes::tolerate_races;

pub(crate) struct GarbageCollector {
    client: Client,
    cache: Cache,
}

impl GarbageCollector {
    pub fn new(client: Client, cache: Cache) -> Arc<Self> {
        Arc::new(Self { client, cache })
    }
}

impl Reconcile for GarbageCollector {
    async fn pass(&self) -> Result<(), WorkloadError> {
        self.collect(&self.cache.replica_sets).await?;
        self.collect(&self.cache.pods).await?;
        self.collect(&self.cache.endpoint_slices).await
    }
}

impl GarbageCollector {
    async fn collect<K>(&self, dependents: &Store<K>) -> Result<(), WorkloadError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        for dependent in dependents.state() {
            let Some(owners) = dependent.meta().owner_references.as_ref() else {
                continue;
            };
            if owners.is_empty() || dependent.meta().deletion_timestamp.is_some() {
                continue;
            }
            let namespace = dependent.namespace().unwrap_or_default();
            let mut all_gone = true;
            for owner in owners {
                if self.owner_exists(&namespace, owner).await? {
                    all_gone = false;
                    break;
                }
            }
            if all_gone {
                let name = dependent.name_any();
                let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
                let result = api.delete(&name, &DeleteParams::background()).await;
                tolerate_races(result, || format!("collect {} {name}", K::kind(&())))?;
            }
        }
        Ok(())
    }

    /// The cache first; an owner missing there is looked up live, so that a
    /// cache lagging behind a new owner deletes nothing.
    async fn owner_exists(
        &self,
        namespace: &str,
        owner: &OwnerReference,
    ) -> Result<bool, WorkloadError> {
        let cache = &self.cache;
        match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("apps/v1", "Deployment") => self.exists(&cache.deployments, namespace, owner).await,
            ("apps/v1", "ReplicaSet") => self.exists(&cache.replica_sets, namespace, owner).await,
            ("apps/v1", "DaemonSet") => self.exists(&cache.daemon_sets, namespace, owner).await,
            ("v1", "Service") => self.exists(&cache.services, namespace, owner).await,
            ("v1", "Pod") => self.exists(&cache.pods, namespace, owner).await,
            _ => Ok(true),
        }
    }

    async fn exists<K>(
        &self,
        store: &Store<K>,
        namespace: &str,
        owner: &OwnerReference,
    ) -> Result<bool, WorkloadError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let key = ObjectRef::new(&owner.name).within(namespace);
        if store
            .get(&key)
            .is_some_and(|o| o.uid().as_deref() == Some(&owner.uid))
        {
            return Ok(true);
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let live = api
            .get_opt(&owner.name)
            .await
            .map_err(WorkloadError::api(format!("look up owner {}", owner.name)))?;
        Ok(live.is_some_and(|o| o.uid().as_deref() == Some(&owner.uid)))
    }
}

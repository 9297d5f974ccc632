//! The EndpointSlice controller: keeps the slices of every Service with a
//! selector (see `slice_contents`), labelled and owned as upstream's, and
//! never touches slices someone else manages (the emulator's own for
//! `default/kubernetes`).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::cache::Cache;
use super::error::WorkloadError;
use super::expectations::Expectations;
use super::ownership::{controlled_by, controller_reference};
use super::runner::Reconcile;
use super::slice_contents::{desired_slices, SliceContents};
use super::writes::tolerate_races;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

pub(crate) struct EndpointSliceController {
    client: Client,
    cache: Cache,
    expectations: Expectations,
}

impl EndpointSliceController {
    pub fn new(client: Client, cache: Cache) -> Arc<Self> {
        Arc::new(Self {
            client,
            cache,
            expectations: Expectations::default(),
        })
    }
}

impl Reconcile for EndpointSliceController {
    async fn pass(&self) -> Result<(), WorkloadError> {
        let pods = self.cache.pods.state();
        let slices = self.cache.endpoint_slices.state();
        let mut first_error = None;
        for service in self.cache.services.state() {
            let has_selector = service
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|s| !s.is_empty());
            if !has_selector || service.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if let Err(error) = self.reconcile(&service, &pods, &slices).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl EndpointSliceController {
    async fn reconcile(
        &self,
        service: &Service,
        pods: &[Arc<Pod>],
        slices: &[Arc<EndpointSlice>],
    ) -> Result<(), WorkloadError> {
        let (Some(uid), Some(namespace)) = (service.uid(), service.namespace()) else {
            return Ok(());
        };
        let ours: Vec<&Arc<EndpointSlice>> = slices
            .iter()
            .filter(|s| {
                let labels = s.labels();
                s.namespace().as_deref() == Some(&namespace)
                    && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
                    && labels.get(SERVICE_NAME_LABEL) == Some(&service.name_any())
                    && controlled_by(&***s, &uid)
            })
            .collect();
        let names: HashMap<String, ()> = ours.iter().map(|s| (s.name_any(), ())).collect();
        let caught_up = self.expectations.satisfied(
            &uid,
            |name| names.contains_key(name),
            |name| names.contains_key(name),
        );
        if !caught_up {
            return Ok(());
        }
        let in_namespace: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(&namespace))
            .map(|p| &**p)
            .collect();
        let mut desired = desired_slices(service, &in_namespace);
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &namespace);
        // Slices already right stay; the rest are rewritten, then created or deleted.
        let mut stale: Vec<&Arc<EndpointSlice>> = Vec::new();
        for slice in ours {
            match desired.iter().position(|d| *d == contents_of(slice)) {
                Some(i) => {
                    desired.remove(i);
                }
                None => stale.push(slice),
            }
        }
        let mut stale = stale.into_iter();
        for contents in desired {
            match stale.next() {
                Some(slice) => self.rewrite(&api, slice, &contents).await?,
                None => self.create(&api, service, &uid, contents).await?,
            }
        }
        for slice in stale {
            let name = slice.name_any();
            let result = api.delete(&name, &DeleteParams::default()).await;
            tolerate_races(result, || format!("delete endpointslice {name}"))?;
        }
        Ok(())
    }

    async fn rewrite(
        &self,
        api: &Api<EndpointSlice>,
        slice: &EndpointSlice,
        contents: &SliceContents,
    ) -> Result<(), WorkloadError> {
        let name = slice.name_any();
        // A slice's addressType cannot change: replace the whole object.
        if slice.address_type != contents.address_type {
            let result = api.delete(&name, &DeleteParams::default()).await;
            return tolerate_races(result, || format!("delete endpointslice {name}"));
        }
        let patch = json!({
            "metadata": {"resourceVersion": slice.resource_version()},
            "ports": contents.ports,
            "endpoints": contents.endpoints,
        });
        let result = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        tolerate_races(result, || format!("update endpointslice {name}"))
    }

    async fn create(
        &self,
        api: &Api<EndpointSlice>,
        service: &Service,
        uid: &str,
        contents: SliceContents,
    ) -> Result<(), WorkloadError> {
        let mut labels = service.labels().clone();
        labels.insert(SERVICE_NAME_LABEL.to_string(), service.name_any());
        labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", service.name_any())),
                namespace: service.namespace(),
                labels: Some(labels),
                owner_references: controller_reference(service).map(|o| vec![o]),
                ..Default::default()
            },
            address_type: contents.address_type,
            endpoints: Some(contents.endpoints),
            ports: contents.ports,
        };
        let created =
            api.create(&PostParams::default(), &slice)
                .await
                .map_err(WorkloadError::api(format!(
                    "create endpointslice for {}",
                    service.name_any()
                )))?;
        self.expectations.created(uid, created.name_any());
        Ok(())
    }
}

fn contents_of(slice: &EndpointSlice) -> SliceContents {
    SliceContents {
        address_type: slice.address_type.clone(),
        ports: slice.ports.clone(),
        endpoints: slice.endpoints.clone().unwrap_or_default(),
    }
}

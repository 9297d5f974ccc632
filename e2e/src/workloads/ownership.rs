//! ownerReferences: who controls an object, and the Pods a controller makes
//! from its template.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

/// The ownerReference with `controller: true`, if any.
pub(crate) fn controller_of<K: ResourceExt>(object: &K) -> Option<&OwnerReference> {
    object
        .meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// Whether `object`'s controller is the object with this uid.
pub(crate) fn controlled_by<K: ResourceExt>(object: &K, owner_uid: &str) -> bool {
    controller_of(object).is_some_and(|o| o.uid == owner_uid)
}

/// A controller reference to `owner` (what upstream controllers set).
pub(crate) fn controller_reference<K>(owner: &K) -> Option<OwnerReference>
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// A Pod from `template`, named `<prefix>-<random>` by the server, owned by
/// `owner`, with `extra_labels` on top of the template's.
pub(crate) fn pod_from_template(
    template: &PodTemplateSpec,
    owner: OwnerReference,
    namespace: &str,
    extra_labels: &[(&str, &str)],
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    for (key, value) in extra_labels {
        labels.insert(key.to_string(), value.to_string());
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

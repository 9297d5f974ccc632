//! Which lists of built-in objects are merged item by item (by a key field)
//! rather than replaced whole. The real server reads this from the Go type
//! tags (`patchMergeKey`, `listType=map`); the emulator keeps a table of the
//! lists that matter in practice. Strategic merge patch and server-side apply
//! both use it; every list not named here is atomic.

/// How a list is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMerge {
    /// Items are objects identified by this field.
    ByKey(&'static str),
    /// Items are scalars merged as a set (e.g. `metadata.finalizers`).
    Set,
}

/// Merge behaviour of the list at `path` (field names from the object root,
/// list indices left out), e.g. `["spec", "template", "spec", "containers"]`.
pub fn list_merge(path: &[&str]) -> Option<ListMerge> {
    let last = *path.last()?;
    let parent = path.len().checked_sub(2).map(|i| path[i]);
    match (parent, last) {
        (Some("metadata"), "finalizers") => Some(ListMerge::Set),
        (Some("metadata"), "ownerReferences") => Some(ListMerge::ByKey("uid")),
        (_, "containers" | "initContainers" | "ephemeralContainers") => {
            Some(ListMerge::ByKey("name"))
        }
        (_, "env" | "volumes" | "imagePullSecrets" | "resourceClaims") => {
            Some(ListMerge::ByKey("name"))
        }
        (_, "volumeMounts") => Some(ListMerge::ByKey("mountPath")),
        (_, "volumeDevices") => Some(ListMerge::ByKey("devicePath")),
        (_, "conditions") => Some(ListMerge::ByKey("type")),
        (_, "hostAliases") => Some(ListMerge::ByKey("ip")),
        (_, "topologySpreadConstraints") => Some(ListMerge::ByKey("topologyKey")),
        (_, "containerStatuses" | "initContainerStatuses") => Some(ListMerge::ByKey("name")),
        // Node status addresses are keyed by type.
        (Some("status"), "addresses") => Some(ListMerge::ByKey("type")),
        // A container's ports are keyed by containerPort, a Service's by port.
        (Some("spec"), "ports") if is_service_spec(path) => Some(ListMerge::ByKey("port")),
        (_, "ports") if path.iter().any(|p| p.ends_with("ontainers")) => {
            Some(ListMerge::ByKey("containerPort"))
        }
        _ => None,
    }
}

/// `spec.ports` at the root is a Service's; deeper ones belong to pod templates.
fn is_service_spec(path: &[&str]) -> bool {
    path.len() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_lists_merge_by_their_key() {
        let cases: &[(&[&str], Option<ListMerge>)] = &[
            (&["spec", "containers"], Some(ListMerge::ByKey("name"))),
            (&["spec", "ports"], Some(ListMerge::ByKey("port"))),
            (
                &["spec", "containers", "ports"],
                Some(ListMerge::ByKey("containerPort")),
            ),
            (&["status", "conditions"], Some(ListMerge::ByKey("type"))),
            (&["metadata", "finalizers"], Some(ListMerge::Set)),
            (&["spec", "rules"], None),
            (&["spec", "tls"], None),
        ];
        for (path, expected) in cases {
            assert_eq!(list_merge(path), *expected, "path {path:?}");
        }
    }
}

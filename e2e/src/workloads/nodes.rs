//! Node objects for the simulated nodes, labelled as a kubelet registers
//! them, so the scheduler and the DaemonSet controller can place Pods.

use k8s_openapi::api::core::v1::Node;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use super::error::WorkloadError;

/// Creates one Node per name (`kubernetes.io/hostname`, `kubernetes.io/os`,
/// `kubernetes.io/arch` labels); a Node that exists already is kept as is.
pub async fn register_nodes(client: &Client, names: &[&str]) -> Result<Vec<Node>, WorkloadError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut nodes = Vec::with_capacity(names.len());
    for name in names {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(
                    [
                        ("kubernetes.io/hostname", *name),
                        ("kubernetes.io/os", "linux"),
                        ("kubernetes.io/arch", std::env::consts::ARCH),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        let registered = match api.create(&PostParams::default(), &node).await {
            Ok(created) => created,
            Err(kube::Error::Api(status)) if status.code == 409 => api
                .get(name)
                .await
                .map_err(WorkloadError::api(format!("get node {name}")))?,
            Err(error) => return Err(WorkloadError::api(format!("register node {name}"))(error)),
        };
        nodes.push(registered);
    }
    Ok(nodes)
}

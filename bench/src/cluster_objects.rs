//! The objects of the cluster-mode propagation benchmark, as JSON for the
//! API, and the edits it makes. The same layout as local mode's manifests:
//! every Ingress routes one host (prefix `/`) to its own Service, whose
//! EndpointSlice names one echo pod.

use crate::kube_api::{Resource, Write};
use serde_json::{json, Value};
use std::net::SocketAddr;

pub const NAMESPACE: &str = "bench";
/// The Ingress whose backend Service is switched (Ingress changes).
pub const TARGET: &str = "target";
pub const TARGET_HOST: &str = "target.prop.test";
/// The Ingress whose Service's EndpointSlice is switched (EndpointSlice
/// changes).
pub const SWITCH: &str = "switch";
pub const SWITCH_HOST: &str = "switch.prop.test";

/// The `n`-th of the other Ingresses (and its Service).
pub fn app_name(n: usize) -> String {
    format!("app-{n}")
}

pub fn app_host(n: usize) -> String {
    format!("app-{n}.prop.test")
}

fn create(resource: Resource, object: Value) -> Write {
    Write::Create {
        resource,
        namespace: NAMESPACE.into(),
        object,
    }
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    })
}

fn slice_ports(pod: SocketAddr) -> Value {
    json!([{"name": "http", "port": pod.port(), "protocol": "TCP"}])
}

fn slice_endpoints(pod: SocketAddr) -> Value {
    json!([{"addresses": [pod.ip().to_string()], "conditions": {"ready": true}}])
}

fn endpoint_slice(service: &str, pod: SocketAddr) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-1"),
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": slice_ports(pod),
        "endpoints": slice_endpoints(pod),
    })
}

/// `spec.rules` routing `host` (prefix `/`) to `service:80`.
fn rules(host: &str, service: &str) -> Value {
    json!([{
        "host": host,
        "http": {"paths": [{
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}},
        }]},
    }])
}

fn ingress(name: &str, host: &str, service: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"ingressClassName": "gatehouse", "rules": rules(host, service)},
    })
}

/// The namespace and the IngressClass: written first.
pub fn preamble() -> Vec<Write> {
    vec![
        Write::Create {
            resource: Resource::Namespace,
            namespace: String::new(),
            object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        },
        Write::Create {
            resource: Resource::IngressClass,
            namespace: String::new(),
            object: json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": "gatehouse"},
                "spec": {"controller": "gatehouse.dev/ingress-controller"},
            }),
        },
    ]
}

/// Everything else: Services `blue` and `green` (one echo each), the target
/// Ingress on `blue`, the switch Ingress with its own Service on the blue
/// pod, and `ingresses - 2` others on the blue pod. Services and slices
/// come before the Ingresses that use them.
pub fn objects(ingresses: usize, blue: SocketAddr, green: SocketAddr) -> Vec<Write> {
    let mut out = Vec::with_capacity(3 * ingresses + 4);
    let mut backend = |name: &str, pod: SocketAddr| {
        out.push(create(Resource::Service, service(name)));
        out.push(create(Resource::EndpointSlice, endpoint_slice(name, pod)));
    };
    backend("blue", blue);
    backend("green", green);
    backend(SWITCH, blue);
    let others = ingresses.saturating_sub(2);
    for n in 1..=others {
        backend(&app_name(n), blue);
    }
    out.push(create(
        Resource::Ingress,
        ingress(TARGET, TARGET_HOST, "blue"),
    ));
    out.push(create(
        Resource::Ingress,
        ingress(SWITCH, SWITCH_HOST, SWITCH),
    ));
    for n in 1..=others {
        out.push(create(
            Resource::Ingress,
            ingress(&app_name(n), &app_host(n), &app_name(n)),
        ));
    }
    out
}

/// How many of the other Ingresses there are.
pub fn others(ingresses: usize) -> usize {
    ingresses.saturating_sub(2)
}

/// Points Ingress `name` (host `host`) at Service `service`.
pub fn switch_backend(name: &str, host: &str, service: &str) -> Write {
    Write::MergePatch {
        resource: Resource::Ingress,
        namespace: NAMESPACE.into(),
        name: name.into(),
        patch: json!({"spec": {"rules": rules(host, service)}}),
    }
}

/// Points Service `service`'s EndpointSlice at `pod`.
pub fn switch_endpoints(service: &str, pod: SocketAddr) -> Write {
    Write::MergePatch {
        resource: Resource::EndpointSlice,
        namespace: NAMESPACE.into(),
        name: format!("{service}-1"),
        patch: json!({"ports": slice_ports(pod), "endpoints": slice_endpoints(pod)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ingress_has_a_service_and_a_slice() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1000));
        let writes = objects(5, a, a);
        let count = |r: Resource| {
            writes
                .iter()
                .filter(|w| matches!(w, Write::Create { resource, .. } if *resource == r))
                .count()
        };
        assert_eq!(count(Resource::Ingress), 5);
        // blue, green, switch and three others.
        assert_eq!(count(Resource::Service), 6);
        assert_eq!(count(Resource::EndpointSlice), 6);
        let Write::Create { object, .. } = &writes[1] else {
            panic!("a create")
        };
        assert_eq!(
            object["metadata"]["labels"]["kubernetes.io/service-name"],
            "blue"
        );
        assert_eq!(object["ports"][0]["port"], 1000);
    }
}

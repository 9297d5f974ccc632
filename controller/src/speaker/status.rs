//! Tells users which node announces a Service's address: an annotation on
//! the Service (`gatehouse.dev/announcing-node-ipv4` / `-ipv6`, written by
//! the node that takes the address over, removed by the last owner when no
//! node may announce it) and an Event on every change.

use super::demand::ServiceRef;
use super::node::NodeName;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::net::IpAddr;

pub const ANNOUNCING_NODE_IPV4: &str = "gatehouse.dev/announcing-node-ipv4";
pub const ANNOUNCING_NODE_IPV6: &str = "gatehouse.dev/announcing-node-ipv6";
/// The Event reasons the speaker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This node took the address over.
    Announcing,
    /// No node may announce the address (for a `Local` Service: no ready
    /// endpoint on an eligible node).
    NoAnnouncingNode,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Announcing => "AnnouncingFromNode",
            Reason::NoAnnouncingNode => "NoAnnouncingNode",
        }
    }
}

pub fn annotation_for(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => ANNOUNCING_NODE_IPV4,
        IpAddr::V6(_) => ANNOUNCING_NODE_IPV6,
    }
}

#[derive(Clone)]
pub struct StatusWriter {
    client: kube::Client,
    reporter: Reporter,
    me: NodeName,
}

impl StatusWriter {
    pub fn new(client: kube::Client, me: NodeName) -> Self {
        let reporter = Reporter {
            controller: "gatehouse-speaker".into(),
            instance: Some(me.to_string()),
        };
        StatusWriter {
            client,
            reporter,
            me,
        }
    }

    /// This node now announces `address` for `service`. The annotation is
    /// written only if it names another node (or none); the Event always,
    /// since the takeover is news.
    pub async fn announcing(&self, service: &ServiceRef, address: IpAddr, how: &str) {
        if service.announcing_node.as_deref() != Some(self.me.as_str()) {
            self.annotate(service, address, Some(self.me.as_str()))
                .await;
        }
        let note = format!("{} announces {address} ({how})", self.me);
        self.event(service, EventType::Normal, Reason::Announcing, note)
            .await;
    }

    /// No node may announce `address` any more; this node announced it last.
    pub async fn no_announcer(&self, service: &ServiceRef, address: IpAddr, why: &str) {
        if service.announcing_node.is_some() {
            self.annotate(service, address, None).await;
        }
        let note = format!("no node announces {address}: {why}");
        self.event(service, EventType::Warning, Reason::NoAnnouncingNode, note)
            .await;
    }

    /// A merge patch of one annotation: it touches no other field, so it
    /// cannot undo anyone else's change.
    async fn annotate(&self, service: &ServiceRef, address: IpAddr, node: Option<&str>) {
        let service = &service.key;
        let api: Api<Service> = Api::namespaced(self.client.clone(), &service.namespace);
        let body =
            serde_json::json!({"metadata": {"annotations": {annotation_for(address): node}}});
        if let Err(e) = api
            .patch(&service.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            tracing::warn!(service = %format!("{}/{}", service.namespace, service.name), %address, "speaker: annotating the Service failed: {e}");
        }
    }

    async fn event(&self, service: &ServiceRef, type_: EventType, reason: Reason, note: String) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(service.key.name.clone()),
            namespace: Some(service.key.namespace.clone()),
            // Ties the Event to this incarnation of the Service.
            uid: service.uid.clone(),
            ..ObjectReference::default()
        };
        let event = Event {
            type_,
            reason: reason.as_str().to_owned(),
            note: Some(note),
            action: "Announce".into(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(
                reason = reason.as_str(),
                "speaker: publishing an Event failed: {e}"
            );
        }
    }
}

//! Which Ingresses are ours: IngressClass selection as the Ingress spec and
//! ingress-nginx define it.

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::BTreeMap;

/// Annotation that marks an IngressClass as the cluster default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The deprecated pre-`ingressClassName` way of naming a class.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// What this controller answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassConfig {
    /// The IngressClass name we serve (`--ingress-class`).
    pub class_name: String,
    /// The `spec.controller` value that marks a class as ours.
    pub controller_name: String,
}

impl Default for ClassConfig {
    fn default() -> Self {
        ClassConfig {
            class_name: "gatehouse".into(),
            controller_name: crate::CONTROLLER_NAME.into(),
        }
    }
}

/// The outcome of looking at our IngressClass object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassStatus {
    /// The IngressClass exists with our controller (or does not exist at all,
    /// which local mode allows); `is_default` from its annotation.
    Ours { is_default: bool },
    /// An IngressClass with our name belongs to another controller: we serve
    /// nothing rather than fight over it.
    Foreign { controller: String },
}

pub fn class_status(
    config: &ClassConfig,
    classes: &BTreeMap<String, std::sync::Arc<IngressClass>>,
) -> ClassStatus {
    let Some(class) = classes.get(&config.class_name) else {
        return ClassStatus::Ours { is_default: false };
    };
    let controller = class
        .spec
        .as_ref()
        .and_then(|s| s.controller.clone())
        .unwrap_or_default();
    if controller != config.controller_name {
        return ClassStatus::Foreign { controller };
    }
    let is_default = class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true");
    ClassStatus::Ours { is_default }
}

/// The class an Ingress asks for: `spec.ingressClassName`, else the legacy
/// annotation, else none.
pub fn requested_class(ingress: &Ingress) -> Option<&str> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str)
        })
}

/// Whether we serve this Ingress.
pub fn is_ours(config: &ClassConfig, status: &ClassStatus, ingress: &Ingress) -> bool {
    let ClassStatus::Ours { is_default } = status else {
        return false;
    };
    match requested_class(ingress) {
        Some(name) => name == config.class_name,
        None => *is_default,
    }
}

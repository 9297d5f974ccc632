//! What translation reports about objects or rules it left out.

use gatehouse_model::ObjectRef;
use std::fmt;

/// A problem with one object, to be logged and (in cluster mode) recorded as
/// an Event on it. The rest of the snapshot is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Diagnostic {
    pub object: ObjectRef,
    /// Short CamelCase cause, used as the Event reason and a metric label.
    pub reason: &'static str,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.reason, self.message)
    }
}

/// Collects diagnostics during one translation.
#[derive(Debug, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, object: &ObjectRef, reason: &'static str, message: impl Into<String>) {
        self.0.push(Diagnostic {
            object: object.clone(),
            reason,
            message: message.into(),
        });
    }

    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.0.sort();
        self.0.dedup();
        self.0
    }
}

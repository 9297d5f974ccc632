//! Logs what changed in the set of diagnostics between rebuilds, so a
//! persistent problem is reported once, not on every rebuild.

use crate::translate::Diagnostic;
use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct DiagnosticLog {
    current: BTreeSet<Diagnostic>,
}

impl DiagnosticLog {
    /// Logs new diagnostics as warnings and vanished ones as resolved.
    pub fn update(&mut self, diagnostics: &[Diagnostic]) {
        let next: BTreeSet<Diagnostic> = diagnostics.iter().cloned().collect();
        for d in next.difference(&self.current) {
            tracing::warn!(object = %d.object, reason = d.reason, "{}", d.message);
        }
        for d in self.current.difference(&next) {
            tracing::info!(object = %d.object, reason = d.reason, "resolved: {}", d.message);
        }
        metrics::gauge!("gatehouse_controller_diagnostics").set(next.len() as f64);
        self.current = next;
    }
}

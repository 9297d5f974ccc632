//! Logs what changed in the set of diagnostics between rebuilds, so a
//! persistent problem is reported once, not on every rebuild.

use crate::metrics as m;
use crate::translate::{Diagnostic, Reason};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct DiagnosticLog {
    current: BTreeSet<Diagnostic>,
}

impl DiagnosticLog {
    /// Logs new diagnostics as warnings and vanished ones as resolved, and
    /// sets the per-reason gauge (every reason, zeros included).
    pub fn update(&mut self, diagnostics: &[Diagnostic]) {
        let next: BTreeSet<Diagnostic> = diagnostics.iter().cloned().collect();
        for d in next.difference(&self.current) {
            tracing::warn!(object = %d.object, reason = %d.reason, "{}", d.message);
        }
        for d in self.current.difference(&next) {
            tracing::info!(object = %d.object, reason = %d.reason, "resolved: {}", d.message);
        }
        let mut by_reason: BTreeMap<Reason, usize> = Reason::ALL.iter().map(|r| (*r, 0)).collect();
        for d in &next {
            *by_reason.entry(d.reason).or_default() += 1;
        }
        for (reason, n) in by_reason {
            metrics::gauge!(m::DIAGNOSTICS, "reason" => reason.as_str()).set(n as f64);
        }
        self.current = next;
    }
}

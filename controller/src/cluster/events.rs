//! Publishes the Events [`super::event_plan`] decides on, with kube-rs's
//! event recorder (events.k8s.io/v1), while this replica leads.

use super::event_plan::{EventPlanner, PlannedEvent};
use super::lease::Leadership;
use crate::metrics as m;
use crate::rebuild::Outcome;
use crate::state::{ClusterState, Kind, ObjectKey};
use crate::translate::Diagnostic;
use gatehouse_model::ObjectRef;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often held-back Events are retried while nothing else happens.
const RETRY: Duration = Duration::from_secs(5);
/// The Events API limits a note to 1 kB.
pub(crate) const MAX_NOTE: usize = 1024;
/// The `action` of every Event: what the controller was doing.
const ACTION: &str = "Translate";

/// Runs until `stop` flips.
pub async fn run(
    client: kube::Client,
    reporter: Reporter,
    mut outcomes: watch::Receiver<Option<Arc<Outcome>>>,
    mut leadership: Leadership,
    mut stop: watch::Receiver<bool>,
) {
    let mut planner = EventPlanner::new(Instant::now());
    loop {
        // Wait to lead.
        while !*leadership.leading.borrow_and_update() {
            tokio::select! {
                r = leadership.leading.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
        }
        planner.reset(Instant::now());
        outcomes.mark_changed();
        loop {
            tokio::select! {
                r = outcomes.changed() => if r.is_err() { return },
                r = leadership.leading.changed() => {
                    if r.is_err() { return }
                    if !*leadership.leading.borrow_and_update() { break }
                }
                _ = tokio::time::sleep(RETRY) => {}
                _ = stop.changed() => return,
            }
            let Some(outcome) = outcomes.borrow_and_update().clone() else {
                continue;
            };
            let plan = planner.plan(&outcome.diagnostics, Instant::now());
            if plan.suppressed > 0 {
                metrics::counter!(m::EVENTS_SUPPRESSED).increment(plan.suppressed as u64);
            }
            for event in plan.events {
                if !leadership.fence.allows() {
                    // Leadership ran out mid-round: the next leader reports.
                    break;
                }
                let recorder = Recorder::new(client.clone(), reporter.clone());
                let (ev, diagnostic) = to_event(&event);
                let reference = reference(&outcome.state, &diagnostic.object);
                match recorder.publish(&ev, &reference).await {
                    Ok(()) => {
                        let type_ = if ev.type_ == EventType::Warning {
                            "Warning"
                        } else {
                            "Normal"
                        };
                        metrics::counter!(m::EVENTS, "type" => type_, "reason" => ev.reason.clone())
                            .increment(1);
                    }
                    Err(e) => {
                        tracing::warn!(object = %diagnostic.object, reason = %ev.reason, "publishing an Event failed: {e}");
                        if let PlannedEvent::Warning(d) = &event {
                            planner.forget(d);
                        }
                    }
                }
            }
        }
    }
}

fn to_event(planned: &PlannedEvent) -> (Event, &Diagnostic) {
    let (type_, reason, note, d) = match planned {
        PlannedEvent::Warning(d) => (
            EventType::Warning,
            d.reason.as_str().to_owned(),
            d.message.clone(),
            d,
        ),
        PlannedEvent::Resolved(d) => (
            EventType::Normal,
            "Resolved".to_owned(),
            format!("{} resolved: {}", d.reason, d.message),
            d,
        ),
    };
    let event = Event {
        type_,
        reason,
        note: Some(truncate(note, MAX_NOTE)),
        action: ACTION.to_owned(),
        secondary: d.related.as_ref().map(|r| ObjectReference {
            api_version: Kind::parse(&r.kind).map(|k| k.api_version().to_owned()),
            kind: Some(r.kind.clone()),
            name: Some(r.name.clone()),
            namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
            ..ObjectReference::default()
        }),
    };
    (event, d)
}

/// The reference of the object an Event is about, with its uid when the
/// controller holds it (so `kubectl describe` finds the Event).
fn reference(state: &ClusterState, object: &ObjectRef) -> ObjectReference {
    let kind = Kind::parse(&object.kind);
    let key = ObjectKey::new(object.namespace.as_str(), object.name.as_str());
    let meta = kind.and_then(|k| state.metadata(k, &key));
    ObjectReference {
        api_version: kind.map(|k| k.api_version().to_owned()),
        kind: Some(object.kind.clone()),
        name: Some(object.name.clone()),
        namespace: (!object.namespace.is_empty()).then(|| object.namespace.clone()),
        uid: meta.and_then(|m| m.uid.clone()),
        resource_version: None,
        field_path: None,
    }
}

pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max - 3;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str("...");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        let long = "é".repeat(700);
        let cut = truncate(long, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE && cut.ends_with("..."));
        assert_eq!(truncate("short".into(), MAX_NOTE), "short");
    }
}

//! Which diagnostics become Kubernetes Events, and when: pure, with the
//! clock passed in. A problem is reported once when it appears (Warning)
//! and once when it is gone (Normal, reason `Resolved`), never again while
//! it persists; each object and the controller as a whole have a token
//! bucket, so a flapping object cannot flood the API. What a bucket holds
//! back is sent later, when tokens are back, if it still applies.

use crate::translate::Diagnostic;
use gatehouse_model::ObjectRef;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Events an object may burst, and how often it earns another.
pub const OBJECT_BURST: f64 = 10.0;
pub const OBJECT_REFILL: Duration = Duration::from_secs(30);
/// The same for all objects together.
pub const GLOBAL_BURST: f64 = 100.0;
pub const GLOBAL_REFILL: Duration = Duration::from_millis(100);

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedEvent {
    /// A new problem.
    Warning(Diagnostic),
    /// A reported problem that no longer applies.
    Resolved(Diagnostic),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, burst: f64, every: Duration, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / every.as_secs_f64();
        self.tokens = (self.tokens + earned).min(burst);
        self.at = now;
    }
}

/// Remembers what was reported, and the buckets.
#[derive(Debug)]
pub struct EventPlanner {
    reported: BTreeSet<Diagnostic>,
    objects: HashMap<ObjectRef, Bucket>,
    global: Bucket,
}

/// What one planning round decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub events: Vec<PlannedEvent>,
    /// Held back by a bucket; planned again on the next round.
    pub suppressed: usize,
}

impl EventPlanner {
    pub fn new(now: Instant) -> Self {
        EventPlanner {
            reported: BTreeSet::new(),
            objects: HashMap::new(),
            global: Bucket::full(GLOBAL_BURST, now),
        }
    }

    /// Forgets what was reported (a new leader reports the current
    /// problems again: it cannot know what the previous one sent).
    pub fn reset(&mut self, now: Instant) {
        *self = EventPlanner::new(now);
    }

    /// Plans the Events for the current diagnostics.
    pub fn plan(&mut self, current: &[Diagnostic], now: Instant) -> Plan {
        let current: BTreeSet<&Diagnostic> = current.iter().collect();
        let gone: Vec<Diagnostic> = self
            .reported
            .iter()
            .filter(|d| !current.contains(d))
            .cloned()
            .collect();
        let new: Vec<Diagnostic> = current
            .iter()
            .filter(|d| !self.reported.contains(*d))
            .map(|d| (*d).clone())
            .collect();
        self.global.refill(GLOBAL_BURST, GLOBAL_REFILL, now);
        let mut plan = Plan::default();
        for d in gone {
            if self.take(&d.object, now) {
                self.reported.remove(&d);
                plan.events.push(PlannedEvent::Resolved(d));
            } else {
                plan.suppressed += 1;
            }
        }
        for d in new {
            if self.take(&d.object, now) {
                self.reported.insert(d.clone());
                plan.events.push(PlannedEvent::Warning(d));
            } else {
                plan.suppressed += 1;
            }
        }
        // Buckets of objects with nothing pending are full again: drop them.
        let reported = &self.reported;
        self.objects.retain(|obj, b| {
            b.refill(OBJECT_BURST, OBJECT_REFILL, now);
            b.tokens < OBJECT_BURST || reported.iter().any(|d| &d.object == obj)
        });
        plan
    }

    /// A Warning that could not be published: plan it again next round.
    pub fn forget(&mut self, diagnostic: &Diagnostic) {
        self.reported.remove(diagnostic);
    }

    fn take(&mut self, object: &ObjectRef, now: Instant) -> bool {
        let bucket = self
            .objects
            .entry(object.clone())
            .or_insert_with(|| Bucket::full(OBJECT_BURST, now));
        bucket.refill(OBJECT_BURST, OBJECT_REFILL, now);
        if bucket.tokens < 1.0 || self.global.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        self.global.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::Reason;

    fn diag(name: &str, reason: Reason, message: &str) -> Diagnostic {
        Diagnostic {
            object: ObjectRef::new("Ingress", "ns", name),
            reason,
            message: message.into(),
            related: None,
        }
    }

    #[test]
    fn a_problem_is_reported_once_while_it_lasts_and_once_when_resolved() {
        let t = Instant::now();
        let mut p = EventPlanner::new(t);
        let d = diag("a", Reason::SecretNotFound, "Secret ns/x not found");
        let plan = p.plan(std::slice::from_ref(&d), t);
        assert_eq!(plan.events, vec![PlannedEvent::Warning(d.clone())]);
        for i in 1..100 {
            let again = p.plan(std::slice::from_ref(&d), t + Duration::from_secs(i));
            assert_eq!(again, Plan::default(), "round {i}");
        }
        assert_eq!(p.plan(&[], t).events, vec![PlannedEvent::Resolved(d)]);
        assert_eq!(p.plan(&[], t), Plan::default());
    }

    #[test]
    fn two_problems_of_one_reason_on_one_object_are_two_events() {
        let t = Instant::now();
        let mut p = EventPlanner::new(t);
        let a = diag(
            "a",
            Reason::InvalidPath,
            "spec.rules[0].http.paths[0] skipped",
        );
        let b = diag(
            "a",
            Reason::InvalidPath,
            "spec.rules[0].http.paths[1] skipped",
        );
        assert_eq!(p.plan(&[a, b], t).events.len(), 2);
    }

    #[test]
    fn a_flapping_object_is_limited_and_catches_up_later() {
        let t = Instant::now();
        let mut p = EventPlanner::new(t);
        let d = diag("flappy", Reason::InvalidHost, "bad host");
        let mut sent = 0;
        for i in 0..40 {
            let diags = if i % 2 == 0 { vec![d.clone()] } else { vec![] };
            sent += p.plan(&diags, t).events.len();
        }
        assert_eq!(sent, OBJECT_BURST as usize);
        // Another object is not affected by that one's bucket.
        let other = diag("calm", Reason::NoRules, "no rules");
        assert_eq!(p.plan(std::slice::from_ref(&other), t).events.len(), 1);
        // Tokens come back with time; the held-back state is reported then.
        let later = t + OBJECT_REFILL * 2;
        let plan = p.plan(&[d.clone(), other], later);
        assert_eq!(plan.events, vec![PlannedEvent::Warning(d)]);
    }

    #[test]
    fn the_global_bucket_bounds_a_burst_of_many_objects() {
        let t = Instant::now();
        let mut p = EventPlanner::new(t);
        let many: Vec<Diagnostic> = (0..500)
            .map(|i| diag(&format!("i{i}"), Reason::NoRules, "no rules"))
            .collect();
        let plan = p.plan(&many, t);
        assert_eq!(plan.events.len(), GLOBAL_BURST as usize);
        assert_eq!(plan.suppressed, 500 - GLOBAL_BURST as usize);
        let plan = p.plan(&many, t + Duration::from_secs(1));
        assert_eq!(plan.events.len(), 10, "one per 100 ms");
    }

    #[test]
    fn reset_reports_current_problems_again() {
        let t = Instant::now();
        let mut p = EventPlanner::new(t);
        let d = diag("a", Reason::NoRules, "x");
        p.plan(std::slice::from_ref(&d), t);
        p.reset(t);
        assert_eq!(
            p.plan(std::slice::from_ref(&d), t).events,
            vec![PlannedEvent::Warning(d)]
        );
    }
}

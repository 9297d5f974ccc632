//! Leader election, the decisions only: when to try to acquire or renew
//! the Lease, and until when this replica may act as leader. No I/O and no
//! clock of its own (every call is given `now`), so every rule is tested
//! without a cluster. [`super::lease`] does the API calls.
//!
//! The semantics are client-go's. A replica that does not hold the Lease
//! takes it only after the Lease record has stayed unchanged for the lease
//! duration, measured on its own monotonic clock from when it saw the record
//! change, so no two clocks need to agree. The holder renews every retry
//! period; it may act only until `renew deadline` after the start of its
//! last successful renewal. Since others wait a full lease duration after
//! they saw that renewal (which happened after it started), the holder stops
//! acting at least `lease duration - renew deadline` before anyone else may
//! start: never two leaders acting at once.

use std::time::{Duration, Instant};

/// Timing of the election (`--leader-election-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTiming {
    /// How long others wait after the last change of the record.
    pub lease_duration: Duration,
    /// How long the holder may act after the start of its last renewal.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for ElectionTiming {
    fn default() -> Self {
        ElectionTiming {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("--leader-election-renew-deadline ({renew:?}) must be shorter than --leader-election-lease-duration ({lease:?})")]
    RenewNotBeforeExpiry { renew: Duration, lease: Duration },
    #[error("--leader-election-retry-period ({retry:?}) must be shorter than --leader-election-renew-deadline ({renew:?})")]
    RetryNotBeforeDeadline { retry: Duration, renew: Duration },
    #[error("--leader-election-lease-duration must be at least 1s")]
    LeaseTooShort,
}

impl ElectionTiming {
    pub fn validate(&self) -> Result<(), TimingError> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err(TimingError::LeaseTooShort);
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingError::RenewNotBeforeExpiry {
                renew: self.renew_deadline,
                lease: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(TimingError::RetryNotBeforeDeadline {
                retry: self.retry_period,
                renew: self.renew_deadline,
            });
        }
        Ok(())
    }

    /// The Lease's `leaseDurationSeconds`: whole seconds, rounded up.
    pub fn lease_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// What this replica read of the Lease: its resourceVersion (which changes
/// on every write, renewals included) and its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub resource_version: String,
    /// `None` or empty: released, anyone may take it at once.
    pub holder: Option<String>,
    /// The record's own `leaseDurationSeconds`.
    pub lease_duration: Option<Duration>,
}

/// The next API call to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// There is no Lease yet: create it holding it.
    Create,
    /// Take the Lease (write ourselves as holder, conditional on the
    /// resourceVersion read).
    Acquire,
    /// We hold it: write a new renewTime (conditional likewise).
    Renew,
    /// Someone else holds a live Lease: look again after the retry period.
    Wait,
}

/// The election state of one replica.
#[derive(Debug)]
pub struct Elector {
    identity: String,
    timing: ElectionTiming,
    /// The record last seen and when it was first seen in that version.
    seen: Option<(Observed, Instant)>,
    /// Until when this replica may act as leader.
    leading_until: Option<Instant>,
}

impl Elector {
    pub fn new(identity: impl Into<String>, timing: ElectionTiming) -> Self {
        Elector {
            identity: identity.into(),
            timing,
            seen: None,
            leading_until: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> ElectionTiming {
        self.timing
    }

    /// Decides what to do about the Lease as read at `now` (`None`: it does
    /// not exist).
    pub fn observe(&mut self, lease: Option<Observed>, now: Instant) -> Action {
        let Some(lease) = lease else {
            self.seen = None;
            return Action::Create;
        };
        let holder = lease.holder.clone().filter(|h| !h.is_empty());
        let first_seen = match &self.seen {
            Some((prev, at)) if prev.resource_version == lease.resource_version => *at,
            _ => now,
        };
        let wait = lease
            .lease_duration
            .map_or(self.timing.lease_duration, |d| {
                d.max(self.timing.lease_duration)
            });
        self.seen = Some((lease, first_seen));
        match holder {
            Some(h) if h == self.identity => Action::Renew,
            None => Action::Acquire,
            Some(_) => {
                // Someone else holds it: we are not leading, whatever we
                // thought (our own renewal may have been overtaken).
                self.leading_until = None;
                if now.saturating_duration_since(first_seen) >= wait {
                    Action::Acquire
                } else {
                    Action::Wait
                }
            }
        }
    }

    /// A create, acquire or renew that was sent at `attempt_started`
    /// succeeded: we lead until the renew deadline after that.
    pub fn succeeded(&mut self, attempt_started: Instant, written: Observed) {
        self.leading_until = Some(attempt_started + self.timing.renew_deadline);
        self.seen = Some((written, attempt_started));
    }

    /// The write was refused because the Lease changed meanwhile (409) or
    /// another replica created it first: read it again.
    pub fn conflicted(&mut self) {
        self.seen = None;
    }

    /// We gave the Lease up (shutdown).
    pub fn released(&mut self) {
        self.leading_until = None;
    }

    /// Whether this replica may act as leader at `now`.
    pub fn is_leading(&self, now: Instant) -> bool {
        self.leading_until.is_some_and(|until| now < until)
    }

    /// Until when this replica may act, if it leads.
    pub fn leading_until(&self) -> Option<Instant> {
        self.leading_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ElectionTiming = ElectionTiming {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };

    fn lease(rv: &str, holder: Option<&str>) -> Option<Observed> {
        Some(Observed {
            resource_version: rv.into(),
            holder: holder.map(str::to_owned),
            lease_duration: Some(Duration::from_secs(15)),
        })
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn missing_lease_is_created_and_released_lease_taken_at_once() {
        let t0 = Instant::now();
        let mut e = Elector::new("a", T);
        assert_eq!(e.observe(None, t0), Action::Create);
        assert_eq!(e.observe(lease("1", None), t0), Action::Acquire);
        assert_eq!(e.observe(lease("2", Some("")), t0), Action::Acquire);
        assert!(!e.is_leading(t0), "deciding to acquire is not leading");
    }

    #[test]
    fn a_live_lease_of_another_is_taken_only_after_a_full_unchanged_duration() {
        let t0 = Instant::now();
        let mut e = Elector::new("b", T);
        assert_eq!(e.observe(lease("5", Some("a")), t0), Action::Wait);
        assert_eq!(
            e.observe(lease("5", Some("a")), t0 + secs(14)),
            Action::Wait
        );
        // The holder renewed (new resourceVersion): the wait starts again.
        assert_eq!(
            e.observe(lease("6", Some("a")), t0 + secs(14)),
            Action::Wait
        );
        assert_eq!(
            e.observe(lease("6", Some("a")), t0 + secs(28)),
            Action::Wait
        );
        assert_eq!(
            e.observe(lease("6", Some("a")), t0 + secs(29)),
            Action::Acquire
        );
    }

    #[test]
    fn a_longer_duration_in_the_record_is_honoured() {
        let t0 = Instant::now();
        let mut e = Elector::new("b", T);
        let long = Some(Observed {
            resource_version: "1".into(),
            holder: Some("a".into()),
            lease_duration: Some(secs(60)),
        });
        assert_eq!(e.observe(long.clone(), t0), Action::Wait);
        assert_eq!(e.observe(long.clone(), t0 + secs(59)), Action::Wait);
        assert_eq!(e.observe(long, t0 + secs(60)), Action::Acquire);
    }

    #[test]
    fn the_holder_acts_only_until_the_renew_deadline_of_its_last_success() {
        let t0 = Instant::now();
        let mut e = Elector::new("a", T);
        assert_eq!(e.observe(lease("1", None), t0), Action::Acquire);
        e.succeeded(t0, lease("2", Some("a")).unwrap_or_else(|| unreachable!()));
        assert!(e.is_leading(t0 + secs(9)));
        // Renewals fail from here on (API unreachable): leadership ends at
        // the deadline without any API call.
        assert!(!e.is_leading(t0 + secs(10)));
        assert_eq!(
            e.observe(lease("2", Some("a")), t0 + secs(11)),
            Action::Renew
        );
    }

    #[test]
    fn the_holder_stops_before_a_follower_can_start() {
        // Worst case: the follower saw the renewal the instant it was sent.
        let t0 = Instant::now();
        let mut leader = Elector::new("a", T);
        let mut follower = Elector::new("b", T);
        leader.observe(lease("1", None), t0);
        leader.succeeded(t0, lease("2", Some("a")).unwrap_or_else(|| unreachable!()));
        assert_eq!(follower.observe(lease("2", Some("a")), t0), Action::Wait);
        let mut t = t0;
        while follower.observe(lease("2", Some("a")), t) == Action::Wait {
            t += Duration::from_millis(100);
        }
        assert!(!leader.is_leading(t), "both would act at {:?}", t - t0);
        assert!(t - t0 >= T.lease_duration);
    }

    #[test]
    fn seeing_another_holder_ends_leadership_at_once() {
        let t0 = Instant::now();
        let mut e = Elector::new("a", T);
        e.observe(lease("1", None), t0);
        e.succeeded(t0, lease("2", Some("a")).unwrap_or_else(|| unreachable!()));
        assert_eq!(e.observe(lease("3", Some("b")), t0 + secs(1)), Action::Wait);
        assert!(!e.is_leading(t0 + secs(1)));
    }

    #[test]
    fn release_ends_leadership() {
        let t0 = Instant::now();
        let mut e = Elector::new("a", T);
        e.succeeded(t0, lease("2", Some("a")).unwrap_or_else(|| unreachable!()));
        e.released();
        assert!(!e.is_leading(t0));
    }

    #[test]
    fn timing_rules() {
        assert_eq!(T.validate(), Ok(()));
        let bad = ElectionTiming {
            renew_deadline: secs(15),
            ..T
        };
        assert!(matches!(
            bad.validate(),
            Err(TimingError::RenewNotBeforeExpiry { .. })
        ));
        let bad = ElectionTiming {
            retry_period: secs(10),
            ..T
        };
        assert!(matches!(
            bad.validate(),
            Err(TimingError::RetryNotBeforeDeadline { .. })
        ));
        let sub = ElectionTiming {
            lease_duration: Duration::from_millis(2500),
            ..T
        };
        assert_eq!(sub.lease_seconds(), 3);
    }
}

//! When a client resets too many streams: the rule that cuts off rapid
//! reset (CVE-2023-44487), paced or not. Pure: the caller passes the time.
//!
//! Only resets of streams the gateway was still working on count (a reset
//! after the response is complete costs nothing). A connection is closed
//! with `GOAWAY(ENHANCE_YOUR_CALM)` once, within one window of
//! [`RESET_WINDOW`], the client has reset more than [`RESET_LIMIT`] such
//! streams *and* those are more than half of the streams it opened in that
//! window. An attacker resets nearly every stream it opens and is cut off
//! after ~100 streams; a busy client that cancels a share of its requests
//! (browsers navigating away, gRPC deadlines) stays below half.

use std::time::{Duration, Instant};

/// Client resets tolerated per window before the share is checked.
pub const RESET_LIMIT: u64 = 100;
/// The window resets and streams are counted over.
pub const RESET_WINDOW: Duration = Duration::from_secs(10);

/// Per-connection reset accounting.
#[derive(Debug)]
pub struct ResetBudget {
    /// Streams opened on the connection so far (counted without a clock, so
    /// starting a stream costs one increment).
    streams: u64,
    /// The window: when it started, and `streams` at that moment.
    window_start: Option<Instant>,
    streams_at_start: u64,
    resets: u64,
}

impl ResetBudget {
    pub fn new() -> Self {
        ResetBudget {
            streams: 0,
            window_start: None,
            streams_at_start: 0,
            resets: 0,
        }
    }

    pub fn stream_opened(&mut self) {
        self.streams += 1;
    }

    /// Counts a reset of a stream in progress; `true` when the connection
    /// must be closed. A window starts with the first reset after the last
    /// one ended, and counts the stream that was reset as opened in it.
    pub fn stream_reset(&mut self, now: Instant) -> bool {
        let expired = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= RESET_WINDOW);
        if expired {
            self.window_start = Some(now);
            self.streams_at_start = self.streams.saturating_sub(1);
            self.resets = 0;
        }
        self.resets += 1;
        let opened = self.streams - self.streams_at_start;
        self.resets > RESET_LIMIT && self.resets * 2 > opened
    }
}

impl Default for ResetBudget {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `streams` streams, resetting every `reset_every`-th one, one
    /// stream per `pace`; returns after how many streams the connection
    /// was cut off, if it was.
    fn run(streams: u64, reset_every: u64, pace: Duration) -> Option<u64> {
        let mut budget = ResetBudget::new();
        let start = Instant::now();
        for i in 1..=streams {
            budget.stream_opened();
            let now = start + pace * u32::try_from(i).unwrap();
            if i % reset_every == 0 && budget.stream_reset(now) {
                return Some(i);
            }
        }
        None
    }

    #[test]
    fn verdicts() {
        let ms = Duration::from_millis;
        let cases: [(&str, u64, u64, Duration, Option<u64>); 6] = [
            // Every stream reset: cut off at the 101st.
            ("unpaced_rapid_reset", 10_000, 1, Duration::ZERO, Some(101)),
            ("paced_rapid_reset_1ms", 10_000, 1, ms(1), Some(101)),
            ("paced_rapid_reset_20ms", 10_000, 1, ms(20), Some(101)),
            // Slower than 100 per 10 s: each window starts afresh.
            ("resets_below_the_limit_per_window", 2_000, 1, ms(110), None),
            // A third of 10,000 streams cancelled: never half.
            ("busy_client_cancelling_a_third", 10_000, 3, ms(1), None),
            // Every other stream: the window opens at a reset, so the
            // resets are one more than half of its streams.
            ("every_other_stream", 10_000, 2, Duration::ZERO, Some(202)),
        ];
        for (name, streams, every, pace, want) in cases {
            assert_eq!(run(streams, every, pace), want, "case {name}");
        }
    }

    #[test]
    fn a_new_window_forgets_old_resets() {
        let mut budget = ResetBudget::new();
        let start = Instant::now();
        for _ in 0..RESET_LIMIT {
            budget.stream_opened();
            assert!(!budget.stream_reset(start));
        }
        budget.stream_opened();
        assert!(
            !budget.stream_reset(start + RESET_WINDOW),
            "the 101st reset falls in a new window"
        );
        // The new window counts from 1: 99 more are tolerated, the 101st is not.
        for _ in 0..RESET_LIMIT - 1 {
            budget.stream_opened();
            assert!(!budget.stream_reset(start + RESET_WINDOW));
        }
        budget.stream_opened();
        assert!(budget.stream_reset(start + RESET_WINDOW));
    }
}

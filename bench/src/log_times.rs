//! Reading the processes' logs: `key=value` numbers and the RFC 3339 UTC
//! timestamps tracing puts at the start of each line, so a change can be
//! followed from the API write through the controller to the gateway (all
//! processes share the machine's clock).

use std::time::{SystemTime, UNIX_EPOCH};

/// One log line that has a timestamp, with colour codes removed.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedLine {
    /// Seconds since the epoch.
    pub at: f64,
    pub text: String,
}

impl TimedLine {
    /// The number after `key` (e.g. `elapsed_ms=`) in this line.
    pub fn value(&self, key: &str) -> Option<f64> {
        value_after(&self.text, key)
    }
}

/// Lines containing `marker`, with their timestamps, in log order.
pub fn timed_lines(log: &str, marker: &str) -> Vec<TimedLine> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            let at = parse_timestamp(l.split_whitespace().next()?)?;
            Some(TimedLine {
                at,
                text: l.to_owned(),
            })
        })
        .collect()
}

/// The first line at or after `at` (lines are in time order).
pub fn first_at_or_after(lines: &[TimedLine], at: f64) -> Option<&TimedLine> {
    let i = lines.partition_point(|l| l.at < at);
    lines.get(i)
}

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The number right after `key` in `line`.
pub fn value_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Removes `ESC [ ... letter` sequences.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `2026-11-23T10:20:30.123456Z` as seconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60) as f64 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_seconds_since_the_epoch() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_timestamp("2000-03-01T00:00:01.5Z"),
            Some(951_868_801.5)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T23:59:59.000001Z").map(|t| (t * 1e6).round() / 1e6),
            Some(1_709_251_199.000_001)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn lines_keep_their_time_and_values() {
        let log = "\x1b[2m2026-11-23T10:00:00.250000Z\x1b[0m \x1b[32m INFO\x1b[0m gatehouse_controller::rebuild: published snapshot version=5 \x1b[3melapsed_ms\x1b[0m\x1b[2m=\x1b[0m42\n\
                   2026-11-23T10:00:01.000000Z  INFO other: nothing\n\
                   2026-11-23T10:00:02.000000Z  INFO gatehouse_controller::rebuild: published snapshot version=6 elapsed_ms=7\n";
        let lines = timed_lines(log, "published snapshot");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].value("elapsed_ms="), Some(42.0));
        let base = parse_timestamp("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(lines[0].at - base, 0.25);
        assert_eq!(
            first_at_or_after(&lines, base + 0.3).map(|l| l.value("version=")),
            Some(Some(6.0))
        );
        assert!(first_at_or_after(&lines, base + 3.0).is_none());
    }
}

//! The load generators: wrk for HTTP/1.1 (a Lua script cycles through the
//! route set's hosts and prints its results as one line), h2load for
//! cleartext HTTP/2 with prior knowledge (latencies from its per-request
//! log).

use crate::procs::{CpuList, Proc, ProcError};
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Marks the line the wrk script prints at the end.
const WRK_RESULT_TAG: &str = "GATEHOUSE_BENCH";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Process(#[from] ProcError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{tool} output has no result ({reason}); see {log}")]
    NoResult {
        tool: &'static str,
        reason: String,
        log: String,
    },
}

/// One kind of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Load {
    /// wrk: HTTP/1.1 keepalive connections, one request in flight each.
    Http1 { connections: u32 },
    /// h2load: HTTP/2 connections with several concurrent streams each.
    Http2 { connections: u32, streams: u32 },
}

impl Load {
    pub fn label(&self) -> String {
        match self {
            Load::Http1 { connections } => format!("h1 c{connections}"),
            Load::Http2 {
                connections,
                streams,
            } => format!("h2 c{connections}×{streams}"),
        }
    }

    pub fn is_http2(&self) -> bool {
        matches!(self, Load::Http2 { .. })
    }
}

/// What a load run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadResult {
    /// Responses received.
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors, timeouts and non-2xx/3xx answers.
    pub errors: u64,
}

impl LoadResult {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

/// A wrk script that sends `GET /` to each host in turn and prints the
/// summary as `GATEHOUSE_BENCH requests duration_us errors... p50_us p99_us`.
pub fn wrk_script(hosts: &[String]) -> String {
    let mut out = String::from("local hosts = {\n");
    for h in hosts {
        let _ = writeln!(out, "  \"{h}\",");
    }
    let _ = write!(
        out,
        r#"}}
local reqs = {{}}
local n = 0
init = function(args)
  for i, h in ipairs(hosts) do
    reqs[i] = wrk.format("GET", "/", {{ Host = h }})
  end
end
request = function()
  n = n % #reqs + 1
  return reqs[n]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{WRK_RESULT_TAG} %d %d %d %d %d %d %d %.1f %.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#
    );
    out
}

/// Parses the script's result line out of wrk's output.
pub fn parse_wrk(output: &str) -> Option<LoadResult> {
    let line = output.lines().find(|l| l.starts_with(WRK_RESULT_TAG))?;
    let f: Vec<f64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|w| w.parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    if f.len() != 9 {
        return None;
    }
    Some(LoadResult {
        requests: f[0] as u64,
        seconds: f[1] / 1e6,
        errors: f[2..7].iter().sum::<f64>() as u64,
        p50_ms: f[7] / 1e3,
        p99_ms: f[8] / 1e3,
    })
}

/// Requests and duration from h2load's summary.
pub fn parse_h2load_summary(output: &str) -> Option<(u64, f64, u64)> {
    let seconds: f64 = output
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))?
        .split('s')
        .next()?
        .parse()
        .ok()?;
    let counts = output.lines().find_map(|l| l.strip_prefix("requests: "))?;
    let count = |label: &str| -> Option<u64> {
        counts
            .split(", ")
            .find_map(|part| part.strip_suffix(label))?
            .trim()
            .parse()
            .ok()
    };
    let succeeded = count(" succeeded")?;
    let errors = count(" failed")? + count(" errored")? + count(" timeout")?;
    let non_2xx = output
        .lines()
        .find_map(|l| l.strip_prefix("status codes: "))
        .map(|codes| {
            codes
                .split(", ")
                .filter(|c| !c.ends_with(" 2xx"))
                .filter_map(|c| c.split(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .unwrap_or(0);
    Some((succeeded, seconds, errors + non_2xx))
}

/// p50 and p99 (ms) of the durations (third column, µs) in h2load's log.
pub fn h2load_percentiles(log: &str) -> Option<(f64, f64)> {
    let mut micros: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    Some((at(0.50), at(0.99)))
}

/// Where a load run sends its requests.
pub struct Target<'a> {
    pub addr: SocketAddr,
    /// HTTP/2 sends every request to this host (h2load has one authority).
    pub h2_host: &'a str,
    /// The wrk script for HTTP/1.1.
    pub wrk_script: &'a Path,
}

/// Runs one load for `duration` on `cpus`; returns what it measured and the
/// load generator's own CPU time (clock ticks).
pub fn run(
    load: Load,
    target: &Target<'_>,
    duration: Duration,
    cpus: &CpuList,
    dir: &Path,
    label: &str,
) -> Result<(LoadResult, u64), LoadError> {
    let secs = duration.as_secs().max(1).to_string();
    let url = format!("http://{}/", target.addr);
    let timeout = duration + Duration::from_secs(30);
    match load {
        Load::Http1 { connections } => {
            let args = vec![
                "-t1".into(),
                format!("-c{connections}"),
                format!("-d{secs}s"),
                "--timeout".into(),
                "5s".into(),
                "-s".into(),
                target.wrk_script.display().to_string(),
                url,
            ];
            let mut p = Proc::spawn(label, "wrk", &args, Some(cpus), dir)?;
            let ticks = p.finish(timeout)?;
            let out = std::fs::read_to_string(p.log_path()).unwrap_or_default();
            let result = parse_wrk(&out).ok_or_else(|| LoadError::NoResult {
                tool: "wrk",
                reason: "no result line".into(),
                log: p.log_path().display().to_string(),
            })?;
            Ok((result, ticks))
        }
        Load::Http2 {
            connections,
            streams,
        } => {
            let log_file: PathBuf = dir.join(format!("{label}.requests"));
            let args = vec![
                "-t1".into(),
                format!("-c{connections}"),
                format!("-m{streams}"),
                "-D".into(),
                secs,
                format!("--log-file={}", log_file.display()),
                "-H".into(),
                format!(":authority: {}", target.h2_host),
                url,
            ];
            let mut p = Proc::spawn(label, "h2load", &args, Some(cpus), dir)?;
            let ticks = p.finish(timeout)?;
            let out = std::fs::read_to_string(p.log_path()).unwrap_or_default();
            let no_result = |reason: &str| LoadError::NoResult {
                tool: "h2load",
                reason: reason.into(),
                log: p.log_path().display().to_string(),
            };
            let (requests, seconds, errors) =
                parse_h2load_summary(&out).ok_or_else(|| no_result("no summary"))?;
            let per_request = std::fs::read_to_string(&log_file).unwrap_or_default();
            // The per-request log is large; only its percentiles are kept.
            let _ = std::fs::remove_file(&log_file);
            let (p50_ms, p99_ms) =
                h2load_percentiles(&per_request).ok_or_else(|| no_result("empty request log"))?;
            let result = LoadResult {
                requests,
                seconds,
                p50_ms,
                p99_ms,
                errors,
            };
            Ok((result, ticks))
        }
    }
}

/// Writes a file, as a [`LoadError`].
pub fn write_file(path: &Path, text: &str) -> Result<(), LoadError> {
    std::fs::write(path, text).map_err(|source| LoadError::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_result_line_is_parsed() {
        let out = "Running 10s test\nGATEHOUSE_BENCH 300000 10000000 0 1 0 2 0 1250.0 4300.5\n";
        let r = parse_wrk(out).unwrap();
        assert_eq!(r.requests, 300_000);
        assert_eq!(r.errors, 3);
        assert!((r.requests_per_second() - 30_000.0).abs() < 1e-6);
        assert!((r.p99_ms - 4.3005).abs() < 1e-9);
        assert_eq!(parse_wrk("no result"), None);
    }

    #[test]
    fn h2load_summary_and_log_are_parsed() {
        let out = "finished in 2.00s, 29530.00 req/s, 4.73MB/s\n\
            requests: 59060 total, 59064 started, 59060 done, 59050 succeeded, 10 failed, 0 errored, 0 timeout\n\
            status codes: 59040 2xx, 0 3xx, 10 4xx, 0 5xx\n";
        assert_eq!(parse_h2load_summary(out), Some((59050, 2.0, 20)));
        let log: String = (1..=100)
            .map(|i| format!("1\t200\t{}\n", i * 1000))
            .collect();
        assert_eq!(h2load_percentiles(&log), Some((51.0, 99.0)));
    }

    #[test]
    fn wrk_script_lists_hosts() {
        let s = wrk_script(&["a.test".into(), "b.test".into()]);
        assert!(s.contains("\"a.test\",\n  \"b.test\","));
        assert!(s.contains("GATEHOUSE_BENCH %d"));
    }
}

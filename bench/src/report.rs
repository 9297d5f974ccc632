//! From samples to the one table: medians per (routes, load, proxy), runs
//! with too much hypervisor steal left out, every figure next to its ratio
//! to nginx in the same cell.

use crate::load::Load;
use crate::proxies::ProxyKind;
use crate::throughput::Sample;
use std::fmt::Write;

/// Runs with more hypervisor steal than this are flagged and, when the cell
/// has cleaner runs, left out of the medians.
pub const STEAL_LIMIT: f64 = 0.05;

/// Likewise for runs where processes outside the benchmark took more than
/// this share of either core (other builds, cron jobs).
pub const CONTENTION_LIMIT: f64 = 0.10;

fn is_clean(s: &Sample) -> bool {
    s.window.steal <= STEAL_LIMIT && s.contention() <= CONTENTION_LIMIT
}

/// The medians of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub routes: Option<usize>,
    pub load: Load,
    pub proxy: ProxyKind,
    /// Runs used / runs taken.
    pub used: usize,
    pub taken: usize,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rss_mib: Option<f64>,
    pub cpu_per_100k: Option<f64>,
    pub per_busy_core: Option<f64>,
    /// Highest steal of any run in the cell.
    pub max_steal: f64,
    /// Highest share of a core other processes took in any run used.
    pub max_contention: f64,
    /// Errors and non-2xx answers over all runs.
    pub errors: u64,
}

pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// One row per cell, in a stable order: route count, load, proxy.
pub fn aggregate(samples: &[Sample]) -> Vec<Row> {
    let mut keys: Vec<(Option<usize>, Load, ProxyKind)> = samples
        .iter()
        .map(|s| (s.routes, s.load, s.proxy))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|(routes, load, proxy)| {
            let all: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.routes == routes && s.load == load && s.proxy == proxy)
                .collect();
            let clean: Vec<&Sample> = all.iter().copied().filter(|s| is_clean(s)).collect();
            let used = if clean.is_empty() { all.clone() } else { clean };
            let med = |f: &dyn Fn(&Sample) -> Option<f64>| {
                median(used.iter().filter_map(|s| f(s)).collect())
            };
            Some(Row {
                routes,
                load,
                proxy,
                used: used.len(),
                taken: all.len(),
                rps: med(&|s| Some(s.requests_per_second()))?,
                p50_ms: med(&|s| Some(s.result.p50_ms))?,
                p99_ms: med(&|s| Some(s.result.p99_ms))?,
                rss_mib: med(&|s| s.rss_kib.map(|k| k as f64 / 1024.0)),
                cpu_per_100k: med(&|s| s.cpu_per_100k()),
                per_busy_core: med(&|s| s.per_busy_core()),
                max_steal: all.iter().map(|s| s.window.steal).fold(0.0, f64::max),
                max_contention: used.iter().map(|s| s.contention()).fold(0.0, f64::max),
                errors: all.iter().map(|s| s.result.errors).sum(),
            })
        })
        .collect()
}

fn thousands(v: f64) -> String {
    format!("{:.1}k", v / 1000.0)
}

/// `value (ratio)`, or just the value where there is nothing to compare.
fn with_ratio(value: Option<f64>, nginx: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    match (value, nginx) {
        (Some(v), Some(n)) if n > 0.0 => format!("{} ({:.2})", fmt(v), v / n),
        (Some(v), _) => fmt(v),
        (None, _) => "—".into(),
    }
}

/// The results table (Markdown).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| routes | load | proxy | req/s | p50 ms | p99 ms | RSS MiB | CPU s / 100k req | req/s per busy core | runs | max steal |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let nginx = rows
            .iter()
            .find(|r| r.proxy == ProxyKind::Nginx && r.routes == row.routes && r.load == row.load);
        let base = |f: fn(&Row) -> Option<f64>| nginx.and_then(f);
        let steal = row.max_steal > STEAL_LIMIT;
        let contended = row.max_contention > CONTENTION_LIMIT;
        let flags = match (steal || contended, row.errors > 0) {
            (false, false) => String::new(),
            (_, errors) => {
                let mut f = String::from(" ⚠");
                if steal {
                    f += " steal";
                }
                if contended {
                    let _ = write!(f, " other load {:.0}%", row.max_contention * 100.0);
                }
                if errors {
                    let _ = write!(f, " {} errors", row.errors);
                }
                f
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {:.1}%{} |",
            row.routes.map_or("—".into(), |r| r.to_string()),
            row.load.label(),
            row.proxy.name(),
            with_ratio(Some(row.rps), base(|r| Some(r.rps)), thousands),
            with_ratio(Some(row.p50_ms), base(|r| Some(r.p50_ms)), |v| format!(
                "{v:.2}"
            )),
            with_ratio(Some(row.p99_ms), base(|r| Some(r.p99_ms)), |v| format!(
                "{v:.2}"
            )),
            with_ratio(row.rss_mib, base(|r| r.rss_mib), |v| format!("{v:.1}")),
            with_ratio(row.cpu_per_100k, base(|r| r.cpu_per_100k), |v| format!(
                "{v:.2}"
            )),
            with_ratio(row.per_busy_core, base(|r| r.per_busy_core), thousands),
            row.used,
            row.taken,
            row.max_steal * 100.0,
            flags,
        );
    }
    out
}

/// Every sample as CSV, for anyone who wants more than medians.
pub fn samples_csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "routes,load,proxy,repetition,requests,seconds,req_per_s,p50_ms,p99_ms,errors,rss_kib,proxy_cpu_s,proxy_core_busy,proxy_core_other,rig_core_busy,rig_core_other,steal,started_quiet\n",
    );
    for s in samples {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.3},{:.1},{:.3},{:.3},{},{},{:.3},{:.4},{:.4},{:.4},{:.4},{:.4},{}",
            s.routes.map_or(String::new(), |r| r.to_string()),
            s.load.label(),
            s.proxy.name(),
            s.repetition,
            s.result.requests,
            s.result.seconds,
            s.requests_per_second(),
            s.result.p50_ms,
            s.result.p99_ms,
            s.result.errors,
            s.rss_kib.map_or(String::new(), |k| k.to_string()),
            s.window.proxy_cpu_seconds,
            s.window.proxy_core_busy,
            s.window.proxy_core_other,
            s.window.rig_core_busy,
            s.window.rig_core_other,
            s.window.steal,
            s.started_quiet,
        );
    }
    out
}

/// One line per sample while the matrix runs.
pub fn progress_line(s: &Sample) -> String {
    format!(
        "  {:<9} {:>6} routes  {:<12} rep {}  {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  proxy core {:>3.0}% busy  proxy cpu {:>5.2} s  other load {:>3.0}%  steal {:.1}%{}",
        s.proxy.name(),
        s.routes.map_or("—".into(), |r| r.to_string()),
        s.load.label(),
        s.repetition + 1,
        s.requests_per_second(),
        s.result.p50_ms,
        s.result.p99_ms,
        s.window.proxy_core_busy * 100.0,
        s.window.proxy_cpu_seconds,
        s.contention() * 100.0,
        s.window.steal * 100.0,
        if s.result.errors > 0 { format!("  {} ERRORS", s.result.errors) } else { String::new() },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadResult;
    use crate::sysstat::WindowStats;
    use std::time::Duration;

    fn sample(proxy: ProxyKind, rps: f64, steal: f64, rep: usize) -> Sample {
        Sample {
            routes: Some(10),
            load: Load::Http1 { connections: 50 },
            proxy,
            repetition: rep,
            result: LoadResult {
                requests: (rps * 10.0) as u64,
                seconds: 10.0,
                p50_ms: 1.0,
                p99_ms: 4.0,
                errors: 0,
            },
            window: WindowStats {
                elapsed: Duration::from_secs(10),
                proxy_cpu_seconds: 9.0,
                proxy_core_busy: 0.9,
                proxy_core_other: 0.0,
                rig_core_busy: 1.0,
                rig_core_other: 0.0,
                steal,
            },
            rss_kib: Some(10 * 1024),
            started_quiet: true,
        }
    }

    #[test]
    fn medians_leave_out_high_steal_runs_and_ratios_use_nginx() {
        let samples = vec![
            sample(ProxyKind::Nginx, 30_000.0, 0.0, 0),
            sample(ProxyKind::Nginx, 32_000.0, 0.0, 1),
            sample(ProxyKind::Nginx, 10_000.0, 0.2, 2),
            sample(ProxyKind::Gatehouse, 33_000.0, 0.0, 0),
        ];
        let rows = aggregate(&samples);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].used, rows[0].taken), (2, 3));
        assert_eq!(rows[0].rps, 31_000.0);
        let t = table(&rows);
        assert!(t.contains("| nginx | 31.0k (1.00) |"), "{t}");
        assert!(t.contains("| Gatehouse | 33.0k (1.06) |"), "{t}");
        assert!(t.contains("⚠ steal"), "{t}");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}

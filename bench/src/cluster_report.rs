//! The cluster-mode propagation tables (Markdown): latency per change kind
//! with where the time went, resources per scale, and the bursts.

use crate::cluster_burst::BurstResult;
use crate::cluster_propagation::ClusterResult;
use crate::cluster_timing::{percentile, Change, ChangeKind};
use crate::report::{median, CONTENTION_LIMIT, STEAL_LIMIT};
use crate::sysstat::MachineStats;
use std::fmt::Write;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn show(v: Option<f64>, decimals: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.decimals$}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Latency: one row per scale and change kind.
pub fn latency_table(results: &[ClusterResult]) -> String {
    let mut out = String::from(
        "| Ingresses | change | changes | p50 ms | p99 ms | max ms | API write p50 ms | → controller published p50 ms | of which rebuild p50 ms | → gateway installed p50 ms | → served p50 ms |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        for (kind, changes) in [
            (ChangeKind::Ingress, &r.ingress_changes),
            (ChangeKind::EndpointSlice, &r.endpoint_changes),
        ] {
            latency_row(&mut out, r.ingresses, kind, changes);
        }
    }
    out
}

fn latency_row(out: &mut String, ingresses: usize, kind: ChangeKind, changes: &[Change]) {
    let totals: Vec<f64> = changes.iter().map(|c| ms(c.total)).collect();
    let med = |f: &dyn Fn(&Change) -> Option<f64>| median(changes.iter().filter_map(f).collect());
    // Each stage from the end of the one before, so they add up to the total.
    let published = med(&|c| c.published.map(|p| p * 1e3 - ms(c.ack)));
    let installed = med(&|c| Some((c.installed? - c.published?) * 1e3));
    let served = med(&|c| Some(ms(c.total) - c.installed? * 1e3));
    let _ = writeln!(
        out,
        "| {ingresses} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        kind.label(),
        changes.len(),
        show(percentile(&totals, 0.50), 0),
        show(percentile(&totals, 0.99), 0),
        show(percentile(&totals, 1.0), 0),
        show(med(&|c| Some(ms(c.ack))), 1),
        show(published, 1),
        show(med(&|c| c.rebuild_ms), 1),
        show(installed, 1),
        show(served, 1),
    );
}

/// Setup, first snapshot, memory and machine load: one row per scale.
pub fn resources_table(results: &[ClusterResult]) -> String {
    let mut out = String::from(
        "| Ingresses | API objects | created in s (writes/s) | snapshot MiB | first snapshot s | controller RSS (peak) MiB | gateway RSS (peak) MiB | API emulator RSS MiB | other load | steal |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let flag = load_flag(&r.machine);
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} ({:.0}) | {} | {:.2} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.0} | {:.0}%{flag} | {:.1}% |",
            r.ingresses,
            r.objects,
            r.setup.as_secs_f64(),
            r.objects as f64 / r.setup.as_secs_f64().max(1e-9),
            show(r.snapshot_bytes.map(|b| b as f64 / (1024.0 * 1024.0)), 1),
            r.initial.as_secs_f64(),
            mib(r.controller.rss_kib),
            mib(r.controller.peak_kib),
            mib(r.gateway.rss_kib),
            mib(r.gateway.peak_kib),
            mib(r.emulator.rss_kib),
            r.machine.other * 100.0,
            r.machine.steal * 100.0,
        );
    }
    out
}

/// ` ⚠` where steal or other processes' load was above the limits the
/// throughput runs are held to.
pub fn load_flag(machine: &MachineStats) -> &'static str {
    if machine.steal > STEAL_LIMIT || machine.other > CONTENTION_LIMIT {
        " ⚠"
    } else {
        ""
    }
}

/// Bursts: one row per scale and burst.
pub fn burst_table(results: &[ClusterResult]) -> String {
    let mut out = String::from(
        "| Ingresses | burst of | changes | written in s | last served after s | full rebuilds | endpoint rebuilds | served (checked) | controller peak after MiB |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        for b in &r.bursts {
            burst_row(&mut out, r, b);
        }
    }
    out
}

fn burst_row(out: &mut String, r: &ClusterResult, b: &BurstResult) {
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.2} | {:.2} | {} | {} | {}/{} | {:.0} |",
        r.ingresses,
        b.kind.label(),
        b.changes,
        b.write.as_secs_f64(),
        b.served.as_secs_f64(),
        b.rebuilds.full,
        b.rebuilds.endpoints,
        b.verified,
        b.changes,
        mib(r.controller_peak_after_bursts_kib),
    );
}

/// One line per scale while the suite runs.
pub fn progress(r: &ClusterResult) -> String {
    let list = |changes: &[Change]| {
        changes
            .iter()
            .map(|c| format!("{:.0}", ms(c.total)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut line = format!(
        "  {} objects created in {:.1} s; first snapshot served after {:.2} s\n  Ingress changes (ms): {}\n  EndpointSlice changes (ms): {}\n  controller RSS {:.0} MiB (peak {:.0}); other load {:.0}%, steal {:.1}%{}",
        r.objects,
        r.setup.as_secs_f64(),
        r.initial.as_secs_f64(),
        list(&r.ingress_changes),
        list(&r.endpoint_changes),
        mib(r.controller.rss_kib),
        mib(r.controller.peak_kib),
        r.machine.other * 100.0,
        r.machine.steal * 100.0,
        if r.started_quiet { "" } else { " (the machine was not quiet at the start)" },
    );
    for b in &r.bursts {
        let _ = write!(
            line,
            "\n  burst of {} {}: written in {:.2} s, served after {:.2} s, {} full + {} endpoint rebuilds, {}/{} served",
            b.changes,
            b.kind.label(),
            b.write.as_secs_f64(),
            b.served.as_secs_f64(),
            b.rebuilds.full,
            b.rebuilds.endpoints,
            b.verified,
            b.changes
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_burst::{BurstKind, Rebuilds};
    use crate::cluster_propagation::Memory;
    use crate::sysstat::MachineStats;
    use std::time::Duration;

    fn change(total_ms: u64) -> Change {
        let mut c = Change::new(
            0.0,
            Duration::from_millis(2),
            Duration::from_millis(total_ms),
        );
        c.published = Some(0.010);
        c.installed = Some(0.015);
        c.rebuild_ms = Some(4.0);
        c
    }

    #[test]
    fn tables_have_a_row_per_scale_and_kind() {
        let r = ClusterResult {
            ingresses: 20,
            objects: 64,
            setup: Duration::from_millis(500),
            snapshot_bytes: Some(3 << 20),
            initial: Duration::from_millis(1500),
            ingress_changes: vec![change(20), change(30)],
            endpoint_changes: vec![change(16)],
            controller: Memory {
                rss_kib: 10240,
                peak_kib: 20480,
            },
            gateway: Memory::default(),
            emulator: Memory::default(),
            bursts: vec![BurstResult {
                kind: BurstKind::Ingresses,
                changes: 18,
                write: Duration::from_millis(40),
                served: Duration::from_millis(300),
                rebuilds: Rebuilds {
                    full: 2,
                    endpoints: 0,
                },
                verified: 18,
            }],
            controller_peak_after_bursts_kib: 20480,
            machine: MachineStats {
                steal: 0.0,
                other: 0.5,
                ours: 0.2,
            },
            started_quiet: false,
        };
        let latency = latency_table(std::slice::from_ref(&r));
        assert!(
            latency.contains("| 20 | Ingress | 2 | 20 | 30 | 30 | 2.0 | 8.0 | 4.0 | 5.0 | 10.0 |"),
            "{latency}"
        );
        assert!(
            latency.contains("| 20 | EndpointSlice | 1 | 16 |"),
            "{latency}"
        );
        let resources = resources_table(std::slice::from_ref(&r));
        assert!(
            resources.contains("| 20 | 64 | 0.5 (128) | 3.0 | 1.50 | 10 (20) |"),
            "{resources}"
        );
        assert!(resources.contains("50% ⚠"), "{resources}");
        let bursts = burst_table(&[r]);
        assert!(
            bursts.contains("| 20 | Ingresses | 18 | 0.04 | 0.30 | 2 | 0 | 18/18 | 20 |"),
            "{bursts}"
        );
    }
}

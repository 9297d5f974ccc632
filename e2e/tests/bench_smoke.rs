//! The benchmark suite end to end, scaled down so it runs with the tests:
//! every proxy is started, checked to route, loaded over HTTP/1.1 and
//! HTTP/2, propagation is measured in local and in cluster mode (the API
//! emulator, the controller over mutual TLS, bursts), load-balancer
//! addresses are allocated to 100 Services, results are written,
//! and nothing the suite started is left running. Numbers are not checked here (timing
//! belongs to `scripts/bench.sh` runs); that the suite works is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_e2e::local::binary;
use std::process::Command;

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

#[test]
fn benchmark_suite_runs_end_to_end_and_stops_everything() {
    for tool in ["nginx", "haproxy", "wrk", "h2load", "taskset"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "{tool} is missing: .ci/run (or scripts/bench.sh) installs nginx-light, haproxy, wrk, nghttp2-client"
        );
    }
    let bench = binary("gatehouse-bench").unwrap();
    let bin_dir = bench.parent().unwrap().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let work_dir = work.path().join("run");
    let out = Command::new(&bench)
        .args(["--bin-dir", bin_dir.to_str().unwrap()])
        .args(["--work-dir", work_dir.to_str().unwrap()])
        .args(["--routes", "10", "--http1-connections", "16"])
        .args(["--http2-connections", "4", "--http2-streams", "2"])
        .args(["--duration", "1", "--warmup", "0", "--repetitions", "1"])
        .args(["--no-direct", "--max-quiet-wait", "0"])
        .args(["--ingresses", "50", "--changes", "2"])
        .args(["--cluster-ingresses", "20", "--burst", "10"])
        .args(["--lb-services", "100"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed\n{stdout}\n{stderr}");

    let results = std::fs::read_to_string(work_dir.join("results.md")).unwrap();
    for proxy in ["nginx", "HAProxy", "Gatehouse"] {
        for load in ["h1 c16", "h2 c4×2"] {
            let row = results
                .lines()
                .find(|l| l.contains(&format!("| {load} | {proxy} |")))
                .unwrap_or_else(|| panic!("no {proxy} {load} row in\n{results}"));
            assert!(!row.contains("errors"), "{row}");
        }
    }
    let propagation = results
        .lines()
        .find(|l| l.starts_with("| 50 |"))
        .unwrap_or_else(|| panic!("no propagation row in\n{results}"));
    assert!(propagation.contains("| 2 |"), "{propagation}");
    for kind in ["Ingress", "EndpointSlice"] {
        let row = results
            .lines()
            .find(|l| l.starts_with(&format!("| 20 | {kind} | 2 |")))
            .unwrap_or_else(|| panic!("no cluster {kind} row in\n{results}"));
        // p50, p99 and max are measured; the stages come from log lines
        // and may be unattributed (—) when the gateway logs its install
        // after it already served the change.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for cell in &cells[4..7] {
            assert!(cell.parse::<f64>().is_ok(), "latencies measured: {row}");
        }
    }
    assert!(
        results.lines().any(|l| l.starts_with("| 20 | 64 |")),
        "no cluster resources row in\n{results}"
    );
    for burst in ["EndpointSlices", "Ingresses"] {
        let row = results
            .lines()
            .find(|l| l.starts_with(&format!("| 20 | {burst} | 10 |")))
            .unwrap_or_else(|| panic!("no {burst} burst row in\n{results}"));
        assert!(row.contains("| 10/10 |"), "every change served: {row}");
    }
    let lb = results
        .lines()
        .find(|l| l.starts_with("| 100 | 4 |"))
        .unwrap_or_else(|| panic!("no load-balancer row in\n{results}"));
    assert!(lb.contains("| all as laid out |"), "{lb}");

    // Every sample served requests and none failed.
    let csv = std::fs::read_to_string(work_dir.join("samples.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (requests, errors) = (col("requests"), col("errors"));
    let mut samples = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert!(fields[requests].parse::<u64>().unwrap() > 0, "{line}");
        assert_eq!(fields[errors], "0", "{line}");
        samples += 1;
    }
    assert_eq!(samples, 6, "3 proxies × 2 loads\n{csv}");

    let left = processes_mentioning(&work_dir.display().to_string());
    assert!(left.is_empty(), "processes left running: {left:#?}");
}

#[test]
fn soak_mode_runs_and_stops_everything() {
    let bench = binary("gatehouse-bench").unwrap();
    let bin_dir = bench.parent().unwrap().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let work_dir = work.path().join("soak");
    let run = || {
        Command::new(&bench)
            .args(["--bin-dir", bin_dir.to_str().unwrap()])
            .args(["--work-dir", work_dir.to_str().unwrap()])
            .args(["--soak", "--soak-seconds", "2"])
            .args([
                "--soak-mix",
                "slow-heads=5,slow-bodies=5,idle-h2=20,paced-reset=1,zero-window=1,floods=3",
            ])
            .output()
            .unwrap()
    };
    let mut out = run();
    // h2load sometimes ends a short run without its summary on a loaded
    // machine; that is the load tool, so one more run is allowed for it.
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("h2load output has no result")
    {
        out = run();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "soak failed\n{stdout}\n{stderr}");

    let results = std::fs::read_to_string(work_dir.join("results.md")).unwrap();
    for phase in ["before", "during", "after"] {
        let row = results
            .lines()
            .find(|l| l.starts_with(&format!("| {phase} |")))
            .unwrap_or_else(|| panic!("no {phase} row in\n{results}"));
        // Honest clients were served in every phase.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for rate in [cells[2], cells[5]] {
            let k: f64 = rate.trim_end_matches('k').parse().unwrap();
            assert!(k > 0.0, "{row}");
        }
    }
    assert!(results.contains("attackers: connections="), "{results}");

    let left = processes_mentioning(&work_dir.display().to_string());
    assert!(left.is_empty(), "processes left running: {left:#?}");
}

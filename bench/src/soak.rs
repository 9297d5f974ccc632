//! The soak: honest load (wrk over HTTP/1.1 and h2load over HTTP/2 at the
//! same time) on the gateway before, during and after a mix of attackers
//! (`gatehouse-attack`: slowloris heads and bodies, idle HTTP/2
//! connections, paced rapid reset, zero-window streams, floods), with the
//! gateway's RSS and open file descriptors sampled throughout. Not a timed
//! test: it reports what honest clients got and whether the gateway's
//! memory and descriptors come back once the attackers leave.

use crate::load::{self, Load, LoadError, LoadResult, Target};
use crate::procs::{CpuList, Proc, ProcError};
use crate::proxies::{self, Layout, SetupError};
use crate::routes::{add_host, gateway_snapshot, RouteSet};
use crate::sysstat::{self, StatError};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Process(#[from] ProcError),
    #[error(transparent)]
    Stat(#[from] StatError),
    #[error("the honest load thread panicked")]
    Thread,
}

/// How the soak is run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Honest load per phase.
    pub phase: Duration,
    /// Attackers run this long before the "during" phase is measured.
    pub ramp: Duration,
    /// Pause between the attackers leaving and the "after" phase.
    pub settle: Duration,
    /// `gatehouse-attack --mix` items (`kind=count`).
    pub mix: Vec<String>,
    pub http1_connections: u32,
    pub http2_connections: u32,
    pub http2_streams: u32,
    /// The attack binary.
    pub attack_bin: PathBuf,
    /// The echo upstream the attackers' requests go to.
    pub echo_bin: PathBuf,
}

/// Honest clients' results in one phase.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub name: &'static str,
    pub http1: LoadResult,
    pub http2: LoadResult,
    /// Gateway RSS (KiB) and open descriptors over the phase: first, peak, last.
    pub rss_kib: Span,
    pub fds: Span,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub first: u64,
    pub peak: u64,
    pub last: u64,
}

impl Span {
    fn of(values: &[u64]) -> Span {
        Span {
            first: values.first().copied().unwrap_or(0),
            peak: values.iter().copied().max().unwrap_or(0),
            last: values.last().copied().unwrap_or(0),
        }
    }
}

/// The whole soak.
#[derive(Debug, Clone)]
pub struct Report {
    pub phases: Vec<Phase>,
    /// RSS (KiB) and descriptors while the attackers left (no honest load).
    pub leaving_rss_kib: Span,
    pub leaving_fds: Span,
    /// The attacker's own result line.
    pub attack: String,
    /// RSS (KiB) and descriptors after the last phase and another settle pause.
    pub rest_rss_kib: u64,
    pub rest_fds: u64,
}

/// Samples a process's RSS and descriptors every 100 ms on a thread.
struct Sampler {
    samples: Arc<Mutex<Vec<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Ok(sample) = resources(pid) {
                    if let Ok(mut v) = s.lock() {
                        v.push(sample);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// Samples so far, cleared.
    fn take(&self) -> (Span, Span) {
        let taken = self
            .samples
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let rss: Vec<u64> = taken.iter().map(|s| s.0).collect();
        let fds: Vec<u64> = taken.iter().map(|s| s.1).collect();
        (Span::of(&rss), Span::of(&fds))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// RSS (KiB) and open descriptors of `pid`.
fn resources(pid: u32) -> Result<(u64, u64), StatError> {
    let rss = sysstat::process_rss_kib(pid)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Ok((rss, fds))
}

/// Gateway flags of the soak (before any `--gateway-arg`): attackers that
/// hold connections are cut off after 5 s rather than 60.
pub const GATEWAY_ARGS: [&str; 4] = ["--client-timeout", "5s", "--client-body-timeout", "5s"];

/// The host the attackers use: an echo upstream that answers after
/// [`ATTACK_PATH`]'s delay, so every stream the gateway keeps working on
/// holds an upstream connection.
pub const ATTACK_HOST: &str = "slow.bench.test";
pub const ATTACK_PATH: &str = "/?delay_ms=2000";

/// Runs the soak against the gateway alone (10 routes, and the attackers'
/// host).
pub fn run(plan: &Plan, layout: &Layout) -> Result<Report, SoakError> {
    let routes = RouteSet { count: 10 };
    let (_upstream, upstreams) = proxies::start_upstream(layout, routes.backends())?;
    let (_echo, echo) = proxies::start_echo(layout, &plan.echo_bin)?;
    let mut frame = gateway_snapshot(routes, &upstreams);
    add_host(&mut frame, ATTACK_HOST, echo);
    let gateway = proxies::start_gateway(layout, routes, &frame)?;
    let pid = gateway.process.as_ref().map_or(0, Proc::pid);
    let hosts = routes.load_hosts();
    let script = layout.dir.join("wrk-soak.lua");
    load::write_file(&script, &load::wrk_script(&hosts))?;
    let h2_host = hosts.last().cloned().unwrap_or_default();
    let target = Target {
        addr: gateway.http1,
        h2_host: &h2_host,
        wrk_script: &script,
    };
    let rig = layout.rig_cpus.clone();
    let sampler = Sampler::start(pid);
    let honest = |name: &'static str| -> Result<Phase, SoakError> {
        let (http1, http2) = honest_load(plan, &target, &rig, layout, name)?;
        let (rss_kib, fds) = sampler.take();
        Ok(Phase {
            name,
            http1,
            http2,
            rss_kib,
            fds,
        })
    };
    let mut phases = vec![honest("before")?];

    let seconds = (plan.ramp + plan.phase).as_secs() + 1;
    let args: Vec<String> = vec![
        "--target".into(),
        gateway.http1.to_string(),
        "--host".into(),
        ATTACK_HOST.into(),
        "--path".into(),
        ATTACK_PATH.into(),
        "--seconds".into(),
        seconds.to_string(),
        "--mix".into(),
        plan.mix.join(","),
    ];
    let mut attack = Proc::spawn(
        "attack",
        &plan.attack_bin.display().to_string(),
        &args,
        Some(&rig),
        &layout.dir,
    )?;
    std::thread::sleep(plan.ramp);
    phases.push(honest("during")?);
    attack.finish(Duration::from_secs(seconds + 30))?;
    let attack_line = std::fs::read_to_string(attack.log_path())
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("GATEHOUSE_ATTACK"))
        .unwrap_or("GATEHOUSE_ATTACK (no result line)")
        .to_owned();

    std::thread::sleep(plan.settle);
    // From the end of the honest load under attack to the "after" phase:
    // the attackers finishing and leaving.
    let (leaving_rss, leaving_fds) = sampler.take();
    phases.push(honest("after")?);
    std::thread::sleep(plan.settle);
    let (rest_rss_kib, rest_fds) = resources(pid)?;
    Ok(Report {
        phases,
        leaving_rss_kib: leaving_rss,
        leaving_fds,
        attack: attack_line,
        rest_rss_kib,
        rest_fds,
    })
}

/// wrk and h2load at the same time for one phase.
fn honest_load(
    plan: &Plan,
    target: &Target<'_>,
    rig: &CpuList,
    layout: &Layout,
    phase: &str,
) -> Result<(LoadResult, LoadResult), SoakError> {
    let h1 = Load::Http1 {
        connections: plan.http1_connections,
    };
    let h2 = Load::Http2 {
        connections: plan.http2_connections,
        streams: plan.http2_streams,
    };
    let dir = &layout.dir;
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            load::run(
                h1,
                target,
                plan.phase,
                rig,
                dir,
                &format!("soak-{phase}-h1"),
            )
        });
        let b = s.spawn(|| {
            load::run(
                h2,
                target,
                plan.phase,
                rig,
                dir,
                &format!("soak-{phase}-h2"),
            )
        });
        let (a, b) = (
            a.join().map_err(|_| SoakError::Thread)?,
            b.join().map_err(|_| SoakError::Thread)?,
        );
        Ok((a?.0, b?.0))
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `RSS first / peak / last | fds first / peak / last` cells.
fn spans(rss: Span, fds: Span) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} | {} / {} / {}",
        mib(rss.first),
        mib(rss.peak),
        mib(rss.last),
        fds.first,
        fds.peak,
        fds.last
    )
}

/// The soak as a markdown section.
pub fn table(plan: &Plan, r: &Report) -> String {
    let mut out = format!(
        "honest load: wrk {} connections and h2load {}×{} at once, {} s per phase; \
         gateway flags `{}`; \
         attackers ({}, to `{ATTACK_HOST}{ATTACK_PATH}`, an upstream that answers after 2 s) start {} s before \"during\"; \"after\" starts {} s after they left\n\n\
         | phase | h1 req/s | h1 p99 ms | h1 errors | h2 req/s | h2 p99 ms | h2 errors | RSS MiB first / peak / last | fds first / peak / last |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        plan.http1_connections,
        plan.http2_connections,
        plan.http2_streams,
        plan.phase.as_secs(),
        GATEWAY_ARGS.join(" "),
        plan.mix.join(", "),
        plan.ramp.as_secs(),
        plan.settle.as_secs(),
    );
    for (i, p) in r.phases.iter().enumerate() {
        if i == 2 {
            let spans = spans(r.leaving_rss_kib, r.leaving_fds);
            let _ = writeln!(
                out,
                "| attackers leaving | — | — | — | — | — | — | {spans} |"
            );
        }
        let _ = writeln!(
            out,
            "| {} | {:.1}k | {:.2} | {} | {:.1}k | {:.2} | {} | {} |",
            p.name,
            p.http1.requests_per_second() / 1e3,
            p.http1.p99_ms,
            p.http1.errors,
            p.http2.requests_per_second() / 1e3,
            p.http2.p99_ms,
            p.http2.errors,
            spans(p.rss_kib, p.fds),
        );
    }
    let _ = writeln!(
        out,
        "\nat rest afterwards: RSS {:.1} MiB, {} fds; attackers: {}",
        mib(r.rest_rss_kib),
        r.rest_fds,
        r.attack.trim_start_matches("GATEHOUSE_ATTACK ")
    );
    out
}

/// The default attacker mix.
pub fn default_mix() -> Vec<String> {
    [
        "slow-heads=100",
        "slow-bodies=100",
        "idle-h2=500",
        "paced-reset=4",
        "zero-window=4",
        "floods=3",
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(
            Span::of(&[5, 9, 7]),
            Span {
                first: 5,
                peak: 9,
                last: 7
            }
        );
        assert_eq!(Span::of(&[]), Span::default());
    }
}

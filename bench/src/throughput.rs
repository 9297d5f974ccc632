//! The throughput matrix: for each route set, each repetition, each load,
//! every proxy in turn (the order rotates per repetition), a warm-up and a
//! measured run with the CPU accounting around it.

use crate::load::{self, Load, LoadError, LoadResult, Target};
use crate::procs::CpuList;
use crate::proxies::{self, Endpoint, Layout, ProxyKind, SetupError};
use crate::routes::RouteSet;
use crate::sysstat::{self, StatError, Window, WindowStats};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Stat(#[from] StatError),
}

/// How the matrix is run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub route_counts: Vec<usize>,
    pub loads: Vec<Load>,
    pub repetitions: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Also measure the load generator straight against the upstream.
    pub direct: bool,
    pub proxy_core: usize,
    pub rig_core: usize,
    /// Longest wait for other work on the machine to pause before a run.
    pub max_quiet_wait: Duration,
}

/// One measured run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `None` for the direct (no proxy) runs.
    pub routes: Option<usize>,
    pub load: Load,
    pub proxy: ProxyKind,
    pub repetition: usize,
    pub result: LoadResult,
    pub window: WindowStats,
    pub rss_kib: Option<u64>,
    /// Whether the machine was idle before the run started.
    pub started_quiet: bool,
}

impl Sample {
    pub fn requests_per_second(&self) -> f64 {
        self.result.requests_per_second()
    }

    /// Proxy CPU seconds per 100,000 requests.
    pub fn cpu_per_100k(&self) -> Option<f64> {
        (self.proxy != ProxyKind::Direct && self.result.requests > 0)
            .then(|| self.window.proxy_cpu_seconds / self.result.requests as f64 * 1e5)
    }

    /// Requests per second per busy fraction of the proxy's core (the part
    /// the proxy caused): what the proxy would do with the core to itself.
    pub fn per_busy_core(&self) -> Option<f64> {
        let busy = self.window.proxy_busy();
        (self.proxy != ProxyKind::Direct && busy > 0.01).then(|| self.requests_per_second() / busy)
    }

    /// Share of either core taken by processes outside the benchmark.
    pub fn contention(&self) -> f64 {
        self.window.proxy_core_other.max(self.window.rig_core_other)
    }
}

/// Runs the matrix; `on_sample` sees each sample as it is taken.
pub fn run(
    plan: &Plan,
    layout: &Layout,
    mut on_sample: impl FnMut(&Sample),
) -> Result<Vec<Sample>, RunError> {
    let mut samples = Vec::new();
    let most_backends = plan
        .route_counts
        .iter()
        .map(|&count| RouteSet { count }.backends())
        .max()
        .unwrap_or(1);
    let (upstream, upstreams) = proxies::start_upstream(layout, most_backends)?;
    let bench = Bench {
        plan,
        layout,
        rig: CpuList(plan.rig_core.to_string()),
        upstream_pid: upstream.pid(),
    };
    for (set_index, &count) in plan.route_counts.iter().enumerate() {
        let routes = RouteSet { count };
        let mut endpoints = proxies::start_proxies(layout, routes, &upstreams)?;
        if plan.direct && set_index == 0 {
            endpoints.insert(0, proxies::direct(upstreams[0]));
        }
        let hosts = routes.load_hosts();
        let script = layout.dir.join(format!("wrk-{count}routes.lua"));
        load::write_file(&script, &load::wrk_script(&hosts))?;
        let h2_host = hosts.last().cloned().unwrap_or_default();
        for repetition in 0..plan.repetitions {
            for &load in &plan.loads {
                // The upstream speaks HTTP/1.1 only.
                let skip = |ep: &Endpoint| ep.kind == ProxyKind::Direct && load.is_http2();
                // Interleave: every proxy once per load and repetition, the
                // order rotated so none is always first after a pause.
                let n = endpoints.len();
                for k in 0..n {
                    let ep = &mut endpoints[(k + repetition) % n];
                    if skip(ep) {
                        continue;
                    }
                    let target = Target {
                        addr: if load.is_http2() { ep.http2 } else { ep.http1 },
                        h2_host: &h2_host,
                        wrk_script: &script,
                    };
                    let sample = bench.measure(ep, load, &target, routes, repetition)?;
                    on_sample(&sample);
                    samples.push(sample);
                }
            }
        }
        // Dropping the endpoints stops the proxies.
    }
    Ok(samples)
}

/// What every measurement shares.
struct Bench<'a> {
    plan: &'a Plan,
    layout: &'a Layout,
    rig: CpuList,
    upstream_pid: u32,
}

impl Bench<'_> {
    fn measure(
        &self,
        ep: &mut Endpoint,
        load: Load,
        target: &Target<'_>,
        routes: RouteSet,
        repetition: usize,
    ) -> Result<Sample, RunError> {
        let (plan, dir) = (self.plan, &self.layout.dir);
        let tag = format!(
            "{}-{}routes-{}-r{repetition}",
            ep.kind.name().replace(' ', "-").to_lowercase(),
            routes.count,
            load.label().replace([' ', '×'], "-")
        );
        if let Some(p) = ep.process.as_mut() {
            p.ensure_running().map_err(SetupError::from)?;
        }
        let (_, started_quiet) =
            sysstat::wait_for_quiet(&[plan.proxy_core, plan.rig_core], plan.max_quiet_wait)?;
        if !plan.warmup.is_zero() {
            let label = format!("warmup-{tag}");
            load::run(load, target, plan.warmup, &self.rig, dir, &label)?;
        }
        let pid = ep.process.as_ref().map(|p| p.pid());
        let window = Window::open(pid, &[self.upstream_pid])?;
        let label = format!("load-{tag}");
        let (result, load_ticks) = load::run(load, target, plan.duration, &self.rig, dir, &label)?;
        let window = window.close(plan.proxy_core, plan.rig_core, load_ticks)?;
        let rss_kib = pid.map(sysstat::process_rss_kib).transpose()?;
        Ok(Sample {
            routes: (ep.kind != ProxyKind::Direct).then_some(routes.count),
            load,
            proxy: ep.kind,
            repetition,
            result,
            window,
            rss_kib,
            started_quiet,
        })
    }
}

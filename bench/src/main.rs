//! `gatehouse-bench`: the Gatehouse gateway next to nginx and HAProxy on this
//! machine (same upstream, same routes, same CPU pinning), and config
//! propagation through the controller at 1,000 and 10,000 Ingresses.
//! Loopback only; every process it starts is stopped, also on Ctrl-C.

mod certs;
mod cluster_burst;
mod cluster_lb;
mod cluster_objects;
mod cluster_propagation;
mod cluster_report;
mod cluster_timing;
mod haproxy_conf;
mod http_probe;
mod idle;
mod kube_api;
mod load;
mod log_times;
mod nginx_conf;
mod procs;
mod propagation;
mod proxies;
mod report;
mod routes;
mod soak;
mod sysstat;
mod throughput;

use anyhow::{bail, Context};
use clap::Parser;
use load::Load;
use procs::CpuList;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-bench",
    about = "Benchmarks the Gatehouse gateway against nginx and HAProxy, and config propagation"
)]
struct Args {
    /// A few seconds per cell and fewer changes: checks the suite end to end.
    #[arg(long)]
    quick: bool,
    /// Seconds of load per measured run [default: 10, quick: 3].
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds of unmeasured load before each run [default: 2, quick: 1].
    #[arg(long)]
    warmup: Option<u64>,
    /// Repetitions of the whole matrix (medians are reported) [default: 3, quick: 2].
    #[arg(long)]
    repetitions: Option<usize>,
    /// Route counts configured in every proxy.
    #[arg(long, value_delimiter = ',', default_value = "10,10000")]
    routes: Vec<usize>,
    /// HTTP/1.1 connection counts (wrk).
    #[arg(long, value_delimiter = ',', default_value = "50,200")]
    http1_connections: Vec<u32>,
    /// HTTP/2 connections (h2load); 0 skips HTTP/2.
    #[arg(long, default_value_t = 50)]
    http2_connections: u32,
    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, default_value_t = 4)]
    http2_streams: u32,
    /// Skip the run without a proxy (the rig's ceiling).
    #[arg(long)]
    no_direct: bool,
    /// Ingress counts for the propagation test.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    ingresses: Vec<usize>,
    /// Edits of the target Ingress per scale [default: 25, quick: 6]; in
    /// cluster mode, changes of each kind (Ingress, EndpointSlice).
    #[arg(long)]
    changes: Option<usize>,
    /// Ingress counts for the cluster-mode propagation test [default:
    /// 1000,10000, quick: 100,1000].
    #[arg(long, value_delimiter = ',')]
    cluster_ingresses: Option<Vec<usize>>,
    /// Objects changed by each burst in cluster mode (EndpointSlices, then
    /// Ingresses); 0 skips the bursts [default: 1000, quick: 100].
    #[arg(long)]
    burst: Option<usize>,
    /// Service counts for the load-balancer allocation test [default:
    /// 10000, quick: 1000].
    #[arg(long, value_delimiter = ',')]
    lb_services: Option<Vec<usize>>,
    #[arg(long)]
    skip_throughput: bool,
    /// Skip the idle-connections cell (RSS per idle client connection).
    #[arg(long)]
    skip_idle: bool,
    /// Idle client connections per proxy and kind in the idle cell
    /// [default: 1000, quick: 200].
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Skip the local-mode propagation test.
    #[arg(long)]
    skip_propagation: bool,
    /// Skip the cluster-mode propagation test.
    #[arg(long)]
    skip_cluster_propagation: bool,
    /// Skip the load-balancer allocation test.
    #[arg(long)]
    skip_load_balancer: bool,
    /// The core every proxy runs on (alone).
    #[arg(long, default_value_t = 1)]
    proxy_cpu: usize,
    /// The core the load generator and the upstream share.
    #[arg(long, default_value_t = 0)]
    rig_cpu: usize,
    /// Longest wait, in seconds, for other work on the machine to pause
    /// before each run (runs disturbed anyway are flagged).
    #[arg(long, default_value_t = 30)]
    max_quiet_wait: u64,
    /// Where the gatehouse binaries are [default: next to this one].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Directory for configs, logs and results [default: a new one under /tmp].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Run the soak instead of the throughput and propagation runs: honest
    /// load on the gateway before, during and after an attacker mix, with
    /// its RSS and open descriptors.
    #[arg(long)]
    soak: bool,
    /// Seconds of honest load per soak phase [default: 20, quick: 3].
    #[arg(long)]
    soak_seconds: Option<u64>,
    /// Soak attackers as kind=count (kinds: slow-heads, slow-bodies,
    /// idle-h2, paced-reset, zero-window, floods) [default: slow-heads=100,
    /// slow-bodies=100, idle-h2=500, paced-reset=4, zero-window=4, floods=3].
    #[arg(long, value_delimiter = ',')]
    soak_mix: Vec<String>,
    /// Extra flag for the gateway under test (repeatable), for experiments.
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    procs::install_interrupt_handler().context("installing the Ctrl-C handler")?;
    let quick = args.quick;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("locating the binaries")?,
    };
    let bin = |name: &str| -> anyhow::Result<PathBuf> {
        let p = bin_dir.join(name);
        if !p.is_file() {
            bail!("{} not found: build it (`cargo build --release --workspace --bins`) or pass --bin-dir", p.display());
        }
        Ok(p)
    };
    for tool in ["nginx", "haproxy", "wrk", "h2load", "taskset"] {
        if which(tool).is_none() {
            bail!("{tool} is not installed (scripts/bench.sh installs nginx-light, haproxy, wrk, nghttp2-client)");
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.proxy_cpu >= cores || args.rig_cpu >= cores || args.proxy_cpu == args.rig_cpu {
        bail!(
            "--proxy-cpu {} and --rig-cpu {} must be two different cores of {cores}",
            args.proxy_cpu,
            args.rig_cpu
        );
    }
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "gatehouse-bench-{}",
            timestamp().replace([':', ' '], "-")
        )),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let mut summary = String::new();
    summary += &header(&args, cores);
    print!("{summary}");
    println!(
        "work directory (configs, logs, raw samples): {}\n",
        work.display()
    );

    if args.soak {
        let mut layout = layout(&args, &work, bin("gatehouse-gateway")?);
        // Client limits short enough that the attackers are cut off (and
        // come back) within a phase; a --gateway-arg given comes later and wins.
        let mut gateway_args: Vec<String> = soak::GATEWAY_ARGS.map(String::from).to_vec();
        gateway_args.append(&mut layout.gateway_args);
        layout.gateway_args = gateway_args;
        let phase = Duration::from_secs(args.soak_seconds.unwrap_or(if quick { 3 } else { 20 }));
        let plan = soak::Plan {
            phase,
            ramp: (phase / 4).max(Duration::from_secs(1)),
            settle: (phase / 4).max(Duration::from_secs(1)),
            mix: if args.soak_mix.is_empty() {
                soak::default_mix()
            } else {
                args.soak_mix.clone()
            },
            http1_connections: 20,
            http2_connections: 10,
            http2_streams: 4,
            attack_bin: bin("gatehouse-attack")?,
            echo_bin: bin("gatehouse-echo")?,
        };
        println!(
            "soak: {} s per phase, attackers: {}",
            phase.as_secs(),
            plan.mix.join(", ")
        );
        let report = soak::run(&plan, &layout)?;
        let section = format!(
            "\n### Soak (gateway alone, 10 routes)\n\n{}",
            soak::table(&plan, &report)
        );
        print!("{section}");
        summary += &section;
        std::fs::write(work.join("results.md"), &summary)?;
        println!("\nresults: {}", work.join("results.md").display());
        return Ok(());
    }

    if !args.skip_throughput {
        let mut loads: Vec<Load> = args
            .http1_connections
            .iter()
            .map(|&connections| Load::Http1 { connections })
            .collect();
        if args.http2_connections > 0 {
            loads.push(Load::Http2 {
                connections: args.http2_connections,
                streams: args.http2_streams,
            });
        }
        let plan = throughput::Plan {
            route_counts: args.routes.clone(),
            loads,
            repetitions: args.repetitions.unwrap_or(if quick { 2 } else { 3 }),
            duration: Duration::from_secs(args.duration.unwrap_or(if quick { 3 } else { 10 })),
            warmup: Duration::from_secs(args.warmup.unwrap_or(if quick { 1 } else { 2 })),
            direct: !args.no_direct,
            proxy_core: args.proxy_cpu,
            rig_core: args.rig_cpu,
            max_quiet_wait: Duration::from_secs(args.max_quiet_wait),
        };
        let layout = layout(&args, &work, bin("gatehouse-gateway")?);
        println!(
            "throughput: {} repetitions × {} route sets × {} loads, {} s each after {} s warm-up",
            plan.repetitions,
            plan.route_counts.len(),
            plan.loads.len(),
            plan.duration.as_secs(),
            plan.warmup.as_secs()
        );
        let samples =
            throughput::run(&plan, &layout, |s| println!("{}", report::progress_line(s)))?;
        std::fs::write(work.join("samples.csv"), report::samples_csv(&samples))?;
        let table = report::table(&report::aggregate(&samples));
        let section = format!(
            "\n### Throughput (medians of {} runs of {} s; ratio to nginx in parentheses)\n\n{table}",
            plan.repetitions,
            plan.duration.as_secs()
        );
        print!("{section}");
        summary += &section;
    }

    if !args.skip_idle {
        let section = idle_section(&args, &work, bin("gatehouse-gateway")?)?;
        summary += &section;
    }

    if !args.skip_propagation {
        let bins = propagation::Binaries {
            controller: bin("gatehouse-controller")?,
            gateway: bin("gatehouse-gateway")?,
            echo: bin("gatehouse-echo")?,
        };
        let changes = args.changes.unwrap_or(if quick { 6 } else { 25 });
        let mut results = Vec::new();
        for &n in &args.ingresses {
            println!("\npropagation: {n} Ingresses, {changes} changes of one Ingress's backend");
            let r = propagation::run(&bins, &work, n, changes)?;
            let ms: Vec<String> = r
                .changes
                .iter()
                .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
                .collect();
            println!(
                "  first snapshot served after {:.2} s; changes (ms): {}",
                r.initial.as_secs_f64(),
                ms.join(" ")
            );
            // The manifests are large and can be regenerated.
            let _ =
                std::fs::remove_dir_all(work.join(format!("propagation-{n}")).join("manifests"));
            results.push(r);
        }
        let section = format!(
            "\n### Config propagation (manifest write → gateway serving the new backend)\n\n{}",
            propagation::table(&results)
        );
        print!("{section}");
        summary += &section;
    }
    if !args.skip_cluster_propagation {
        let section = cluster_propagation_section(&args, &bin, &work)?;
        summary += &section;
    }
    if !args.skip_load_balancer {
        let section = load_balancer_section(&args, &bin, &work)?;
        summary += &section;
    }
    std::fs::write(work.join("results.md"), &summary)?;
    println!("\nresults: {}", work.join("results.md").display());
    Ok(())
}

/// The idle-connections cell over nginx, HAProxy and the gateway (10
/// routes); returns its section of the results (printed as well).
fn idle_section(args: &Args, work: &Path, gateway_bin: PathBuf) -> anyhow::Result<String> {
    let connections = args
        .idle_connections
        .unwrap_or(if args.quick { 200 } else { 1000 });
    let layout = layout(args, work, gateway_bin);
    let routes = routes::RouteSet { count: 10 };
    println!("\nidle connections: {connections} clients per proxy and kind, held open");
    let mut samples = Vec::new();
    for kind in idle::IdleKind::ALL {
        // New processes for each kind (see idle.rs).
        let (_upstream, upstreams) = proxies::start_upstream(&layout, routes.backends())?;
        let endpoints = proxies::start_proxies(&layout, routes, &upstreams)?;
        samples.extend(idle::run(&endpoints, kind, connections, |s| {
            println!(
                "  {:<40} {:<9} RSS {} → {} KiB: {:.1} KiB per connection",
                s.kind.name(),
                s.proxy.name(),
                s.rss_before_kib,
                s.rss_after_kib,
                s.kib_per_connection()
            );
        })?);
    }
    let section = format!(
        "\n### Idle connections (RSS growth per idle client; nginx: its one worker)\n\n{}",
        idle::table(&samples)
    );
    print!("{section}");
    Ok(section)
}

/// Where the proxies' files go and which CPUs run what.
fn layout(args: &Args, work: &Path, gateway_bin: PathBuf) -> proxies::Layout {
    proxies::Layout {
        dir: work.to_path_buf(),
        gateway_bin,
        proxy_cpus: CpuList(args.proxy_cpu.to_string()),
        rig_cpus: CpuList(args.rig_cpu.to_string()),
        gateway_args: args.gateway_args.clone(),
    }
}

/// Runs the cluster-mode propagation at every scale; returns its section
/// of the results (printed as well).
fn cluster_propagation_section(
    args: &Args,
    bin: &dyn Fn(&str) -> anyhow::Result<PathBuf>,
    work: &Path,
) -> anyhow::Result<String> {
    let quick = args.quick;
    let bins = cluster_propagation::Binaries {
        controller: bin("gatehouse-controller")?,
        gateway: bin("gatehouse-gateway")?,
        echo: bin("gatehouse-echo")?,
        emulator: bin("kube-emulator")?,
    };
    let scales = args.cluster_ingresses.clone().unwrap_or_else(|| {
        if quick {
            vec![100, 1000]
        } else {
            vec![1000, 10000]
        }
    });
    let changes = args.changes.unwrap_or(if quick { 6 } else { 25 });
    let burst = args.burst.unwrap_or(if quick { 100 } else { 1000 });
    let mut results = Vec::new();
    for &ingresses in &scales {
        println!(
            "\ncluster propagation: {ingresses} Ingresses in the API emulator, {changes} Ingress and {changes} EndpointSlice changes, bursts of {burst}"
        );
        let plan = cluster_propagation::Plan {
            ingresses,
            changes,
            burst,
            max_quiet_wait: Duration::from_secs(args.max_quiet_wait),
        };
        let r = cluster_propagation::run(&bins, work, &plan)
            .with_context(|| format!("cluster propagation at {ingresses} Ingresses"))?;
        println!("{}", cluster_report::progress(&r));
        results.push(r);
    }
    let section = format!(
        "\n### Config propagation in cluster mode (API write → gateway serving it)\n\n\
         Stages (medians, each from the end of the one before; from the controller's and gateway's log timestamps): \
         API write = until the API answered; controller published = watch delivery, debounce and rebuild \
         (rebuild = the controller's own time); gateway installed = stream, parse, compile/apply; \
         served = until the polled gateway answered from the new backend.\n\n{}\n{}\n\
         Bursts: each object changed once, written over {} connections at once; rebuilds counted from the controller's \
         `gatehouse_controller_rebuilds_total` before the first write and after the counters stood still for 0.6 s.\n\n{}",
        cluster_report::latency_table(&results),
        cluster_report::resources_table(&results),
        cluster_burst::CONNECTIONS,
        cluster_report::burst_table(&results),
    );
    print!("{section}");
    Ok(section)
}

/// Runs the load-balancer allocation test at every scale; returns its
/// section of the results (printed as well).
fn load_balancer_section(
    args: &Args,
    bin: &dyn Fn(&str) -> anyhow::Result<PathBuf>,
    work: &Path,
) -> anyhow::Result<String> {
    let bins = cluster_lb::Binaries {
        controller: bin("gatehouse-controller")?,
        emulator: bin("kube-emulator")?,
    };
    let scales = args
        .lb_services
        .clone()
        .unwrap_or_else(|| vec![if args.quick { 1000 } else { 10000 }]);
    let mut results = Vec::new();
    for &services in &scales {
        println!(
            "\nload-balancer allocation: {services} LoadBalancer Services and {} IPPools in the API emulator, then the controller",
            cluster_lb::pools().len()
        );
        let plan = cluster_lb::Plan {
            services,
            max_quiet_wait: Duration::from_secs(args.max_quiet_wait),
        };
        let r = cluster_lb::run(&bins, work, &plan)
            .with_context(|| format!("load-balancer allocation for {services} Services"))?;
        println!("{}", cluster_lb::progress(&r));
        results.push(r);
    }
    let section = format!(
        "\n### Load-balancer address allocation (controller start → every Service's address in its status)\n\n\
         Services and pools are written before the controller starts. *all addressed* is when a paged list \
         (pages of 500) first showed every Service with its addresses (*list* = how long one list takes: the resolution); \
         first / last status write from the controller's log; *rounds* and *planning* from its \
         `gatehouse_controller_lb_round_duration_seconds` histogram (planning only, not the status writes; \
         *slowest round ≤* is the smallest bucket holding every round); *statuses checked*: families, pairs sharing \
         one address, team a's pool, no other address held twice. Other load and steal over the controller's run, \
         as shares of both cores.\n\n{}",
        cluster_lb::table(&results)
    );
    print!("{section}");
    Ok(section)
}

/// Machine, tools, date and pinning: what the numbers depend on.
fn header(args: &Args, cores: usize) -> String {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |k| k / 1024.0 / 1024.0);
    let kernel = first_line("uname", &["-r"]);
    format!(
        "## gatehouse-bench — {date}\n\n\
         - machine: {cores} × {cpu_model}, {mem_gib:.0} GiB, Linux {kernel}\n\
         - tools: {nginx}; {haproxy}; {wrk}; {h2load}\n\
         - pinning: each proxy alone on cpu{p} (`taskset -c {p}`, 1 worker process/thread); \
           wrk/h2load and the upstream (nginx, 1 worker, 100-byte static body, keepalive) share cpu{r} (`taskset -c {r}`)\n\
         - mode: {mode}\n",
        date = timestamp(),
        nginx = first_line("nginx", &["-v"]),
        haproxy = first_line("haproxy", &["-v"]),
        wrk = first_line("wrk", &["-v"]).split(" [").next().unwrap_or("wrk").to_owned(),
        h2load = first_line("h2load", &["--version"]),
        p = args.proxy_cpu,
        r = args.rig_cpu,
        mode = if args.quick { "quick (smoke run; numbers are rough)" } else { "full" },
    )
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| format!("{program}: unknown version"))
}

fn timestamp() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

//! Load-balancer address allocation at scale: the API emulator with the
//! IPPool CRD, four IPPools (one IPv4 pool with priority for two
//! namespaces, two general IPv4 pools, one of them also IPv6, and an IPv6
//! pool) and N `type: LoadBalancer` Services (a tenth dual-stack, a fifth
//! sharing addresses in pairs), written before the controller starts. Then
//! the controller in cluster mode, and the time until a paged list of the
//! Services shows every one with its addresses; the controller's own
//! planning time from its round histogram; its memory. The Services'
//! statuses are checked against the layout (families, sharing, pools).
//! The addresses are documentation and benchmarking ranges; nothing is
//! sent to them.

use crate::certs::StreamCerts;
use crate::cluster_burst::{metric_value, metrics_text};
use crate::cluster_propagation::{
    logged_addr, start_controller, start_emulator, ClusterPropagationError, Memory, IPPOOL_CRD,
};
use crate::cluster_report::load_flag;
use crate::http_probe::{free_ports, Probe};
use crate::kube_api::{write_all, ApiClient, Resource, Write};
use crate::log_times;
use crate::procs::Proc;
use crate::report::median;
use crate::sysstat::{MachineStats, MachineWindow};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Namespaces the Services are spread over (`lb-0` and `lb-1` are team a's).
pub const NAMESPACES: usize = 20;
/// The histogram of one reconcile round's planning.
const ROUND_METRIC: &str = "gatehouse_controller_lb_round_duration_seconds";
/// Longest wait for every Service to have its addresses.
const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(600);
/// Objects per page when listing the Services.
const PAGE: usize = 500;
/// Pause between two lists of all Services.
const POLL_PAUSE: Duration = Duration::from_millis(100);
/// Connections the objects are created over.
const SETUP_CONNECTIONS: usize = 2;
/// The controller's log line for each Service status written.
const STATUS_LINE: &str = "Service load-balancer status updated";

/// Binaries used.
pub struct Binaries {
    pub controller: PathBuf,
    pub emulator: PathBuf,
}

/// What one scale runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub services: usize,
    pub max_quiet_wait: Duration,
}

/// The round histogram, read once the controller is done.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rounds {
    pub count: u64,
    pub sum_seconds: f64,
    /// Upper bound of the slowest round: the smallest bucket holding all
    /// of them (`None`: only `+Inf` does, or no rounds).
    pub max_le_seconds: Option<f64>,
}

impl Rounds {
    pub fn parse(metrics: &str) -> Rounds {
        let count = metric_value(metrics, &format!("{ROUND_METRIC}_count")).unwrap_or(0.0);
        let sum_seconds = metric_value(metrics, &format!("{ROUND_METRIC}_sum")).unwrap_or(0.0);
        let prefix = format!("{ROUND_METRIC}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = metrics
            .lines()
            .filter_map(|l| {
                let (le, value) = l.strip_prefix(&prefix)?.split_once("\"}")?;
                Some((le.parse().ok()?, value.trim().parse().ok()?))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let max_le_seconds = buckets
            .iter()
            .find(|(le, n)| le.is_finite() && count > 0.0 && *n >= count)
            .map(|(le, _)| *le);
        Rounds {
            count: count as u64,
            sum_seconds,
            max_le_seconds,
        }
    }
}

/// What one scale measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LbResult {
    pub services: usize,
    pub pools: usize,
    /// Objects written before the controller started, and how long that took.
    pub objects: usize,
    pub setup: Duration,
    /// Controller start to the end of the first list that showed every
    /// Service with its addresses.
    pub all_listed: Duration,
    /// How long one list of all Services took (median): the resolution
    /// of `all_listed`.
    pub list: Duration,
    /// Controller start to its first and last Service status write (log).
    pub first_status: Option<Duration>,
    pub last_status: Option<Duration>,
    pub status_writes: usize,
    pub rounds: Rounds,
    pub controller: Memory,
    pub emulator: Memory,
    /// Whatever the statuses got wrong (empty: all as the layout wants).
    pub problems: Vec<String>,
    pub machine: MachineStats,
    pub started_quiet: bool,
}

/// What Service `i` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub dual_stack: bool,
    /// Shares its address with the other Service of the pair.
    pub pair: Option<usize>,
    /// In a namespace of team a, whose pool comes first for it.
    pub team_a: bool,
}

pub fn want(i: usize) -> Want {
    let ns = i % NAMESPACES;
    Want {
        dual_stack: i % 10 == 3,
        pair: matches!(i % 10, 5 | 6).then_some(i / 10),
        team_a: ns < 2,
    }
}

pub fn namespace(i: usize) -> String {
    format!("lb-{}", i % NAMESPACES)
}

pub fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

/// Namespaces and pools: written first.
pub fn preamble() -> Vec<Write> {
    let mut out: Vec<Write> = (0..NAMESPACES)
        .map(|n| {
            let mut meta = json!({"name": format!("lb-{n}")});
            if n < 2 {
                meta["labels"] = json!({"team": "a"});
            }
            Write::Create {
                resource: Resource::Namespace,
                namespace: String::new(),
                object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}),
            }
        })
        .collect();
    out.extend(pools().into_iter().map(|object| Write::Create {
        resource: Resource::IpPool,
        namespace: String::new(),
        object,
    }));
    out
}

/// The pools: benchmarking (198.18.0.0/15) and documentation (2001:db8::/32)
/// ranges.
pub fn pools() -> Vec<Value> {
    let pool = |name: &str, addresses: &[&str], extra: Value| {
        let mut spec = json!({"addresses": addresses});
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
            spec.extend(extra);
        }
        json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "IPPool",
            "metadata": {"name": name},
            "spec": spec,
        })
    };
    vec![
        pool(
            "a-team",
            &["198.18.0.0/20"],
            json!({"serviceAllocation": {
                "priority": 1,
                "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
            }}),
        ),
        pool(
            "b-general",
            &["198.18.32.0/19"],
            json!({"avoidBuggyIPs": true, "serviceAllocation": {"priority": 2}}),
        ),
        pool(
            "c-general",
            &["198.18.64.0/19", "2001:db8:1::/112"],
            json!({}),
        ),
        pool("d-v6", &["2001:db8:2::/64"], json!({})),
    ]
}

/// Service `i`: port 80 or 81 (so that the two of a pair can share).
pub fn service(i: usize) -> Write {
    let w = want(i);
    let mut meta = json!({"name": service_name(i), "namespace": namespace(i)});
    if let Some(pair) = w.pair {
        meta["annotations"] = json!({"gatehouse.dev/allow-shared-ip": format!("pair-{pair}")});
    }
    let mut spec = json!({
        "type": "LoadBalancer",
        "selector": {"app": service_name(i)},
        "ports": [{"name": "http", "port": 80 + (i % 2), "protocol": "TCP"}],
    });
    if w.dual_stack {
        spec["ipFamilyPolicy"] = json!("RequireDualStack");
        spec["ipFamilies"] = json!(["IPv4", "IPv6"]);
    }
    Write::Create {
        resource: Resource::Service,
        namespace: namespace(i),
        object: json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}),
    }
}

/// The addresses in a Service's status.
fn addresses(service: &Value) -> Vec<IpAddr> {
    service
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.get("ip")?.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Service `i`'s index from its name.
fn index(service: &Value) -> Option<usize> {
    service
        .pointer("/metadata/name")?
        .as_str()?
        .strip_prefix("svc-")?
        .parse()
        .ok()
}

/// How many of the listed Services have as many addresses as they want.
pub fn addressed(items: &[Value]) -> usize {
    items
        .iter()
        .filter(|s| {
            let want = index(s).map(want);
            let n = addresses(s).len();
            want.is_some_and(|w| n == if w.dual_stack { 2 } else { 1 })
        })
        .count()
}

fn in_team_pool(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.octets()[..2] == [198, 18] && v4.octets()[2] < 16)
}

/// Whatever the listed statuses get wrong against the layout: families,
/// pairs sharing one address, team a's pool, no address held twice
/// otherwise. At most a few of each kind are named.
pub fn check(items: &[Value], services: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let mut note = |kind: &str, what: String, counts: &mut BTreeMap<String, usize>| {
        let n = counts.entry(kind.to_owned()).or_default();
        *n += 1;
        if *n <= 3 {
            problems.push(what);
        }
    };
    let mut counts = BTreeMap::new();
    let mut holders: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
    let mut seen = 0;
    for s in items {
        let Some(i) = index(s) else { continue };
        seen += 1;
        let w = want(i);
        let ips = addresses(s);
        let v4: Vec<&IpAddr> = ips.iter().filter(|ip| ip.is_ipv4()).collect();
        let v6 = ips.len() - v4.len();
        let families_ok = if w.dual_stack {
            v4.len() == 1 && v6 == 1
        } else {
            v4.len() == 1 && v6 == 0
        };
        if !families_ok {
            note("families", format!("svc-{i}: {ips:?}"), &mut counts);
        }
        if w.team_a && !v4.iter().all(|ip| in_team_pool(**ip)) {
            note(
                "team",
                format!("svc-{i} (team a) not from a-team: {ips:?}"),
                &mut counts,
            );
        }
        if !w.team_a && v4.iter().any(|ip| in_team_pool(**ip)) {
            note("team", format!("svc-{i} got a-team's {ips:?}"), &mut counts);
        }
        for ip in ips {
            holders.entry(ip).or_default().push(i);
        }
    }
    if seen != services {
        note(
            "count",
            format!("listed {seen} of {services} Services"),
            &mut counts,
        );
    }
    for (ip, who) in &holders {
        let shared_by_pair = who.len() == 2 && {
            let (a, b) = (want(who[0]).pair, want(who[1]).pair);
            a.is_some() && a == b
        };
        if who.len() > 1 && !shared_by_pair {
            note("twice", format!("{ip} held by {who:?}"), &mut counts);
        }
    }
    // Each pair on one IPv4 address.
    let mut pairs: BTreeMap<usize, Vec<IpAddr>> = BTreeMap::new();
    for s in items {
        let Some(i) = index(s) else { continue };
        if let Some(pair) = want(i).pair {
            pairs.entry(pair).or_default().extend(addresses(s));
        }
    }
    for (pair, ips) in pairs {
        if ips.len() == 2 && ips[0] != ips[1] {
            note(
                "pair",
                format!("pair-{pair} on two addresses {ips:?}"),
                &mut counts,
            );
        }
    }
    for (kind, n) in counts {
        if n > 3 {
            problems.push(format!("… {n} problems of kind {kind} in all"));
        }
    }
    problems
}

fn since(start: f64, at: f64) -> Duration {
    Duration::from_secs_f64((at - start).max(0.0))
}

/// Runs one scale.
pub fn run(bins: &Binaries, work: &Path, plan: &Plan) -> Result<LbResult, ClusterPropagationError> {
    let dir = work.join(format!("load-balancer-{}", plan.services));
    std::fs::create_dir_all(&dir).map_err(|source| ClusterPropagationError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    let cores: Vec<usize> =
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    let (_, started_quiet) = crate::sysstat::wait_for_quiet(&cores, plan.max_quiet_wait)?;
    let picked = free_ports(2).map_err(|source| ClusterPropagationError::Io {
        context: "picking free ports".into(),
        source,
    })?;
    let (api, snapshot) = (picked[0], picked[1]);
    let certs = StreamCerts::create(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    // Every Service is written twice more (status, and a condition).
    let history = 4 * plan.services + 10_000;
    let mut emulator = start_emulator(&bins.emulator, &dir, api, &kubeconfig, history)?;
    let mut client = ApiClient::new(api);
    client.create_yaml(Resource::CustomResourceDefinition, IPPOOL_CRD)?;
    let preamble = preamble();
    for w in &preamble {
        client.write(w)?;
    }
    let writes: Vec<Write> = (0..plan.services).map(service).collect();
    let setup_started = Instant::now();
    write_all(api, &writes, SETUP_CONNECTIONS)?;
    let setup = setup_started.elapsed();

    let mut window = MachineWindow::open(&[std::process::id(), emulator.pid()])?;
    let started_at = log_times::now();
    let started = Instant::now();
    let mut controller = start_controller(&bins.controller, &dir, &kubeconfig, snapshot, &certs)?;
    window.include_started(controller.pid());
    let admin = logged_addr(&mut controller, "serving admin endpoints")?;
    let mut lists = Vec::new();
    let (all_listed, items) = loop {
        let t = Instant::now();
        let items = client.list_all("/api/v1/services", PAGE)?;
        lists.push(t.elapsed());
        if addressed(&items) >= plan.services {
            break (started.elapsed(), items);
        }
        if started.elapsed() > ALLOCATE_TIMEOUT {
            return Err(ClusterPropagationError::Timeout {
                what: format!(
                    "every Service to get its addresses ({} of {} did)",
                    addressed(&items),
                    plan.services
                ),
                after: ALLOCATE_TIMEOUT,
                dir: dir.display().to_string(),
            });
        }
        controller.ensure_running()?;
        emulator.ensure_running()?;
        std::thread::sleep(POLL_PAUSE);
    };
    // Let the rounds that the status writes themselves start finish.
    let rounds = settled_rounds(admin, &mut controller)?;
    let machine = window.close()?;
    let controller_memory = Memory::of(controller.pid())?;
    let emulator_memory = Memory::of(emulator.pid())?;
    let log = std::fs::read_to_string(controller.log_path()).unwrap_or_default();
    let status_lines = log_times::timed_lines(&log, STATUS_LINE);
    let problems = check(&items, plan.services);
    controller.stop();
    emulator.stop();
    Ok(LbResult {
        services: plan.services,
        pools: pools().len(),
        objects: writes.len() + preamble.len() + 1,
        setup,
        all_listed,
        list: median(lists.iter().map(Duration::as_secs_f64).collect())
            .map_or(Duration::ZERO, Duration::from_secs_f64),
        first_status: status_lines.first().map(|l| since(started_at, l.at)),
        last_status: status_lines.last().map(|l| since(started_at, l.at)),
        status_writes: status_lines.len(),
        rounds,
        controller: controller_memory,
        emulator: emulator_memory,
        problems,
        machine,
        started_quiet,
    })
}

/// The round histogram once its count has stood still for a second (at
/// most 30 s).
fn settled_rounds(
    admin: Option<std::net::SocketAddr>,
    controller: &mut Proc,
) -> Result<Rounds, ClusterPropagationError> {
    let Some(admin) = admin else {
        return Ok(Rounds::default());
    };
    let mut probe = Probe::new(admin, Duration::from_secs(5));
    let mut last = Rounds::default();
    let mut still_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let now = metrics_text(&mut probe)
            .map(|m| Rounds::parse(&m))
            .unwrap_or_default();
        if now.count != last.count {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_secs(1) {
            return Ok(now);
        }
        controller.ensure_running()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(last)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

/// The table: one row per scale.
pub fn table(results: &[LbResult]) -> String {
    let mut out = String::from(
        "| Services | pools | objects written s | all addressed (list) s | list s | first / last status write s | status writes | rounds | planning total s | planning mean ms | slowest round ≤ ms | controller RSS (peak) MiB | emulator RSS MiB | statuses checked | other load | steal |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let mean = (r.rounds.count > 0).then(|| r.rounds.sum_seconds * 1e3 / r.rounds.count as f64);
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.2} | {:.2} | {} / {} | {} | {} | {:.3} | {} | {} | {:.0} ({:.0}) | {:.0} | {} | {:.0}%{} | {:.1}% |",
            r.services,
            r.pools,
            r.setup.as_secs_f64(),
            r.all_listed.as_secs_f64(),
            r.list.as_secs_f64(),
            secs(r.first_status),
            secs(r.last_status),
            r.status_writes,
            r.rounds.count,
            r.rounds.sum_seconds,
            mean.map_or("—".into(), |m| format!("{m:.1}")),
            r.rounds
                .max_le_seconds
                .map_or("—".into(), |s| format!("{:.1}", s * 1e3)),
            mib(r.controller.rss_kib),
            mib(r.controller.peak_kib),
            mib(r.emulator.rss_kib),
            if r.problems.is_empty() {
                "all as laid out".to_owned()
            } else {
                format!("{} problems", r.problems.len())
            },
            r.machine.other * 100.0,
            load_flag(&r.machine),
            r.machine.steal * 100.0,
        );
    }
    out
}

/// One line per scale for the console.
pub fn progress(r: &LbResult) -> String {
    let mut line = format!(
        "  {} Services addressed {:.2} s after the controller started (last status write {} s), {} rounds planning {:.3} s in all, controller RSS {:.0} MiB (peak {:.0})",
        r.services,
        r.all_listed.as_secs_f64(),
        secs(r.last_status),
        r.rounds.count,
        r.rounds.sum_seconds,
        mib(r.controller.rss_kib),
        mib(r.controller.peak_kib),
    );
    let _ = write!(
        line,
        "; other load {:.0}%, steal {:.1}%{}",
        r.machine.other * 100.0,
        r.machine.steal * 100.0,
        if r.started_quiet {
            ""
        } else {
            " (the machine was not quiet at the start)"
        },
    );
    for p in &r.problems {
        line.push_str("\n  problem: ");
        line.push_str(p);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(i: usize, ips: &[&str]) -> Value {
        let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        json!({
            "metadata": {"name": service_name(i), "namespace": namespace(i)},
            "status": {"loadBalancer": {"ingress": ingress}},
        })
    }

    #[test]
    fn the_layout_has_dual_stack_services_pairs_and_team_namespaces() {
        let wants: Vec<Want> = (0..10_000).map(want).collect();
        assert_eq!(wants.iter().filter(|w| w.dual_stack).count(), 1000);
        assert_eq!(wants.iter().filter(|w| w.pair.is_some()).count(), 2000);
        assert_eq!(wants.iter().filter(|w| w.team_a).count(), 1000);
        // The two of a pair listen on different ports.
        let Write::Create { object, .. } = service(15) else {
            panic!("a create")
        };
        assert_eq!(object["spec"]["ports"][0]["port"], 81);
        assert_eq!(
            object["metadata"]["annotations"]["gatehouse.dev/allow-shared-ip"],
            "pair-1"
        );
        let Write::Create { object, .. } = service(13) else {
            panic!("a create")
        };
        assert_eq!(object["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(pools().len(), 4);
        assert_eq!(preamble().len(), NAMESPACES + 4);
    }

    #[test]
    fn statuses_are_checked_against_the_layout() {
        let good = vec![
            listed(0, &["198.18.0.1"]),
            listed(2, &["198.18.32.1"]),
            listed(3, &["198.18.32.2", "2001:db8:1::1"]),
            listed(5, &["198.18.32.3"]),
            listed(6, &["198.18.32.3"]),
        ];
        assert_eq!(addressed(&good), 5);
        assert_eq!(check(&good, 5), Vec::<String>::new());

        let bad = vec![
            listed(0, &["198.18.32.9"]),
            listed(2, &["198.18.32.1"]),
            listed(3, &["198.18.32.2"]),
            listed(4, &["198.18.32.1"]),
            listed(5, &["198.18.32.3"]),
            listed(6, &["198.18.32.4"]),
        ];
        assert_eq!(addressed(&bad), 5);
        let problems = check(&bad, 7);
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn the_round_histogram_is_read_with_its_slowest_bucket() {
        let m = format!(
            "{ROUND_METRIC}_bucket{{le=\"0.001\"}} 2\n{ROUND_METRIC}_bucket{{le=\"0.05\"}} 4\n\
             {ROUND_METRIC}_bucket{{le=\"0.1\"}} 5\n{ROUND_METRIC}_bucket{{le=\"+Inf\"}} 5\n\
             {ROUND_METRIC}_sum 0.123\n{ROUND_METRIC}_count 5\n"
        );
        assert_eq!(
            Rounds::parse(&m),
            Rounds {
                count: 5,
                sum_seconds: 0.123,
                max_le_seconds: Some(0.1)
            }
        );
        let slow = format!("{ROUND_METRIC}_bucket{{le=\"5\"}} 1\n{ROUND_METRIC}_bucket{{le=\"+Inf\"}} 2\n{ROUND_METRIC}_count 2\n");
        assert_eq!(Rounds::parse(&slow).max_le_seconds, None);
    }
}

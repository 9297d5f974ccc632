//! Config propagation at scale: the controller in local mode over a
//! directory of N Ingresses (each with its Service and EndpointSlice), a
//! gateway following it, and repeated edits of one Ingress's backend,
//! timed from the manifest write to the gateway answering from the new
//! backend.

use crate::http_probe::{free_ports, wait_for_port, Probe};
use crate::log_times::{strip_ansi, value_after};
use crate::procs::{Proc, ProcError};
use crate::report::median;
use crate::sysstat::{self, StatError};
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The Ingress whose backend is switched back and forth.
const TARGET_HOST: &str = "target.prop.test";
/// Longest wait for one change (or the first snapshot) to be served.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after a change was served, so that the next one starts a new
/// debounce window.
const SETTLE: Duration = Duration::from_millis(300);
/// How often the gateway is asked whether the change arrived.
const POLL: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub enum PropagationError {
    #[error(transparent)]
    Process(#[from] ProcError),
    #[error(transparent)]
    Stat(#[from] StatError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{what} did not happen within {CHANGE_TIMEOUT:?}; logs in {dir}")]
    Timeout { what: String, dir: String },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PropagationError {
    let context = context.into();
    move |source| PropagationError::Io { context, source }
}

/// Binaries used.
pub struct Binaries {
    pub controller: PathBuf,
    pub gateway: PathBuf,
    pub echo: PathBuf,
}

/// What one scale measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PropagationResult {
    pub ingresses: usize,
    /// Time from a manifest write to the gateway serving it, per change.
    pub changes: Vec<Duration>,
    /// Controller start to the gateway serving the first snapshot.
    pub initial: Duration,
    pub gateway_rss_kib: u64,
    pub gateway_peak_kib: u64,
    pub controller_rss_kib: u64,
    pub controller_peak_kib: u64,
    /// Bytes of the manifests directory.
    pub manifest_bytes: u64,
    /// The controller's own rebuild times (its log), ms.
    pub controller_rebuild_ms: Vec<f64>,
    /// The gateway's snapshot compile times (its log), ms.
    pub gateway_compile_ms: Vec<f64>,
}

impl PropagationResult {
    fn millis(&self) -> Vec<f64> {
        self.changes.iter().map(|d| d.as_secs_f64() * 1e3).collect()
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        let mut v = self.millis();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        // Nearest rank: with 20 changes, p99 is the slowest one.
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }
}

/// Manifests for one Service (port 80, named `http`) and its EndpointSlice.
fn service(name: &str, endpoint: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: bench}}\n\
         spec:\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: {name}-1\n  namespace: bench\n  labels: {{kubernetes.io/service-name: {name}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {port}}}]\n\
         endpoints:\n- addresses: [\"{ip}\"]\n  conditions: {{ready: true}}\n",
        port = endpoint.port(),
        ip = endpoint.ip(),
    )
}

/// An Ingress routing `host` (prefix `/`) to `service:80`.
fn ingress(name: &str, host: &str, service: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: bench}}\n\
         spec:\n  ingressClassName: gatehouse\n  rules:\n  - host: {host}\n    http:\n      paths:\n\
         \x20     - path: /\n        pathType: Prefix\n        backend: {{service: {{name: {service}, port: {{number: 80}}}}}}\n"
    )
}

const INGRESS_CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gatehouse}\nspec: {controller: gatehouse.dev/ingress-controller}\n";

/// Writes the directory: the class, the two switchable Services, the
/// target Ingress and `ingresses - 1` others, one file per Ingress.
pub fn write_manifests(
    dir: &Path,
    ingresses: usize,
    blue: SocketAddr,
    green: SocketAddr,
) -> Result<u64, PropagationError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut bytes = 0u64;
    let mut put = |name: &str, text: String| -> Result<(), PropagationError> {
        bytes += text.len() as u64;
        std::fs::write(dir.join(name), text).map_err(io(format!("writing {name}")))
    };
    put("class.yaml", INGRESS_CLASS.into())?;
    put(
        "colors.yaml",
        format!("{}---\n{}", service("blue", blue), service("green", green)),
    )?;
    put("target.yaml", ingress("target", TARGET_HOST, "blue"))?;
    for i in 1..ingresses {
        let name = format!("app-{i}");
        let text = format!(
            "{}---\n{}",
            service(&name, blue),
            ingress(&name, &format!("{name}.prop.test"), &name)
        );
        put(&format!("{name}.yaml"), text)?;
    }
    Ok(bytes)
}

/// Replaces a file the way editors and ConfigMap mounts do: write a hidden
/// temporary file, rename it over the old one.
fn replace(dir: &Path, name: &str, text: &str) -> Result<(), PropagationError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, dir.join(name)).map_err(io(format!("renaming {name}")))
}

/// Which echo pod answered (`"pod"` in its JSON), if any.
fn answered_by(probe: &mut Probe) -> Option<String> {
    let reply = probe.get(TARGET_HOST, "/").ok()?;
    if reply.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
    v.get("pod")?.as_str().map(str::to_owned)
}

fn wait_for_pod(
    probe: &mut Probe,
    pod: &str,
    what: &str,
    dir: &Path,
) -> Result<(), PropagationError> {
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    while Instant::now() < deadline {
        if answered_by(probe).as_deref() == Some(pod) {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(PropagationError::Timeout {
        what: what.to_owned(),
        dir: dir.display().to_string(),
    })
}

/// Numbers after `key=` in a log, in order (e.g. `elapsed_ms=12`); colour
/// codes are ignored.
pub fn log_values(log: &str, marker: &str, key: &str) -> Vec<f64> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| value_after(l, key))
        .collect()
}

/// Runs one scale: `ingresses` Ingresses, `changes` edits of the target.
pub fn run(
    bins: &Binaries,
    work: &Path,
    ingresses: usize,
    changes: usize,
) -> Result<PropagationResult, PropagationError> {
    let dir = work.join(format!("propagation-{ingresses}"));
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let arg = |s: &str| s.to_owned();

    let ports = |n| free_ports(n).map_err(io("picking free ports"));
    let picked = ports(2)?;
    let (blue_addr, green_addr) = (picked[0], picked[1]);
    let echo = bins.echo.display().to_string();
    let _blue = Proc::spawn(
        "echo-blue",
        &echo,
        &[
            arg("--listen"),
            blue_addr.to_string(),
            arg("--service"),
            arg("blue"),
            arg("--pod"),
            arg("blue"),
        ],
        None,
        &dir,
    )?;
    let _green = Proc::spawn(
        "echo-green",
        &echo,
        &[
            arg("--listen"),
            green_addr.to_string(),
            arg("--service"),
            arg("green"),
            arg("--pod"),
            arg("green"),
        ],
        None,
        &dir,
    )?;
    let manifest_bytes = write_manifests(&manifests, ingresses, blue_addr, green_addr)?;

    let picked = ports(3)?;
    let (snapshot_addr, http, admin) = (picked[0], picked[1], picked[2]);
    let started = Instant::now();
    let mut controller = Proc::spawn(
        "controller",
        &bins.controller.display().to_string(),
        &[
            arg("--manifests"),
            manifests.display().to_string(),
            arg("--snapshot-addr"),
            snapshot_addr.to_string(),
            arg("--admin-addr"),
            arg("127.0.0.1:0"),
        ],
        None,
        &dir,
    )?;
    let mut gateway = Proc::spawn(
        "gateway",
        &bins.gateway.display().to_string(),
        &[
            arg("--controller"),
            format!("http://{snapshot_addr}"),
            arg("--http-addr"),
            http.to_string(),
            arg("--admin-addr"),
            admin.to_string(),
            arg("--threads"),
            arg("1"),
        ],
        None,
        &dir,
    )?;
    if !wait_for_port(http, CHANGE_TIMEOUT) {
        gateway.ensure_running()?;
        controller.ensure_running()?;
    }
    let mut probe = Probe::new(http, Duration::from_secs(5));
    wait_for_pod(&mut probe, "blue", "the first snapshot", &dir)?;
    let initial = started.elapsed();

    let mut times = Vec::with_capacity(changes);
    for k in 0..changes {
        let pod = if k % 2 == 0 { "green" } else { "blue" };
        std::thread::sleep(SETTLE);
        let text = ingress("target", TARGET_HOST, pod);
        let t0 = Instant::now();
        replace(&manifests, "target.yaml", &text)?;
        wait_for_pod(
            &mut probe,
            pod,
            &format!("change {} (to {pod})", k + 1),
            &dir,
        )?;
        times.push(t0.elapsed());
        controller.ensure_running()?;
        gateway.ensure_running()?;
    }
    let read = |p: &Proc| std::fs::read_to_string(p.log_path()).unwrap_or_default();
    let controller_log = read(&controller);
    let gateway_log = read(&gateway);
    let tail = |mut v: Vec<f64>| v.split_off(v.len().saturating_sub(changes));
    Ok(PropagationResult {
        ingresses,
        changes: times,
        initial,
        gateway_rss_kib: sysstat::process_rss_kib(gateway.pid())?,
        gateway_peak_kib: sysstat::process_peak_rss_kib(gateway.pid())?,
        controller_rss_kib: sysstat::process_rss_kib(controller.pid())?,
        controller_peak_kib: sysstat::process_peak_rss_kib(controller.pid())?,
        manifest_bytes,
        controller_rebuild_ms: tail(log_values(
            &controller_log,
            "published snapshot",
            "elapsed_ms=",
        )),
        gateway_compile_ms: tail(log_values(
            &gateway_log,
            "installed snapshot",
            "compile_ms=",
        )),
    })
}

/// The propagation table (Markdown).
pub fn table(results: &[PropagationResult]) -> String {
    let mut out = String::from(
        "| Ingresses | manifests | changes | p50 ms | p99 ms | max ms | first snapshot s | controller rebuild p50 ms | gateway compile p50 ms | gateway RSS (peak) MiB | controller RSS (peak) MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mib = |k: u64| k as f64 / 1024.0;
    for r in results {
        let max = r.millis().into_iter().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| {} | {:.1} MiB | {} | {:.0} | {:.0} | {:.0} | {:.2} | {} | {} | {:.0} ({:.0}) | {:.0} ({:.0}) |",
            r.ingresses,
            r.manifest_bytes as f64 / (1024.0 * 1024.0),
            r.changes.len(),
            r.percentile_ms(0.50),
            r.percentile_ms(0.99),
            max,
            r.initial.as_secs_f64(),
            median(r.controller_rebuild_ms.clone()).map_or("—".into(), |v| format!("{v:.0}")),
            median(r.gateway_compile_ms.clone()).map_or("—".into(), |v| format!("{v:.0}")),
            mib(r.gateway_rss_kib),
            mib(r.gateway_peak_kib),
            mib(r.controller_rss_kib),
            mib(r.controller_peak_kib),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_values_are_read_after_their_key() {
        let log = "2026 INFO published snapshot version=1 routes=3 elapsed_ms=12\n\
                   2026 INFO something else elapsed_ms=99\n\
                   2026 INFO published snapshot version=2 \x1b[3melapsed_ms\x1b[0m\x1b[2m=\x1b[0m7 changed_files=1\n";
        assert_eq!(
            log_values(log, "published snapshot", "elapsed_ms="),
            vec![12.0, 7.0]
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let r = PropagationResult {
            ingresses: 1,
            changes: (1..=20).map(Duration::from_millis).collect(),
            initial: Duration::ZERO,
            gateway_rss_kib: 0,
            gateway_peak_kib: 0,
            controller_rss_kib: 0,
            controller_peak_kib: 0,
            manifest_bytes: 0,
            controller_rebuild_ms: vec![],
            gateway_compile_ms: vec![],
        };
        assert_eq!(r.percentile_ms(0.5), 10.0);
        assert_eq!(r.percentile_ms(0.99), 20.0);
    }

    #[test]
    fn manifests_have_one_file_per_ingress() {
        let dir = std::env::temp_dir().join(format!("gatehouse-bench-test-{}", std::process::id()));
        let a = SocketAddr::from(([127, 0, 0, 1], 1000));
        write_manifests(&dir, 5, a, a).unwrap();
        let files = std::fs::read_dir(&dir).unwrap().count();
        std::fs::remove_dir_all(&dir).unwrap();
        // class, colors, target and four others.
        assert_eq!(files, 7);
    }
}

//! What the kernel says about CPU time and memory: per-core times and
//! hypervisor steal from `/proc/stat`, a process's CPU time from
//! `/proc/<pid>/stat`, its resident memory from `/proc/<pid>/status`.

use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StatError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: unexpected format")]
    Format { path: String },
}

/// Times of one CPU (or all of them), in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CoreTimes {
    /// Time spent doing work (tasks, interrupts, softirqs such as the
    /// loopback network stack).
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }

    pub fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait + self.steal
    }

    fn since(&self, earlier: &CoreTimes) -> CoreTimes {
        CoreTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }

    fn parse(fields: &[&str]) -> Option<CoreTimes> {
        let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        Some(CoreTimes {
            user: n(0)?,
            nice: n(1)?,
            system: n(2)?,
            idle: n(3)?,
            iowait: n(4)?,
            irq: n(5)?,
            softirq: n(6)?,
            steal: n(7).unwrap_or(0),
        })
    }
}

/// One reading of `/proc/stat`.
#[derive(Debug, Clone, Default)]
pub struct CpuTimes {
    pub all: CoreTimes,
    pub per_core: Vec<CoreTimes>,
}

/// Parses the `cpu` and `cpuN` lines of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let mut out = CpuTimes::default();
    let mut seen_all = false;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(name) = words.next() else { continue };
        let Some(rest) = name.strip_prefix("cpu") else {
            continue;
        };
        let fields: Vec<&str> = words.collect();
        let times = CoreTimes::parse(&fields)?;
        if rest.is_empty() {
            out.all = times;
            seen_all = true;
        } else {
            let index: usize = rest.parse().ok()?;
            if out.per_core.len() <= index {
                out.per_core.resize(index + 1, CoreTimes::default());
            }
            out.per_core[index] = times;
        }
    }
    seen_all.then_some(out)
}

pub fn read_cpu_times() -> Result<CpuTimes, StatError> {
    let path = "/proc/stat";
    let text = read(path)?;
    parse_proc_stat(&text).ok_or_else(|| StatError::Format { path: path.into() })
}

/// utime + stime (clock ticks) from a `/proc/<pid>/stat` line. The command
/// name may contain spaces and parentheses, so fields count from the last `)`.
pub fn parse_process_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub fn process_ticks(pid: u32) -> Result<u64, StatError> {
    let path = format!("/proc/{pid}/stat");
    let text = read(&path)?;
    parse_process_ticks(&text).ok_or(StatError::Format { path })
}

/// Resident memory of a process in KiB (`VmRSS`).
pub fn process_rss_kib(pid: u32) -> Result<u64, StatError> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident memory of a process in KiB (`VmHWM`).
pub fn process_peak_rss_kib(pid: u32) -> Result<u64, StatError> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Result<u64, StatError> {
    let path = format!("/proc/{pid}/status");
    let text = read(&path)?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(StatError::Format { path })
}

pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

fn read(path: &str) -> Result<String, StatError> {
    std::fs::read_to_string(path).map_err(|source| StatError::Read {
        path: path.to_owned(),
        source,
    })
}

/// CPU accounting over one measurement: opened before the load starts,
/// closed when it ends. Knowing our own processes' CPU time, it can tell how
/// much of each core went to processes that are not part of the benchmark.
pub struct Window {
    started: Instant,
    cpu: CpuTimes,
    proxy: Option<(u32, u64)>,
    rig: Vec<(u32, u64)>,
}

/// What happened during a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    pub elapsed: Duration,
    /// CPU time of the proxy process (all threads), seconds.
    pub proxy_cpu_seconds: f64,
    /// Fraction of the proxy's core that was busy (any process, softirqs
    /// included).
    pub proxy_core_busy: f64,
    /// Fraction of the proxy's core used by tasks other than the proxy.
    pub proxy_core_other: f64,
    /// Fraction of the load generator's core that was busy.
    pub rig_core_busy: f64,
    /// Fraction of the load generator's core used by tasks other than the
    /// load generator and the upstream.
    pub rig_core_other: f64,
    /// Fraction of all CPU time stolen by the hypervisor.
    pub steal: f64,
}

impl WindowStats {
    /// The busy fraction of the proxy's core that the proxy caused: its own
    /// CPU time plus interrupts and softirqs (the loopback network stack),
    /// without other tasks that happened to run there.
    pub fn proxy_busy(&self) -> f64 {
        (self.proxy_core_busy - self.proxy_core_other).max(0.0)
    }
}

fn ticks_of(pids: &[u32]) -> Result<Vec<(u32, u64)>, StatError> {
    pids.iter().map(|&p| Ok((p, process_ticks(p)?))).collect()
}

impl Window {
    /// `proxy`: the process under test; `rig`: our processes on the load
    /// generator's core (the upstream).
    pub fn open(proxy: Option<u32>, rig: &[u32]) -> Result<Self, StatError> {
        Ok(Window {
            proxy: proxy
                .map(|p| Ok::<_, StatError>((p, process_ticks(p)?)))
                .transpose()?,
            rig: ticks_of(rig)?,
            started: Instant::now(),
            cpu: read_cpu_times()?,
        })
    }

    /// `load_ticks`: CPU time of the load generator, which ran only inside
    /// the window.
    pub fn close(
        self,
        proxy_core: usize,
        rig_core: usize,
        load_ticks: u64,
    ) -> Result<WindowStats, StatError> {
        let elapsed = self.started.elapsed();
        let cpu = read_cpu_times()?;
        let used = |before: &[(u32, u64)]| -> Result<u64, StatError> {
            before
                .iter()
                .map(|&(pid, then)| Ok(process_ticks(pid)?.saturating_sub(then)))
                .sum()
        };
        let proxy_ticks = used(self.proxy.as_slice())?;
        let rig_ticks = used(&self.rig)? + load_ticks;
        let hz = ticks_per_second().max(1) as f64;
        let core = |i: usize| match (cpu.per_core.get(i), self.cpu.per_core.get(i)) {
            (Some(now), Some(then)) => now.since(then),
            _ => CoreTimes::default(),
        };
        let (p, r) = (core(proxy_core), core(rig_core));
        let fraction = |ticks: u64, of: &CoreTimes| ticks as f64 / of.total().max(1) as f64;
        // Task time (user, nice, system) not explained by our processes.
        let other = |c: &CoreTimes, ours: u64| {
            fraction((c.user + c.nice + c.system).saturating_sub(ours), c)
        };
        let all = cpu.all.since(&self.cpu.all);
        Ok(WindowStats {
            elapsed,
            proxy_cpu_seconds: proxy_ticks as f64 / hz,
            proxy_core_busy: fraction(p.busy(), &p),
            proxy_core_other: other(&p, proxy_ticks),
            rig_core_busy: fraction(r.busy(), &r),
            rig_core_other: other(&r, rig_ticks),
            steal: fraction(all.steal, &all),
        })
    }
}

/// CPU accounting over a whole phase, for the whole machine: how much CPU
/// time the hypervisor stole and how much went to processes that are not
/// ours (`ours`: every process of the benchmark, the driver included).
pub struct MachineWindow {
    cpu: CpuTimes,
    ours: Vec<(u32, u64)>,
}

/// What a [`MachineWindow`] saw, as fractions of all cores' time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineStats {
    pub steal: f64,
    /// Task time (user, nice, system) of processes other than ours.
    pub other: f64,
    /// Task time of our processes.
    pub ours: f64,
}

impl MachineWindow {
    pub fn open(ours: &[u32]) -> Result<Self, StatError> {
        Ok(MachineWindow {
            ours: ticks_of(ours)?,
            cpu: read_cpu_times()?,
        })
    }

    /// Counts a process started after the window opened as ours.
    pub fn include_started(&mut self, pid: u32) {
        self.ours.push((pid, 0));
    }

    /// Processes that exited meanwhile count as not ours: stop them after.
    pub fn close(self) -> Result<MachineStats, StatError> {
        let cpu = read_cpu_times()?;
        let ours: u64 = self
            .ours
            .iter()
            .map(|&(pid, then)| process_ticks(pid).map_or(0, |now| now.saturating_sub(then)))
            .sum();
        let all = cpu.all.since(&self.cpu.all);
        let total = all.total().max(1) as f64;
        let tasks = all.user + all.nice + all.system;
        Ok(MachineStats {
            steal: all.steal as f64 / total,
            other: tasks.saturating_sub(ours) as f64 / total,
            ours: ours.min(tasks) as f64 / total,
        })
    }
}

/// Waits until both cores have been (nearly) idle for a moment, so that a
/// run does not start in the middle of someone else's burst of work. Gives
/// up after `max_wait`; returns how long it waited and whether it got quiet.
pub fn wait_for_quiet(cores: &[usize], max_wait: Duration) -> Result<(Duration, bool), StatError> {
    const PROBE: Duration = Duration::from_millis(500);
    const IDLE_ENOUGH: f64 = 0.05;
    let started = Instant::now();
    loop {
        let before = read_cpu_times()?;
        std::thread::sleep(PROBE);
        let after = read_cpu_times()?;
        let quiet = cores
            .iter()
            .all(|&i| match (after.per_core.get(i), before.per_core.get(i)) {
                (Some(a), Some(b)) => {
                    let d = a.since(b);
                    d.busy() as f64 / d.total().max(1) as f64 <= IDLE_ENOUGH
                }
                _ => true,
            });
        if quiet || started.elapsed() >= max_wait {
            return Ok((started.elapsed(), quiet));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines_are_read_per_core() {
        let text = "cpu  100 1 50 800 2 3 4 10 0 0\ncpu0 60 1 30 400 1 2 2 5 0 0\ncpu1 40 0 20 400 1 1 2 5 0 0\nintr 1 2 3\n";
        let t = parse_proc_stat(text).unwrap();
        assert_eq!(t.per_core.len(), 2);
        assert_eq!(t.all.steal, 10);
        assert_eq!(t.per_core[1].busy(), 40 + 20 + 1 + 2);
        assert_eq!(t.per_core[0].total(), 60 + 1 + 30 + 2 + 2 + 400 + 1 + 5);
    }

    #[test]
    fn process_ticks_skip_names_with_spaces() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 70 30 0 0 20 0 3 0 555 1000 200";
        assert_eq!(parse_process_ticks(line), Some(100));
        assert_eq!(parse_process_ticks("garbage"), None);
    }
}

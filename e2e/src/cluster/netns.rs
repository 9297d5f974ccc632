//! Named network namespaces (`ip netns`): a cheap handle to use one, and an
//! owner that deletes it, and kills whatever still runs in it, on drop.

use super::command;
use super::error::{ClusterError, Result};
use super::process::{kill_pid, NsProcess};
use std::ffi::OsStr;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use tokio::net::{TcpSocket, TcpStream};

/// Where `ip netns add` mounts namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A handle on a named network namespace. Cloning it does not keep the
/// namespace alive: once its owner is dropped, operations fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A handle on the namespace called `name` (which may not exist).
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        command::run(
            Command::new("ip").arg("-n").arg(&self.name).args(args),
            None,
        )
    }

    /// Runs several `ip` commands (one per line, without the leading `ip`)
    /// in one process.
    pub fn ip_batch(&self, lines: &[String]) -> Result<()> {
        let script = lines.join("\n") + "\n";
        command::run(
            Command::new("ip").args(["-n", &self.name, "-batch", "-"]),
            Some(&script),
        )
        .map(drop)
    }

    /// Loads an nftables script (`nft -f -`) in this namespace.
    pub fn nft_apply(&self, script: &str) -> Result<()> {
        command::run(self.command("nft").args(["-f", "-"]), Some(script)).map(drop)
    }

    /// A command that runs `program` inside this namespace (through
    /// `ip netns exec`, which also gives it a /sys of this namespace).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Starts `program args...` in this namespace; see [`NsProcess`].
    pub fn spawn<I, S>(&self, label: &str, program: impl AsRef<OsStr>, args: I) -> Result<NsProcess>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(program);
        command.args(args);
        NsProcess::spawn(label, command)
    }

    /// Runs `f` on a fresh thread that has entered this namespace, so that
    /// sockets `f` creates belong to it. The thread ends with `f`, so no
    /// other code ever runs in the wrong namespace.
    pub fn run_inside<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let file = File::open(self.path())
            .map_err(|e| ClusterError::io(format!("opening namespace {}", self.name), e))?;
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&file),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| {
                    ClusterError::io(format!("entering namespace {}", self.name), e.into())
                })?;
                Ok(f())
            });
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// A TCP socket of this namespace for `addr`'s family, to bind, listen
    /// or connect with on the caller's runtime.
    pub fn tcp_socket(&self, addr: SocketAddr) -> Result<TcpSocket> {
        self.run_inside(|| match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        })?
        .map_err(|e| ClusterError::io(format!("creating a socket in {}", self.name), e))
    }

    /// Connects to `addr` from inside this namespace.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TcpStream> {
        self.tcp_socket(addr)?
            .connect(addr)
            .await
            .map_err(|e| ClusterError::io(format!("connecting to {addr} from {}", self.name), e))
    }

    /// Sets a sysctl of this namespace (`net.ipv4.ip_forward` style key):
    /// /proc/sys/net answers for the namespace of the thread that opens it.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        self.run_inside(|| std::fs::write(&path, value))?
            .map_err(|e| ClusterError::io(format!("setting {key} in {}", self.name), e))
    }

    /// Pids of the processes whose network namespace this is.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let out = command::run(Command::new("ip").args(["netns", "pids", &self.name]), None)?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }
}

/// Owns a namespace: created by [`OwnedNetns::create`], deleted on drop after
/// killing every process still inside (children a test forgot included).
#[derive(Debug)]
pub struct OwnedNetns {
    netns: Netns,
}

impl OwnedNetns {
    pub fn create(name: String) -> Result<Self> {
        let netns = Netns::named(name);
        let mut add = Command::new("ip");
        add.args(["netns", "add", netns.name()]);
        if let Err(first) = command::run(&mut add, None) {
            // Our names carry our own pid, so an existing namespace of that
            // name is a leftover of a dead process that had the same pid.
            if !netns.path().exists() {
                return Err(first);
            }
            remove(&netns)?;
            command::run(&mut add, None)?;
        }
        let owned = Self { netns };
        owned.ip(&["link", "set", "lo", "up"])?;
        Ok(owned)
    }

    pub fn handle(&self) -> Netns {
        self.netns.clone()
    }
}

impl std::ops::Deref for OwnedNetns {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl Drop for OwnedNetns {
    fn drop(&mut self) {
        if let Err(e) = remove(&self.netns) {
            eprintln!(
                "gatehouse-e2e: cleaning up namespace {}: {e}",
                self.netns.name()
            );
        }
    }
}

/// Kills everything inside `netns`, then deletes it.
pub fn remove(netns: &Netns) -> Result<()> {
    let me = std::process::id();
    for pid in netns.pids()?.into_iter().filter(|&pid| pid != me) {
        kill_pid(pid);
    }
    command::run(
        Command::new("ip").args(["netns", "delete", netns.name()]),
        None,
    )
    .map(drop)
}

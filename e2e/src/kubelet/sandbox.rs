//! A pod's sandbox: its network namespace (its own, made by the cluster, or
//! its node's for `hostNetwork`), its IP, and its volume directories; and
//! how a container's process is started inside it through `pod-sandbox`.

use super::env::Environment;
use super::error::{KubeletError, Result};
use super::volumes::VolumeDirs;
use crate::cluster::{Cluster, Netns};
use k8s_openapi::api::core::v1::{Container, PodSecurityContext};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Removes the pod's namespace from the cluster when dropped.
#[derive(Debug)]
struct PodNetwork {
    cluster: Arc<Cluster>,
    name: String,
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.remove_pod(&self.name) {
            eprintln!("gatehouse-e2e kubelet: removing pod {}: {e}", self.name);
        }
    }
}

/// Where a pod sees cluster DNS.
const ETC_HOSTS: &str = "/etc/hosts";

#[derive(Debug)]
pub struct Sandbox {
    pub netns: Netns,
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
    pub volumes: VolumeDirs,
    launcher: PathBuf,
    /// Mounted at /etc/hosts (pods not on the host network).
    hosts_file: Option<PathBuf>,
    // Dropped after the processes (which the worker owns): the directory
    // goes once nothing runs from it.
    dir: tempfile::TempDir,
    _network: Option<PodNetwork>,
}

/// How one container runs: who, where, with which mounts and environment.
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub env: Environment,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    /// Supplementary groups (`fsGroup`, `supplementalGroups`).
    pub groups: Vec<i64>,
    pub workdir: Option<String>,
    /// (volume directory, mount path, read-only)
    pub mounts: Vec<(PathBuf, String, bool)>,
}

impl Sandbox {
    /// A sandbox on node `node`: a new pod namespace called `name`, or the
    /// node's namespace if `host_network` (which keeps the node's own
    /// /etc/hosts, as `dnsPolicy: ClusterFirst` pods on the host network do).
    pub fn create(
        cluster: &Arc<Cluster>,
        node: usize,
        name: &str,
        host_network: bool,
        launcher: PathBuf,
        hosts_file: Option<PathBuf>,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-kubelet-")
            .tempdir()
            .map_err(KubeletError::io("creating a pod directory"))?;
        let host = cluster.node(node);
        let (netns, pod_ip, network) = if host_network {
            (host.netns().clone(), host.lan_ipv4, None)
        } else {
            let pod = cluster.add_pod(name, node)?;
            let guard = PodNetwork {
                cluster: cluster.clone(),
                name: name.to_owned(),
            };
            (pod.netns, pod.ip, Some(guard))
        };
        Ok(Self {
            netns,
            pod_ip,
            host_ip: host.lan_ipv4,
            volumes: VolumeDirs::new(),
            launcher,
            hosts_file: hosts_file.filter(|_| !host_network),
            dir,
            _network: network,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What `container` runs with: its mounts (unknown volumes are an
    /// error) and the user from its or the pod's security context.
    pub fn launch(
        &self,
        container: &Container,
        pod_security: Option<&PodSecurityContext>,
        env: Environment,
    ) -> Result<Launch> {
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let dir = self.volumes.get(&mount.name).ok_or_else(|| {
                KubeletError::Pod(format!("volume mount {}: no such volume", mount.name))
            })?;
            let source = match &mount.sub_path {
                Some(sub) if !sub.is_empty() => dir.join(sub),
                _ => dir.clone(),
            };
            mounts.push((
                source,
                mount.mount_path.clone(),
                mount.read_only == Some(true),
            ));
        }
        if let Some(hosts) = &self.hosts_file {
            if !mounts.iter().any(|(_, target, _)| target == ETC_HOSTS) {
                mounts.push((hosts.clone(), ETC_HOSTS.to_owned(), true));
            }
        }
        let own = container.security_context.as_ref();
        Ok(Launch {
            name: container.name.clone(),
            env,
            uid: own
                .and_then(|s| s.run_as_user)
                .or_else(|| pod_security.and_then(|s| s.run_as_user)),
            gid: own
                .and_then(|s| s.run_as_group)
                .or_else(|| pod_security.and_then(|s| s.run_as_group)),
            groups: pod_security
                .into_iter()
                .flat_map(|s| {
                    s.fs_group
                        .into_iter()
                        .chain(s.supplemental_groups.iter().flatten().copied())
                })
                .collect(),
            workdir: container.working_dir.clone(),
            mounts,
        })
    }

    /// The command that runs `program args` as `launch` says, inside the
    /// sandbox (`ip netns exec` gives it the namespace and a mount
    /// namespace of its own; `pod-sandbox` mounts, drops privileges, execs).
    pub fn command(&self, launch: &Launch, program: &Path, args: &[String]) -> Command {
        let mut command = self.netns.command(&self.launcher);
        let scratch = self.dir().join(format!("scratch-{}", launch.name));
        let _ = std::fs::create_dir_all(&scratch);
        command.arg("--scratch").arg(&scratch);
        for (source, target, read_only) in &launch.mounts {
            let mode = if *read_only { "ro" } else { "rw" };
            command
                .arg("--mount")
                .arg(format!("{}:{target}:{mode}", source.display()));
        }
        if let Some(uid) = launch.uid {
            command.arg("--uid").arg(uid.to_string());
        }
        if let Some(gid) = launch.gid {
            command.arg("--gid").arg(gid.to_string());
        }
        for group in &launch.groups {
            command.arg("--group").arg(group.to_string());
        }
        if let Some(dir) = &launch.workdir {
            command.arg("--workdir").arg(dir);
        }
        command.arg("--").arg(program).args(args);
        command.env_clear();
        command.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        command.envs(launch.env.vars().iter().map(|(k, v)| (k, v)));
        command
    }
}

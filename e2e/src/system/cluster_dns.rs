//! Cluster DNS, as far as the chart's pods need it: a hosts file that maps
//! every Service's in-cluster names to its ClusterIP, kept current from a
//! watch of Services. The kubelet bind-mounts it at a pod's /etc/hosts;
//! glibc reads /etc/hosts on every lookup, so a Service created after the
//! pod started resolves as soon as it is written here.
//!
//! Simplified (e2e/README.md says so): names are `<svc>.<ns>.svc.cluster.local`,
//! `<svc>.<ns>.svc` and `<svc>.<ns>`; the bare `<svc>` of the pod's own
//! namespace (a search-path name) is not served, nor are headless Services'
//! pod records, SRV records or Pod A records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

/// The cluster's DNS domain, as kubelets are configured by default.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

#[derive(Debug, thiserror::Error)]
pub enum ClusterDnsError {
    #[error("writing the cluster hosts file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A Service's key and the addresses its names resolve to.
pub type ServiceAddresses = BTreeMap<(String, String), Vec<String>>;

/// The hosts file's text for `services` ((namespace, name) → ClusterIPs).
pub fn render_hosts(services: &ServiceAddresses) -> String {
    let mut out = String::from(
        "# Services of the simulated cluster (the e2e harness's cluster DNS)\n\
         127.0.0.1\tlocalhost\n::1\tlocalhost\n",
    );
    for ((namespace, name), ips) in services {
        for ip in ips {
            let _ = writeln!(
                out,
                "{ip}\t{name}.{namespace}.svc.{CLUSTER_DOMAIN} {name}.{namespace}.svc {name}.{namespace}"
            );
        }
    }
    out
}

/// The ClusterIPs of `service` that have names: none for headless
/// (`None`) Services or those without an address yet.
fn cluster_ips(service: &Service) -> Vec<String> {
    let spec = service.spec.as_ref();
    let ips = spec
        .and_then(|s| s.cluster_ips.clone())
        .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]))
        .unwrap_or_default();
    ips.into_iter()
        .filter(|ip| !ip.is_empty() && ip != "None")
        .collect()
}

/// Keeps the hosts file at [`ClusterDns::hosts_file`] current while it lives.
#[derive(Debug)]
pub struct ClusterDns {
    hosts_file: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for ClusterDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ClusterDns {
    /// Writes `dir/hosts` (with only localhost until the first list
    /// arrives) and follows every namespace's Services into it.
    pub fn start(client: Client, dir: &Path) -> Result<Self, ClusterDnsError> {
        let hosts_file = dir.join("hosts");
        write_in_place(&hosts_file, &render_hosts(&ServiceAddresses::new()))?;
        let path = hosts_file.clone();
        let task = tokio::spawn(async move { follow(client, path).await });
        Ok(Self { hosts_file, task })
    }

    /// The file to bind-mount at a pod's /etc/hosts.
    pub fn hosts_file(&self) -> &Path {
        &self.hosts_file
    }
}

async fn follow(client: Client, path: PathBuf) {
    let services: Api<Service> = Api::all(client);
    let mut known = ServiceAddresses::new();
    let mut listing = ServiceAddresses::new();
    let mut events = watcher(services, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(Event::Apply(service)) => {
                let ips = cluster_ips(&service);
                known.insert(key_of(&service), ips.clone()) != Some(ips)
            }
            Ok(Event::Delete(service)) => known.remove(&key_of(&service)).is_some(),
            Ok(Event::Init) => {
                listing.clear();
                false
            }
            Ok(Event::InitApply(service)) => {
                listing.insert(key_of(&service), cluster_ips(&service));
                false
            }
            Ok(Event::InitDone) => {
                known = std::mem::take(&mut listing);
                true
            }
            Err(error) => {
                tracing::debug!(%error, "cluster DNS: Service watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                false
            }
        };
        if changed {
            if let Err(error) = write_in_place(&path, &render_hosts(&known)) {
                tracing::warn!(%error, "cluster DNS not updated");
            }
        }
    }
}

fn key_of(service: &Service) -> (String, String) {
    (service.namespace().unwrap_or_default(), service.name_any())
}

/// Rewrites `path` in place (same inode), so that bind mounts of it see the
/// new text; one `write` keeps the window in which a reader sees a partial
/// file short.
fn write_in_place(path: &Path, text: &str) -> Result<(), ClusterDnsError> {
    let error = |source| ClusterDnsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    // Readable by pods running as any user.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_cluster_ip_gets_the_service_names() {
        let mut services = ServiceAddresses::new();
        services.insert(
            ("gatehouse".into(), "gatehouse-controller".into()),
            vec!["10.96.0.10".into(), "fd00::10".into()],
        );
        services.insert(
            ("default".into(), "kubernetes".into()),
            vec!["10.96.0.1".into()],
        );
        let hosts = render_hosts(&services);
        assert!(hosts.contains(
            "10.96.0.1\tkubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default\n"
        ));
        assert!(hosts.contains("10.96.0.10\tgatehouse-controller.gatehouse.svc.cluster.local "));
        assert!(hosts.contains("fd00::10\tgatehouse-controller.gatehouse.svc.cluster.local "));
        assert!(hosts.contains("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn headless_and_unaddressed_services_have_no_names() {
        let mut service = Service::default();
        assert!(cluster_ips(&service).is_empty());
        service.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
            cluster_ip: Some("None".into()),
            cluster_ips: Some(vec!["None".into()]),
            ..Default::default()
        });
        assert!(cluster_ips(&service).is_empty());
    }
}

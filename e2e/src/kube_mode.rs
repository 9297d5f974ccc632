//! Cluster mode under test: the real controller binary watching a
//! Kubernetes API (the emulator, or a real cluster), gateways following its
//! mutual-TLS snapshot stream, and helpers to write objects through the API.

use crate::client::{Reply, TestClient};
use crate::cluster::NsProcess;
use crate::emulator::TestApi;
use crate::local::{binary, free_addrs, logged_addr, LocalError};
use crate::tls::{Issued, TestCa, TlsTestError};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum KubeModeError {
    #[error("{0}")]
    Local(#[from] LocalError),
    #[error("{0}")]
    Tls(#[from] TlsTestError),
    #[error("{0}")]
    Process(#[from] crate::cluster::ClusterError),
    #[error("{0}")]
    Emulator(#[from] crate::emulator::EmulatorError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("timed out after {after:?}: {what}")]
    Timeout { what: String, after: Duration },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> KubeModeError {
    let context = context.into();
    move |source| KubeModeError::Io { context, source }
}

/// The snapshot stream's certificates, as PEM files: a CA, the controller's
/// server certificate and a gateway client certificate it issued.
pub struct StreamCerts {
    dir: tempfile::TempDir,
    pub ca: TestCa,
}

impl StreamCerts {
    /// A CA and certificates for a controller reachable as `server_names`
    /// (DNS names or IP addresses).
    pub fn new(server_names: &[&str]) -> Result<Self, KubeModeError> {
        let dir = tempfile::tempdir().map_err(io("creating the certificate directory"))?;
        let ca = TestCa::new()?;
        let certs = StreamCerts { dir, ca };
        std::fs::write(certs.path("ca.crt"), &certs.ca.cert_pem).map_err(io("writing ca.crt"))?;
        certs.write_pair("controller", &certs.ca.issue(server_names)?)?;
        certs.write_pair("gateway", &certs.ca.issue(&["gateway.gatehouse.test"])?)?;
        Ok(certs)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>.crt` and `<name>.key`.
    pub fn write_pair(&self, name: &str, issued: &Issued) -> Result<(), KubeModeError> {
        std::fs::write(self.path(&format!("{name}.crt")), &issued.cert_pem)
            .map_err(io(format!("writing {name}.crt")))?;
        std::fs::write(self.path(&format!("{name}.key")), &issued.key_pem)
            .map_err(io(format!("writing {name}.key")))
    }

    pub fn controller_args(&self) -> Vec<String> {
        vec![
            "--snapshot-tls-cert".into(),
            self.path("controller.crt").display().to_string(),
            "--snapshot-tls-key".into(),
            self.path("controller.key").display().to_string(),
            "--snapshot-client-ca".into(),
            self.path("ca.crt").display().to_string(),
        ]
    }

    /// Gateway flags with the client certificate pair `<client>.crt/.key`.
    pub fn gateway_args(&self, client: &str) -> Vec<String> {
        vec![
            "--controller-ca".into(),
            self.path("ca.crt").display().to_string(),
            "--controller-client-cert".into(),
            self.path(&format!("{client}.crt")).display().to_string(),
            "--controller-client-key".into(),
            self.path(&format!("{client}.key")).display().to_string(),
        ]
    }
}

/// A controller process in cluster mode.
pub struct ControllerProc {
    pub process: NsProcess,
    pub snapshot: SocketAddr,
    pub admin: SocketAddr,
}

impl ControllerProc {
    /// Starts `gatehouse-controller` (in `base`, a command for the binary,
    /// e.g. inside a network namespace) against `kubeconfig`.
    pub fn start(
        label: &str,
        mut base: Command,
        kubeconfig: &Path,
        certs: &StreamCerts,
        snapshot_listen: &str,
        args: &[&str],
    ) -> Result<Self, KubeModeError> {
        base.env("NO_COLOR", "1")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--snapshot-addr", snapshot_listen])
            .args(["--admin-addr", "127.0.0.1:0"])
            .args(certs.controller_args())
            .args(args);
        let process = NsProcess::spawn(label, base)?;
        let snapshot = logged_addr(&process, "serving snapshots")?;
        let admin = logged_addr(&process, "serving admin endpoints")?;
        Ok(ControllerProc {
            process,
            snapshot,
            admin,
        })
    }

    /// The controller command on this machine.
    pub fn command() -> Result<Command, KubeModeError> {
        Ok(Command::new(binary("gatehouse-controller")?))
    }

    /// The identity the controller logged ("cluster mode ... identity=").
    pub fn identity(&self) -> Result<String, KubeModeError> {
        let line = self
            .process
            .wait_for_line(|l| l.contains("cluster mode"), START_TIMEOUT)?;
        line.split("identity=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_owned)
            .ok_or_else(|| KubeModeError::Manifest(format!("no identity in {line:?}")))
    }
}

/// A gateway process following a controller.
pub struct GatewayProc {
    pub process: NsProcess,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
}

/// Where a gateway listens.
#[derive(Debug, Clone, Copy)]
pub struct GatewayAddrs {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
}

impl GatewayProc {
    /// Starts `gatehouse-gateway` on loopback ports.
    pub fn start(label: &str, controller: &str, args: &[String]) -> Result<Self, KubeModeError> {
        let [http, https, admin] = free_addrs::<3>()?;
        let addrs = GatewayAddrs { http, https, admin };
        Self::start_with(
            label,
            Command::new(binary("gatehouse-gateway")?),
            controller,
            addrs,
            args,
        )
    }

    /// Starts the gateway command `base` (e.g. inside a network namespace).
    pub fn start_with(
        label: &str,
        mut base: Command,
        controller: &str,
        addrs: GatewayAddrs,
        args: &[String],
    ) -> Result<Self, KubeModeError> {
        base.env("NO_COLOR", "1")
            .args(["--controller", controller])
            .args(["--http-addr", &addrs.http.to_string()])
            .args(["--https-addr", &addrs.https.to_string()])
            .args(["--https-redirect-port", &addrs.https.port().to_string()])
            .args(["--admin-addr", &addrs.admin.to_string()])
            .args(["--threads", "1"])
            .args(args);
        let process = NsProcess::spawn(label, base)?;
        Ok(GatewayProc {
            process,
            http: addrs.http,
            https: addrs.https,
            admin: addrs.admin,
        })
    }
}

/// The API, one controller and one gateway, on loopback.
pub struct KubeGateway {
    pub api: TestApi,
    pub certs: StreamCerts,
    pub controller: ControllerProc,
    pub gateway: GatewayProc,
    pub client: TestClient,
}

impl KubeGateway {
    pub async fn start(controller_args: &[&str]) -> Result<Self, KubeModeError> {
        let api = TestApi::start().await?;
        let certs = StreamCerts::new(&["localhost", "127.0.0.1"])?;
        let controller = ControllerProc::start(
            "controller",
            ControllerProc::command()?,
            api.kubeconfig(),
            &certs,
            "127.0.0.1:0",
            controller_args,
        )?;
        let gateway = GatewayProc::start(
            "gateway",
            &format!("https://localhost:{}", controller.snapshot.port()),
            &certs.gateway_args("gateway"),
        )?;
        let kg = KubeGateway {
            api,
            certs,
            controller,
            gateway,
            client: TestClient::http1(),
        };
        Ok(kg)
    }

    pub fn kube(&self) -> kube::Client {
        self.api.client()
    }

    /// Writes objects (multi-document YAML) with server-side apply.
    pub async fn apply(&self, yaml: &str) -> Result<(), KubeModeError> {
        apply_yaml(&self.kube(), yaml).await
    }

    /// GET through the gateway.
    pub async fn get(&self, host: &str, path: &str) -> Reply {
        get(&self.client, self.gateway.http, host, path).await
    }

    /// Waits (up to 10 s) until GET host+path satisfies `check`; returns the
    /// last reply either way for the assertion.
    pub async fn eventually(
        &self,
        host: &str,
        path: &str,
        check: impl Fn(&Reply) -> bool,
    ) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(host, path).await;
            if check(&r) || Instant::now() > deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An admin endpoint's body (`/metrics`, `/readyz`...) of the controller.
    pub async fn controller_admin(&self, path: &str) -> Reply {
        get(&self.client, self.controller.admin, "admin", path).await
    }

    /// Logs of both processes, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- controller ---\n{}\n--- gateway ---\n{}",
            self.controller.process.output(),
            self.gateway.process.output()
        )
    }
}

/// GET through a gateway; a failed request reads as status 0 with the error
/// as body.
pub async fn get(client: &TestClient, addr: SocketAddr, host: &str, path: &str) -> Reply {
    match client.get(addr, host, path, &[]).await {
        Ok(r) => r,
        Err(e) => Reply {
            status: 0,
            headers: Default::default(),
            body: e.to_string().into(),
        },
    }
}

/// The API resource of an object's apiVersion and kind (plural by the usual
/// rule, which holds for every kind these tests write).
fn resource_of(object: &DynamicObject) -> Result<(ApiResource, bool), KubeModeError> {
    let types = object
        .types
        .as_ref()
        .ok_or_else(|| KubeModeError::Manifest("an object without apiVersion/kind".into()))?;
    let (group, version) = match types.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", types.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &types.kind);
    let cluster_scoped = matches!(
        types.kind.as_str(),
        "IngressClass" | "Namespace" | "Node" | "IPPool" | "CustomResourceDefinition"
    );
    Ok((ApiResource::from_gvk(&gvk), cluster_scoped))
}

/// Applies every document of a YAML text (server-side apply, forced, field
/// manager `e2e`). Namespaced objects without a namespace go to `default`.
pub async fn apply_yaml(client: &kube::Client, yaml: &str) -> Result<(), KubeModeError> {
    for doc in yaml.split("\n---") {
        if doc.trim().is_empty() || doc.trim() == "---" {
            continue;
        }
        let object: DynamicObject = serde_yaml::from_str(doc)
            .map_err(|e| KubeModeError::Manifest(format!("{e}: {doc}")))?;
        let (resource, cluster_scoped) = resource_of(&object)?;
        let name = object
            .metadata
            .name
            .clone()
            .ok_or_else(|| KubeModeError::Manifest(format!("no name: {doc}")))?;
        let api: Api<DynamicObject> = if cluster_scoped {
            Api::all_with(client.clone(), &resource)
        } else {
            let ns = object.metadata.namespace.as_deref().unwrap_or("default");
            Api::namespaced_with(client.clone(), ns, &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&object),
        )
        .await?;
    }
    Ok(())
}

/// Deletes one object.
pub async fn delete(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), KubeModeError> {
    let probe: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": api_version, "kind": kind, "metadata": {"name": name}
    }))
    .map_err(|e| KubeModeError::Manifest(e.to_string()))?;
    let (resource, _) = resource_of(&probe)?;
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.delete(name, &Default::default()).await?;
    Ok(())
}

/// Waits up to `timeout` for `check` to return `Some`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, KubeModeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(KubeModeError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One Event (events.k8s.io/v1) as tests compare it: type, reason, note.
pub type EventSummary = (String, String, String);

/// The Events in `namespace` about the object called `name` (empty when
/// they cannot be listed).
pub async fn events_about(client: &kube::Client, namespace: &str, name: &str) -> Vec<EventSummary> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = api.list(&Default::default()).await else {
        return vec![];
    };
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

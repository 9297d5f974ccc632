//! Local mode under test: the real controller (reading a temporary manifests
//! directory) and gateway binaries on ephemeral loopback ports, with echo
//! backends as the "pods".

use crate::client::{Reply, TestClient};
use crate::cluster::NsProcess;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("binary {name} not found at {path}: build it first (`cargo build --workspace --bins`) or set GATEHOUSE_BIN_DIR")]
    MissingBinary { name: String, path: String },
    #[error("{0}")]
    Process(#[from] crate::cluster::ClusterError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("timed out after {after:?}: {what}")]
    Timeout { what: String, after: Duration },
}

/// The `addr=` a process logged on the first line containing `marker`.
pub fn logged_addr(process: &NsProcess, marker: &str) -> Result<SocketAddr, LocalError> {
    let line = process.wait_for_line(|l| l.contains(marker), START_TIMEOUT)?;
    line.split("addr=")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| LocalError::Timeout {
            what: format!("{marker}: no address logged in {line:?}"),
            after: Duration::ZERO,
        })
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalError {
    let context = context.into();
    move |source| LocalError::Io { context, source }
}

/// A workspace binary: `$GATEHOUSE_BIN_DIR/<name>`, or next to the test
/// executable's directory (`target/<profile>/`).
pub fn binary(name: &str) -> Result<PathBuf, LocalError> {
    let dir = match std::env::var_os("GATEHOUSE_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
            .unwrap_or_default(),
    };
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(LocalError::MissingBinary {
            name: name.to_owned(),
            path: path.display().to_string(),
        })
    }
}

/// A free loopback port (bound and released; the race with other processes
/// is acceptable in tests).
pub fn free_addr() -> Result<SocketAddr, LocalError> {
    Ok(free_addrs::<1>()?[0])
}

/// `N` distinct free loopback ports: all are held open until every one is
/// chosen, so the kernel cannot hand out the same port twice.
pub fn free_addrs<const N: usize>() -> Result<[SocketAddr; N], LocalError> {
    let mut held = Vec::with_capacity(N);
    let mut addrs = [SocketAddr::from(([127, 0, 0, 1], 0)); N];
    for slot in &mut addrs {
        let l = TcpListener::bind("127.0.0.1:0").map_err(io("binding an ephemeral port"))?;
        *slot = l.local_addr().map_err(io("reading an ephemeral port"))?;
        held.push(l);
    }
    Ok(addrs)
}

/// A loopback address that refuses connections for as long as the returned
/// socket lives: bound, never listening, so no other process can take the
/// port meanwhile.
pub fn refusing_addr() -> Result<(SocketAddr, tokio::net::TcpSocket), LocalError> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(io("creating a socket"))?;
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(io("binding a refusing port"))?;
    let addr = socket.local_addr().map_err(io("reading a refusing port"))?;
    Ok((addr, socket))
}

/// An echo backend process on an ephemeral loopback port.
pub struct EchoPod {
    pub service: String,
    pub pod: String,
    pub addr: SocketAddr,
    process: NsProcess,
}

impl EchoPod {
    pub fn start(service: &str, pod: &str) -> Result<Self, LocalError> {
        let mut cmd = Command::new(binary("gatehouse-echo")?);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--service",
            service,
            "--pod",
            pod,
        ]);
        let process = NsProcess::spawn(&format!("echo {service}/{pod}"), cmd)?;
        let line = process.wait_for_line(|l| l.starts_with("listening on "), START_TIMEOUT)?;
        let addr = line
            .trim_start_matches("listening on ")
            .trim()
            .parse()
            .map_err(|_| LocalError::Timeout {
                what: format!("echo printed an unreadable address: {line}"),
                after: START_TIMEOUT,
            })?;
        Ok(EchoPod {
            service: service.to_owned(),
            pod: pod.to_owned(),
            addr,
            process,
        })
    }

    pub fn stop(&mut self) {
        self.process.kill();
    }
}

/// Manifests for a Service named `name` (port 80, named `http`) whose
/// endpoints are these pods, as one EndpointSlice per pod (each pod listens
/// on its own port). `ready: false` pods are listed as not ready.
pub fn service_manifest(name: &str, pods: &[(&EchoPod, bool)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80}}]\n"
    );
    for (pod, ready) in pods {
        out += &endpoint_slice(name, &pod.pod, pod.addr, *ready);
    }
    out
}

/// One EndpointSlice with one endpoint.
/// A Service `up` whose one endpoint is `upstream`, and an Ingress sending
/// every host and path (a rule without host, prefix `/`) to it.
pub fn catch_all_route(upstream: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: up}}\nspec:\n  ports: [{{name: http, port: 80}}]\n{}---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: up}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n\
         \x20 - http:\n      paths:\n      - {{pathType: Prefix, path: /, backend: {{service: {{name: up, port: {{number: 80}}}}}}}}\n",
        endpoint_slice("up", "fake", upstream, true)
    )
}

/// A snapshot frame (as `--snapshot-file` reads it) with one exact host,
/// prefix `/`, routed to a backend `default/web:80` with this one endpoint.
pub fn snapshot_frame(host: &str, endpoint: SocketAddr) -> String {
    format!(
        r#"{{"version": 42, "snapshot": {{
            "virtual_hosts": [{{"host": {{"kind": "exact", "value": "{host}"}},
                "routes": [{{"path": {{"kind": "prefix", "value": "/"}}, "backend": "default/web:80",
                            "source": {{"kind": "Ingress", "namespace": "default", "name": "web"}}}}]}}],
            "backends": {{"default/web:80": {{"service": {{"kind": "Service", "namespace": "default", "name": "web"}},
                "port": "80", "endpoints": [{{"address": "{endpoint}"}}]}}}}}}}}"#
    )
}

pub fn endpoint_slice(service: &str, pod: &str, addr: SocketAddr, ready: bool) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-{pod}\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints:\n- addresses: [\"{ip}\"]\n  conditions: {{ready: {ready}}}\n  targetRef: {{kind: Pod, name: {pod}}}\n",
        port = addr.port(),
        ip = addr.ip(),
    )
}

/// Our IngressClass, marked default.
pub const INGRESS_CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: gatehouse\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: gatehouse.dev/ingress-controller}\n";

/// A controller in local mode and a gateway following it.
pub struct LocalGateway {
    pub dir: tempfile::TempDir,
    pub controller: NsProcess,
    pub gateway: NsProcess,
    pub http: SocketAddr,
    /// HTTPS listener; redirects point to its port.
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub snapshot: SocketAddr,
    /// The controller's /healthz, /readyz and /metrics.
    pub controller_admin: SocketAddr,
    pub client: TestClient,
}

impl LocalGateway {
    /// Starts both with an empty manifests directory (plus our IngressClass)
    /// and waits until the gateway is ready. `gateway_args` are extra flags.
    pub async fn start(gateway_args: &[&str]) -> Result<Self, LocalError> {
        Self::start_with(&[], gateway_args).await
    }

    /// Like [`LocalGateway::start`], with extra controller flags too.
    pub async fn start_with(
        controller_args: &[&str],
        gateway_args: &[&str],
    ) -> Result<Self, LocalError> {
        let dir = tempfile::tempdir().map_err(io("creating the manifests directory"))?;
        std::fs::write(dir.path().join("class.yaml"), INGRESS_CLASS)
            .map_err(io("writing class.yaml"))?;
        let mut cmd = Command::new(binary("gatehouse-controller")?);
        cmd.env("NO_COLOR", "1")
            .arg("--manifests")
            .arg(dir.path())
            .args(["--snapshot-addr", "127.0.0.1:0"])
            .args(["--admin-addr", "127.0.0.1:0"])
            .args(controller_args);
        let controller = NsProcess::spawn("gatehouse-controller", cmd)?;
        // The controller binds port 0 and logs the addresses it got.
        let snapshot = logged_addr(&controller, "serving snapshots")?;
        let controller_admin = logged_addr(&controller, "serving admin endpoints")?;
        // Chosen only now: picked before the controller's port-0 bind, a port
        // just released by `free_addrs` could be handed to the controller.
        let [http, https, admin] = free_addrs::<3>()?;
        let mut cmd = Command::new(binary("gatehouse-gateway")?);
        cmd.env("NO_COLOR", "1")
            .args(["--controller", &format!("http://{snapshot}")])
            .args(["--http-addr", &http.to_string()])
            .args(["--https-addr", &https.to_string()])
            .args(["--https-redirect-port", &https.port().to_string()])
            .args(["--admin-addr", &admin.to_string()])
            .args(gateway_args);
        if !gateway_args.contains(&"--threads") {
            cmd.args(["--threads", "2"]);
        }
        let gateway = NsProcess::spawn("gatehouse-gateway", cmd)?;
        let mut lg = LocalGateway {
            dir,
            controller,
            gateway,
            http,
            https,
            admin,
            snapshot,
            controller_admin,
            client: TestClient::http1(),
        };
        lg.wait_ready().await?;
        Ok(lg)
    }

    /// Waits until the gateway's /readyz answers 200 and its proxy port
    /// accepts connections. Fails at once if either process exits.
    pub async fn wait_ready(&mut self) -> Result<(), LocalError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.gateway.is_running() || !self.controller.is_running() {
                return Err(LocalError::Timeout {
                    what: format!("a process exited during start-up\n{}", self.logs()),
                    after: Duration::ZERO,
                });
            }
            let ready = matches!(self.client.get(self.admin, "admin", "/readyz", &[]).await, Ok(r) if r.status == 200);
            if ready
                && tokio::net::TcpStream::connect(self.http).await.is_ok()
                && tokio::net::TcpStream::connect(self.https).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LocalError::Timeout {
                    what: format!("gateway ready\n{}", self.logs()),
                    after: START_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Writes a manifest file atomically (write to a hidden file, rename).
    pub fn write(&self, name: &str, content: &str) -> Result<(), LocalError> {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).map_err(io(format!("writing {name}")))?;
        std::fs::rename(&tmp, self.dir.path().join(name)).map_err(io(format!("renaming {name}")))
    }

    pub fn remove(&self, name: &str) -> Result<(), LocalError> {
        std::fs::remove_file(self.dir.path().join(name)).map_err(io(format!("removing {name}")))
    }

    /// GET through the gateway.
    pub async fn get(&self, host: &str, path: &str) -> Reply {
        match self.client.get(self.http, host, path, &[]).await {
            Ok(r) => r,
            Err(e) => Reply {
                status: 0,
                headers: Default::default(),
                body: e.to_string().into(),
            },
        }
    }

    /// Waits until GET host+path satisfies `check` (routing changes are
    /// asynchronous); returns the last reply either way for the assertion.
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
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The gateway's /metrics text.
    pub async fn metrics(&self) -> String {
        match self.client.get(self.admin, "admin", "/metrics", &[]).await {
            Ok(r) => String::from_utf8_lossy(&r.body).into_owned(),
            Err(e) => format!("metrics unavailable: {e}"),
        }
    }

    /// Logs of both processes, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- controller ---\n{}\n--- gateway ---\n{}",
            self.controller.output(),
            self.gateway.output()
        )
    }
}

//! What tests connect to: an in-process emulator by default, or a real
//! cluster when `GATEHOUSE_E2E_KUBECONFIG` names a kubeconfig (kind, k3d...).

use std::path::{Path, PathBuf};

use gatehouse_kube_emulator::{Emulator, EmulatorConfig, EmulatorError};

/// The environment variable that switches tests to a real cluster.
pub const KUBECONFIG_ENV: &str = "GATEHOUSE_E2E_KUBECONFIG";

/// A Kubernetes API for one test, with a kubeconfig file for subprocesses.
pub struct TestApi {
    client: kube::Client,
    kubeconfig: PathBuf,
    emulator: Option<Emulator>,
    /// A kubeconfig this harness wrote (removed on drop).
    owned_kubeconfig: bool,
}

impl TestApi {
    /// A real cluster if `GATEHOUSE_E2E_KUBECONFIG` is set, else a fresh emulator.
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::start_with(EmulatorConfig::default()).await
    }

    /// As [`start`](Self::start), with emulator settings (ignored for a real cluster).
    pub async fn start_with(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Self::external(PathBuf::from(path)).await,
            None => Self::emulated(config).await,
        }
    }

    async fn emulated(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let emulator = Emulator::start_with("127.0.0.1:0", config).await?;
        let kubeconfig = std::env::temp_dir().join(format!(
            "gatehouse-kube-emulator-{}-{}.kubeconfig",
            std::process::id(),
            emulator.addr().port()
        ));
        emulator.write_kubeconfig(&kubeconfig)?;
        let client = emulator.kube_client()?;
        Ok(Self {
            client,
            kubeconfig,
            emulator: Some(emulator),
            owned_kubeconfig: true,
        })
    }

    async fn external(kubeconfig: PathBuf) -> Result<Self, EmulatorError> {
        let loaded = kube::config::Kubeconfig::read_from(&kubeconfig)
            .map_err(|e| EmulatorError::Client(format!("{}: {e}", kubeconfig.display())))?;
        let config = kube::Config::from_custom_kubeconfig(loaded, &Default::default())
            .await
            .map_err(|e| EmulatorError::Client(e.to_string()))?;
        let client =
            kube::Client::try_from(config).map_err(|e| EmulatorError::Client(e.to_string()))?;
        Ok(Self {
            client,
            kubeconfig,
            emulator: None,
            owned_kubeconfig: false,
        })
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig for kubectl or a controller process.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The emulator, when not running against a real cluster. Tests that need
    /// emulator-only controls (history compaction) skip themselves otherwise.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.emulator.as_ref()
    }

    /// The emulator, mutably (for restarts).
    pub fn emulator_mut(&mut self) -> Option<&mut Emulator> {
        self.emulator.as_mut()
    }

    pub fn is_emulated(&self) -> bool {
        self.emulator.is_some()
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if self.owned_kubeconfig {
            let _ = std::fs::remove_file(&self.kubeconfig);
        }
    }
}

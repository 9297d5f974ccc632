//! External tools the tests drive (a real kubectl and helm), found the same way by
//! every test.

use serde_json::Value;
use std::path::{Path, PathBuf};

const WANTED_MINOR: &str = "35";

/// The kubectl to drive: `$KUBECTL`, else the first v1.35 kubectl among
/// /usr/local/bin and `$PATH`. Fails the test when there is none, because
/// CI installs it and a silent pass would hide a broken install.
pub fn kubectl_binary() -> PathBuf {
    locate(
        "KUBECTL",
        "kubectl",
        &format!("kubectl v1.{WANTED_MINOR}"),
        is_wanted_kubectl,
    )
}

/// `$ENV`, else the first `name` among /usr/local/bin and `$PATH` that
/// `wanted` accepts; panics naming what it looked for.
fn locate(env: &str, name: &str, what: &str, wanted: fn(&Path) -> bool) -> PathBuf {
    if let Some(explicit) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        assert!(wanted(&path), "{env}={} is not a {what}", path.display());
        return path;
    }
    let mut candidates = vec![Path::new("/usr/local/bin").join(name)];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    candidates
        .into_iter()
        .find(|c| wanted(c))
        .unwrap_or_else(|| {
            panic!(
                "no {what} found (looked at ${env}, /usr/local/bin and $PATH); install it with \
                 scripts/install-tools.sh"
            )
        })
}

fn is_wanted_kubectl(path: &Path) -> bool {
    let Ok(output) = std::process::Command::new(path)
        .args(["version", "--client", "-o", "json"])
        .output()
    else {
        return false;
    };
    let Ok(version) = serde_json::from_slice::<Value>(&output.stdout) else {
        return false;
    };
    version["clientVersion"]["major"] == "1" && version["clientVersion"]["minor"] == WANTED_MINOR
}

const WANTED_HELM_MAJOR: &str = "v4.";

/// The helm to drive: `$HELM`, else the first helm v4 among /usr/local/bin
/// and `$PATH`. Fails the test when there is none, as for kubectl.
pub fn helm_binary() -> PathBuf {
    locate(
        "HELM",
        "helm",
        &format!("helm {WANTED_HELM_MAJOR}x"),
        is_wanted_helm,
    )
}

fn is_wanted_helm(path: &Path) -> bool {
    std::process::Command::new(path)
        .args(["version", "--short"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with(WANTED_HELM_MAJOR))
}

/// Runs [`helm_binary`] with `args` against the cluster of `kubeconfig`, in
/// `namespace`, with helm's caches and config under `home` (out of the
/// user's); returns its stdout. Panics with helm's output when it fails, or
/// after two minutes.
pub async fn run_helm(kubeconfig: &Path, namespace: &str, home: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new(helm_binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--namespace", namespace])
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .unwrap_or_else(|_| panic!("helm {args:?} timed out"))
        .unwrap_or_else(|e| panic!("helm {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

//! External tools the tests drive (a real kubectl), found the same way by
//! every test.

use serde_json::Value;
use std::path::{Path, PathBuf};

const WANTED_MINOR: &str = "35";

/// The kubectl to drive: `$KUBECTL`, else the first v1.35 kubectl among
/// /usr/local/bin and `$PATH`. Fails the test when there is none, because
/// CI installs it and a silent pass would hide a broken install.
pub fn kubectl_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("KUBECTL").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        assert!(
            is_wanted_kubectl(&path),
            "KUBECTL={} is not a kubectl v1.{WANTED_MINOR}",
            path.display()
        );
        return path;
    }
    let mut candidates = vec![PathBuf::from("/usr/local/bin/kubectl")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("kubectl")));
    }
    candidates
        .into_iter()
        .find(|c| is_wanted_kubectl(c))
        .unwrap_or_else(|| {
            panic!(
                "no kubectl v1.{WANTED_MINOR} found (looked at $KUBECTL, /usr/local/bin and \
                 $PATH); install it with scripts/install-tools.sh"
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

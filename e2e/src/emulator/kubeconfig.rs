//! The kubeconfig that points clients (kube-rs, kubectl, the controller) at
//! the emulator: a plain `http://` server URL and an empty user, since the
//! emulator has no authentication.

use std::path::Path;

use super::error::EmulatorError;

const NAME: &str = "kube-emulator";

/// A kubeconfig for `server_url` with one cluster, user and current context.
pub fn render(server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {server_url}
users:
- name: {NAME}
  user: {{}}
contexts:
- name: {NAME}
  context:
    cluster: {NAME}
    user: {NAME}
    namespace: default
current-context: {NAME}
preferences: {{}}
"
    )
}

/// Writes the kubeconfig, creating parent directories.
pub fn write(path: &Path, server_url: &str) -> Result<(), EmulatorError> {
    let error = |source| EmulatorError::WriteKubeconfig {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, render(server_url)).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_as_yaml_with_the_server_url() {
        let text = render("http://127.0.0.1:1234");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"].as_str(),
            Some("http://127.0.0.1:1234")
        );
        assert_eq!(doc["current-context"].as_str(), Some(NAME));
    }
}

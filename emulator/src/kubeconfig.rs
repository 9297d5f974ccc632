//! The kubeconfig that points clients (kube-rs, kubectl, the controller) at
//! the emulator: its server URL (`https://` with the emulator's CA when it
//! serves TLS) and the admin's bearer token.

use std::path::Path;

use super::error::EmulatorError;

const NAME: &str = "kube-emulator";

/// A kubeconfig for `server_url` with one cluster, user and current context;
/// `ca_pem` is the CA to trust for an `https://` server, `token` the user's.
pub fn render(server_url: &str, ca_pem: Option<&str>, token: &str) -> String {
    use base64::Engine as _;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {server_url}{ca}
users:
- name: {NAME}
  user: {{token: \"{token}\"}}
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
pub fn write(
    path: &Path,
    server_url: &str,
    ca_pem: Option<&str>,
    token: &str,
) -> Result<(), EmulatorError> {
    let error = |source| EmulatorError::WriteKubeconfig {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, render(server_url, ca_pem, token)).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_as_yaml_with_the_server_url() {
        let text = render("http://127.0.0.1:1234", None, "secret");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"].as_str(),
            Some("http://127.0.0.1:1234")
        );
        assert_eq!(doc["current-context"].as_str(), Some(NAME));
        assert_eq!(doc["users"][0]["user"]["token"].as_str(), Some("secret"));
        assert!(doc["clusters"][0]["cluster"]
            .get("certificate-authority-data")
            .is_none());
    }

    #[test]
    fn an_https_kubeconfig_carries_the_ca() {
        use base64::Engine as _;
        let text = render("https://127.0.0.1:1234", Some("PEM TEXT"), "secret");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let data = doc["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(decoded, b"PEM TEXT");
    }
}

//! The kubelet's "registry": which workspace binary an image's program is.
//! An image has an entrypoint and a cmd, as its config would, and a map
//! from the paths inside the image to files on this machine.

use crate::local::{binary, LocalError};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The Gatehouse image (`charts/gatehouse/values.yaml`, any tag).
pub const GATEHOUSE_IMAGE: &str = "gatehouse/gatehouse";
/// The echo server's image (`gatehouse-echo`).
pub const ECHO_IMAGE: &str = "gatehouse/echo";
/// A shell image: its programs are this machine's own (`/bin/sh`, ...).
pub const BUSYBOX_IMAGE: &str = "busybox";

#[derive(Debug, Clone, Default)]
pub struct Image {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// Path inside the image → the file that runs.
    pub programs: BTreeMap<String, PathBuf>,
    /// Whether a program not in `programs` runs from the host's own path.
    pub host_programs: bool,
}

impl Image {
    /// The host file for `program`, or `None` if the image has no such file.
    pub fn resolve(&self, program: &str) -> Option<PathBuf> {
        if let Some(path) = self.programs.get(program) {
            return Some(path.clone());
        }
        self.host_programs.then(|| PathBuf::from(program))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    images: BTreeMap<String, Image>,
}

impl ImageMap {
    /// The images the harness knows: Gatehouse (controller and gateway
    /// under /usr/local/bin, entrypoint the controller, as in the
    /// Dockerfile), echo (entrypoint gatehouse-echo) and busybox; binaries
    /// are found like `local::binary`.
    pub fn workspace() -> Result<Self, LocalError> {
        let mut map = Self::default();
        let bin = |name: &str| -> Result<(String, PathBuf), LocalError> {
            Ok((format!("/usr/local/bin/{name}"), binary(name)?))
        };
        map.insert(
            GATEHOUSE_IMAGE,
            Image {
                entrypoint: vec!["/usr/local/bin/gatehouse-controller".into()],
                cmd: vec![],
                programs: [bin("gatehouse-controller")?, bin("gatehouse-gateway")?].into(),
                host_programs: false,
            },
        );
        map.insert(
            ECHO_IMAGE,
            Image {
                entrypoint: vec!["/usr/local/bin/gatehouse-echo".into()],
                cmd: vec![],
                programs: [bin("gatehouse-echo")?].into(),
                host_programs: false,
            },
        );
        map.insert(
            BUSYBOX_IMAGE,
            Image {
                entrypoint: vec![],
                cmd: vec!["sh".into()],
                programs: BTreeMap::new(),
                host_programs: true,
            },
        );
        Ok(map)
    }

    pub fn insert(&mut self, repository: &str, image: Image) {
        self.images.insert(repository.to_owned(), image);
    }

    /// The image `reference` names: any tag or digest, with or without a
    /// `docker.io/` (or `docker.io/library/`) prefix.
    pub fn get(&self, reference: &str) -> Option<&Image> {
        let repository = repository(reference);
        let short = repository
            .strip_prefix("docker.io/library/")
            .or_else(|| repository.strip_prefix("docker.io/"))
            .unwrap_or(repository);
        self.images.get(short)
    }
}

/// `reference` without its `@digest` and `:tag`.
fn repository(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_digests_and_registries_name_the_same_image() {
        let mut map = ImageMap::default();
        map.insert("gatehouse/echo", Image::default());
        map.insert("busybox", Image::default());
        assert!(map.get("gatehouse/echo:1.2").is_some());
        assert!(map.get("docker.io/gatehouse/echo@sha256:abc").is_some());
        assert!(map.get("docker.io/library/busybox:1.36").is_some());
        assert!(map.get("localhost:5000/busybox").is_none());
        assert!(map.get("nginx").is_none());
    }
}

//! A pod's volumes as directories in the pod's own temporary directory:
//! secret, configMap, emptyDir, downwardAPI and projected volumes (with the
//! service-account token). Containers see them through bind mounts made by
//! `pod-sandbox`.

use super::error::{KubeletError, Result};
use super::fields::PodFacts;
use super::objects::{self, Data, Kind};
use super::token;
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// `defaultMode` when a volume gives none (0644).
const DEFAULT_MODE: u32 = 0o644;

/// Volume name → its directory.
pub type VolumeDirs = BTreeMap<String, PathBuf>;

/// Writes every volume of the pod under `root`.
pub async fn prepare(client: &kube::Client, facts: &PodFacts, root: &Path) -> Result<VolumeDirs> {
    let mut dirs = VolumeDirs::new();
    let volumes = facts.pod.spec.as_ref().and_then(|s| s.volumes.clone());
    for volume in volumes.unwrap_or_default() {
        let dir = root.join(&volume.name);
        make_dir(&dir, 0o755)?;
        write_volume(client, facts, &volume, &dir).await?;
        dirs.insert(volume.name.clone(), dir);
    }
    Ok(dirs)
}

async fn write_volume(
    client: &kube::Client,
    facts: &PodFacts,
    volume: &Volume,
    dir: &Path,
) -> Result<()> {
    let namespace = facts.pod.metadata.namespace.clone().unwrap_or_default();
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let mode = secret.default_mode.map_or(DEFAULT_MODE, mode_bits);
        let source = Source {
            kind: Kind::Secret,
            name: &name,
            optional: secret.optional,
        };
        return write_keys(
            client,
            &namespace,
            source,
            secret.items.as_deref(),
            mode,
            dir,
        )
        .await;
    }
    if let Some(map) = &volume.config_map {
        let mode = map.default_mode.map_or(DEFAULT_MODE, mode_bits);
        let source = Source {
            kind: Kind::ConfigMap,
            name: &map.name,
            optional: map.optional,
        };
        return write_keys(client, &namespace, source, map.items.as_deref(), mode, dir).await;
    }
    if volume.empty_dir.is_some() {
        // Writable by whichever user the containers run as.
        return set_mode(dir, 0o777);
    }
    if let Some(downward) = &volume.downward_api {
        let mode = downward.default_mode.map_or(DEFAULT_MODE, mode_bits);
        return write_fields(
            facts,
            downward.items.as_deref().unwrap_or_default(),
            mode,
            dir,
        );
    }
    if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.map_or(DEFAULT_MODE, mode_bits);
        for source in projected.sources.iter().flatten() {
            if let Some(request) = &source.service_account_token {
                let account = facts
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".into());
                let token = token::issue(client, &namespace, &account, request).await;
                write_file(
                    &dir.join(safe_relative(&request.path)?),
                    token.as_bytes(),
                    mode,
                )?;
            }
            if let Some(map) = &source.config_map {
                let source = Source {
                    kind: Kind::ConfigMap,
                    name: &map.name,
                    optional: map.optional,
                };
                write_keys(client, &namespace, source, map.items.as_deref(), mode, dir).await?;
            }
            if let Some(secret) = &source.secret {
                let source = Source {
                    kind: Kind::Secret,
                    name: &secret.name,
                    optional: secret.optional,
                };
                write_keys(
                    client,
                    &namespace,
                    source,
                    secret.items.as_deref(),
                    mode,
                    dir,
                )
                .await?;
            }
            if let Some(downward) = &source.downward_api {
                write_fields(
                    facts,
                    downward.items.as_deref().unwrap_or_default(),
                    mode,
                    dir,
                )?;
            }
        }
        return Ok(());
    }
    Err(KubeletError::Pod(format!(
        "volume {}: only secret, configMap, emptyDir, downwardAPI and projected volumes are supported",
        volume.name
    )))
}

struct Source<'a> {
    kind: Kind,
    name: &'a str,
    optional: Option<bool>,
}

/// A Secret's or ConfigMap's keys as files: all of them, or the `items`.
async fn write_keys(
    client: &kube::Client,
    namespace: &str,
    source: Source<'_>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    dir: &Path,
) -> Result<()> {
    let Some(data) = objects::read(client, namespace, source.kind, source.name).await? else {
        if source.optional == Some(true) {
            return Ok(());
        }
        return Err(KubeletError::Pod(format!(
            "{} \"{}\" not found",
            source.kind, source.name
        )));
    };
    match items {
        None => {
            for (key, value) in &data {
                write_file(&dir.join(safe_relative(key)?), value, mode)?;
            }
            Ok(())
        }
        Some(items) => write_items(&data, items, &source, mode, dir),
    }
}

fn write_items(
    data: &Data,
    items: &[KeyToPath],
    source: &Source<'_>,
    mode: u32,
    dir: &Path,
) -> Result<()> {
    for item in items {
        let Some(value) = data.get(&item.key) else {
            if source.optional == Some(true) {
                continue;
            }
            return Err(KubeletError::Pod(format!(
                "{} \"{}\" has no key {}",
                source.kind, source.name, item.key
            )));
        };
        let mode = item.mode.map_or(mode, mode_bits);
        write_file(&dir.join(safe_relative(&item.path)?), value, mode)?;
    }
    Ok(())
}

fn write_fields(
    facts: &PodFacts,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    dir: &Path,
) -> Result<()> {
    for item in items {
        let Some(field) = &item.field_ref else {
            return Err(KubeletError::Pod(format!(
                "downwardAPI {}: only fieldRef is supported",
                item.path
            )));
        };
        let value = facts.field(&field.field_path).ok_or_else(|| {
            KubeletError::Pod(format!("unsupported fieldPath {}", field.field_path))
        })?;
        let mode = item.mode.map_or(mode, mode_bits);
        write_file(
            &dir.join(safe_relative(&item.path)?),
            value.as_bytes(),
            mode,
        )?;
    }
    Ok(())
}

/// `path` if it stays inside the volume (no `..`, not absolute).
fn safe_relative(path: &str) -> Result<&Path> {
    let relative = Path::new(path);
    if relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        Ok(relative)
    } else {
        Err(KubeletError::Pod(format!(
            "volume path {path:?} leaves the volume"
        )))
    }
}

fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(DEFAULT_MODE) & 0o7777
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        make_dir(parent, 0o755)?;
    }
    std::fs::write(path, contents)
        .map_err(KubeletError::io(format!("writing {}", path.display())))?;
    set_mode(path, mode)
}

fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(KubeletError::io(format!("creating {}", dir.display())))?;
    set_mode(dir, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(KubeletError::io(
        format!("setting the mode of {}", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_volume() {
        assert!(safe_relative("ca.crt").is_ok());
        assert!(safe_relative("a/b").is_ok());
        assert!(safe_relative("../etc/passwd").is_err());
        assert!(safe_relative("/etc/passwd").is_err());
    }
}

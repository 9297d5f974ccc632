//! A pod's volumes as directories in the pod's own temporary directory:
//! secret, configMap, emptyDir, downwardAPI and projected volumes (with the
//! service-account token). Containers see them through bind mounts made by
//! `pod-sandbox`.

use super::error::{KubeletError, Result};
use super::fields::PodFacts;
use super::objects::{self, Data, Kind};
use super::token;
use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, ServiceAccountTokenProjection, Volume,
};
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
        if let Some(group) = fs_group(facts) {
            give_to_group(&dir, group, volume.empty_dir.is_some())?;
        }
        dirs.insert(volume.name.clone(), dir);
    }
    Ok(dirs)
}

/// The pod's `securityContext.fsGroup`.
pub fn fs_group(facts: &PodFacts) -> Option<u32> {
    let group = facts
        .pod
        .spec
        .as_ref()?
        .security_context
        .as_ref()?
        .fs_group?;
    u32::try_from(group).ok()
}

/// What the kubelet does for `fsGroup`: everything in the volume belongs to
/// the group, which may read it (and write it, if the volume is writable);
/// directories are setgid, so that new files join the group too.
fn give_to_group(path: &Path, group: u32, writable: bool) -> Result<()> {
    let metadata = std::fs::symlink_metadata(path)
        .map_err(KubeletError::io(format!("reading {}", path.display())))?;
    std::os::unix::fs::lchown(path, None, Some(group)).map_err(KubeletError::io(format!(
        "giving {} to group {group}",
        path.display()
    )))?;
    let mode = metadata.permissions().mode() & 0o7777;
    if metadata.is_dir() {
        let access = if writable { 0o070 } else { 0o050 };
        set_mode(path, mode | access | 0o2000)?;
        let entries = std::fs::read_dir(path)
            .map_err(KubeletError::io(format!("listing {}", path.display())))?;
        for entry in entries {
            let entry = entry.map_err(KubeletError::io(format!("listing {}", path.display())))?;
            give_to_group(&entry.path(), group, writable)?;
        }
    } else if metadata.is_file() {
        let access = if writable { 0o060 } else { 0o040 };
        set_mode(path, mode | access)?;
    }
    Ok(())
}

/// One part of a volume's content.
enum Piece<'a> {
    Keys(Source<'a>),
    Token(&'a ServiceAccountTokenProjection),
    Fields(&'a [DownwardAPIVolumeFile]),
    /// An emptyDir: writable by whichever user the containers run as.
    Writable,
}

struct Source<'a> {
    kind: Kind,
    name: &'a str,
    optional: Option<bool>,
    items: Option<&'a [KeyToPath]>,
}

impl<'a> Source<'a> {
    fn piece(
        kind: Kind,
        name: &'a str,
        optional: Option<bool>,
        items: &'a Option<Vec<KeyToPath>>,
    ) -> Piece<'a> {
        Piece::Keys(Self {
            kind,
            name,
            optional,
            items: items.as_deref(),
        })
    }
}

/// What `volume` holds, and the mode of its files.
fn pieces(volume: &Volume) -> Result<(Vec<Piece<'_>>, u32)> {
    let mode = |m: Option<i32>| m.map_or(DEFAULT_MODE, mode_bits);
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.as_deref().unwrap_or_default();
        let piece = Source::piece(Kind::Secret, name, secret.optional, &secret.items);
        return Ok((vec![piece], mode(secret.default_mode)));
    }
    if let Some(map) = &volume.config_map {
        let piece = Source::piece(Kind::ConfigMap, &map.name, map.optional, &map.items);
        return Ok((vec![piece], mode(map.default_mode)));
    }
    if volume.empty_dir.is_some() {
        return Ok((vec![Piece::Writable], DEFAULT_MODE));
    }
    if let Some(downward) = &volume.downward_api {
        let items = downward.items.as_deref().unwrap_or_default();
        return Ok((vec![Piece::Fields(items)], mode(downward.default_mode)));
    }
    let Some(projected) = &volume.projected else {
        return Err(KubeletError::Pod(format!(
            "volume {}: only secret, configMap, emptyDir, downwardAPI and projected volumes are supported",
            volume.name
        )));
    };
    let mut pieces = Vec::new();
    for source in projected.sources.iter().flatten() {
        if let Some(request) = &source.service_account_token {
            pieces.push(Piece::Token(request));
        }
        if let Some(map) = &source.config_map {
            pieces.push(Source::piece(
                Kind::ConfigMap,
                &map.name,
                map.optional,
                &map.items,
            ));
        }
        if let Some(secret) = &source.secret {
            pieces.push(Source::piece(
                Kind::Secret,
                &secret.name,
                secret.optional,
                &secret.items,
            ));
        }
        if let Some(downward) = &source.downward_api {
            pieces.push(Piece::Fields(downward.items.as_deref().unwrap_or_default()));
        }
    }
    Ok((pieces, mode(projected.default_mode)))
}

async fn write_volume(
    client: &kube::Client,
    facts: &PodFacts,
    volume: &Volume,
    dir: &Path,
) -> Result<()> {
    let namespace = facts.pod.metadata.namespace.clone().unwrap_or_default();
    let (pieces, mode) = pieces(volume)?;
    for piece in pieces {
        match piece {
            Piece::Keys(source) => write_keys(client, &namespace, &source, mode, dir).await?,
            Piece::Token(request) => {
                let account = facts
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".into());
                let token = token::issue(client, &namespace, &account, request).await?;
                let path = dir.join(safe_relative(&request.path)?);
                write_file(&path, token.as_bytes(), mode)?;
            }
            Piece::Fields(items) => write_fields(facts, items, mode, dir)?,
            Piece::Writable => set_mode(dir, 0o777)?,
        }
    }
    Ok(())
}

/// A Secret's or ConfigMap's keys as files: all of them, or the `items`.
async fn write_keys(
    client: &kube::Client,
    namespace: &str,
    source: &Source<'_>,
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
    match source.items {
        None => {
            for (key, value) in &data {
                write_file(&dir.join(safe_relative(key)?), value, mode)?;
            }
            Ok(())
        }
        Some(items) => write_items(&data, items, source, mode, dir),
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
    fn an_fs_group_gets_the_volume_readable_and_its_directories_setgid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/tls.key");
        write_file(&file, b"secret", 0o400).unwrap();
        give_to_group(dir.path(), 65532, false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&file), 0o440);
        assert_eq!(mode(&dir.path().join("sub")), 0o2755);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&file).unwrap().gid(), 65532);
    }

    #[test]
    fn paths_must_stay_inside_the_volume() {
        assert!(safe_relative("ca.crt").is_ok());
        assert!(safe_relative("a/b").is_ok());
        assert!(safe_relative("../etc/passwd").is_err());
        assert!(safe_relative("/etc/passwd").is_err());
    }
}

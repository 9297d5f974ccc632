//! Local mode: manifests directory in, snapshot stream out.

use crate::manifests::watch::DirWatcher;
use crate::manifests::ManifestSet;
use crate::metrics as m;
use crate::rebuild::{ChangeSet, RebuildError, Rebuilder};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocalModeError {
    #[error("manifests directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Watch(#[from] crate::manifests::watch::WatchError),
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
}

/// Runs the rescan loop until the watcher stops. Every rescan is a full
/// rebuild: local mode is for development, where a directory is small.
pub async fn run(dir: PathBuf, mut rebuilder: Rebuilder) -> Result<(), LocalModeError> {
    let dir_error = |source| LocalModeError::Directory {
        path: dir.display().to_string(),
        source,
    };
    if !std::fs::metadata(&dir).map_err(dir_error)?.is_dir() {
        return Err(dir_error(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    // Watch before the first scan so no change between the two is missed.
    let mut watcher = DirWatcher::new(&dir)?;
    let mut set = ManifestSet::new(&dir);
    let mut duplicates = BTreeSet::new();
    rescan(&mut set, &mut duplicates, &mut rebuilder)?;
    while watcher.changed().await {
        rescan(&mut set, &mut duplicates, &mut rebuilder)?;
    }
    Ok(())
}

/// One rescan: re-read changed files, rebuild from the whole directory.
fn rescan(
    set: &mut ManifestSet,
    duplicates: &mut BTreeSet<String>,
    rebuilder: &mut Rebuilder,
) -> Result<(), LocalModeError> {
    let report = match set.rescan() {
        Ok(r) => r,
        Err(e) => {
            // The directory vanished or is unreadable: keep serving what we have.
            tracing::error!(dir = %set.root().display(), "cannot list manifests: {e}; keeping the last snapshot");
            return Ok(());
        }
    };
    for e in &report.new_errors {
        tracing::error!("manifest skipped: {e}");
    }
    metrics::gauge!(m::MANIFEST_ERRORS).set(set.errors().count() as f64);
    metrics::gauge!(m::MANIFEST_FILES).set(set.file_count() as f64);
    let (state, found) = set.state();
    for d in &found {
        if !duplicates.contains(d) {
            tracing::warn!("{d}");
        }
    }
    *duplicates = found.into_iter().collect();
    if report.changed > 0 || !rebuilder.has_snapshot() {
        rebuilder.rebuild(&state, &ChangeSet::everything())?;
    }
    Ok(())
}

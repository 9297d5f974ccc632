//! Local mode: manifests directory in, snapshot stream out.

use crate::manifests::watch::DirWatcher;
use crate::manifests::ManifestSet;
use crate::publisher::Publisher;
use crate::report::DiagnosticLog;
use crate::translate::{translate, TranslateConfig};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum LocalModeError {
    #[error("manifests directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Watch(#[from] crate::manifests::watch::WatchError),
    #[error("cannot serialize snapshot: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Runs the rebuild loop until the watcher stops.
pub async fn run(
    dir: PathBuf,
    config: TranslateConfig,
    mut publisher: Publisher,
) -> Result<(), LocalModeError> {
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
    let mut rebuild = Rebuild::default();
    rebuild.run(&mut set, &config, &mut publisher)?;
    while watcher.changed().await {
        rebuild.run(&mut set, &config, &mut publisher)?;
    }
    Ok(())
}

/// One rebuild: rescan, translate, publish; with its logging state.
#[derive(Default)]
struct Rebuild {
    diagnostics: DiagnosticLog,
    duplicates: BTreeSet<String>,
}

impl Rebuild {
    fn run(
        &mut self,
        set: &mut ManifestSet,
        config: &TranslateConfig,
        publisher: &mut Publisher,
    ) -> Result<(), LocalModeError> {
        let started = Instant::now();
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
        metrics::gauge!("gatehouse_controller_manifest_errors").set(set.errors().count() as f64);
        metrics::gauge!("gatehouse_controller_manifest_files").set(set.file_count() as f64);
        let (state, duplicates) = set.state();
        for d in &duplicates {
            if !self.duplicates.contains(d) {
                tracing::warn!("{d}");
            }
        }
        self.duplicates = duplicates.into_iter().collect();
        for (kind, n) in state.counts() {
            metrics::gauge!("gatehouse_controller_objects", "kind" => kind).set(n as f64);
        }
        let config = TranslateConfig {
            now: unix_now(),
            ..config.clone()
        };
        let translation = translate(&state, &config);
        self.diagnostics.update(&translation.diagnostics);
        let routes: usize = translation
            .snapshot
            .virtual_hosts
            .iter()
            .map(|v| v.routes.len())
            .sum();
        let published = publisher.publish(translation.snapshot)?;
        let elapsed = started.elapsed();
        metrics::histogram!("gatehouse_controller_rebuild_seconds").record(elapsed.as_secs_f64());
        if let Some(version) = published {
            metrics::gauge!("gatehouse_controller_snapshot_version").set(version as f64);
            tracing::info!(
                version,
                ingresses = translation.served_ingresses.len(),
                routes,
                changed_files = report.changed,
                elapsed_ms = elapsed.as_millis() as u64,
                "published snapshot"
            );
        }
        Ok(())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

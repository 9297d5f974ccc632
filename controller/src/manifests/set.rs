//! The parsed contents of a manifests directory, re-read file by file as files
//! change. A file that fails to parse is reported and left out; every other
//! file keeps being served.

use super::parse::{parse_manifest, ManifestObject};
use crate::state::{ClusterState, Kind, ObjectKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies a file version without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: meta.ino(),
        }
    }
}

#[derive(Debug)]
struct FileEntry {
    stamp: FileStamp,
    /// The objects of the last version that parsed (none if none ever did).
    objects: Vec<ManifestObject>,
    /// Why the current version is not used, if it is not.
    error: Option<String>,
}

/// What a rescan found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RescanReport {
    /// Files added, changed or removed.
    pub changed: usize,
    /// Errors in the files that changed (already-known errors are not repeated).
    pub new_errors: Vec<String>,
}

/// The manifests under one directory.
#[derive(Debug)]
pub struct ManifestSet {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileEntry>,
}

/// Whether a path is a manifest by its extension.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

impl ManifestSet {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ManifestSet {
            root: root.into(),
            files: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Re-lists the directory and re-reads only files whose stamp changed.
    pub fn rescan(&mut self) -> std::io::Result<RescanReport> {
        let mut found = BTreeMap::new();
        list_files(&self.root, &mut found)?;
        let mut report = RescanReport::default();
        let before = self.files.len();
        self.files.retain(|p, _| found.contains_key(p));
        report.changed += before - self.files.len();
        for (path, stamp) in found {
            if self.files.get(&path).is_some_and(|e| e.stamp == stamp) {
                continue;
            }
            report.changed += 1;
            let parsed = match std::fs::read_to_string(&path) {
                Ok(text) => parse_manifest(&path, &text).map_err(|e| e.to_string()),
                Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
            };
            let entry = match parsed {
                Ok(objects) => FileEntry {
                    stamp,
                    objects,
                    error: None,
                },
                Err(e) => {
                    // A file that breaks while being edited keeps serving its
                    // last good version; a file never good serves nothing.
                    let objects = self
                        .files
                        .remove(&path)
                        .map(|old| old.objects)
                        .unwrap_or_default();
                    let kept = if objects.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (its last good version, {} objects, stays in use)",
                            objects.len()
                        )
                    };
                    report.new_errors.push(format!("{e}{kept}"));
                    FileEntry {
                        stamp,
                        objects,
                        error: Some(e),
                    }
                }
            };
            self.files.insert(path, entry);
        }
        Ok(report)
    }

    /// Files whose current version is not in use, with their errors.
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.files.values().filter_map(|e| e.error.as_deref())
    }

    /// Number of manifest files seen.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Builds the cluster state. An object defined in two files is taken from
    /// the first file in path order; the duplicates are returned as warnings.
    pub fn state(&self) -> (ClusterState, Vec<String>) {
        let mut state = ClusterState::default();
        let mut origin: BTreeMap<(Kind, ObjectKey), &Path> = BTreeMap::new();
        let mut warnings = Vec::new();
        for (path, entry) in &self.files {
            for obj in &entry.objects {
                let key = obj.key();
                if let Some(first) = origin.get(&(obj.kind(), key.clone())) {
                    warnings.push(format!(
                        "{}: {} {key} is already defined in {}; this copy is ignored",
                        path.display(),
                        obj.kind(),
                        first.display()
                    ));
                    continue;
                }
                origin.insert((obj.kind(), key), path);
                state.insert(obj.clone());
            }
        }
        (state, warnings)
    }
}

/// Recursively lists manifest files, skipping hidden files and directories
/// (editor swap files, `..data` symlink farms of mounted ConfigMaps).
fn list_files(dir: &Path, out: &mut BTreeMap<PathBuf, FileStamp>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        // Follow symlinks: metadata() not symlink_metadata().
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // dangling link or removed meanwhile
        };
        if meta.is_dir() {
            list_files(&path, out)?;
        } else if meta.is_file() && is_manifest(&path) {
            out.insert(path, FileStamp::of(&meta));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n";

    #[test]
    fn broken_file_is_left_out_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), SVC).unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: [").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let mut set = ManifestSet::new(dir.path());
        let report = set.rescan().unwrap();
        assert_eq!(report.changed, 2);
        assert_eq!(report.new_errors.len(), 1);
        assert!(
            report.new_errors[0].contains("b.yaml:"),
            "{:?}",
            report.new_errors
        );
        let (state, warnings) = set.state();
        assert_eq!(state.services.len(), 1);
        assert!(warnings.is_empty());
        // Nothing changed: nothing re-read, no error repeated.
        assert_eq!(set.rescan().unwrap(), RescanReport::default());
    }

    #[test]
    fn file_broken_by_an_edit_keeps_its_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.yaml");
        std::fs::write(&f, SVC).unwrap();
        let mut set = ManifestSet::new(dir.path());
        set.rescan().unwrap();
        std::fs::write(&f, "apiVersion: v1\nkind: Service\nmetadata: {name: [\n").unwrap();
        let report = set.rescan().unwrap();
        assert_eq!(report.new_errors.len(), 1);
        assert!(
            report.new_errors[0].contains("stays in use"),
            "{:?}",
            report.new_errors
        );
        assert_eq!(set.errors().count(), 1);
        assert_eq!(set.state().0.services.len(), 1);
        // Fixed again: the error is gone.
        std::fs::write(&f, SVC.replace("name: a", "name: b")).unwrap();
        set.rescan().unwrap();
        assert_eq!(set.errors().count(), 0);
        assert!(set
            .state()
            .0
            .services
            .contains_key(&ObjectKey::new("default", "b")));
    }

    #[test]
    fn duplicates_keep_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), SVC).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.yml"), SVC).unwrap();
        let mut set = ManifestSet::new(dir.path());
        set.rescan().unwrap();
        let (state, warnings) = set.state();
        assert_eq!(state.services.len(), 1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("sub/b.yml"), "{warnings:?}");
    }

    #[test]
    fn removed_file_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.yaml");
        std::fs::write(&f, SVC).unwrap();
        let mut set = ManifestSet::new(dir.path());
        set.rescan().unwrap();
        std::fs::remove_file(&f).unwrap();
        assert_eq!(set.rescan().unwrap().changed, 1);
        assert!(set.state().0.services.is_empty());
    }
}

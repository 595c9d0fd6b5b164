//! The failures phasecheck injects, as one enum.
//!
//! A scenario says *what* goes wrong ([`Fault`]); the scenario context realises it on the runtime
//! and the backup services it has. Volume corruption is realised here, on a copy of the volume,
//! in the subject's terms: its dataset root and layout, never an ignored path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::subject::{DataSpec, Layout};

/// Errors realising a fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dataset to corrupt has no file of the kind the mode needs.
    #[error("cannot {mode} in {dir}: {problem}")]
    NothingToCorrupt {
        /// The corruption.
        mode: CorruptionMode,
        /// The dataset directory.
        dir: PathBuf,
        /// Why not.
        problem: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a scenario breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Remove everything on the data volume (workload stopped).
    EmptyVolume,
    /// Damage the dataset on the volume (workload stopped).
    CorruptVolume {
        /// How.
        mode: CorruptionMode,
    },
    /// Alter a file of the newest backup in the store so that it fails verification.
    CorruptLatestBackup,
    /// Remove the newest backup from the store.
    DeleteLatestBackup,
    /// Make the backup store unreachable.
    StoreDown,
    /// Make the backup store reachable again.
    StoreUp,
    /// Slow the backup store down: what it sends shares `bytes_per_sec`, and each request waits
    /// `latency` first (embedded stores).
    SlowStore {
        /// Bandwidth of everything the store sends.
        bytes_per_sec: u64,
        /// Pause before each request.
        latency: Duration,
    },
    /// Let the backup store run at full speed again.
    StoreFullSpeed,
    /// SIGKILL a container's current process.
    KillContainer {
        /// Container name.
        name: String,
    },
    /// Delete the pod (its owner creates a new one).
    DeletePod,
    /// Kill the restore init container once it has begun restoring.
    KillInitMidRestore,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::EmptyVolume => f.write_str("empty the data volume"),
            Fault::CorruptVolume { mode } => write!(f, "corrupt the volume ({mode})"),
            Fault::CorruptLatestBackup => f.write_str("corrupt the newest backup"),
            Fault::DeleteLatestBackup => f.write_str("delete the newest backup"),
            Fault::StoreDown => f.write_str("take the backup store down"),
            Fault::StoreUp => f.write_str("bring the backup store back"),
            Fault::SlowStore {
                bytes_per_sec,
                latency,
            } => write!(
                f,
                "slow the backup store down ({} kB/s, {} ms per request)",
                bytes_per_sec / 1000,
                latency.as_millis()
            ),
            Fault::StoreFullSpeed => f.write_str("let the backup store run at full speed"),
            Fault::KillContainer { name } => write!(f, "kill container `{name}`"),
            Fault::DeletePod => f.write_str("delete the pod"),
            Fault::KillInitMidRestore => f.write_str("kill the restore mid-way"),
        }
    }
}

/// Ways to damage a dataset on the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptionMode {
    /// Cut a file to half its length.
    TruncateFile,
    /// Flip the bits of one byte in a file.
    FlipBytes,
    /// Delete a file listed in the manifest.
    DeleteFile,
    /// Delete the layout's integrity marker (phasepod's `manifest.json`); only for layouts that
    /// have one.
    MissingManifest,
}

impl CorruptionMode {
    /// The modes that apply to `layout`: the integrity marker only where there is one.
    pub fn for_layout(layout: Layout) -> Vec<CorruptionMode> {
        Self::ALL
            .into_iter()
            .filter(|m| *m != CorruptionMode::MissingManifest || layout.has_integrity_marker())
            .collect()
    }

    /// Every mode, in the order the catalog lists them.
    pub const ALL: [CorruptionMode; 4] = [
        CorruptionMode::TruncateFile,
        CorruptionMode::FlipBytes,
        CorruptionMode::DeleteFile,
        CorruptionMode::MissingManifest,
    ];
}

impl fmt::Display for CorruptionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CorruptionMode::TruncateFile => "truncate a file",
            CorruptionMode::FlipBytes => "flip bytes in a file",
            CorruptionMode::DeleteFile => "delete a file",
            CorruptionMode::MissingManifest => "delete the manifest",
        })
    }
}

/// Damages the dataset of `data` on a copy of the volume at `volume`: cuts, flips or deletes the
/// first non-empty dataset file (in path order, never an ignored one; for layout `sqlite` the
/// database file), or deletes the integrity marker of a layout that has one.
pub fn corrupt_dataset(volume: &Path, data: &DataSpec, mode: CorruptionMode) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let root = volume.join(&data.root);
    let files_root = match data.layout {
        Layout::Phasepod => root.join("files"),
        Layout::Plain | Layout::Sqlite => root.clone(),
    };
    if mode == CorruptionMode::MissingManifest {
        if !data.layout.has_integrity_marker() {
            return Err(Error::NothingToCorrupt {
                mode,
                dir: root,
                problem: "the layout has no integrity marker".into(),
            });
        }
        let manifest = root.join("manifest.json");
        return std::fs::remove_file(&manifest).map_err(io(&manifest));
    }
    // NB: a database is one file: the victim is the database itself.
    let victim = if data.layout.is_one_file() {
        std::fs::metadata(&root)
            .is_ok_and(|m| m.is_file() && m.len() > 1)
            .then(|| root.clone())
    } else {
        first_non_empty_file(&files_root, &files_root, &|p| data.is_ignored(p))
            .map_err(io(&files_root))?
    };
    let victim = victim.ok_or_else(|| Error::NothingToCorrupt {
        mode,
        dir: files_root.clone(),
        problem: "no non-empty dataset file".into(),
    })?;
    match mode {
        CorruptionMode::TruncateFile => {
            let len = std::fs::metadata(&victim).map_err(io(&victim))?.len();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&victim)
                .map_err(io(&victim))?;
            file.set_len(len / 2).map_err(io(&victim))
        }
        CorruptionMode::FlipBytes => {
            let mut bytes = std::fs::read(&victim).map_err(io(&victim))?;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&victim, bytes).map_err(io(&victim))
        }
        CorruptionMode::DeleteFile => std::fs::remove_file(&victim).map_err(io(&victim)),
        CorruptionMode::MissingManifest => unreachable!("handled above"),
    }
}

/// Removes everything inside `dir`, keeping `dir` itself (a wiped volume is still mounted).
pub fn empty_directory(dir: &Path) -> Result<()> {
    let io = |path: &Path, source| Error::Io {
        path: path.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
        } else {
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

fn first_non_empty_file(
    root: &Path,
    dir: &Path,
    ignored: &dyn Fn(&str) -> bool,
) -> std::io::Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("walked under root")
            .to_string_lossy()
            .into_owned();
        if ignored(&rel) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            if let Some(found) = first_non_empty_file(root, &path, ignored)? {
                return Ok(Some(found));
            }
        } else if entry.metadata()?.len() > 1 {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;

    fn data(layout: Layout, root: &str) -> DataSpec {
        DataSpec {
            volume: "data".into(),
            mount_path: "/data".into(),
            claim: None,
            root: root.into(),
            layout,
            ignore: vec![".git/**".into()],
        }
    }

    fn dataset_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        Dataset::generated("d", 3, 64)
            .write_files(&dir.path().join("current/files"))
            .unwrap();
        std::fs::write(dir.path().join("current/manifest.json"), b"{}").unwrap();
        dir
    }

    #[test]
    fn every_corruption_mode_changes_the_dataset() {
        let data = data(Layout::Phasepod, "current");
        for mode in CorruptionMode::for_layout(Layout::Phasepod) {
            let dir = dataset_dir();
            let before = crate::dataset::Snapshot::of(dir.path()).unwrap();
            corrupt_dataset(dir.path(), &data, mode).unwrap();
            let after = crate::dataset::Snapshot::of(dir.path()).unwrap();
            assert!(before.first_difference(&after).is_some(), "{mode}");
        }
    }

    #[test]
    fn a_plain_layout_is_corrupted_in_its_files_never_in_ignored_ones_and_has_no_marker() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), b"ref: refs/heads/main").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hello world").unwrap();
        let data = data(Layout::Plain, "");
        assert_eq!(
            CorruptionMode::for_layout(Layout::Plain),
            [
                CorruptionMode::TruncateFile,
                CorruptionMode::FlipBytes,
                CorruptionMode::DeleteFile
            ]
        );
        corrupt_dataset(dir.path(), &data, CorruptionMode::TruncateFile).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("notes.txt")).unwrap(),
            b"hello"
        );
        assert_eq!(
            std::fs::read(dir.path().join(".git/HEAD")).unwrap(),
            b"ref: refs/heads/main"
        );
        assert!(corrupt_dataset(dir.path(), &data, CorruptionMode::MissingManifest).is_err());
    }

    #[test]
    fn a_sqlite_layout_is_corrupted_in_its_database_file() {
        let data = data(Layout::Sqlite, "db/app.db");
        for mode in CorruptionMode::for_layout(Layout::Sqlite) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("db")).unwrap();
            std::fs::write(dir.path().join("db/app.db"), b"SQLite format 3\0pages").unwrap();
            std::fs::write(dir.path().join("db/other"), b"left alone").unwrap();
            let before = crate::dataset::Snapshot::of(dir.path()).unwrap();
            corrupt_dataset(dir.path(), &data, mode).unwrap();
            let after = crate::dataset::Snapshot::of(dir.path()).unwrap();
            assert!(before.first_difference(&after).is_some(), "{mode}");
            assert_eq!(
                std::fs::read(dir.path().join("db/other")).unwrap(),
                b"left alone"
            );
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(corrupt_dataset(empty.path(), &data, CorruptionMode::FlipBytes).is_err());
    }

    #[test]
    fn emptying_a_directory_keeps_the_directory() {
        let dir = dataset_dir();
        empty_directory(dir.path()).unwrap();
        assert!(dir.path().is_dir());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

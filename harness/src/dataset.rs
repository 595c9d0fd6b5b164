//! Datasets the scenarios seed, write and expect, and byte-level snapshots of a volume.
//!
//! A [`Dataset`] is the content a phased workload holds: relative paths and bytes. Scenarios
//! generate them deterministically from a label, so two datasets with different labels never
//! share a file's content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The size of [`Dataset::realistic`]'s large file: 8 MiB and a bit, past the part sizes of S3
/// multipart uploads and the buffers of streaming copies.
pub const LARGE_FILE_BYTES: usize = 8 * 1024 * 1024 + 4099;

/// Content of a dataset: relative path → bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    /// Files by relative path (`/`-separated).
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Dataset {
    /// No files at all (what a fresh start serves).
    pub fn empty() -> Self {
        Self::default()
    }

    /// `count` files of about `size` bytes each, content derived from `label`.
    pub fn generated(label: &str, count: usize, size: usize) -> Self {
        let mut files = BTreeMap::new();
        for i in 0..count {
            let path = format!("{label}-{i:04}.bin");
            files.insert(path.clone(), pseudo_random_bytes(&path, size + i % 97));
        }
        Dataset { files }
    }

    /// Files of the kinds real defects hide in, content derived from `label`: hidden files and
    /// directories, an empty file, names with spaces and non-ASCII characters, nesting six
    /// levels deep, and one file of [`LARGE_FILE_BYTES`] (past multipart and streaming
    /// boundaries), plus `count` ordinary files.
    pub fn realistic(label: &str, count: usize) -> Self {
        let mut files = Dataset::generated(label, count, 1500).files;
        let mut add = |path: String, len: usize| {
            let bytes = pseudo_random_bytes(&format!("{label}:{path}"), len);
            files.insert(path, bytes);
        };
        add(".config".into(), 300);
        add(format!(".hidden/{label}.conf"), 200);
        add(format!("{label}-empty"), 0);
        add(format!("with space/{label} ü née.txt"), 700);
        add(format!("a/b/c/d/e/f/{label}-deep.bin"), 900);
        add(format!("{label}-large.bin"), LARGE_FILE_BYTES);
        Dataset { files }
    }

    /// The same files, spread over nested directories (`a/`, `a/b/`).
    pub fn with_nested_paths(self) -> Self {
        let files = self
            .files
            .into_iter()
            .enumerate()
            .map(|(i, (path, bytes))| {
                let nested = match i % 3 {
                    0 => path,
                    1 => format!("a/{path}"),
                    _ => format!("a/b/{path}"),
                };
                (nested, bytes)
            })
            .collect();
        Dataset { files }
    }

    /// This dataset with `other`'s files added (other's win on the same path).
    pub fn merged(&self, other: &Dataset) -> Self {
        let mut files = self.files.clone();
        files.extend(other.files.clone());
        Dataset { files }
    }

    /// SHA-256 hex digest of each file.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .map(|(path, bytes)| (path.clone(), hex::encode(Sha256::digest(bytes))))
            .collect()
    }

    /// Writes the files under `files_dir`, creating directories.
    pub fn write_files(&self, files_dir: &Path) -> std::io::Result<()> {
        for (path, bytes) in &self.files {
            let target = files_dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, bytes)?;
        }
        Ok(())
    }
}

/// Deterministic bytes for a seed: xorshift64* seeded from the seed's SHA-256 (fast in debug
/// builds too, so datasets of many MiB cost milliseconds; not for anything cryptographic).
pub fn pseudo_random_bytes(seed: &str, len: usize) -> Vec<u8> {
    let digest = Sha256::digest(seed.as_bytes());
    let mut state = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every regular file under a directory with its bytes and modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    root: PathBuf,
    entries: BTreeMap<String, (Vec<u8>, Option<SystemTime>)>,
}

impl Snapshot {
    /// Reads every regular file under `root` (missing root = empty snapshot).
    pub fn of(root: &Path) -> std::io::Result<Self> {
        let mut entries = BTreeMap::new();
        if root.exists() {
            collect(root, root, &mut entries)?;
        }
        Ok(Snapshot {
            root: root.to_owned(),
            entries,
        })
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no files.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first difference from `later`, in words; `None` when byte-for-byte and mtime equal.
    pub fn first_difference(&self, later: &Snapshot) -> Option<String> {
        for (path, (bytes, mtime)) in &self.entries {
            match later.entries.get(path) {
                None => return Some(format!("{path} was removed")),
                Some((later_bytes, _)) if later_bytes != bytes => {
                    return Some(format!("{path} changed content"));
                }
                Some((_, later_mtime)) if later_mtime != mtime => {
                    return Some(format!("{path} was rewritten (modification time changed)"));
                }
                Some(_) => {}
            }
        }
        later
            .entries
            .keys()
            .find(|path| !self.entries.contains_key(*path))
            .map(|path| format!("{path} was added"))
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, (Vec<u8>, Option<SystemTime>)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("walked under root")
                .to_string_lossy()
                .into_owned();
            let mtime = entry.metadata()?.modified().ok();
            out.insert(rel, (std::fs::read(&path)?, mtime));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_datasets_differ_by_label_and_repeat_by_label() {
        let a = Dataset::generated("a", 3, 100);
        assert_eq!(a, Dataset::generated("a", 3, 100));
        let b = Dataset::generated("b", 3, 100);
        assert!(
            a.digests()
                .values()
                .all(|d| !b.digests().values().any(|e| e == d))
        );
    }

    #[test]
    fn a_realistic_dataset_has_the_cases_defects_hide_in() {
        let d = Dataset::realistic("r", 3);
        let paths: Vec<&String> = d.files.keys().collect();
        assert!(paths.iter().any(|p| p.starts_with('.')), "{paths:?}");
        assert!(d.files.values().any(Vec::is_empty));
        assert!(paths.iter().any(|p| p.contains(' ') && !p.is_ascii()));
        assert!(paths.iter().any(|p| p.matches('/').count() >= 5));
        assert!(d.files.values().any(|b| b.len() >= 8 * 1024 * 1024));
        assert_eq!(d, Dataset::realistic("r", 3));
    }

    #[test]
    fn a_snapshot_notices_content_and_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        Dataset::generated("x", 2, 10)
            .write_files(dir.path())
            .unwrap();
        let before = Snapshot::of(dir.path()).unwrap();
        assert_eq!(
            before.first_difference(&Snapshot::of(dir.path()).unwrap()),
            None
        );
        std::fs::write(dir.path().join("x-0000.bin"), b"other").unwrap();
        let after = Snapshot::of(dir.path()).unwrap();
        assert!(
            before
                .first_difference(&after)
                .unwrap()
                .contains("x-0000.bin")
        );
    }
}

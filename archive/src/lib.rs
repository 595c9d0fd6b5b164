//! A directory's files as a tar archive: how the harness reads and replaces a data volume.
//!
//! The archive is the one the cluster's claim helper speaks (`phasecheck-tools pack` /
//! `replace` in the tools image, `phasecheck/tools:dev`): a GNU tar stream of everything under
//! the directory, paths relative to it, entries of each directory in name order, symlinks stored
//! as links, full headers (mode, owner, modification time). This crate is the only
//! implementation: the harness (as `harness::archive`) and the helper program both call it, and
//! the Docker tier (`harness/tests/docker.rs`) checks the built image against it.
//!
//! Plain `std::io` errors: the caller knows which directory and why (see `as_runtime`).

use std::io::{self, Read, Write};
use std::path::Path;

/// Writes a tar archive of everything under `dir` (paths relative to it, modification times
/// kept) to `out`; returns `out`.
pub fn pack_dir<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            builder.append_dir_all(&name, &path)?;
        } else {
            builder.append_path_with_name(&path, &name)?;
        }
    }
    builder.into_inner()
}

/// Writes a tar archive of several trees to `out`: each `(name, path)` is the directory or file
/// at `path`, stored under `name` (e.g. a container's mount `data` from its host directory).
/// Paths that do not exist are left out. Returns `out`.
pub fn pack_trees<W: Write>(trees: &[(String, std::path::PathBuf)], out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    for (name, path) in trees {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => builder.append_dir_all(name, path)?,
            Ok(_) => builder.append_path_with_name(path, name)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    builder.into_inner()
}

/// Empties `dir` (keeping `dir` itself) and unpacks the archive from `input` into it, with the
/// archive's modification times and permissions.
pub fn replace_dir<R: Read>(dir: &Path, input: R) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_mtime(true);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(dir)
}

/// Regular files under `dir` (which may not exist: 0), counting no further than `limit`.
pub fn count_files(dir: &Path, limit: usize) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => count += 1,
                _ => {}
            }
            if count >= limit {
                return count;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_packed_directory_replaces_another_with_the_same_files_and_times() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("current/files/a")).unwrap();
        std::fs::write(from.path().join("current/files/a/x.bin"), b"xyz").unwrap();
        std::fs::write(from.path().join("top.txt"), b"top").unwrap();
        let archive = pack_dir(from.path(), Vec::new()).unwrap();

        let to = tempfile::tempdir().unwrap();
        std::fs::write(to.path().join("stale"), b"old").unwrap();
        replace_dir(to.path(), &archive[..]).unwrap();
        assert!(!to.path().join("stale").exists());
        assert_eq!(
            std::fs::read(to.path().join("current/files/a/x.bin")).unwrap(),
            b"xyz"
        );
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().mtime();
        assert_eq!(
            mtime(&to.path().join("top.txt")),
            mtime(&from.path().join("top.txt"))
        );
        assert_eq!(count_files(to.path(), 10), 2);
        assert_eq!(count_files(to.path(), 1), 1);
        assert_eq!(count_files(&to.path().join("missing"), 10), 0);
    }

    #[test]
    fn an_empty_archive_empties_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("current/files")).unwrap();
        std::fs::write(dir.path().join("current/files/f"), b"f").unwrap();
        let empty = tar::Builder::new(Vec::new()).into_inner().unwrap();
        replace_dir(dir.path(), &empty[..]).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

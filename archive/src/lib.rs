//! A directory's files as a tar archive: how the harness reads and replaces a data volume.
//!
//! The archive is the one the cluster's claim helper speaks (`phasecheck-tools pack` /
//! `replace` in the tools image, `phasecheck/tools:dev`): a GNU tar stream of everything under
//! the directory, paths relative to it, entries of each directory in name order, symlinks stored
//! as links, full headers (mode, owner, modification time). This crate is the only
//! implementation: the harness (as `harness::archive`) and the helper program both call it, and
//! the Docker tier (`harness/tests/docker.rs`) checks the built image against it.
//!
//! Plain `std::io` errors: the caller knows which directory and why (the runtimes' claim code).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Writes a tar archive of everything under `dir` (paths relative to it, modification times
/// kept) to `out`; returns `out`. A live directory may be packed: each file is read whole before
/// its header is written, so a file a workload grows or truncates meanwhile is stored as read,
/// and an entry that vanishes meanwhile is left out.
pub fn pack_dir<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    let mut builder = builder(out);
    for entry in sorted_entries(dir)? {
        append_tree(&mut builder, Path::new(&entry.file_name()), &entry.path())?;
    }
    builder.into_inner()
}

/// Writes a tar archive of several trees to `out`: each `(name, path)` is the directory or file
/// at `path`, stored under `name` (e.g. a container's mount `data` from its host directory).
/// Paths that do not exist are left out. Returns `out`.
pub fn pack_trees<W: Write>(trees: &[(String, PathBuf)], out: W) -> io::Result<W> {
    let mut builder = builder(out);
    for (name, path) in trees {
        append_tree(&mut builder, Path::new(name), path)?;
    }
    builder.into_inner()
}

fn builder<W: Write>(out: W) -> tar::Builder<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    builder
}

/// `dir`'s entries in name order.
fn sorted_entries(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// Appends the directory (with everything under it), file or link at `path` as `name`. A
/// workload may be writing there (a database's WAL grows and is truncated): each file is read
/// whole before its header is written, so its header always matches the bytes stored, and an
/// entry that vanishes meanwhile is left out.
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &Path,
    path: &Path,
) -> io::Result<()> {
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if gone(&e) => return Ok(()),
        other => other?,
    };
    if meta.is_dir() {
        builder.append_dir(name, path)?;
        let entries = match sorted_entries(path) {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        };
        for entry in entries {
            append_tree(builder, &name.join(entry.file_name()), &entry.path())?;
        }
        Ok(())
    } else if meta.is_file() {
        let bytes = match std::fs::read(path) {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        };
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, name, &bytes[..])
    } else {
        builder.append_path_with_name(path, name)
    }
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
    fn a_directory_a_workload_writes_meanwhile_packs_into_an_archive_that_unpacks() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("app.db-wal");
        std::fs::write(&wal, b"").unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let writer = {
            let (wal, stop) = (wal.clone(), stop.clone());
            std::thread::spawn(move || {
                // NB: grows the file and cuts it back, as SQLite does with its WAL.
                let mut round = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let mut file = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
                    file.write_all(&[7u8; 4096]).unwrap();
                    round += 1;
                    if round.is_multiple_of(64) {
                        file.set_len(0).unwrap();
                    }
                }
            })
        };
        for _ in 0..200 {
            let archive = pack_dir(dir.path(), Vec::new()).unwrap();
            let to = tempfile::tempdir().unwrap();
            replace_dir(to.path(), &archive[..]).unwrap();
            let copy = std::fs::read(to.path().join("app.db-wal")).unwrap();
            assert!(
                copy.iter().all(|b| *b == 7),
                "only bytes the workload wrote"
            );
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
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

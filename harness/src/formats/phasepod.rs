//! phasepod's layout, written and verified by the harness's own code from docs/CONTRACTS.md
//! ("Dataset and backup layout") — never by phasepod's library, so that a bug in phasepod's
//! store layer cannot sit on both sides of a check.
//!
//! - A **dataset directory** holds `manifest.json` and `files/**` ([`write_dataset_dir`],
//!   [`read_dataset_dir`]).
//! - **S3**: `{prefix}data/{id}/manifest.json`, `{prefix}data/{id}/files/{path}` and the
//!   completion marker `{prefix}index/{id}` (the manifest's SHA-256), written last.
//! - **git**: one commit per backup on the branch, tree = `manifest.json` + `files/**`, message
//!   `phasepod backup {id}`; the first-parent chain from the tip lists backups newest first.
//!
//! `harness/tests/phasepod_contract.rs` checks that this code and phasepod's agree, both ways.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::time::{backup_time, id_of, parse_id};
use super::{BackupFormat, BackupInfo, Error, FormatKind, Result, StoreLocation};
use crate::dataset::Dataset;
use crate::remote::git::{Session, session};
use crate::remote::s3::{CONCURRENCY, S3Client};
use crate::remote::{GitLocation, S3Location};

/// The manifest's file name in a dataset directory, a backup and a backup's tree.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The directory of the dataset's files.
pub const FILES_DIR: &str = "files";
/// The manifest format this module reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;
/// A backup commit's message is this, then the backup ID.
pub const MESSAGE_PREFIX: &str = "phasepod backup ";

/// The message of the commit left on a branch whose last backup was deleted, when the server
/// refuses to delete the branch (not a backup: readers skip it).
const NO_BACKUPS_MESSAGE: &str = "phasecheck: every backup deleted";

/// phasepod's layout (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Phasepod;

/// `manifest.json` as the contract defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    generation: u64,
    created: String,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The manifest of `dataset` at `generation`, created at `created`, as written: pretty JSON and
/// a trailing newline.
fn manifest_bytes(dataset: &Dataset, generation: u64, created: DateTime<Utc>) -> Vec<u8> {
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        generation,
        created: created.to_rfc3339_opts(SecondsFormat::Millis, true),
        // NB: a BTreeMap of Strings iterates in byte order: the contract's order.
        files: dataset
            .files
            .iter()
            .map(|(path, bytes)| FileEntry {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    bytes.push(b'\n');
    bytes
}

/// Why `path` is not a dataset path: `/`-separated non-empty segments, no `.` or `..`, no
/// backslash or control character.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') {
        return Err(format!("{path:?}: not a relative path"));
    }
    if path.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(format!("{path:?}: backslash or control character"));
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!("{path:?}: empty, `.` or `..` segment"));
    }
    Ok(())
}

/// Parses and checks a manifest; `Err` is the reason, prefixed `manifest.json: `.
fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let bad = |why: String| format!("{MANIFEST_FILE}: {why}");
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(bad(format!(
            "format {} (expected {MANIFEST_FORMAT})",
            manifest.format
        )));
    }
    DateTime::parse_from_rfc3339(&manifest.created)
        .map_err(|e| bad(format!("created {:?}: {e}", manifest.created)))?;
    for (i, entry) in manifest.files.iter().enumerate() {
        check_path(&entry.path).map_err(|e| bad(format!("files[{i}]: {e}")))?;
        if entry.sha256.len() != 64
            || !entry
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad(format!(
                "files[{i}] {}: sha256 is not 64 lowercase hex digits",
                entry.path
            )));
        }
        if i > 0 && manifest.files[i - 1].path.as_bytes() >= entry.path.as_bytes() {
            return Err(bad(format!(
                "files[{i}] {}: paths not in byte order or not unique",
                entry.path
            )));
        }
    }
    Ok(manifest)
}

/// Checks `content` against `entry`: the reason when it does not match.
fn check_content(entry: &FileEntry, content: &[u8]) -> Result<(), String> {
    if content.len() as u64 != entry.size {
        return Err(format!(
            "{FILES_DIR}/{}: size {}, manifest says {}",
            entry.path,
            content.len(),
            entry.size
        ));
    }
    if sha256_hex(content) != entry.sha256 {
        return Err(format!("{FILES_DIR}/{}: sha256 mismatch", entry.path));
    }
    Ok(())
}

// ----- dataset directories ---------------------------------------------------------------------

/// Writes `dataset` as a valid dataset of `generation` into `dir` (created; it should be empty):
/// `files/**` first, `manifest.json` last.
pub fn write_dataset_dir(dir: &Path, dataset: &Dataset, generation: u64) -> Result<()> {
    let files = dir.join(FILES_DIR);
    std::fs::create_dir_all(&files).map_err(Error::local("create", &files))?;
    dataset
        .write_files(&files)
        .map_err(Error::local("write the files under", &files))?;
    let manifest = dir.join(MANIFEST_FILE);
    std::fs::write(
        &manifest,
        manifest_bytes(dataset, generation, super::time::millis(Utc::now())),
    )
    .map_err(Error::local("write", &manifest))
}

/// The dataset in directory `dir` if it is valid: the manifest parses, every listed file is a
/// regular file with the listed size and SHA-256, and nothing but directories is unlisted under
/// `files/`. [`Error::InvalidDirectory`] says why not.
pub fn read_dataset_dir(dir: &Path) -> Result<Dataset> {
    let invalid = |reason: String| Error::InvalidDirectory {
        dir: dir.to_owned(),
        reason,
    };
    let bytes = match std::fs::read(dir.join(MANIFEST_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid(format!("{MANIFEST_FILE}: missing")));
        }
        Err(e) => return Err(invalid(format!("{MANIFEST_FILE}: unreadable: {e}"))),
    };
    let manifest = parse_manifest(&bytes).map_err(invalid)?;
    let files = dir.join(FILES_DIR);
    let mut dataset = Dataset::empty();
    for entry in &manifest.files {
        let path = files.join(&entry.path);
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if !is_file {
            return Err(invalid(format!("{FILES_DIR}/{}: missing", entry.path)));
        }
        let content = std::fs::read(&path)
            .map_err(|e| invalid(format!("{FILES_DIR}/{}: unreadable: {e}", entry.path)))?;
        check_content(entry, &content).map_err(invalid)?;
        dataset.files.insert(entry.path.clone(), content);
    }
    let listed: BTreeSet<&str> = manifest.files.iter().map(|e| e.path.as_str()).collect();
    if let Some(extra) = unlisted(&files, "", &listed).map_err(invalid)? {
        return Err(invalid(format!(
            "{FILES_DIR}/{extra}: not listed in the manifest"
        )));
    }
    Ok(dataset)
}

/// The first thing under `root/rel` that is not a directory and not in `listed`.
fn unlisted(root: &Path, rel: &str, listed: &BTreeSet<&str>) -> Result<Option<String>, String> {
    let dir = root.join(rel);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.is_empty() => return Ok(None),
        Err(e) => return Err(format!("{FILES_DIR}/{rel}: unreadable: {e}")),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{FILES_DIR}/{rel}: unreadable: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            if let Some(extra) = unlisted(root, &path, listed)? {
                return Ok(Some(extra));
            }
        } else if !listed.contains(path.as_str()) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

// ----- S3 --------------------------------------------------------------------------------------

fn marker_key(s3: &S3Location, id: &str) -> String {
    format!("{}index/{id}", s3.prefix)
}

fn data_prefix(s3: &S3Location, id: &str) -> String {
    format!("{}data/{id}/", s3.prefix)
}

async fn s3_list(s3: &S3Location) -> Result<Vec<BackupInfo>> {
    let index = format!("{}index/", s3.prefix);
    let mut backups: Vec<BackupInfo> = S3Client::new(s3)
        .list(&index)
        .await?
        .into_iter()
        .filter_map(|o| {
            let id = o.key.strip_prefix(&index)?;
            Some(BackupInfo {
                taken: parse_id(id)?,
                id: id.to_owned(),
            })
        })
        .collect();
    backups.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(backups)
}

/// The backup's verified manifest (marker, manifest object, digest, parse).
async fn s3_manifest(client: &S3Client, s3: &S3Location, id: &str) -> Result<(Bytes, Manifest)> {
    let invalid = |reason: String| Error::Invalid {
        id: id.to_owned(),
        reason,
    };
    if parse_id(id).is_none() {
        return Err(Error::NotFound { id: id.to_owned() });
    }
    let marker = client
        .get(&marker_key(s3, id))
        .await?
        .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
    let bytes = client
        .get(&format!("{}{MANIFEST_FILE}", data_prefix(s3, id)))
        .await?
        .ok_or_else(|| invalid(format!("{MANIFEST_FILE}: missing")))?;
    if String::from_utf8_lossy(&marker).trim() != sha256_hex(&bytes) {
        return Err(invalid(format!(
            "{MANIFEST_FILE}: its sha256 does not match the completion marker index/{id}"
        )));
    }
    let manifest = parse_manifest(&bytes).map_err(invalid)?;
    Ok((bytes, manifest))
}

async fn s3_read(s3: &S3Location, id: &str) -> Result<Dataset> {
    let client = S3Client::new(s3);
    let (_, manifest) = s3_manifest(&client, s3, id).await?;
    let invalid = |reason: String| Error::Invalid {
        id: id.to_owned(),
        reason,
    };
    let prefix = data_prefix(s3, id);
    let stored: BTreeSet<String> = client
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| o.key.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = std::iter::once(MANIFEST_FILE.to_owned())
        .chain(
            manifest
                .files
                .iter()
                .map(|e| format!("{FILES_DIR}/{}", e.path)),
        )
        .collect();
    if let Some(extra) = stored.difference(&expected).next() {
        return Err(invalid(format!("{extra}: not listed in the manifest")));
    }
    if let Some(missing) = expected.difference(&stored).next() {
        return Err(invalid(format!("{missing}: missing")));
    }
    let files: Vec<(String, Vec<u8>)> = futures::stream::iter(manifest.files)
        .map(|entry| {
            let client = client.clone();
            let key = format!("{prefix}{FILES_DIR}/{}", entry.path);
            let id = id.to_owned();
            async move {
                let invalid = |reason: String| Error::Invalid { id, reason };
                let Some(content) = client.get(&key).await? else {
                    return Err(invalid(format!("{FILES_DIR}/{}: missing", entry.path)));
                };
                check_content(&entry, &content).map_err(invalid)?;
                Ok::<_, Error>((entry.path, content.to_vec()))
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(Dataset {
        files: files.into_iter().collect(),
    })
}

async fn s3_seed(
    s3: &S3Location,
    dataset: &Dataset,
    at: Option<DateTime<Utc>>,
) -> Result<BackupInfo> {
    let client = S3Client::new(s3);
    let newest = s3_list(s3).await?.first().map(|b| b.taken);
    let taken = backup_time(at, newest);
    let id = id_of(taken);
    if client.get(&marker_key(s3, &id)).await?.is_some() {
        return Err(Error::Exists { id });
    }
    let manifest = manifest_bytes(dataset, 1, taken);
    let prefix = data_prefix(s3, &id);
    client
        .put_all(
            dataset
                .files
                .iter()
                .map(|(path, bytes)| {
                    (
                        format!("{prefix}{FILES_DIR}/{path}"),
                        Bytes::from(bytes.clone()),
                    )
                })
                .collect(),
        )
        .await?;
    client
        .put(
            &format!("{prefix}{MANIFEST_FILE}"),
            Bytes::from(manifest.clone()),
        )
        .await?;
    client
        .put(&marker_key(s3, &id), Bytes::from(sha256_hex(&manifest)))
        .await?;
    Ok(BackupInfo { id, taken })
}

async fn s3_damage(s3: &S3Location, id: &str) -> Result<String> {
    let client = S3Client::new(s3);
    let (manifest_bytes, manifest) = s3_manifest(&client, s3, id).await?;
    let prefix = data_prefix(s3, id);
    match manifest.files.iter().find(|e| e.size > 0) {
        Some(entry) => {
            let key = format!("{prefix}{FILES_DIR}/{}", entry.path);
            let mut content = client
                .get(&key)
                .await?
                .ok_or_else(|| Error::Invalid {
                    id: id.to_owned(),
                    reason: format!("{FILES_DIR}/{}: missing", entry.path),
                })?
                .to_vec();
            content[0] ^= 0xff;
            client.put(&key, Bytes::from(content)).await?;
            Ok(format!(
                "flipped the first byte of {FILES_DIR}/{} in backup {id}",
                entry.path
            ))
        }
        None => {
            let mut garbled = manifest_bytes.to_vec();
            garbled[0] ^= 0xff;
            client
                .put(&format!("{prefix}{MANIFEST_FILE}"), Bytes::from(garbled))
                .await?;
            Ok(format!(
                "flipped the first byte of {MANIFEST_FILE} in backup {id}"
            ))
        }
    }
}

async fn s3_delete(s3: &S3Location, id: &str) -> Result<()> {
    let client = S3Client::new(s3);
    if parse_id(id).is_none() || client.get(&marker_key(s3, id)).await?.is_none() {
        return Err(Error::NotFound { id: id.to_owned() });
    }
    // NB: the marker first: without it the backup no longer exists, whatever is left of it.
    client.delete(&marker_key(s3, id)).await?;
    client.delete_prefix(&data_prefix(s3, id)).await?;
    Ok(())
}

// ----- git -------------------------------------------------------------------------------------

/// The backups along the fetched branch: (index in the first-parent chain, info), newest first.
fn git_backups(session: &Session, chain: &[git2::Oid]) -> Result<Vec<(usize, BackupInfo)>> {
    let mut seen = BTreeSet::new();
    let mut backups = Vec::new();
    for (i, oid) in chain.iter().enumerate() {
        let commit = session.commit(*oid)?;
        let Some(id) = commit
            .message()
            .ok()
            .and_then(|m| m.trim().strip_prefix(MESSAGE_PREFIX))
            .map(str::trim)
        else {
            continue;
        };
        if let Some(taken) = parse_id(id)
            && seen.insert(id.to_owned())
        {
            backups.push((
                i,
                BackupInfo {
                    id: id.to_owned(),
                    taken,
                },
            ));
        }
    }
    Ok(backups)
}

/// The fetched chain and the index of backup `id` in it.
fn git_find(session: &Session, id: &str) -> Result<(Vec<git2::Oid>, usize)> {
    let tip = session.fetch_tip()?;
    let chain = session.first_parents(tip)?;
    let index = git_backups(session, &chain)?
        .into_iter()
        .find(|(_, b)| b.id == id)
        .map(|(i, _)| i)
        .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
    Ok((chain, index))
}

/// Verifies the backup commit `oid` and returns its manifest bytes and dataset.
fn git_verify(session: &Session, oid: git2::Oid, id: &str) -> Result<(Vec<u8>, Dataset)> {
    let invalid = |reason: String| Error::Invalid {
        id: id.to_owned(),
        reason,
    };
    let tree = session.commit(oid)?.tree_id();
    let files = session.tree_files(tree)?;
    let manifest_file = files
        .iter()
        .find(|f| f.path == MANIFEST_FILE)
        .ok_or_else(|| invalid(format!("{MANIFEST_FILE}: missing")))?;
    let bytes = session
        .blob(manifest_file.oid)
        .map_err(|p| invalid(format!("{MANIFEST_FILE}: {p}")))?;
    let manifest = parse_manifest(&bytes).map_err(invalid)?;
    let entries: BTreeMap<&str, &FileEntry> = manifest
        .files
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    let mut dataset = Dataset::empty();
    for file in &files {
        if file.path == MANIFEST_FILE {
            if !file.is_regular() {
                return Err(invalid(format!("{MANIFEST_FILE}: not a regular file")));
            }
            continue;
        }
        let Some(entry) = file
            .path
            .strip_prefix(FILES_DIR)
            .and_then(|p| p.strip_prefix('/'))
            .and_then(|p| entries.get(p))
        else {
            return Err(invalid(format!(
                "{}: not listed in the manifest",
                file.path
            )));
        };
        if !file.is_regular() {
            return Err(invalid(format!(
                "{}: not a regular file (git mode {:o})",
                file.path, file.mode
            )));
        }
        let content = session
            .blob(file.oid)
            .map_err(|p| invalid(format!("{}: {p}", file.path)))?;
        check_content(entry, &content).map_err(invalid)?;
        dataset.files.insert(entry.path.clone(), content);
    }
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|e| !dataset.files.contains_key(&e.path))
    {
        return Err(invalid(format!("{FILES_DIR}/{}: missing", missing.path)));
    }
    Ok((bytes, dataset))
}

async fn git_list(git: &GitLocation) -> Result<Vec<BackupInfo>> {
    session(git, "list backups", |s: &Session| {
        let chain = s.first_parents(s.fetch_tip()?)?;
        Ok(git_backups(s, &chain)?
            .into_iter()
            .map(|(_, b)| b)
            .collect())
    })
    .await
}

async fn git_read(git: &GitLocation, id: &str) -> Result<Dataset> {
    let id = id.to_owned();
    session(git, "read a backup", move |s: &Session| {
        let (chain, index) = git_find(s, &id)?;
        Ok(git_verify(s, chain[index], &id)?.1)
    })
    .await
}

async fn git_seed(
    git: &GitLocation,
    dataset: &Dataset,
    at: Option<DateTime<Utc>>,
) -> Result<BackupInfo> {
    let dataset = dataset.clone();
    session(git, "seed a backup", move |s: &Session| {
        let tip = s.fetch_tip()?;
        let chain = s.first_parents(tip)?;
        let newest = git_backups(s, &chain)?.first().map(|(_, b)| b.taken);
        if let (Some(at), Some(newest)) = (at, newest)
            && super::time::millis(at) <= newest
        {
            return Err(Error::OutOfOrder { at, newest });
        }
        let taken = backup_time(at, newest);
        let id = id_of(taken);
        let manifest = manifest_bytes(&dataset, 1, taken);
        let paths: Vec<(String, &[u8])> = dataset
            .files
            .iter()
            .map(|(p, b)| (format!("{FILES_DIR}/{p}"), b.as_slice()))
            .chain(std::iter::once((
                MANIFEST_FILE.to_owned(),
                manifest.as_slice(),
            )))
            .collect();
        let tree = s.tree_of(paths.iter().map(|(p, b)| (p.as_str(), *b)))?;
        let commit = s.commit_tree(tree, tip, &format!("{MESSAGE_PREFIX}{id}"), taken)?;
        s.push(Some(commit), false)?;
        Ok(BackupInfo { id, taken })
    })
    .await
}

async fn git_damage(git: &GitLocation, id: &str) -> Result<String> {
    let id = id.to_owned();
    session(git, "damage a backup", move |s: &Session| {
        let (chain, index) = git_find(s, &id)?;
        let target = chain[index];
        let (manifest, dataset) = git_verify(s, target, &id)?;
        let tree = s.commit(target)?.tree_id();
        let (damaged, what) = match super::flipped_first_file(&dataset) {
            Some((path, content)) => (
                s.tree_with(tree, &format!("{FILES_DIR}/{path}"), &content)?,
                format!("{FILES_DIR}/{path}"),
            ),
            None => {
                let mut garbled = manifest;
                garbled[0] ^= 0xff;
                (
                    s.tree_with(tree, MANIFEST_FILE, &garbled)?,
                    MANIFEST_FILE.to_owned(),
                )
            }
        };
        let tip = s.rewrite::<Error>(&chain, index, |c| {
            Ok(Some(if c.id() == target { damaged } else { c.tree_id() }))
        })?;
        s.push(tip, true)?;
        Ok(format!(
            "rewrote backup {id}'s commit with the first byte of {what} flipped (force-pushed; its manifest no longer matches)"
        ))
    })
    .await
}

async fn git_delete(git: &GitLocation, id: &str) -> Result<()> {
    let id = id.to_owned();
    session(git, "delete a backup", move |s: &Session| {
        let (chain, index) = git_find(s, &id)?;
        let target = chain[index];
        let tip = s.rewrite::<Error>(&chain, index, |c| {
            Ok((c.id() != target).then(|| c.tree_id()))
        })?;
        match (tip, s.push(tip, true)) {
            (_, Ok(())) => Ok(()),
            // NB: servers refuse to delete their current branch; a commit that is no backup
            // leaves the branch without backups just as well.
            (None, Err(crate::remote::git::Error::Rejected { .. })) => {
                let empty = s.tree_of([])?;
                let commit = s.commit_tree(empty, None, NO_BACKUPS_MESSAGE, Utc::now())?;
                Ok(s.push(Some(commit), true)?)
            }
            (_, Err(e)) => Err(e.into()),
        }
    })
    .await
}

#[async_trait::async_trait]
impl BackupFormat for Phasepod {
    fn kind(&self) -> FormatKind {
        FormatKind::Phasepod
    }

    async fn seed(
        &self,
        store: &StoreLocation,
        dataset: &Dataset,
        at: Option<DateTime<Utc>>,
    ) -> Result<BackupInfo> {
        match store {
            StoreLocation::S3(s3) => s3_seed(s3, dataset, at).await,
            StoreLocation::Git(git) => git_seed(git, dataset, at).await,
        }
    }

    async fn list(&self, store: &StoreLocation) -> Result<Vec<BackupInfo>> {
        match store {
            StoreLocation::S3(s3) => s3_list(s3).await,
            StoreLocation::Git(git) => git_list(git).await,
        }
    }

    async fn read(&self, store: &StoreLocation, id: &str) -> Result<Dataset> {
        match store {
            StoreLocation::S3(s3) => s3_read(s3, id).await,
            StoreLocation::Git(git) => git_read(git, id).await,
        }
    }

    async fn damage(&self, store: &StoreLocation, id: &str) -> Result<String> {
        match store {
            StoreLocation::S3(s3) => s3_damage(s3, id).await,
            StoreLocation::Git(git) => git_damage(git, id).await,
        }
    }

    async fn delete(&self, store: &StoreLocation, id: &str) -> Result<()> {
        match store {
            StoreLocation::S3(s3) => s3_delete(s3, id).await,
            StoreLocation::Git(git) => git_delete(git, id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> Dataset {
        let mut d = Dataset::generated("m", 2, 10);
        d.files.insert("a/ü b".into(), b"x".to_vec());
        d.files.insert("empty".into(), Vec::new());
        d
    }

    #[test]
    fn manifests_list_every_file_in_byte_order_and_parse_back() {
        let created = super::super::time::millis(Utc::now());
        let bytes = manifest_bytes(&dataset(), 3, created);
        let manifest = parse_manifest(&bytes).unwrap();
        assert_eq!(manifest.generation, 3);
        let paths: Vec<&str> = manifest.files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a/ü b", "empty", "m-0000.bin", "m-0001.bin"]);
        assert_eq!(manifest.files[1].sha256, sha256_hex(b""));
    }

    #[test]
    fn bad_manifests_are_refused_naming_the_field() {
        let entry = |path: &str| {
            format!(
                r#"{{"path":{path:?},"size":0,"sha256":"{}"}}"#,
                sha256_hex(b"")
            )
        };
        let manifest = |files: &[String]| {
            format!(
                r#"{{"format":1,"generation":1,"created":"2026-01-01T00:00:00.000Z","files":[{}]}}"#,
                files.join(",")
            )
        };
        for (text, expected) in [
            ("{".to_owned(), "manifest.json: EOF"),
            (
                manifest(&[]).replace("\"format\":1", "\"format\":2"),
                "format 2",
            ),
            (
                manifest(&[]).replace("2026-01-01T00:00:00.000Z", "yesterday"),
                "created",
            ),
            (manifest(&[entry("../x")]), "`..`"),
            (
                manifest(&[entry("b"), entry("a")]),
                "files[1] a: paths not in byte order",
            ),
            (manifest(&[entry("a"), entry("a")]), "not unique"),
            (
                manifest(&[entry("a")]).replace(&sha256_hex(b""), "ABC"),
                "64 lowercase hex",
            ),
        ] {
            let problem = parse_manifest(text.as_bytes()).unwrap_err();
            assert!(problem.contains(expected), "{problem:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_written_dataset_directory_reads_back_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("current");
        write_dataset_dir(&current, &dataset(), 1).unwrap();
        assert_eq!(read_dataset_dir(&current).unwrap(), dataset());

        std::fs::write(current.join("files/stray"), b"s").unwrap();
        let stray = read_dataset_dir(&current).unwrap_err().to_string();
        assert!(
            stray.ends_with("files/stray: not listed in the manifest"),
            "{stray}"
        );
        std::fs::remove_file(current.join("files/stray")).unwrap();

        std::fs::write(current.join("files/m-0000.bin"), b"other").unwrap();
        let changed = read_dataset_dir(&current).unwrap_err().to_string();
        assert!(changed.contains("files/m-0000.bin: size 5"), "{changed}");

        std::fs::remove_file(current.join("files/empty")).unwrap();
        std::fs::remove_file(current.join(MANIFEST_FILE)).unwrap();
        let missing = read_dataset_dir(&current).unwrap_err().to_string();
        assert!(missing.ends_with("manifest.json: missing"), "{missing}");
    }
}

//! `files`: a plain copy of the dataset per backup — what `aws s3 cp --recursive`/`rclone copy`
//! into a dated directory, or a `git add -A; git commit; git push` loop, produce.
//!
//! - **S3**: backup `{name}` is every object under `{prefix}{name}/`, the dataset's file `path` at
//!   `{prefix}{name}/{path}` (keys ending in `/`, directory markers, are not files). A backup's
//!   time is the time its name encodes — `YYYYMMDDTHHMMSS.mmmZ` (what the harness writes),
//!   `YYYYMMDDTHHMMSSZ` (`date -u +%Y%m%dT%H%M%SZ`) or RFC 3339 — or, for any other name, the
//!   newest `LastModified` of its objects. Newest first by that time, then by name. There is no
//!   completion marker: a backup still being uploaded lists as a smaller backup.
//! - **git**: every commit along the branch's first parents is a backup, its tree the dataset;
//!   the ID is the commit hash, the time its committer time, and the chain order is the order.
//!   Deleting a backup other than the newest rewrites the commits after it (force-push): their
//!   hashes, and so their IDs, change.
//!
//! What `damage` does and what can notice it: see the [formats module docs](super).

use std::collections::BTreeSet;

use bytes::Bytes;
use chrono::{DateTime, TimeZone as _, Utc};
use futures::{StreamExt as _, TryStreamExt as _};

use super::time::{backup_time, id_of, parse_name};
use super::{BackupFormat, BackupInfo, Error, FormatKind, Result, StoreLocation};
use crate::dataset::Dataset;
use crate::remote::git::{Session, is_bare_repository, session};
use crate::remote::s3::{CONCURRENCY, S3Client};
use crate::remote::{GitLocation, S3Location};

/// A plain copy per backup (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Files;

// ----- S3 --------------------------------------------------------------------------------------

fn backup_prefix(s3: &S3Location, name: &str) -> String {
    format!("{}{name}/", s3.prefix)
}

/// A name that is one path segment (so that it is one "directory" under the prefix).
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::NotFound {
            id: name.to_owned(),
        });
    }
    Ok(())
}

async fn s3_list(s3: &S3Location) -> Result<Vec<BackupInfo>> {
    let client = S3Client::new(s3);
    let mut backups = Vec::new();
    for name in client.list_dirs(&s3.prefix).await? {
        let taken = match parse_name(&name) {
            Some(t) => Some(t),
            None => client
                .list(&backup_prefix(s3, &name))
                .await?
                .into_iter()
                .filter_map(|o| o.last_modified)
                .max(),
        };
        if let Some(taken) = taken {
            backups.push(BackupInfo { id: name, taken });
        }
    }
    backups.sort_by(|a, b| b.taken.cmp(&a.taken).then_with(|| b.id.cmp(&a.id)));
    Ok(backups)
}

/// The keys of backup `name`'s files (directory markers left out), relative to its prefix.
async fn s3_files(client: &S3Client, s3: &S3Location, name: &str) -> Result<Vec<String>> {
    check_name(name)?;
    let prefix = backup_prefix(s3, name);
    let paths: Vec<String> = client
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| o.key.strip_prefix(&prefix).map(str::to_owned))
        .filter(|p| !p.is_empty() && !p.ends_with('/'))
        .collect();
    if paths.is_empty() {
        return Err(Error::NotFound {
            id: name.to_owned(),
        });
    }
    Ok(paths)
}

async fn s3_read(s3: &S3Location, name: &str) -> Result<Dataset> {
    let client = S3Client::new(s3);
    let prefix = backup_prefix(s3, name);
    let paths = s3_files(&client, s3, name).await?;
    let files: Vec<(String, Vec<u8>)> = futures::stream::iter(paths)
        .map(|path| {
            let (client, key, name) = (client.clone(), format!("{prefix}{path}"), name.to_owned());
            async move {
                let Some(content) = client.get(&key).await? else {
                    return Err(Error::Invalid {
                        id: name,
                        reason: format!("{path}: listed, but gone when read"),
                    });
                };
                Ok::<_, Error>((path, content.to_vec()))
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
    let prefix = backup_prefix(s3, &id);
    if !client.list(&prefix).await?.is_empty() {
        return Err(Error::Exists { id });
    }
    client
        .put_all(
            dataset
                .files
                .iter()
                .map(|(path, bytes)| (format!("{prefix}{path}"), Bytes::from(bytes.clone())))
                .collect(),
        )
        .await?;
    Ok(BackupInfo { id, taken })
}

async fn s3_damage(s3: &S3Location, name: &str) -> Result<String> {
    let dataset = s3_read(s3, name).await?;
    let (path, changed) =
        super::flipped_first_file(&dataset).ok_or_else(|| Error::NothingToDamage {
            id: name.to_owned(),
            reason: "every file of it is empty".into(),
        })?;
    S3Client::new(s3)
        .put(
            &format!("{}{path}", backup_prefix(s3, name)),
            Bytes::from(changed),
        )
        .await?;
    Ok(format!(
        "rewrote {path} of backup {name} with its first byte flipped (nothing in the format can tell)"
    ))
}

async fn s3_delete(s3: &S3Location, name: &str) -> Result<()> {
    let client = S3Client::new(s3);
    s3_files(&client, s3, name).await?;
    client.delete_prefix(&backup_prefix(s3, name)).await?;
    Ok(())
}

// ----- git -------------------------------------------------------------------------------------

fn commit_time(session: &Session, oid: git2::Oid) -> Result<DateTime<Utc>> {
    let seconds = session.commit(oid)?.committer().when().seconds();
    Ok(Utc
        .timestamp_opt(seconds, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC))
}

/// The fetched chain and the index of commit `id` in it.
fn git_find(session: &Session, id: &str) -> Result<(Vec<git2::Oid>, usize)> {
    let chain = session.first_parents(session.fetch_tip()?)?;
    let index = chain
        .iter()
        .position(|oid| oid.to_string() == id)
        .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
    Ok((chain, index))
}

async fn git_list(git: &GitLocation) -> Result<Vec<BackupInfo>> {
    session(git, "list backups", |s: &Session| {
        s.first_parents(s.fetch_tip()?)?
            .into_iter()
            .map(|oid| {
                Ok(BackupInfo {
                    id: oid.to_string(),
                    taken: commit_time(s, oid)?,
                })
            })
            .collect()
    })
    .await
}

async fn git_read(git: &GitLocation, id: &str) -> Result<Dataset> {
    let id = id.to_owned();
    session(git, "read a backup", move |s: &Session| {
        let (chain, index) = git_find(s, &id)?;
        let tree = s.commit(chain[index])?.tree_id();
        let files = s.read_files(tree)?.map_err(|reason| Error::Invalid {
            id: id.clone(),
            reason,
        })?;
        Ok(Dataset { files })
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
        let newest = tip.map(|t| commit_time(s, t)).transpose()?;
        if let (Some(at), Some(newest)) = (at, newest)
            && at < newest
        {
            return Err(Error::OutOfOrder { at, newest });
        }
        let taken = backup_time(at, newest);
        let tree = s.tree_of(
            dataset
                .files
                .iter()
                .map(|(p, b)| (p.as_str(), b.as_slice())),
        )?;
        let commit = s.commit_tree(tree, tip, &format!("backup {}", id_of(taken)), taken)?;
        s.push(Some(commit), false)?;
        Ok(BackupInfo {
            id: commit.to_string(),
            taken: commit_time(s, commit)?,
        })
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
        s.push(tip, true)?;
        Ok(())
    })
    .await
}

async fn git_damage(git: &GitLocation, id: &str) -> Result<String> {
    let unsupported = |reason: &str| Error::Unsupported {
        format: FormatKind::Files,
        what: "damage a backup",
        backend: crate::subject::Backend::Git,
        reason: reason.to_owned(),
    };
    let Some(repository) = git.local_repository.clone() else {
        return Err(unsupported(
            "over the git protocol every change is a new, legitimate commit; damage needs the server's repository on this machine (the embedded git server)",
        ));
    };
    if !is_bare_repository(&repository) {
        return Err(unsupported(&format!(
            "{} is not a bare repository",
            repository.display()
        )));
    }
    let id = id.to_owned();
    // Choose a blob that only this backup's tree has, so the other backups stay whole.
    let (path, blob) = session(git, "damage a backup", {
        let id = id.clone();
        move |s: &Session| {
            let (chain, index) = git_find(s, &id)?;
            let mut elsewhere = BTreeSet::new();
            for (i, oid) in chain.iter().enumerate() {
                if i != index {
                    let tree = s.commit(*oid)?.tree_id();
                    elsewhere.extend(s.tree_files(tree)?.into_iter().map(|f| f.oid));
                }
            }
            let tree = s.commit(chain[index])?.tree_id();
            for file in s.tree_files(tree)? {
                if file.is_regular() && !elsewhere.contains(&file.oid) {
                    let content = s.blob(file.oid).map_err(|reason| Error::Invalid {
                        id: id.clone(),
                        reason: format!("{}: {reason}", file.path),
                    })?;
                    if !content.is_empty() {
                        return Ok((file.path, file.oid));
                    }
                }
            }
            Err(Error::NothingToDamage {
                id: id.clone(),
                reason: "every non-empty file of it is also in another backup".into(),
            })
        }
    })
    .await?;
    let dir = repository.clone();
    tokio::task::spawn_blocking(move || corrupt_object(&dir, blob))
        .await
        .map_err(|e| Error::Local {
            action: "corrupt an object in",
            path: repository.clone(),
            source: std::io::Error::other(e),
        })??;
    git.forget_fetched();
    Ok(format!(
        "replaced the object of {path} ({blob}) in backup {id} on the server's disk with other content; git clone and fetch now refuse the branch"
    ))
}

/// Replaces object `blob` in the bare repository `dir` with a well-formed blob of other content
/// under the same name, as a failing disk might: packs are exploded into loose objects first
/// (git prefers packed objects), then the loose object is rewritten.
fn corrupt_object(dir: &std::path::Path, blob: git2::Oid) -> Result<()> {
    let packs = dir.join("objects/pack");
    let mut exploded = Vec::new();
    for entry in std::fs::read_dir(&packs).map_err(Error::local("list", &packs))? {
        let path = entry.map_err(Error::local("list", &packs))?.path();
        if path.extension().is_some_and(|e| e == "pack") {
            exploded.push(path);
        }
    }
    for pack in exploded {
        // NB: unpack-objects skips objects the repository has: the pack must leave first.
        let aside = dir.join(format!(
            "exploded-{}",
            pack.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::rename(&pack, &aside).map_err(Error::local("move aside", &pack))?;
        let stem = pack.with_extension("");
        for ext in ["idx", "rev", "bitmap", "keep", "promisor"] {
            let _ = std::fs::remove_file(stem.with_extension(ext));
        }
        let input = std::fs::File::open(&aside).map_err(Error::local("read", &aside))?;
        let output = std::process::Command::new("git")
            .arg("unpack-objects")
            .arg("-q")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_DIR", dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(input)
            .output()
            .map_err(Error::local("run git unpack-objects in", dir))?;
        if !output.status.success() {
            return Err(Error::Tool {
                command: "git unpack-objects".into(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        std::fs::remove_file(&aside).map_err(Error::local("remove", &aside))?;
    }
    let hex = blob.to_string();
    let object = dir.join("objects").join(&hex[..2]).join(&hex[2..]);
    // NB: libgit2 writes a well-formed loose object of the other content into a scratch
    // repository; its bytes then take the damaged object's name.
    let scratch =
        tempfile::tempdir().map_err(Error::local("create a scratch directory for", dir))?;
    let other = git2::Repository::init_bare(scratch.path())
        .and_then(|r| r.blob(format!("damaged by phasecheck: this is not {hex}\n").as_bytes()))
        .map_err(crate::remote::git::git_err("write a replacement object"))?;
    let other = other.to_string();
    let written = scratch
        .path()
        .join("objects")
        .join(&other[..2])
        .join(&other[2..]);
    let bytes = std::fs::read(&written).map_err(Error::local("read", &written))?;
    let _ = std::fs::remove_file(&object);
    if let Some(parent) = object.parent() {
        std::fs::create_dir_all(parent).map_err(Error::local("create", parent))?;
    }
    std::fs::write(&object, bytes).map_err(Error::local("write", &object))?;
    Ok(())
}

#[async_trait::async_trait]
impl BackupFormat for Files {
    fn kind(&self) -> FormatKind {
        FormatKind::Files
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

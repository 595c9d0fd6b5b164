//! `restic`: a restic repository on S3, driven by the real `restic` program (Debian's `restic`,
//! 0.14 checked).
//!
//! The repository is `s3:{endpoint}/{bucket}/{prefix}` (the prefix without its trailing `/`; its
//! objects are `{prefix}/config`, `{prefix}/data/…`, …). Every command runs with an environment
//! of its own — `RESTIC_REPOSITORY`, `RESTIC_PASSWORD`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `PATH`, a scratch `HOME`, and `TZ=UTC` (restic
//! reads `--time` in local time) — never the host's (which may hold `AWS_CA_BUNDLE` and other
//! variables that break it), and without a cache (`--no-cache`), so that every read reaches the
//! store. Reads take no lock (`--no-lock`): the workload's `forget --prune` needs the repository
//! exclusively, and a harness that watches the store must not make it fail.
//!
//! - seed: `restic backup .` run inside a directory holding the dataset (so the snapshot's root
//!   is the dataset's root), with `--time`, `--host` and `--tag`; the repository is initialised
//!   first when there is none. With [`Restic::with_path`] (`/data`, the path the workload's own
//!   `restic backup /data` records) the dataset is written to `data/` in a scratch directory and
//!   `restic backup data` is run there: restic keeps a relative path's components, so the
//!   snapshot's tree is `/data/…` as the workload's are, and `restic restore latest --target /`
//!   puts it back at `/data`;
//! - list: `restic snapshots --json`, every snapshot (not only the harness's), newest first;
//! - read: `restic restore {id} --target … --verify` — restic checks every blob's MAC as it
//!   decrypts, and `--verify` reads the restored files back; the dataset is what is under the
//!   path (a snapshot without it is invalid);
//! - damage: a byte flipped in a data pack that only that snapshot references, found with
//!   `restic cat snapshot|blob|index` and `restic list index`; other snapshots stay whole;
//! - delete: `restic forget {id} --prune`.
//!
//! Without `restic` on PATH every operation fails with [`Error::ToolMissing`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::tool::{Input, Tool, run};
use super::{BackupFormat, BackupInfo, Error, FormatKind, Result, StoreLocation, check_backend};
use crate::dataset::Dataset;
use crate::remote::S3Location;
use crate::remote::s3::S3Client;

/// The repository password used unless one is given.
pub const DEFAULT_PASSWORD: &str = "phasecheck";
/// The host name and tag seeded snapshots carry unless others are given.
pub const DEFAULT_HOST: &str = "phasecheck";

/// A restic repository on S3 (see the [module docs](self)).
#[derive(Clone)]
pub struct Restic {
    program: PathBuf,
    password: String,
    host: String,
    tag: String,
    /// Where snapshots hold the dataset, relative to `/`; empty: at the root.
    path: String,
}

impl Default for Restic {
    fn default() -> Self {
        Restic {
            program: PathBuf::from("restic"),
            password: DEFAULT_PASSWORD.into(),
            host: DEFAULT_HOST.into(),
            tag: DEFAULT_HOST.into(),
            path: String::new(),
        }
    }
}

impl fmt::Debug for Restic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restic")
            .field("program", &self.program)
            .field("password", &"<redacted>")
            .field("host", &self.host)
            .field("tag", &self.tag)
            .field("path", &self.path)
            .finish()
    }
}

impl Restic {
    /// The repository's password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = password.into();
        self
    }

    /// The host name seeded snapshots carry.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The tag seeded snapshots carry.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// Snapshots hold the dataset at this absolute path (e.g. `/data`), as a workload's
    /// `restic backup /data` records it; `/` or empty: at the snapshot's root.
    pub fn with_path(mut self, path: &str) -> Self {
        self.path = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect::<Vec<_>>()
            .join("/");
        self
    }

    /// Run this program instead of `restic` from PATH.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// The repository's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Runs restic with `args` (after `--no-cache`) against `s3`, in `cwd` when given; its
    /// output when it exits 0.
    async fn run(&self, s3: &S3Location, args: &[&str], cwd: Option<&Path>) -> Result<Vec<u8>> {
        let mut all = vec!["--no-cache"];
        // NB: a reader's lock blocks the workload's `forget --prune` (it needs the repository
        // exclusively) and the workload's prune would block the harness: looking must not lock.
        if args
            .first()
            .is_some_and(|a| ["cat", "snapshots", "restore", "list", "ls"].contains(a))
        {
            all.push("--no-lock");
        }
        all.extend_from_slice(args);
        let repository = repository(s3);
        let env = [
            ("TZ", "UTC"),
            ("RESTIC_REPOSITORY", repository.as_str()),
            ("RESTIC_PASSWORD", self.password.as_str()),
            ("AWS_ACCESS_KEY_ID", s3.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key.as_str()),
            ("AWS_DEFAULT_REGION", s3.region.as_str()),
        ];
        let tool = Tool {
            name: "restic",
            program: &self.program,
            install: "Debian's `restic`",
        };
        let input = Input {
            env: &env,
            cwd,
            ..Input::default()
        };
        run(&tool, &all, input).await
    }

    /// `restic cat …` parsed as JSON.
    async fn cat<T: for<'de> Deserialize<'de>>(
        &self,
        s3: &S3Location,
        what: &str,
        id: &str,
    ) -> Result<T> {
        let out = self.run(s3, &["cat", what, id], None).await?;
        serde_json::from_slice(&out).map_err(|e| Error::ToolOutput {
            command: format!("restic cat {what} {id}"),
            problem: e.to_string(),
        })
    }

    async fn snapshots(&self, s3: &S3Location) -> Result<Vec<BackupInfo>> {
        let out = match self.run(s3, &["snapshots", "--json"], None).await {
            Ok(out) => out,
            Err(Error::Tool { stderr, .. }) if is_no_repository(&stderr) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let snapshots: Vec<SnapshotJson> =
            serde_json::from_slice(&out).map_err(|e| Error::ToolOutput {
                command: "restic snapshots --json".into(),
                problem: e.to_string(),
            })?;
        let mut backups: Vec<BackupInfo> = snapshots
            .into_iter()
            .map(|s| BackupInfo {
                id: s.id,
                taken: s.time,
            })
            .collect();
        backups.sort_by(|a, b| b.taken.cmp(&a.taken).then_with(|| b.id.cmp(&a.id)));
        Ok(backups)
    }

    /// `NotFound` unless snapshot `id` is listed.
    async fn existing(&self, s3: &S3Location, id: &str) -> Result<BackupInfo> {
        self.snapshots(s3)
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })
    }

    /// The data blobs the snapshot's trees reference, walking them with `restic cat blob`.
    async fn data_blobs(
        &self,
        s3: &S3Location,
        id: &str,
        trees: &mut BTreeMap<String, TreeJson>,
    ) -> Result<BTreeSet<String>> {
        let snapshot: SnapshotJson = self.cat(s3, "snapshot", id).await?;
        let mut pending = vec![snapshot.tree];
        let mut blobs = BTreeSet::new();
        while let Some(tree_id) = pending.pop() {
            if !trees.contains_key(&tree_id) {
                let tree: TreeJson = self.cat(s3, "blob", &tree_id).await?;
                trees.insert(tree_id.clone(), tree);
            }
            for node in &trees[&tree_id].nodes {
                blobs.extend(node.content.iter().flatten().cloned());
                pending.extend(node.subtree.clone());
            }
        }
        Ok(blobs)
    }
}

/// `s3:{endpoint}/{bucket}/{prefix}`.
fn repository(s3: &S3Location) -> String {
    let prefix = s3.prefix.trim_end_matches('/');
    if prefix.is_empty() {
        format!("s3:{}/{}", s3.endpoint, s3.bucket)
    } else {
        format!("s3:{}/{}/{prefix}", s3.endpoint, s3.bucket)
    }
}

/// The key of a repository file under the location's prefix.
fn repository_key(s3: &S3Location, path: &str) -> String {
    let prefix = s3.prefix.trim_end_matches('/');
    if prefix.is_empty() {
        path.to_owned()
    } else {
        format!("{prefix}/{path}")
    }
}

/// Whether restic's complaint is that there is no repository yet.
fn is_no_repository(stderr: &str) -> bool {
    stderr.contains("Is there a repository at the following location?")
        || stderr.contains("unable to open config file")
}

fn s3_of<'a>(store: &'a StoreLocation, what: &'static str) -> Result<&'a S3Location> {
    check_backend(FormatKind::Restic, what, store)?;
    match store {
        StoreLocation::S3(s3) => Ok(s3),
        StoreLocation::Git(_) => unreachable!("check_backend refuses git"),
    }
}

#[derive(Deserialize)]
struct SnapshotJson {
    time: DateTime<Utc>,
    tree: String,
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct SummaryJson {
    message_type: String,
    #[serde(default)]
    snapshot_id: String,
}

#[derive(Deserialize)]
struct TreeJson {
    #[serde(default)]
    nodes: Vec<NodeJson>,
}

#[derive(Deserialize)]
struct NodeJson {
    #[serde(default)]
    content: Option<Vec<String>>,
    #[serde(default)]
    subtree: Option<String>,
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    packs: Vec<PackJson>,
}

#[derive(Deserialize)]
struct PackJson {
    id: String,
    blobs: Vec<PackBlobJson>,
}

#[derive(Deserialize)]
struct PackBlobJson {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    offset: u64,
    length: u64,
}

/// Every regular file under `root` as a dataset; `Err` names anything that is not a file or a
/// directory.
fn read_tree(root: &Path) -> Result<Result<Dataset, String>> {
    let mut dataset = Dataset::empty();
    let mut pending = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel)) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(Error::local("list", &dir))? {
            let entry = entry.map_err(Error::local("list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(Error::local("inspect", entry.path()))?;
            if kind.is_dir() {
                pending.push((entry.path(), path));
            } else if kind.is_file() {
                let content =
                    std::fs::read(entry.path()).map_err(Error::local("read", entry.path()))?;
                dataset.files.insert(path, content);
            } else {
                return Ok(Err(format!("{path}: not a regular file")));
            }
        }
    }
    Ok(Ok(dataset))
}

#[async_trait::async_trait]
impl BackupFormat for Restic {
    fn kind(&self) -> FormatKind {
        FormatKind::Restic
    }

    async fn seed(
        &self,
        store: &StoreLocation,
        dataset: &Dataset,
        at: Option<DateTime<Utc>>,
    ) -> Result<BackupInfo> {
        let s3 = s3_of(store, "seed a backup")?;
        if let Err(e) = self.run(s3, &["cat", "config"], None).await {
            match e {
                Error::Tool { ref stderr, .. } if is_no_repository(stderr) => {
                    self.run(s3, &["init"], None).await?;
                }
                e => return Err(e),
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("phasecheck-restic-seed-")
            .tempdir()
            .map_err(Error::local(
                "create a scratch directory in",
                std::env::temp_dir(),
            ))?;
        let files = dir.path().join(&self.path);
        dataset
            .write_files(&files)
            .map_err(Error::local("write the dataset into", &files))?;
        let time = at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string());
        let mut args = vec!["backup", "--json", "--host", &self.host, "--tag", &self.tag];
        if let Some(time) = &time {
            args.extend(["--time", time]);
        }
        // NB: a relative path keeps its components in the snapshot's tree (`data/…`).
        args.push(if self.path.is_empty() {
            "."
        } else {
            &self.path
        });
        let out = self.run(s3, &args, Some(dir.path())).await?;
        let short = String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|line| serde_json::from_str::<SummaryJson>(line).ok())
            .find(|s| s.message_type == "summary" && !s.snapshot_id.is_empty())
            .map(|s| s.snapshot_id)
            .ok_or_else(|| Error::ToolOutput {
                command: "restic backup --json".into(),
                problem: "no summary with the new snapshot's ID".into(),
            })?;
        self.snapshots(s3)
            .await?
            .into_iter()
            .find(|b| b.id.starts_with(&short))
            .ok_or_else(|| Error::ToolOutput {
                command: "restic snapshots --json".into(),
                problem: format!("the new snapshot {short} is not listed"),
            })
    }

    async fn list(&self, store: &StoreLocation) -> Result<Vec<BackupInfo>> {
        self.snapshots(s3_of(store, "list backups")?).await
    }

    async fn read(&self, store: &StoreLocation, id: &str) -> Result<Dataset> {
        let s3 = s3_of(store, "read a backup")?;
        self.existing(s3, id).await?;
        let target = tempfile::Builder::new()
            .prefix("phasecheck-restic-restore-")
            .tempdir()
            .map_err(Error::local(
                "create a scratch directory in",
                std::env::temp_dir(),
            ))?;
        let path = target.path().to_str().ok_or_else(|| Error::Local {
            action: "use",
            path: target.path().to_owned(),
            source: std::io::Error::other("the temporary directory's path is not UTF-8"),
        })?;
        let invalid = |reason: String| Error::Invalid {
            id: id.to_owned(),
            reason,
        };
        match self
            .run(s3, &["restore", id, "--target", path, "--verify"], None)
            .await
        {
            Ok(_) => {}
            Err(Error::Tool { stderr, .. }) => {
                return Err(invalid(format!("restic restore: {stderr}")));
            }
            Err(e) => return Err(e),
        }
        let under = target.path().join(&self.path);
        if !under.is_dir() {
            return Err(invalid(format!(
                "the snapshot holds nothing at /{} (where the subject's backups keep the dataset)",
                self.path
            )));
        }
        read_tree(&under)?.map_err(invalid)
    }

    async fn damage(&self, store: &StoreLocation, id: &str) -> Result<String> {
        let s3 = s3_of(store, "damage a backup")?;
        let snapshots = self.snapshots(s3).await?;
        if !snapshots.iter().any(|b| b.id == id) {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        let mut trees = BTreeMap::new();
        let mine = self.data_blobs(s3, id, &mut trees).await?;
        let mut others = BTreeSet::new();
        for other in snapshots.iter().filter(|b| b.id != id) {
            others.extend(self.data_blobs(s3, &other.id, &mut trees).await?);
        }
        let indexes = self.run(s3, &["list", "index"], None).await?;
        let mut chosen = None;
        for index in String::from_utf8_lossy(&indexes).split_whitespace() {
            let index: IndexJson = self.cat(s3, "index", index).await?;
            chosen = index.packs.into_iter().find(|pack| {
                pack.blobs
                    .iter()
                    .all(|b| b.kind == "data" && !others.contains(&b.id))
                    && pack.blobs.iter().any(|b| mine.contains(&b.id))
            });
            if chosen.is_some() {
                break;
            }
        }
        let pack = chosen.ok_or_else(|| Error::NothingToDamage {
            id: id.to_owned(),
            reason: "no data pack holds only its own blobs (it shares its data with other snapshots, or has none)".into(),
        })?;
        let blob = pack
            .blobs
            .iter()
            .find(|b| mine.contains(&b.id))
            .expect("the pack was chosen for holding one");
        let key = repository_key(s3, &format!("data/{}/{}", &pack.id[..2], pack.id));
        let client = S3Client::new(s3);
        let mut content = client
            .get(&key)
            .await?
            .ok_or_else(|| Error::Invalid {
                id: id.to_owned(),
                reason: format!("pack {} is indexed but not stored at {key}", pack.id),
            })?
            .to_vec();
        let at = usize::try_from(blob.offset + blob.length / 2).unwrap_or(usize::MAX);
        let byte = content.get_mut(at).ok_or_else(|| Error::Invalid {
            id: id.to_owned(),
            reason: format!("pack {} is shorter than its index says", pack.id),
        })?;
        *byte ^= 0xff;
        client.put(&key, Bytes::from(content)).await?;
        Ok(format!(
            "flipped byte {at} of pack {} (inside blob {}), which only snapshot {id} uses",
            pack.id, blob.id
        ))
    }

    async fn delete(&self, store: &StoreLocation, id: &str) -> Result<()> {
        let s3 = s3_of(store, "delete a backup")?;
        self.existing(s3, id).await?;
        self.run(s3, &["forget", id, "--prune"], None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_is_the_prefix_without_its_slash() {
        let s3 = S3Location::new("http://127.0.0.1:9000", "b", "k", "s");
        assert_eq!(repository(&s3), "s3:http://127.0.0.1:9000/b");
        assert_eq!(repository_key(&s3, "data/ab/abc"), "data/ab/abc");
        let nested = s3.with_prefix("team/app/");
        assert_eq!(repository(&nested), "s3:http://127.0.0.1:9000/b/team/app");
        assert_eq!(repository_key(&nested, "config"), "team/app/config");
    }

    #[tokio::test]
    async fn a_missing_restic_is_its_own_error() {
        let restic = Restic::default().with_program("/nonexistent/restic");
        let store = StoreLocation::S3(S3Location::new("http://127.0.0.1:1", "b", "k", "s"));
        let missing = restic.list(&store).await.unwrap_err();
        assert!(missing.is_tool_missing(), "{missing}");
        assert_eq!(
            missing.to_string(),
            "restic not found: install Debian's `restic`"
        );
    }

    #[tokio::test]
    async fn restic_refuses_git_stores() {
        let store = StoreLocation::Git(crate::remote::GitLocation::new("http://127.0.0.1:1/r"));
        let refused = Restic::default().list(&store).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("restic repositories live on s3"),
            "{refused}"
        );
    }
}

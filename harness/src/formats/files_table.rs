//! A dataset kept in SQLite: the `files(path TEXT PRIMARY KEY, content BLOB NOT NULL)` table of
//! one database, a row per file (docs/CONTRACTS.md, "The litestream subject"). Read and written
//! with Debian's real `sqlite3` CLI, so the harness sees the database as SQLite itself does; the
//! `litestream` format keeps its backups' datasets so, and the `sqlite` data layout its volume's.

use std::path::{Path, PathBuf};

use super::tool::{Input, Tool, run};
use super::{Error, Result};
use crate::dataset::Dataset;

/// The table holding the dataset, one row per file.
pub const TABLE: &str = "files";
/// The table's schema.
pub const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, content BLOB NOT NULL)";
/// Where to get `sqlite3`, in words.
pub const SQLITE3_INSTALL: &str = "Debian's `sqlite3` (apt-get install sqlite3)";

/// The `files` table of SQLite databases, through a `sqlite3` program.
#[derive(Clone, Debug)]
pub struct FilesTable {
    sqlite3: PathBuf,
}

impl Default for FilesTable {
    fn default() -> Self {
        FilesTable {
            sqlite3: PathBuf::from("sqlite3"),
        }
    }
}

impl FilesTable {
    /// Run this program instead of `sqlite3` from PATH.
    pub fn with_sqlite3(program: impl Into<PathBuf>) -> Self {
        FilesTable {
            sqlite3: program.into(),
        }
    }

    /// `sqlite3 -bail {db} {sql}` (or the SQL on standard input); its output when it exits 0.
    async fn run(&self, db: &Path, sql: &str, stdin: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let db = utf8(db)?;
        let mut args = vec!["-bail", db];
        if !sql.is_empty() {
            args.push(sql);
        }
        let tool = Tool {
            name: "sqlite3",
            program: &self.sqlite3,
            install: SQLITE3_INSTALL,
        };
        let input = Input {
            stdin,
            ..Input::default()
        };
        run(&tool, &args, input).await
    }

    /// Makes `db`'s `files` table (created with the database when missing) hold exactly
    /// `dataset`, in one transaction, in WAL mode as Litestream needs.
    pub async fn replace(&self, db: &Path, dataset: &Dataset) -> Result<()> {
        self.run(db, "", Some(replace_sql(dataset))).await.map(drop)
    }

    /// The `files` table of `db` as a dataset, after `PRAGMA integrity_check`; the inner `Err`
    /// says why the database is no valid dataset.
    pub async fn read(&self, db: &Path) -> Result<Result<Dataset, String>> {
        let check = self.run(db, "PRAGMA integrity_check;", None).await;
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
            .run(
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
            .run(
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

/// `path` as UTF-8, which the CLI's arguments need.
pub(crate) fn utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::Local {
        action: "use",
        path: path.to_owned(),
        source: std::io::Error::other("the path is not UTF-8"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}

//! Backup formats: how a workload's backups look in its store, seen the way the format's own
//! tool sees them.
//!
//! Every format implements [`BackupFormat`] against a [`StoreLocation`] the harness owns: seed a
//! dataset as a backup (at a chosen time, so "newest" is well-defined), list backups newest
//! first, read one back as a [`Dataset`] (failing with the reason when it does not verify in the
//! format's own terms), damage one, delete one. The harness's own code does all of it — for
//! `restic`, the real `restic` program — never the code of the workload under test.
//!
//! | format | S3 | git | ID | verification | damage |
//! |---|---|---|---|---|---|
//! | [`phasepod`](Phasepod) | `data/{id}/…` + marker `index/{id}` | one commit per backup | `YYYYMMDDTHHMMSS.mmmZ` | marker ↔ manifest ↔ every file's size and SHA-256 | a file's byte flipped (git: the commit rewritten, its manifest no longer matches) |
//! | [`files`](Files) | `{name}/{path}` | one commit per backup, tree = dataset | name / commit hash | none in the format (S3); git's own object hashes | S3: a file's byte flipped, *undetectable*; git: an object corrupted on the server's disk |
//! | [`restic`](Restic) | a restic repository | — | snapshot ID | restic's (MACs, pack hashes) | a byte flipped in a pack only that snapshot uses |
//! | [`litestream`](Litestream) | a Litestream replica (LTX files) of one SQLite database | — | the TXID an LTX file ends at | litestream's LTX checksums, then `PRAGMA integrity_check` | a byte flipped in the LTX file ending at that TXID |
//!
//! ## What `damage` means, and what a workload can detect
//!
//! - **phasepod**: the manifest and marker carry SHA-256 digests: a workload that checks them
//!   (phasepod's restore does) rejects the damaged backup and can fall back to an older one.
//! - **files on S3** has no integrity data: damage rewrites a file of the backup with changed
//!   bytes, which no reader can tell from a backup of other data. Only a comparison with what was
//!   backed up shows it; a workload restoring it serves the changed file.
//! - **files on git**: over the git protocol every change is a new commit (or a rewritten one),
//!   which is a legitimate backup in git's terms — not damage. Damage is what a failing disk does:
//!   a blob of the backup's commit is replaced on the server's disk by other content under the
//!   same object name. git's own checks catch it: `git clone`/`fetch` refuse the branch ("did not
//!   receive expected object"), `git fsck` on the server reports a hash mismatch. A workload that
//!   clones the branch therefore fails to restore *any* backup of it, not only the damaged one.
//!   It needs the repository on this machine ([`GitLocation::local_repository`], the embedded
//!   server); other git stores answer [`Error::Unsupported`].
//! - **restic**: a flipped byte in a pack fails restic's MAC and pack-hash checks: `restic
//!   restore` of that snapshot and `restic check --read-data` fail; other snapshots still restore.
//! - **litestream**: a flipped byte in an LTX file fails its checksum: `litestream restore` of any
//!   transaction restored through that file fails; earlier transactions still restore. Its
//!   dataset is the database's `files` table, not the database file's bytes.
//!
//! ## Time and order
//!
//! On S3 backups may be seeded in any order of their times (their names or snapshot times say
//! which is newest). A git branch is a chain: a backup seeded on git must be newer than the
//! branch's newest one ([`Error::OutOfOrder`] otherwise), and the chain order is the order.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::dataset::Dataset;
pub use crate::remote::{GitLocation, S3Location, StoreLocation};
use crate::subject::Backend;

pub mod files;
pub mod files_table;
pub mod litestream;
pub mod phasepod;
pub mod restic;
mod time;
mod tool;

pub use self::phasepod::Phasepod;
pub use files::Files;
pub use litestream::Litestream;
pub use restic::Restic;

/// Errors of the backup formats.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The format cannot do this on this kind of store.
    #[error("the {format} format cannot {what} on {backend}: {reason}")]
    Unsupported {
        /// The format.
        format: FormatKind,
        /// What was asked.
        what: &'static str,
        /// The store's kind.
        backend: Backend,
        /// Why not.
        reason: String,
    },
    /// The format's program is not installed here.
    #[error("{program} not found: install {install}")]
    ToolMissing {
        /// The program.
        program: &'static str,
        /// Where to get it, in words (e.g. Debian's `restic`).
        install: &'static str,
    },
    /// The format's program failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        /// The command line (no secrets: they go through the environment).
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// The format's program printed something this harness cannot read.
    #[error("`{command}` printed unexpected output: {problem}")]
    ToolOutput {
        /// The command line.
        command: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No backup has this ID.
    #[error("backup {id} does not exist")]
    NotFound {
        /// The ID asked for.
        id: String,
    },
    /// A backup exists but does not verify in the format's own terms.
    #[error("backup {id} does not verify: {reason}")]
    Invalid {
        /// The backup.
        id: String,
        /// What is wrong with it, naming the file.
        reason: String,
    },
    /// A dataset directory (a volume's, a restored one) does not verify.
    #[error("{}: {reason}", dir.display())]
    InvalidDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it, naming the file.
        reason: String,
    },
    /// A backup with this ID exists already.
    #[error("backup {id} exists already")]
    Exists {
        /// The ID.
        id: String,
    },
    /// A git backup must be newer than the branch's newest one.
    #[error(
        "git backups form a chain: a backup at {at} cannot follow the branch's newest, taken at {newest}; seed them oldest first"
    )]
    OutOfOrder {
        /// The time asked for.
        at: DateTime<Utc>,
        /// The newest backup's time.
        newest: DateTime<Utc>,
    },
    /// The backup has nothing that can be damaged without damaging others.
    #[error("cannot damage backup {id}: {reason}")]
    NothingToDamage {
        /// The backup.
        id: String,
        /// Why.
        reason: String,
    },
    /// The S3 store failed.
    #[error(transparent)]
    S3(#[from] crate::remote::s3::Error),
    /// The git remote failed.
    #[error(transparent)]
    Git(#[from] crate::remote::git::Error),
    /// Local files (scratch space, a dataset directory) failed.
    #[error("{action} {}: {source}", path.display())]
    Local {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Local`] for `action` on `path`.
    pub(crate) fn local(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Local {
            action,
            path,
            source,
        }
    }

    /// Whether the error is a program of the format missing here (the caller may skip).
    pub fn is_tool_missing(&self) -> bool {
        matches!(self, Error::ToolMissing { .. })
    }

    /// Whether the error is about the backup itself (missing or not verifying), not about the
    /// store or the harness.
    pub fn is_bad_backup(&self) -> bool {
        matches!(self, Error::Invalid { .. } | Error::NotFound { .. })
    }
}

/// One backup as its format lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The ID the format knows it by.
    pub id: String,
    /// When it was taken.
    pub taken: DateTime<Utc>,
}

/// The formats the harness knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FormatKind {
    /// phasepod's layout (docs/CONTRACTS.md).
    #[default]
    Phasepod,
    /// A plain copy of the dataset per backup.
    Files,
    /// A restic repository.
    Restic,
    /// A Litestream replica of one SQLite database.
    Litestream,
}

impl FormatKind {
    /// Every format.
    pub const ALL: [FormatKind; 4] = [
        FormatKind::Phasepod,
        FormatKind::Files,
        FormatKind::Restic,
        FormatKind::Litestream,
    ];

    /// The name used in profiles and messages.
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Phasepod => "phasepod",
            FormatKind::Files => "files",
            FormatKind::Restic => "restic",
            FormatKind::Litestream => "litestream",
        }
    }

    /// The format with its defaults.
    pub fn format(self) -> Box<dyn BackupFormat> {
        match self {
            FormatKind::Phasepod => Box::new(Phasepod),
            FormatKind::Files => Box::new(Files),
            FormatKind::Restic => Box::new(Restic::default()),
            FormatKind::Litestream => Box::new(Litestream::default()),
        }
    }

    /// The backends the format can live on.
    pub fn backends(self) -> &'static [Backend] {
        match self {
            FormatKind::Phasepod | FormatKind::Files => &[Backend::S3, Backend::Git],
            FormatKind::Restic | FormatKind::Litestream => &[Backend::S3],
        }
    }
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no format.
#[derive(Debug, thiserror::Error)]
#[error("unknown backup format `{0}` (known: phasepod, files, restic, litestream)")]
pub struct UnknownFormat(pub String);

impl FromStr for FormatKind {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FormatKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// A backup format (see the [module docs](self)).
#[async_trait::async_trait]
pub trait BackupFormat: Send + Sync + fmt::Debug {
    /// Which format.
    fn kind(&self) -> FormatKind;

    /// Whether [`seed`](Self::seed) can take a backup as taken at a chosen time; a format whose
    /// tool stamps its own times (litestream) seeds a history in order, each backup now.
    fn seeds_at_chosen_times(&self) -> bool {
        true
    }

    /// Takes a backup of `dataset` into `store`, as taken at `at` (now when `None`); returns it.
    async fn seed(
        &self,
        store: &StoreLocation,
        dataset: &Dataset,
        at: Option<DateTime<Utc>>,
    ) -> Result<BackupInfo>;

    /// The backups in `store`, newest first. An empty store has none.
    async fn list(&self, store: &StoreLocation) -> Result<Vec<BackupInfo>>;

    /// Backup `id`'s dataset, verified the way the format's own tool verifies it.
    async fn read(&self, store: &StoreLocation, id: &str) -> Result<Dataset>;

    /// Damages backup `id` so that it no longer verifies (where the format can tell; see the
    /// [module docs](self)); returns what was done, in words.
    async fn damage(&self, store: &StoreLocation, id: &str) -> Result<String>;

    /// Deletes backup `id`.
    async fn delete(&self, store: &StoreLocation, id: &str) -> Result<()>;
}

/// `Unsupported` unless `store` is one of `format`'s backends.
pub(crate) fn check_backend(
    format: FormatKind,
    what: &'static str,
    store: &StoreLocation,
) -> Result<()> {
    if format.backends().contains(&store.backend()) {
        return Ok(());
    }
    Err(Error::Unsupported {
        format,
        what,
        backend: store.backend(),
        reason: format!("{format} repositories live on {}", join(format.backends())),
    })
}

fn join(backends: &[Backend]) -> String {
    backends
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// How much of a failed tool's standard error an [`Error::Tool`] keeps (its end).
const STDERR_TAIL: usize = 2000;

/// [`Error::Tool`] for `command`, which exited unsuccessfully with `output`: its status and the
/// end of its standard error.
pub(crate) fn tool_failed(command: String, output: &std::process::Output) -> Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let start = stderr.len().saturating_sub(STDERR_TAIL);
    let start = (start..stderr.len())
        .find(|i| stderr.is_char_boundary(*i))
        .unwrap_or(stderr.len());
    Error::Tool {
        command,
        status: output.status,
        stderr: stderr[start..].trim().to_owned(),
    }
}

/// The dataset's first non-empty file in path order, with its content's first byte flipped.
pub(crate) fn flipped_first_file(dataset: &Dataset) -> Option<(String, Vec<u8>)> {
    dataset
        .files
        .iter()
        .find(|(_, bytes)| !bytes.is_empty())
        .map(|(path, bytes)| {
            let mut changed = bytes.clone();
            changed[0] ^= 0xff;
            (path.clone(), changed)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip_and_unknown_ones_are_refused() {
        for kind in FormatKind::ALL {
            assert_eq!(kind.name().parse::<FormatKind>().unwrap(), kind);
            assert_eq!(kind.format().kind(), kind);
        }
        let unknown = "tarball".parse::<FormatKind>().unwrap_err();
        assert!(unknown.to_string().contains("`tarball`"));
        assert_eq!(FormatKind::default(), FormatKind::Phasepod);
    }

    #[test]
    fn a_missing_tool_says_how_to_install_it() {
        let missing = Error::ToolMissing {
            program: "restic",
            install: "Debian's `restic`",
        };
        assert_eq!(
            missing.to_string(),
            "restic not found: install Debian's `restic`"
        );
        assert!(missing.is_tool_missing());
    }
}

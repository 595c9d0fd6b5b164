//! One directory per `phasecheck run` for every file the run makes: `$TMPDIR/phasecheck-run-*`.
//!
//! The local runtime's pods, the embedded stores and their scratch space all make their files
//! with `tempfile`; [`RunDir::create`] points `tempfile`'s default directory into the run's own
//! directory, which names its owner ([`crate::clean::OWNER_FILE`]). So whatever way the run ends
//! — normally, on a second signal that leaves no time for destructors, or killed outright — one
//! directory holds what is left, and `phasecheck clean` can tell a live run's from a dead one's.

use std::path::{Path, PathBuf};

/// The prefix of run directories.
pub const RUN_PREFIX: &str = "phasecheck-run-";

/// This process's run directory.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `$TMPDIR/phasecheck-run-*`, marks it as this process's, and makes it where every
    /// `tempfile` of this process goes. Once per process.
    pub fn create() -> std::io::Result<RunDir> {
        let path = tempfile::Builder::new()
            .prefix(RUN_PREFIX)
            .tempdir_in(std::env::temp_dir())?
            .keep();
        crate::clean::claim_dir(&path)?;
        if let Err(other) = tempfile::env::override_temp_dir(&path) {
            let _ = std::fs::remove_dir_all(&path);
            return Err(std::io::Error::other(format!(
                "temporary files already go to {}",
                other.display()
            )));
        }
        Ok(RunDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory with everything in it, best effort.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

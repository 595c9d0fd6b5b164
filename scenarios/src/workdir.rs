//! One directory per `phasecheck run` for every file the run makes: `$TMPDIR/phasecheck-run-*`.
//!
//! The local runtime's pods, the embedded stores and their scratch space all make their files
//! with `tempfile`; [`RunDir::create`] points `tempfile`'s default directory into the run's own
//! directory, which names its owner ([`OWNER_FILE`]). So whatever way the run ends
//! — normally, on a second signal that leaves no time for destructors, or killed outright — one
//! directory holds what is left, and `phasecheck clean` can tell a live run's from a dead one's.

use std::path::{Path, PathBuf};

/// The prefix of run directories.
pub const RUN_PREFIX: &str = "phasecheck-run-";

/// The file in a run's or a local runtime's directory naming the process that owns it: `<pid> <start time>`
/// (the start time in clock ticks since boot, as in `/proc/<pid>/stat`).
pub const OWNER_FILE: &str = "phasecheck-run.owner";

/// The prefix of the local runtime's temporary directories.
pub const LOCAL_PREFIX: &str = "phasecheck-local-";

/// Marks `root` (a run's or a local runtime's directory) as this process's, for `phasecheck clean` to tell
/// a live run's directory from a dead one's.
pub fn claim_dir(root: &Path) -> std::io::Result<()> {
    let pid = std::process::id();
    let start = start_time(pid as i32).unwrap_or(0);
    std::fs::write(root.join(OWNER_FILE), format!("{pid} {start}\n"))
}

/// The run a local runtime directory belongs to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: i32,
    pub(crate) start: u64,
}

impl Owner {
    /// Whether that process still runs (the same one: a recycled pid starts at another time).
    pub(crate) fn alive(&self) -> bool {
        start_time(self.pid).is_some_and(|start| start == self.start || self.start == 0)
    }
}

/// Who owns `dir`, as its [`OWNER_FILE`] says.
pub(crate) fn owner(dir: &Path) -> Option<Owner> {
    let text = std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let mut words = text.split_whitespace();
    Some(Owner {
        pid: words.next()?.parse().ok()?,
        start: words.next()?.parse().ok()?,
    })
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // NB: the command name (field 2) may hold spaces and parentheses; fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

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
        claim_dir(&path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_owns_what_it_claims() {
        let dir = tempfile::tempdir().unwrap();
        claim_dir(dir.path()).unwrap();
        let me = owner(dir.path()).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.alive());
        let recycled = Owner {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!recycled.alive(), "another start time is another process");
    }
}

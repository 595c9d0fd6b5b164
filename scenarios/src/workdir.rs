//! One directory per `phasecheck run` for every file the run makes: `<scratch>/phasecheck-run-*`,
//! where `<scratch>` is `$TMPDIR` when it is set, else `/dev/shm` when it is a memory file system
//! with room ([`scratch_root`]), else `/tmp`.
//!
//! The local runtime's pods, the embedded stores and their scratch space all make their files
//! with `tempfile`; [`RunDir::create`] points `tempfile`'s default directory into the run's own
//! directory, which names its owner ([`OWNER_FILE`]). So whatever way the run ends
//! — normally, on a second signal that leaves no time for destructors, or killed outright — one
//! directory holds what is left, and `phasecheck clean` can tell a live run's from a dead one's.

use std::path::{Path, PathBuf};

use nix::sys::statfs::{TMPFS_MAGIC, statfs};
use nix::sys::statvfs::{FsFlags, statvfs};

/// The memory file system run directories prefer when `TMPDIR` is not set.
const MEMORY_SCRATCH: &str = "/dev/shm";
/// How much room [`MEMORY_SCRATCH`] must have left for a run to use it: a full catalog run keeps
/// well under 1 GiB there at its peak.
const MEMORY_SCRATCH_MIN_FREE: u64 = 4 << 30;

/// Where run directories go: `$TMPDIR` when it is set; otherwise `/dev/shm` when it is a tmpfs
/// that allows programs to run and has 4 GiB free (a run creates and deletes tens of thousands of
/// files, which a disk file system makes the run's largest CPU cost); otherwise `/tmp`.
pub fn scratch_root() -> PathBuf {
    if std::env::var_os("TMPDIR").is_some_and(|dir| !dir.is_empty()) {
        return std::env::temp_dir();
    }
    let memory = Path::new(MEMORY_SCRATCH);
    if memory_scratch_usable(memory) {
        memory.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Every directory a run of this host may have put its directory in, for `phasecheck clean`.
pub fn scratch_roots() -> Vec<PathBuf> {
    let mut roots = vec![std::env::temp_dir(), PathBuf::from(MEMORY_SCRATCH)];
    roots.dedup();
    roots
}

fn memory_scratch_usable(dir: &Path) -> bool {
    let Ok(fs) = statfs(dir) else { return false };
    let Ok(vfs) = statvfs(dir) else { return false };
    let free = vfs.blocks_available().saturating_mul(vfs.fragment_size());
    fs.filesystem_type() == TMPFS_MAGIC
        && !vfs
            .flags()
            .intersects(FsFlags::ST_NOEXEC | FsFlags::ST_RDONLY)
        && free >= MEMORY_SCRATCH_MIN_FREE
        && nix::unistd::access(
            dir,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_ok()
}

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
    /// Creates `phasecheck-run-*` under [`scratch_root`], marks it as this process's, and makes
    /// it where every `tempfile` of this process goes. Once per process.
    pub fn create() -> std::io::Result<RunDir> {
        let path = tempfile::Builder::new()
            .prefix(RUN_PREFIX)
            .tempdir_in(scratch_root())?
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

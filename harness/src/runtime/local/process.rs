//! Host processes: spawning them in their own process group, knowing which pod owns which group,
//! and signalling groups.
//!
//! Every process the runtime starts (container runs, `exec`, exec probes: each a sandbox
//! launcher, or the process itself without sandboxes) leads a new process group
//! (`process_group(0)`), so a signal reaches everything it forked unless that left the group on
//! purpose (`setsid`, daemons; in a sandbox those still die with its PID namespace). The
//! [`ProcessTable`] is the single list of live groups; spawning and closing both take its lock,
//! so once a pod (or the runtime) is told to stop, no new process can slip in after the kill.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Who a process group belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Owner {
    /// The pod's UID.
    pub pod_uid: String,
    /// Index of the container in the pod (init containers first).
    pub container: usize,
    /// Whether this is the container's main process (not an exec or probe).
    pub main: bool,
}

#[derive(Default)]
struct Groups {
    closed: bool,
    live: BTreeMap<i32, Owner>,
}

/// The live process groups of one runtime.
#[derive(Default)]
pub(super) struct ProcessTable {
    groups: Mutex<Groups>,
}

/// What [`ProcessTable::spawn`] did.
pub(super) enum Spawned {
    /// The process runs; its pid is also its process group id.
    Started(Child, i32),
    /// Not started: the runtime is shut down or `allowed` said no.
    Refused,
}

impl ProcessTable {
    /// Spawns `cmd` as the leader of a new process group owned by `owner`, unless the table is
    /// closed or `allowed()` is false (checked under the same lock as [`Self::signal`]).
    pub(super) fn spawn(
        &self,
        cmd: &mut Command,
        owner: Owner,
        allowed: impl FnOnce() -> bool,
    ) -> io::Result<Spawned> {
        cmd.process_group(0).kill_on_drop(true);
        let mut groups = self.groups.lock().expect("process table lock");
        if groups.closed || !allowed() {
            return Ok(Spawned::Refused);
        }
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| io::Error::other("spawned process has no pid"))?;
        groups.live.insert(pid, owner);
        Ok(Spawned::Started(child, pid))
    }

    /// Forgets a group whose leader has exited but is not yet reaped, SIGKILLing whatever is left
    /// in it (a container's processes end with its main process, as in a real container).
    pub(super) fn release(&self, pgid: i32) {
        let mut groups = self.groups.lock().expect("process table lock");
        groups.live.remove(&pgid);
        // NB: the leader is a zombie until reaped, so the group id cannot have been recycled.
        signal_group(pgid, Signal::SIGKILL);
    }

    /// Sends `signal` to every live group whose owner matches; returns how many groups.
    pub(super) fn signal(&self, matches: impl Fn(&Owner) -> bool, signal: Signal) -> usize {
        let groups = self.groups.lock().expect("process table lock");
        let mut n = 0;
        for (pgid, owner) in &groups.live {
            if matches(owner) {
                signal_group(*pgid, signal);
                n += 1;
            }
        }
        n
    }

    /// Refuses all further spawns and SIGKILLs every live group. Synchronous, for `Drop`.
    pub(super) fn close_and_kill(&self) {
        let Ok(mut groups) = self.groups.lock() else {
            return;
        };
        groups.closed = true;
        for pgid in groups.live.keys() {
            signal_group(*pgid, Signal::SIGKILL);
        }
    }

    /// Whether [`Self::close_and_kill`] ran.
    pub(super) fn is_closed(&self) -> bool {
        self.groups.lock().map_or(true, |g| g.closed)
    }
}

/// Waits until the child `pid` has exited, leaving it unreaped (a zombie keeps its pid and
/// process group id reserved, so the group can still be killed safely).
pub(super) async fn exited(pid: i32) {
    let wait = tokio::task::spawn_blocking(move || {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        loop {
            match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
                Err(Errno::EINTR) => continue,
                // Exited, or not our child any more (already reaped): either way it is gone.
                _ => return,
            }
        }
    });
    let _ = wait.await;
}

fn signal_group(pgid: i32, signal: Signal) {
    // ESRCH (already gone) is fine; nothing else can fail for our own children.
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// The exit code of a finished process: its code, or 128 + the signal that ended it.
pub(super) fn exit_code(status: std::process::ExitStatus) -> (i32, bool) {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, false),
        (None, Some(signal)) => (128 + signal, true),
        (None, None) => (255, false),
    }
}

//! What every pod of a runtime shares: the image map, the sandboxes, the restart back-off, the
//! process table and the change signal waiters listen to.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::admission::Admission;
use super::images::ImageMap;
use super::process::ProcessTable;
use super::sandbox::{Isolation, Sandboxes};

/// The value of `spec.nodeName` (fieldRef) for every pod.
pub(super) const NODE_NAME: &str = "phasecheck-local";

/// Capped exponential back-off between container restarts (Kubernetes' CrashLoopBackOff with a
/// configurable start and cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before restart number `streak` + 1 of a run of quick failures.
    pub(super) fn delay(&self, streak: u32) -> Duration {
        let factor = 1u32.checked_shl(streak.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.cap)
    }

    /// A run this long resets the back-off (Kubernetes: twice the cap).
    pub(super) fn reset_after(&self) -> Duration {
        self.cap * 2
    }
}

/// The shared parts of one runtime.
pub(super) struct Node {
    pub images: ImageMap,
    /// How containers are isolated.
    pub isolation: Isolation,
    /// How sandboxes are started; `None` when there are none.
    pub sandboxes: Option<Sandboxes>,
    pub backoff: Backoff,
    /// Longest time from SIGTERM to SIGKILL.
    pub grace: Duration,
    /// Where logs go instead of the pod directories, if set.
    pub log_dir: Option<PathBuf>,
    pub procs: ProcessTable,
    /// The webhook configurations pods are created through.
    pub admission: Admission,
    /// Bumped on every change of any pod's status; waiters re-check their condition.
    changes: watch::Sender<u64>,
}

impl Node {
    pub(super) fn new(
        images: ImageMap,
        sandboxes: Result<Sandboxes, Isolation>,
        backoff: Backoff,
        grace: Duration,
        log_dir: Option<PathBuf>,
    ) -> Self {
        let (isolation, sandboxes) = match sandboxes {
            Ok(s) if s.user_namespace => (Isolation::UserNamespace, Some(s)),
            Ok(s) => (Isolation::Sandbox, Some(s)),
            Err(isolation) => (isolation, None),
        };
        Node {
            images,
            isolation,
            sandboxes,
            backoff,
            grace,
            log_dir,
            procs: ProcessTable::default(),
            admission: Admission::default(),
            changes: watch::Sender::new(0),
        }
    }

    /// Whether the runtime can set users, groups and file ownership (sandboxes made as root).
    pub(super) fn honours_users(&self) -> bool {
        self.isolation == Isolation::Sandbox
    }

    /// Tells every waiter that some pod changed. Call it with no pod lock held.
    pub(super) fn notify(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Resolves once `cond` holds, checking it after every [`Self::notify`].
    pub(super) async fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        let mut changes = self.changes.subscribe();
        loop {
            // NB: `cond` runs with no watch borrow held: it takes pod and namespace locks, and
            // `notify` may be called under those.
            changes.borrow_and_update();
            if cond() || changes.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(200),
            cap: Duration::from_secs(2),
        };
        let delays: Vec<u128> = (0..6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.delay(100), Duration::from_secs(2));
    }
}

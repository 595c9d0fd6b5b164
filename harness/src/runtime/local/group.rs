//! A process group the node tracks, released (and what is left in it killed) when its guard drops.

use std::sync::Arc;

use super::node::Node;

/// Releases a process group when dropped (e.g. when a waiting future is cancelled), killing
/// what is left in it.
pub(super) struct GroupGuard {
    node: Arc<Node>,
    pgid: i32,
    released: bool,
}

impl GroupGuard {
    /// Guards `pgid`. Declare it after the `Child`, so it drops first, while the leader is not
    /// yet reaped.
    pub(super) fn new(node: Arc<Node>, pgid: i32) -> Self {
        GroupGuard {
            node,
            pgid,
            released: false,
        }
    }

    /// The process group's ID (its leader's PID).
    pub(super) fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Releases the group now: call it once the leader has exited, before reaping it.
    pub(super) fn release(&mut self) {
        if !std::mem::replace(&mut self.released, true) {
            self.node.procs.release(self.pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.release();
    }
}

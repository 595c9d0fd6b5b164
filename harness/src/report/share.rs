//! The harness's own share of a case's wall time: what it spent setting up, seeding and reading
//! the store, reading and writing the volume, and cleaning up, as opposed to waiting for the
//! workload.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One kind of harness work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Starting the case's store, applying manifests.
    Setup,
    /// Taking backups for the workload to restore.
    Seed,
    /// Listing, reading, verifying and damaging backups.
    Store,
    /// Reading, writing and counting the files on the volume.
    Volume,
    /// Saving artefacts and timelines, deleting the namespace, removing the store's scope.
    Teardown,
}

/// Milliseconds of harness work per [`Phase`] in one case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarnessShare {
    /// [`Phase::Setup`].
    pub setup_ms: u64,
    /// [`Phase::Seed`].
    pub seed_ms: u64,
    /// [`Phase::Store`].
    pub store_ms: u64,
    /// [`Phase::Volume`].
    pub volume_ms: u64,
    /// [`Phase::Teardown`].
    pub teardown_ms: u64,
}

impl HarnessShare {
    /// Adds `spent` to `phase`.
    pub fn add(&mut self, phase: Phase, spent: Duration) {
        let ms = spent.as_millis() as u64;
        let slot = match phase {
            Phase::Setup => &mut self.setup_ms,
            Phase::Seed => &mut self.seed_ms,
            Phase::Store => &mut self.store_ms,
            Phase::Volume => &mut self.volume_ms,
            Phase::Teardown => &mut self.teardown_ms,
        };
        *slot += ms;
    }

    /// Every phase together.
    pub fn total_ms(&self) -> u64 {
        self.setup_ms + self.seed_ms + self.store_ms + self.volume_ms + self.teardown_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_adds_up_its_phases() {
        let mut share = HarnessShare::default();
        share.add(Phase::Seed, Duration::from_millis(30));
        share.add(Phase::Store, Duration::from_millis(20));
        share.add(Phase::Seed, Duration::from_millis(5));
        assert_eq!(share.seed_ms, 35);
        assert_eq!(share.total_ms(), 55);
    }
}

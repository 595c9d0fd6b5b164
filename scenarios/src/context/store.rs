//! The backup store: seeding, listing, waiting for and verifying backups.

use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use harness::dataset::Dataset;
use harness::formats::BackupInfo;
use harness::runtime::Runtime;

use harness::report::Phase;

use super::Scenario;
use crate::outcome::{Check, Context};
use crate::{ensure, fail};

impl<'a, R: Runtime> Scenario<'a, R> {
    /// Takes a backup of `dataset` into the scenario's store; returns its ID.
    pub async fn seed_backup(&self, dataset: &Dataset) -> Check<String> {
        let id = self
            .recorder
            .timed(Phase::Seed, self.store.seed(dataset))
            .await
            .context("seeding a backup")?;
        self.seeded.lock().expect("not poisoned").push(id.clone());
        self.recorder.seeded(&id);
        Ok(id)
    }

    /// Seeds `datasets` (oldest first) as backups taken an hour apart, ending an hour ago.
    /// Where the store allows it (not git, whose history is the order), they are created out
    /// of order (for four: the third, the first, the newest, the second), so that a workload
    /// that takes the newest upload, or the last listed, for the newest backup shows. A format
    /// that stamps its own times ([`BackupFormat::seeds_at_chosen_times`]) gets them in order,
    /// each taken now. Returns their IDs, oldest first.
    ///
    /// [`BackupFormat::seeds_at_chosen_times`]: harness::formats::BackupFormat::seeds_at_chosen_times
    pub async fn seed_history(&self, datasets: &[Dataset]) -> Check<Vec<String>> {
        let n = datasets.len();
        let now = Utc::now();
        let backdated = self.store.format().seeds_at_chosen_times();
        let taken = |i: usize| backdated.then(|| now - chrono::Duration::hours((n - i) as i64));
        let order: Vec<usize> =
            if backdated && self.case.backend != harness::subject::Backend::Git && n >= 3 {
                [n - 2, 0, n - 1].into_iter().chain(1..n - 2).collect()
            } else {
                (0..n).collect()
            };
        let mut ids = vec![String::new(); n];
        for i in order {
            let info = self
                .store
                .seed_at(&datasets[i], taken(i))
                .await
                .context("seeding a backup")?;
            self.seeded
                .lock()
                .expect("not poisoned")
                .push(info.id.clone());
            self.recorder.seeded(&info.id);
            ids[i] = info.id;
        }
        Ok(ids)
    }

    /// Backup IDs in the store, newest first.
    pub async fn backups(&self) -> Check<Vec<String>> {
        Ok(self
            .backup_infos()
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect())
    }

    /// The backups in the store, newest first, with the time each was taken (as the format
    /// lists them: phasepod's IDs, a files backup's name, a restic snapshot's time).
    pub(super) async fn backup_infos(&self) -> Check<Vec<BackupInfo>> {
        let backups = self
            .recorder
            .timed(Phase::Store, self.store.list())
            .await
            .context("listing backups")?;
        self.recorder.listed(&backups);
        Ok(backups)
    }

    /// Restores backup `id` into a scratch directory, verifying every file.
    pub async fn expect_backup_verifies(&self, id: &str) -> Check {
        match self
            .recorder
            .timed(Phase::Store, self.store.verify(id))
            .await
        {
            Ok(_) => Ok(()),
            // NB: a backup the subject made that does not verify is its violation; a store the
            // harness cannot read is the harness's error.
            Err(harness::backups::Error::Format(e)) if e.is_bad_backup() => {
                fail!("{e}")
            }
            Err(e) => Err(e).with_context(|| format!("reading backup {id}")),
        }
    }

    /// A whole second at least the runtime's schedule lead ([`crate::pacing::Pacing`]) from
    /// now, for a schedule.
    pub fn schedule_ahead(&self) -> DateTime<Utc> {
        whole_second_after(self.pacing().schedule_lead)
    }

    /// Waits until the wall clock reaches `at` (a fault that must span a scheduled time).
    pub async fn wait_until(&self, at: DateTime<Utc>) {
        if let Ok(wait) = (at - Utc::now()).to_std() {
            // NB: the condition is the clock itself: the store must stay down past `at`.
            tokio::time::sleep(wait).await;
        }
    }

    /// Sleeps until half a second before `at` (the observation point for "none before it").
    pub(super) async fn sleep_until_just_before(&self, at: DateTime<Utc>) {
        let target = at - chrono::Duration::milliseconds(500);
        if let Ok(wait) = (target - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Just before `at`, the store holds no backup the workload took before `at` (backup IDs carry
    /// the time they were taken, so a slow listing cannot blur the line; seeded ones do not
    /// count).
    pub async fn expect_no_backup_before(&self, at: DateTime<Utc>) -> Check {
        self.sleep_until_just_before(at).await;
        let seeded = self.seeded.lock().expect("not poisoned").clone();
        let early: Vec<String> = self
            .backup_infos()
            .await?
            .into_iter()
            .filter(|b| b.taken < at)
            .map(|b| b.id)
            .filter(|id| !seeded.contains(id))
            .collect();
        ensure!(
            early.is_empty(),
            "backups taken before the scheduled time {at}: {early:?}"
        );
        Ok(())
    }

    /// The newest backup taken at or after `at`, if the store holds one.
    pub async fn backup_taken_since(&self, at: DateTime<Utc>) -> Check<Option<BackupInfo>> {
        let backups = self.backup_infos().await?;
        Ok(backups
            .into_iter()
            .find(|b| b.taken >= at - chrono::Duration::milliseconds(1)))
    }

    /// Waits for a backup taken at or after `at` and no later than `at + tolerance`.
    pub async fn wait_backup_after(&self, at: DateTime<Utc>, tolerance: Duration) -> Check<String> {
        let deadline = at + chrono::Duration::from_std(tolerance).expect("small duration");
        let mut changes = self.store.changes();
        loop {
            let backups = self.backup_infos().await?;
            if let Some(backup) = backups
                .iter()
                .find(|b| b.taken >= at - chrono::Duration::milliseconds(1))
            {
                ensure!(
                    backup.taken <= deadline,
                    "backup {} was taken at {}, later than {at} + {tolerance:?}",
                    backup.id,
                    backup.taken
                );
                return Ok(backup.id.clone());
            }
            // NB: punctuality is judged by the time a backup was taken (its ID); one taken in
            // time may still be uploading on a loaded machine.
            let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
            let give_up = deadline + chrono_of(self.pacing().completion_grace);
            let Ok(left) = (give_up - Utc::now()).to_std() else {
                fail!("no backup taken between {at} and {deadline}; backups: {ids:?}");
            };
            // NB: listed once more when the time is up, for a backup whose upload just ended.
            changes.next(left).await;
        }
    }

    /// Waits until the store holds at most `n` backups (pruning may take
    /// [`Pacing::prune`](crate::pacing::Pacing::prune)).
    pub async fn wait_backup_count_at_most(&self, n: u32) -> Check {
        let deadline = Instant::now() + self.pacing().prune;
        let mut changes = self.store.changes();
        loop {
            let ids = self.backups().await?;
            if ids.len() <= n as usize {
                return Ok(());
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                fail!("{} backups kept with KEEP={n}: {ids:?}", ids.len());
            };
            changes.next(left).await;
        }
    }
}

/// A whole second at least `lead` from now.
pub(crate) fn whole_second_after(lead: Duration) -> DateTime<Utc> {
    let at = Utc::now() + chrono_of(lead);
    (at + chrono::Duration::seconds(1))
        .with_nanosecond(0)
        .expect("zero nanoseconds is valid")
}

/// `d` as a chrono duration (the pacing's lengths are minutes at most).
pub(super) fn chrono_of(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

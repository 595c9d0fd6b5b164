//! Faults: injecting them and waiting for their effect.

use std::time::Instant;

use chrono::{DateTime, Utc};
use harness::faults::{self, Fault};
use harness::report::{EventKind, Phase};
use harness::runtime::PodInfo;
use harness::runtime::Runtime;

use super::Scenario;
use crate::ensure;
use crate::outcome::{Check, Context};
use crate::rules;

impl<'a, R: Runtime> Scenario<'a, R> {
    /// Realises `fault` on this scenario's runtime and store, and records when it struck.
    pub async fn inject(&mut self, fault: Fault) -> Check {
        let what = fault.to_string();
        let at = self.strike(fault).await?;
        self.recorder.event(at, EventKind::Fault, what);
        Ok(())
    }

    /// Takes the store down when the wall clock reaches `at` ([`Fault::StoreDown`] on time: the
    /// store's own timer, not this case's task, which a busy machine can make late), records the
    /// fault and returns the moment the store went down.
    pub async fn store_down_at(&mut self, at: DateTime<Utc>) -> Check<DateTime<Utc>> {
        let fault = Fault::StoreDown;
        let went_down = self
            .store
            .down_at(at)
            .await
            .with_context(|| format!("fault `{fault}` at {at}"))?;
        self.recorder
            .event(went_down, EventKind::Fault, fault.to_string());
        Ok(went_down)
    }

    /// Realises `fault`; returns the moment its last step began (the strike itself, after any
    /// preparation or wait).
    pub(super) async fn strike(&mut self, fault: Fault) -> Check<DateTime<Utc>> {
        let step = format!("fault `{fault}`");
        let at = Utc::now();
        match fault {
            Fault::EmptyVolume => {
                let empty = tempfile::tempdir().context("scratch directory")?;
                let at = Utc::now();
                self.write_volume(empty.path()).await.context(&step)?;
                Ok(at)
            }
            Fault::CorruptVolume { mode } => {
                let copy = self.read_volume().await?;
                faults::corrupt_dataset(copy.path(), &self.subject().profile.data, mode)
                    .context(&step)?;
                let at = Utc::now();
                self.write_volume(copy.path()).await.context(&step)?;
                Ok(at)
            }
            Fault::CorruptLatestBackup => {
                self.recorder
                    .timed(Phase::Store, self.store.corrupt_latest())
                    .await
                    .context(&step)?;
                Ok(at)
            }
            Fault::DeleteLatestBackup => {
                self.recorder
                    .timed(Phase::Store, self.store.delete_latest())
                    .await
                    .context(&step)?;
                Ok(at)
            }
            Fault::StoreDown => {
                self.store.down().await.context(&step)?;
                Ok(at)
            }
            Fault::StoreUp => {
                self.store.up().await.context(&step)?;
                Ok(at)
            }
            Fault::SlowStore {
                bytes_per_sec,
                latency,
            } => {
                let slowness = harness::services::Slowness {
                    bytes_per_sec,
                    latency,
                };
                self.store.slow_down(Some(slowness)).context(&step)?;
                Ok(at)
            }
            Fault::StoreFullSpeed => {
                self.store.slow_down(None).context(&step)?;
                Ok(at)
            }
            Fault::KillContainer { name } => {
                let pod = self.current_pod().await?;
                let at = Utc::now();
                self.ns
                    .kill_container(&pod.name, &name)
                    .await
                    .context(&step)?;
                Ok(at)
            }
            Fault::DeletePod => {
                let pod = self.current_pod().await?;
                let uids = self.remember_pods(Some(&pod)).await;
                let at = Utc::now();
                self.ns.delete_pod(&pod.name).await.context(&step)?;
                self.recorder.removed(&uids, at);
                Ok(at)
            }
            Fault::KillInitMidRestore => {
                let pod = self
                    .ns
                    .wait_for_pod(
                        self.workload_name(),
                        rules::any_pod(),
                        self.env.timeouts.ready,
                    )
                    .await
                    .context(&step)?;
                let restore = self.subject().profile.containers.restore[0].clone();
                let name = restore.clone();
                self.ns
                    .wait_for_timeline(
                        &pod.name,
                        // NB: started, whether or not it still runs: a restore that already
                        // finished is a missed strike the caller retries.
                        move |t| !t.runs(&name).is_empty(),
                        self.env.timeouts.ready,
                    )
                    .await
                    .violation("waiting for the restore container to start")?;
                self.wait_restore_under_way().await?;
                let at = Utc::now();
                self.ns
                    .kill_container(&pod.name, &restore)
                    .await
                    .context(&step)?;
                Ok(at)
            }
        }
    }

    /// Waits until the restore is under way, so a kill lands mid-way: it has written a few files
    /// on the volume; without a claim to look at (or for a database, one file), it has downloaded [`RESTORE_PROGRESS_BYTES`]
    /// (an embedded store counts them); without either, the start of the restore has to do.
    pub(super) async fn wait_restore_under_way(&self) -> Check {
        let baseline = self.store.bytes_sent();
        let count_files = self.data_on_claim() && !self.layout().is_one_file();
        if !count_files && baseline.is_none() {
            return Ok(());
        }
        let under_way = self.pacing().restore_under_way;
        let deadline = Instant::now() + under_way;
        loop {
            if count_files {
                if self.volume_file_count(RESTORE_PROGRESS_FILES).await? >= RESTORE_PROGRESS_FILES {
                    return Ok(());
                }
            } else if let Some((now, then)) = self.store.bytes_sent().zip(baseline)
                && now.saturating_sub(then) >= RESTORE_PROGRESS_BYTES
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the restore was not under way within {under_way:?} (no {RESTORE_PROGRESS_FILES} \
                 files on the volume, or {RESTORE_PROGRESS_BYTES} bytes from the store)"
            );
            tokio::time::sleep(self.pacing().restore_progress_every).await;
        }
    }

    /// Whether a [`Fault::SlowStore`] paces this case's restores: the store is an embedded one
    /// (it can be slowed) and the backend is S3, where a restore writes files as it downloads
    /// them (a git restore fetches everything before it writes a file, so the store cannot pace
    /// its writes).
    pub fn store_paces_restores(&self) -> bool {
        self.store_can_slow_down() && self.case.backend == harness::subject::Backend::S3
    }

    /// Whether the store can be slowed down ([`Fault::SlowStore`]): the embedded ones.
    pub fn store_can_slow_down(&self) -> bool {
        self.store.bytes_sent().is_some()
    }

    pub(super) async fn current_pod(&self) -> Check<PodInfo> {
        self.ns
            .wait_for_pod(
                self.workload_name(),
                rules::any_pod(),
                self.env.timeouts.ready,
            )
            .await
            .context("finding the pod")
    }
}

/// Files a restore must have written before [`Fault::KillInitMidRestore`] strikes.
const RESTORE_PROGRESS_FILES: usize = 20;

/// Bytes a restore must have downloaded before [`Fault::KillInitMidRestore`] strikes, when the
/// store counts them.
const RESTORE_PROGRESS_BYTES: u64 = 64 * 1024;

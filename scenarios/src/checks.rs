//! The scenarios: one function per catalog requirement, written to read like the requirement.
//!
//! Each gets a fresh [`Scenario`]: its own namespace, object store or git server, and volume.

use std::time::Duration;

use harness::dataset::Dataset;
use harness::faults::{CorruptionMode, Fault};
use harness::runtime::Runtime;

use crate::catalog::CheckId;
use crate::context::{Knobs, Scenario};
use crate::continuous;
use crate::outcome::{Check, Context, Failure};
use crate::{ensure, fail};

impl<R: Runtime> Scenario<'_, R> {
    /// A series of backups ([`crate::pacing::Pacing::series_every`], for about a minute) from
    /// [`crate::pacing::Pacing::series_lead`] on, for scenarios that need one backup after a
    /// step whose length a loaded machine decides (a large restore, writes): they take the first
    /// time after that step, so times the pod was not up for yet cost nothing.
    fn backup_series(&self) -> Vec<chrono::DateTime<chrono::Utc>> {
        let first = crate::context::whole_second_after(self.pacing().series_lead);
        let every = chrono::Duration::from_std(self.pacing().series_every).expect("seconds");
        (0..12).map(|k| first + every * k).collect()
    }
}

/// Runs the scenario of `check`: every [`CheckId`] has exactly one, so the catalog cannot name a
/// requirement no scenario implements; a continuous workload's maintenance requirements have
/// their own ([`crate::continuous`]). Each scenario's future is boxed: on the heap, not on the
/// (small) stack of the thread that polls every case.
pub async fn run<R: Runtime>(check: CheckId, s: &mut Scenario<'_, R>) -> Check {
    if let Some(lag) = s.replication_lag() {
        match check {
            CheckId::OnSchedule => return Box::pin(continuous::mnt_1_within_lag(s)).await,
            CheckId::RoundTrip => return Box::pin(continuous::mnt_2_round_trip(s)).await,
            CheckId::StoreOutage => return Box::pin(continuous::mnt_3_store_outage(s)).await,
            CheckId::SidecarCrash => return Box::pin(continuous::mnt_5_sidecar_crash(s)).await,
            CheckId::Consistent => return Box::pin(continuous::mnt_6_consistent(s, lag)).await,
            _ => {}
        }
    }
    match check {
        CheckId::RestoreEmpty => Box::pin(init_1_restore_empty(s)).await,
        CheckId::KeepValid => Box::pin(init_2_keep_valid(s)).await,
        CheckId::RepairCorrupt => Box::pin(init_3_repair_corrupt(s)).await,
        CheckId::FreshStart => Box::pin(init_4_fresh_start(s)).await,
        CheckId::SkipBadBackup => Box::pin(init_5_skip_bad_backup(s)).await,
        CheckId::NoStartBlind => Box::pin(init_6_no_start_blind(s)).await,
        CheckId::AtomicRestore => Box::pin(init_7_atomic_restore(s)).await,
        CheckId::Ordering => Box::pin(run_1_ordering(s)).await,
        CheckId::ServesRestored => Box::pin(run_2_serves_restored(s)).await,
        CheckId::CredsIsolated => Box::pin(sec_1_creds_isolated(s)).await,
        CheckId::MaintReadOnly => Box::pin(sec_2_maint_read_only(s)).await,
        CheckId::OnSchedule => Box::pin(mnt_1_on_schedule(s)).await,
        CheckId::RoundTrip => Box::pin(mnt_2_round_trip(s)).await,
        CheckId::StoreOutage => Box::pin(mnt_3_store_outage(s)).await,
        CheckId::Retention => Box::pin(mnt_4_retention(s)).await,
        CheckId::SidecarCrash => Box::pin(mnt_5_sidecar_crash(s)).await,
        CheckId::Consistent => Box::pin(mnt_6_consistent(s)).await,
        CheckId::Recreate => Box::pin(life_1_recreate(s)).await,
    }
}

/// INIT-1: volume empty, backups exist → the newest valid backup is restored before the run phase.
async fn init_1_restore_empty<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let newest = Dataset::realistic("newest", 4);
    let mut history: Vec<Dataset> = ["oldest", "older", "old"]
        .iter()
        .map(|label| Dataset::generated(label, 4, 2048))
        .collect();
    history.push(newest.clone());
    s.seed_history(&history).await?;
    let pod = s.deploy(Knobs::default()).await?;
    s.expect_restore_finished_before_run(&pod.name).await?;
    s.expect_serves(&pod, &newest).await
}

/// INIT-2: a valid dataset newer than any backup is left byte-for-byte unchanged (for a
/// database, its content: SQLite changes a database's bytes whenever it opens it for writing).
async fn init_2_keep_valid<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    s.seed_backup(&Dataset::generated("backup", 4, 2048))
        .await?;
    s.prepare_storage().await?;
    let local = Dataset::generated("local-newer", 6, 3000);
    s.write_volume_dataset(&local, 1000).await?;
    let before = if s.layout().compares_bytes() {
        Some(s.volume_snapshot().await?)
    } else {
        None
    };
    let pod = s.deploy(Knobs::default()).await?;
    if let Some(before) = before {
        let after = s.volume_snapshot().await?;
        if let Some(change) = before.first_difference(&after) {
            fail!("init changed the valid dataset on the volume: {change}");
        }
    }
    s.expect_serves(&pod, &local).await
}

/// INIT-3: each corruption of the volume → the newest valid backup restored.
async fn init_3_repair_corrupt<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let backup = Dataset::realistic("backup", 4);
    s.seed_backup(&backup).await?;
    s.prepare_storage().await?;
    for mode in CorruptionMode::for_layout(s.layout()) {
        s.write_volume_dataset(&Dataset::generated("local", 6, 2048), 500)
            .await?;
        s.inject(Fault::CorruptVolume { mode }).await?;
        let pod = s.deploy(Knobs::default()).await?;
        s.expect_serves(&pod, &backup)
            .await
            .with_context(|| format!("after {mode}"))?;
        s.stop_workload().await?;
    }
    Ok(())
}

/// INIT-4: volume empty, no backup → init succeeds, the app starts on an empty dataset.
async fn init_4_fresh_start<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let pod = s.deploy(Knobs::default()).await?;
    s.expect_restore_finished_before_run(&pod.name).await?;
    s.expect_serves(&pod, &Dataset::empty()).await
}

/// INIT-5: the newest backup fails verification → the newest one that passes is restored.
async fn init_5_skip_bad_backup<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let good = Dataset::realistic("good", 4);
    s.seed_history(&[
        Dataset::generated("older-good", 4, 2048),
        Dataset::generated("old-good", 4, 2048),
        good.clone(),
        Dataset::generated("to-corrupt", 5, 2048),
    ])
    .await?;
    s.inject(Fault::CorruptLatestBackup).await?;
    let pod = s.deploy(Knobs::default()).await?;
    s.expect_serves(&pod, &good).await
}

/// INIT-6: store unreachable and volume empty or corrupt → the run phase never starts; once the
/// store is back, restore completes and the app starts.
async fn init_6_no_start_blind<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let backup = Dataset::generated("backup", 5, 2048);
    s.seed_backup(&backup).await?;
    s.prepare_storage().await?;
    for volume in ["empty", "corrupt"] {
        if volume == "corrupt" {
            s.stop_workload().await?;
            s.write_volume_dataset(&Dataset::generated("local", 5, 2048), 700)
                .await?;
            s.inject(Fault::CorruptVolume {
                mode: CorruptionMode::FlipBytes,
            })
            .await?;
        }
        s.inject(Fault::StoreDown).await?;
        s.deploy_without_waiting(Knobs::default()).await?;
        s.wait_restore_held(2, s.pacing().restore_held)
            .await
            .with_context(|| format!("{volume} volume"))?;
        s.expect_run_phase_not_started()
            .await
            .with_context(|| format!("{volume} volume"))?;
        s.inject(Fault::StoreUp).await?;
        let pod = s.wait_ready().await?;
        s.expect_restore_finished_before_run(&pod.name).await?;
        s.expect_serves(&pod, &backup)
            .await
            .with_context(|| format!("{volume} volume, after the store came back"))?;
    }
    Ok(())
}

/// INIT-7: an init killed mid-restore leaves nothing the next attempt mistakes for a valid dataset.
async fn init_7_atomic_restore<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    // NB: a restore the store cannot pace needs many small files to give the kill a chance.
    let backup = if s.store_paces_restores() {
        Dataset::generated("large", 200, 4096)
    } else {
        Dataset::generated("large", 800, 1024)
    };
    s.seed_backup(&backup).await?;
    s.prepare_storage().await?;
    // NB: this also readies a cluster's claim helper, so counting files mid-restore is quick.
    if s.data_on_claim() {
        ensure!(
            s.volume_file_count(1).await? == 0,
            "the fresh data volume is not empty"
        );
    }
    if s.store_paces_restores() {
        // NB: the store sends the backup no faster than in `Pacing::slow_restore`, so the kill lands
        // mid-restore on the first attempt however busy the machine: no race, no retry.
        s.inject(slow_store_for(&backup, s.pacing().slow_restore))
            .await?;
        s.deploy_without_waiting(Knobs::default()).await?;
        s.inject(Fault::KillInitMidRestore).await?;
        s.inject(Fault::StoreFullSpeed).await?;
    } else {
        // NB: without a store that paces the restore, it may finish before the kill lands on a
        // loaded machine; try again then.
        let attempts = 3;
        for attempt in 1..=attempts {
            s.deploy_without_waiting(Knobs::default()).await?;
            match s.inject(Fault::KillInitMidRestore).await {
                Ok(()) => break,
                Err(missed) if attempt < attempts => {
                    tracing::info!("INIT-7: attempt {attempt} missed the restore: {missed}");
                    s.stop_workload().await?;
                    s.inject(Fault::EmptyVolume).await?;
                }
                Err(missed) => return Err(missed),
            }
        }
    }
    s.expect_no_partial_dataset_looks_valid(&backup).await?;
    let pod = s.wait_ready().await.context("after the killed restore")?;
    s.expect_serves(&pod, &backup).await
}

/// A [`Fault::SlowStore`] under which sending `backup`'s bytes takes at least `at_least`.
fn slow_store_for(backup: &Dataset, at_least: Duration) -> Fault {
    let bytes: usize = backup.files.values().map(Vec::len).sum();
    Fault::SlowStore {
        bytes_per_sec: (bytes as f64 / at_least.as_secs_f64()) as u64,
        latency: Duration::ZERO,
    }
}

/// RUN-1: every run-phase container starts after every restore init container exited 0 — with
/// a slow store where it can be slowed, so the restore takes seconds and the app has time to
/// start too early if it does not wait.
async fn run_1_ordering<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let backup = Dataset::generated("backup", 40, 4096);
    s.seed_backup(&backup).await?;
    if s.store_can_slow_down() {
        let mut slow = slow_store_for(&backup, s.pacing().slow_run_1_restore);
        if let Fault::SlowStore { latency, .. } = &mut slow {
            *latency = s.pacing().slow_run_1_latency;
        }
        s.inject(slow).await?;
    }
    let pod = s.deploy(Knobs::default()).await?;
    s.expect_restore_finished_before_run(&pod.name).await
}

/// RUN-2: the app serves exactly the restored dataset.
async fn run_2_serves_restored<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let backup = Dataset::realistic("nested", 6).with_nested_paths();
    s.seed_backup(&backup).await?;
    let pod = s.deploy(Knobs::default()).await?;
    s.expect_serves(&pod, &backup).await
}

/// SEC-1: no run-phase container can read backup credentials.
async fn sec_1_creds_isolated<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let pod = s.deploy(Knobs::default()).await?;
    s.expect_run_spec_has_no_credentials()?;
    s.expect_run_processes_hold_no_credentials(&pod).await?;
    s.expect_run_mounts_hold_no_credentials(&pod).await
}

/// SEC-2: the maintenance container mounts the data volume read-only. A subject whose
/// containers a webhook or operator adds is judged on the pod that comes out.
async fn sec_2_maint_read_only<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    if s.subject().profile.install.is_some() {
        s.deploy(Knobs::default()).await?;
    }
    s.expect_maintenance_mounts_data_read_only()
}

/// MNT-1: a backup appears at the scheduled time within tolerance, and none before it.
async fn mnt_1_on_schedule<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let at = s.schedule_ahead();
    s.deploy(Knobs::schedule(&[at])).await?;
    s.expect_maintenance_running_before(at).await?;
    s.expect_no_backup_before(at).await?;
    let id = s
        .wait_backup_after(at, s.pacing().schedule_tolerance)
        .await?;
    s.expect_backup_verifies(&id).await
}

/// MNT-2: write through the app → scheduled backup → wipe → recreate → the same data is served.
async fn mnt_2_round_trip<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let times = s.backup_series();
    let pod = s.deploy(Knobs::schedule(&times)).await?;
    let written = Dataset::realistic("written-through-app", 3);
    s.write_through_app(&pod, &written).await?;
    let written_at = chrono::Utc::now();
    let Some(&at) = times.iter().find(|t| **t > written_at) else {
        fail!("writing through the app took until {written_at}, past every scheduled backup");
    };
    s.wait_backup_after(at, s.pacing().backup_patience).await?;
    s.stop_workload().await?;
    s.inject(Fault::EmptyVolume).await?;
    let pod = s.start_workload().await?;
    s.expect_serves(&pod, &written).await
}

/// MNT-3: store down at backup time → the app keeps serving, earlier backups stay intact, and the
/// missed backup is taken within the recovery window ([`crate::pacing::Pacing`]) of the store's
/// return, before the next scheduled time (catalog v1.1: not only at the next scheduled time).
async fn mnt_3_store_outage<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let pacing = *s.pacing();
    let span = |d: Duration| chrono::Duration::from_std(d).expect("a pacing length is small");
    let earlier = Dataset::generated("earlier", 4, 2048);
    let earlier_id = s.seed_backup(&earlier).await?;
    let first = s.schedule_ahead();
    let next = first + span(pacing.recovery_window * 2);
    let pod = s.deploy(Knobs::schedule(&[first, next])).await?;
    s.expect_maintenance_running_before(first).await?;
    let down = s
        .store_down_at(first - span(pacing.outage_before_schedule))
        .await?;
    // NB: a store that went down after the scheduled time may have let that backup through: a
    // pass would then be the machine's lateness, not the workload's. The store times the outage
    // on a thread of its own, so only a machine too busy to run a thread for a second gets here.
    if down >= first {
        return Err(Failure::error(format!(
            "the store went down at {down}, after the scheduled backup at {first}: the machine \
             was too busy to begin the outage on time (fewer --jobs), so this run has no verdict"
        )));
    }
    s.wait_until(first + span(pacing.outage_past_schedule))
        .await;
    s.expect_serves(&pod, &earlier)
        .await
        .context("while the store is down")?;
    s.inject(Fault::StoreUp).await?;
    let back = chrono::Utc::now();
    let id = s
        .wait_backup_after(
            first,
            (back - first).to_std().unwrap_or_default() + pacing.recovery_window,
        )
        .await
        .context("the backup missed during the outage")?;
    s.expect_backup_verifies(&id).await?;
    s.expect_backup_verifies(&earlier_id)
        .await
        .context("the earlier backup")
}

/// MNT-4: at most N backups are kept, the newest valid one never pruned.
async fn mnt_4_retention<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    for label in ["old-1", "old-2", "old-3"] {
        s.seed_backup(&Dataset::generated(label, 2, 512)).await?;
    }
    let at = s.schedule_ahead();
    let keep = 2;
    s.deploy(Knobs::schedule(&[at]).with_keep(keep)).await?;
    s.expect_maintenance_running_before(at).await?;
    let newest = s.wait_backup_after(at, s.pacing().backup_patience).await?;
    s.wait_backup_count_at_most(keep).await?;
    let kept = s.backups().await?;
    ensure!(
        kept.first() == Some(&newest),
        "the newest backup {newest} was pruned; kept: {kept:?}"
    );
    s.expect_backup_verifies(&newest).await
}

/// MNT-5: the maintenance container killed → restarted, the app never interrupted, schedule kept.
async fn mnt_5_sidecar_crash<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let served = Dataset::generated("served", 3, 1024);
    s.seed_backup(&served).await?;
    let probe_path = served.files.keys().next().expect("three files").clone();
    let at = s.schedule_ahead();
    let pod = s.deploy(Knobs::schedule(&[at])).await?;
    let availability = s.watch_availability(&pod, &probe_path).await?;
    s.inject(Fault::KillContainer {
        name: s.maintenance_container().to_owned(),
    })
    .await?;
    s.wait_maintenance_restarted(&pod).await?;
    s.expect_maintenance_running_before(at).await?;
    s.expect_no_backup_before(at)
        .await
        .context("the restarted sidecar did not keep the schedule")?;
    let id = s
        .wait_backup_after(at, s.pacing().schedule_tolerance)
        .await?;
    let outages = availability.stop().await;
    ensure!(
        outages.is_empty(),
        "the app was interrupted while the sidecar restarted: {outages:?}"
    );
    s.expect_run_containers_never_restarted(&pod.name).await?;
    s.expect_backup_verifies(&id).await
}

/// MNT-6: a backup taken while the app writes verifies as a valid dataset.
async fn mnt_6_consistent<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    s.seed_backup(&Dataset::realistic("before-writes", 3))
        .await?;
    let times = s.backup_series();
    let pod = s.deploy(Knobs::schedule(&times)).await?;
    // NB: the first scheduled backup after the writes begin, however long the restore took.
    let Some(&at) = times
        .iter()
        .find(|t| **t > chrono::Utc::now() + chrono::Duration::seconds(1))
    else {
        fail!(
            "the pod took until {}, past every scheduled backup",
            chrono::Utc::now()
        );
    };
    let (id, writes) = s
        .write_until_backup(&pod, at, s.pacing().backup_patience)
        .await?;
    ensure!(
        writes > 1,
        "only {writes} write(s) through the app before the backup"
    );
    s.expect_backup_verifies(&id).await
}

/// LIFE-1: the pod deleted → the new pod's init runs again and the data survives (PVC) or is
/// restored (emptyDir).
async fn life_1_recreate<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let backup = Dataset::realistic("backup", 3);
    s.seed_backup(&backup).await?;
    let first = s.deploy(Knobs::default()).await?;
    let extra = Dataset::generated("written-after-restore", 2, 700);
    s.write_through_app(&first, &extra).await?;
    s.inject(Fault::DeletePod).await?;
    let second = s.wait_replacement(&first).await?;
    s.expect_restore_finished_before_run(&second.name).await?;
    if s.data_on_claim() {
        s.expect_serves(&second, &backup.merged(&extra)).await
    } else {
        s.expect_serves(&second, &backup).await
    }
}

//! The maintenance scenarios for a workload that replicates continuously (Litestream): no
//! schedule, so MNT-1 becomes "a write through the app is in the store within the declared lag";
//! MNT-2, MNT-3, MNT-5 and MNT-6 keep their meaning with "within the lag" for "at the scheduled
//! time". Each write's arrival is judged by reading the store's newest backup the format's way.

use chrono::Utc;
use harness::dataset::Dataset;
use harness::faults::Fault;
use harness::runtime::{PodInfo, Runtime};

use crate::context::{Knobs, Scenario};
use crate::ensure;
use crate::outcome::{Check, Context};

/// MNT-1: each of two writes through the app, the second after the first is in the store,
/// reaches the store within the lag (a sidecar that syncs once and stops fails the second).
pub async fn mnt_1_within_lag<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let pod = s.deploy(Knobs::default()).await?;
    let first = Dataset::generated("first-write", 2, 1500);
    expect_writes_replicated(s, &pod, &Dataset::empty(), first).await?;
    Ok(())
}

/// Writes `first` through the app, then once it is in the store one more file, and expects each
/// in the store within the lag, together with `held` (what the store must keep holding);
/// returns everything the store must now hold.
async fn expect_writes_replicated<R: Runtime>(
    s: &Scenario<'_, R>,
    pod: &PodInfo,
    held: &Dataset,
    first: Dataset,
) -> Check<Dataset> {
    let second = Dataset::generated("second-write", 1, 1500);
    let mut expected = held.clone();
    for (round, write) in [("first", first), ("second", second)] {
        s.write_through_app(pod, &write).await?;
        expected = expected.merged(&write);
        let id = s
            .wait_store_holds(&expected, Utc::now())
            .await
            .with_context(|| format!("the {round} write"))?;
        tracing::debug!("the {round} write is in backup {id}");
    }
    Ok(expected)
}

/// MNT-2: writes through the app → in the store within the lag → wipe → recreate → the same
/// data is served.
pub async fn mnt_2_round_trip<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let pod = s.deploy(Knobs::default()).await?;
    let first = Dataset::realistic("written-through-app", 3);
    let written = expect_writes_replicated(s, &pod, &Dataset::empty(), first).await?;
    s.stop_workload().await?;
    s.inject(Fault::EmptyVolume).await?;
    let pod = s.start_workload().await?;
    s.expect_serves(&pod, &written).await
}

/// MNT-3: writes replicated, then the store down while the app writes → the app keeps serving,
/// the earlier backup stays intact, and the writes reach the store within the lag of its return.
pub async fn mnt_3_store_outage<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let earlier = Dataset::generated("earlier", 4, 2048);
    let earlier_id = s.seed_backup(&earlier).await?;
    let pod = s.deploy(Knobs::default()).await?;
    let before = Dataset::generated("written-before-outage", 2, 1000);
    s.write_through_app(&pod, &before).await?;
    let replicated = earlier.merged(&before);
    s.wait_store_holds(&replicated, Utc::now())
        .await
        .context("before the outage")?;
    s.inject(Fault::StoreDown).await?;
    let during = Dataset::generated("written-during-outage", 2, 1000);
    s.write_through_app(&pod, &during)
        .await
        .context("while the store is down")?;
    // NB: the outage's length is the fault: the sidecar's syncs meet a store that refuses them.
    tokio::time::sleep(s.pacing().outage_continuous).await;
    let everything = replicated.merged(&during);
    s.expect_serves(&pod, &everything)
        .await
        .context("while the store is down")?;
    s.inject(Fault::StoreUp).await?;
    s.wait_store_holds(&everything, Utc::now())
        .await
        .context("after the store came back")?;
    s.expect_backup_verifies(&earlier_id)
        .await
        .context("the earlier backup")
}

/// MNT-5: the maintenance container killed → restarted, the app never interrupted, and writes
/// after the restart reach the store within the lag, the second too.
pub async fn mnt_5_sidecar_crash<R: Runtime>(s: &mut Scenario<'_, R>) -> Check {
    let served = Dataset::generated("served", 3, 1024);
    s.seed_backup(&served).await?;
    let probe_path = served.files.keys().next().expect("three files").clone();
    let pod = s.deploy(Knobs::default()).await?;
    let availability = s.watch_availability(&pod, &probe_path).await?;
    s.inject(Fault::KillContainer {
        name: s.maintenance_container().to_owned(),
    })
    .await?;
    s.wait_maintenance_restarted(&pod).await?;
    let after = Dataset::generated("written-after-restart", 2, 1000);
    expect_writes_replicated(s, &pod, &served, after)
        .await
        .context("the restarted sidecar")?;
    let outages = availability.stop().await;
    ensure!(
        outages.is_empty(),
        "the app was interrupted while the sidecar restarted: {outages:?}"
    );
    s.expect_run_containers_never_restarted(&pod.name).await
}

/// MNT-6: once a first write is in the store, a backup replicated while the app keeps writing
/// verifies as a valid dataset.
pub async fn mnt_6_consistent<R: Runtime>(
    s: &mut Scenario<'_, R>,
    lag: std::time::Duration,
) -> Check {
    let before = Dataset::realistic("before-writes", 3);
    s.seed_backup(&before).await?;
    let pod = s.deploy(Knobs::default()).await?;
    let first = Dataset::generated("first-write", 1, 1500);
    s.write_through_app(&pod, &first).await?;
    s.wait_store_holds(&before.merged(&first), Utc::now())
        .await
        .context("the first write")?;
    // NB: the churn starts at once (`from` is within the churn lead); the backup it waits for
    // is one taken after it began.
    let from = Utc::now() + chrono::Duration::seconds(1);
    let (id, writes) = s.write_until_backup(&pod, from, lag).await?;
    ensure!(
        writes > 1,
        "only {writes} write(s) through the app before the backup"
    );
    s.expect_backup_verifies(&id).await
}

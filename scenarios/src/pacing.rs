//! How scenarios pace themselves on a runtime: every wait length and fault size a check uses,
//! in one place per runtime beside its [`Timeouts`](crate::plan::Timeouts).
//!
//! None of these is a verdict on how fast a workload is, except where a requirement names a
//! time (MNT-1's schedule, MNT-3's recovery): they are how long the harness watches, how far
//! ahead it schedules, and how large it makes a fault, so that a busy machine decides no
//! verdict.

use std::time::Duration;

/// The wait lengths and fault sizes of one runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// How far ahead the scheduled-backup scenarios set a schedule: time for the pod to start
    /// and its maintenance container to read the schedule. A maintenance container that starts
    /// later than its schedule makes the case an `error` (no verdict), never a failure.
    pub schedule_lead: Duration,
    /// How far after its scheduled time a backup may be taken (MNT-1, MNT-5): a workload may
    /// start a program or two and reach the store before it records its backup's time.
    pub schedule_tolerance: Duration,
    /// How long a backup may still be uploading after the time a wait ends: a backup whose
    /// upload began in time is listed once it has landed.
    pub completion_grace: Duration,
    /// The spacing of a series of twelve scheduled backups, for scenarios that need one backup
    /// after a step whose length a loaded machine decides.
    pub series_every: Duration,
    /// How far ahead such a series starts: they use the first time after their step, so the
    /// series needs no lead for the pod's start (a time before the sidecar runs is not used).
    pub series_lead: Duration,
    /// How long a scenario whose requirement is not punctuality waits for a scheduled backup:
    /// a sidecar whose backup and prune take longer than the series' spacing falls behind its
    /// schedule, yet its backups still round-trip.
    pub backup_patience: Duration,
    /// INIT-6: how long a restore that retries by itself (rather than failing) is watched while
    /// the store is down.
    pub restore_held: Duration,
    /// MNT-3: how soon after the store's return a backup missed during an outage must be taken.
    pub recovery_window: Duration,
    /// MNT-3: how long before the scheduled time the store goes down: late enough that a
    /// sidecar's start-up calls to the store (a `restic unlock` retries a refused store for
    /// ~12 s) are over, so the outage meets the scheduled backup and nothing else.
    pub outage_before_schedule: Duration,
    /// MNT-3: how long the store stays down past the scheduled time.
    pub outage_past_schedule: Duration,
    /// MNT-3 for continuous maintenance: how long the store stays down after a write, so the
    /// sidecar's syncs meet the outage.
    pub outage_continuous: Duration,
    /// How many failures of a restore or run container, while the harness waits for the pod to
    /// be ready, mean it will not be: the wait ends there instead of at the readiness timeout.
    pub gives_up_after: usize,
    /// MNT-4: how long pruning may take once a backup has landed.
    pub prune: Duration,
    /// MNT-5: how long a killed maintenance container may take to run again (a kubelet backs
    /// off between restarts).
    pub restart: Duration,
    /// INIT-7: how long a restore may take to be under way before the kill strikes.
    pub restore_under_way: Duration,
    /// INIT-7: how often the files on the volume are counted while waiting for the restore to
    /// be under way (no runtime offers a file-change feed for a claim).
    pub restore_progress_every: Duration,
    /// INIT-6: how often a restore that keeps running is looked at again (between failures
    /// the clock, not the timeline, decides whether it has held long enough).
    pub held_check_every: Duration,
    /// INIT-7: the least time a slowed store takes to send the backup, so the kill lands
    /// mid-restore.
    pub slow_restore: Duration,
    /// RUN-1: the least time a slowed store takes to send the backup, so an app that does not
    /// wait for the restore has time to start too early.
    pub slow_run_1_restore: Duration,
    /// RUN-1: the latency a slowed store adds to every request.
    pub slow_run_1_latency: Duration,
    /// How long the app must take to answer before a request counts as unanswered (MNT-5).
    pub answer: Duration,
    /// How often the app is asked whether it answers while a backup runs (MNT-5).
    pub availability_every: Duration,
    /// How often MNT-6 writes through the app while a backup runs: an app under steady
    /// writes, not a tight loop that starves the machine.
    pub write_every: Duration,
    /// How long before the backup is due MNT-6 starts writing.
    pub churn_lead: Duration,
    /// How often MNT-6 lists the store once the backup is due.
    pub store_look_every: Duration,
    /// How long the store may take to answer the listing at the end of a case (for the report).
    pub final_listing: Duration,
}

impl Pacing {
    /// The embedded runtime: pods as sandboxed host processes start in milliseconds, but a
    /// restore of four realistic datasets while 32 other cases run on 2 cores has taken 30 s
    /// (CI). A schedule lead of 6 s was too short for the restic subject (its restore alone
    /// takes 5 s under load).
    pub const LOCAL: Pacing = Pacing {
        schedule_lead: Duration::from_secs(15),
        schedule_tolerance: Duration::from_secs(10),
        completion_grace: Duration::from_secs(10),
        series_every: Duration::from_secs(6),
        series_lead: Duration::from_secs(3),
        backup_patience: Duration::from_secs(60),
        restore_held: Duration::from_secs(15),
        recovery_window: Duration::from_secs(60),
        outage_before_schedule: Duration::from_secs(1),
        outage_past_schedule: Duration::from_secs(3),
        outage_continuous: Duration::from_secs(3),
        gives_up_after: 5,
        prune: Duration::from_secs(10),
        restart: Duration::from_secs(15),
        restore_under_way: Duration::from_secs(10),
        restore_progress_every: Duration::from_millis(5),
        held_check_every: Duration::from_secs(1),
        slow_restore: Duration::from_secs(8),
        slow_run_1_restore: Duration::from_secs(2),
        slow_run_1_latency: Duration::from_millis(10),
        answer: Duration::from_secs(2),
        availability_every: Duration::from_millis(100),
        write_every: Duration::from_millis(25),
        churn_lead: Duration::from_secs(2),
        store_look_every: Duration::from_millis(250),
        final_listing: Duration::from_secs(5),
    };

    /// A cluster: the same lengths so far (the kind runs in CI have needed no other); a
    /// cluster-only change goes here, not into a check.
    pub const CLUSTER: Pacing = Pacing::LOCAL;
}

//! Observations: pods, containers, timelines and what the app serves.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use harness::runtime::PodInfo;
use harness::runtime::Runtime;
use harness::runtime::timeline::Timeline;

use super::Scenario;
use crate::fail;
use crate::outcome::{Check, Context, Failure};
use crate::rules;

impl<'a, R: Runtime> Scenario<'a, R> {
    pub(super) async fn timeline(&self, pod: &str) -> Check<Timeline> {
        self.ns
            .timeline(pod)
            .await
            .context("reading the pod's timeline")
    }

    /// RUN-1's rule ([`rules::restore_finished_before_run`]) on `pod`'s timeline.
    pub async fn expect_restore_finished_before_run(&self, pod: &str) -> Check {
        let timeline = self.timeline(pod).await?;
        rules::restore_finished_before_run(&timeline, &self.subject().profile.containers)
    }

    /// Holds while the store is down until the restore container has failed `n` times (within
    /// the runtime's readiness timeout: a kubelet backs off between restarts), or until one
    /// restore run has kept running for `window` (a restore that retries by itself, as restic
    /// does, is as good as one that fails and is restarted).
    pub async fn wait_restore_held(&self, n: usize, window: Duration) -> Check {
        let pod = self.current_pod().await?;
        let restore = self.subject().profile.containers.restore[0].clone();
        let deadline = Instant::now() + self.env.timeouts.ready;
        let held_for = chrono::Duration::from_std(window).expect("small duration");
        loop {
            // NB: the timeline changes on every failure; between changes the clock decides
            // whether a run has kept going long enough, so the watch wakes now and then.
            let step = self
                .ns
                .wait_for_timeline(
                    &pod.name,
                    rules::failed_at_least(&restore, n),
                    self.pacing().held_check_every,
                )
                .await;
            if step.is_ok() {
                return Ok(());
            }
            let timeline = self.timeline(&pod.name).await?;
            let last = timeline.runs(&restore).last().cloned();
            if let Some(run) = &last {
                if run.is_running() && Utc::now() - run.started_at >= held_for {
                    return Ok(());
                }
                if run.exit_code == Some(0) {
                    fail!(
                        "the restore exited 0 while the store was down, so the run phase starts on data that did not come from the store\n{}",
                        timeline.render()
                    );
                }
            }
            if Instant::now() >= deadline {
                fail!(
                    "the restore neither failed {n} time(s) nor kept trying for {window:?} while the store was down: it failed {} time(s) in {:?}\n{}",
                    rules::failures(&timeline, &restore),
                    self.env.timeouts.ready,
                    timeline.render()
                );
            }
        }
    }

    /// The maintenance container's latest run started before `at`, its scheduled time: else the
    /// machine was too slow for the schedule the scenario set, which says nothing about the
    /// subject (an `error`, not a verdict).
    pub async fn expect_maintenance_running_before(&self, at: DateTime<Utc>) -> Check {
        let pod = self.current_pod().await?;
        let timeline = self.timeline(&pod.name).await?;
        let name = self.maintenance_container().to_owned();
        match timeline.runs(&name).last() {
            Some(run) if run.started_at < at => Ok(()),
            Some(run) => Err(Failure::error(format!(
                "the maintenance container `{name}` started at {}, after its scheduled time {at}: this machine is too slow for the scenario's schedule lead (no verdict)\n{}",
                run.started_at,
                timeline.render()
            ))),
            None => Err(Failure::error(format!(
                "the maintenance container `{name}` has not started\n{}",
                timeline.render()
            ))),
        }
    }

    /// No run-phase container has started in the pod.
    pub async fn expect_run_phase_not_started(&self) -> Check {
        let pod = self.current_pod().await?;
        let timeline = self.timeline(&pod.name).await?;
        rules::run_phase_not_started(&timeline, &self.subject().profile.containers)
    }

    /// Waits until the maintenance container has been restarted and runs again.
    pub async fn wait_maintenance_restarted(&self, pod: &PodInfo) -> Check {
        let restarted = rules::restarted(self.maintenance_container());
        if let Err(e) = self
            .ns
            .wait_for_timeline(&pod.name, restarted, self.pacing().restart)
            .await
        {
            let timeline = self.timeline(&pod.name).await?;
            fail!(
                "the maintenance container `{}` was not restarted after being killed ({e})\n{}",
                self.maintenance_container(),
                timeline.render()
            );
        }
        Ok(())
    }

    /// Every run-phase container has run exactly once.
    pub async fn expect_run_containers_never_restarted(&self, pod: &str) -> Check {
        let timeline = self.timeline(pod).await?;
        rules::run_containers_never_restarted(&timeline, &self.subject().profile.containers)
    }
}

//! The catalog's rules about a pod's history, as pure functions of its [`Timeline`] and the
//! subject's [`Roles`], and the conditions scenarios wait for on a timeline or a pod. No runtime,
//! no clock: the tests below build timelines and pods by hand, the right ones and the wrong ones.

use chrono::{DateTime, Utc};
use harness::runtime::PodInfo;
use harness::runtime::timeline::Timeline;
use harness::subject::Roles;

use crate::outcome::Check;
use crate::{ensure, fail};

/// RUN-1: every run-phase container's every start came after every restore container last
/// terminated with exit 0.
pub fn restore_finished_before_run(timeline: &Timeline, roles: &Roles) -> Check {
    let mut restored_at: Option<DateTime<Utc>> = None;
    for name in &roles.restore {
        let Some(last) = timeline.runs(name).last() else {
            fail!(
                "restore container `{name}` never ran\n{}",
                timeline.render()
            );
        };
        let (Some(0), Some(finished)) = (last.exit_code, last.finished_at) else {
            fail!(
                "restore container `{name}` did not end with exit 0\n{}",
                timeline.render()
            );
        };
        restored_at = Some(restored_at.map_or(finished, |t| t.max(finished)));
    }
    let Some(restored_at) = restored_at else {
        fail!("the subject names no restore container (`containers.restore`)");
    };
    for name in &roles.run {
        for run in timeline.runs(name) {
            ensure!(
                run.started_at >= restored_at,
                "run-phase container `{name}` started at {} before the restore finished at {restored_at}\n{}",
                run.started_at,
                timeline.render()
            );
        }
    }
    Ok(())
}

/// INIT-5/INIT-6: no run-phase container has started.
pub fn run_phase_not_started(timeline: &Timeline, roles: &Roles) -> Check {
    for name in &roles.run {
        ensure!(
            timeline.runs(name).is_empty(),
            "run-phase container `{name}` started although the restore never succeeded\n{}",
            timeline.render()
        );
    }
    Ok(())
}

/// MNT-5: every run-phase container has run exactly once (a sidecar's crash took none down).
pub fn run_containers_never_restarted(timeline: &Timeline, roles: &Roles) -> Check {
    for name in &roles.run {
        ensure!(
            timeline.runs(name).len() == 1,
            "run-phase container `{name}` was restarted\n{}",
            timeline.render()
        );
    }
    Ok(())
}

/// A restore container still running when the pod's wait for readiness ended, and since when:
/// the restore took longer than the pod's patience (a slow store, a large backup), which is not
/// the same finding as a pod that started and never became ready.
pub fn restore_still_running<'t>(
    timeline: &'t Timeline,
    roles: &'t Roles,
) -> Option<(&'t str, DateTime<Utc>)> {
    roles.restore.iter().find_map(|name| {
        let last = timeline.runs(name).last()?;
        last.is_running()
            .then_some((name.as_str(), last.started_at))
    })
}

/// How often `container` has failed: the runs shown that exited non-zero, plus every run before
/// the first one shown (a cluster keeps only the last two; a restore that succeeded would have
/// ended the init phase, so those failed too).
pub fn failures(timeline: &Timeline, container: &str) -> usize {
    let runs = timeline.runs(container);
    let lost = runs.first().map_or(0, |r| r.restart_count as usize);
    lost + runs
        .iter()
        .filter(|r| r.exit_code.is_some_and(|c| c != 0))
        .count()
}

/// Condition: `container` has failed at least `n` times.
pub fn failed_at_least(container: &str, n: usize) -> impl Fn(&Timeline) -> bool + Send + 'static {
    let container = container.to_owned();
    move |t| failures(t, &container) >= n
}

/// Condition: `container` has been restarted and runs again.
pub fn restarted(container: &str) -> impl Fn(&Timeline) -> bool + Send + 'static {
    let container = container.to_owned();
    move |t| {
        let runs = t.runs(&container);
        runs.len() >= 2 && runs.last().is_some_and(|r| r.is_running())
    }
}

/// Condition: the pod is ready (every regular container runs and passes its readiness probe).
pub fn ready() -> impl Fn(&PodInfo) -> bool + Send + 'static {
    |p| p.ready
}

/// Condition: any pod at all (the workload's current one).
pub fn any_pod() -> impl Fn(&PodInfo) -> bool + Send + 'static {
    |_| true
}

/// Condition: any pod, other than the one with `uid` when given (a pod being replaced).
pub fn any_pod_but(uid: Option<&str>) -> impl Fn(&PodInfo) -> bool + Send + 'static {
    let uid = uid.map(str::to_owned);
    move |p| uid.as_deref() != Some(p.uid.as_str())
}

/// Condition: a ready pod other than the one with `uid` (its replacement).
pub fn replaced(uid: &str) -> impl Fn(&PodInfo) -> bool + Send + 'static {
    let uid = uid.to_owned();
    move |p| p.ready && p.uid != uid
}

#[cfg(test)]
mod tests {
    use harness::runtime::PodPhase;
    use harness::runtime::timeline::{
        ContainerRole, ContainerRun, ContainerTimeline, TerminationReason,
    };

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a time")
    }

    /// A run from `start` to `end` (second, exit code), or still running.
    fn run(restart_count: u32, start: i64, end: Option<(i64, i32)>) -> ContainerRun {
        ContainerRun {
            restart_count,
            started_at: at(start),
            finished_at: end.map(|(t, _)| at(t)),
            exit_code: end.map(|(_, c)| c),
            reason: end.map(|(_, c)| match c {
                0 => TerminationReason::Completed,
                _ => TerminationReason::Error,
            }),
            message: None,
        }
    }

    fn timeline(restore: Vec<ContainerRun>, app: Vec<ContainerRun>) -> Timeline {
        let container = |name: &str, role, runs| ContainerTimeline {
            name: name.into(),
            role,
            runs,
            waiting: None,
        };
        Timeline {
            pod: "p".into(),
            uid: "u".into(),
            phase: PodPhase::Running,
            ready: true,
            created_at: at(0),
            deleted_at: None,
            message: None,
            containers: vec![
                container("restore", ContainerRole::Init, restore),
                container("app", ContainerRole::App, app),
            ],
        }
    }

    fn roles() -> Roles {
        Roles {
            restore: vec!["restore".into()],
            run: vec!["app".into()],
            maintenance: vec![],
        }
    }

    fn message(check: Check) -> String {
        check.expect_err("the rule is broken").message
    }

    #[test]
    fn the_app_starting_after_a_successful_restore_meets_run_1() {
        let t = timeline(
            vec![run(0, 1, Some((2, 1))), run(1, 3, Some((5, 0)))],
            vec![run(0, 5, None)],
        );
        restore_finished_before_run(&t, &roles()).expect("in order");
    }

    #[test]
    fn the_app_starting_before_the_restore_ends_breaks_run_1() {
        let t = timeline(vec![run(0, 1, Some((5, 0)))], vec![run(0, 4, None)]);
        assert!(message(restore_finished_before_run(&t, &roles())).contains("before the restore"));
    }

    #[test]
    fn a_restore_that_failed_last_or_never_ran_breaks_run_1() {
        let failed = timeline(vec![run(0, 1, Some((2, 1)))], vec![]);
        assert!(message(restore_finished_before_run(&failed, &roles())).contains("exit 0"));
        let still = timeline(vec![run(0, 1, None)], vec![]);
        assert!(message(restore_finished_before_run(&still, &roles())).contains("exit 0"));
        let never = timeline(vec![], vec![]);
        assert!(message(restore_finished_before_run(&never, &roles())).contains("never ran"));
    }

    #[test]
    fn run_phase_rules_see_starts_and_restarts() {
        let none = timeline(vec![run(0, 1, Some((2, 1)))], vec![]);
        run_phase_not_started(&none, &roles()).expect("not started");
        let once = timeline(vec![run(0, 1, Some((2, 0)))], vec![run(0, 3, None)]);
        assert!(message(run_phase_not_started(&once, &roles())).contains("started"));
        run_containers_never_restarted(&once, &roles()).expect("ran once");
        let twice = timeline(
            vec![run(0, 1, Some((2, 0)))],
            vec![run(0, 3, Some((4, 137))), run(1, 5, None)],
        );
        assert!(message(run_containers_never_restarted(&twice, &roles())).contains("restarted"));
    }

    #[test]
    fn a_restore_still_running_is_named_with_its_start() {
        let running = timeline(vec![run(0, 1, Some((2, 1))), run(1, 3, None)], vec![]);
        assert_eq!(
            restore_still_running(&running, &roles()),
            Some(("restore", at(3)))
        );
        let done = timeline(vec![run(0, 1, Some((2, 0)))], vec![run(0, 3, None)]);
        assert_eq!(restore_still_running(&done, &roles()), None);
        let never = timeline(vec![], vec![]);
        assert_eq!(restore_still_running(&never, &roles()), None);
    }

    #[test]
    fn failures_count_the_runs_a_cluster_no_longer_shows() {
        // A cluster shows the last two runs: restarts 3 and 4, so runs 0 to 2 failed before.
        let t = timeline(vec![run(3, 10, Some((11, 1))), run(4, 20, None)], vec![]);
        assert_eq!(failures(&t, "restore"), 4);
        assert!(failed_at_least("restore", 4)(&t));
        assert!(!failed_at_least("restore", 5)(&t));
    }

    #[test]
    fn restarted_needs_a_second_run_that_is_running() {
        let once = timeline(vec![], vec![run(0, 1, None)]);
        assert!(!restarted("app")(&once));
        let down = timeline(
            vec![],
            vec![run(0, 1, Some((2, 137))), run(1, 3, Some((4, 1)))],
        );
        assert!(!restarted("app")(&down));
        let again = timeline(vec![], vec![run(0, 1, Some((2, 137))), run(1, 3, None)]);
        assert!(restarted("app")(&again));
    }

    #[test]
    fn a_replacement_is_a_ready_pod_with_another_uid() {
        let pod = |uid: &str, ready: bool| PodInfo {
            name: "p".into(),
            ip: std::net::Ipv4Addr::LOCALHOST,
            phase: PodPhase::Running,
            ready,
            uid: uid.into(),
        };
        let replaced = replaced("old");
        assert!(!replaced(&pod("old", true)), "the old pod itself");
        assert!(!replaced(&pod("new", false)), "a replacement not ready yet");
        assert!(replaced(&pod("new", true)));
        assert!(ready()(&pod("old", true)) && !ready()(&pod("old", false)));
        assert!(any_pod()(&pod("old", false)));
        assert!(any_pod_but(None)(&pod("old", false)));
        assert!(!any_pod_but(Some("old"))(&pod("old", true)));
        assert!(any_pod_but(Some("old"))(&pod("new", false)));
    }
}

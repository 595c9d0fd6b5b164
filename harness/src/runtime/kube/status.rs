//! Reading a [`Pod`]'s status: its [`PodInfo`] and its [`Timeline`].
//!
//! Pure functions, no API calls, so they are unit-tested on real-shaped `PodStatus` JSON.
//!
//! # What a timeline from a real cluster can and cannot show
//!
//! Kubernetes keeps, per container, only the current `state` and the `lastState` (the previous
//! instance, if it terminated) plus a `restartCount`. A [`Timeline`] built from a pod therefore
//! holds **at most the last two runs** of each container; earlier runs are gone. Each run still
//! carries its true [`ContainerRun::restart_count`], so a first run with `restart_count > 0` tells
//! a reader that runs were lost, and [`ContainerTimeline::restart_count`] stays exact. Scenarios
//! that must see every run have to watch the pod while it happens (`wait_for_timeline`) rather
//! than read the timeline afterwards.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::runtime::timeline::{
    ContainerRole, ContainerRun, ContainerTimeline, TerminationReason, Timeline, Waiting,
};
use crate::runtime::{PodInfo, PodPhase};

/// The label Deployments put on their pods; the ReplicaSet is named `{deployment}-{hash}`.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The pod's [`PodInfo`]. A pod without an IP yet reports `0.0.0.0`.
pub fn pod_info(pod: &Pod) -> PodInfo {
    let status = pod.status.as_ref();
    PodInfo {
        name: pod.metadata.name.clone().unwrap_or_default(),
        ip: status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(Ipv4Addr::UNSPECIFIED),
        phase: pod_phase(pod),
        ready: is_ready(pod),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// The pod's phase, refined like kubectl's STATUS column: a pending pod whose init containers
/// have started is [`PodPhase::Initializing`]; a pod being deleted is [`PodPhase::Terminating`].
pub fn pod_phase(pod: &Pod) -> PodPhase {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodPhase::Terminating;
    }
    let status = pod.status.as_ref();
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => {
            let inits = status
                .and_then(|s| s.init_container_statuses.as_deref())
                .unwrap_or_default();
            if inits.iter().any(has_started) {
                PodPhase::Initializing
            } else {
                PodPhase::Pending
            }
        }
    }
}

/// Whether the pod's `Ready` condition is true and it is not being deleted.
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod is named `key` or owned by the Deployment or StatefulSet named `key`.
///
/// A Deployment's pods are owned by a ReplicaSet named `{key}-{pod-template-hash}`; matching
/// that name exactly avoids a lookup of the ReplicaSet and never confuses `app` with `app-2`.
pub fn is_named_or_owned_by(pod: &Pod, key: &str) -> bool {
    if pod.metadata.name.as_deref() == Some(key) {
        return true;
    }
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH));
    pod.metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|owner| match owner.kind.as_str() {
            "StatefulSet" => owner.name == key,
            "ReplicaSet" => hash.is_some_and(|h| owner.name == format!("{key}-{h}")),
            _ => false,
        })
}

/// The pod's timeline: init containers in spec order, then regular containers, each with the
/// runs its status still shows (see the module docs for what is lost).
pub fn timeline_from_pod(pod: &Pod) -> Timeline {
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let created_at = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(DateTime::UNIX_EPOCH, to_chrono);
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let mut containers = Vec::new();
    let init_specs = spec.and_then(|s| s.init_containers.as_deref());
    for c in init_specs.unwrap_or_default() {
        let role = if c.restart_policy.as_deref() == Some("Always") {
            ContainerRole::NativeSidecar
        } else {
            ContainerRole::Init
        };
        containers.push(container_timeline(c, role, init_statuses, created_at));
    }
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        containers.push(container_timeline(
            c,
            ContainerRole::App,
            statuses,
            created_at,
        ));
    }
    Timeline {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        phase: pod_phase(pod),
        ready: is_ready(pod),
        created_at,
        deleted_at: pod.metadata.deletion_timestamp.as_ref().map(to_chrono),
        message: pod_message(pod),
        containers,
    }
}

/// Why the pod is stuck or failed: `status.message`, else an unschedulable condition's message.
fn pod_message(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        return Some(match status.reason.as_deref() {
            Some(reason) => format!("{reason}: {message}"),
            None => message.to_owned(),
        });
    }
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .and_then(|c| c.message.clone())
}

fn container_timeline(
    spec: &Container,
    role: ContainerRole,
    statuses: &[ContainerStatus],
    created_at: DateTime<Utc>,
) -> ContainerTimeline {
    let mut timeline = ContainerTimeline {
        name: spec.name.clone(),
        role,
        runs: Vec::new(),
        waiting: None,
    };
    let Some(status) = statuses.iter().find(|s| s.name == spec.name) else {
        return timeline;
    };
    let restarts = u32::try_from(status.restart_count).unwrap_or(0);
    let state = status.state.as_ref();
    let waiting = state.and_then(|s| s.waiting.as_ref());
    // NB: while a container waits to be restarted (CrashLoopBackOff), the kubelet moves the
    // instance that just ended into `lastState` and leaves `restartCount` at *its* count; once
    // a new instance exists, `restartCount` is the new one's and `lastState` the one before.
    let last_count = if waiting.is_some() {
        restarts
    } else {
        restarts.saturating_sub(1)
    };
    if let Some(last) = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
    {
        timeline
            .runs
            .push(terminated_run(last, last_count, created_at));
    }
    match state {
        Some(ContainerState {
            running: Some(running),
            ..
        }) => timeline.runs.push(ContainerRun {
            restart_count: restarts,
            started_at: running.started_at.as_ref().map_or(created_at, to_chrono),
            finished_at: None,
            exit_code: None,
            reason: None,
            message: None,
        }),
        Some(ContainerState {
            terminated: Some(terminated),
            ..
        }) => timeline
            .runs
            .push(terminated_run(terminated, restarts, created_at)),
        _ => {}
    }
    timeline.waiting = waiting.map(|w| Waiting {
        reason: w.reason.clone().unwrap_or_default(),
        message: w.message.clone().unwrap_or_default(),
    });
    timeline
}

fn terminated_run(
    t: &ContainerStateTerminated,
    restart_count: u32,
    created_at: DateTime<Utc>,
) -> ContainerRun {
    let finished_at = t.finished_at.as_ref().map(to_chrono);
    // NB: a container that never started (StartError) has no `startedAt`.
    let started_at = t
        .started_at
        .as_ref()
        .map(to_chrono)
        .or(finished_at)
        .unwrap_or(created_at);
    let k8s_reason = t.reason.as_deref().unwrap_or_default();
    let reason = termination_reason(t.exit_code, k8s_reason);
    let mut notes = Vec::new();
    if !matches!(k8s_reason, "" | "Completed" | "Error") {
        notes.push(k8s_reason.to_owned());
    }
    if let Some(signal) = t.signal {
        notes.push(format!("signal {signal}"));
    }
    if let Some(message) = t.message.as_deref().filter(|m| !m.is_empty()) {
        notes.push(message.trim().to_owned());
    }
    ContainerRun {
        restart_count,
        started_at,
        finished_at: Some(finished_at.unwrap_or(started_at)),
        exit_code: Some(t.exit_code),
        reason: Some(reason),
        message: (!notes.is_empty()).then(|| notes.join(": ")),
    }
}

/// Maps Kubernetes' exit code and reason to the harness' [`TerminationReason`].
fn termination_reason(exit_code: i32, reason: &str) -> TerminationReason {
    match (exit_code, reason) {
        (_, "StartError" | "ContainerCannotRun") | (128, _) => TerminationReason::StartError,
        (0, _) => TerminationReason::Completed,
        (_, "OOMKilled") => TerminationReason::Killed,
        (code, _) if code > 128 => TerminationReason::Killed,
        _ => TerminationReason::Error,
    }
}

fn has_started(status: &ContainerStatus) -> bool {
    let state = status.state.as_ref();
    state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        || status
            .last_state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some())
}

/// k8s-openapi's `Time` (jiff) as chrono, the harness' clock type.
pub(super) fn to_chrono(t: &Time) -> DateTime<Utc> {
    let ts = t.0;
    DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().unsigned_abs())
        .unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn pod(spec: serde_json::Value, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "phasepod-5d8f9c7b6-x2x9k",
                "namespace": "pc-1",
                "uid": "0b6f3f3e-1111-4c4c-9a9a-2f2f2f2f2f2f",
                "creationTimestamp": "2025-06-01T10:00:00Z",
                "labels": {"app": "phasepod", "pod-template-hash": "5d8f9c7b6"},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "phasepod-5d8f9c7b6",
                    "uid": "9f9f", "controller": true, "blockOwnerDeletion": true
                }]
            },
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn classic_spec() -> serde_json::Value {
        json!({
            "initContainers": [{"name": "restore", "image": "phasecheck/phasepod:dev"}],
            "containers": [
                {"name": "app", "image": "phasecheck/phasepod:dev"},
                {"name": "backup", "image": "phasecheck/phasepod:dev"}
            ]
        })
    }

    #[test]
    fn a_completed_init_container_then_a_running_app_gives_one_run_each() {
        let p = pod(
            classic_spec(),
            json!({
                "phase": "Running",
                "podIP": "10.244.0.12",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"}
                ],
                "initContainerStatuses": [{
                    "name": "restore", "image": "phasecheck/phasepod:dev", "imageID": "",
                    "ready": true, "restartCount": 0,
                    "state": {"terminated": {
                        "exitCode": 0, "reason": "Completed",
                        "startedAt": "2025-06-01T10:00:02Z", "finishedAt": "2025-06-01T10:00:05Z",
                        "containerID": "containerd://aaa"
                    }},
                    "lastState": {}
                }],
                "containerStatuses": [
                    {
                        "name": "app", "image": "phasecheck/phasepod:dev", "imageID": "",
                        "ready": true, "restartCount": 0, "started": true,
                        "state": {"running": {"startedAt": "2025-06-01T10:00:06Z"}},
                        "lastState": {}
                    },
                    {
                        "name": "backup", "image": "phasecheck/phasepod:dev", "imageID": "",
                        "ready": true, "restartCount": 0, "started": true,
                        "state": {"running": {"startedAt": "2025-06-01T10:00:06Z"}},
                        "lastState": {}
                    }
                ]
            }),
        );
        let t = timeline_from_pod(&p);
        assert_eq!(t.phase, PodPhase::Running);
        assert!(t.ready);
        assert_eq!(t.created_at, at("2025-06-01T10:00:00Z"));
        let names: Vec<_> = t
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.role))
            .collect();
        assert_eq!(
            names,
            [
                ("restore", ContainerRole::Init),
                ("app", ContainerRole::App),
                ("backup", ContainerRole::App)
            ]
        );
        let restore = t.runs("restore");
        assert_eq!(restore.len(), 1);
        assert_eq!(restore[0].exit_code, Some(0));
        assert_eq!(restore[0].reason, Some(TerminationReason::Completed));
        assert_eq!(restore[0].finished_at, Some(at("2025-06-01T10:00:05Z")));
        assert!(t.runs("app")[0].is_running());
        assert!(t.first_start(ContainerRole::App) > t.last_finish(ContainerRole::Init));
        let info = pod_info(&p);
        assert_eq!(info.ip, Ipv4Addr::new(10, 244, 0, 12));
        assert!(is_named_or_owned_by(&p, "phasepod"));
        assert!(!is_named_or_owned_by(&p, "phasepod-5d8f9c7b6"));
    }

    #[test]
    fn an_init_container_that_failed_twice_then_succeeded_keeps_only_its_last_two_runs() {
        let p = pod(
            classic_spec(),
            json!({
                "phase": "Pending",
                "initContainerStatuses": [{
                    "name": "restore", "image": "phasecheck/phasepod:dev", "imageID": "",
                    "ready": true, "restartCount": 2,
                    "state": {"terminated": {
                        "exitCode": 0, "reason": "Completed",
                        "startedAt": "2025-06-01T10:00:40Z", "finishedAt": "2025-06-01T10:00:43Z"
                    }},
                    "lastState": {"terminated": {
                        "exitCode": 1, "reason": "Error",
                        "message": "store unreachable\n",
                        "startedAt": "2025-06-01T10:00:15Z", "finishedAt": "2025-06-01T10:00:16Z"
                    }}
                }],
                "containerStatuses": [{
                    "name": "app", "image": "phasecheck/phasepod:dev", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}
                }]
            }),
        );
        let t = timeline_from_pod(&p);
        assert_eq!(t.phase, PodPhase::Initializing);
        assert!(!t.ready);
        let restore = t.runs("restore");
        assert_eq!(restore.len(), 2, "{t}");
        assert_eq!(restore[0].restart_count, 1, "the first failed run is lost");
        assert_eq!(restore[0].exit_code, Some(1));
        assert_eq!(restore[0].reason, Some(TerminationReason::Error));
        assert_eq!(restore[0].message.as_deref(), Some("store unreachable"));
        assert_eq!(restore[1].restart_count, 2);
        assert_eq!(restore[1].reason, Some(TerminationReason::Completed));
        assert_eq!(t.container("restore").unwrap().restart_count(), 2);
        let app = t.container("app").unwrap();
        assert!(app.runs.is_empty());
        assert_eq!(app.waiting.as_ref().unwrap().reason, "PodInitializing");
    }

    #[test]
    fn a_crash_looping_init_container_counts_its_last_run_as_the_current_restart() {
        let p = pod(
            classic_spec(),
            json!({
                "phase": "Pending",
                "initContainerStatuses": [{
                    "name": "restore", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 1,
                    "state": {"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": "back-off 10s restarting failed container=restore"
                    }},
                    "lastState": {"terminated": {
                        "exitCode": 1, "reason": "Error",
                        "startedAt": "2025-06-01T10:00:12Z", "finishedAt": "2025-06-01T10:00:13Z"
                    }}
                }]
            }),
        );
        let t = timeline_from_pod(&p);
        let restore = t.container("restore").unwrap();
        assert_eq!(restore.runs.len(), 1);
        assert_eq!(restore.runs[0].restart_count, 1);
        assert_eq!(restore.waiting.as_ref().unwrap().reason, "CrashLoopBackOff");
        assert_eq!(t.phase, PodPhase::Initializing);
    }

    #[test]
    fn a_native_sidecar_runs_alongside_the_app() {
        let p = pod(
            json!({
                "initContainers": [
                    {"name": "restore", "image": "i"},
                    {"name": "backup", "image": "i", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "app", "image": "i"}]
            }),
            json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {
                        "name": "restore", "image": "i", "imageID": "", "ready": true,
                        "restartCount": 0,
                        "state": {"terminated": {
                            "exitCode": 0, "reason": "Completed",
                            "startedAt": "2025-06-01T10:00:01Z", "finishedAt": "2025-06-01T10:00:03Z"
                        }}
                    },
                    {
                        "name": "backup", "image": "i", "imageID": "", "ready": true,
                        "restartCount": 0, "started": true,
                        "state": {"running": {"startedAt": "2025-06-01T10:00:04Z"}}
                    }
                ],
                "containerStatuses": [{
                    "name": "app", "image": "i", "imageID": "", "ready": true,
                    "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": "2025-06-01T10:00:05Z"}}
                }]
            }),
        );
        let t = timeline_from_pod(&p);
        let roles: Vec<_> = t.containers.iter().map(|c| c.role).collect();
        assert_eq!(
            roles,
            [
                ContainerRole::Init,
                ContainerRole::NativeSidecar,
                ContainerRole::App
            ]
        );
        assert!(t.runs("backup")[0].is_running());
        assert!(t.runs("app")[0].is_running());
        assert_eq!(
            t.first_start(ContainerRole::NativeSidecar),
            Some(at("2025-06-01T10:00:04Z"))
        );
    }

    #[test]
    fn killed_containers_are_reported_as_killed_with_kubernetes_reason_kept() {
        let p = pod(
            classic_spec(),
            json!({
                "phase": "Running",
                "initContainerStatuses": [{
                    "name": "restore", "image": "i", "imageID": "", "ready": true,
                    "restartCount": 0,
                    "state": {"terminated": {
                        "exitCode": 0, "reason": "Completed",
                        "startedAt": "2025-06-01T10:00:01Z", "finishedAt": "2025-06-01T10:00:02Z"
                    }}
                }],
                "containerStatuses": [
                    {
                        "name": "app", "image": "i", "imageID": "", "ready": true,
                        "restartCount": 1, "started": true,
                        "state": {"running": {"startedAt": "2025-06-01T10:05:00Z"}},
                        "lastState": {"terminated": {
                            "exitCode": 137, "reason": "OOMKilled",
                            "startedAt": "2025-06-01T10:00:03Z", "finishedAt": "2025-06-01T10:04:59Z"
                        }}
                    },
                    {
                        "name": "backup", "image": "i", "imageID": "", "ready": true,
                        "restartCount": 3, "started": true,
                        "state": {"running": {"startedAt": "2025-06-01T10:06:00Z"}},
                        "lastState": {"terminated": {
                            "exitCode": 137, "reason": "Error",
                            "startedAt": "2025-06-01T10:03:00Z", "finishedAt": "2025-06-01T10:05:30Z"
                        }}
                    }
                ]
            }),
        );
        let t = timeline_from_pod(&p);
        let app = t.runs("app");
        assert_eq!(app.len(), 2);
        assert_eq!(app[0].exit_code, Some(137));
        assert_eq!(app[0].reason, Some(TerminationReason::Killed));
        assert_eq!(app[0].message.as_deref(), Some("OOMKilled"));
        assert_eq!((app[0].restart_count, app[1].restart_count), (0, 1));
        let backup = t.runs("backup");
        assert_eq!(backup[0].reason, Some(TerminationReason::Killed));
        assert_eq!(backup[0].message, None);
        assert_eq!(backup[0].restart_count, 2);
        assert!(t.render().contains("137"), "{t}");
    }

    #[test]
    fn pending_terminating_and_unscheduled_pods_get_their_phase_and_message() {
        let mut p = pod(
            classic_spec(),
            json!({
                "phase": "Pending",
                "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/1 nodes are available: persistentvolumeclaim \"data\" not found."
                }]
            }),
        );
        let t = timeline_from_pod(&p);
        assert_eq!(t.phase, PodPhase::Pending);
        assert!(t.message.unwrap().contains("persistentvolumeclaim"));
        assert!(t.containers.iter().all(|c| c.runs.is_empty()));
        assert_eq!(pod_info(&p).ip, Ipv4Addr::UNSPECIFIED);
        p.metadata.deletion_timestamp = p.metadata.creation_timestamp.clone();
        assert_eq!(pod_phase(&p), PodPhase::Terminating);
        assert!(timeline_from_pod(&p).deleted_at.is_some());
    }

    #[test]
    fn statefulset_pods_match_their_owner_and_start_errors_are_mapped() {
        let mut p = pod(classic_spec(), json!({}));
        p.metadata.owner_references.as_mut().unwrap()[0].kind = "StatefulSet".into();
        p.metadata.owner_references.as_mut().unwrap()[0].name = "db".into();
        assert!(is_named_or_owned_by(&p, "db"));
        assert!(!is_named_or_owned_by(&p, "phasepod"));
        assert_eq!(
            termination_reason(128, "StartError"),
            TerminationReason::StartError
        );
        assert_eq!(termination_reason(143, "Error"), TerminationReason::Killed);
        assert_eq!(termination_reason(2, "Error"), TerminationReason::Error);
    }
}

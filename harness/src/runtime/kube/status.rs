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
mod tests;

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

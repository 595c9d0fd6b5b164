//! The cluster runtime against a mock API server (kube's tower-test pattern): every request the
//! runtime sends is checked, and answered with real-shaped JSON.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::runtime::Error;
use harness::runtime::PodPhase;
use harness::runtime::kube::KubeRuntime;
use harness::runtime::objects::{Object, parse_manifests};
use harness::runtime::prelude::*;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request the runtime sent.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    /// Path and query.
    uri: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A reply: an answer, or no answer yet (a watch that stays open).
enum Reply {
    Answer(Response<Body>),
    Hold,
}

fn answer(status: u16, body: Value) -> Reply {
    Reply::Answer(
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    )
}

fn text(body: &str) -> Reply {
    Reply::Answer(
        Response::builder()
            .header("content-type", "text/plain")
            .body(Body::from(body.as_bytes().to_vec()))
            .unwrap(),
    )
}

/// A watch response: one JSON event per line, then the stream ends.
fn watch_events(events: &[Value]) -> Reply {
    let mut body = Vec::new();
    for event in events {
        body.extend(serde_json::to_vec(event).unwrap());
        body.push(b'\n');
    }
    Reply::Answer(Response::builder().body(Body::from(body)).unwrap())
}

/// A runtime whose API server is `serve`; returns it and the log of requests.
fn mock_runtime(
    serve: impl Fn(&Seen) -> Reply + Send + 'static,
) -> (KubeRuntime, Arc<Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let request = Seen {
                method: parts.method,
                uri: parts.uri.to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned()),
                body: body.collect_bytes().await.unwrap().to_vec(),
            };
            log.lock().unwrap().push(request.clone());
            match serve(&request) {
                Reply::Answer(response) => send.send_response(response),
                Reply::Hold => held.push(send),
            }
        }
    });
    let runtime =
        KubeRuntime::new(Client::new(service, "default")).with_wait_timeout(Duration::from_secs(2));
    (runtime, seen)
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}

fn namespace(name: &str, phase: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": name, "uid": "ns-uid-1", "resourceVersion": "7",
            "labels": {"app.kubernetes.io/managed-by": "phasecheck"}
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": phase}
    })
}

fn empty_list(kind: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "8"}, "items": []})
}

#[tokio::test]
async fn a_namespace_is_created_labelled_and_deleted_once_the_server_says_it_is_gone() {
    let (runtime, seen) = mock_runtime(|req| match (&req.method, req.uri.as_str()) {
        (&Method::POST, "/api/v1/namespaces?") => answer(201, namespace("pc-1", "Active")),
        (&Method::DELETE, uri) if uri.starts_with("/api/v1/namespaces/pc-1") => {
            answer(200, namespace("pc-1", "Terminating"))
        }
        (&Method::GET, uri) if uri.contains("fieldSelector=metadata.name%3Dpc-1") => {
            answer(200, empty_list("NamespaceList"))
        }
        _ => answer(500, status(500, "InternalError", "unexpected")),
    });
    runtime.create_namespace("pc-1").await.unwrap();
    runtime.delete_namespace("pc-1").await.unwrap();

    let seen = seen.lock().unwrap();
    let created = seen[0].json();
    assert_eq!(created["metadata"]["name"], "pc-1");
    assert_eq!(
        created["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "phasecheck"
    );
    assert_eq!(seen[1].method, Method::DELETE);
    assert!(
        seen[2].uri.starts_with("/api/v1/namespaces?"),
        "{:?}",
        seen[2]
    );
}

#[tokio::test]
async fn a_refused_namespace_deletion_is_an_error_not_a_silent_success() {
    let (runtime, _seen) = mock_runtime(|req| match req.method {
        Method::DELETE => answer(
            403,
            status(
                403,
                "Forbidden",
                "namespaces \"pc-1\" is forbidden: User \"ci\" cannot delete resource",
            ),
        ),
        _ => answer(500, status(500, "InternalError", "unexpected")),
    });
    let err = runtime.delete_namespace("pc-1").await.unwrap_err();
    assert!(matches!(err, Error::Api { .. }), "{err:?}");
    assert!(err.to_string().contains("delete namespace pc-1"), "{err}");
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("forbidden")
    );
}

#[tokio::test]
async fn a_namespace_stuck_terminating_times_out_naming_what_blocks_it() {
    let stuck = || {
        let mut ns = namespace("pc-1", "Terminating");
        ns["metadata"]["deletionTimestamp"] = json!("2025-06-01T10:00:00Z");
        ns["status"]["conditions"] = json!([{
            "type": "NamespaceFinalizersRemaining", "status": "True",
            "reason": "SomeFinalizersRemain",
            "message": "Some content in the namespace has finalizers remaining: example.com/block in 1 resource instances"
        }]);
        ns
    };
    let (runtime, _seen) = mock_runtime(move |req| match (&req.method, req.uri.as_str()) {
        (&Method::DELETE, _) => answer(200, stuck()),
        (&Method::GET, uri) if uri.contains("watch=true") => Reply::Hold,
        (&Method::GET, uri) if uri.contains("fieldSelector") => answer(
            200,
            json!({
                "apiVersion": "v1", "kind": "NamespaceList",
                "metadata": {"resourceVersion": "9"}, "items": [stuck()]
            }),
        ),
        (&Method::GET, "/api/v1/namespaces/pc-1") => answer(200, stuck()),
        _ => answer(500, status(500, "InternalError", "unexpected")),
    });
    let runtime = runtime.with_wait_timeout(Duration::from_millis(300));
    let err = runtime.delete_namespace("pc-1").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("finalizers remaining"), "{err}");
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: phasepod}
spec:
  replicas: 1
  selector: {matchLabels: {app: phasepod}}
  template:
    metadata: {labels: {app: phasepod}}
    spec:
      initContainers: [{name: restore, image: 'phasecheck/phasepod:dev'}]
      containers: [{name: app, image: 'phasecheck/phasepod:dev'}]
";

#[tokio::test]
async fn apply_sends_a_server_side_apply_patch_with_the_phasecheck_field_manager() {
    let (runtime, seen) = mock_runtime(|req| {
        let mut body = req.json();
        body["metadata"]["uid"] = json!("d-uid");
        answer(200, body)
    });
    let objects = parse_manifests(DEPLOYMENT, "d.yaml".as_ref()).unwrap();
    assert!(matches!(objects[0], Object::Deployment(_)));
    runtime.apply("pc-1", objects).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let patch = &seen[0];
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    let (path, query) = patch.uri.split_once('?').unwrap();
    assert_eq!(path, "/apis/apps/v1/namespaces/pc-1/deployments/phasepod");
    assert!(query.contains("fieldManager=phasecheck"), "{query}");
    assert!(query.contains("force=true"), "{query}");
    let body = patch.json();
    assert_eq!(body["apiVersion"], "apps/v1");
    assert_eq!(body["kind"], "Deployment");
    assert_eq!(body["metadata"]["namespace"], "pc-1");
    assert_eq!(
        body["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "restore"
    );
}

#[tokio::test]
async fn the_store_is_made_reachable_by_a_selectorless_service_and_an_endpoint_slice() {
    let (runtime, seen) = mock_runtime(|req| {
        if req.uri == "/apis/discovery.k8s.io/v1" {
            answer(
                200,
                json!({
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "discovery.k8s.io/v1",
                    "resources": [{"name": "endpointslices", "singularName": "endpointslice", "namespaced": true,
                                   "kind": "EndpointSlice", "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]
                }),
            )
        } else if req.method == Method::PATCH {
            answer(200, req.json())
        } else {
            answer(500, status(500, "InternalError", "unexpected"))
        }
    });
    let docs = harness::services::in_cluster::service_documents(
        "phasecheck-store",
        "172.18.0.1:40123".parse().unwrap(),
    );
    let objects = harness::runtime::objects::parse_documents(docs, "(store)".as_ref()).unwrap();
    runtime.apply("pc-1", objects).await.unwrap();

    let seen = seen.lock().unwrap();
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::PATCH).collect();
    assert_eq!(patches.len(), 2, "{seen:?}");
    assert!(
        patches[0]
            .uri
            .starts_with("/api/v1/namespaces/pc-1/services/phasecheck-store?"),
        "{}",
        patches[0].uri
    );
    assert!(patches[0].json()["spec"]["selector"].is_null());
    assert!(
        patches[1].uri.starts_with(
            "/apis/discovery.k8s.io/v1/namespaces/pc-1/endpointslices/phasecheck-store-host?"
        ),
        "{}",
        patches[1].uri
    );
    let slice = patches[1].json();
    assert_eq!(slice["metadata"]["namespace"], "pc-1");
    assert_eq!(slice["endpoints"][0]["addresses"][0], "172.18.0.1");
    assert_eq!(slice["ports"][0]["port"], 40123);
}

#[tokio::test]
async fn the_namespaces_left_by_killed_runs_are_found_by_their_label() {
    let (runtime, seen) = mock_runtime(|req| {
        if req.uri.starts_with("/api/v1/namespaces?") {
            answer(
                200,
                json!({
                    "apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": "9"},
                    "items": [namespace("pc-init-1-s3-phasepod-1a2b3", "Active"),
                              namespace("pc-mnt-5-git-phasepod-4c5d6", "Active")]
                }),
            )
        } else {
            answer(500, status(500, "InternalError", "unexpected"))
        }
    });
    let left = runtime.managed_namespaces().await.unwrap();
    assert_eq!(
        left,
        ["pc-init-1-s3-phasepod-1a2b3", "pc-mnt-5-git-phasepod-4c5d6"]
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen[0]
            .uri
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dphasecheck"),
        "{}",
        seen[0].uri
    );
}

/// A Deployment's pod at three moments: init running, app started, app ready.
fn deployment_pod(stage: u8) -> Value {
    let restore = match stage {
        0 => json!({"running": {"startedAt": "2025-06-01T10:00:02Z"}}),
        _ => json!({"terminated": {
            "exitCode": 0, "reason": "Completed",
            "startedAt": "2025-06-01T10:00:02Z", "finishedAt": "2025-06-01T10:00:04Z"
        }}),
    };
    let app = match stage {
        0 => json!({"waiting": {"reason": "PodInitializing"}}),
        _ => json!({"running": {"startedAt": "2025-06-01T10:00:05Z"}}),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "phasepod-6c9d8b7f5-abcde", "namespace": "pc-1", "uid": "pod-uid-1",
            "resourceVersion": format!("{}", 10 + stage),
            "creationTimestamp": "2025-06-01T10:00:00Z",
            "labels": {"app": "phasepod", "pod-template-hash": "6c9d8b7f5"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "phasepod-6c9d8b7f5",
                "uid": "rs-uid", "controller": true
            }]
        },
        "spec": {
            "initContainers": [{"name": "restore", "image": "phasecheck/phasepod:dev"}],
            "containers": [{"name": "app", "image": "phasecheck/phasepod:dev"}]
        },
        "status": {
            "phase": if stage == 0 { "Pending" } else { "Running" },
            "podIP": "10.244.0.7",
            "conditions": [{"type": "Ready", "status": if stage == 2 { "True" } else { "False" }}],
            "initContainerStatuses": [{
                "name": "restore", "image": "phasecheck/phasepod:dev", "imageID": "",
                "ready": stage > 0, "restartCount": 0, "state": restore
            }],
            "containerStatuses": [{
                "name": "app", "image": "phasecheck/phasepod:dev", "imageID": "",
                "ready": stage == 2, "restartCount": 0, "state": app
            }]
        }
    })
}

#[tokio::test]
async fn waiting_for_readiness_follows_watch_events_from_initializing_to_ready() {
    let (runtime, seen) = mock_runtime(|req| {
        if req.uri.contains("watch=true") {
            watch_events(&[
                json!({"type": "MODIFIED", "object": deployment_pod(1)}),
                json!({"type": "MODIFIED", "object": deployment_pod(2)}),
            ])
        } else if req.uri.starts_with("/api/v1/namespaces/pc-1/pods?") {
            answer(
                200,
                json!({
                    "apiVersion": "v1", "kind": "PodList",
                    "metadata": {"resourceVersion": "10"}, "items": [deployment_pod(0)]
                }),
            )
        } else {
            answer(500, status(500, "InternalError", "unexpected"))
        }
    });
    let phases = Mutex::new(Vec::new());
    let pod = runtime
        .wait_for_pod(
            "pc-1",
            "phasepod",
            |p| {
                phases.lock().unwrap().push(p.phase);
                p.ready
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(pod.name, "phasepod-6c9d8b7f5-abcde");
    assert_eq!(pod.phase, PodPhase::Running);
    assert_eq!(pod.ip.to_string(), "10.244.0.7");
    assert_eq!(
        *phases.lock().unwrap(),
        [PodPhase::Initializing, PodPhase::Running, PodPhase::Running]
    );
    let seen = seen.lock().unwrap();
    assert!(seen[1].uri.contains("resourceVersion=10"), "{seen:?}");
}

#[tokio::test]
async fn a_pod_that_never_gets_ready_times_out_with_its_timeline() {
    let (runtime, _seen) = mock_runtime(|req| {
        if req.uri.contains("watch=true") {
            Reply::Hold
        } else {
            answer(
                200,
                json!({
                    "apiVersion": "v1", "kind": "PodList",
                    "metadata": {"resourceVersion": "10"}, "items": [deployment_pod(0)]
                }),
            )
        }
    });
    let err = runtime
        .wait_for_pod("pc-1", "phasepod", |p| p.ready, Duration::from_millis(300))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("restore"), "{message}");
    assert!(message.contains("PodInitializing"), "{message}");
}

#[tokio::test]
async fn failure_artefacts_include_previous_logs_events_and_pod_yaml() {
    let mut pod = deployment_pod(2);
    pod["status"]["containerStatuses"][0]["restartCount"] = json!(1);
    pod["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {
        "exitCode": 137, "reason": "OOMKilled",
        "startedAt": "2025-06-01T10:00:05Z", "finishedAt": "2025-06-01T10:01:00Z"
    }});
    let (runtime, seen) = mock_runtime(move |req| {
        let uri = req.uri.as_str();
        if uri.starts_with("/api/v1/namespaces/pc-1/pods?") {
            answer(
                200,
                json!({
                    "apiVersion": "v1", "kind": "PodList",
                    "metadata": {"resourceVersion": "12"}, "items": [pod.clone()]
                }),
            )
        } else if uri.contains("/log?") && uri.contains("previous=true") {
            text("serving\nout of memory\n")
        } else if uri.contains("/log?") && uri.contains("container=app") {
            text("serving again\n")
        } else if uri.contains("/log?") && uri.contains("container=restore") {
            text("restored 3 files\n")
        } else if uri.starts_with("/api/v1/namespaces/pc-1/events?") {
            answer(
                200,
                json!({
                    "apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": "12"},
                    "items": [{
                        "metadata": {"name": "e1", "namespace": "pc-1"},
                        "involvedObject": {"kind": "Pod", "name": "phasepod-6c9d8b7f5-abcde"},
                        "type": "Warning", "reason": "BackOff",
                        "message": "Back-off restarting failed container app",
                        "lastTimestamp": "2025-06-01T10:01:01Z", "count": 2
                    }]
                }),
            )
        } else {
            answer(404, status(404, "NotFound", "unexpected"))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let written = runtime
        .collect_failure_artefacts("pc-1", dir.path())
        .await
        .unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "phasepod-6c9d8b7f5-abcde.yaml",
            "phasepod-6c9d8b7f5-abcde.timeline.txt",
            "phasepod-6c9d8b7f5-abcde.restore.log",
            "phasepod-6c9d8b7f5-abcde.app.previous.log",
            "phasepod-6c9d8b7f5-abcde.app.log",
            "events.txt",
        ]
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(
        read("phasepod-6c9d8b7f5-abcde.app.previous.log"),
        "serving\nout of memory\n"
    );
    assert!(read("phasepod-6c9d8b7f5-abcde.yaml").contains("pod-template-hash"));
    assert!(read("phasepod-6c9d8b7f5-abcde.timeline.txt").contains("OOMKilled"));
    assert!(read("events.txt").contains("Warning BackOff Pod/phasepod-6c9d8b7f5-abcde"));
    let seen = seen.lock().unwrap();
    let previous: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.uri.contains("previous=true"))
        .collect();
    assert_eq!(previous.len(), 1, "{seen:?}");
    assert!(previous[0].uri.contains("container=app"));
}

/// A running helper pod as the API server reports it.
fn running_helper(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "pc-1", "uid": "helper-uid", "resourceVersion": "20",
                     "creationTimestamp": "2026-11-27T10:00:00Z"},
        "spec": {"containers": [{"name": "tool", "image": "phasecheck/phasepod:dev"}]},
        "status": {
            "phase": "Running", "podIP": "10.244.0.9",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": "tool", "ready": true, "restartCount": 0, "image": "phasecheck/phasepod:dev",
                "imageID": "", "containerID": "containerd://0123456789abcdef",
                "state": {"running": {"startedAt": "2026-11-27T10:00:01Z"}}
            }]
        }
    })
}

#[tokio::test]
async fn reading_a_claim_starts_a_root_helper_mounting_it_then_packs_it_through_exec() {
    let (runtime, seen) = mock_runtime(|req| {
        let helper = "/api/v1/namespaces/pc-1/pods/phasecheck-claim-data";
        if req.method == Method::GET && req.uri == helper {
            answer(
                404,
                status(404, "NotFound", "pods \"phasecheck-claim-data\" not found"),
            )
        } else if req.method == Method::POST && req.uri.starts_with("/api/v1/namespaces/pc-1/pods?")
        {
            answer(201, running_helper("phasecheck-claim-data"))
        } else if req.uri.contains("watch=true") {
            Reply::Hold
        } else if req.uri.starts_with("/api/v1/namespaces/pc-1/pods?") {
            answer(
                200,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "21"},
                       "items": [running_helper("phasecheck-claim-data")]}),
            )
        } else {
            // NB: the mock cannot upgrade to a websocket; the exec request itself is the evidence.
            answer(400, status(400, "BadRequest", "no upgrade in a mock"))
        }
    });
    let err = runtime.read_claim("pc-1", "data").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("exec in pc-1/phasecheck-claim-data"),
        "{err}"
    );
    let seen = seen.lock().unwrap();
    let created = seen
        .iter()
        .find(|s| s.method == Method::POST)
        .expect("the helper pod is created")
        .json();
    assert_eq!(
        created["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data"
    );
    let container = &created["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["runAsUser"], 0);
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/claim");
    assert_eq!(container["image"], "phasecheck/tools:dev");
    assert_eq!(container["command"], json!(["/phasecheck-tools", "hold"]));
    let exec = seen
        .iter()
        .find(|s| s.uri.contains("/exec?"))
        .expect("the archive is asked for through exec");
    for arg in [
        "command=%2Fphasecheck-tools",
        "command=pack",
        "command=%2Fclaim",
        "container=tool",
    ] {
        assert!(exec.uri.contains(arg), "{arg} in {}", exec.uri);
    }
}

#[tokio::test]
async fn killing_a_container_that_is_not_running_is_an_error_and_starts_no_helper() {
    let (runtime, seen) = mock_runtime(|req| {
        if req.method == Method::GET && req.uri.ends_with("/pods/phasepod-6c9d8b7f5-abcde") {
            answer(200, deployment_pod(0))
        } else {
            answer(500, status(500, "InternalError", "unexpected"))
        }
    });
    let err = runtime
        .kill_container("pc-1", "phasepod-6c9d8b7f5-abcde", "app")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");
    let err = runtime
        .kill_container("pc-1", "phasepod-6c9d8b7f5-abcde", "nope")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoContainer { .. }), "{err}");
    assert!(
        seen.lock().unwrap().iter().all(|s| s.method == Method::GET),
        "no helper pod is created"
    );
}

#[tokio::test]
async fn the_server_version_decides_whether_native_sidecars_run() {
    for (minor, native) in [("28", false), ("29", true), ("33+", true)] {
        let (runtime, _) = mock_runtime(move |req| {
            if req.uri == "/version" {
                answer(
                    200,
                    json!({"major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"),
                           "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                           "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
                )
            } else {
                answer(500, status(500, "InternalError", "unexpected"))
            }
        });
        assert_eq!(
            runtime.supports_native_sidecars().await.unwrap(),
            native,
            "Kubernetes 1.{minor}"
        );
    }
}

const WEBHOOK_CONFIGURATION: &str = "\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: phasepod-injector}
webhooks:
  - name: inject.phasecheck.io
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Fail
    clientConfig:
      service: {name: phasepod-injector, namespace: phasepod-system, path: /mutate, port: 443}
      caBundle: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    rules:
      - {operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}
";

const WEBHOOK_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/phasepod-injector";

#[tokio::test]
async fn a_webhook_configuration_is_applied_at_the_cluster_scope_with_its_ca_bundle() {
    let (runtime, seen) = mock_runtime(|req| answer(200, req.json()));
    let objects = parse_manifests(WEBHOOK_CONFIGURATION, "w.yaml".as_ref()).unwrap();
    assert!(matches!(
        objects[0],
        Object::MutatingWebhookConfiguration(_)
    ));
    assert!(objects[0].is_cluster_scoped());
    runtime.apply("phasepod-system", objects).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let patch = &seen[0];
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    let (path, query) = patch.uri.split_once('?').unwrap();
    assert_eq!(path, WEBHOOK_PATH, "no namespace in the path");
    assert!(query.contains("fieldManager=phasecheck"), "{query}");
    assert!(query.contains("force=true"), "{query}");
    let body = patch.json();
    assert_eq!(body["kind"], "MutatingWebhookConfiguration");
    assert!(body["metadata"]["namespace"].is_null(), "{body}");
    let webhook = &body["webhooks"][0];
    assert_eq!(webhook["name"], "inject.phasecheck.io");
    assert_eq!(
        webhook["clientConfig"]["caBundle"],
        "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"
    );
    assert_eq!(
        webhook["clientConfig"]["service"]["namespace"],
        "phasepod-system"
    );
}

#[tokio::test]
async fn removing_a_webhook_configuration_already_gone_is_no_error() {
    let (runtime, seen) = mock_runtime(|req| match req.method {
        Method::DELETE => answer(
            404,
            status(
                404,
                "NotFound",
                "mutatingwebhookconfigurations.admissionregistration.k8s.io \"phasepod-injector\" not found",
            ),
        ),
        _ => answer(500, status(500, "InternalError", "unexpected")),
    });
    let objects = parse_manifests(WEBHOOK_CONFIGURATION, "w.yaml".as_ref()).unwrap();
    runtime.delete_cluster_objects(&objects).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, Method::DELETE);
    let path = seen[0].uri.split('?').next().unwrap();
    assert_eq!(path, WEBHOOK_PATH);
}

#[tokio::test]
async fn a_webhook_configuration_the_server_fails_to_delete_is_an_error_naming_it() {
    let (runtime, _seen) = mock_runtime(|_| {
        answer(
            500,
            status(500, "InternalError", "etcdserver: request timed out"),
        )
    });
    let mut objects = parse_manifests(DEPLOYMENT, "d.yaml".as_ref()).unwrap();
    objects.extend(parse_manifests(WEBHOOK_CONFIGURATION, "w.yaml".as_ref()).unwrap());
    let err = runtime.delete_cluster_objects(&objects).await.unwrap_err();
    assert!(matches!(err, Error::Api { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("MutatingWebhookConfiguration/phasepod-injector"),
        "{err}"
    );
}

#[tokio::test]
async fn the_pod_spec_is_the_one_the_api_server_stored_after_admission() {
    let mut injected = deployment_pod(2);
    injected["spec"]["initContainers"] = json!([
        {"name": "restore", "image": "phasecheck/phasepod:dev", "args": ["restore"]},
        {"name": "backup", "image": "phasecheck/phasepod:dev", "args": ["backup"],
         "restartPolicy": "Always"}
    ]);
    let (runtime, seen) = mock_runtime(move |req| {
        if req.method == Method::GET
            && req.uri == "/api/v1/namespaces/pc-1/pods/phasepod-6c9d8b7f5-abcde"
        {
            answer(200, injected.clone())
        } else {
            answer(500, status(500, "InternalError", "unexpected"))
        }
    });
    let spec = runtime
        .pod_spec("pc-1", "phasepod-6c9d8b7f5-abcde")
        .await
        .unwrap();
    let inits: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(inits, ["restore", "backup"]);
    let backup = &spec.init_containers.as_ref().unwrap()[1];
    assert_eq!(backup.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.containers[0].name, "app");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_pod_spec_of_a_pod_that_does_not_exist_is_no_pod() {
    let (runtime, _seen) = mock_runtime(|_| {
        answer(
            404,
            status(404, "NotFound", "pods \"phasepod-gone\" not found"),
        )
    });
    let err = runtime.pod_spec("pc-1", "phasepod-gone").await.unwrap_err();
    assert!(matches!(err, Error::NoPod { .. }), "{err:?}");
}

/// A namespace's events: the ReplicaSet could not create the pod, plus noise.
fn refused_events() -> Value {
    json!({
        "apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": "12"},
        "items": [
            {
                "metadata": {"name": "e1", "namespace": "pc-1"},
                "involvedObject": {"kind": "Deployment", "name": "phasepod"},
                "type": "Normal", "reason": "ScalingReplicaSet",
                "message": "Scaled up replica set phasepod-6c9d8b7f5 from 0 to 1",
                "lastTimestamp": "2025-06-01T10:00:00Z", "count": 1
            },
            {
                "metadata": {"name": "e2", "namespace": "pc-1"},
                "involvedObject": {"kind": "ReplicaSet", "name": "phasepod-6c9d8b7f5"},
                "type": "Warning", "reason": "FailedCreate",
                "message": "Error creating: Internal error occurred: failed calling webhook \"inject.phasecheck.io\": failed to call webhook: Post \"https://phasepod-injector.phasepod-system.svc:443/mutate?timeout=10s\": no endpoints available for service \"phasepod-injector\"",
                "lastTimestamp": "2025-06-01T10:00:05Z", "count": 4
            },
            {
                "metadata": {"name": "e3", "namespace": "pc-1"},
                "involvedObject": {"kind": "PersistentVolumeClaim", "name": "data"},
                "type": "Warning", "reason": "ProvisioningFailed",
                "message": "unrelated to the workload",
                "lastTimestamp": "2025-06-01T10:00:01Z", "count": 1
            }
        ]
    })
}

#[tokio::test]
async fn a_workload_whose_pod_admission_refuses_times_out_naming_the_webhook() {
    let (runtime, seen) = mock_runtime(|req| {
        if req.uri.contains("watch=true") {
            Reply::Hold
        } else if req.uri.starts_with("/api/v1/namespaces/pc-1/pods?") {
            answer(200, empty_list("PodList"))
        } else if req.uri.starts_with("/api/v1/namespaces/pc-1/events?") {
            answer(200, refused_events())
        } else {
            answer(500, status(500, "InternalError", "unexpected"))
        }
    });
    let err = runtime
        .wait_for_pod("pc-1", "phasepod", |p| p.ready, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("no pod is named or owned by `phasepod`"),
        "{message}"
    );
    assert!(
        message.contains(
            "Warning FailedCreate ReplicaSet/phasepod-6c9d8b7f5: Error creating: Internal error occurred: failed calling webhook \"inject.phasecheck.io\""
        ),
        "{message}"
    );
    assert!(message.contains("(x4)"), "{message}");
    assert!(!message.contains("ScalingReplicaSet"), "{message}");
    assert!(!message.contains("unrelated"), "{message}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s.uri.starts_with("/api/v1/namespaces/pc-1/events?")),
        "the events are read"
    );
}

#[tokio::test]
async fn a_pod_wait_whose_events_cannot_be_read_still_times_out_saying_so() {
    let (runtime, _seen) = mock_runtime(|req| {
        if req.uri.contains("watch=true") {
            Reply::Hold
        } else if req.uri.starts_with("/api/v1/namespaces/pc-1/pods?") {
            answer(200, empty_list("PodList"))
        } else {
            answer(
                403,
                status(
                    403,
                    "Forbidden",
                    "events is forbidden: User \"ci\" cannot list",
                ),
            )
        }
    });
    let err = runtime
        .wait_for_pod("pc-1", "phasepod", |p| p.ready, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("no pod is named or owned"), "{message}");
    assert!(
        message.contains("cannot read the events of pc-1"),
        "{message}"
    );
}

const PHASEDAPPS_GROUP: &str = "/apis/phasecheck.io/v1alpha1";

/// Discovery of `phasecheck.io/v1alpha1`: `phasedapps` with its scale subresource.
fn phasedapp_resources() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "phasecheck.io/v1alpha1",
        "resources": [
            {"name": "phasedapps", "singularName": "phasedapp", "namespaced": true,
             "kind": "PhasedApp", "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            {"name": "phasedapps/scale", "singularName": "", "namespaced": true,
             "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}
        ]
    })
}

const PHASEDAPP: harness::runtime::CustomResource<'static> = harness::runtime::CustomResource {
    api_version: "phasecheck.io/v1alpha1",
    kind: "PhasedApp",
    name: "phasepod",
};

#[tokio::test]
async fn a_custom_resource_is_scaled_through_its_scale_subresource_then_its_operators_pods_awaited()
{
    let (runtime, seen) = mock_runtime(|req| match (&req.method, req.uri.as_str()) {
        (&Method::GET, PHASEDAPPS_GROUP) => answer(200, phasedapp_resources()),
        (&Method::PATCH, uri)
            if uri.starts_with(
                "/apis/phasecheck.io/v1alpha1/namespaces/pc-1/phasedapps/phasepod/scale",
            ) =>
        {
            answer(
                200,
                json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": "phasepod", "namespace": "pc-1"},
                    "spec": {"replicas": 1}, "status": {"replicas": 0}
                }),
            )
        }
        (&Method::GET, uri) if uri.contains("watch=true") => Reply::Hold,
        (&Method::GET, uri) if uri.starts_with("/api/v1/namespaces/pc-1/pods?") => answer(
            200,
            json!({
                "apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": "10"}, "items": [deployment_pod(0)]
            }),
        ),
        _ => answer(500, status(500, "InternalError", "unexpected")),
    });
    // NB: the operator's Deployment is `phasepod`: its pods are owned by ReplicaSet
    // `phasepod-<hash>`.
    runtime
        .scale_resource("pc-1", &PHASEDAPP, "phasepod", 1)
        .await
        .unwrap();

    let seen = seen.lock().unwrap();
    let patch = seen
        .iter()
        .find(|r| r.method == Method::PATCH)
        .expect("a PATCH");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch.json(), json!({"spec": {"replicas": 1}}));
    assert!(
        !seen.iter().any(|r| r.uri.contains("/deployments/")),
        "the Deployment is the operator's to scale: {seen:?}"
    );
}

#[tokio::test]
async fn a_custom_resource_without_a_scale_subresource_is_an_error_saying_what_the_crd_needs() {
    let (runtime, _) = mock_runtime(|req| match (&req.method, req.uri.as_str()) {
        (&Method::GET, PHASEDAPPS_GROUP) => answer(200, phasedapp_resources()),
        (&Method::PATCH, _) => answer(
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ),
        _ => answer(500, status(500, "InternalError", "unexpected")),
    });
    let err = runtime
        .scale_resource("pc-1", &PHASEDAPP, "phasepod", 0)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("PhasedApp phasepod") && message.contains("subresources.scale"),
        "{message}"
    );
}

const OPERATOR_OBJECTS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: phasedapps.phasecheck.io}
spec:
  group: phasecheck.io
  names: {kind: PhasedApp, plural: phasedapps}
  scope: Namespaced
  versions: [{name: v1alpha1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: phasepod-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: phasepod-operator}
"#;

#[tokio::test]
async fn an_operators_crd_is_deleted_at_the_cluster_scope_and_its_namespaced_objects_left_to_their_namespace()
 {
    let (runtime, seen) = mock_runtime(|req| match (&req.method, req.uri.as_str()) {
        (&Method::GET, "/apis/apiextensions.k8s.io/v1") => answer(
            200,
            json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apiextensions.k8s.io/v1",
                "resources": [{"name": "customresourcedefinitions", "singularName": "customresourcedefinition",
                  "namespaced": false, "kind": "CustomResourceDefinition", "verbs": ["delete", "get"]}]
            }),
        ),
        (&Method::GET, "/apis/rbac.authorization.k8s.io/v1") => answer(
            200,
            json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "rbac.authorization.k8s.io/v1",
                "resources": [{"name": "rolebindings", "singularName": "rolebinding",
                  "namespaced": true, "kind": "RoleBinding", "verbs": ["delete", "get"]}]
            }),
        ),
        (&Method::DELETE, _) => answer(200, status(200, "", "")),
        _ => answer(500, status(500, "InternalError", "unexpected")),
    });
    let objects = parse_manifests(OPERATOR_OBJECTS, "o.yaml".as_ref()).unwrap();
    runtime.delete_cluster_objects(&objects).await.unwrap();

    let seen = seen.lock().unwrap();
    let deleted: Vec<&str> = seen
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.uri.split('?').next().unwrap())
        .collect();
    assert_eq!(
        deleted,
        ["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/phasedapps.phasecheck.io"]
    );
}

#[tokio::test]
async fn clean_deletes_the_cluster_scoped_objects_a_killed_install_left_webhooks_first() {
    let (runtime, seen) = mock_runtime(|req| {
        let path = req.uri.split('?').next().unwrap();
        match (&req.method, path) {
            (&Method::GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions") => answer(
                200,
                json!({
                    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList",
                    "metadata": {"resourceVersion": "3"},
                    "items": [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                               "metadata": {"name": "phasedapps.phasecheck.io",
                                            "labels": {"app.kubernetes.io/managed-by": "phasecheck"}}}]
                }),
            ),
            (&Method::GET, _) => answer(200, empty_list("List")),
            (&Method::DELETE, _) => answer(200, status(200, "", "")),
            _ => answer(500, status(500, "InternalError", "unexpected")),
        }
    });
    let deleted = runtime.delete_managed_cluster_objects().await.unwrap();
    assert_eq!(
        deleted,
        ["CustomResourceDefinition phasedapps.phasecheck.io"]
    );

    let seen = seen.lock().unwrap();
    let lists: Vec<&str> = seen
        .iter()
        .filter(|r| r.method == Method::GET)
        .map(|r| r.uri.as_str())
        .collect();
    assert!(
        lists[0]
            .starts_with("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations?"),
        "{lists:?}"
    );
    assert!(
        lists
            .iter()
            .all(|uri| uri.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dphasecheck")),
        "{lists:?}"
    );
    assert_eq!(lists.len(), 5, "{lists:?}");
}

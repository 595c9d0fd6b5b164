//! The embedded runtime with real processes: `/bin/sh` scripts stand in for containers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::runtime::Error;
use harness::runtime::local::{ImageMap, Isolation, LocalRuntime};
use harness::runtime::objects::parse_manifests;
use harness::runtime::prelude::*;
use harness::runtime::timeline::{ContainerRole, TerminationReason, Timeline};
use harness::runtime::{ExecOutput, PodInfo, PodPhase};

/// Long enough for anything a test waits for on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

fn runtime() -> LocalRuntime {
    LocalRuntime::builder()
        .with_images(
            ImageMap::default()
                .with_image("test/sh:1", ["/bin/sh", "-c"], Vec::<String>::new())
                .with_image("test/python:1", ["python3"], Vec::<String>::new()),
        )
        .with_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .with_grace_period(Duration::from_secs(2))
        .build()
        .expect("runtime builds")
}

async fn apply(rt: &LocalRuntime, ns: &str, yaml: &str) -> Result<(), String> {
    let objects = parse_manifests(yaml, Path::new("test.yaml")).map_err(|e| e.to_string())?;
    rt.apply(ns, objects).await.map_err(|e| e.to_string())
}

async fn setup(rt: &LocalRuntime, ns: &str, yaml: &str) {
    rt.create_namespace(ns).await.unwrap();
    apply(rt, ns, yaml).await.unwrap();
}

async fn ready(rt: &LocalRuntime, ns: &str, name: &str) -> PodInfo {
    rt.wait_for_pod(ns, name, |p| p.ready, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Processes (not zombies) whose command line or environment contains `marker`; containers get
/// it as env var `MARKER`, which their children inherit.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let read = |file: &str| {
            let bytes = std::fs::read(entry.path().join(file)).unwrap_or_default();
            String::from_utf8_lossy(&bytes).replace('\0', " ")
        };
        let cmdline = read("cmdline");
        if !cmdline.is_empty() && (cmdline.contains(marker) || read("environ").contains(marker)) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// Polls `/proc` until no process holds `marker` (process death is not observable as an event).
async fn until_no_process_with(marker: &str, timeout: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = processes_with(marker);
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `script` with `/bin/sh -c` in the running container.
async fn sh(rt: &LocalRuntime, ns: &str, pod: &str, container: &str, script: &str) -> ExecOutput {
    rt.exec(
        ns,
        pod,
        container,
        &["/bin/sh".into(), "-c".into(), script.into()],
    )
    .await
    .unwrap_or_else(|e| panic!("exec {script:?} in {pod}/{container}: {e}"))
}

/// The command lines of every process the container's sandbox shows in its `/proc`.
async fn visible_processes(rt: &LocalRuntime, ns: &str, pod: &str, container: &str) -> String {
    let out = sh(
        rt,
        ns,
        pod,
        container,
        r#"for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done"#,
    )
    .await;
    assert_eq!(out.exit_code, 0, "{out:?}");
    out.stdout
}

fn host_mount(mounts: &[harness::runtime::local::Mount], path: &str) -> PathBuf {
    mounts
        .iter()
        .find(|m| m.mount_path == path)
        .unwrap_or_else(|| panic!("no mount at {path}: {mounts:?}"))
        .host_path
        .clone()
}

#[tokio::test]
async fn init_containers_run_in_order_before_app_containers() {
    let rt = runtime();
    setup(
        &rt,
        "order",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - {name: first, image: test/sh:1, args: ["echo first; sleep 0.2"]}
  - {name: second, image: test/sh:1, args: ["echo second; sleep 0.2"]}
  containers:
  - {name: app, image: test/sh:1, args: ["echo app; exec sleep 1000"]}
  - {name: other, image: test/sh:1, args: ["exec sleep 1000"]}
"#,
    )
    .await;
    let pod = ready(&rt, "order", "p").await;
    assert_eq!(pod.phase, PodPhase::Running);
    let t = rt.timeline("order", "p").await.unwrap();
    let run = |name: &str| t.runs(name)[0].clone();
    assert_eq!(run("first").exit_code, Some(0), "{t}");
    assert!(
        run("first").finished_at.unwrap() <= run("second").started_at,
        "{t}"
    );
    assert!(
        run("second").finished_at.unwrap() <= run("app").started_at,
        "{t}"
    );
    assert!(
        t.last_finish(ContainerRole::Init).unwrap() <= t.first_start(ContainerRole::App).unwrap(),
        "{t}"
    );
    assert!(run("app").is_running() && run("other").is_running(), "{t}");
    assert_eq!(rt.logs("order", "p", "first").await.unwrap(), "first\n");
    rt.watch_log("order", "p", "app", "app", WAIT)
        .await
        .unwrap();
    rt.shutdown().await;
}

#[tokio::test]
async fn a_failing_init_container_is_retried_with_backoff_until_a_file_appears() {
    let rt = runtime();
    setup(
        &rt,
        "retry",
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - name: wait
    image: test/sh:1
    args:
    - |
      test -f "$DATA/go" && exit 0
      n=$(cat "$DATA/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$DATA/count"
      echo "attempt $n failed"; exit 1
    env: [{name: DATA, value: /data}]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - {name: app, image: test/sh:1, args: ["exec sleep 1000"]}
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#,
    )
    .await;
    rt.watch_log("retry", "p", "wait", "attempt 3 failed", WAIT)
        .await
        .unwrap();
    let pod = rt.pods("retry").await.unwrap().remove(0);
    assert_eq!(pod.phase, PodPhase::Initializing);
    assert!(!pod.ready);
    std::fs::write(rt.pvc_path("retry", "data").unwrap().join("go"), "").unwrap();
    ready(&rt, "retry", "p").await;
    let t = rt.timeline("retry", "p").await.unwrap();
    let runs = t.runs("wait");
    assert!(runs.len() >= 4, "{t}");
    let (last, failed) = runs.split_last().unwrap();
    assert_eq!(last.exit_code, Some(0), "{t}");
    assert!(
        failed
            .iter()
            .all(|r| r.exit_code == Some(1) && r.reason == Some(TerminationReason::Error)),
        "{t}"
    );
    // Back-off: 100 ms, 200 ms, 400 ms … between a failure and the next attempt.
    for (i, pair) in runs.windows(2).enumerate().take(3) {
        let gap = pair[1].started_at - pair[0].finished_at.unwrap();
        let expected = 100 * (1 << i);
        assert!(
            gap.num_milliseconds() >= expected - 5,
            "gap {i} is {gap}, expected ≥ {expected} ms\n{t}"
        );
        assert_eq!(pair[1].restart_count, pair[0].restart_count + 1);
    }
    assert!(
        t.runs("app")[0].started_at >= last.finished_at.unwrap(),
        "{t}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_failing_init_container_fails_the_pod_under_restart_policy_never() {
    let rt = runtime();
    setup(
        &rt,
        "never",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  restartPolicy: Never
  initContainers:
  - {name: sidecar, image: test/sh:1, restartPolicy: Always, args: ["exec sleep 1000"]}
  - {name: broken, image: test/sh:1, args: ["exit 3"]}
  containers:
  - {name: app, image: test/sh:1, args: ["exec sleep 1000"]}
"#,
    )
    .await;
    let pod = rt
        .wait_for_pod("never", "p", |p| p.phase == PodPhase::Failed, WAIT)
        .await
        .unwrap();
    assert!(!pod.ready);
    let t = rt.timeline("never", "p").await.unwrap();
    assert_eq!(t.runs("broken").len(), 1, "{t}");
    assert_eq!(t.runs("broken")[0].exit_code, Some(3), "{t}");
    assert!(t.runs("app").is_empty(), "{t}");
    assert!(
        !t.runs("sidecar")[0].is_running(),
        "the sidecar is stopped with the pod\n{t}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_native_sidecar_starts_before_the_app_keeps_running_and_is_restarted_after_a_kill() {
    let rt = runtime();
    setup(&rt, "sidecar", r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - {name: backup, image: test/sh:1, restartPolicy: Always, args: ["echo sidecar up; exec sleep 1000"]}
  - {name: restore, image: test/sh:1, args: ["sleep 0.2"]}
  containers:
  - {name: app, image: test/sh:1, args: ["exec sleep 1000"]}
"#).await;
    ready(&rt, "sidecar", "p").await;
    let t = rt.timeline("sidecar", "p").await.unwrap();
    assert_eq!(
        t.container("backup").unwrap().role,
        ContainerRole::NativeSidecar
    );
    let sidecar = &t.runs("backup")[0];
    assert!(sidecar.is_running(), "{t}");
    assert!(sidecar.started_at <= t.runs("restore")[0].started_at, "{t}");
    assert!(sidecar.started_at < t.runs("app")[0].started_at, "{t}");

    rt.kill_container("sidecar", "p", "backup").await.unwrap();
    let t = rt
        .wait_for_timeline(
            "sidecar",
            "p",
            |t| t.runs("backup").len() == 2 && t.runs("backup")[1].is_running(),
            WAIT,
        )
        .await
        .unwrap();
    let killed = &t.runs("backup")[0];
    assert_eq!(killed.exit_code, Some(137), "{t}");
    assert_eq!(killed.reason, Some(TerminationReason::Killed), "{t}");
    assert_eq!(t.container("backup").unwrap().restart_count(), 1);
    assert_eq!(t.runs("app").len(), 1, "the app is not interrupted\n{t}");
    assert!(t.runs("app")[0].is_running(), "{t}");
    assert_eq!(
        t.runs("restore").len(),
        1,
        "init containers do not run again\n{t}"
    );
    let logs = rt.logs("sidecar", "p", "backup").await.unwrap();
    assert!(logs.starts_with("sidecar up\n"), "{logs:?}");
    rt.shutdown().await;
}

#[tokio::test]
async fn env_value_from_secret_config_map_and_field_refs_is_resolved_and_nothing_else_leaks() {
    let rt = runtime();
    setup(
        &rt,
        "env",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: czNjcjN0}
stringData: {user: alice}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: endpoint}
data: {URL: "http://store:9000", BUCKET: b}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: test/sh:1
    command: [/bin/sleep]
    args: ["1000"]
    envFrom: [{configMapRef: {name: endpoint}, prefix: S3_}]
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: USER_NAME, valueFrom: {secretKeyRef: {name: creds, key: user}}}
    - {name: MISSING, valueFrom: {secretKeyRef: {name: creds, key: nope, optional: true}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: GREETING, value: "hi $(USER_NAME) at $(S3_URL)"}
"#,
    )
    .await;
    let pod = ready(&rt, "env", "p").await;
    let env = rt.process_env("env", "p", "app").await.unwrap();
    assert_eq!(env["PASSWORD"], "s3cr3t");
    assert_eq!(env["USER_NAME"], "alice");
    assert_eq!(env["POD_IP"], pod.ip.to_string());
    assert!(pod.ip.is_loopback() && pod.ip.octets()[0] == 127);
    assert_eq!(env["POD_NAME"], "p");
    assert_eq!(env["POD_NS"], "env");
    assert_eq!(env["NODE"], "phasecheck-local");
    assert_eq!(env["S3_URL"], "http://store:9000");
    assert_eq!(env["GREETING"], "hi alice at http://store:9000");
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "GREETING",
            "HOME",
            "HOSTNAME",
            "NODE",
            "PASSWORD",
            "PATH",
            "POD_IP",
            "POD_NAME",
            "POD_NS",
            "S3_BUCKET",
            "S3_URL",
            "USER_NAME"
        ],
        "only the spec's env plus HOSTNAME, PATH and HOME"
    );
    assert_eq!(env["HOSTNAME"], "p");
    assert_eq!(
        env["PATH"],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(env["HOME"], "/root", "root's home in /etc/passwd");
    // This process's own variables (cargo sets CARGO_PKG_NAME and more for tests; this machine
    // exports AWS_CA_BUNDLE) stay out, whatever their values.
    let ours: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    assert!(ours.iter().any(|k| k == "CARGO_PKG_NAME"), "{ours:?}");
    for key in ours {
        if !keys.contains(&key.as_str()) {
            assert!(!env.contains_key(&key), "{key} leaked into the container");
        }
    }
    let seen = sh(&rt, "env", "p", "app", "env | sort").await.stdout;
    assert!(!seen.contains("CARGO_PKG_NAME"), "{seen}");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_missing_secret_key_holds_the_container_until_the_secret_appears() {
    let rt = runtime();
    setup(
        &rt,
        "missing",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - name: restore
    image: test/sh:1
    args: ["test -n \"$KEY\""]
    env: [{name: KEY, valueFrom: {secretKeyRef: {name: creds, key: key}}}]
  containers:
  - {name: app, image: test/sh:1, args: ["exec sleep 1000"]}
"#,
    )
    .await;
    let t = rt
        .wait_for_timeline(
            "missing",
            "p",
            |t| t.container("restore").unwrap().waiting.is_some(),
            WAIT,
        )
        .await
        .unwrap();
    let waiting = t.container("restore").unwrap().waiting.clone().unwrap();
    assert_eq!(waiting.reason, "CreateContainerConfigError");
    assert!(
        waiting.message.contains("secret \"creds\" not found"),
        "{waiting:?}"
    );
    assert!(t.runs("restore").is_empty(), "{t}");
    assert_eq!(t.phase, PodPhase::Initializing);
    assert!(t.render().contains("CreateContainerConfigError"), "{t}");

    apply(
        &rt,
        "missing",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {other: x}\n",
    )
    .await
    .unwrap();
    let t = rt
        .wait_for_timeline(
            "missing",
            "p",
            |t| {
                t.container("restore")
                    .unwrap()
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.message.contains("couldn't find key key"))
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(t.runs("restore").is_empty(), "{t}");
    apply(
        &rt,
        "missing",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {key: x}\n",
    )
    .await
    .unwrap();
    ready(&rt, "missing", "p").await;
    rt.shutdown().await;
}

#[tokio::test]
async fn secret_volume_files_are_decoded_with_their_mode_and_mounted_only_where_asked() {
    let rt = runtime();
    setup(
        &rt,
        "secret-vol",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {s3-access-key-id: QUtJQTEyMw==, s3-secret-access-key: c2VjcmV0}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: backup
    image: test/sh:1
    args: ["exec sleep 1000"]
    env: [{name: KEY_FILE, value: /etc/creds/id}]
    volumeMounts: [{name: creds, mountPath: /etc/creds, readOnly: true}]
  - name: app
    image: test/sh:1
    args: ["exec sleep 1000"]
  volumes:
  - name: creds
    secret:
      secretName: creds
      defaultMode: 0440
      items: [{key: s3-access-key-id, path: id}]
"#,
    )
    .await;
    ready(&rt, "secret-vol", "p").await;
    let mounts = rt.mounts("secret-vol", "p", "backup").await.unwrap();
    assert_eq!(mounts.len(), 1);
    assert!(mounts[0].read_only);
    let dir = host_mount(&mounts, "/etc/creds");
    assert_eq!(std::fs::read_to_string(dir.join("id")).unwrap(), "AKIA123");
    assert!(
        !dir.join("s3-secret-access-key").exists(),
        "only the listed item is written"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("id"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o440);

    let cat = |file: &str| vec!["/bin/cat".to_owned(), file.to_owned()];
    let out = rt
        .exec("secret-vol", "p", "backup", &cat("/etc/creds/id"))
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "AKIA123"));
    let env = rt.process_env("secret-vol", "p", "backup").await.unwrap();
    assert_eq!(env["KEY_FILE"], "/etc/creds/id", "paths are the spec's");
    let stat = sh(
        &rt,
        "secret-vol",
        "p",
        "backup",
        "stat -c '%a %F' /etc/creds/id",
    )
    .await;
    assert_eq!(stat.stdout.trim(), "440 regular file", "{stat:?}");

    assert!(
        rt.mounts("secret-vol", "p", "app")
            .await
            .unwrap()
            .is_empty()
    );
    let out = rt
        .exec("secret-vol", "p", "app", &cat("/etc/creds/id"))
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0, "the app does not see the secret: {out:?}");
    rt.shutdown().await;
}

#[tokio::test]
async fn downward_api_and_projected_volumes_are_files_with_their_declared_modes() {
    let rt = runtime();
    setup(
        &rt,
        "downward",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {key: k3y}
---
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {app: demo, tier: "a b"}
spec:
  containers:
  - name: app
    image: test/sh:1
    args: ["exec sleep 1000"]
    volumeMounts:
    - {name: info, mountPath: /etc/podinfo}
    - {name: all, mountPath: /etc/all, readOnly: true}
  volumes:
  - name: info
    downwardAPI:
      defaultMode: 0400
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: labels, fieldRef: {fieldPath: metadata.labels}, mode: 0440}
  - name: all
    projected:
      defaultMode: 0444
      sources:
      - secret: {name: s}
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
"#,
    )
    .await;
    ready(&rt, "downward", "p").await;
    let out = sh(
        &rt,
        "downward",
        "p",
        "app",
        "cat /etc/podinfo/name; echo; cat /etc/podinfo/labels; echo; cat /etc/all/ns /etc/all/key; echo; \
         stat -c '%a %n' /etc/podinfo/name /etc/podinfo/labels /etc/all/ns /etc/all/key",
    )
    .await;
    assert_eq!(
        out.stdout,
        "p\napp=\"demo\"\ntier=\"a b\"\ndownwardk3y\n\
         400 /etc/podinfo/name\n440 /etc/podinfo/labels\n444 /etc/all/ns\n444 /etc/all/key\n",
        "{out:?}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_script_using_absolute_pod_paths_runs_unchanged_in_its_sandbox() {
    let rt = runtime();
    setup(
        &rt,
        "paths",
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cr3t}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: scripts}
data: {hello.sh: "echo hello from $1 in $(pwd)"}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - name: hello
    image: test/sh:1
    command: [/bin/sh, /etc/scripts/hello.sh, configmap]
    volumeMounts: [{name: scripts, mountPath: /etc/scripts}]
  - name: copy
    image: test/sh:1
    args: ["cat /etc/creds/password > /data/x"]
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: creds, mountPath: /etc/creds, readOnly: true}
  containers:
  - name: app
    image: test/sh:1
    workingDir: /data/sub
    args:
    - |
      pwd > /data/pwd; echo "$0 $1" > /data/args; echo done; exec sleep 1000
    - /data/file
    - $(DATA_DIR)/expanded
    env:
    - {name: DATA_DIR, value: /data}
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: data, mountPath: /data/sub, subPath: sub}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  - {name: scripts, configMap: {name: scripts}}
  - {name: creds, secret: {secretName: creds}}
"#,
    )
    .await;
    ready(&rt, "paths", "p").await;
    assert_eq!(
        rt.logs("paths", "p", "hello").await.unwrap(),
        "hello from configmap in /\n"
    );
    rt.watch_log("paths", "p", "app", "done", WAIT)
        .await
        .unwrap();
    let data = rt.pvc_path("paths", "data").unwrap();
    let read = |f: &str| std::fs::read_to_string(data.join(f)).map(|s| s.trim_end().to_owned());
    assert_eq!(
        read("x").unwrap(),
        "s3cr3t",
        "the secret copied through pod paths"
    );
    assert_eq!(read("pwd").unwrap(), "/data/sub");
    assert_eq!(read("args").unwrap(), "/data/file /data/expanded");
    assert!(data.join("sub").is_dir(), "the subPath lives in the claim");
    let env = rt.process_env("paths", "p", "app").await.unwrap();
    assert_eq!(env["DATA_DIR"], "/data");
    let out = sh(&rt, "paths", "p", "app", "pwd; cat /data/x").await;
    assert_eq!(out.stdout, "/data/sub\ns3cr3t");
    rt.shutdown().await;
}

#[tokio::test]
async fn writing_into_a_read_only_mount_or_root_fails_with_erofs_as_on_a_cluster() {
    let rt = runtime();
    setup(
        &rt,
        "readonly",
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: backup
    image: test/sh:1
    args: ["echo x > /data/from-backup; echo \"wrote: $?\"; exec sleep 1000"]
    securityContext: {readOnlyRootFilesystem: true}
    volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
  - name: app
    image: test/sh:1
    args: ["echo y > /data/from-app && echo z > /tmp/t && echo wrote; exec sleep 1000"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
"#,
    )
    .await;
    ready(&rt, "readonly", "p").await;
    rt.watch_log("readonly", "p", "backup", "wrote:", WAIT)
        .await
        .unwrap();
    rt.watch_log("readonly", "p", "app", "wrote", WAIT)
        .await
        .unwrap();
    let logs = rt.logs("readonly", "p", "backup").await.unwrap();
    assert!(logs.contains("Read-only file system"), "{logs}");
    assert!(logs.contains("wrote: 2"), "{logs}");
    let data = rt.pvc_path("readonly", "data").unwrap();
    assert!(!data.join("from-backup").exists());
    assert!(data.join("from-app").exists());
    let out = sh(
        &rt,
        "readonly",
        "p",
        "backup",
        "touch /data/f; touch /new; cat /data/from-app",
    )
    .await;
    assert_eq!(
        out.stderr.matches("Read-only file system").count(),
        2,
        "the mount and the root: {out:?}"
    );
    assert_eq!(out.stdout, "y\n", "reading is fine");
    let out = sh(
        &rt,
        "readonly",
        "p",
        "app",
        "touch /new && touch /tmp/new && echo ok",
    )
    .await;
    assert_eq!(
        out.stdout, "ok\n",
        "a writable root and /tmp by default: {out:?}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_container_sees_neither_another_pods_processes_nor_its_volumes() {
    let rt = runtime();
    setup(
        &rt,
        "apart",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  containers:
  - name: app
    image: test/sh:1
    args: ["echo only-a > /scratch/mine; exec sleep 1001"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec:
  containers:
  - {name: app, image: test/sh:1, args: ["exec sleep 1002"]}
  - {name: other, image: test/sh:1, args: ["exec sleep 1003"]}
"#,
    )
    .await;
    ready(&rt, "apart", "a").await;
    ready(&rt, "apart", "b").await;
    let host_scratch = host_mount(&rt.mounts("apart", "a", "app").await.unwrap(), "/scratch");
    assert!(
        processes_with("sleep 1001").len() == 1,
        "the host sees a's process: {:?}",
        processes_with("sleep 1001")
    );
    let seen = visible_processes(&rt, "apart", "b", "app").await;
    assert!(
        seen.starts_with("sleep 1002 \n"),
        "PID 1 is the container's own: {seen}"
    );
    assert!(!seen.contains("sleep 1001"), "pod a's process: {seen}");
    assert!(
        !seen.contains("sleep 1003"),
        "without shareProcessNamespace: {seen}"
    );
    assert!(
        !seen.contains("phasecheck") && !seen.contains("cargo"),
        "{seen}"
    );
    let out = sh(
        &rt,
        "apart",
        "b",
        "app",
        &format!(
            "hostname; test -e /scratch || echo no-scratch; cat {}/mine || echo no-host-path",
            host_scratch.display()
        ),
    )
    .await;
    assert_eq!(out.stdout, "b\nno-scratch\nno-host-path\n", "{out:?}");
    let out = sh(&rt, "apart", "a", "app", "cat /scratch/mine").await;
    assert_eq!(out.stdout, "only-a\n");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_container_that_handles_sigterm_stops_at_once_with_its_own_exit_code() {
    let rt = runtime();
    setup(
        &rt,
        "graceful",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: test/python:1
    args:
    - -c
    - |
      import signal, sys, time
      signal.signal(signal.SIGTERM, lambda *_: (print("bye", flush=True), sys.exit(7)))
      print("up", flush=True)
      time.sleep(1000)
"#,
    )
    .await;
    ready(&rt, "graceful", "p").await;
    rt.watch_log("graceful", "p", "app", "up", WAIT)
        .await
        .unwrap();
    // NB: python, unlike a shell, keeps whatever signal mask it starts with.
    let status = sh(&rt, "graceful", "p", "app", "grep SigBlk /proc/1/status").await;
    assert_eq!(status.stdout, "SigBlk:\t0000000000000000\n", "{status:?}");
    let started = std::time::Instant::now();
    rt.stop_namespace("graceful").await;
    // NB: the runtime's grace period is 2 s; a container that missed SIGTERM would take that.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let t = rt.timeline("graceful", "p").await.unwrap();
    assert_eq!(t.runs("app")[0].exit_code, Some(7), "{t}");
    assert!(
        rt.logs("graceful", "p", "app")
            .await
            .unwrap()
            .contains("bye")
    );
    // NB: a stopped namespace outlives shutdown (kept for inspection); this one is done with.
    rt.delete_namespace("graceful").await.unwrap();
    rt.shutdown().await;
}

#[tokio::test]
async fn processes_of_one_pod_see_each_other_with_share_process_namespace() {
    let rt = runtime();
    setup(
        &rt,
        "shared",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  shareProcessNamespace: true
  initContainers:
  - {name: side, image: test/sh:1, restartPolicy: Always, args: ["exec sleep 1004"]}
  containers:
  - {name: app, image: test/sh:1, args: ["exec sleep 1005"]}
"#,
    )
    .await;
    ready(&rt, "shared", "p").await;
    let seen = visible_processes(&rt, "shared", "p", "app").await;
    assert!(
        seen.contains("sleep 1004") && seen.contains("sleep 1005"),
        "{seen}"
    );
    assert!(
        !seen.starts_with("sleep"),
        "PID 1 is the pod's namespace holder: {seen}"
    );
    rt.kill_container("shared", "p", "app").await.unwrap();
    rt.wait_for_timeline(
        "shared",
        "p",
        |t| t.runs("app").len() == 2 && t.runs("app")[1].is_running(),
        WAIT,
    )
    .await
    .unwrap();
    let seen = visible_processes(&rt, "shared", "p", "side").await;
    assert!(
        seen.contains("sleep 1005"),
        "the restarted app joins again: {seen}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn containers_run_as_the_spec_user_and_fs_group_owns_their_volumes() {
    let rt = runtime();
    if *rt.isolation() != Isolation::Sandbox {
        eprintln!(
            "SKIPPED: users need sandboxes made as root ({:?})",
            rt.isolation()
        );
        return;
    }
    setup(
        &rt,
        "users",
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {runAsUser: 1234, runAsGroup: 2345, fsGroup: 3456}
  containers:
  - name: app
    image: test/sh:1
    args: ["exec sleep 1000"]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: root
    image: test/sh:1
    args: ["exec sleep 1000"]
    securityContext: {runAsUser: 0, runAsGroup: 0}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
"#,
    )
    .await;
    ready(&rt, "users", "p").await;
    let out = sh(
        &rt,
        "users",
        "p",
        "app",
        "id -u; id -g; id -G; echo x > /data/f && stat -c '%u %g' /data/f",
    )
    .await;
    assert_eq!(out.stdout, "1234\n2345\n2345 3456\n1234 3456\n", "{out:?}");
    use std::os::unix::fs::MetadataExt as _;
    let data = rt.pvc_path("users", "data").unwrap();
    assert_eq!(std::fs::metadata(&data).unwrap().gid(), 3456);
    let out = sh(&rt, "users", "p", "root", "id -u").await;
    assert_eq!(out.stdout, "0\n");
    rt.shutdown().await;
}

#[tokio::test]
async fn sandboxes_in_a_user_namespace_show_pod_paths_and_enforce_read_only() {
    let rt = LocalRuntime::builder()
        .with_images(ImageMap::default().with_image(
            "test/sh:1",
            ["/bin/sh", "-c"],
            Vec::<String>::new(),
        ))
        .with_user_namespaces()
        .build()
        .unwrap();
    assert_eq!(*rt.isolation(), Isolation::UserNamespace);
    setup(
        &rt,
        "userns",
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cr3t}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {runAsUser: 1234}
  containers:
  - name: app
    image: test/sh:1
    args: ["cat /etc/creds/password > /data/x; echo $$$$; exec sleep 1000"]
    securityContext: {readOnlyRootFilesystem: true}
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: creds, mountPath: /etc/creds, readOnly: true}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  - {name: creds, secret: {secretName: creds}}
"#,
    )
    .await;
    ready(&rt, "userns", "p").await;
    rt.watch_log("userns", "p", "app", "1", WAIT).await.unwrap();
    assert_eq!(rt.logs("userns", "p", "app").await.unwrap(), "1\n");
    let data = rt.pvc_path("userns", "data").unwrap();
    assert_eq!(std::fs::read_to_string(data.join("x")).unwrap(), "s3cr3t");
    let out = sh(
        &rt,
        "userns",
        "p",
        "app",
        "id -u; touch /etc/creds/new /new",
    )
    .await;
    assert_eq!(
        out.stdout, "0\n",
        "root of the user namespace, not runAsUser"
    );
    assert_eq!(
        out.stderr.matches("Read-only file system").count(),
        2,
        "{out:?}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn without_sandboxes_pods_with_volume_mounts_are_refused_and_others_run_clean() {
    let rt = LocalRuntime::builder()
        .with_images(ImageMap::default().with_image(
            "test/sh:1",
            ["/bin/sh", "-c"],
            Vec::<String>::new(),
        ))
        .without_sandbox()
        .build()
        .unwrap();
    assert!(!rt.isolation().is_sandboxed());
    rt.create_namespace("bare").await.unwrap();
    let err = apply(
        &rt,
        "bare",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: app, image: test/sh:1, volumeMounts: [{name: d, mountPath: /data}]}
  volumes: [{name: d, emptyDir: {}}]
"#,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("spec.containers[0].volumeMounts[0]") && err.contains("no sandboxes"),
        "{err}"
    );
    apply(
        &rt,
        "bare",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec:\n  containers:\n  - {name: app, image: test/sh:1, command: [/bin/sleep, \"1000\"], env: [{name: A, value: b}]}\n",
    )
    .await
    .unwrap();
    ready(&rt, "bare", "q").await;
    let env = rt.process_env("bare", "q", "app").await.unwrap();
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(keys, ["A", "HOME", "HOSTNAME", "PATH"]);
    rt.shutdown().await;
}

const WORKLOAD: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: test/sh:1
        args: ["echo $POD_NAME >> /data/pods; echo kept > /data/kept; echo scratch > /scratch/file; echo written; exec sleep 1000"]
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        volumeMounts:
        - {name: data, mountPath: /data}
        - {name: scratch, mountPath: /scratch}
      volumes:
      - {name: data, persistentVolumeClaim: {claimName: data}}
      - {name: scratch, emptyDir: {}}
"#;

#[tokio::test]
async fn a_pvc_survives_delete_pod_while_an_empty_dir_does_not() {
    let rt = runtime();
    setup(&rt, "volumes", WORKLOAD).await;
    let first = ready(&rt, "volumes", "web").await;
    let data = rt.pvc_path("volumes", "data").unwrap();
    let scratch = host_mount(
        &rt.mounts("volumes", &first.name, "app").await.unwrap(),
        "/scratch",
    );
    rt.watch_log("volumes", &first.name, "app", "written", WAIT)
        .await
        .unwrap();
    assert!(scratch.join("file").exists());

    rt.delete_pod("volumes", &first.name).await.unwrap();
    assert!(!scratch.exists(), "the emptyDir is removed with the pod");
    assert_eq!(
        std::fs::read_to_string(data.join("kept")).unwrap(),
        "kept\n"
    );
    let second = rt
        .wait_for_pod("volumes", "web", |p| p.ready && p.name != first.name, WAIT)
        .await
        .unwrap();
    let new_scratch = host_mount(
        &rt.mounts("volumes", &second.name, "app").await.unwrap(),
        "/scratch",
    );
    assert_ne!(new_scratch, scratch);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_deployment_recreates_a_deleted_pod_with_a_new_name() {
    let rt = runtime();
    let manifest = WORKLOAD.replace(
        "args: [\"echo $POD_NAME >> /data/pods; echo kept > /data/kept; echo scratch > /scratch/file; echo written; exec sleep 1000\"]",
        "args: [\"exec sleep 1000\"]",
    );
    setup(&rt, "deploy", &manifest).await;
    let first = ready(&rt, "deploy", "web").await;
    assert!(first.name.starts_with("web-"), "{}", first.name);
    rt.delete_pod("deploy", &first.name).await.unwrap();
    let second = rt
        .wait_for_pod("deploy", "web", |p| p.ready && p.name != first.name, WAIT)
        .await
        .unwrap();
    assert_ne!(second.uid, first.uid);
    assert_ne!(second.ip, first.ip);
    let names: Vec<String> = rt
        .pods("deploy")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec![second.name.clone()]);
    let err = rt.timeline("deploy", &first.name).await.unwrap_err();
    assert!(matches!(err, Error::NoPod { .. }), "{err}");

    rt.scale("deploy", "web", 0).await.unwrap();
    assert!(rt.pods("deploy").await.unwrap().is_empty());
    rt.scale("deploy", "web", 1).await.unwrap();
    let third = ready(&rt, "deploy", "web").await;
    assert_ne!(third.name, second.name);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_statefulset_pod_comes_back_with_the_same_name_and_its_claim() {
    let rt = runtime();
    setup(&rt, "sts", r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: app, image: test/sh:1, args: ["exec sleep 1000"], volumeMounts: [{name: data, mountPath: /data}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#).await;
    let first = ready(&rt, "sts", "db").await;
    assert_eq!(first.name, "db-0");
    let claim = rt.pvc_path("sts", "data-db-0").unwrap();
    assert_eq!(
        host_mount(&rt.mounts("sts", "db-0", "app").await.unwrap(), "/data"),
        claim
    );
    rt.delete_pod("sts", "db-0").await.unwrap();
    let second = rt
        .wait_for_pod("sts", "db", |p| p.ready && p.uid != first.uid, WAIT)
        .await
        .unwrap();
    assert_eq!(second.name, "db-0");
    rt.shutdown().await;
}

#[tokio::test]
async fn an_http_readiness_probe_gates_readiness() {
    let rt = runtime();
    setup(
        &rt,
        "ready",
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: www}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: test/python:1
    args: ["-m", "http.server", "--bind", "$(POD_IP)", "--directory", "/srv", "8080"]
    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
      failureThreshold: 1
    volumeMounts: [{name: www, mountPath: /srv}]
  volumes: [{name: www, persistentVolumeClaim: {claimName: www}}]
"#,
    )
    .await;
    let running = rt
        .wait_for_pod("ready", "web", |p| p.phase == PodPhase::Running, WAIT)
        .await
        .unwrap();
    assert!(!running.ready);
    rt.watch_log("ready", "web", "web", "404", WAIT)
        .await
        .unwrap();
    let err = rt
        .wait_for_pod("ready", "web", |p| p.ready, Duration::from_millis(1500))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("pod web (uid"),
        "the error shows the timeline: {err}"
    );

    let www = rt.pvc_path("ready", "www").unwrap();
    std::fs::write(www.join("healthz"), "ok").unwrap();
    let pod = ready(&rt, "ready", "web").await;
    let answer = harness_get(pod.ip, 8080, "/healthz").await;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );

    std::fs::remove_file(www.join("healthz")).unwrap();
    rt.wait_for_pod(
        "ready",
        "web",
        |p| !p.ready && p.phase == PodPhase::Running,
        WAIT,
    )
    .await
    .unwrap();
    rt.shutdown().await;
    assert!(
        std::net::TcpListener::bind((pod.ip, 8080)).is_ok(),
        "the pod's port is free after shutdown"
    );
}

/// A minimal GET from the test itself.
async fn harness_get(ip: std::net::Ipv4Addr, port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect((ip, port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let rt = runtime();
    setup(
        &rt,
        "live",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: test/sh:1
    args: ["touch /probe/alive; echo alive; exec sleep 1000"]
    livenessProbe:
      exec: {command: [/bin/sh, -c, "test -f /probe/alive"]}
      periodSeconds: 1
      failureThreshold: 2
    volumeMounts: [{name: probe, mountPath: /probe}]
  volumes: [{name: probe, emptyDir: {}}]
"#,
    )
    .await;
    ready(&rt, "live", "p").await;
    let alive = host_mount(&rt.mounts("live", "p", "app").await.unwrap(), "/probe").join("alive");
    rt.watch_log("live", "p", "app", "alive", WAIT)
        .await
        .unwrap();
    std::fs::remove_file(&alive).unwrap();
    let t = rt
        .wait_for_timeline(
            "live",
            "p",
            |t| t.runs("app").len() == 2 && t.runs("app")[1].is_running(),
            WAIT,
        )
        .await
        .unwrap();
    let first = &t.runs("app")[0];
    assert_eq!(first.reason, Some(TerminationReason::Killed), "{t}");
    // NB: `sleep` is PID 1 of its sandbox and has no SIGTERM handler, so, as on a cluster, it
    // ignores SIGTERM and SIGKILL ends it after the grace period.
    assert_eq!(first.exit_code, Some(128 + 9), "{t}");
    assert!(
        first
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("liveness probe failed"),
        "{t}"
    );
    ready(&rt, "live", "p").await;
    rt.shutdown().await;
}

#[tokio::test]
async fn an_unknown_field_in_a_manifest_is_an_error_naming_the_field_and_file() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: app\n    image: test/sh:1\n    volumeMount: []\n";
    let err = parse_manifests(yaml, Path::new("subjects/web.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("subjects/web.yaml"), "{err}");
    assert!(err.contains("document 1"), "{err}");
    assert!(err.contains("spec.containers[0].volumeMount"), "{err}");
}

#[tokio::test]
async fn an_unmapped_image_is_a_clear_error_at_apply_time() {
    let rt = runtime();
    rt.create_namespace("images").await.unwrap();
    let err = apply(&rt, "images", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: ghcr.io/acme/app:2}]\n")
        .await
        .unwrap_err();
    assert!(
        err.contains("`app`") && err.contains("ghcr.io/acme/app:2"),
        "{err}"
    );
    assert!(
        err.contains("subject profile") && err.contains("images:"),
        "{err}"
    );
    assert!(
        rt.pods("images").await.unwrap().is_empty(),
        "nothing was applied"
    );
    let err = apply(
        &rt,
        "images",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n",
    )
    .await
    .unwrap_err();
    assert!(err.contains("Job j"), "{err}");
}

#[tokio::test]
async fn delete_namespace_kills_everything_at_once_and_removes_its_directory() {
    let rt = runtime();
    let marker = "marker-delete-namespace-5b1e";
    setup(&rt, "gone", &format!(r#"
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  initContainers:
  - {{name: side, image: test/sh:1, restartPolicy: Always, args: ["sleep 1000 & wait"], env: [{{name: MARKER, value: {marker}}}]}}
  containers:
  - {{name: app, image: test/sh:1, args: ["trap '' TERM; sleep 1000 & echo up; sleep 1000"], env: [{{name: MARKER, value: {marker}}}]}}
"#)).await;
    ready(&rt, "gone", "p").await;
    rt.watch_log("gone", "p", "app", "up", WAIT).await.unwrap();
    assert!(
        processes_with(marker).len() >= 3,
        "{:?}",
        processes_with(marker)
    );
    let started = std::time::Instant::now();
    rt.delete_namespace("gone").await.unwrap();
    // NB: the app ignores SIGTERM and the runtime's grace period is 2 s: a deletion that
    // waited it out would take that long.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        until_no_process_with(marker, Duration::ZERO).await,
        Vec::<String>::new()
    );
    assert!(!rt.namespace_dir("gone").exists());
    assert!(matches!(
        rt.pods("gone").await,
        Err(Error::NoNamespace { .. })
    ));
    rt.shutdown().await;
}

#[tokio::test]
async fn after_shutdown_no_child_process_or_directory_remains() {
    let marker = "marker-shutdown-41c9";
    let root = tempfile::tempdir().unwrap();
    let rt = LocalRuntime::builder()
        .with_root(root.path().join("rt"))
        .with_images(ImageMap::default().with_image(
            "test/sh:1",
            ["/bin/sh", "-c"],
            Vec::<String>::new(),
        ))
        .build()
        .unwrap();
    for ns in ["one", "two"] {
        setup(&rt, ns, &format!(r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: d}}
spec:
  selector: {{matchLabels: {{app: d}}}}
  template:
    metadata: {{labels: {{app: d}}}}
    spec:
      initContainers:
      - {{name: side, image: test/sh:1, restartPolicy: Always, args: ["sleep 1000 & sleep 1000"], env: [{{name: MARKER, value: {marker}}}]}}
      containers:
      - name: app
        image: test/sh:1
        args: ["sleep 1000 & echo up; exec sleep 1000"]
        env: [{{name: MARKER, value: {marker}}}]
        livenessProbe: {{exec: {{command: [/bin/sleep, "1000"]}}, periodSeconds: 1, timeoutSeconds: 30}}
"#)).await;
        let pod = ready(&rt, ns, "d").await;
        rt.watch_log(ns, &pod.name, "app", "up", WAIT)
            .await
            .unwrap();
    }
    let before = processes_with(marker);
    assert!(before.len() >= 4, "{before:?}");
    rt.shutdown().await;
    assert_eq!(processes_with(marker), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(root.path().join("rt")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        rt.create_namespace("three").await,
        Err(Error::ShutDown)
    ));
}

#[tokio::test]
async fn dropping_the_runtime_kills_its_processes_and_removes_its_files() {
    let marker = "marker-drop-93ad";
    let rt = runtime();
    setup(&rt, "dropped", &format!(r#"
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers:
  - {{name: app, image: test/sh:1, args: ["sleep 1000 & echo up; exec sleep 1000"], env: [{{name: MARKER, value: {marker}}}]}}
"#)).await;
    ready(&rt, "dropped", "p").await;
    rt.watch_log("dropped", "p", "app", "up", WAIT)
        .await
        .unwrap();
    let root = rt.root().to_owned();
    assert_eq!(
        processes_with(marker).len(),
        2,
        "{:?}",
        processes_with(marker)
    );
    drop(rt);
    assert_eq!(
        until_no_process_with(marker, Duration::from_secs(5)).await,
        Vec::<String>::new()
    );
    assert!(!root.exists(), "the temporary root is removed");
}

#[tokio::test]
async fn the_timeline_render_is_a_table_for_failure_messages() {
    let rt = runtime();
    setup(
        &rt,
        "render",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  restartPolicy: OnFailure
  initContainers:
  - {name: restore, image: test/sh:1, args: ["exit 0"]}
  containers:
  - {name: app, image: test/sh:1, args: ["exit 0"]}
"#,
    )
    .await;
    let pod = rt
        .wait_for_pod("render", "p", |p| p.phase == PodPhase::Succeeded, WAIT)
        .await
        .unwrap();
    assert!(!pod.ready);
    let t: Timeline = rt.timeline("render", "p").await.unwrap();
    let text = t.render();
    assert!(text.starts_with("pod p (uid "), "{text}");
    assert!(text.contains("Succeeded"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("restore") && l.contains("init") && l.contains("Completed")),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("Completed")).count(),
        2,
        "{text}"
    );
    // A finished pod stays until deleted.
    assert_eq!(rt.pods("render").await.unwrap().len(), 1);
    rt.delete_pod("render", "p").await.unwrap();
    assert!(rt.pods("render").await.unwrap().is_empty());
    rt.shutdown().await;
}

#[tokio::test]
async fn features_the_runtime_cannot_honour_are_rejected_with_the_field_named() {
    let rt = runtime();
    rt.create_namespace("reject").await.unwrap();
    let pod = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: app\n    image: test/sh:1\n{extra}"
        )
    };
    let cases = [
        (
            pod("    lifecycle: {preStop: {exec: {command: [x]}}}\n"),
            "spec.containers[0].lifecycle",
        ),
        (
            pod(
                "    volumeMounts: [{name: h, mountPath: /h}]\n  volumes: [{name: h, hostPath: {path: /}}]\n",
            ),
            "spec.volumes[0]",
        ),
        (
            pod(
                "    volumeMounts: [{name: d, mountPath: /d}]\n  volumes: [{name: d, downwardAPI: {items: [{path: l, resourceFieldRef: {resource: limits.cpu}}]}}]\n",
            ),
            "spec.volumes[0].downwardAPI.items[0]",
        ),
        (
            pod(
                "    volumeMounts: [{name: d, mountPath: /d}]\n  volumes: [{name: d, persistentVolumeClaim: {claimName: nope}}]\n",
            ),
            "persistentvolumeclaim nope not found",
        ),
        (
            pod("    readinessProbe: {grpc: {port: 9000}}\n"),
            "spec.containers[0].readinessProbe.grpc",
        ),
        (
            pod("    volumeMounts: [{name: missing, mountPath: /m}]\n"),
            "spec.containers[0].volumeMounts[0]: no volume named `missing`",
        ),
    ];
    for (yaml, expected) in cases {
        let err = apply(&rt, "reject", &yaml).await.unwrap_err();
        assert!(err.contains(expected), "{err}\nexpected: {expected}");
        assert!(err.starts_with("Pod p:"), "{err}");
    }
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 2\n  selector: {}\n  template:\n    spec:\n      containers: [{name: app, image: test/sh:1}]\n";
    let err = apply(&rt, "reject", deployment).await.unwrap_err();
    assert!(err.contains("replicas is 2"), "{err}");
    assert!(rt.pods("reject").await.unwrap().is_empty());
    rt.shutdown().await;
}

#[tokio::test]
async fn the_reference_manifests_run_in_sandboxes_with_their_pod_paths() {
    let rt = LocalRuntime::builder()
        .with_images(ImageMap::default().with_image(
            "phasecheck/phasepod:dev",
            [
                "/bin/sh",
                "-c",
                "echo \"$1 data=$DATA_DIR key=$(cat \"$S3_ACCESS_KEY_ID_FILE\") uid=$(id -u)\"; exit 1",
                "phasepod",
            ],
            Vec::<String>::new(),
        ))
        .with_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap();
    rt.create_namespace("reference").await.unwrap();
    apply(
        &rt,
        "reference",
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: phasecheck-backup-endpoint}
data: {S3_ENDPOINT: "http://127.0.0.1:9", S3_BUCKET: b, S3_PREFIX: "", S3_REGION: us-east-1, GIT_URL: "http://127.0.0.1:9/r.git", GIT_BRANCH: main}
---
apiVersion: v1
kind: Secret
metadata: {name: phasecheck-backup-credentials}
stringData: {s3-access-key-id: AKIA, s3-secret-access-key: s, git-username: u, git-password: p}
"#,
    )
    .await
    .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects/manifests");
    for file in ["phasepod-classic.yaml", "phasepod-native.yaml"] {
        let path = dir.join(file);
        let objects = parse_manifests(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        rt.apply("reference", objects).await.unwrap();
        let pod = rt
            .wait_for_pod("reference", "phasepod", |_| true, WAIT)
            .await
            .unwrap();
        rt.watch_log("reference", &pod.name, "restore", "key=AKIA", WAIT)
            .await
            .unwrap();
        let logs = rt.logs("reference", &pod.name, "restore").await.unwrap();
        // NB: runAsUser applies where sandboxes are made as root.
        let uid = if *rt.isolation() == Isolation::Sandbox {
            65532
        } else {
            0
        };
        assert!(
            logs.starts_with(&format!("restore data=/data key=AKIA uid={uid}\n")),
            "{file}: {logs}"
        );
        rt.wait_for_pod(
            "reference",
            &pod.name,
            |p| p.phase == PodPhase::Initializing && !p.ready,
            WAIT,
        )
        .await
        .unwrap();
        rt.scale("reference", "phasepod", 0).await.unwrap();
    }
    rt.shutdown().await;
}

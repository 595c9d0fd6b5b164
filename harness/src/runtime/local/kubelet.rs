//! A pod's life cycle, as a kubelet would drive it: volumes (owned by `fsGroup`), the shared PID
//! namespace if asked, init containers in order (native sidecars started and not awaited), the
//! regular containers together, then the stop: regular containers first, native sidecars after
//! them in reverse order, each SIGTERM then SIGKILL after the grace period.

use std::sync::Arc;

use nix::sys::signal::Signal;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::container::{Restart, Stops, run_container};
use super::pod::Pod;
use super::volumes::{self, VolumeError};
use super::{process, spawn};
use crate::runtime::PodPhase;
use crate::runtime::timeline::ContainerRole;

/// The container tasks of a pod, by group.
#[derive(Default)]
struct Tasks {
    /// At most one: the init container being waited for.
    init: JoinSet<Option<i32>>,
    sidecars: JoinSet<Option<i32>>,
    apps: JoinSet<Option<i32>>,
    /// The holder of the pod's shared PID namespace, if any.
    pause: JoinSet<()>,
}

/// Drives `pod` from creation to its end, then, once it is deleted, cleans up after it.
pub(super) async fn run(pod: Arc<Pod>) {
    let mut tasks = Tasks::default();
    let end = lifecycle(&pod, &mut tasks).await;
    teardown(&pod, &mut tasks).await;
    record_end(&pod, end);
    // NB: a pod that ended by itself (Succeeded, Failed) stays, with its files, until deleted.
    terminated(&pod).await;
    clean_up(&pod);
}

/// Resolves once deletion is requested.
async fn terminated(pod: &Pod) {
    let _ = pod.terminate.subscribe().wait_for(|t| *t).await;
}

/// Runs the pod until it ends by itself (its phase) or is told to stop (`None`).
async fn lifecycle(pod: &Arc<Pod>, tasks: &mut Tasks) -> Option<PodPhase> {
    // Volumes, waiting for a missing Secret or ConfigMap to appear.
    let volumes = loop {
        if pod.is_terminating() {
            return None;
        }
        let ns = pod.ns.upgrade()?;
        let mut config_changes = ns.config_changes.subscribe();
        let (config, claims) = (ns.config(), ns.claims());
        drop(ns);
        let dir = pod.dir.join("volumes");
        match volumes::materialise(&pod.spec, &dir, &claims, &config, &pod.fields) {
            Ok(volumes) => break volumes,
            Err(VolumeError::Missing(message)) => {
                pod.set_message(Some(message));
                tokio::select! {
                    _ = config_changes.changed() => continue,
                    () = terminated(pod) => return None,
                }
            }
            Err(VolumeError::Io(path, e)) => {
                pod.set_message(Some(format!(
                    "cannot set up volume {}: {e}",
                    path.display()
                )));
                return Some(PodPhase::Failed);
            }
        }
    };
    if pod.node.honours_users()
        && let Err(e) = volumes::apply_fs_group(&pod.spec, &volumes)
    {
        pod.set_message(Some(format!("cannot give the volumes to the fsGroup: {e}")));
        return Some(PodPhase::Failed);
    }
    if let Err(e) = pod.set_mounts(&volumes) {
        pod.set_message(Some(format!("cannot set up a subPath mount: {e}")));
        return Some(PodPhase::Failed);
    }
    if pod.spec.share_process_namespace == Some(true) && pod.node.sandboxes.is_some() {
        match spawn::start(pod, spawn::What::Pause, || !pod.is_terminating()).await {
            spawn::Start::Started(proc) => {
                pod.set_pause_pid(proc.main_pid);
                tasks.pause.spawn(async move {
                    // NB: the whole of it, control socket included, lives as long as the task.
                    let mut proc = proc;
                    process::exited(proc.group.pgid()).await;
                    proc.group.release();
                    let _ = proc.child.wait().await;
                });
            }
            spawn::Start::Refused => return None,
            spawn::Start::Failed(message) => {
                pod.set_message(Some(format!(
                    "cannot create the pod's shared PID namespace: {message}"
                )));
                return Some(PodPhase::Failed);
            }
        }
    }
    pod.set_message(None);
    let policy = pod.spec.restart_policy.as_deref();
    let inits: Vec<usize> = (0..pod.containers.len())
        .filter(|i| pod.containers[*i].role != ContainerRole::App)
        .collect();
    if !inits.is_empty() {
        pod.set_phase(PodPhase::Initializing);
    }
    for idx in inits {
        if pod.containers[idx].role == ContainerRole::NativeSidecar {
            let stops = Stops::new(&[&pod.terminate, &pod.sidecars_stop]);
            tasks
                .sidecars
                .spawn(run_container(pod.clone(), idx, Restart::Always, stops));
            // NB: the next init container starts once this one is started (its startup probe,
            // if any, passed), not when it is ready.
            tokio::select! {
                () = pod.node.wait_until(|| pod.is_started(idx)) => {}
                () = terminated(pod) => return None,
            }
        } else {
            let stops = Stops::new(&[&pod.terminate]);
            tasks.init.spawn(run_container(
                pod.clone(),
                idx,
                Restart::for_init(policy),
                stops,
            ));
            let result = tokio::select! {
                result = tasks.init.join_next() => result,
                () = terminated(pod) => return None,
            };
            match result {
                Some(Ok(Some(0))) => {}
                Some(Ok(Some(_))) => return Some(PodPhase::Failed),
                Some(Ok(None)) | Some(Err(_)) | None => return None,
            }
        }
    }
    pod.set_phase(PodPhase::Running);
    let restart = Restart::for_pod(policy);
    for idx in 0..pod.containers.len() {
        if pod.containers[idx].role == ContainerRole::App {
            let stops = Stops::new(&[&pod.terminate]);
            tasks
                .apps
                .spawn(run_container(pod.clone(), idx, restart, stops));
        }
    }
    let mut all_succeeded = true;
    loop {
        let result = tokio::select! {
            result = tasks.apps.join_next() => result,
            () = terminated(pod) => return None,
        };
        match result {
            None => break,
            Some(Ok(Some(code))) => all_succeeded &= code == 0,
            Some(Ok(None)) => return None,
            Some(Err(_)) => all_succeeded = false,
        }
    }
    Some(if all_succeeded {
        PodPhase::Succeeded
    } else {
        PodPhase::Failed
    })
}

/// Stops whatever still runs: regular and init containers, then native sidecars in reverse
/// order; waits for every container task.
async fn teardown(pod: &Arc<Pod>, tasks: &mut Tasks) {
    let reason = if pod.is_terminating() {
        "stopped: the pod is being deleted"
    } else {
        "stopped: the pod has finished"
    };
    let grace = pod.grace();
    let not_sidecar = |i: usize| pod.containers[i].role != ContainerRole::NativeSidecar;
    pod.set_kill_reason(not_sidecar, reason);
    pod.signal(not_sidecar, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let stopped = tokio::time::timeout_at(deadline, async {
        while tasks.init.join_next().await.is_some() {}
        while tasks.apps.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_err() {
        pod.signal(not_sidecar, Signal::SIGKILL);
        while tasks.init.join_next().await.is_some() {}
        while tasks.apps.join_next().await.is_some() {}
    }
    pod.sidecars_stop.send_replace(true);
    let deadline = Instant::now() + grace;
    let sidecars: Vec<usize> = (0..pod.containers.len())
        .filter(|i| pod.containers[*i].role == ContainerRole::NativeSidecar)
        .rev()
        .collect();
    for idx in sidecars {
        pod.set_kill_reason(|i| i == idx, reason);
        pod.signal(|i| i == idx, Signal::SIGTERM);
        let _ =
            tokio::time::timeout_at(deadline, pod.node.wait_until(|| !pod.is_running(idx))).await;
    }
    pod.signal(|_| true, Signal::SIGKILL);
    while tasks.sidecars.join_next().await.is_some() {}
    // Execs, probes and the PID namespace holder.
    pod.signal_all(Signal::SIGKILL);
    while tasks.pause.join_next().await.is_some() {}
}

/// Records how the pod ended.
fn record_end(pod: &Pod, end: Option<PodPhase>) {
    if end.is_none() && pod.keeps_files() {
        pod.set_message(Some("stopped with its namespace; files kept".into()));
    }
    pod.set_finished(end.unwrap_or(PodPhase::Failed));
}

/// Removes a deleted pod's volumes and entry (not for a stopped namespace's pods), then tells
/// the waiters it is gone.
fn clean_up(pod: &Arc<Pod>) {
    if !pod.keeps_files() {
        let _ = std::fs::remove_dir_all(pod.dir.join("volumes"));
        if let Some(ns) = pod.ns.upgrade() {
            ns.pod_gone(pod);
        }
    }
    pod.gone.send_replace(true);
    pod.node.notify();
}

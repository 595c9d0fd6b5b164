//! One pod: its fixed facts, its mutable status, and the operations on a running container
//! (exec, environment, kill). The life cycle itself is in `kubelet`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

use super::images::ImageCommand;
use super::launch::{Launch, Mount, PodFields};
use super::logs::LogBook;
use super::namespace::Namespace;
use super::net::PodIp;
use super::node::Node;
use super::probe::ProbeSpec;
use super::volumes::Volumes;
use super::{process, spawn};
use crate::runtime::timeline::{
    ContainerRole, ContainerRun, ContainerTimeline, TerminationReason, Timeline, Waiting,
};
use crate::runtime::{ExecOutput, PodInfo, PodPhase};

/// The workload owning a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PodOwner {
    /// The Deployment's or StatefulSet's name.
    pub name: String,
    /// The hash of the pod template the pod was made from.
    pub template_hash: String,
}

/// A container as the pod runs it.
pub(super) struct ContainerDef {
    pub spec: Container,
    pub role: ContainerRole,
    pub image: ImageCommand,
    pub logs: LogBook,
    pub probes: Vec<ProbeSpec>,
}

/// A container's live process.
struct Running {
    /// The host PID of the container's own process (in its sandbox).
    pid: i32,
    launch: Arc<Launch>,
    started: bool,
    ready: bool,
}

#[derive(Default)]
struct ContainerStatus {
    runs: Vec<ContainerRun>,
    waiting: Option<Waiting>,
    running: Option<Running>,
    /// Why the runtime is killing the current run, for its record.
    kill_reason: Option<String>,
    mounts: Vec<Mount>,
}

struct PodStatus {
    phase: PodPhase,
    finished: bool,
    deleted_at: Option<DateTime<Utc>>,
    message: Option<String>,
    containers: Vec<ContainerStatus>,
}

/// Why an operation on a container could not be done.
#[derive(Debug)]
pub(super) enum ContainerError {
    /// It has no running process.
    NotRunning,
    /// The host refused.
    Io(std::io::Error),
}

/// One pod.
pub(super) struct Pod {
    pub name: String,
    pub uid: String,
    pub ip: PodIp,
    pub owner: Option<PodOwner>,
    pub created_at: DateTime<Utc>,
    pub spec: PodSpec,
    pub fields: PodFields,
    /// The pod's own directory (volumes, logs, HOME, default working directory).
    pub dir: PathBuf,
    /// Init containers in order, then regular containers.
    pub containers: Vec<ContainerDef>,
    pub node: Arc<Node>,
    pub ns: Weak<Namespace>,
    status: Mutex<PodStatus>,
    /// Set when the pod is to stop (deleted or its namespace stopped).
    pub terminate: watch::Sender<bool>,
    /// Set when native sidecars are to stop (the pod is ending).
    pub sidecars_stop: watch::Sender<bool>,
    /// Keep the pod's files and entry after stopping (a stopped namespace).
    keep: AtomicBool,
    /// Stop without a grace period (its namespace is being deleted).
    no_grace: AtomicBool,
    /// Set once every process of the pod is gone and its files are cleaned up.
    pub gone: watch::Sender<bool>,
    /// The host PID of the holder of the pod's shared PID namespace (`shareProcessNamespace`).
    pause: Mutex<Option<i32>>,
}

/// Now, at the timeline's millisecond precision.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

impl Pod {
    #[allow(clippy::too_many_arguments, reason = "a constructor of plain facts")]
    pub(super) fn new(
        name: String,
        uid: String,
        ip: PodIp,
        owner: Option<PodOwner>,
        spec: PodSpec,
        fields: PodFields,
        dir: PathBuf,
        containers: Vec<ContainerDef>,
        node: Arc<Node>,
        ns: &Arc<Namespace>,
    ) -> Self {
        let statuses = containers
            .iter()
            .map(|_| ContainerStatus::default())
            .collect();
        Pod {
            name,
            uid,
            ip,
            owner,
            created_at: now(),
            spec,
            fields,
            dir,
            containers,
            node,
            ns: Arc::downgrade(ns),
            status: Mutex::new(PodStatus {
                phase: PodPhase::Pending,
                finished: false,
                deleted_at: None,
                message: None,
                containers: statuses,
            }),
            terminate: watch::Sender::new(false),
            sidecars_stop: watch::Sender::new(false),
            keep: AtomicBool::new(false),
            no_grace: AtomicBool::new(false),
            gone: watch::Sender::new(false),
            pause: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PodStatus> {
        self.status.lock().expect("pod status lock")
    }

    /// Changes the status, then tells the waiters.
    fn update<R>(&self, f: impl FnOnce(&mut PodStatus) -> R) -> R {
        let r = f(&mut self.lock());
        self.node.notify();
        r
    }

    /// The index of container `name`.
    pub(super) fn container_index(&self, name: &str) -> Option<usize> {
        self.containers.iter().position(|c| c.spec.name == name)
    }

    /// Container names, init containers first.
    pub(super) fn container_names(&self) -> Vec<String> {
        self.containers
            .iter()
            .map(|c| c.spec.name.clone())
            .collect()
    }

    /// The owner's name, if a workload owns the pod.
    pub(super) fn owner_name(&self) -> Option<&str> {
        self.owner.as_ref().map(|o| o.name.as_str())
    }

    /// Whether deletion (or a stop) was requested.
    pub(super) fn is_terminating(&self) -> bool {
        *self.terminate.borrow()
    }

    /// Whether the pod's files are kept when it stops.
    pub(super) fn keeps_files(&self) -> bool {
        self.keep.load(Ordering::SeqCst)
    }

    /// Asks the pod to stop; `keep` keeps its files and its entry (a stopped namespace).
    /// Returns at once; the pod's kubelet does the work.
    pub(super) fn request_termination(&self, keep: bool) {
        if keep {
            self.keep.store(true, Ordering::SeqCst);
        }
        if !self.terminate.send_replace(true) {
            self.update(|s| s.deleted_at = Some(now()));
        }
    }

    /// Asks the pod to stop at once: SIGKILL, no grace period (its namespace is deleted).
    pub(super) fn request_kill(&self) {
        self.no_grace.store(true, Ordering::SeqCst);
        self.request_termination(false);
    }

    /// The pod's summary.
    pub(super) fn info(&self) -> PodInfo {
        let status = self.lock();
        let terminating = self.is_terminating() && !status.finished;
        let ready = !terminating
            && status.phase == PodPhase::Running
            && self
                .containers
                .iter()
                .zip(&status.containers)
                .all(|(def, c)| {
                    def.role == ContainerRole::Init || c.running.as_ref().is_some_and(|r| r.ready)
                });
        PodInfo {
            name: self.name.clone(),
            ip: self.ip.addr(),
            phase: if terminating {
                PodPhase::Terminating
            } else {
                status.phase
            },
            ready,
            uid: self.uid.clone(),
        }
    }

    /// The pod's history.
    pub(super) fn timeline(&self) -> Timeline {
        let info = self.info();
        let status = self.lock();
        Timeline {
            pod: self.name.clone(),
            uid: self.uid.clone(),
            phase: info.phase,
            ready: info.ready,
            created_at: self.created_at,
            deleted_at: status.deleted_at,
            message: status.message.clone(),
            containers: self
                .containers
                .iter()
                .zip(&status.containers)
                .map(|(def, c)| ContainerTimeline {
                    name: def.spec.name.clone(),
                    role: def.role,
                    runs: c.runs.clone(),
                    waiting: c.waiting.clone(),
                })
                .collect(),
        }
    }

    // ----- status changes by the kubelet --------------------------------------------------------

    pub(super) fn set_phase(&self, phase: PodPhase) {
        self.update(|s| s.phase = phase);
    }

    pub(super) fn set_message(&self, message: Option<String>) {
        self.update(|s| s.message = message);
    }

    /// Marks the pod finished in `phase`.
    pub(super) fn set_finished(&self, phase: PodPhase) {
        self.update(|s| {
            s.phase = phase;
            s.finished = true;
        });
    }

    /// Records the container mounts computed from the pod's volumes.
    pub(super) fn set_mounts(&self, volumes: &Volumes) -> std::io::Result<()> {
        let mut all = Vec::new();
        for def in &self.containers {
            all.push(super::volumes::mounts(&def.spec, volumes)?);
        }
        self.update(|s| {
            for (c, mounts) in s.containers.iter_mut().zip(all) {
                c.mounts = mounts;
            }
        });
        Ok(())
    }

    /// Records the holder of the pod's shared PID namespace.
    pub(super) fn set_pause_pid(&self, pid: i32) {
        *self.pause.lock().expect("pause lock") = Some(pid);
    }

    /// The holder of the pod's shared PID namespace, if it has one.
    pub(super) fn pause_pid(&self) -> Option<i32> {
        *self.pause.lock().expect("pause lock")
    }

    /// The mounts of container `idx`.
    pub(super) fn mounts(&self, idx: usize) -> Vec<Mount> {
        self.lock().containers[idx].mounts.clone()
    }

    pub(super) fn set_waiting(&self, idx: usize, reason: &str, message: String) {
        self.update(|s| {
            s.containers[idx].waiting = Some(Waiting {
                reason: reason.to_owned(),
                message,
            });
        });
    }

    /// How many runs container `idx` has had.
    pub(super) fn run_count(&self, idx: usize) -> u32 {
        self.lock().containers[idx].runs.len() as u32
    }

    /// A run that failed to start (Kubernetes' `StartError`, exit code 128).
    pub(super) fn record_start_error(&self, idx: usize, message: String) {
        self.update(|s| {
            let c = &mut s.containers[idx];
            let at = now();
            c.runs.push(ContainerRun {
                restart_count: c.runs.len() as u32,
                started_at: at,
                finished_at: Some(at),
                exit_code: Some(128),
                reason: Some(TerminationReason::StartError),
                message: Some(message),
            });
            c.waiting = None;
        });
    }

    /// A process started for container `idx`.
    pub(super) fn record_start(
        &self,
        idx: usize,
        pid: i32,
        launch: Arc<Launch>,
        started: bool,
        ready: bool,
    ) {
        self.update(|s| {
            let c = &mut s.containers[idx];
            c.runs.push(ContainerRun {
                restart_count: c.runs.len() as u32,
                started_at: now(),
                finished_at: None,
                exit_code: None,
                reason: None,
                message: None,
            });
            c.waiting = None;
            c.kill_reason = None;
            c.running = Some(Running {
                pid,
                launch,
                started,
                ready,
            });
        });
    }

    /// Container `idx`'s process ended at `at` with `exit_code`.
    pub(super) fn record_finish(
        &self,
        idx: usize,
        at: DateTime<Utc>,
        exit_code: i32,
        signalled: bool,
    ) {
        self.update(|s| {
            let c = &mut s.containers[idx];
            c.running = None;
            let message = c.kill_reason.take();
            if let Some(run) = c.runs.last_mut() {
                run.finished_at = Some(at.trunc_subsecs(3).max(run.started_at));
                run.exit_code = Some(exit_code);
                run.reason = Some(if signalled {
                    TerminationReason::Killed
                } else if exit_code == 0 {
                    TerminationReason::Completed
                } else {
                    TerminationReason::Error
                });
                run.message = message;
            }
        });
    }

    /// The startup probe of container `idx` passed (or there is none).
    pub(super) fn set_started(&self, idx: usize, ready: bool) {
        self.update(|s| {
            if let Some(r) = &mut s.containers[idx].running {
                r.started = true;
                r.ready = ready;
            }
        });
    }

    pub(super) fn set_ready(&self, idx: usize, ready: bool) {
        let changed = {
            let mut s = self.lock();
            match &mut s.containers[idx].running {
                Some(r) if r.ready != ready => {
                    r.ready = ready;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.node.notify();
        }
    }

    /// Whether container `idx` runs and has passed its startup probe.
    pub(super) fn is_started(&self, idx: usize) -> bool {
        self.lock().containers[idx]
            .running
            .as_ref()
            .is_some_and(|r| r.started)
    }

    /// Whether container `idx` has a live process.
    pub(super) fn is_running(&self, idx: usize) -> bool {
        self.lock().containers[idx].running.is_some()
    }

    /// Sets why the current run of each container in `which` is being killed, unless a reason is
    /// already set.
    pub(super) fn set_kill_reason(&self, which: impl Fn(usize) -> bool, reason: &str) {
        let mut s = self.lock();
        for (idx, c) in s.containers.iter_mut().enumerate() {
            if which(idx) && c.running.is_some() && c.kill_reason.is_none() {
                c.kill_reason = Some(reason.to_owned());
            }
        }
    }

    /// Signals the main process groups of the containers in `which`.
    pub(super) fn signal(&self, which: impl Fn(usize) -> bool, signal: Signal) -> usize {
        self.node.procs.signal(
            |o| o.pod_uid == self.uid && o.main && which(o.container),
            signal,
        )
    }

    /// Signals every process group of the pod (main processes, execs and probes).
    pub(super) fn signal_all(&self, signal: Signal) {
        self.node.procs.signal(|o| o.pod_uid == self.uid, signal);
    }

    /// SIGKILLs container `idx`'s current run; the restart rules then apply.
    pub(super) fn kill(&self, idx: usize, reason: &str) -> Result<(), ContainerError> {
        if !self.is_running(idx) {
            return Err(ContainerError::NotRunning);
        }
        self.set_kill_reason(|i| i == idx, reason);
        self.signal(|i| i == idx, Signal::SIGKILL);
        Ok(())
    }

    /// The grace period between SIGTERM and SIGKILL: the pod's own, at most the runtime's; none
    /// once [`Self::request_kill`] was called.
    pub(super) fn grace(&self) -> Duration {
        if self.no_grace.load(Ordering::SeqCst) {
            return Duration::ZERO;
        }
        match self.spec.termination_grace_period_seconds {
            Some(secs) => Duration::from_secs(secs.max(0) as u64).min(self.node.grace),
            None => self.node.grace,
        }
    }

    // ----- running containers ---------------------------------------------------------------------

    fn launch(&self, idx: usize) -> Result<(i32, Arc<Launch>), ContainerError> {
        self.lock().containers[idx]
            .running
            .as_ref()
            .map(|r| (r.pid, r.launch.clone()))
            .ok_or(ContainerError::NotRunning)
    }

    /// The environment of container `idx`'s main process, read from `/proc`.
    pub(super) async fn process_env(
        &self,
        idx: usize,
    ) -> Result<BTreeMap<String, String>, ContainerError> {
        // NB: while a process execs (a shell's `exec prog`), its environ reads empty for a
        // moment. Every container has at least PATH and HOME, so empty means "look again"; the
        // kernel offers no event for the end of an exec.
        for _ in 0..100 {
            let (pid, _) = self.launch(idx)?;
            let bytes =
                std::fs::read(format!("/proc/{pid}/environ")).map_err(ContainerError::Io)?;
            let env: BTreeMap<String, String> = bytes
                .split(|b| *b == 0)
                .filter(|entry| !entry.is_empty())
                .filter_map(|entry| {
                    let entry = String::from_utf8_lossy(entry);
                    let (k, v) = entry.split_once('=')?;
                    Some((k.to_owned(), v.to_owned()))
                })
                .collect();
            if !env.is_empty() {
                return Ok(env);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(BTreeMap::new())
    }

    /// Runs `argv` in container `idx`'s sandbox (its mounts, PID namespace, user), with its
    /// environment and working directory.
    pub(super) async fn exec(
        &self,
        idx: usize,
        argv: &[String],
    ) -> Result<ExecOutput, ContainerError> {
        let (target, launch) = self.launch(idx)?;
        let what = spawn::What::Exec {
            idx,
            launch: &launch,
            argv,
            target,
        };
        // NB: one binding, so its fields drop in order: the group's kill before the reap.
        let mut proc = match spawn::start(self, what, || !self.is_terminating()).await {
            spawn::Start::Started(started) => started,
            spawn::Start::Refused => return Err(ContainerError::NotRunning),
            spawn::Start::Failed(message) => {
                return Err(ContainerError::Io(std::io::Error::other(message)));
            }
        };
        let pid = proc.group.pgid();
        let child = &mut proc.child;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf).await;
            buf
        });
        let err = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf).await;
            buf
        });
        process::exited(pid).await;
        proc.group.release();
        let status = proc.child.wait().await.map_err(ContainerError::Io)?;
        let (exit_code, _) = process::exit_code(status);
        let collect = |task: tokio::task::JoinHandle<Vec<u8>>| async move {
            match tokio::time::timeout(Duration::from_secs(2), task).await {
                Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                _ => String::new(),
            }
        };
        Ok(ExecOutput {
            exit_code,
            stdout: collect(out).await,
            stderr: collect(err).await,
        })
    }
}

//! One container's life: prepare, start, watch (logs, probes), record, restart with back-off.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::pod::Pod;
use super::probe::{self, Action, ProbeKind, ProbeSpec};
use super::{launch, process, spawn};

/// When a container is started again after its process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Restart {
    /// Always (regular containers under `restartPolicy: Always`, native sidecars).
    Always,
    /// Only after a non-zero exit.
    OnFailure,
    /// Never.
    Never,
}

impl Restart {
    /// The pod's `restartPolicy` for regular containers.
    pub(super) fn for_pod(policy: Option<&str>) -> Self {
        match policy {
            Some("Never") => Restart::Never,
            Some("OnFailure") => Restart::OnFailure,
            _ => Restart::Always,
        }
    }

    /// The rule for a (non-sidecar) init container: retried until it succeeds, unless the pod
    /// never restarts.
    pub(super) fn for_init(policy: Option<&str>) -> Self {
        match policy {
            Some("Never") => Restart::Never,
            _ => Restart::OnFailure,
        }
    }
}

/// Flags that, once set, stop a container loop from (re)starting its container.
pub(super) struct Stops(Vec<watch::Receiver<bool>>);

impl Stops {
    pub(super) fn new(flags: &[&watch::Sender<bool>]) -> Self {
        Stops(flags.iter().map(|f| f.subscribe()).collect())
    }

    pub(super) fn is_set(&self) -> bool {
        self.0.iter().any(|rx| *rx.borrow())
    }

    /// Resolves once any flag is set.
    pub(super) async fn wait(&mut self) {
        let waits = self.0.iter_mut().map(|rx| {
            Box::pin(async move {
                let _ = rx.wait_for(|set| *set).await;
            })
        });
        futures::future::select_all(waits).await;
    }
}

/// How one run ended.
enum RunEnd {
    /// The process ran and exited.
    Exited { code: i32, ran_for: Duration },
    /// Not started: the pod or runtime is stopping.
    Refused,
}

/// Runs container `idx` of `pod` under `restart` until it is done for good or `stops` is set.
/// Returns the last exit code, `None` if it never finished a run.
pub(super) async fn run_container(
    pod: Arc<Pod>,
    idx: usize,
    restart: Restart,
    mut stops: Stops,
) -> Option<i32> {
    let backoff = pod.node.backoff;
    let mut streak = 0;
    let mut last = None;
    loop {
        if stops.is_set() {
            return last;
        }
        let Some(ns) = pod.ns.upgrade() else {
            return last;
        };
        // NB: subscribe before reading the config, so a change in between is not missed.
        let mut config_changes = ns.config_changes.subscribe();
        let config = ns.config();
        drop(ns);
        let def = &pod.containers[idx];
        let host = match &pod.node.sandboxes {
            Some(_) => launch::Host::Sandbox,
            None => launch::Host::Process { pod_dir: &pod.dir },
        };
        let prepared =
            launch::prepare(&pod.spec, &def.spec, &def.image, &pod.fields, &config, host);
        let launch = match prepared {
            Ok(launch) => launch,
            Err(message) => {
                pod.set_waiting(idx, "CreateContainerConfigError", message);
                tokio::select! {
                    _ = config_changes.changed() => continue,
                    () = stops.wait() => return last,
                }
            }
        };
        let (code, ran_for) = match run_once(&pod, idx, launch, &stops).await {
            RunEnd::Refused => return last,
            RunEnd::Exited { code, ran_for } => (code, ran_for),
        };
        last = Some(code);
        let again = match restart {
            Restart::Always => true,
            Restart::OnFailure => code != 0,
            Restart::Never => false,
        };
        if !again || stops.is_set() {
            return last;
        }
        if ran_for >= backoff.reset_after() {
            streak = 0;
        }
        let delay = backoff.delay(streak);
        streak += 1;
        pod.set_waiting(
            idx,
            "CrashLoopBackOff",
            format!("back-off {delay:?} restarting container after exit code {code}"),
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stops.wait() => return last,
        }
    }
}

/// Starts one process for container `idx` and follows it to its end.
async fn run_once(pod: &Arc<Pod>, idx: usize, launch: launch::Launch, stops: &Stops) -> RunEnd {
    let node = &pod.node;
    let def = &pod.containers[idx];
    let run = pod.run_count(idx);
    let start_error = |message: String| {
        // NB: no log file once stopping: the pod's directory may be on its way out.
        if !stops.is_set()
            && !node.procs.is_closed()
            && let Ok(log) = def.logs.open_run(run)
        {
            log.note(&message);
        }
        pod.record_start_error(idx, message);
        RunEnd::Exited {
            code: 128,
            ran_for: Duration::ZERO,
        }
    };
    let launch = Arc::new(launch);
    let what = spawn::What::Main {
        idx,
        launch: &launch,
    };
    // NB: one binding, so its fields drop in order: the group's kill before the reap.
    let mut proc = match spawn::start(pod, what, || !stops.is_set()).await {
        spawn::Start::Started(started) => started,
        spawn::Start::Refused => return RunEnd::Refused,
        spawn::Start::Failed(message) => return start_error(message),
    };
    let pid = proc.group.pgid();
    let log = match def.logs.open_run(run) {
        Ok(log) => log,
        Err(e) => {
            proc.group.release();
            let _ = proc.child.wait().await;
            return start_error(format!("cannot create the log file: {e}"));
        }
    };
    let started_at = Instant::now();
    let has = |kind| def.probes.iter().any(|p: &ProbeSpec| p.kind == kind);
    let started = !has(ProbeKind::Startup);
    let ready = started && !has(ProbeKind::Readiness);
    pod.record_start(idx, proc.main_pid, launch, started, ready);
    let mut pumps = JoinSet::new();
    if let Some(out) = proc.child.stdout.take() {
        pumps.spawn(log.clone().pump(out));
    }
    if let Some(err) = proc.child.stderr.take() {
        pumps.spawn(log.clone().pump(err));
    }
    let mut probes = JoinSet::new();
    let started_flag = watch::Sender::new(started);
    for spec in &def.probes {
        probes.spawn(probe_loop(
            pod.clone(),
            idx,
            spec.clone(),
            started_at,
            started_flag.clone(),
        ));
    }
    process::exited(pid).await;
    let finished_at = Utc::now();
    probes.abort_all();
    proc.group.release();
    let (code, signalled) = match proc.child.wait().await {
        Ok(status) => process::exit_code(status),
        Err(_) => (255, false),
    };
    // NB: the group is dead now, so the pipes close; a process that left the group may hold
    // them open, hence the bound.
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while pumps.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        pumps.abort_all();
    }
    pod.record_finish(idx, finished_at, code, signalled);
    RunEnd::Exited {
        code,
        ran_for: started_at.elapsed(),
    }
}

/// Runs one probe of the current run of container `idx` until the run ends (the task is
/// aborted then).
async fn probe_loop(
    pod: Arc<Pod>,
    idx: usize,
    spec: ProbeSpec,
    started_at: Instant,
    started: watch::Sender<bool>,
) {
    tokio::time::sleep_until(started_at + spec.initial_delay).await;
    if spec.kind != ProbeKind::Startup {
        let _ = started.subscribe().wait_for(|s| *s).await;
    }
    let has_readiness = pod.containers[idx]
        .probes
        .iter()
        .any(|p| p.kind == ProbeKind::Readiness);
    let mut ticker = tokio::time::interval(spec.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut passes, mut failures) = (0, 0);
    loop {
        ticker.tick().await;
        let result = match tokio::time::timeout(spec.timeout, check(&pod, idx, &spec.action)).await
        {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {:?}", spec.timeout)),
        };
        let failure = match result {
            Ok(()) => {
                passes += 1;
                failures = 0;
                None
            }
            Err(message) => {
                failures += 1;
                passes = 0;
                Some(message)
            }
        };
        match spec.kind {
            ProbeKind::Startup => {
                if passes >= 1 {
                    started.send_replace(true);
                    pod.set_started(idx, !has_readiness);
                    return;
                }
            }
            ProbeKind::Readiness => {
                if passes >= spec.success_threshold {
                    pod.set_ready(idx, true);
                } else if failures >= spec.failure_threshold {
                    pod.set_ready(idx, false);
                }
            }
            ProbeKind::Liveness => {}
        }
        if let Some(message) = failure
            && failures >= spec.failure_threshold
            && spec.kind != ProbeKind::Readiness
        {
            let reason = format!("{} probe failed: {message}", spec.kind.as_str());
            pod.set_kill_reason(|i| i == idx, &reason);
            // NB: like the kubelet, a graceful kill; this task is aborted once the run ends.
            pod.signal(|i| i == idx, Signal::SIGTERM);
            tokio::time::sleep(pod.grace()).await;
            pod.signal(|i| i == idx, Signal::SIGKILL);
            return;
        }
    }
}

/// One probe attempt.
async fn check(pod: &Pod, idx: usize, action: &Action) -> Result<(), String> {
    match action {
        Action::Http {
            addr,
            path,
            headers,
        } => probe::http_get(*addr, path, headers).await,
        Action::Tcp { addr } => probe::tcp_connect(*addr).await,
        Action::Exec { argv } => match pod.exec(idx, argv).await {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => Err(format!(
                "exec {argv:?} exited {}: {}",
                out.exit_code,
                out.stderr.trim()
            )),
            Err(e) => Err(format!("exec {argv:?}: {e:?}")),
        },
    }
}

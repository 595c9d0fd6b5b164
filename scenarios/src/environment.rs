//! What every case of one run shares: the runtime with every subject's images mapped, and the
//! per-case life cycle (namespace, timeout, cancellation, timeline, artefacts, cleanup).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use harness::report::{Outcome, PodTrace, ScenarioResult};
use harness::runtime::Runtime;
use harness::runtime::local::Isolation;
use harness::services::containers::ContainerSettings;
use harness::services::external::ExternalServices;

use crate::catalog::Need;
use crate::checks;
use crate::context::{Recorder, Scenario, part_of, redact};
use crate::note;
use crate::outcome::{Failure, Kind};
use crate::runner::{Case, InputError, RunOptions, Services, result_of};
use crate::stop::{StopReason, StopSwitch};
use harness::subject::FormatName;

mod local;

/// How long deleting the namespaces of unfinished cases may take after a second signal.
const ABORT_BUDGET: Duration = Duration::from_secs(3);

/// How long cases and their pods may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// The longest one case may take before it is failed.
    pub case: Duration,
    /// How long a pod may take to become ready (or to appear). No requirement judges how fast a
    /// restore is, so this is a tolerance for busy machines, not a verdict on the workload.
    pub ready: Duration,
}

impl Timeouts {
    /// Pods as sandboxed host processes start in milliseconds, but a restore of four realistic
    /// datasets while 32 other cases run on 2 cores has taken 30 s (CI).
    pub const LOCAL: Timeouts = Timeouts {
        case: Duration::from_secs(120),
        ready: Duration::from_secs(90),
    };
    /// A cluster schedules, mounts and starts containers, and helper pods come and go.
    pub const CLUSTER: Timeouts = Timeouts {
        case: Duration::from_secs(300),
        ready: Duration::from_secs(120),
    };

    /// These timeouts with `--timeout` as the case limit; a pod may then take up to three
    /// quarters of it to become ready, so a readiness wait never outlives its case.
    pub fn with_case(self, case: Option<Duration>) -> Timeouts {
        match case {
            None => self,
            Some(case) => Timeouts {
                case,
                ready: case * 3 / 4,
            },
        }
    }
}

/// What every case of one run shares.
pub struct Environment<R> {
    pub(crate) runtime: R,
    runtime_name: &'static str,
    keep_on_failure: bool,
    /// Unclaimed requirements count like claimed ones (`--strict`).
    strict: bool,
    pub(crate) report_dir: PathBuf,
    /// Where each case's backup store listens.
    pub(crate) store_bind: IpAddr,
    /// Whether workloads reach the store through a Service in their namespace (clusters) or
    /// at its address (the local runtime, whose pods are host processes).
    pub(crate) store_via_service: bool,
    /// Whether the runtime runs native sidecars (init containers with `restartPolicy: Always`).
    native_sidecars: bool,
    /// Someone else's stores, shared by every case (each in its own prefix or branch).
    pub(crate) external: Option<ExternalServices>,
    /// Store containers, one per case, instead of embedded stores.
    pub(crate) containers: Option<ContainerSettings>,
    /// How long cases and pods may take.
    pub(crate) timeouts: Timeouts,
    /// `--timeout`: the case timeout whatever the runtime's default.
    case_timeout: Option<Duration>,
    /// Namespaces of cases under way: what an interrupted run must still remove.
    live: Mutex<std::collections::BTreeSet<String>>,
    /// Where failed cases' namespaces were kept.
    kept: Mutex<Vec<String>>,
    /// How the local runtime isolates containers; `None` on a cluster.
    isolation: Option<Isolation>,
}

impl<R: Runtime> Environment<R> {
    /// An environment on `runtime`, stores on loopback reached directly.
    pub fn new(runtime: R, runtime_name: &'static str, options: &RunOptions) -> Self {
        Environment {
            runtime,
            runtime_name,
            keep_on_failure: options.keep_on_failure,
            strict: options.strict,
            report_dir: options.report_dir.clone(),
            store_bind: Ipv4Addr::LOCALHOST.into(),
            store_via_service: false,
            native_sidecars: true,
            external: match &options.services {
                Services::External(external) => Some((**external).clone()),
                _ => None,
            },
            containers: match &options.services {
                Services::Container(settings) => Some(settings.clone()),
                _ => None,
            },
            timeouts: Timeouts::LOCAL.with_case(options.timeout),
            case_timeout: options.timeout,
            live: Default::default(),
            kept: Default::default(),
            isolation: None,
        }
    }

    /// Stores listen on `bind` and workloads reach them through a Service per namespace.
    pub fn with_stores_behind_service(mut self, bind: IpAddr) -> Self {
        self.store_bind = bind;
        self.store_via_service = true;
        self
    }

    /// Cases and pods may take this long (a `--timeout` still wins for cases).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts.with_case(self.case_timeout);
        self
    }

    /// Store containers attach to Docker network `network` (`None`: the default bridge).
    pub fn with_container_network(mut self, network: Option<String>) -> Self {
        if let Some(settings) = &mut self.containers {
            settings.network = network;
        }
        self
    }

    /// Checks that the store containers' images are here (pulling what is missing), so a run
    /// without a registry stops before its first case instead of failing every one.
    pub async fn check_store_images(&self, cases: &[Case]) -> Result<(), InputError> {
        let Some(settings) = &self.containers else {
            return Ok(());
        };
        let mut backends: Vec<harness::subject::Backend> =
            cases.iter().map(|c| c.backend).collect();
        backends.dedup();
        harness::services::containers::ensure_images(settings, &backends)
            .await
            .map_err(|e| InputError::Runtime(format!("--services container: {e}")))
    }

    /// Whether subjects with native sidecars can run; when not, their cases are skipped.
    pub fn with_native_sidecars(mut self, supported: bool) -> Self {
        self.native_sidecars = supported;
        self
    }

    /// How the runtime isolates containers (the local runtime's [`Isolation`]): without
    /// sandboxes, every case is skipped with the reason, for its containers would not see their
    /// volumes at their mount paths.
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// The runtime's name for reports.
    pub fn runtime_name(&self) -> &'static str {
        self.runtime_name
    }

    /// Where failed cases' namespaces were kept (`--keep-on-failure`), one line each.
    pub fn kept(&self) -> Vec<String> {
        self.kept.lock().expect("not poisoned").clone()
    }

    /// For reports: how the local runtime isolates containers (`sandbox`, or how it falls short
    /// of a cluster); `None` on a cluster.
    pub fn isolation_note(&self) -> Option<String> {
        self.isolation
            .as_ref()
            .map(|i| i.shortfall().unwrap_or_else(|| "sandbox".into()))
    }

    /// Stops every pod and process of the run.
    ///
    /// Namespaces of cases that never finished (an interrupted run) are deleted first, so a
    /// reused cluster is left as it was found.
    pub async fn shutdown(&self) {
        let left: Vec<String> = std::mem::take(&mut *self.live.lock().expect("not poisoned"))
            .into_iter()
            .collect();
        for ns in left {
            if let Err(e) = self.runtime.delete_namespace(&ns).await {
                note!("phasecheck: error: deleting namespace {ns} of an unfinished case: {e}");
            }
        }
        self.runtime.shutdown().await;
    }

    /// Stops everything at once, best effort, for a program about to exit (a second signal):
    /// the runtime's processes are killed and its files removed synchronously, then the
    /// namespaces of unfinished cases are deleted for at most a few seconds.
    pub async fn abort(&self) {
        self.runtime.abort();
        let left: Vec<String> = self
            .live
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        let deletes = left.iter().map(|ns| self.runtime.delete_namespace(ns));
        let _ = tokio::time::timeout(ABORT_BUDGET, futures::future::join_all(deletes)).await;
    }

    /// Runs one case in its own namespace and cleans up after it.
    pub async fn run_case(&self, case: &Case) -> ScenarioResult {
        self.run_case_with(case, 1, &StopSwitch::new()).await
    }

    /// Runs one case (its `iteration`-th run) in its own namespace and cleans up after it; a
    /// flipped `stop` cancels it (outcome `interrupted`), its namespace still removed.
    pub async fn run_case_with(
        &self,
        case: &Case,
        iteration: u32,
        stop: &StopSwitch,
    ) -> ScenarioResult {
        let started = Instant::now();
        let started_at = Utc::now();
        let mut result = self.run_case_at(case, stop, started).await;
        result.iteration = iteration;
        result.started_at = Some(started_at);
        result
    }

    async fn run_case_at(
        &self,
        case: &Case,
        stop: &StopSwitch,
        started: Instant,
    ) -> ScenarioResult {
        if !self.native_sidecars && case.subject.native_sidecar {
            return result_of(
                case,
                Outcome::Skipped,
                started.elapsed(),
                "the subject uses native sidecars (init containers with restartPolicy: Always), which need Kubernetes 1.29 or later".into(),
            );
        }
        if let Some(Isolation::None { reason }) = &self.isolation {
            return result_of(
                case,
                Outcome::Skipped,
                started.elapsed(),
                format!(
                    "the subject's containers need their exact paths (the data volume at {}), which only a sandbox shows them, and the local runtime has none here: {reason}",
                    case.subject.profile.data.mount_path
                ),
            );
        }
        if self.external.is_some() && case.requirement.needs(Need::StoreOutage) {
            return result_of(
                case,
                Outcome::Skipped,
                started.elapsed(),
                "external stores have no outage switch, and this scenario takes the store down"
                    .into(),
            );
        }
        if let Some(reason) = self.missing_programs(case) {
            return result_of(case, Outcome::Skipped, started.elapsed(), reason);
        }
        if let Some(reason) = not_applicable(case) {
            return result_of(case, Outcome::NotApplicable, started.elapsed(), reason);
        }
        let ns = namespace_for(case);
        self.live.lock().expect("not poisoned").insert(ns.clone());
        if let Err(e) = self.runtime.create_namespace(&ns).await {
            self.live.lock().expect("not poisoned").remove(&ns);
            let mut result = result_of(
                case,
                Outcome::Error,
                started.elapsed(),
                format!("creating the namespace {ns}: {e}"),
            );
            result.namespace = Some(ns);
            return result;
        }
        let mut result = self.run_case_in(case, &ns, stop, started).await;
        self.live.lock().expect("not poisoned").remove(&ns);
        result.namespace = Some(ns);
        if !self.strict
            && !case.subject.claims(case.requirement.id)
            && result.outcome != Outcome::Interrupted
        {
            result.would_have_been = Some(result.outcome);
            result.outcome = Outcome::NotClaimed;
        }
        result
    }

    /// Why the case cannot run on this machine: host programs the local runtime would run for
    /// the subject's images, or the harness needs for the backup format, are missing.
    fn missing_programs(&self, case: &Case) -> Option<String> {
        let mut missing = if self.runtime_name == "local" {
            case.subject.missing_host_programs()
        } else {
            Vec::new()
        };
        if case.subject.profile.backup.format == FormatName::Restic
            && !missing.iter().any(|(p, _)| p == "restic")
            && !harness::subject::program_exists("restic")
        {
            missing.push((
                "restic".into(),
                "apt-get install -y --no-install-recommends restic".into(),
            ));
        }
        if missing.is_empty() {
            return None;
        }
        let list: Vec<String> = missing
            .iter()
            .map(|(program, hint)| format!("`{program}` ({hint})"))
            .collect();
        Some(format!("missing on this machine: {}", list.join(", ")))
    }

    async fn run_case_in(
        &self,
        case: &Case,
        ns: &str,
        stop: &StopSwitch,
        started: Instant,
    ) -> ScenarioResult {
        let ns = ns.to_owned();
        let secrets: Mutex<Vec<String>> = Mutex::default();
        // NB: outside the body, so a case that times out or is stopped keeps what it recorded.
        let recorder = Recorder::default();
        let body = async {
            let opened = Scenario::open(self, case, ns.clone(), recorder.clone()).await;
            let mut scenario = match opened {
                Ok(scenario) => scenario,
                Err(failure) => return (Err(failure), None, false),
            };
            *secrets.lock().expect("not poisoned") = scenario.secrets();
            let result = checks::run(case.requirement.check, &mut scenario).await;
            scenario.observe_store().await;
            let saved = result.is_err();
            if saved {
                scenario.save_artefacts().await;
            }
            // NB: reports outlive the run; no credential may reach them.
            let result = result.map_err(|f| f.map_message(|m| scenario.redact(&m)));
            (result, Some(Box::new(scenario.into_store())), saved)
        };
        let limit = self.timeouts.case;
        let ended = tokio::select! {
            (result, store, saved) = body => Ended::Done(result, store, saved),
            () = tokio::time::sleep(limit) => Ended::TimedOut(limit),
            reason = stop.stopped() => Ended::Stopped(reason),
        };
        let secrets = std::mem::take(&mut *secrets.lock().expect("not poisoned"));
        let (timeline, live) = self.case_timeline(case, &ns).await;
        let timeline = redact(&timeline, &secrets);
        let (pods, events) = recorder.finish(live, |text| redact(text, &secrets));
        let (outcome, mut message, store, saved) = match ended {
            Ended::Done(Ok(()), store, _) => (Outcome::Passed, String::new(), store, false),
            Ended::Done(Err(Failure { kind, message }), store, saved) => {
                let outcome = match kind {
                    Kind::Violation => Outcome::Failed,
                    Kind::Error => Outcome::Error,
                };
                (outcome, message, store, saved)
            }
            Ended::TimedOut(limit) => (
                Outcome::Error,
                format!("did not finish within {limit:?} (the case timeout; --timeout changes it)"),
                None,
                false,
            ),
            Ended::Stopped(reason) => (
                Outcome::Interrupted,
                format!(
                    "{} after {:.1}s",
                    match &reason {
                        StopReason::Signal(signal) => format!("interrupted by {}", signal.name()),
                        StopReason::FailFast(_) => format!("cancelled ({reason})"),
                    },
                    started.elapsed().as_secs_f64()
                ),
                None,
                false,
            ),
        };
        let artefacts = self.report_dir.join("artefacts").join(&ns);
        if outcome.fails_run() && !saved {
            // NB: a case that timed out never saved its own; its timeline is what is known.
            let _ = std::fs::create_dir_all(&artefacts)
                .and_then(|()| std::fs::write(artefacts.join("case.timeline.txt"), &timeline));
        }
        let keep = outcome.fails_run() && self.keep_on_failure;
        let mut result = if keep {
            let note = self.runtime.keep_namespace(&ns).await;
            note!(
                "phasecheck: {} {}/{} failed: {note}",
                case.requirement.id,
                case.subject.name(),
                case.backend
            );
            self.kept.lock().expect("not poisoned").push(note.clone());
            message.push_str(&format!("\n({note})"));
            result_of(case, outcome, started.elapsed(), message)
        } else if let Err(e) = self.runtime.delete_namespace(&ns).await {
            message.push_str(&format!("\ncleanup of namespace {ns} failed: {e}"));
            // NB: a case stopped by a second signal races the abort's own cleanup; what it
            // could not remove is no verdict on the subject.
            let outcome = match outcome {
                Outcome::Interrupted => Outcome::Interrupted,
                _ => Outcome::Failed,
            };
            result_of(case, outcome, started.elapsed(), message)
        } else if let Some(store) = store
            && let Err(e) = store.remove_scope().await
        {
            // NB: only after the pods are gone, so no backup lands after the removal.
            message.push_str(&format!("\ncleanup of the external store failed: {e}"));
            result_of(case, Outcome::Failed, started.elapsed(), message)
        } else {
            result_of(case, outcome, started.elapsed(), message)
        };
        result.timeline = timeline;
        result.pods = pods;
        result.events = events;
        if artefacts.is_dir() {
            result.artefacts = Some(artefacts);
        }
        result
    }

    /// The case's namespace and the timeline of each of its pods, for reports: as text, and
    /// as data.
    async fn case_timeline(&self, case: &Case, ns: &str) -> (String, Vec<PodTrace>) {
        let mut out = format!("namespace {ns} on the {} runtime\n", self.runtime_name);
        let mut traces = Vec::new();
        let pods = match self.runtime.pods(ns).await {
            Ok(pods) => pods,
            Err(e) => {
                let _ = writeln!(out, "(pods unknown: {e})");
                return (out, traces);
            }
        };
        if pods.is_empty() {
            out.push_str("(no pod)\n");
        }
        for pod in pods {
            match self.runtime.timeline(ns, &pod.name).await {
                Ok(timeline) => {
                    out.push_str(&timeline.render());
                    traces.push(PodTrace::from_timeline(&timeline, Utc::now(), |name| {
                        part_of(&case.subject, name)
                    }));
                }
                Err(e) => {
                    let _ = writeln!(out, "pod {}: timeline unknown: {e}", pod.name);
                }
            }
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        (out, traces)
    }
}

/// How a case's body ended.
enum Ended {
    /// It ran to the end: its verdict, its store (to clean up), whether it saved artefacts.
    Done(
        Result<(), Failure>,
        Option<Box<harness::backups::BackupStore>>,
        bool,
    ),
    /// The case timeout struck.
    TimedOut(Duration),
    /// The run was stopped.
    Stopped(StopReason),
}

/// Why `case`'s scenario cannot apply to its subject: the subject has no such part.
fn not_applicable(case: &Case) -> Option<String> {
    let subject = &case.subject;
    let profile = &subject.profile;
    case.requirement.needs.iter().find_map(|need| match need {
        Need::Retention if profile.retention.is_none() => {
            Some("the subject has no retention knob (`retention:` in its profile)".to_owned())
        }
        Need::AppRead if profile.app.read.is_none() => {
            Some("the profile gives no way to read a file through the app (`app.read`)".to_owned())
        }
        Need::AppWrite if profile.app.write.is_none() => Some(
            "the profile gives no way to write a file through the app (`app.write`)".to_owned(),
        ),
        Need::DataClaim if subject.data_claim.is_none() => Some(
            "the data volume is an emptyDir: it cannot be prepared before the pod exists"
                .to_owned(),
        ),
        _ => None,
    })
}

/// A DNS-label namespace unique to the case.
fn namespace_for(case: &Case) -> String {
    let nonce: u32 = rand_u32();
    let mut ns = format!(
        "pc-{}-{}-{}-{:05x}",
        case.requirement.id.to_ascii_lowercase(),
        case.backend,
        case.subject.name(),
        nonce & 0xfffff
    );
    ns.truncate(63);
    ns.trim_end_matches('-').to_owned()
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u32
}

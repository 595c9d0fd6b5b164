//! One case's life cycle on the shared [`Environment`]: its namespace, timeout, cancellation,
//! scenario, timeline, artefacts and cleanup.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use harness::report::{Outcome, Phase, PodTrace, ScenarioResult};
use harness::runtime::Runtime;
use harness::runtime::local::Isolation;

use crate::catalog::Need;
use crate::checks;
use crate::context::{Recorder, Scenario, part_of, redact};
use crate::environment::Environment;
use crate::note;
use crate::outcome::{Failure, Kind};
use crate::plan::{Case, result_of};
use crate::stop::{StopReason, StopSwitch};
use harness::subject::FormatName;

impl<R: Runtime> Environment<R> {
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
        if let Err(message) = Box::pin(self.ensure_installed(&case.subject)).await {
            return result_of(case, Outcome::Error, started.elapsed(), message);
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
        let mut result = Box::pin(self.run_case_in(case, &ns, stop, started)).await;
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
            let open = Box::pin(Scenario::open(self, case, ns.clone(), recorder.clone()));
            let opened = recorder.timed(Phase::Setup, open).await;
            let mut scenario = match opened {
                Ok(scenario) => scenario,
                Err(failure) => return (Err(failure), None, false),
            };
            *secrets.lock().expect("not poisoned") = scenario.secrets();
            let result = checks::run(case.requirement.check, &mut scenario).await;
            scenario.observe_store().await;
            let saved = result.is_err();
            if saved {
                recorder
                    .timed(Phase::Teardown, scenario.save_artefacts())
                    .await;
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
        let teardown_started = Instant::now();
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
        let mut share = recorder.share();
        share.add(Phase::Teardown, teardown_started.elapsed());
        result.harness = Some(share);
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
        let namespace = self.runtime.namespace(ns);
        let pods = match namespace.pods().await {
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
            match namespace.timeline(&pod.name).await {
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

//! Plans and runs scenario × subject × backend cases in parallel, each in its own namespace, and
//! turns them into a [`RunReport`].
//!
//! Every input is checked before the first case starts ([`plan`], [`check_report_dir`]): a bad
//! flag, profile, manifest, image or report directory is an [`InputError`] (exit 2), not a run
//! of failing cases. A run stops early on SIGINT, SIGTERM or SIGHUP, or with `--fail-fast` after
//! the first failure ([`crate::stop`]); its report then holds every planned case, the unfinished
//! ones `interrupted`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use harness::report::{Outcome, RunReport, ScenarioResult};
use harness::runtime::Runtime;

use crate::catalog::CATALOG_VERSION;
use crate::cluster::ClusterRun;
use crate::environment::Environment;
use crate::progress::Progress;
use crate::stop::{AbortHook, Signals, StopReason, StopSwitch};
use crate::term::{self, Stream};
use crate::workdir::RunDir;
use crate::{note, say};

use crate::plan::not_started;
pub use crate::plan::{
    Case, InputError, RunOptions, RuntimeKind, Services, check_report_dir, default_jobs,
    fixtures_dir, parse_duration, plan, reference_subjects,
};

/// How a run of cases is steered: how many at once, how often, when to stop, what to show.
pub struct Control {
    /// Cases at once.
    pub jobs: usize,
    /// Runs per case.
    pub repeat: u32,
    /// Stop at the first failure.
    pub fail_fast: bool,
    /// Flipped by a signal or `--fail-fast`.
    pub stop: StopSwitch,
    /// What the terminal shows.
    pub progress: Progress,
}

impl Control {
    /// The control of a run of `cases` with `options`, stopped by `stop`.
    pub fn new(options: &RunOptions, cases: &[Case], stop: StopSwitch) -> Self {
        let slow = options.runtime != RuntimeKind::Local
            || matches!(options.services, Services::Container(_));
        Control {
            jobs: options.jobs.max(1),
            repeat: options.repeat.max(1),
            fail_fast: options.fail_fast,
            progress: Progress::new(
                cases,
                options.repeat.max(1),
                slow,
                term::colour(Stream::Stderr),
            ),
            stop,
        }
    }
}

/// Runs every case `control.repeat` times, at most `control.jobs` at once, printing progress.
/// Once `control.stop` is flipped, cases under way are cancelled and the rest never start; every
/// planned run still has a result (`interrupted` for those), in plan order.
pub async fn execute<R: Runtime>(
    env: Arc<Environment<R>>,
    cases: Vec<Case>,
    control: &Control,
) -> Vec<ScenarioResult> {
    let repeat = control.repeat;
    let total = cases.len() * repeat as usize;
    note!(
        "phasecheck: running {total} case(s), {} at a time, on the {} runtime (each case at most {:?})",
        control.jobs,
        env.runtime_name(),
        env.timeouts.case
    );
    // NB: repeats of one case are spread over the run, not bunched together, so one slow
    // moment of the host does not hit every repeat; cases that mostly wait on a schedule start
    // first (stable otherwise), so their waiting overlaps the others' work; results come back
    // in plan order.
    let mut runs: Vec<_> = (1..=repeat)
        .flat_map(|iteration| {
            cases.iter().enumerate().map(move |(i, case)| {
                let index = i * repeat as usize + (iteration as usize - 1);
                (index, case.clone(), iteration)
            })
        })
        .collect();
    runs.sort_by_key(|(_, case, iteration)| (*iteration, !case.requirement.waits_on_schedule()));
    let work = futures::stream::iter(runs)
        .map(|(index, case, iteration)| {
            let env = env.clone();
            async move {
                let result = match control.stop.reason() {
                    Some(reason) => not_started(&case, iteration, &reason),
                    None => {
                        control.progress.started(index, &case, iteration);
                        env.run_case_with(&case, iteration, &control.stop).await
                    }
                };
                control.progress.finished(index, &result);
                if control.fail_fast && result.outcome.fails_run() {
                    control.stop.stop(StopReason::FailFast(format!(
                        "{} {}/{}",
                        result.title(),
                        result.subject,
                        result.backend
                    )));
                }
                (index, result)
            }
        })
        .buffer_unordered(control.jobs.max(1))
        .collect::<Vec<_>>();
    let mut results = tokio::select! {
        results = work => results,
        () = control.progress.tick() => unreachable!("the progress ticker never ends"),
    };
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, r)| r).collect()
}

/// What a run of cases came to.
struct Finished {
    results: Vec<ScenarioResult>,
    runtime: &'static str,
    /// Where failed cases' namespaces were kept (`--keep-on-failure`).
    kept: Vec<String>,
    /// How the local runtime isolated containers; `None` on a cluster.
    isolation: Option<String>,
}

/// Every run of every case, not started.
fn none_started(cases: &[Case], repeat: u32, reason: &StopReason) -> Vec<ScenarioResult> {
    cases
        .iter()
        .flat_map(|case| (1..=repeat).map(move |i| not_started(case, i, reason)))
        .collect()
}

/// Runs every case of `options` on the runtime it names. `signals`, when given, learns how to
/// stop everything at once on a second signal.
async fn run_cases(
    options: &RunOptions,
    cases: Vec<Case>,
    stop: &StopSwitch,
    signals: Option<&Signals>,
) -> Result<Finished, InputError> {
    let control = Control::new(options, &cases, stop.clone());
    if options.runtime == RuntimeKind::Local {
        let env = tokio::select! {
            env = Environment::local(options, &cases) => Arc::new(env?),
            reason = stop.stopped() => {
                return Ok(Finished {
                    results: none_started(&cases, control.repeat, &reason),
                    runtime: "local",
                    kept: Vec::new(),
                    isolation: None,
                });
            }
        };
        if let Some(signals) = signals {
            signals.on_abort(abort_hook(env.clone()));
        }
        let results = execute(env.clone(), cases, &control).await;
        env.shutdown().await;
        return Ok(Finished {
            results,
            runtime: env.runtime_name(),
            kept: env.kept(),
            isolation: env.isolation_note(),
        });
    }
    let cluster = tokio::select! {
        cluster = ClusterRun::start(options, &cases) => cluster?,
        reason = stop.stopped() => {
            note!("phasecheck: stopped while the cluster was being set up; if `kind get clusters` lists `phasecheck` half made, `kind delete cluster --name phasecheck` removes it");
            return Ok(Finished {
                results: none_started(&cases, control.repeat, &reason),
                runtime: options.runtime.as_str(),
                kept: Vec::new(),
                isolation: None,
            });
        }
    };
    if let Some(signals) = signals {
        signals.on_abort(abort_hook(cluster.env.clone()));
    }
    let mut results = execute(cluster.env.clone(), cases, &control).await;
    let runtime = cluster.env.runtime_name();
    let kept = cluster.env.kept();
    if let Err(e) = cluster.finish().await {
        // NB: a cleanup that failed fails the run: it leaves cluster state behind.
        results.push(ScenarioResult::new(
            "CLEANUP",
            "cluster teardown",
            "",
            "",
            Outcome::Failed,
            Duration::ZERO,
            e,
        ));
    }
    Ok(Finished {
        results,
        runtime,
        kept,
        isolation: None,
    })
}

/// What a second signal does: stop `env` at once; the run's files may go unless a failed case's
/// namespace is kept among them.
fn abort_hook<R: Runtime + 'static>(env: Arc<Environment<R>>) -> AbortHook {
    Box::new(move || {
        let env = env.clone();
        Box::pin(async move {
            env.abort().await;
            env.kept().is_empty()
        })
    })
}

/// The report of a finished (or stopped) run.
fn report_of(
    options: &RunOptions,
    started_at: chrono::DateTime<Utc>,
    started: Instant,
    finished: Finished,
    stopped: Option<StopReason>,
) -> RunReport {
    let mut report = RunReport::new(CATALOG_VERSION, finished.runtime);
    report.tool = "phasecheck".into();
    report.version = env!("CARGO_PKG_VERSION").into();
    report.started_at = started_at;
    report.wall_ms = started.elapsed().as_millis() as u64;
    report.options = options.to_json();
    report.stopped = stopped.map(|r| r.to_string());
    report.isolation = finished.isolation;
    report.scenarios = finished.results;
    report
}

/// `--dry-run`: what the run would do.
fn print_plan(options: &RunOptions, cases: &[Case]) {
    say!(
        "runtime: {} (each case at most {:?})",
        options.runtime.as_str(),
        options.case_timeout()
    );
    say!("services: {}", options.services.describe());
    say!(
        "subjects: {}",
        options
            .subject_paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    say!(
        "{} case(s), each run {} time(s), {} at a time{}; reports in {}",
        cases.len(),
        options.repeat,
        options.jobs,
        if options.fail_fast {
            ", stopping at the first failure"
        } else {
            ""
        },
        options.report_dir.display()
    );
    let w_title = cases
        .iter()
        .map(|c| c.requirement.id.len() + 1 + c.requirement.name.len())
        .max()
        .unwrap_or(0);
    let w_subject = cases
        .iter()
        .map(|c| c.subject.name().len())
        .max()
        .unwrap_or(0);
    for case in cases {
        say!(
            "  {:<w_title$}  {:<w_subject$}  {}",
            format!("{} {}", case.requirement.id, case.requirement.name),
            case.subject.name(),
            case.backend
        );
    }
}

/// The `phasecheck run` command: check every input, run (or, with `dry_run`, print the plan),
/// report; returns the process exit code (0 passed, 1 failed, 2 bad input, 128 + N stopped by
/// signal N). Runs its own tokio runtime.
pub fn run_cli(options: RunOptions, dry_run: bool) -> ExitCode {
    let tokio = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    let (code, run_dir) = tokio.block_on(run_cli_on(options, dry_run));
    // NB: tasks still under way (a run given up on a second signal) stop with the runtime, so
    // none writes into the run's directory once it is removed.
    tokio.shutdown_timeout(Duration::from_secs(2));
    if let Some(run_dir) = run_dir {
        run_dir.remove();
    }
    code
}

/// [`run_cli`] inside the runtime; also returns the run directory to remove once every task has
/// stopped (`None`: none was made, or it holds a kept namespace).
async fn run_cli_on(options: RunOptions, dry_run: bool) -> (ExitCode, Option<RunDir>) {
    let started_at = Utc::now();
    let started = Instant::now();
    let stop = StopSwitch::new();
    let signals = match Signals::install(stop.clone()) {
        Ok(signals) => signals,
        Err(e) => {
            note!("phasecheck: error: cannot handle SIGINT, SIGTERM and SIGHUP: {e}");
            return (ExitCode::from(2), None);
        }
    };
    let cases = match plan(&options).and_then(|cases| {
        check_report_dir(&options.report_dir, dry_run)?;
        Ok(cases)
    }) {
        Ok(cases) => cases,
        Err(e) => {
            note!("phasecheck: error: {e}");
            return (ExitCode::from(2), None);
        }
    };
    if dry_run {
        print_plan(&options, &cases);
        return (ExitCode::SUCCESS, None);
    }
    let run_dir = match RunDir::create() {
        Ok(dir) => dir,
        Err(e) => {
            note!(
                "phasecheck: error: cannot make the run's directory under {} (set TMPDIR to \
                 choose another): {e}",
                crate::workdir::scratch_root().display()
            );
            return (ExitCode::from(2), None);
        }
    };
    let finished = tokio::select! {
        finished = run_cases(&options, cases, &stop, Some(&signals)) => finished,
        aborted = signals.aborted() => {
            let code = ExitCode::from(aborted.signal.exit_code());
            return (code, aborted.remove_files.then_some(run_dir));
        }
    };
    let finished = match finished {
        Ok(finished) => finished,
        Err(e) => {
            note!("phasecheck: error: {e}");
            return (ExitCode::from(2), Some(run_dir));
        }
    };
    let kept = finished.kept.clone();
    let run_dir = if kept.is_empty() {
        Some(run_dir)
    } else {
        note!(
            "phasecheck: the kept namespaces' files stay under {}; `phasecheck clean` removes them",
            run_dir.path().display()
        );
        None
    };
    let report = report_of(&options, started_at, started, finished, stop.reason());
    say!("");
    term::out_text(&report.summary(term::colour(Stream::Stdout)));
    for note in &kept {
        say!("kept for inspection: {note}");
    }
    match report.write(&options.report_dir) {
        Ok(files) => say!(
            "reports: {}, {} and {}",
            files.json.display(),
            files.junit.display(),
            files.html.display()
        ),
        Err(e) => {
            note!("phasecheck: error: {e}");
            return (ExitCode::from(2), run_dir);
        }
    }
    if let Err(e) = publish_to_github(&report, &options.report_dir) {
        note!("phasecheck: error: {e}");
        return (ExitCode::from(2), run_dir);
    }
    let code = match stop.reason() {
        Some(StopReason::Signal(signal)) => {
            note!(
                "phasecheck: stopped by {}; the report holds what finished",
                signal.name()
            );
            ExitCode::from(signal.exit_code())
        }
        _ if report.all_passed() => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    };
    (code, run_dir)
}

/// On GitHub Actions (`GITHUB_ACTIONS=true`): an error annotation per failed case on stdout and
/// the matrix appended to the job summary (`GITHUB_STEP_SUMMARY`); nothing elsewhere.
pub fn publish_to_github(
    report: &RunReport,
    dir: &Path,
) -> Result<(), harness::report::github::Error> {
    let mut stdout = std::io::stdout().lock();
    harness::report::github::publish(report, dir, |name| std::env::var(name).ok(), &mut stdout)
        .map(drop)
}

/// Convenience for tests: runs `options` and returns the report without writing files.
pub async fn run_report(options: &RunOptions) -> Result<RunReport, InputError> {
    let started_at = Utc::now();
    let started = Instant::now();
    let cases = plan(options)?;
    let stop = StopSwitch::new();
    let finished = run_cases(options, cases, &stop, None).await?;
    Ok(report_of(
        options,
        started_at,
        started,
        finished,
        stop.reason(),
    ))
}

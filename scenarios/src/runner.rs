//! Plans and runs scenario × subject × backend cases in parallel, each in its own namespace, and
//! turns them into a [`RunReport`].
//!
//! Every input is checked before the first case starts ([`plan`], [`check_report_dir`]): a bad
//! flag, profile, manifest, image or report directory is an [`InputError`] (exit 2), not a run
//! of failing cases. A run stops early on SIGINT, SIGTERM or SIGHUP, or with `--fail-fast` after
//! the first failure ([`crate::stop`]); its report then holds every planned case, the unfinished
//! ones `interrupted`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use harness::report::{Outcome, RunReport, ScenarioResult};
use harness::runtime::Runtime;
use harness::services::containers::{ContainerSettings, ObjectStoreImage};
use harness::services::external::ExternalServices;
use harness::subject::{Backend, Subject};

use crate::catalog::{self, CATALOG_VERSION, Requirement};
use crate::cluster::ClusterRun;
use crate::environment::{Environment, Timeouts};
use crate::progress::Progress;
use crate::stop::{AbortHook, Signals, StopReason, StopSwitch};
use crate::term::{self, Stream};
use crate::workdir::RunDir;
use crate::{note, say};

/// Where the subjects run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// The embedded runtime: pods as host processes.
    Local,
    /// A kind cluster created from kind-config.yaml.
    Kind,
    /// A minikube profile.
    Minikube,
    /// The current kubeconfig context.
    Existing,
}

impl RuntimeKind {
    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Local => "local",
            RuntimeKind::Kind => "kind",
            RuntimeKind::Minikube => "minikube",
            RuntimeKind::Existing => "existing",
        }
    }

    /// The per-case timeout unless `--timeout` says otherwise.
    pub fn default_timeouts(self) -> Timeouts {
        match self {
            RuntimeKind::Local => Timeouts::LOCAL,
            _ => Timeouts::CLUSTER,
        }
    }
}

/// Where each case's backup store comes from.
#[derive(Clone, Debug, Default)]
pub enum Services {
    /// A fresh embedded object store or git server per case (real protocols, on this host).
    #[default]
    Embedded,
    /// A MinIO/RustFS or Gitea container per case (testcontainers).
    Container(ContainerSettings),
    /// Someone else's bucket and repository, for drills (see [`ExternalServices`]).
    External(Box<ExternalServices>),
}

impl Services {
    /// How the plan and the report name them: `embedded`, `container (minio)`, `external`.
    pub fn describe(&self) -> String {
        match self {
            Services::Embedded => "embedded".into(),
            Services::Container(settings) => match &settings.object_store {
                ObjectStoreImage::MinIO => "container (minio, gitea)".into(),
                ObjectStoreImage::RustFs(_) => "container (rustfs, gitea)".into(),
            },
            Services::External(_) => "external".into(),
        }
    }
}

/// What `phasecheck run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where the subjects run.
    pub runtime: RuntimeKind,
    /// Subject profiles; empty = the reference subjects.
    pub subjects: Vec<PathBuf>,
    /// Scenario ID globs; empty = every scenario.
    pub scenarios: Vec<String>,
    /// Backends; empty = every backend a subject declares.
    pub backends: Vec<Backend>,
    /// Cases run at once (at least 1).
    pub jobs: usize,
    /// The longest one case may take; `None`: the runtime's default
    /// ([`RuntimeKind::default_timeouts`]).
    pub timeout: Option<Duration>,
    /// How many times each case runs (at least 1), to tell flaky cases from broken ones.
    pub repeat: u32,
    /// Stop at the first failed case: cancel the cases under way, start no more.
    pub fail_fast: bool,
    /// Where reports go.
    pub report_dir: PathBuf,
    /// Keep a failed case's namespace.
    pub keep_on_failure: bool,
    /// Judge requirements a subject does not claim like claimed ones (they can fail the run).
    pub strict: bool,
    /// Where backup stores come from.
    pub services: Services,
    /// The `phasecheck` binary, which the local runtime runs as phasepod for the builtin image
    /// (shown in sandboxes at the image's `/phasepod`, and called by that name) and as its
    /// sandbox launcher (`phasecheck sandbox`); `None` = this program. Set it when embedding the
    /// runner in tests: `env!("CARGO_BIN_EXE_phasecheck")`.
    pub phasecheck: Option<PathBuf>,
}

impl RunOptions {
    /// Defaults for the reference subjects on the local runtime.
    pub fn new() -> Self {
        RunOptions {
            runtime: RuntimeKind::Local,
            subjects: Vec::new(),
            scenarios: Vec::new(),
            backends: Vec::new(),
            jobs: default_jobs(),
            timeout: None,
            repeat: 1,
            fail_fast: false,
            report_dir: PathBuf::from("target/phasecheck"),
            keep_on_failure: false,
            strict: false,
            services: Services::Embedded,
            phasecheck: None,
        }
    }
}

impl RunOptions {
    /// The per-case timeout this run uses.
    pub fn case_timeout(&self) -> Duration {
        self.timeout.unwrap_or(self.runtime.default_timeouts().case)
    }

    /// The options as `report.json` records them (no credential: external stores are named,
    /// not described).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "runtime": self.runtime.as_str(),
            "services": self.services.describe(),
            "subjects": self.subject_paths(),
            "scenarios": self.scenarios,
            "backends": self.backends.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
            "jobs": self.jobs,
            "timeout_ms": self.case_timeout().as_millis() as u64,
            "repeat": self.repeat,
            "fail_fast": self.fail_fast,
            "keep_on_failure": self.keep_on_failure,
            "report_dir": self.report_dir,
        })
    }

    /// The subject profiles this run loads.
    pub fn subject_paths(&self) -> Vec<PathBuf> {
        if self.subjects.is_empty() {
            reference_subjects()
        } else {
            self.subjects.clone()
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Parallel cases by default: scenarios mostly wait on schedules and processes, not on the CPU.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 8).clamp(8, 48)
}

/// A bad command line or input file: reported with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A subject profile could not be loaded.
    #[error(transparent)]
    Subject(#[from] harness::subject::Error),
    /// A `--scenario` glob matched nothing.
    #[error("--scenario `{0}` matches no scenario ID; `phasecheck list` shows the catalog")]
    UnknownScenario(String),
    /// No case is left after filtering.
    #[error("nothing to run: no selected subject declares the selected backend(s) {0:?}")]
    NothingToRun(Vec<Backend>),
    /// The runtime cannot be used here.
    #[error("{0}")]
    Runtime(String),
    /// A flag has a value the run cannot use.
    #[error("{flag} {value}: {problem}")]
    Flag {
        /// The flag, e.g. `--jobs`.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong and what to use instead.
        problem: &'static str,
    },
    /// The report directory cannot be created or written.
    #[error("--report-dir: {0}")]
    ReportDir(#[source] harness::report::Error),
}

/// One scenario × subject × backend.
#[derive(Clone, Debug)]
pub struct Case {
    /// The requirement checked.
    pub requirement: &'static Requirement,
    /// The subject under test.
    pub subject: Arc<Subject>,
    /// The backend.
    pub backend: Backend,
}

/// The reference subjects shipped in fixtures/subjects.
pub fn reference_subjects() -> Vec<PathBuf> {
    let dir = fixtures_dir().join("subjects");
    vec![dir.join("phasepod.yaml"), dir.join("phasepod-native.yaml")]
}

/// The repository's fixtures directory: `./fixtures` when run from the checkout, else the one
/// this binary was built from.
pub fn fixtures_dir() -> PathBuf {
    let local = Path::new("fixtures");
    if local.join("subjects").is_dir() {
        local.to_owned()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
    }
}

/// Expands options into cases, checking every input first: the flags, every subject profile
/// and every manifest it names (strictly: an unknown field is an error naming the manifest file
/// and document).
pub fn plan(options: &RunOptions) -> Result<Vec<Case>, InputError> {
    check_flags(options)?;
    let paths = options.subject_paths();
    let subjects = paths
        .iter()
        .map(|p| {
            let subject = Subject::load(p)?;
            subject.check_claims(&catalog::ids())?;
            Ok(Arc::new(subject))
        })
        .collect::<Result<Vec<_>, InputError>>()?;
    let mut requirements: Vec<&'static Requirement> = Vec::new();
    if options.scenarios.is_empty() {
        requirements.extend(catalog::CATALOG.iter());
    } else {
        for glob in &options.scenarios {
            let matched = catalog::select(glob);
            if matched.is_empty() {
                return Err(InputError::UnknownScenario(glob.clone()));
            }
            for r in matched {
                if !requirements.contains(&r) {
                    requirements.push(r);
                }
            }
        }
        requirements.sort_by_key(|r| catalog::CATALOG.iter().position(|c| c == *r));
    }
    let mut cases = Vec::new();
    for subject in &subjects {
        for backend in subject.backends() {
            if !options.backends.is_empty() && !options.backends.contains(&backend) {
                continue;
            }
            if let Services::External(external) = &options.services
                && !external.has(backend)
            {
                continue;
            }
            for requirement in &requirements {
                cases.push(Case {
                    requirement,
                    subject: subject.clone(),
                    backend,
                });
            }
        }
    }
    if cases.is_empty() {
        return Err(InputError::NothingToRun(options.backends.clone()));
    }
    Ok(cases)
}

/// The flags' values, checked before anything else.
fn check_flags(options: &RunOptions) -> Result<(), InputError> {
    if options.jobs == 0 {
        return Err(InputError::Flag {
            flag: "--jobs",
            value: "0".into(),
            problem: "at least one case must run at a time; use --jobs 1 or more",
        });
    }
    if options.repeat == 0 {
        return Err(InputError::Flag {
            flag: "--repeat",
            value: "0".into(),
            problem: "each case runs at least once; use --repeat 1 or more",
        });
    }
    if options.timeout.is_some_and(|t| t.is_zero()) {
        return Err(InputError::Flag {
            flag: "--timeout",
            value: "0s".into(),
            problem: "no case finishes in no time; use e.g. --timeout 90s",
        });
    }
    Ok(())
}

/// Checks that the report directory is (or can be created as) a writable directory; creates it
/// unless `dry_run`, where it only checks that nothing in the way is a file.
pub fn check_report_dir(dir: &Path, dry_run: bool) -> Result<(), InputError> {
    if dry_run {
        let mut existing = Some(dir);
        while let Some(path) = existing {
            if path.exists() {
                if !path.is_dir() {
                    return Err(InputError::ReportDir(
                        harness::report::Error::NotADirectory {
                            path: path.to_owned(),
                        },
                    ));
                }
                return Ok(());
            }
            existing = path.parent();
        }
        return Ok(());
    }
    RunReport::prepare_dir(dir).map_err(InputError::ReportDir)
}

/// Parses a `--timeout`: `90`, `90s`, `5m`, `1m30s`, `1h`, `500ms` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a duration; write e.g. 90s, 5m, 1m30s or 500ms (a bare number is seconds)"
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let step = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total += step;
        rest = &rest[unit..];
    }
    Ok(total)
}

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
    // moment of the host does not hit every repeat; results come back in plan order.
    let runs = (1..=repeat).flat_map(|iteration| {
        cases.iter().enumerate().map(move |(i, case)| {
            let index = i * repeat as usize + (iteration as usize - 1);
            (index, case.clone(), iteration)
        })
    });
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

/// The result of a run that never started because the run was stopped.
pub(crate) fn not_started(case: &Case, iteration: u32, reason: &StopReason) -> ScenarioResult {
    let mut result = result_of(
        case,
        Outcome::Interrupted,
        Duration::ZERO,
        format!("not started: the run was stopped ({reason})"),
    );
    result.iteration = iteration;
    result
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
                "phasecheck: error: cannot make the run's directory under {} (TMPDIR): {e}",
                std::env::temp_dir().display()
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

/// Outcome of a finished case as a report entry.
pub(crate) fn result_of(
    case: &Case,
    outcome: Outcome,
    duration: Duration,
    message: String,
) -> ScenarioResult {
    ScenarioResult::new(
        case.requirement.id,
        case.requirement.name,
        case.subject.name(),
        case.backend.as_str(),
        outcome,
        duration,
        message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go_and_systemd_write_them() {
        let cases = [
            ("90", 90_000),
            ("90s", 90_000),
            ("5m", 300_000),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("500ms", 500),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "s", "5 m", "1.5s", "5d", "-1s"] {
            let message = parse_duration(bad).unwrap_err();
            assert!(message.contains("90s, 5m, 1m30s"), "{bad}: {message}");
        }
    }

    #[test]
    fn the_default_timeouts_are_the_ones_help_names() {
        assert_eq!(
            RuntimeKind::Local.default_timeouts().case,
            Duration::from_secs(120)
        );
        assert_eq!(
            RuntimeKind::Kind.default_timeouts().case,
            Duration::from_secs(300)
        );
    }
}

//! Plans and runs scenario × subject × backend cases in parallel, each in its own namespace, and
//! turns them into a [`RunReport`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::StreamExt;
use harness::report::{Outcome, RunReport, ScenarioResult};
use harness::runtime::Runtime;
use harness::services::containers::ContainerSettings;
use harness::services::external::ExternalServices;
use harness::subject::{Backend, Subject};

use crate::catalog::{self, CATALOG_VERSION, Requirement};
use crate::cluster::ClusterRun;
use crate::environment::Environment;

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
    /// Cases run at once.
    pub jobs: usize,
    /// Where reports go.
    pub report_dir: PathBuf,
    /// Keep a failed case's namespace.
    pub keep_on_failure: bool,
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
            report_dir: PathBuf::from("target/phasecheck"),
            keep_on_failure: false,
            services: Services::Embedded,
            phasecheck: None,
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

/// Expands options into cases, checking every input first.
pub fn plan(options: &RunOptions) -> Result<Vec<Case>, InputError> {
    let paths = if options.subjects.is_empty() {
        reference_subjects()
    } else {
        options.subjects.clone()
    };
    let subjects = paths
        .iter()
        .map(|p| Subject::load(p).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
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

/// Runs `cases` with at most `jobs` at once, printing a line as each ends.
pub async fn execute<R: Runtime>(
    env: Arc<Environment<R>>,
    cases: Vec<Case>,
    jobs: usize,
) -> Vec<ScenarioResult> {
    let total = cases.len();
    let done = Arc::new(AtomicUsize::new(0));
    let width = total.to_string().len();
    eprintln!(
        "phasecheck: running {total} scenario(s), {jobs} at a time, on the {} runtime",
        env.runtime_name()
    );
    let mut results: Vec<(usize, ScenarioResult)> =
        futures::stream::iter(cases.into_iter().enumerate())
            .map(|(index, case)| {
                let env = env.clone();
                let done = done.clone();
                async move {
                    let result = env.run_case(&case).await;
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    eprintln!(
                        "[{n:>width$}/{total}] {:<7} {:<6} {:<22} {:<3} {:<7} {:>5.1}s {}",
                        result.outcome.as_str(),
                        result.id,
                        result.subject,
                        result.backend,
                        result.name,
                        result.duration_ms as f64 / 1000.0,
                        result.message.lines().next().unwrap_or("")
                    );
                    (index, result)
                }
            })
            .buffer_unordered(jobs.max(1))
            .collect()
            .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, r)| r).collect()
}

/// How a run ended before its report.
enum Stopped {
    /// Bad input or an unusable runtime (exit 2).
    Input(InputError),
    /// Ctrl-C (exit 130).
    Interrupted,
}

/// Runs every case of `options` on the runtime it names; `interrupt` ends the run early.
async fn run_cases(
    options: &RunOptions,
    cases: Vec<Case>,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<(Vec<ScenarioResult>, &'static str, Option<String>), Stopped> {
    if options.runtime == RuntimeKind::Local {
        let env = Arc::new(
            Environment::local(options, &cases)
                .await
                .map_err(Stopped::Input)?,
        );
        let results = until_interrupted(execute(env.clone(), cases, options.jobs), interrupt).await;
        env.shutdown().await;
        return results.map(|r| (r, env.runtime_name(), env.isolation_note()));
    }
    let cluster = ClusterRun::start(options, &cases)
        .await
        .map_err(Stopped::Input)?;
    let results =
        until_interrupted(execute(cluster.env.clone(), cases, options.jobs), interrupt).await;
    let name = cluster.env.runtime_name();
    let finished = cluster.finish().await;
    let mut results = results?;
    if let Err(e) = finished {
        // NB: a cleanup that failed fails the run: it leaves cluster state behind.
        results.push(ScenarioResult {
            id: "CLEANUP".into(),
            name: "cluster teardown".into(),
            subject: String::new(),
            backend: String::new(),
            outcome: Outcome::Failed,
            duration_ms: 0,
            message: e,
        });
    }
    Ok((results, name, None))
}

async fn until_interrupted<T>(
    work: impl std::future::Future<Output = T>,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<T, Stopped> {
    tokio::select! {
        done = work => Ok(done),
        _ = interrupt => Err(Stopped::Interrupted),
    }
}

/// The `phasecheck run` command: plan, run, report; returns the process exit code.
pub async fn run_cli(options: RunOptions) -> ExitCode {
    let started = Instant::now();
    let cases = match plan(&options) {
        Ok(cases) => cases,
        Err(e) => {
            eprintln!("phasecheck: error: {e}");
            return ExitCode::from(2);
        }
    };
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("phasecheck: interrupted; stopping every pod and service of this run");
    };
    let (results, runtime, isolation) = match run_cases(&options, cases, interrupt).await {
        Ok(done) => done,
        Err(Stopped::Input(e)) => {
            eprintln!("phasecheck: error: {e}");
            return ExitCode::from(2);
        }
        Err(Stopped::Interrupted) => return ExitCode::from(130),
    };
    let report = RunReport {
        catalog: CATALOG_VERSION.to_owned(),
        runtime: runtime.to_owned(),
        isolation,
        wall_ms: started.elapsed().as_millis() as u64,
        scenarios: results,
    };
    println!("\n{}", report.summary_table());
    match report.write(&options.report_dir) {
        Ok((json, junit)) => println!("reports: {} and {}", json.display(), junit.display()),
        Err(e) => {
            eprintln!("phasecheck: error: {e}");
            return ExitCode::from(2);
        }
    }
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Convenience for tests: runs `options` and returns the report without writing files.
pub async fn run_report(options: &RunOptions) -> Result<RunReport, InputError> {
    let started = Instant::now();
    let cases = plan(options)?;
    let (results, runtime, isolation) =
        match run_cases(options, cases, std::future::pending()).await {
            Ok(done) => done,
            Err(Stopped::Input(e)) => return Err(e),
            Err(Stopped::Interrupted) => unreachable!("a pending future never interrupts"),
        };
    Ok(RunReport {
        catalog: CATALOG_VERSION.to_owned(),
        runtime: runtime.to_owned(),
        isolation,
        wall_ms: started.elapsed().as_millis() as u64,
        scenarios: results,
    })
}

/// Outcome of a finished case as a report entry.
pub(crate) fn result_of(
    case: &Case,
    outcome: Outcome,
    duration: std::time::Duration,
    message: String,
) -> ScenarioResult {
    ScenarioResult {
        id: case.requirement.id.to_owned(),
        name: case.requirement.name.to_owned(),
        subject: case.subject.name().to_owned(),
        backend: case.backend.as_str().to_owned(),
        outcome,
        duration_ms: duration.as_millis() as u64,
        message,
    }
}

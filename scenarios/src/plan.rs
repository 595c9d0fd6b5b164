//! What `phasecheck run` is asked to do ([`RunOptions`]) and the cases it expands into
//! ([`plan`]): every flag, profile, manifest and the report directory are checked here, before the
//! first case starts; a bad one is an [`InputError`] (exit 2). Also each runtime's
//! [`Timeouts`] and a case's entry in the report (`result_of`, `not_started`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harness::report::RunReport;
use harness::report::{Outcome, ScenarioResult};
use harness::services::containers::{ContainerSettings, ObjectStoreImage};
use harness::services::external::ExternalServices;
use harness::subject::{Backend, Subject};

use crate::catalog::{self, Requirement};
use crate::stop::StopReason;

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

/// Parallel cases by default: scenarios mostly wait on schedules and processes, not on the CPU
/// (on 2 cores the full catalog took 50 s with 16 at a time and about 31 s with 32; more gains
/// little once the cores are busy and slows pod starts towards the schedule lead).
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 16).clamp(16, 64)
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

pub use harness::duration::parse_duration;

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

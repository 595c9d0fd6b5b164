//! What every case of one run shares: the runtime with every subject's images mapped, and the
//! per-case life cycle (namespace, timeout, artefacts, cleanup).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::report::{Outcome, ScenarioResult};
use harness::runtime::local::{ImageMap, LocalRuntime};
use harness::subject::ImageSource;

use crate::checks;
use crate::context::Scenario;
use crate::outcome::Failure;
use crate::runner::{Case, InputError, RunOptions, RuntimeKind, result_of};

/// The longest one case may take before it is failed.
const CASE_TIMEOUT: Duration = Duration::from_secs(90);

/// What every case of one run shares.
pub struct Environment {
    pub(crate) runtime: LocalRuntime,
    keep_on_failure: bool,
    pub(crate) report_dir: PathBuf,
}

impl Environment {
    /// Starts the runtime the options ask for, with every subject's images mapped.
    pub async fn start(options: &RunOptions, cases: &[Case]) -> Result<Self, InputError> {
        if options.runtime != RuntimeKind::Local {
            return Err(InputError::Runtime(runtime_unavailable(options.runtime)));
        }
        let phasepod = match &options.phasepod {
            Some(argv) => argv.clone(),
            None => default_phasepod_command().map_err(InputError::Runtime)?,
        };
        let mut images = ImageMap::default();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for case in cases {
            case.subject.check_images_mapped()?;
            for (image, source) in &case.subject.profile.images {
                let argv = match source {
                    ImageSource::Builtin(_) => phasepod.clone(),
                    ImageSource::Command(argv) => argv.clone(),
                };
                if let Some(previous) = seen.get(image)
                    && *previous != argv
                {
                    return Err(InputError::Runtime(format!(
                        "{}: field `images.{image}`: mapped differently by another subject ({previous:?} vs {argv:?})",
                        case.subject.path.display()
                    )));
                }
                seen.insert(image.clone(), argv.clone());
                images = images.with_image(image, argv.clone(), Vec::<String>::new());
            }
        }
        let runtime = LocalRuntime::builder()
            .with_images(images)
            .with_backoff(Duration::from_millis(200), Duration::from_secs(2))
            .build()
            .map_err(|e| InputError::Runtime(e.to_string()))?;
        Ok(Environment {
            runtime,
            keep_on_failure: options.keep_on_failure,
            report_dir: options.report_dir.clone(),
        })
    }

    /// The runtime's name for reports.
    pub fn runtime_name(&self) -> &'static str {
        "local"
    }

    /// Stops every pod and process of the run.
    pub async fn shutdown(&self) {
        self.runtime.shutdown().await;
    }

    /// Runs one case in its own namespace and cleans up after it.
    pub async fn run_case(&self, case: &Case) -> ScenarioResult {
        let started = Instant::now();
        let ns = namespace_for(case);
        let body = async {
            let mut scenario = Scenario::open(self, case, ns.clone()).await?;
            let result = checks::run(case.requirement.id, &mut scenario).await;
            if result.is_err() {
                scenario.save_artefacts().await;
            }
            // NB: reports outlive the run; no credential may reach them.
            result.map_err(|Failure(message)| Failure(scenario.redact(&message)))
        };
        let result = match tokio::time::timeout(CASE_TIMEOUT, body).await {
            Ok(result) => result,
            Err(_) => Err(Failure(format!("did not finish within {CASE_TIMEOUT:?}"))),
        };
        let (outcome, mut message) = match result {
            Ok(()) => (Outcome::Passed, String::new()),
            Err(Failure(message)) => (Outcome::Failed, message),
        };
        let keep = outcome == Outcome::Failed && self.keep_on_failure;
        if keep {
            self.runtime.stop_namespace(&ns).await;
            message.push_str(&format!(
                "\n(namespace {ns} kept at {})",
                self.runtime.namespace_dir(&ns).display()
            ));
        } else if let Err(e) = self.runtime.delete_namespace(&ns).await {
            message.push_str(&format!("\ncleanup of namespace {ns} failed: {e}"));
            return result_of(case, Outcome::Failed, started.elapsed(), message);
        }
        result_of(case, outcome, started.elapsed(), message)
    }
}

/// `phasecheck phasepod …` when running as the phasecheck binary.
fn default_phasepod_command() -> Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    if exe.file_stem().and_then(|s| s.to_str()) == Some("phasecheck") {
        Ok(vec![exe.to_string_lossy().into_owned(), "phasepod".into()])
    } else {
        Err(format!(
            "{} is not the phasecheck binary: set RunOptions::phasepod to the command running phasepod",
            exe.display()
        ))
    }
}

fn runtime_unavailable(kind: RuntimeKind) -> String {
    let (tool, install) = match kind {
        RuntimeKind::Kind => (
            "kind",
            "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) and Docker",
        ),
        RuntimeKind::Minikube => (
            "minikube",
            "install minikube (https://minikube.sigs.k8s.io/docs/start/)",
        ),
        RuntimeKind::Existing => ("kubectl", "point KUBECONFIG at a cluster"),
        RuntimeKind::Local => unreachable!("local is always available"),
    };
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if found || kind == RuntimeKind::Existing {
        format!(
            "--runtime {}: the real-cluster runtimes are not part of this build yet (issue 4); use --runtime local",
            tool
        )
    } else {
        format!("--runtime {tool}: `{tool}` is not on PATH: {install}")
    }
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

//! What every case of one run shares: the runtime with every subject's images mapped, and the
//! per-case life cycle (namespace, timeout, artefacts, cleanup).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::report::{Outcome, ScenarioResult};
use harness::runtime::Runtime;
use harness::runtime::local::{ImageMap, Isolation, LocalRuntime};
use harness::services::containers::ContainerSettings;
use harness::services::external::ExternalServices;
use harness::subject::ImageSource;

use crate::catalog::NEED_STORE_OUTAGE;
use crate::checks;
use crate::context::Scenario;
use crate::outcome::Failure;
use crate::runner::{Case, InputError, RunOptions, Services, result_of};

/// How long cases and their pods may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// The longest one case may take before it is failed.
    pub case: Duration,
    /// How long a pod may take to become ready (or to appear).
    pub ready: Duration,
}

impl Timeouts {
    /// Pods as host processes start in milliseconds.
    pub const LOCAL: Timeouts = Timeouts {
        case: Duration::from_secs(90),
        ready: Duration::from_secs(30),
    };
    /// A cluster schedules, mounts and starts containers, and helper pods come and go.
    pub const CLUSTER: Timeouts = Timeouts {
        case: Duration::from_secs(300),
        ready: Duration::from_secs(120),
    };
}

/// What every case of one run shares.
pub struct Environment<R> {
    pub(crate) runtime: R,
    runtime_name: &'static str,
    keep_on_failure: bool,
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
    /// Namespaces of cases under way: what an interrupted run must still remove.
    live: std::sync::Mutex<std::collections::BTreeSet<String>>,
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
            timeouts: Timeouts::LOCAL,
            live: Default::default(),
            isolation: None,
        }
    }

    /// Stores listen on `bind` and workloads reach them through a Service per namespace.
    pub fn with_stores_behind_service(mut self, bind: IpAddr) -> Self {
        self.store_bind = bind;
        self.store_via_service = true;
        self
    }

    /// Cases and pods may take this long.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
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
                eprintln!("phasecheck: error: deleting namespace {ns} of an unfinished case: {e}");
            }
        }
        self.runtime.shutdown().await;
    }

    /// Runs one case in its own namespace and cleans up after it.
    pub async fn run_case(&self, case: &Case) -> ScenarioResult {
        let started = Instant::now();
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
        if self.external.is_some() && NEED_STORE_OUTAGE.contains(&case.requirement.id) {
            return result_of(
                case,
                Outcome::Skipped,
                started.elapsed(),
                "external stores have no outage switch, and this scenario takes the store down"
                    .into(),
            );
        }
        let ns = namespace_for(case);
        self.live.lock().expect("not poisoned").insert(ns.clone());
        let result = self.run_case_in(case, &ns, started).await;
        self.live.lock().expect("not poisoned").remove(&ns);
        result
    }

    async fn run_case_in(&self, case: &Case, ns: &str, started: Instant) -> ScenarioResult {
        let ns = ns.to_owned();
        let body = async {
            let mut scenario = match Scenario::open(self, case, ns.clone()).await {
                Ok(scenario) => scenario,
                Err(failure) => return (Err(failure), None),
            };
            let result = checks::run(case.requirement.id, &mut scenario).await;
            if result.is_err() {
                scenario.save_artefacts().await;
            }
            // NB: reports outlive the run; no credential may reach them.
            let result = result.map_err(|Failure(message)| Failure(scenario.redact(&message)));
            (result, Some(scenario.into_store()))
        };
        let limit = self.timeouts.case;
        let (result, store) = match tokio::time::timeout(limit, body).await {
            Ok(done) => done,
            Err(_) => (
                Err(Failure(format!("did not finish within {limit:?}"))),
                None,
            ),
        };
        let (outcome, mut message) = match result {
            Ok(()) => (Outcome::Passed, String::new()),
            Err(Failure(message)) => (Outcome::Failed, message),
        };
        let keep = outcome == Outcome::Failed && self.keep_on_failure;
        if keep {
            let note = self.runtime.keep_namespace(&ns).await;
            message.push_str(&format!("\n({note})"));
        } else if let Err(e) = self.runtime.delete_namespace(&ns).await {
            message.push_str(&format!("\ncleanup of namespace {ns} failed: {e}"));
            return result_of(case, Outcome::Failed, started.elapsed(), message);
        } else if let Some(store) = store
            && let Err(e) = store.remove_scope().await
        {
            // NB: only after the pods are gone, so no backup lands after the removal.
            message.push_str(&format!("\ncleanup of the external store failed: {e}"));
            return result_of(case, Outcome::Failed, started.elapsed(), message);
        }
        result_of(case, outcome, started.elapsed(), message)
    }
}

impl Environment<LocalRuntime> {
    /// The embedded runtime with every subject's images mapped to host commands.
    pub async fn local(options: &RunOptions, cases: &[Case]) -> Result<Self, InputError> {
        let phasecheck = match &options.phasecheck {
            Some(path) => path.clone(),
            None => this_phasecheck().map_err(InputError::Runtime)?,
        };
        let mut images = ImageMap::default();
        let mut seen: BTreeMap<String, ImageSource> = BTreeMap::new();
        for case in cases {
            case.subject.check_images_mapped()?;
            for (image, source) in &case.subject.profile.images {
                if let Some(previous) = seen.get(image)
                    && previous != source
                {
                    return Err(InputError::Runtime(format!(
                        "{}: field `images.{image}`: mapped differently by another subject ({previous:?} vs {source:?})",
                        case.subject.path.display()
                    )));
                }
                seen.insert(image.clone(), source.clone());
                images = match source {
                    // NB: called `/phasepod`, this program runs as phasepod.
                    ImageSource::Builtin(_) => images.with_program(
                        image,
                        &phasecheck,
                        harness::image::BINARY_PATH,
                        Vec::<String>::new(),
                    ),
                    ImageSource::Command(argv) => {
                        images.with_image(image, argv.clone(), Vec::<String>::new())
                    }
                };
            }
        }
        let runtime = LocalRuntime::builder()
            .with_images(images)
            .with_sandbox_launcher([phasecheck.into_os_string(), "sandbox".into()])
            .with_backoff(Duration::from_millis(200), Duration::from_secs(2))
            .build()
            .map_err(|e| InputError::Runtime(e.to_string()))?;
        let isolation = runtime.isolation().clone();
        if let Some(shortfall) = isolation.shortfall() {
            eprintln!("phasecheck: WARNING: the local runtime runs with {shortfall}");
        }
        let env = Environment::new(runtime, "local", options).with_isolation(isolation);
        env.check_store_images(cases).await?;
        Ok(env)
    }
}

/// This program, which must be the phasecheck binary.
fn this_phasecheck() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    if exe.file_stem().and_then(|s| s.to_str()) == Some("phasecheck") {
        Ok(exe)
    } else {
        Err(format!(
            "{} is not the phasecheck binary: set RunOptions::phasecheck to it",
            exe.display()
        ))
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

//! What every case of one run shares: the runtime with every subject's images mapped, the
//! stores' settings and the timeouts. Each case's life cycle on it is in [`crate::lifecycle`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use harness::runtime::Runtime;
use harness::runtime::local::Isolation;
use harness::services::containers::ContainerSettings;
use harness::services::external::ExternalServices;

use crate::note;
use crate::pacing::Pacing;
use crate::plan::{Case, InputError, RunOptions, Services, Timeouts};

mod install;
mod local;

/// How long deleting the namespaces of unfinished cases may take after a second signal.
const ABORT_BUDGET: Duration = Duration::from_secs(3);

/// What every case of one run shares.
pub struct Environment<R> {
    pub(crate) runtime: R,
    pub(crate) runtime_name: &'static str,
    pub(crate) keep_on_failure: bool,
    /// Unclaimed requirements count like claimed ones (`--strict`).
    pub(crate) strict: bool,
    pub(crate) report_dir: PathBuf,
    /// Where each case's backup store listens.
    pub(crate) store_bind: IpAddr,
    /// Whether workloads reach the store through a Service in their namespace (clusters) or
    /// at its address (the local runtime, whose pods are host processes).
    pub(crate) store_via_service: bool,
    /// Whether the runtime runs native sidecars (init containers with `restartPolicy: Always`).
    pub(crate) native_sidecars: bool,
    /// Someone else's stores, shared by every case (each in its own prefix or branch).
    pub(crate) external: Option<ExternalServices>,
    /// Store containers, one per case, instead of embedded stores.
    pub(crate) containers: Option<ContainerSettings>,
    /// How long cases and pods may take.
    pub(crate) timeouts: Timeouts,
    /// Every other wait length and fault size on this runtime.
    pub(crate) pacing: Pacing,
    /// `--timeout`: the case timeout whatever the runtime's default.
    pub(crate) case_timeout: Option<Duration>,
    /// Namespaces of cases under way: what an interrupted run must still remove.
    pub(crate) live: Mutex<std::collections::BTreeSet<String>>,
    /// Where failed cases' namespaces were kept.
    pub(crate) kept: Mutex<Vec<String>>,
    /// How the local runtime isolates containers; `None` on a cluster.
    pub(crate) isolation: Option<Isolation>,
    /// Each subject's install, done once (by the first of its cases).
    pub(crate) installs: Mutex<std::collections::BTreeMap<String, install::InstallCell>>,
    /// What the installs put where, for removing it at the end.
    pub(crate) installed: Mutex<Vec<install::Installed>>,
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
            pacing: Pacing::LOCAL,
            case_timeout: options.timeout,
            live: Default::default(),
            kept: Default::default(),
            isolation: None,
            installs: Default::default(),
            installed: Default::default(),
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

    /// Scenarios pace their waits and size their faults so on this runtime.
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
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
        self.uninstall().await;
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
        if self.runtime_name != "local" {
            // NB: a cluster must not keep a webhook whose service is about to be gone.
            let _ = tokio::time::timeout(ABORT_BUDGET, self.uninstall()).await;
        }
    }
}

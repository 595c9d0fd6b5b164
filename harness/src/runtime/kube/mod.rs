//! A real cluster as a [`Runtime`](crate::runtime::Runtime), through kube-rs.
//!
//! [`KubeRuntime`] talks to any API server a `kube::Client` reaches: a kind or minikube cluster,
//! or an existing kubeconfig context. Every scenario gets its own namespace (labelled
//! `app.kubernetes.io/managed-by=phasecheck`); manifests are applied with server-side apply
//! (field manager `phasecheck`); every wait is a watch with an explicit timeout.
//!
//! Each runtime trait is implemented in the module of its concern: `namespace.rs`
//! ([`Namespaces`](crate::runtime::Namespaces)), `pods.rs` ([`Pods`](crate::runtime::Pods)),
//! `logs.rs` ([`Logs`](crate::runtime::Logs)) and `helpers.rs`
//! ([`Containers`](crate::runtime::Containers), [`Claims`](crate::runtime::Claims)).
//!
//! # Fidelity limits (read before trusting a result)
//!
//! - **Timelines are reconstructed** from `PodStatus`, which keeps only the current and the last
//!   terminated instance of each container: see [`status`] for what is lost and how to notice.
//! - **`logs` shows at most two runs**: the API serves the current and the previous instance
//!   (`previous=true`) only.
//! - **Claims and processes are reached through [`helpers`] pods** running the reference image:
//!   a claim helper mounting the claim (reads, replaces and counts files), and a `hostPID` node
//!   helper (root, `KILL`, `SYS_PTRACE` and `DAC_READ_SEARCH` only) that SIGKILLs a container's processes (`kill_container`) or reads its
//!   main process's environment (`process_env`). A namespace enforcing the `baseline` Pod Security
//!   level cannot host the node helper.
//! - **Writing a claim while its workload runs** races with the workload; scenarios stop the
//!   workload first, as the catalog's faults are defined.

use std::sync::Arc;
use std::time::Duration;

use ::kube::Client;
use ::kube::config::{Config, KubeConfigOptions};

use crate::runtime::{Error, Result};

mod apply;
mod artefacts;
mod exec;
mod forward;
pub mod helpers;
mod logs;
mod namespace;
mod pods;
pub mod status;
pub mod version;
mod watch;

pub use exec::ExecBytes;
pub use status::timeline_from_pod;

/// The field manager server-side apply records for the harness.
pub const FIELD_MANAGER: &str = "phasecheck";

/// The label every namespace the harness creates carries, so strays can be found and removed.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "phasecheck");

/// How long the runtime's own waits (pod and namespace deletion, scaling) take at most.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(180);

/// A [`Runtime`](crate::runtime::Runtime) backed by a real Kubernetes cluster.
#[derive(Clone)]
pub struct KubeRuntime {
    client: Client,
    field_manager: Arc<str>,
    wait_timeout: Duration,
    tool_image: Arc<str>,
    forwarders: Arc<std::sync::Mutex<ForwarderMap>>,
}

type ForwarderMap = std::collections::HashMap<(String, String, u16), forward::Forwarder>;

impl std::fmt::Debug for KubeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeRuntime")
            .field("default_namespace", &self.client.default_namespace())
            .field("field_manager", &self.field_manager)
            .field("wait_timeout", &self.wait_timeout)
            .field("tool_image", &self.tool_image)
            .finish_non_exhaustive()
    }
}

impl KubeRuntime {
    /// A runtime using `client` (any `kube::Client`, including one over a mock service).
    pub fn new(client: Client) -> Self {
        KubeRuntime {
            client,
            field_manager: FIELD_MANAGER.into(),
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            tool_image: crate::image::TOOLS_IMAGE.into(),
            forwarders: Arc::default(),
        }
    }

    /// A runtime for `context` of the kubeconfig (`$KUBECONFIG` or `~/.kube/config`); `None`
    /// uses the current context. Installs a rustls crypto provider first.
    pub async fn from_kubeconfig(context: Option<&str>) -> Result<Self> {
        install_crypto_provider();
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let config =
            Config::from_kubeconfig(&options)
                .await
                .map_err(|source| Error::Kubeconfig {
                    context: context.map(str::to_owned),
                    source,
                })?;
        let client = Client::try_from(config).map_err(|source| Error::Client { source })?;
        Ok(Self::new(client))
    }

    /// Records applied fields under `manager` instead of [`FIELD_MANAGER`].
    pub fn with_field_manager(mut self, manager: impl Into<String>) -> Self {
        self.field_manager = manager.into().into();
        self
    }

    /// Bounds the runtime's own waits (deleting pods and namespaces, scaling); default
    /// [`DEFAULT_WAIT_TIMEOUT`].
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The image [`helpers`] pods run (it must contain `/phasecheck-tools`); default
    /// [`TOOLS_IMAGE`](crate::image::TOOLS_IMAGE), loaded into the cluster by the harness.
    pub fn with_tool_image(mut self, image: impl Into<String>) -> Self {
        self.tool_image = image.into().into();
        self
    }

    /// The client, for what the trait does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Installs rustls' ring crypto provider as the process default, unless one is installed.
///
/// NB: with both ring and aws-lc-rs in the dependency tree rustls cannot pick a provider by
/// itself, and building a `kube::Client` for an https endpoint panics. Safe to call repeatedly.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // NB: losing a race to another installer is fine; either provider works.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Whether the API said "not found".
fn is_not_found(err: &::kube::Error) -> bool {
    matches!(err, ::kube::Error::Api(status) if status.is_not_found())
}

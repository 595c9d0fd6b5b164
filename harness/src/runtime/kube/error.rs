//! The cluster runtime's errors.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the cluster runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read, or has no such context.
    #[error("cannot load kubeconfig (context {}): {source}", context.as_deref().unwrap_or("current"))]
    Kubeconfig {
        /// The context asked for; `None` for the current one.
        context: Option<String>,
        /// What kube said.
        #[source]
        source: ::kube::config::KubeconfigError,
    },
    /// A client could not be built from the configuration (TLS, proxy, auth plugin).
    #[error("cannot build a Kubernetes client: {source}")]
    Client {
        /// What kube said.
        #[source]
        source: ::kube::Error,
    },
    /// An API request failed (the API server refused it or could not be reached).
    #[error("{what}: {source}")]
    Api {
        /// What the runtime was doing, e.g. `apply Deployment phasepod in ns-1`.
        what: String,
        /// The request's error, with the server's `Status` when there is one.
        #[source]
        source: ::kube::Error,
    },
    /// A watch failed.
    #[error("{what}: watch failed: {source}")]
    Watch {
        /// What was being watched.
        what: String,
        /// The watcher's error.
        #[source]
        source: ::kube::runtime::watcher::Error,
    },
    /// The namespace exists already.
    #[error("namespace {ns} already exists")]
    NamespaceExists {
        /// The namespace.
        ns: String,
    },
    /// The namespace does not exist.
    #[error("namespace {ns} does not exist")]
    NoNamespace {
        /// The namespace.
        ns: String,
    },
    /// No pod of that name.
    #[error("no pod {pod} in namespace {ns}")]
    NoPod {
        /// The namespace.
        ns: String,
        /// The pod.
        pod: String,
    },
    /// The pod has no container of that name.
    #[error("pod {ns}/{pod} has no container {container} (containers: {})", known.join(", "))]
    NoContainer {
        /// The namespace.
        ns: String,
        /// The pod.
        pod: String,
        /// The container asked for.
        container: String,
        /// The pod's containers.
        known: Vec<String>,
    },
    /// No Deployment or StatefulSet of that name.
    #[error("no Deployment or StatefulSet {name} in namespace {ns}")]
    NoWorkload {
        /// The namespace.
        ns: String,
        /// The name.
        name: String,
    },
    /// An object cannot be sent as it is.
    #[error("{object}: {problem}")]
    Invalid {
        /// `Kind/name`.
        object: String,
        /// What is wrong.
        problem: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {timeout:?} waiting for {what}\n{state}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
        /// The state when time ran out (timelines, namespace conditions).
        state: String,
    },
    /// A command run in a container could not be run or did not report how it ended.
    #[error("exec {argv:?} in {ns}/{pod} container {container}: {problem}")]
    Exec {
        /// The namespace.
        ns: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The command.
        argv: Vec<String>,
        /// What went wrong (e.g. `executable file not found`: scratch images have no shell).
        problem: String,
    },
    /// The operation has no sound implementation against a real cluster (yet).
    #[error("{operation} is not supported by the cluster runtime: {reason}")]
    Unsupported {
        /// The operation, e.g. `kill_container`.
        operation: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// Writing failure artefacts failed.
    #[error("{what} ({}): {source}", path.display())]
    Io {
        /// What the runtime was doing.
        what: String,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Api`] for `what`.
    pub(super) fn api(what: impl Into<String>) -> impl FnOnce(::kube::Error) -> Self {
        let what = what.into();
        move |source| Error::Api { what, source }
    }
}

/// Whether `err` is the API server's 404.
pub(super) fn is_not_found(err: &::kube::Error) -> bool {
    matches!(err, ::kube::Error::Api(status) if status.is_not_found())
}

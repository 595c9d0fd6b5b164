//! The local runtime's errors.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the local runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace does not exist.
    #[error("namespace {ns} does not exist")]
    NoNamespace {
        /// The namespace.
        ns: String,
    },
    /// The namespace exists already.
    #[error("namespace {ns} already exists")]
    NamespaceExists {
        /// The namespace.
        ns: String,
    },
    /// A name cannot be used (not a DNS label/subdomain).
    #[error("`{name}` is not a valid {what} name: use lower-case letters, digits and `-`")]
    BadName {
        /// What the name is for.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// No pod of that name.
    #[error("no pod {pod} in namespace {ns} (pods: {})", known.join(", "))]
    NoPod {
        /// The namespace.
        ns: String,
        /// The pod.
        pod: String,
        /// The pods there are.
        known: Vec<String>,
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
    /// The container has no running process.
    #[error("container {container} of pod {ns}/{pod} is not running")]
    NotRunning {
        /// The namespace.
        ns: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// A persistent volume claim is missing.
    #[error("{object}: persistentvolumeclaim {claim} not found (claims: {}); apply the PersistentVolumeClaim first", known.join(", "))]
    NoClaim {
        /// Who asked for it.
        object: String,
        /// The claim.
        claim: String,
        /// The claims there are.
        known: Vec<String>,
    },
    /// No Deployment or StatefulSet of that name.
    #[error("no Deployment or StatefulSet {name} in namespace {ns} (workloads: {})", known.join(", "))]
    NoWorkload {
        /// The namespace.
        ns: String,
        /// The name.
        name: String,
        /// The workloads there are.
        known: Vec<String>,
    },
    /// A container's image has no host command.
    #[error(
        "container `{container}` uses image `{image}`, which the local runtime cannot run: map it to a host command in the subject profile (`images: {{\"{image}\": {{command: [/path/to/program]}}}}`) or with `ImageMap::with_image`"
    )]
    UnmappedImage {
        /// The image reference.
        image: String,
        /// The container using it.
        container: String,
    },
    /// The runtime does not run objects of this kind.
    #[error(
        "{kind} {name}: the local runtime does not run this kind (it runs Pod, Deployment, StatefulSet, PersistentVolumeClaim, Secret, ConfigMap and Service)"
    )]
    Unsupported {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
    },
    /// The object uses a feature the runtime does not have.
    #[error("{object}: field `{field}` is not supported by the local runtime: {reason}")]
    UnsupportedField {
        /// `Kind name`.
        object: String,
        /// Dotted path of the field.
        field: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// The object is not valid (Kubernetes would reject it too, or the runtime cannot run it).
    #[error("{object}: {problem}")]
    Invalid {
        /// `Kind name`.
        object: String,
        /// What is wrong.
        problem: String,
    },
    /// A pod's spec cannot be changed.
    #[error("Pod {name}: a pod's spec cannot be changed; delete the pod first or use a Deployment")]
    Immutable {
        /// The pod.
        name: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {timeout:?} waiting for {what}\n{state}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
        /// The state when time ran out (timelines, log tails).
        state: String,
    },
    /// Every pod address is in use.
    #[error("no free pod address left in 127.10.0.0/16")]
    NoAddress,
    /// A file operation failed.
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
    /// A command could not be run in a container.
    #[error("cannot run {argv:?} in container {container}: {source}")]
    Exec {
        /// The command.
        argv: Vec<String>,
        /// The container.
        container: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime was shut down.
    #[error("the local runtime has been shut down")]
    ShutDown,
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

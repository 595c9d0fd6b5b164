//! The runtimes' one error: what both runtimes can report (a timeout, a missing pod) is one
//! variant, so a caller matches it the same way whichever runtime runs the pods; what only one
//! runtime can report says so in its documentation.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of a [`Runtime`](super::Runtime), local or cluster.
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
    /// No pod of that name.
    #[error("no pod {pod} in namespace {ns}{}", listed("pods", known))]
    NoPod {
        /// The namespace.
        ns: String,
        /// The pod asked for.
        pod: String,
        /// The pods there are (empty when the runtime did not look).
        known: Vec<String>,
    },
    /// The pod has no such container.
    #[error(
        "pod {ns}/{pod} has no container {container}{}",
        listed("containers", known)
    )]
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
    /// Admission refused to create a pod: a webhook denied it, or could not be called and its
    /// `failurePolicy` is `Fail`. The message is the API server's, naming the webhook.
    #[error("pod {pod} in namespace {ns} was not created: {message}")]
    Refused {
        /// The namespace.
        ns: String,
        /// The pod (or the workload whose pod it was to be).
        pod: String,
        /// Why, as the API server says it.
        message: String,
    },
    /// No Deployment or StatefulSet of that name.
    #[error(
        "no Deployment or StatefulSet {name} in namespace {ns}{}",
        listed("workloads", known)
    )]
    NoWorkload {
        /// The namespace.
        ns: String,
        /// The name asked for.
        name: String,
        /// The workloads there are (empty when the runtime did not look).
        known: Vec<String>,
    },
    /// The object is not valid (Kubernetes would reject it too, or the runtime cannot run it).
    #[error("{object}: {problem}")]
    Invalid {
        /// `Kind name`.
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
        /// The state when time ran out (timelines, log tails).
        state: String,
    },
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
    /// A command in a container could not be run or failed (on a cluster: the exec stream or
    /// the command's status).
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
        /// What went wrong.
        problem: String,
    },

    // Local runtime only.
    /// A name cannot be used (not a DNS label/subdomain). Local runtime only.
    #[error("`{name}` is not a valid {what} name: use lower-case letters, digits and `-`")]
    BadName {
        /// What the name is for.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The container is not running. Local runtime only.
    #[error("container {container} of pod {ns}/{pod} is not running")]
    NotRunning {
        /// The namespace.
        ns: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// A pod uses a claim that does not exist. Local runtime only.
    #[error(
        "{object}: persistentvolumeclaim {claim} not found{}; apply the PersistentVolumeClaim first",
        listed("claims", known)
    )]
    NoClaim {
        /// `Kind name` of the object using it.
        object: String,
        /// The claim.
        claim: String,
        /// The claims there are.
        known: Vec<String>,
    },
    /// A container's image has no host command. Local runtime only.
    #[error(
        "container `{container}` uses image `{image}`, which the local runtime cannot run: map it to a host command in the subject profile (`images: {{\"{image}\": {{command: [/path/to/program]}}}}`) or with `ImageMap::with_image`"
    )]
    UnmappedImage {
        /// The image.
        image: String,
        /// The container.
        container: String,
    },
    /// A kind of object the local runtime does not run.
    #[error(
        "{kind} {name}: the local runtime does not run this kind (it runs Pod, Deployment, StatefulSet, PersistentVolumeClaim, Secret, ConfigMap and Service)"
    )]
    UnsupportedKind {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
    },
    /// The object uses a feature the local runtime does not have.
    #[error("{object}: field `{field}` is not supported by the local runtime: {reason}")]
    UnsupportedField {
        /// `Kind name`.
        object: String,
        /// Dotted path of the field.
        field: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// A pod's spec cannot be changed. Local runtime only (a cluster's API says so itself).
    #[error("Pod {name}: a pod's spec cannot be changed; delete the pod first or use a Deployment")]
    Immutable {
        /// The pod.
        name: String,
    },
    /// Every pod address is in use. Local runtime only.
    #[error("no free pod address left in 127.10.0.0/16")]
    NoAddress,
    /// The local runtime was shut down.
    #[error("the local runtime has been shut down")]
    ShutDown,

    // Cluster runtime only.
    /// The kubeconfig could not be loaded.
    #[error("cannot load kubeconfig (context {}): {source}", context.as_deref().unwrap_or("current"))]
    Kubeconfig {
        /// The context asked for (`None`: the current one).
        context: Option<String>,
        /// Why.
        #[source]
        source: ::kube::config::KubeconfigError,
    },
    /// The client could not be built.
    #[error("cannot build a Kubernetes client: {source}")]
    Client {
        /// Why.
        #[source]
        source: ::kube::Error,
    },
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What the runtime was doing.
        what: String,
        /// The client's error.
        #[source]
        source: ::kube::Error,
    },
    /// A watch failed.
    #[error("{what}: watch failed: {source}")]
    Watch {
        /// What was watched.
        what: String,
        /// The watcher's error.
        #[source]
        source: ::kube::runtime::watcher::Error,
    },
    /// An operation the cluster runtime cannot do soundly.
    #[error("{operation} is not supported by the cluster runtime: {reason}")]
    UnsupportedOperation {
        /// The operation.
        operation: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
    },
}

/// `Result` with the runtimes' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A closure making an [`Error::Api`] for `what`.
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(::kube::Error) -> Self {
        let what = what.into();
        move |source| Error::Api { what, source }
    }
}

/// ` (label: a, b)`, or nothing when `known` is empty.
fn listed(label: &str, known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" ({label}: {})", known.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pod_lists_the_pods_there_are_only_when_the_runtime_looked() {
        let looked = Error::NoPod {
            ns: "n".into(),
            pod: "p".into(),
            known: vec!["a".into(), "b".into()],
        };
        assert_eq!(looked.to_string(), "no pod p in namespace n (pods: a, b)");
        let not_looked = Error::NoPod {
            ns: "n".into(),
            pod: "p".into(),
            known: vec![],
        };
        assert_eq!(not_looked.to_string(), "no pod p in namespace n");
    }
}

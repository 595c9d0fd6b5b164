//! Runtimes: where phased pods run.
//!
//! A runtime applies Kubernetes manifests into an isolated namespace and lets a scenario watch,
//! poke and inspect the pods it creates: their status, a [`timeline::Timeline`] of every
//! container run, logs, exec, killing containers, deleting pods and reaching the files behind a
//! persistent volume claim. [`Runtime`] is that contract; [`local::LocalRuntime`] is the embedded
//! implementation that runs pod specs as host processes. Runtimes backed by a real cluster
//! implement the same trait.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

mod error;
pub mod kube;
pub mod local;
mod namespaced;
pub mod objects;
pub mod timeline;

pub use error::{Error, Result};
pub use namespaced::Namespaced;

/// The runtime traits, for calling their methods on a concrete runtime:
/// `use harness::runtime::prelude::*;`.
pub mod prelude {
    pub use super::{Claims, Containers, Logs, Namespaces, Pods, Runtime};
}

/// A custom resource, by its manifest's `apiVersion`, `kind` and `metadata.name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomResource<'a> {
    /// `group/version`.
    pub api_version: &'a str,
    /// The kind.
    pub kind: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
}

impl std::fmt::Display for CustomResource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// What a runtime reports about one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.name`.
    pub name: String,
    /// `status.podIP`.
    pub ip: Ipv4Addr,
    /// Where the pod is in its life.
    pub phase: PodPhase,
    /// Whether every regular container runs and passes its readiness probe.
    pub ready: bool,
    /// `metadata.uid`: differs between two pods of the same name.
    pub uid: String,
}

/// A pod's phase, a little finer than Kubernetes' `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PodPhase {
    /// Accepted, nothing started yet (or waiting for a volume's Secret or ConfigMap).
    Pending,
    /// Init containers are running (Kubernetes says `Pending`, kubectl `Init:n/m`).
    Initializing,
    /// The regular containers have been started.
    Running,
    /// Every regular container terminated with exit 0 and will not be restarted.
    Succeeded,
    /// A container terminated with a failure and will not be restarted.
    Failed,
    /// Deletion was requested; containers are being stopped.
    Terminating,
}

impl PodPhase {
    /// The phase's name as Kubernetes and kubectl spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Initializing => "Initializing",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Terminating => "Terminating",
        }
    }
}

impl fmt::Display for PodPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of running a command in a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code (a signal `n` is `128 + n`).
    pub exit_code: i32,
    /// Standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

/// What scenarios need from a place that runs pods: its [`Namespaces`], [`Pods`], containers'
/// [`Logs`], running [`Containers`] and [`Claims`], each implemented directly by
/// [`local::LocalRuntime`] and [`kube::KubeRuntime`] in the module of that concern.
///
/// Meant for generic use (`fn f(rt: &impl Runtime)`), not `dyn`. Every future is `Send`, so a
/// scenario may spawn work that uses the runtime. Errors are the one [`Error`] of both runtimes.
pub trait Runtime: Namespaces + Pods + Logs + Containers + Claims {
    /// A handle on namespace `ns` whose methods take only pods and containers, like kube-rs's
    /// `Api::namespaced`.
    fn namespace(&self, ns: &str) -> Namespaced<'_, Self>
    where
        Self: Sized,
    {
        Namespaced::new(self, ns)
    }
}

impl<T: Namespaces + Pods + Logs + Containers + Claims> Runtime for T {}

/// Namespaces and the objects in them; the runtime's own end.
pub trait Namespaces: Send + Sync {
    /// Creates an empty namespace.
    fn create_namespace(&self, ns: &str) -> impl Future<Output = Result<()>> + Send;

    /// Creates or updates `objects` in `ns`. Everything is checked before anything changes.
    fn apply(
        &self,
        ns: &str,
        objects: Vec<objects::Object>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the cluster-scoped objects among `objects` (webhook configurations), applied
    /// earlier through [`Namespaces::apply`]; one that is gone already is no error.
    fn delete_cluster_objects(
        &self,
        objects: &[objects::Object],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stops the namespace's pods but keeps what a person needs to inspect a failure; returns
    /// where and how to look.
    fn keep_namespace(&self, ns: &str) -> impl Future<Output = String> + Send;

    /// Saves what only this runtime knows about a failed namespace (events, pod objects) under
    /// `dir`; best effort. Logs and timelines are saved by the caller through the other methods.
    fn save_runtime_artefacts(&self, ns: &str, dir: &Path) -> impl Future<Output = ()> + Send {
        let _ = (ns, dir);
        async {}
    }

    /// Deletes the namespace with everything in it, once its pods have stopped.
    fn delete_namespace(&self, ns: &str) -> impl Future<Output = Result<()>> + Send;

    /// Stops everything the runtime started.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;

    /// Stops what it can at once, synchronously and best effort, for a program that is about to
    /// exit without [`Namespaces::shutdown`] (a second interrupt). Nothing by default.
    fn abort(&self) {}
}

/// Pods: what they are, waiting for them, replacing and scaling them, reaching them.
pub trait Pods: Send + Sync {
    /// The pods in `ns`, oldest first.
    fn pods(&self, ns: &str) -> impl Future<Output = Result<Vec<PodInfo>>> + Send;

    /// Waits until a pod named `owner_or_pod_name`, or owned by a workload of that name, meets
    /// `cond`; returns it. Live pods are tried before terminating ones, newest first. On timeout
    /// the error shows the candidates' state.
    fn wait_for_pod(
        &self,
        ns: &str,
        owner_or_pod_name: &str,
        cond: impl Fn(&PodInfo) -> bool + Send,
        timeout: Duration,
    ) -> impl Future<Output = Result<PodInfo>> + Send;

    /// The pod's spec as it was created: after admission webhooks mutated it, not as the
    /// manifest wrote it.
    fn pod_spec(
        &self,
        ns: &str,
        pod: &str,
    ) -> impl Future<Output = Result<k8s_openapi::api::core::v1::PodSpec>> + Send;

    /// Every container run of the pod so far.
    fn timeline(
        &self,
        ns: &str,
        pod: &str,
    ) -> impl Future<Output = Result<timeline::Timeline>> + Send;

    /// Waits until the pod's timeline meets `cond` (e.g. a container has run twice); returns
    /// that timeline. On timeout the error shows the last one.
    fn wait_for_timeline(
        &self,
        ns: &str,
        pod: &str,
        cond: impl Fn(&timeline::Timeline) -> bool + Send,
        timeout: Duration,
    ) -> impl Future<Output = Result<timeline::Timeline>> + Send;

    /// Deletes the pod and waits until it is gone; its owner, if any, replaces it.
    fn delete_pod(&self, ns: &str, pod: &str) -> impl Future<Output = Result<()>> + Send;

    /// Sets a Deployment's or StatefulSet's replicas (0 or 1); scaling to 0 waits until the pod
    /// is gone.
    fn scale(
        &self,
        ns: &str,
        workload: &str,
        replicas: u32,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Sets the replicas (0 or 1) of custom resource `resource` through its `scale`
    /// subresource, for the operator that owns it to scale `pods` (the Deployment or
    /// StatefulSet it made); waits as [`scale`](Self::scale) does. Clusters only.
    fn scale_resource(
        &self,
        ns: &str,
        resource: &CustomResource<'_>,
        pods: &str,
        replicas: u32,
    ) -> impl Future<Output = Result<()>> + Send;

    /// An address on this host whose connections reach `port` of `pod` (the pod's IP on the
    /// local runtime; a port-forward on a cluster, whose pod network the host cannot route to).
    fn reach(
        &self,
        ns: &str,
        pod: &PodInfo,
        port: u16,
    ) -> impl Future<Output = Result<SocketAddr>> + Send;
}

/// What containers log.
pub trait Logs: Send + Sync {
    /// Resolves once `container` of `pod` logs (or has logged, in any run) a line containing
    /// `needle`.
    fn watch_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        needle: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Everything `container` of `pod` logged, earlier runs first.
    fn logs(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> impl Future<Output = Result<String>> + Send;
}

/// Running containers: commands in them, their environment and mounts, killing them.
pub trait Containers: Send + Sync {
    /// Runs `argv` in the running `container`.
    fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// The environment of the running `container`'s main process.
    fn process_env(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send;

    /// SIGKILLs the running `container`; the pod's restart rules then apply.
    fn kill_container(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A tar archive of everything the running `container` can read under its volume mounts,
    /// each mount under its `mountPath` without the leading `/` (`data/current/a.txt`): how
    /// SEC-1 looks for credentials on a volume, whatever the volume is.
    fn read_container_mounts(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> impl Future<Output = Result<Vec<u8>>> + Send;
}

/// The files behind persistent volume claims.
pub trait Claims: Send + Sync {
    /// A tar archive of everything on the claim (paths relative to its root, modification
    /// times kept), for inspecting the data.
    fn read_claim(&self, ns: &str, claim: &str) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// Replaces everything on the claim with `archive`'s contents (an empty archive empties
    /// it). `owner` (uid, gid) owns what is written where the runtime can set it. Meant for a
    /// claim no workload is using.
    fn write_claim(
        &self,
        ns: &str,
        claim: &str,
        archive: Vec<u8>,
        owner: Option<(u32, u32)>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The regular files on the claim, counted no further than `limit` (cheap enough to call
    /// while a restore writes).
    fn count_claim_files(
        &self,
        ns: &str,
        claim: &str,
        limit: usize,
    ) -> impl Future<Output = Result<usize>> + Send;
}

//! [`Namespaced`]: one namespace of a runtime, so that callers name only pods and containers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::objects::Object;
use super::timeline::Timeline;
use super::{ExecOutput, PodInfo, Result, Runtime};

/// Namespace `name` of a runtime, from [`Runtime::namespace`]. Cheap to make; holds no state
/// of its own, so two handles on one namespace see the same pods.
pub struct Namespaced<'r, R> {
    runtime: &'r R,
    name: String,
}

impl<R> Clone for Namespaced<'_, R> {
    fn clone(&self) -> Self {
        Namespaced {
            runtime: self.runtime,
            name: self.name.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Namespaced<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "namespace {}", self.name)
    }
}

impl<'r, R: Runtime> Namespaced<'r, R> {
    /// A handle on namespace `name` of `runtime` (which need not exist yet).
    pub fn new(runtime: &'r R, name: &str) -> Self {
        Namespaced {
            runtime,
            name: name.to_owned(),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates or updates `objects` here.
    pub async fn apply(&self, objects: Vec<Object>) -> Result<()> {
        self.runtime.apply(&self.name, objects).await
    }

    /// The pods here, oldest first.
    pub async fn pods(&self) -> Result<Vec<PodInfo>> {
        self.runtime.pods(&self.name).await
    }

    /// Waits until a pod named `owner_or_pod_name`, or owned by a workload of that name, meets
    /// `cond` (see [`Pods::wait_for_pod`](super::Pods::wait_for_pod)).
    pub async fn wait_for_pod(
        &self,
        owner_or_pod_name: &str,
        cond: impl Fn(&PodInfo) -> bool + Send,
        timeout: Duration,
    ) -> Result<PodInfo> {
        self.runtime
            .wait_for_pod(&self.name, owner_or_pod_name, cond, timeout)
            .await
    }

    /// `pod`'s spec as it was created (after admission).
    pub async fn pod_spec(&self, pod: &str) -> Result<k8s_openapi::api::core::v1::PodSpec> {
        self.runtime.pod_spec(&self.name, pod).await
    }

    /// Every container run of `pod` so far.
    pub async fn timeline(&self, pod: &str) -> Result<Timeline> {
        self.runtime.timeline(&self.name, pod).await
    }

    /// Waits until `pod`'s timeline meets `cond`; returns that timeline.
    pub async fn wait_for_timeline(
        &self,
        pod: &str,
        cond: impl Fn(&Timeline) -> bool + Send,
        timeout: Duration,
    ) -> Result<Timeline> {
        self.runtime
            .wait_for_timeline(&self.name, pod, cond, timeout)
            .await
    }

    /// Deletes `pod` and waits until it is gone.
    pub async fn delete_pod(&self, pod: &str) -> Result<()> {
        self.runtime.delete_pod(&self.name, pod).await
    }

    /// Sets `workload`'s replicas (0 or 1).
    pub async fn scale(&self, workload: &str, replicas: u32) -> Result<()> {
        self.runtime.scale(&self.name, workload, replicas).await
    }

    /// Sets custom resource `resource`'s replicas (0 or 1); its operator scales `pods`.
    pub async fn scale_resource(
        &self,
        resource: &super::CustomResource<'_>,
        pods: &str,
        replicas: u32,
    ) -> Result<()> {
        self.runtime
            .scale_resource(&self.name, resource, pods, replicas)
            .await
    }

    /// An address on this host that reaches `port` of `pod`.
    pub async fn reach(&self, pod: &PodInfo, port: u16) -> Result<SocketAddr> {
        self.runtime.reach(&self.name, pod, port).await
    }

    /// Everything `container` of `pod` logged, earlier runs first.
    pub async fn logs(&self, pod: &str, container: &str) -> Result<String> {
        self.runtime.logs(&self.name, pod, container).await
    }

    /// Resolves once `container` of `pod` logs a line containing `needle`.
    pub async fn watch_log(
        &self,
        pod: &str,
        container: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<()> {
        self.runtime
            .watch_log(&self.name, pod, container, needle, timeout)
            .await
    }

    /// Runs `argv` in the running `container` of `pod`.
    pub async fn exec(&self, pod: &str, container: &str, argv: &[String]) -> Result<ExecOutput> {
        self.runtime.exec(&self.name, pod, container, argv).await
    }

    /// The environment of the running `container`'s main process.
    pub async fn process_env(
        &self,
        pod: &str,
        container: &str,
    ) -> Result<BTreeMap<String, String>> {
        self.runtime.process_env(&self.name, pod, container).await
    }

    /// SIGKILLs the running `container` of `pod`.
    pub async fn kill_container(&self, pod: &str, container: &str) -> Result<()> {
        self.runtime
            .kill_container(&self.name, pod, container)
            .await
    }

    /// A tar archive of what the running `container` can read under its volume mounts.
    pub async fn read_container_mounts(&self, pod: &str, container: &str) -> Result<Vec<u8>> {
        self.runtime
            .read_container_mounts(&self.name, pod, container)
            .await
    }

    /// A tar archive of everything on `claim`.
    pub async fn read_claim(&self, claim: &str) -> Result<Vec<u8>> {
        self.runtime.read_claim(&self.name, claim).await
    }

    /// Replaces everything on `claim` with `archive`'s contents.
    pub async fn write_claim(
        &self,
        claim: &str,
        archive: Vec<u8>,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        self.runtime
            .write_claim(&self.name, claim, archive, owner)
            .await
    }

    /// The regular files on `claim`, counted no further than `limit`.
    pub async fn count_claim_files(&self, claim: &str, limit: usize) -> Result<usize> {
        self.runtime
            .count_claim_files(&self.name, claim, limit)
            .await
    }

    /// Saves what only the runtime knows about this namespace under `dir`; best effort.
    pub async fn save_runtime_artefacts(&self, dir: &Path) {
        self.runtime.save_runtime_artefacts(&self.name, dir).await
    }
}

//! [`KubeRuntime`] as a [`Runtime`]: every method delegates to the inherent one, except the
//! operations a real cluster cannot do soundly yet, which return [`Error::Unsupported`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{Error, KubeRuntime, Result};
use crate::runtime::objects::Object;
use crate::runtime::timeline::Timeline;
use crate::runtime::{ExecOutput, PodInfo, Runtime};

impl Runtime for KubeRuntime {
    type Error = Error;

    async fn create_namespace(&self, ns: &str) -> Result<()> {
        KubeRuntime::create_namespace(self, ns).await
    }

    async fn apply(&self, ns: &str, objects: Vec<Object>) -> Result<()> {
        KubeRuntime::apply(self, ns, objects).await
    }

    async fn pods(&self, ns: &str) -> Result<Vec<PodInfo>> {
        KubeRuntime::pods(self, ns).await
    }

    async fn wait_for_pod(
        &self,
        ns: &str,
        owner_or_pod_name: &str,
        cond: impl Fn(&PodInfo) -> bool + Send,
        timeout: Duration,
    ) -> Result<PodInfo> {
        KubeRuntime::wait_for_pod(self, ns, owner_or_pod_name, cond, timeout).await
    }

    async fn timeline(&self, ns: &str, pod: &str) -> Result<Timeline> {
        KubeRuntime::timeline(self, ns, pod).await
    }

    async fn wait_for_timeline(
        &self,
        ns: &str,
        pod: &str,
        cond: impl Fn(&Timeline) -> bool + Send,
        timeout: Duration,
    ) -> Result<Timeline> {
        KubeRuntime::wait_for_timeline(self, ns, pod, cond, timeout).await
    }

    async fn watch_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<()> {
        KubeRuntime::watch_log(self, ns, pod, container, needle, timeout).await
    }

    async fn logs(&self, ns: &str, pod: &str, container: &str) -> Result<String> {
        KubeRuntime::logs(self, ns, pod, container).await
    }

    async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<ExecOutput> {
        KubeRuntime::exec(self, ns, pod, container, argv).await
    }

    async fn process_env(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<BTreeMap<String, String>> {
        KubeRuntime::process_env(self, ns, pod, container).await
    }

    async fn kill_container(&self, _ns: &str, _pod: &str, _container: &str) -> Result<()> {
        Err(Error::Unsupported {
            operation: "kill_container",
            reason: "scratch images have no `kill` to exec; a sound kill needs an ephemeral \
                     debug container targeting the container's process namespace or a \
                     node-level `crictl stop`, neither implemented yet (deleting the pod is a \
                     different fault)",
        })
    }

    async fn delete_pod(&self, ns: &str, pod: &str) -> Result<()> {
        KubeRuntime::delete_pod(self, ns, pod).await
    }

    async fn scale(&self, ns: &str, workload: &str, replicas: u32) -> Result<()> {
        KubeRuntime::scale(self, ns, workload, replicas).await
    }

    fn pvc_path(&self, _ns: &str, _claim: &str) -> Result<PathBuf> {
        Err(Error::Unsupported {
            operation: "pvc_path",
            reason: "a claim's files live on a cluster node, not on this host; they are \
                     reachable only through a helper pod that mounts the claim",
        })
    }

    async fn delete_namespace(&self, ns: &str) -> Result<()> {
        KubeRuntime::delete_namespace(self, ns).await
    }

    async fn shutdown(&self) {
        // NB: the runtime starts nothing it must stop; namespaces are the caller's to delete.
    }
}

//! [`KubeRuntime`] as a [`Runtime`]: every method delegates to the inherent one, except the
//! operations a real cluster cannot do soundly yet, which return [`Error::Unsupported`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
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

    async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<()> {
        KubeRuntime::kill_container(self, ns, pod, container).await
    }

    async fn delete_pod(&self, ns: &str, pod: &str) -> Result<()> {
        KubeRuntime::delete_pod(self, ns, pod).await
    }

    async fn scale(&self, ns: &str, workload: &str, replicas: u32) -> Result<()> {
        KubeRuntime::scale(self, ns, workload, replicas).await
    }

    async fn read_claim(&self, ns: &str, claim: &str) -> Result<Vec<u8>> {
        KubeRuntime::read_claim(self, ns, claim).await
    }

    async fn write_claim(
        &self,
        ns: &str,
        claim: &str,
        archive: Vec<u8>,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        KubeRuntime::write_claim(self, ns, claim, archive, owner).await
    }

    async fn read_container_mounts(&self, ns: &str, pod: &str, container: &str) -> Result<Vec<u8>> {
        KubeRuntime::read_container_mounts(self, ns, pod, container).await
    }

    async fn count_claim_files(&self, ns: &str, claim: &str, limit: usize) -> Result<usize> {
        KubeRuntime::count_claim_files(self, ns, claim, limit).await
    }

    async fn reach(&self, ns: &str, pod: &PodInfo, port: u16) -> Result<SocketAddr> {
        self.forward(ns, &pod.name, port).await
    }

    async fn keep_namespace(&self, ns: &str) -> String {
        format!(
            "namespace {ns} kept in the cluster: `kubectl -n {ns} get all,events`; delete it with `kubectl delete namespace {ns}`"
        )
    }

    async fn save_runtime_artefacts(&self, ns: &str, dir: &Path) {
        if let Err(e) = self.collect_failure_artefacts(ns, dir).await {
            tracing::warn!("saving the cluster's artefacts of {ns}: {e}");
        }
    }

    async fn delete_namespace(&self, ns: &str) -> Result<()> {
        self.stop_forwarders(ns);
        KubeRuntime::delete_namespace(self, ns).await
    }

    async fn shutdown(&self) {
        // NB: namespaces are the caller's to delete; port-forwards are the runtime's.
        self.stop_all_forwarders();
    }
}

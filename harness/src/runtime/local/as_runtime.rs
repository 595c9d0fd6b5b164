//! [`LocalRuntime`] as a [`Runtime`]: every method delegates to the inherent one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{Error, LocalRuntime, Result};
use crate::runtime::objects::Object;
use crate::runtime::timeline::Timeline;
use crate::runtime::{ExecOutput, PodInfo, Runtime};

impl Runtime for LocalRuntime {
    type Error = Error;

    async fn create_namespace(&self, ns: &str) -> Result<()> {
        LocalRuntime::create_namespace(self, ns).await
    }

    async fn apply(&self, ns: &str, objects: Vec<Object>) -> Result<()> {
        LocalRuntime::apply(self, ns, objects).await
    }

    async fn pods(&self, ns: &str) -> Result<Vec<PodInfo>> {
        LocalRuntime::pods(self, ns).await
    }

    async fn wait_for_pod(
        &self,
        ns: &str,
        owner_or_pod_name: &str,
        cond: impl Fn(&PodInfo) -> bool + Send,
        timeout: Duration,
    ) -> Result<PodInfo> {
        LocalRuntime::wait_for_pod(self, ns, owner_or_pod_name, cond, timeout).await
    }

    async fn timeline(&self, ns: &str, pod: &str) -> Result<Timeline> {
        LocalRuntime::timeline(self, ns, pod).await
    }

    async fn wait_for_timeline(
        &self,
        ns: &str,
        pod: &str,
        cond: impl Fn(&Timeline) -> bool + Send,
        timeout: Duration,
    ) -> Result<Timeline> {
        LocalRuntime::wait_for_timeline(self, ns, pod, cond, timeout).await
    }

    async fn watch_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<()> {
        LocalRuntime::watch_log(self, ns, pod, container, needle, timeout).await
    }

    async fn logs(&self, ns: &str, pod: &str, container: &str) -> Result<String> {
        LocalRuntime::logs(self, ns, pod, container).await
    }

    async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<ExecOutput> {
        LocalRuntime::exec(self, ns, pod, container, argv).await
    }

    async fn process_env(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<BTreeMap<String, String>> {
        LocalRuntime::process_env(self, ns, pod, container).await
    }

    async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<()> {
        LocalRuntime::kill_container(self, ns, pod, container).await
    }

    async fn delete_pod(&self, ns: &str, pod: &str) -> Result<()> {
        LocalRuntime::delete_pod(self, ns, pod).await
    }

    async fn scale(&self, ns: &str, workload: &str, replicas: u32) -> Result<()> {
        LocalRuntime::scale(self, ns, workload, replicas).await
    }

    async fn read_claim(&self, ns: &str, claim: &str) -> Result<Vec<u8>> {
        let dir = LocalRuntime::pvc_path(self, ns, claim)?;
        crate::archive::pack_dir(&dir, Vec::new()).map_err(claim_io("packing", &dir))
    }

    async fn write_claim(
        &self,
        ns: &str,
        claim: &str,
        archive: Vec<u8>,
        _owner: Option<(u32, u32)>,
    ) -> Result<()> {
        // NB: pods are this user's processes; the files stay this user's.
        let dir = LocalRuntime::pvc_path(self, ns, claim)?;
        crate::archive::replace_dir(&dir, &archive[..]).map_err(claim_io("replacing", &dir))
    }

    async fn read_container_mounts(&self, ns: &str, pod: &str, container: &str) -> Result<Vec<u8>> {
        // NB: the sandbox binds exactly these host paths at the mount paths: what the
        // container reads there is what is read here.
        let trees: Vec<(String, std::path::PathBuf)> =
            LocalRuntime::mounts(self, ns, pod, container)
                .await?
                .into_iter()
                .map(|m| (m.mount_path.trim_start_matches('/').to_owned(), m.host_path))
                .collect();
        crate::archive::pack_trees(&trees, Vec::new()).map_err(|source| Error::Io {
            what: format!("packing what container {container} of {ns}/{pod} mounts"),
            path: trees.first().map(|(_, p)| p.clone()).unwrap_or_default(),
            source,
        })
    }

    async fn count_claim_files(&self, ns: &str, claim: &str, limit: usize) -> Result<usize> {
        let dir = LocalRuntime::pvc_path(self, ns, claim)?;
        Ok(crate::archive::count_files(&dir, limit))
    }

    async fn reach(&self, _ns: &str, pod: &PodInfo, port: u16) -> Result<SocketAddr> {
        Ok(SocketAddr::from((pod.ip, port)))
    }

    async fn keep_namespace(&self, ns: &str) -> String {
        self.stop_namespace(ns).await;
        format!(
            "namespace {ns} kept at {}",
            self.namespace_dir(ns).display()
        )
    }

    async fn delete_namespace(&self, ns: &str) -> Result<()> {
        LocalRuntime::delete_namespace(self, ns).await
    }

    async fn shutdown(&self) {
        LocalRuntime::shutdown(self).await
    }

    fn abort(&self) {
        LocalRuntime::abort(self)
    }
}

fn claim_io(what: &'static str, dir: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = dir.to_owned();
    move |source| Error::Io {
        what: format!("{what} the claim's files"),
        path,
        source,
    }
}

//! The local runtime's containers: their logs, commands in their sandbox, their environment
//! and mounts, killing them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::pod::ContainerError;
use super::{Error, LocalRuntime, Result};
use crate::runtime::{Containers, ExecOutput, Logs};

impl Logs for LocalRuntime {
    /// Resolves once `container` of `pod` logs, or has logged in any run, a line containing
    /// `needle`.
    async fn watch_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<()> {
        let (p, idx) = self.container(ns, pod, container)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let logs = &p.containers[idx].logs;
        let io = |source| Error::Io {
            what: format!("reading the logs of {container} in {ns}/{pod}"),
            path: p.dir.clone(),
            source,
        };
        if logs.wait_for_line(needle, deadline).await.map_err(io)? {
            return Ok(());
        }
        let text = logs.read_all().map_err(io)?;
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(Error::Timeout {
            what: format!(
                "container {container} of {ns}/{pod} to log a line containing {needle:?}"
            ),
            timeout,
            state: format!(
                "{}last lines of {container}:\n{}",
                p.timeline().render(),
                tail.join("\n")
            ),
        })
    }

    /// Everything `container` of `pod` logged, earlier runs first.
    async fn logs(&self, ns: &str, pod: &str, container: &str) -> Result<String> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.containers[idx]
            .logs
            .read_all()
            .map_err(|source| Error::Io {
                what: format!("reading the logs of {container} in {ns}/{pod}"),
                path: p.dir.clone(),
                source,
            })
    }
}

impl Containers for LocalRuntime {
    /// Runs `argv` in the running container: in its sandbox (its mounts, PID namespace and
    /// user), with its environment and working directory.
    async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<ExecOutput> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.exec(idx, argv).await.map_err(|e| match e {
            ContainerError::Io(source) => Error::Exec {
                ns: ns.to_owned(),
                pod: pod.to_owned(),
                container: container.to_owned(),
                argv: argv.to_vec(),
                problem: format!("cannot run it: {source}"),
            },
            e => Self::container_error(ns, pod, container, e),
        })
    }

    /// The environment of the running container's main process (from `/proc/<pid>/environ`).
    async fn process_env(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<BTreeMap<String, String>> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.process_env(idx)
            .await
            .map_err(|e| Self::container_error(ns, pod, container, e))
    }

    /// SIGKILLs the container's process group; the pod's restart rules then apply.
    async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<()> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.kill(idx, "killed by kill_container (SIGKILL)")
            .map_err(|e| Self::container_error(ns, pod, container, e))
    }

    async fn read_container_mounts(&self, ns: &str, pod: &str, container: &str) -> Result<Vec<u8>> {
        // NB: the sandbox binds exactly these host paths at the mount paths: what the
        // container reads there is what is read here.
        let trees: Vec<(String, std::path::PathBuf)> = self
            .mounts(ns, pod, container)
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
}

//! Container logs through the logs API: the previous instance (`previous=true`) and the current.

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::LogParams;
use kube::runtime::{WatchStreamExt, watcher};

use super::status::timeline_from_pod;
use super::watch::{Stopped, until};
use super::{Error, KubeRuntime, Result};
use crate::runtime::Logs;

/// Which instances of a container have logs the API can serve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Instances {
    /// A terminated previous instance exists (`lastState.terminated`).
    pub previous: bool,
    /// The current instance runs or ran (not waiting to be created).
    pub current: bool,
    /// Whether the current instance is running (a follow stream ends when it ends).
    pub running: bool,
    /// `restartCount`, to notice a new instance.
    pub restarts: i32,
}

/// The status of `container` in `pod` (init, regular or ephemeral).
pub(super) fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    [
        &status.init_container_statuses,
        &status.container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flat_map(|s| s.as_deref().unwrap_or_default())
    .find(|s| s.name == container)
}

/// Every container name of `pod` in spec order: init, regular, ephemeral.
pub(super) fn container_names(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let ephemeral = spec.ephemeral_containers.as_deref().unwrap_or_default();
    init.iter()
        .chain(&spec.containers)
        .map(|c| c.name.clone())
        .chain(ephemeral.iter().map(|c| c.name.clone()))
        .collect()
}

pub(super) fn instances(pod: &Pod, container: &str) -> Instances {
    let Some(status) = container_status(pod, container) else {
        return Instances::default();
    };
    let state = status.state.as_ref();
    let running = state.is_some_and(|s| s.running.is_some());
    Instances {
        previous: status
            .last_state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some()),
        current: running || state.is_some_and(|s| s.terminated.is_some()),
        running,
        restarts: status.restart_count,
    }
}

impl KubeRuntime {
    fn check_container(&self, ns: &str, pod: &Pod, container: &str) -> Result<()> {
        let known = container_names(pod);
        if known.iter().any(|c| c == container) {
            return Ok(());
        }
        Err(Error::NoContainer {
            ns: ns.to_owned(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: container.to_owned(),
            known,
        })
    }

    /// One instance's log: the previous (`previous = true`) or the current one.
    pub(super) async fn instance_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<String> {
        let params = LogParams {
            container: Some(container.to_owned()),
            previous,
            ..LogParams::default()
        };
        let which = if previous { "previous" } else { "current" };
        self.pod_api(ns)
            .logs(pod, &params)
            .await
            .map_err(Error::api(format!(
                "read the {which} log of {ns}/{pod} container {container}"
            )))
    }

    async fn logs_of(&self, ns: &str, pod: &Pod, container: &str) -> Result<String> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let have = instances(pod, container);
        let mut out = String::new();
        if have.previous {
            out.push_str(&self.instance_log(ns, name, container, true).await?);
        }
        if have.current {
            out.push_str(&self.instance_log(ns, name, container, false).await?);
        }
        Ok(out)
    }

    /// Follows the running instance's log; `true` once a line contains `needle`, `false` when
    /// the stream ends (the instance ended).
    async fn follow_for(&self, ns: &str, pod: &str, container: &str, needle: &str) -> Result<bool> {
        let params = LogParams {
            container: Some(container.to_owned()),
            follow: true,
            ..LogParams::default()
        };
        let what = format!("follow the log of {ns}/{pod} container {container}");
        let stream = match self.pod_api(ns).log_stream(pod, &params).await {
            Ok(stream) => stream,
            // NB: the instance may have ended between reading the status and asking.
            Err(kube::Error::Api(status)) if status.code == 400 => return Ok(false),
            Err(source) => return Err(Error::Api { what, source }),
        };
        let mut lines = std::pin::pin!(stream.lines());
        loop {
            match lines.try_next().await {
                Ok(Some(line)) if line.contains(needle) => return Ok(true),
                Ok(Some(_)) => {}
                // NB: a broken stream is retried by the caller from the start of the log.
                Ok(None) | Err(_) => return Ok(false),
            }
        }
    }

    /// Watches the pod until `container` has a different instance than `seen` describes.
    async fn next_instance(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        seen: Instances,
    ) -> Result<Pod> {
        let what = format!("pod {ns}/{pod} container {container} to change");
        let events = watcher::watch_object(self.pod_api(ns), pod).default_backoff();
        // NB: no timeout of its own; `watch_log`'s covers it.
        let waited = until(events, Duration::MAX, |obj: Option<Pod>| match obj {
            None => Some(None),
            Some(p) => (instances(&p, container) != seen).then_some(Some(p)),
        })
        .await;
        match waited {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Error::NoPod {
                ns: ns.to_owned(),
                pod: pod.to_owned(),
                known: Vec::new(),
            }),
            Err(Stopped::Fatal(source)) => Err(Error::Watch { what, source }),
            Err(_) => Err(Error::Timeout {
                what,
                timeout: Duration::MAX,
                state: String::new(),
            }),
        }
    }
}

impl Logs for KubeRuntime {
    /// What `container` logged: the previous instance, then the current one. The API keeps no
    /// older instances.
    async fn logs(&self, ns: &str, pod: &str, container: &str) -> Result<String> {
        let p = self.pod(ns, pod).await?;
        self.check_container(ns, &p, container)?;
        self.logs_of(ns, &p, container).await
    }

    /// Resolves once `container` logs a line containing `needle`, in the previous, current or a
    /// later instance: it follows the running instance's log and, when that ends, watches the
    /// pod for the next one.
    async fn watch_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<()> {
        let first = self.pod(ns, pod).await?;
        self.check_container(ns, &first, container)?;
        let search = async {
            let mut p = first;
            loop {
                if self.logs_of(ns, &p, container).await?.contains(needle) {
                    return Ok(());
                }
                let have = instances(&p, container);
                if have.running && self.follow_for(ns, pod, container, needle).await? {
                    return Ok(());
                }
                p = self.next_instance(ns, pod, container, have).await?;
            }
        };
        match tokio::time::timeout(timeout, search).await {
            Ok(result) => result,
            Err(_) => {
                let state = match self.pod(ns, pod).await {
                    Ok(p) => {
                        let tail = self.logs_of(ns, &p, container).await.unwrap_or_default();
                        let tail: Vec<&str> = tail.lines().rev().take(20).collect();
                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                        format!(
                            "{}last log lines of {container}:\n{}",
                            timeline_from_pod(&p).render(),
                            tail.join("\n")
                        )
                    }
                    Err(err) => err.to_string(),
                };
                Err(Error::Timeout {
                    what: format!("{ns}/{pod} container {container} to log `{needle}`"),
                    timeout,
                    state,
                })
            }
        }
    }
}

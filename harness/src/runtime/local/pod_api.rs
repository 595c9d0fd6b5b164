//! The local runtime's pods: listing, waiting, timelines, deleting, scaling, reaching.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::pod::Pod;
use super::{Error, LocalRuntime, Result};
use crate::runtime::timeline::Timeline;
use crate::runtime::{CustomResource, PodInfo, Pods};

impl Pods for LocalRuntime {
    /// The pods of `ns`, oldest first.
    async fn pods(&self, ns: &str) -> Result<Vec<PodInfo>> {
        let namespace = self.namespace_state(ns)?;
        let mut pods: Vec<Arc<Pod>> = namespace.lock().pods.values().cloned().collect();
        pods.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
        Ok(pods.iter().map(|p| p.info()).collect())
    }

    /// Waits until a pod named `owner_or_pod_name`, or owned by the Deployment/StatefulSet of
    /// that name, meets `cond`. On timeout the error shows the candidates' timelines.
    async fn wait_for_pod(
        &self,
        ns: &str,
        owner_or_pod_name: &str,
        cond: impl Fn(&PodInfo) -> bool + Send,
        timeout: Duration,
    ) -> Result<PodInfo> {
        let namespace = self.namespace_state(ns)?;
        let (mut found, mut refused) = (None, None);
        let (slot, refusal, ns_ref) = (&mut found, &mut refused, &namespace);
        // NB: `cond` moves into the closure: it is `Send`, not necessarily `Sync`.
        let wait = self.node.wait_until(move || {
            *slot = Self::candidates(ns_ref, owner_or_pod_name)
                .iter()
                .map(|p| p.info())
                .find(|info| cond(info));
            // NB: a workload whose pod admission refuses fails the wait at once, as a case
            // on a cluster fails on the ReplicaSet's FailedCreate.
            *refusal = match slot {
                Some(_) => None,
                None => ns_ref
                    .lock()
                    .refusals
                    .get(owner_or_pod_name)
                    .map(|r| r.message.clone()),
            };
            slot.is_some() || refusal.is_some()
        });
        let timed_out = tokio::time::timeout(timeout, wait).await.is_err();
        if let (None, Some(message)) = (&found, refused) {
            return Err(Error::Refused {
                ns: ns.to_owned(),
                pod: owner_or_pod_name.to_owned(),
                message,
            });
        }
        match found {
            Some(info) if !timed_out => Ok(info),
            _ => {
                let pods = Self::candidates(&namespace, owner_or_pod_name);
                let state = if pods.is_empty() {
                    let all: Vec<String> = namespace.lock().pods.keys().cloned().collect();
                    format!(
                        "no pod is named or owned by `{owner_or_pod_name}` (pods in {ns}: {})",
                        if all.is_empty() {
                            "none".into()
                        } else {
                            all.join(", ")
                        }
                    )
                } else {
                    pods.iter()
                        .map(|p| p.timeline().render())
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                Err(Error::Timeout {
                    what: format!("pod `{owner_or_pod_name}` in {ns} to meet the condition"),
                    timeout,
                    state,
                })
            }
        }
    }

    /// The pod's spec as admitted.
    async fn pod_spec(&self, ns: &str, pod: &str) -> Result<k8s_openapi::api::core::v1::PodSpec> {
        Ok(self.pod(ns, pod)?.spec.clone())
    }

    /// The pod's timeline.
    async fn timeline(&self, ns: &str, pod: &str) -> Result<Timeline> {
        Ok(self.pod(ns, pod)?.timeline())
    }

    /// Waits until the pod's timeline meets `cond` (e.g. a container has run twice); returns
    /// that timeline. On timeout the error shows the last one.
    async fn wait_for_timeline(
        &self,
        ns: &str,
        pod: &str,
        cond: impl Fn(&Timeline) -> bool + Send,
        timeout: Duration,
    ) -> Result<Timeline> {
        let p = self.pod(ns, pod)?;
        let mut last = p.timeline();
        let (slot, pod_ref) = (&mut last, &p);
        let wait = self.node.wait_until(move || {
            *slot = pod_ref.timeline();
            cond(slot)
        });
        match tokio::time::timeout(timeout, wait).await {
            Ok(()) => Ok(last),
            Err(_) => Err(Error::Timeout {
                what: format!("the timeline of pod {ns}/{pod} to meet the condition"),
                timeout,
                state: p.timeline().render(),
            }),
        }
    }

    /// Deletes the pod: SIGTERM, SIGKILL after the grace period, emptyDirs removed. Returns once
    /// it is gone (like `kubectl delete pod`); its owner, if any, replaces it meanwhile.
    async fn delete_pod(&self, ns: &str, pod: &str) -> Result<()> {
        let namespace = self.namespace_state(ns)?;
        let p = self.pod(ns, pod)?;
        p.request_termination(false);
        namespace.reconcile(&mut namespace.lock());
        self.wait_gone(&[p], &format!("pod {ns}/{pod} to be deleted"))
            .await
    }

    /// Custom resources need an operator, which the local runtime does not run.
    async fn scale_resource(
        &self,
        _ns: &str,
        resource: &CustomResource<'_>,
        _pods: &str,
        _replicas: u32,
    ) -> Result<()> {
        Err(Error::UnsupportedKind {
            kind: resource.kind.to_owned(),
            name: resource.name.to_owned(),
        })
    }

    /// Sets the replicas (0 or 1) of Deployment or StatefulSet `workload`. Scaling to 0 returns
    /// once its pod's processes are gone.
    async fn scale(&self, ns: &str, workload: &str, replicas: u32) -> Result<()> {
        self.check_open()?;
        let namespace = self.namespace_state(ns)?;
        if replicas > 1 {
            return Err(Error::Invalid {
                object: format!("workload {workload}"),
                problem: format!("{replicas} replicas: the local runtime runs 0 or 1"),
            });
        }
        let retiring: Vec<Arc<Pod>> = {
            let mut state = namespace.lock();
            let known: Vec<String> = state.workloads.keys().cloned().collect();
            let Some(w) = state.workloads.get_mut(workload) else {
                return Err(Error::NoWorkload {
                    ns: ns.to_owned(),
                    name: workload.to_owned(),
                    known,
                });
            };
            w.replicas = replicas;
            namespace.reconcile(&mut state);
            state
                .pods
                .values()
                .filter(|p| p.owner_name() == Some(workload) && p.is_terminating())
                .cloned()
                .collect()
        };
        if replicas == 0 {
            self.wait_gone(&retiring, &format!("the pods of {ns}/{workload} to stop"))
                .await?;
        }
        Ok(())
    }

    async fn reach(&self, _ns: &str, pod: &PodInfo, port: u16) -> Result<SocketAddr> {
        Ok(SocketAddr::from((pod.ip, port)))
    }
}

//! Pods: listing, timelines, watch-based waits, deletion and scaling.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::pinned_kind;
use kube::runtime::wait::{Condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::artefacts::event_line;
use super::namespace::with_watch_error;
use super::status::{pod_info, timeline_from_pod};
use super::watch::{PodSet, Stopped, until};
use super::{Error, KubeRuntime, Result};
use crate::runtime::timeline::Timeline;
use crate::runtime::{CustomResource, PodInfo, Pods};

impl KubeRuntime {
    pub(super) fn pod_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The pod `name` in `ns`.
    pub async fn pod(&self, ns: &str, name: &str) -> Result<Pod> {
        self.pod_api(ns)
            .get_opt(name)
            .await
            .map_err(Error::api(format!("get pod {ns}/{name}")))?
            .ok_or_else(|| Error::NoPod {
                ns: ns.to_owned(),
                pod: name.to_owned(),
                known: Vec::new(),
            })
    }

    /// Every pod of `ns`, oldest first.
    pub async fn pod_objects(&self, ns: &str) -> Result<Vec<Pod>> {
        let mut pods = self
            .pod_api(ns)
            .list(&ListParams::default())
            .await
            .map_err(Error::api(format!("list pods in {ns}")))?
            .items;
        pods.sort_by_key(|p| {
            (
                p.metadata.creation_timestamp.clone(),
                p.metadata.name.clone(),
            )
        });
        Ok(pods)
    }

    /// The error of a pod wait that stopped before its condition held: the candidates'
    /// timelines, or, when there is no candidate at all, the Warning events about the workload
    /// (a ReplicaSet's or StatefulSet's `FailedCreate` says why: an admission webhook that
    /// refused the pod or could not be called, a quota, a Pod Security level).
    async fn pod_wait_failed(
        &self,
        ns: &str,
        key: &str,
        set: &PodSet,
        goal: &str,
        timeout: Duration,
        stopped: Stopped,
    ) -> Error {
        let what = format!("pod `{key}` in {ns} {goal}");
        if let Stopped::Fatal(source) = stopped {
            return Error::Watch { what, source };
        }
        let timelines: Vec<String> = set
            .candidates(key)
            .iter()
            .map(|p| timeline_from_pod(p).render())
            .collect();
        let state = if timelines.is_empty() {
            let all = set.names();
            let none = format!(
                "no pod is named or owned by `{key}` (pods in {ns}: {})",
                if all.is_empty() {
                    "none".into()
                } else {
                    all.join(", ")
                }
            );
            format!("{none}\n{}", self.workload_warnings(ns, key).await)
        } else {
            timelines.join("\n")
        };
        Error::Timeout {
            what,
            timeout,
            state: with_watch_error(state, stopped),
        }
    }

    /// The namespace's Warning events about workload `key` or what it owns (objects named
    /// `key` or `key-…`), oldest first, for a message.
    async fn workload_warnings(&self, ns: &str, key: &str) -> String {
        let events = match self.event_objects(ns).await {
            Ok(events) => events,
            Err(err) => return format!("(cannot read the events of {ns}: {err})"),
        };
        let prefix = format!("{key}-");
        let lines: Vec<String> = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| {
                e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|n| n == key || n.starts_with(&prefix))
            })
            .map(|e| format!("  {}", event_line(e)))
            .collect();
        if lines.is_empty() {
            format!("no Warning events about `{key}` in {ns}")
        } else {
            format!("Warning events about `{key}`:\n{}", lines.join("\n"))
        }
    }
}

impl Pods for KubeRuntime {
    /// The pods of `ns`, oldest first.
    async fn pods(&self, ns: &str) -> Result<Vec<PodInfo>> {
        Ok(self.pod_objects(ns).await?.iter().map(pod_info).collect())
    }

    /// Waits until a pod named `owner_or_pod_name`, or owned by the Deployment/StatefulSet of
    /// that name, meets `cond`, watching the namespace's pods. On timeout the error shows the
    /// candidates' timelines or, when there is none, the Warning events about the workload
    /// (e.g. `FailedCreate`: `admission webhook "x" denied the request: …`).
    async fn wait_for_pod(
        &self,
        ns: &str,
        owner_or_pod_name: &str,
        cond: impl Fn(&PodInfo) -> bool + Send,
        timeout: Duration,
    ) -> Result<PodInfo> {
        let mut set = PodSet::default();
        let events = watcher(self.pod_api(ns), watcher::Config::default()).default_backoff();
        let tracked = &mut set;
        // NB: `cond` moves into the closure: it is `Send`, not necessarily `Sync`.
        let waited = until(events, timeout, move |event| {
            if !tracked.apply(event) {
                return None;
            }
            tracked
                .candidates(owner_or_pod_name)
                .into_iter()
                .map(|p| pod_info(&p))
                .find(|info| cond(info))
        })
        .await;
        match waited {
            Ok(info) => Ok(info),
            Err(stopped) => Err(self
                .pod_wait_failed(
                    ns,
                    owner_or_pod_name,
                    &set,
                    "to meet the condition",
                    timeout,
                    stopped,
                )
                .await),
        }
    }

    /// The pod's spec as the API server stored it (admission included).
    async fn pod_spec(&self, ns: &str, pod: &str) -> Result<k8s_openapi::api::core::v1::PodSpec> {
        Ok(self.pod(ns, pod).await?.spec.unwrap_or_default())
    }

    /// The pod's timeline, reconstructed from its status (at most two runs per container).
    async fn timeline(&self, ns: &str, pod: &str) -> Result<Timeline> {
        Ok(timeline_from_pod(&self.pod(ns, pod).await?))
    }

    /// Waits until the pod's timeline meets `cond`, watching the pod; returns that timeline.
    ///
    /// The timeline is rebuilt on every status change, so runs that a later status no longer
    /// shows are only seen while they happen.
    async fn wait_for_timeline(
        &self,
        ns: &str,
        pod: &str,
        cond: impl Fn(&Timeline) -> bool + Send,
        timeout: Duration,
    ) -> Result<Timeline> {
        let mut last = timeline_from_pod(&self.pod(ns, pod).await?);
        let mut gone = false;
        let events = watcher::watch_object(self.pod_api(ns), pod).default_backoff();
        let (last_seen, gone_seen) = (&mut last, &mut gone);
        // NB: `cond` moves into the closure: it is `Send`, not necessarily `Sync`.
        let waited = until(events, timeout, move |obj: Option<Pod>| match obj {
            Some(p) => {
                *last_seen = timeline_from_pod(&p);
                cond(last_seen).then(|| last_seen.clone())
            }
            None => {
                *gone_seen = true;
                Some(last_seen.clone())
            }
        })
        .await;
        let what = format!("the timeline of pod {ns}/{pod} to meet the condition");
        match waited {
            Ok(_) if gone => Err(Error::NoPod {
                ns: ns.to_owned(),
                pod: pod.to_owned(),
                known: Vec::new(),
            }),
            Ok(timeline) => Ok(timeline),
            Err(Stopped::Fatal(source)) => Err(Error::Watch { what, source }),
            Err(stopped) => Err(Error::Timeout {
                what,
                timeout,
                state: with_watch_error(last.render(), stopped),
            }),
        }
    }

    /// Deletes the pod and waits (the runtime's wait timeout) until it is gone.
    async fn delete_pod(&self, ns: &str, pod: &str) -> Result<()> {
        let api = self.pod_api(ns);
        let deleted = match api.delete(pod, &DeleteParams::default()).await {
            Ok(deleted) => deleted,
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                return Err(Error::NoPod {
                    ns: ns.to_owned(),
                    pod: pod.to_owned(),
                    known: Vec::new(),
                });
            }
            Err(source) => {
                return Err(Error::Api {
                    what: format!("delete pod {ns}/{pod}"),
                    source,
                });
            }
        };
        let Some(uid) = deleted.left().and_then(|p| p.metadata.uid) else {
            return Ok(());
        };
        let mut last = None;
        let gone = conditions::is_deleted(&uid);
        let events = watcher::watch_object(api, pod).default_backoff();
        let waited = until(events, self.wait_timeout, |obj: Option<Pod>| {
            let deleted = gone.matches_object(obj.as_ref());
            last = obj;
            deleted.then_some(())
        })
        .await;
        let what = format!("pod {ns}/{pod} to be deleted");
        match waited {
            Ok(()) => Ok(()),
            Err(Stopped::Fatal(source)) => Err(Error::Watch { what, source }),
            Err(stopped) => Err(Error::Timeout {
                what,
                timeout: self.wait_timeout,
                state: with_watch_error(
                    last.as_ref()
                        .map_or_else(String::new, |p| timeline_from_pod(p).render()),
                    stopped,
                ),
            }),
        }
    }

    /// Sets a Deployment's or StatefulSet's replicas; waits until a live pod exists (scaling
    /// up) or every pod is gone (scaling to 0).
    async fn scale(&self, ns: &str, workload: &str, replicas: u32) -> Result<()> {
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let params = PatchParams::default();
        let what = format!("scale {workload} in {ns} to {replicas}");
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let statefulsets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        match deployments.patch_scale(workload, &params, &patch).await {
            Ok(_) => {}
            Err(err) if super::is_not_found(&err) => {
                match statefulsets.patch_scale(workload, &params, &patch).await {
                    Ok(_) => {}
                    Err(err) if super::is_not_found(&err) => {
                        return Err(Error::NoWorkload {
                            ns: ns.to_owned(),
                            name: workload.to_owned(),
                            known: Vec::new(),
                        });
                    }
                    Err(source) => return Err(Error::Api { what, source }),
                }
            }
            Err(source) => return Err(Error::Api { what, source }),
        }
        self.wait_scaled(ns, workload, replicas).await
    }

    /// Patches the custom resource's `scale` subresource; its operator scales `pods`.
    async fn scale_resource(
        &self,
        ns: &str,
        resource: &CustomResource<'_>,
        pods: &str,
        replicas: u32,
    ) -> Result<()> {
        let what = format!("scale {resource} in {ns} to {replicas}");
        let (group, version) = resource
            .api_version
            .split_once('/')
            .unwrap_or(("", resource.api_version));
        let gvk = GroupVersionKind::gvk(group, version, resource.kind);
        let (api_resource, _) =
            pinned_kind(&self.client, &gvk)
                .await
                .map_err(Error::api(format!(
                    "discover {} {}",
                    resource.api_version, resource.kind
                )))?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &api_resource);
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        match api
            .patch_scale(resource.name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {}
            Err(err) if super::is_not_found(&err) => {
                return Err(Error::NoWorkload {
                    ns: ns.to_owned(),
                    name: format!(
                        "{resource} (or its scale subresource: the CustomResourceDefinition needs `subresources.scale` with `specReplicasPath`)"
                    ),
                    known: Vec::new(),
                });
            }
            Err(source) => return Err(Error::Api { what, source }),
        }
        self.wait_scaled(ns, pods, replicas).await
    }

    async fn reach(&self, ns: &str, pod: &PodInfo, port: u16) -> Result<SocketAddr> {
        self.forward(ns, &pod.name, port).await
    }
}

impl KubeRuntime {
    /// Waits until a live pod of `workload` exists (`replicas` > 0) or every pod is gone.
    async fn wait_scaled(&self, ns: &str, workload: &str, replicas: u32) -> Result<()> {
        let mut set = PodSet::default();
        let events = watcher(self.pod_api(ns), watcher::Config::default()).default_backoff();
        let waited = until(events, self.wait_timeout, |event| {
            if !set.apply(event) {
                return None;
            }
            let pods = set.candidates(workload);
            let done = if replicas == 0 {
                pods.is_empty()
            } else {
                pods.iter().any(|p| p.metadata.deletion_timestamp.is_none())
            };
            done.then_some(())
        })
        .await;
        let goal = if replicas == 0 {
            "to be gone"
        } else {
            "to be created"
        };
        match waited {
            Ok(()) => Ok(()),
            Err(stopped) => Err(self
                .pod_wait_failed(ns, workload, &set, goal, self.wait_timeout, stopped)
                .await),
        }
    }
}

//! Namespaces: one per scenario, created labelled, deleted and awaited.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{Condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};

use super::watch::{Stopped, until};
use super::{Error, KubeRuntime, MANAGED_BY, Result};
use crate::runtime::Namespaces;
use crate::runtime::objects::Object;

impl KubeRuntime {
    /// The namespaces the harness created (labelled `app.kubernetes.io/managed-by=phasecheck`)
    /// that are still there, e.g. after a run that was killed.
    pub async fn managed_namespaces(&self) -> Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let list = api
            .list(&kube::api::ListParams::default().labels(&selector))
            .await
            .map_err(Error::api(format!("list namespaces labelled {selector}")))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect())
    }

    /// Deletes the cluster-scoped objects labelled `app.kubernetes.io/managed-by=phasecheck`
    /// (what installs apply: webhook configurations first, then CRDs, cluster roles and their
    /// bindings) that a killed run left; returns them as `Kind name`.
    pub async fn delete_managed_cluster_objects(&self) -> Result<Vec<String>> {
        use k8s_openapi::api::admissionregistration::v1::{
            MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
        };
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        use kube::api::{ApiResource, DynamicObject};
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let params = kube::api::ListParams::default().labels(&selector);
        let kinds = [
            ApiResource::erase::<MutatingWebhookConfiguration>(&()),
            ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
            ApiResource::erase::<CustomResourceDefinition>(&()),
            ApiResource::erase::<ClusterRoleBinding>(&()),
            ApiResource::erase::<ClusterRole>(&()),
        ];
        let mut deleted = Vec::new();
        for resource in kinds {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let items = api
                .list(&params)
                .await
                .map_err(Error::api(format!(
                    "list {} labelled {selector}",
                    resource.plural
                )))?
                .items;
            for item in items {
                let name = item.metadata.name.unwrap_or_default();
                match api.delete(&name, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        return Err(Error::api(format!("delete {} {name}", resource.kind))(e));
                    }
                }
                deleted.push(format!("{} {name}", resource.kind));
            }
        }
        Ok(deleted)
    }
}

impl Namespaces for KubeRuntime {
    /// Creates namespace `ns`, labelled `app.kubernetes.io/managed-by=phasecheck`.
    async fn create_namespace(&self, ns: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.to_owned()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.0.to_owned(),
                    MANAGED_BY.1.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &namespace).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                Err(Error::NamespaceExists { ns: ns.to_owned() })
            }
            Err(source) => Err(Error::Api {
                what: format!("create namespace {ns}"),
                source,
            }),
        }
    }

    /// Deletes namespace `ns` and waits until it is gone. A refused deletion, or a namespace
    /// still terminating after the wait timeout (finalizers, stuck volumes), is an error naming
    /// the namespace's conditions.
    async fn delete_namespace(&self, ns: &str) -> Result<()> {
        self.stop_forwarders(ns);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let deleted = match api.delete(ns, &DeleteParams::background()).await {
            Ok(deleted) => deleted,
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                return Err(Error::NoNamespace { ns: ns.to_owned() });
            }
            Err(source) => {
                return Err(Error::Api {
                    what: format!("delete namespace {ns}"),
                    source,
                });
            }
        };
        // NB: `Right` is a Status: the namespace was removed at once.
        let Some(uid) = deleted.left().and_then(|n| n.metadata.uid) else {
            return Ok(());
        };
        let gone = conditions::is_deleted(&uid);
        let events = watcher::watch_object(api.clone(), ns).default_backoff();
        let waited = until(events, self.wait_timeout, |obj: Option<Namespace>| {
            gone.matches_object(obj.as_ref()).then_some(())
        })
        .await;
        match waited {
            Ok(()) => Ok(()),
            Err(Stopped::Fatal(source)) => Err(Error::Watch {
                what: format!("namespace {ns} deletion"),
                source,
            }),
            Err(stopped) => {
                let state = match api.get_opt(ns).await {
                    Ok(Some(n)) => namespace_state(&n),
                    Ok(None) => "namespace is gone now".to_owned(),
                    Err(err) => format!("cannot read the namespace: {err}"),
                };
                Err(Error::Timeout {
                    what: format!("namespace {ns} to be deleted"),
                    timeout: self.wait_timeout,
                    state: with_watch_error(state, stopped),
                })
            }
        }
    }

    async fn apply(&self, ns: &str, objects: Vec<Object>) -> Result<()> {
        self.apply_objects(ns, objects).await
    }

    async fn delete_cluster_objects(&self, objects: &[Object]) -> Result<()> {
        self.delete_cluster_scoped(objects).await
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

    async fn shutdown(&self) {
        // NB: namespaces are the caller's to delete; port-forwards are the runtime's.
        self.stop_all_forwarders();
    }
}

/// A terminating namespace's phase and conditions (what blocks its deletion).
fn namespace_state(n: &Namespace) -> String {
    let status = n.status.as_ref();
    let mut lines = vec![format!(
        "namespace phase {}",
        status.and_then(|s| s.phase.as_deref()).unwrap_or("unknown")
    )];
    for c in status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
    {
        lines.push(format!(
            "  {} = {}: {}",
            c.type_,
            c.status,
            c.message.as_deref().unwrap_or_default()
        ));
    }
    lines.join("\n")
}

/// Appends the last watch error, if any, to a timeout's state.
pub(super) fn with_watch_error(state: String, stopped: Stopped) -> String {
    match stopped {
        Stopped::TimedOut(Some(err)) => format!("{state}\nlast watch error: {err}"),
        Stopped::Ended => format!("{state}\nthe watch ended"),
        Stopped::TimedOut(None) | Stopped::Fatal(_) => state,
    }
}

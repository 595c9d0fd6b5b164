//! Server-side apply of typed objects.

use std::fmt::Debug;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Error, KubeRuntime, Result};
use crate::runtime::objects::Object;

impl KubeRuntime {
    /// Creates or updates `objects` in `ns` by server-side apply, in order.
    ///
    /// Conflicts with other field managers are forced: the harness owns the namespace.
    pub(super) async fn apply_objects(&self, ns: &str, objects: Vec<Object>) -> Result<()> {
        for object in objects {
            match object {
                Object::Pod(o) => self.apply_typed(ns, o).await?,
                Object::Deployment(o) => self.apply_typed(ns, o).await?,
                Object::StatefulSet(o) => self.apply_typed(ns, o).await?,
                Object::PersistentVolumeClaim(o) => self.apply_typed(ns, o).await?,
                Object::Secret(o) => self.apply_typed(ns, o).await?,
                Object::ConfigMap(o) => self.apply_typed(ns, o).await?,
                Object::Service(o) => self.apply_typed(ns, o).await?,
                Object::MutatingWebhookConfiguration(o) => self.apply_cluster(o).await?,
                Object::ValidatingWebhookConfiguration(o) => self.apply_cluster(o).await?,
                Object::Other {
                    api_version,
                    kind,
                    value,
                } => self.apply_other(ns, &api_version, &kind, value).await?,
            }
        }
        Ok(())
    }

    fn apply_params(&self) -> PatchParams {
        PatchParams::apply(&self.field_manager).force()
    }

    async fn apply_typed<K>(&self, ns: &str, mut object: K) -> Result<()>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let label = format!("{}/{}", K::kind(&()), object.name_any());
        let name = object
            .meta()
            .name
            .clone()
            .ok_or_else(|| no_name(label.clone()))?;
        object.meta_mut().namespace = Some(ns.to_owned());
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        api.patch(&name, &self.apply_params(), &Patch::Apply(&object))
            .await
            .map_err(Error::api(format!("apply {label} in {ns}")))?;
        Ok(())
    }

    /// Applies a cluster-scoped object (a webhook configuration).
    async fn apply_cluster<K>(&self, object: K) -> Result<()>
    where
        K: Resource<DynamicType = (), Scope = ClusterResourceScope>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let label = format!("{}/{}", K::kind(&()), object.name_any());
        let name = object
            .meta()
            .name
            .clone()
            .ok_or_else(|| no_name(label.clone()))?;
        let api: Api<K> = Api::all(self.client.clone());
        api.patch(&name, &self.apply_params(), &Patch::Apply(&object))
            .await
            .map_err(Error::api(format!("apply {label}")))?;
        Ok(())
    }

    /// Deletes the cluster-scoped objects among `objects` (webhook configurations, and kinds
    /// the harness has no type for that discovery says are cluster-scoped: CRDs, cluster
    /// roles); one already gone is no error, namespaced ones are left to their namespace.
    pub(super) async fn delete_cluster_scoped(&self, objects: &[Object]) -> Result<()> {
        for object in objects {
            let deleted = match object {
                Object::MutatingWebhookConfiguration(o) => {
                    self.delete_cluster::<MutatingWebhookConfiguration>(&o.name_any())
                        .await
                }
                Object::ValidatingWebhookConfiguration(o) => {
                    self.delete_cluster::<ValidatingWebhookConfiguration>(&o.name_any())
                        .await
                }
                Object::Other {
                    api_version, kind, ..
                } => {
                    self.delete_cluster_other(api_version, kind, object.name())
                        .await
                }
                _ => Ok(()),
            };
            deleted?;
        }
        Ok(())
    }

    async fn delete_cluster<K>(&self, name: &str) -> Result<()>
    where
        K: Resource<DynamicType = (), Scope = ClusterResourceScope>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        let api: Api<K> = Api::all(self.client.clone());
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(Error::api(format!("delete {}/{name}", K::kind(&())))(e)),
        }
    }

    /// Deletes a kind the harness has no type for, if discovery says it is cluster-scoped.
    async fn delete_cluster_other(&self, api_version: &str, kind: &str, name: &str) -> Result<()> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = match pinned_kind(&self.client, &gvk).await {
            Ok(found) => found,
            // NB: a kind the cluster no longer serves (its CRD went first) has nothing left.
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(Error::api(format!("discover {api_version} {kind}"))(e)),
        };
        if caps.scope != Scope::Cluster {
            return Ok(());
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(Error::api(format!("delete {kind}/{name}"))(e)),
        }
    }

    /// Applies a kind the harness has no type for; discovery says whether it is namespaced.
    async fn apply_other(
        &self,
        ns: &str,
        api_version: &str,
        kind: &str,
        mut value: Value,
    ) -> Result<()> {
        let name = value["metadata"]["name"].as_str().map(str::to_owned);
        let label = format!("{kind}/{}", name.as_deref().unwrap_or("(unnamed)"));
        let name = name.ok_or_else(|| no_name(label.clone()))?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps): (ApiResource, _) = pinned_kind(&self.client, &gvk)
            .await
            .map_err(Error::api(format!("discover {api_version} {kind}")))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                value["metadata"]["namespace"] = Value::String(ns.to_owned());
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        api.patch(&name, &self.apply_params(), &Patch::Apply(&value))
            .await
            .map_err(Error::api(format!("apply {label} in {ns}")))?;
        Ok(())
    }
}

fn no_name(object: String) -> Error {
    Error::Invalid {
        object,
        problem: "server-side apply needs `metadata.name` (`generateName` cannot be applied)"
            .into(),
    }
}

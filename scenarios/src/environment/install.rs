//! A subject's `install:` (a webhook or an operator): applied once per run before its first
//! case, awaited, its webhook handed its CA, removed when the run ends.

use std::sync::Arc;
use std::time::Instant;

use harness::app::AppClient;
use harness::runtime::Runtime;
use harness::runtime::objects::Object;
use harness::subject::Subject;
use harness::subject::install::{CaBundleSource, InstallSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::EnvVar;
use tokio::sync::OnceCell;

use super::Environment;
use crate::{note, rules};

/// One subject's install: done once, shared by its cases.
pub(crate) type InstallCell = Arc<OnceCell<Result<(), String>>>;

/// What an install put where, for removing it.
#[derive(Clone, Debug)]
pub(crate) struct Installed {
    pub namespace: String,
    /// The cluster-scoped objects (webhook configurations).
    pub cluster_objects: Vec<Object>,
    /// Kinds the harness has no type for (an operator's CRDs and RBAC): the cluster-scoped
    /// ones are deleted after the namespace.
    pub other_objects: Vec<Object>,
}

impl<R: Runtime> Environment<R> {
    /// Installs `subject`'s `install:` unless that was done (or tried) already in this run;
    /// the error says what did not come up.
    pub(crate) async fn ensure_installed(&self, subject: &Subject) -> Result<(), String> {
        let Some(spec) = &subject.profile.install else {
            return Ok(());
        };
        let cell = self
            .installs
            .lock()
            .expect("not poisoned")
            .entry(subject.name().to_owned())
            .or_default()
            .clone();
        // NB: boxed, so the install's future does not grow every case's (test threads have
        // small stacks).
        cell.get_or_init(|| Box::pin(self.install(subject, spec)))
            .await
            .clone()
            .map_err(|e| {
                format!(
                    "installing {} (install: in its profile): {e}",
                    subject.name()
                )
            })
    }

    async fn install(&self, subject: &Subject, spec: &InstallSpec) -> Result<(), String> {
        let started = Instant::now();
        let ns = spec.namespace.as_str();
        note!(
            "phasecheck: installing {} into namespace {ns} (once for this run)",
            subject.name()
        );
        let (cluster_objects, mut objects): (Vec<Object>, Vec<Object>) = subject
            .install_objects()
            .into_iter()
            .partition(Object::is_cluster_scoped);
        for object in &mut objects {
            with_env(object, spec);
            label_managed(object);
        }
        match self.runtime.create_namespace(ns).await {
            Ok(()) => {}
            // NB: a cluster may keep the namespace of an install a killed run left behind;
            // applying is idempotent, and it is removed at the end.
            Err(harness::runtime::Error::NamespaceExists { .. }) => {
                note!("phasecheck: namespace {ns} exists already; installing into it");
            }
            Err(e) => return Err(format!("creating namespace {ns}: {e}")),
        }
        // NB: recorded before anything is applied, so a half-made install is removed too.
        self.installed
            .lock()
            .expect("not poisoned")
            .push(Installed {
                namespace: ns.to_owned(),
                cluster_objects: cluster_objects.clone(),
                other_objects: objects
                    .iter()
                    .filter(|o| matches!(o, Object::Other { .. }))
                    .cloned()
                    .collect(),
            });
        let deployments: Vec<String> = objects
            .iter()
            .filter(|o| o.kind() == "Deployment")
            .map(|o| o.name().to_owned())
            .collect();
        self.runtime
            .apply(ns, objects)
            .await
            .map_err(|e| format!("applying install.manifests: {e}"))?;
        for name in &deployments {
            self.runtime
                .wait_for_pod(ns, name, rules::ready(), self.timeouts.ready)
                .await
                .map_err(|e| format!("Deployment {name} did not become ready: {e}"))?;
        }
        let mut webhooks = cluster_objects;
        for object in &mut webhooks {
            label_managed(object);
        }
        if let Some(source) = &spec.ca_bundle {
            let ca = self.fetch_ca(ns, source).await?;
            for object in &mut webhooks {
                hand_over_ca(object, &ca);
            }
        }
        if !webhooks.is_empty() {
            self.runtime
                .apply(ns, webhooks)
                .await
                .map_err(|e| format!("registering the webhook configurations: {e}"))?;
        }
        note!(
            "phasecheck: installed {} in {:.1}s",
            subject.name(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The PEM the webhook's pod serves at `source`.
    async fn fetch_ca(&self, ns: &str, source: &CaBundleSource) -> Result<Vec<u8>, String> {
        let what = format!(
            "install.caBundle (GET {} on port {} of {})",
            source.path, source.port, source.deployment
        );
        let pod = self
            .runtime
            .wait_for_pod(ns, &source.deployment, rules::ready(), self.timeouts.ready)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let addr = self
            .runtime
            .reach(ns, &pod, source.port)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let pem = AppClient::new(addr)
            .get(&source.path)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        if !pem.starts_with(b"-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "{what}: the answer is not a PEM certificate (it starts {:?})",
                String::from_utf8_lossy(&pem[..pem.len().min(40)])
            ));
        }
        Ok(pem.to_vec())
    }

    /// Removes every install of the run: webhook configurations first (a cluster must not be
    /// left with a webhook whose service is gone), then the namespaces, then the cluster-scoped
    /// objects of an operator (its CRDs, cluster roles). Best effort, reported.
    pub(crate) async fn uninstall(&self) {
        let installed = std::mem::take(&mut *self.installed.lock().expect("not poisoned"));
        for install in installed {
            if let Err(e) = self
                .runtime
                .delete_cluster_objects(&install.cluster_objects)
                .await
            {
                note!("phasecheck: error: removing the install's webhook configurations: {e}");
            }
            if let Err(e) = self.runtime.delete_namespace(&install.namespace).await {
                note!(
                    "phasecheck: error: deleting install namespace {}: {e}",
                    install.namespace
                );
            }
            if let Err(e) = self
                .runtime
                .delete_cluster_objects(&install.other_objects)
                .await
            {
                note!(
                    "phasecheck: error: removing the install's cluster-scoped objects (CRDs, cluster roles): {e}"
                );
            }
        }
    }
}

/// Sets `spec.env` on every container of a Deployment.
fn with_env(object: &mut Object, spec: &InstallSpec) {
    let Object::Deployment(deployment) = object else {
        return;
    };
    if spec.env.is_empty() {
        return;
    }
    let pod = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut());
    for container in pod.into_iter().flat_map(|p| p.containers.iter_mut()) {
        let env = container.env.get_or_insert_with(Vec::new);
        for (name, value) in &spec.env {
            env.retain(|e| &e.name != name);
            env.push(EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            });
        }
    }
}

/// Labels a webhook configuration, or an object of a kind the harness has no type for (an
/// operator's CRDs and cluster roles), `app.kubernetes.io/managed-by=phasecheck`, so `phasecheck
/// clean` finds the cluster-scoped ones after a run that was killed before removing them.
fn label_managed(object: &mut Object) {
    let (key, value) = harness::runtime::kube::MANAGED_BY;
    let meta = match object {
        Object::MutatingWebhookConfiguration(c) => &mut c.metadata,
        Object::ValidatingWebhookConfiguration(c) => &mut c.metadata,
        Object::Other { value: doc, .. } => {
            if !doc["metadata"]["labels"].is_object() {
                doc["metadata"]["labels"] = serde_json::json!({});
            }
            doc["metadata"]["labels"][key] = value.into();
            return;
        }
        _ => return,
    };
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value.to_owned());
}

/// Puts `ca` into every webhook of a configuration that has no `caBundle`.
fn hand_over_ca(object: &mut Object, ca: &[u8]) {
    let configs: Vec<&mut k8s_openapi::api::admissionregistration::v1::WebhookClientConfig> =
        match object {
            Object::MutatingWebhookConfiguration(c) => c
                .webhooks
                .iter_mut()
                .flatten()
                .map(|w| &mut w.client_config)
                .collect(),
            Object::ValidatingWebhookConfiguration(c) => c
                .webhooks
                .iter_mut()
                .flatten()
                .map(|w| &mut w.client_config)
                .collect(),
            _ => Vec::new(),
        };
    for config in configs {
        if config.ca_bundle.as_ref().is_none_or(|b| b.0.is_empty()) {
            config.ca_bundle = Some(ByteString(ca.to_vec()));
        }
    }
}

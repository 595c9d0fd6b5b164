//! Deploying: the storage, the workload and its knobs, starting and stopping it.

use std::collections::BTreeMap;

use chrono::Utc;
use harness::report::Phase;
use harness::report::{EventKind, PodTrace};
use harness::runtime::Runtime;
use harness::runtime::objects;
use harness::runtime::timeline::Timeline;
use harness::runtime::{CustomResource, PodInfo};
use harness::subject::{KnobPlace, TemplateValues};
use serde_json::{Value, json};

use super::{Knobs, Scenario, part_of};
use crate::outcome::{Check, Context, Failure};
use crate::rules;

impl<'a, R: Runtime> Scenario<'a, R> {
    /// Applies the endpoint ConfigMap, the credentials Secret and the subject's claims.
    pub async fn prepare_storage(&mut self) -> Check {
        if self.storage_applied {
            return Ok(());
        }
        let mut docs = self.wiring_documents();
        docs.extend(
            self.docs
                .iter()
                .filter(|d| d["kind"] == "PersistentVolumeClaim")
                .cloned(),
        );
        self.apply(docs).await?;
        self.storage_applied = true;
        Ok(())
    }

    /// Deploys the workload with `knobs` and waits until its pod is ready.
    pub async fn deploy(&mut self, knobs: Knobs) -> Check<PodInfo> {
        self.deploy_without_waiting(knobs).await?;
        self.wait_ready().await
    }

    /// Deploys the workload with `knobs`, not waiting for anything.
    pub async fn deploy_without_waiting(&mut self, knobs: Knobs) -> Check {
        self.prepare_storage().await?;
        if self.workload_applied {
            return self.scale(1).await;
        }
        let docs: Vec<Value> = self
            .docs
            .iter()
            .filter(|d| d["kind"] != "PersistentVolumeClaim")
            .map(|d| self.with_knobs(d.clone(), &knobs))
            .collect();
        self.apply(docs).await?;
        self.workload_applied = true;
        Ok(())
    }

    /// Scales the workload to zero and waits until its pod is gone.
    pub async fn stop_workload(&mut self) -> Check {
        self.scale(0).await
    }

    /// Scales the workload back to one and waits until the pod is ready.
    pub async fn start_workload(&mut self) -> Check<PodInfo> {
        self.scale(1).await?;
        self.wait_ready().await
    }

    pub(super) async fn scale(&self, replicas: u32) -> Check {
        // NB: the pods scaled away are gone from the runtime afterwards; the report keeps
        // their last timelines.
        let retiring = if replicas == 0 {
            self.remember_pods(None).await
        } else {
            Vec::new()
        };
        let at = Utc::now();
        let workload = &self.subject().profile.workload;
        let scaled = if workload.is_custom_resource() {
            let doc = self.docs.iter().find(|d| workload.is(d));
            let resource = CustomResource {
                api_version: doc
                    .and_then(|d| d["apiVersion"].as_str())
                    .unwrap_or_default(),
                kind: &workload.kind,
                name: &workload.name,
            };
            self.ns
                .scale_resource(&resource, self.workload_name(), replicas)
                .await
        } else {
            self.ns.scale(self.workload_name(), replicas).await
        };
        scaled.with_context(|| format!("scaling {} to {replicas}", workload.name))?;
        self.recorder.removed(&retiring, at);
        Ok(())
    }

    /// Records the timelines of the namespace's pods (only `pod` when given) for the report;
    /// returns their UIDs. Best effort: a pod the runtime cannot show is left out.
    pub(super) async fn remember_pods(&self, pod: Option<&PodInfo>) -> Vec<String> {
        let pods = match pod {
            Some(pod) => vec![pod.clone()],
            None => self.ns.pods().await.unwrap_or_default(),
        };
        let mut uids = Vec::new();
        for pod in pods {
            if let Ok(timeline) = self.ns.timeline(&pod.name).await {
                self.recorder
                    .pod(PodTrace::from_timeline(&timeline, Utc::now(), |name| {
                        part_of(self.subject(), name)
                    }));
                uids.push(timeline.uid);
            }
        }
        uids
    }

    /// At the end of the case: records the backups in the store that no step listed, if the
    /// store answers within a few seconds.
    pub(crate) async fn observe_store(&self) {
        let list = tokio::time::timeout(self.pacing().final_listing, self.store.list());
        if let Ok(Ok(backups)) = self.recorder.timed(Phase::Teardown, list).await {
            self.recorder.listed(&backups);
        }
    }

    /// Waits until the workload's pod is ready; fails early once one of its restore or run
    /// containers keeps failing ([`Pacing::gives_up_after`](crate::pacing::Pacing::gives_up_after)
    /// failures more than when the wait began), as such a pod never becomes ready.
    pub async fn wait_ready(&self) -> Check<PodInfo> {
        let ready = self.ns.wait_for_pod(
            self.workload_name(),
            rules::ready(),
            self.env.timeouts.ready,
        );
        let result = tokio::select! {
            result = ready => result,
            failure = self.a_container_keeps_failing(None) => return Err(failure),
        };
        match result {
            Ok(pod) => {
                self.recorder.event(Utc::now(), EventKind::Ready, &pod.name);
                self.remember_spec(&pod).await;
                Ok(pod)
            }
            Err(e) => Err(self.not_ready(e).await),
        }
    }

    /// What a readiness wait that ended with `e` found: a restore slower than the pod's
    /// patience is said as such, with the knob that gives it more time.
    async fn not_ready(&self, e: harness::runtime::Error) -> Failure {
        let patience = self.env.timeouts.ready;
        // NB: a second is plenty for a pod that exists; none is the other finding.
        let pod = self.ns.wait_for_pod(
            self.workload_name(),
            rules::any_pod(),
            std::time::Duration::from_secs(1),
        );
        if let Ok(pod) = pod.await
            && let Ok(timeline) = self.timeline(&pod.name).await
            && let Some((restore, since)) =
                rules::restore_still_running(&timeline, &self.subject().profile.containers)
        {
            return Failure::violation(format!(
                "the pod did not become ready within {patience:?}: its restore container \
                 `{restore}` was still running (started {since}). A restore this slow needs more \
                 patience: --timeout sets the case's limit, and a pod may take three quarters of it\n{}",
                timeline.render()
            ));
        }
        Failure::violation(format!("the pod did not become ready: {e}"))
    }

    /// Resolves once one of the pod's (a pod other than `old`'s, when given) restore or run
    /// containers has failed [`Pacing::gives_up_after`](crate::pacing::Pacing::gives_up_after)
    /// more times than when called, with that as a violation; never otherwise.
    async fn a_container_keeps_failing(&self, old: Option<&str>) -> Failure {
        let roles = &self.subject().profile.containers;
        let patience = self.env.timeouts.ready;
        let pod = self
            .ns
            .wait_for_pod(self.workload_name(), rules::any_pod_but(old), patience)
            .await;
        let Ok(pod) = pod else {
            return std::future::pending().await;
        };
        let Ok(timeline) = self.timeline(&pod.name).await else {
            return std::future::pending().await;
        };
        let more = self.pacing().gives_up_after;
        let limits: Vec<(String, usize)> = roles
            .restore
            .iter()
            .chain(&roles.run)
            .map(|c| (c.clone(), rules::failures(&timeline, c) + more))
            .collect();
        let watched = limits.clone();
        let keeps_failing =
            move |t: &Timeline| watched.iter().any(|(c, n)| rules::failures(t, c) >= *n);
        match self
            .ns
            .wait_for_timeline(&pod.name, keeps_failing, patience)
            .await
        {
            Ok(timeline) => {
                let names: Vec<&str> = limits
                    .iter()
                    .filter(|(c, n)| rules::failures(&timeline, c) >= *n)
                    .map(|(c, _)| c.as_str())
                    .collect();
                Failure::violation(format!(
                    "the pod did not become ready: `{}` failed {more} times in a row\n{}",
                    names.join("`, `"),
                    timeline.render()
                ))
            }
            Err(_) => std::future::pending().await,
        }
    }

    /// Waits for a ready pod other than `old`; fails early as [`wait_ready`](Self::wait_ready)
    /// does.
    pub async fn wait_replacement(&self, old: &PodInfo) -> Check<PodInfo> {
        let replaced = self.ns.wait_for_pod(
            self.workload_name(),
            rules::replaced(&old.uid),
            self.env.timeouts.ready,
        );
        let pod = tokio::select! {
            result = replaced => result.context("waiting for the replacement pod")?,
            failure = self.a_container_keeps_failing(Some(&old.uid)) => {
                return Err(failure.map_message(|m| format!("the replacement pod: {m}")));
            }
        };
        self.recorder.event(Utc::now(), EventKind::Ready, &pod.name);
        self.remember_spec(&pod).await;
        Ok(pod)
    }

    /// Keeps `pod`'s spec as created, for the checks that read the spec (SEC-1, SEC-2).
    async fn remember_spec(&self, pod: &PodInfo) {
        if let Ok(spec) = self.ns.pod_spec(&pod.name).await
            && let Ok(value) = serde_json::to_value(spec)
        {
            *self.admitted_spec.lock().expect("not poisoned") = Some(value);
        }
    }

    pub(super) async fn apply(&self, docs: Vec<Value>) -> Check {
        let objects = objects::parse_documents(docs, &self.subject().path)
            .context("reading the manifests")?;
        self.recorder
            .timed(Phase::Setup, self.ns.apply(objects))
            .await
            .context("applying the manifests")
    }

    /// The values of the profile's templates for this case's store.
    pub(super) fn template_values(&self) -> TemplateValues {
        let endpoint = self.store.endpoint_settings();
        let creds = self.store.credentials();
        let get =
            |map: &BTreeMap<String, String>, key: &str| map.get(key).cloned().unwrap_or_default();
        let s3_endpoint = get(&endpoint, "S3_ENDPOINT");
        let s3_prefix = get(&endpoint, "S3_PREFIX");
        let git_url = get(&endpoint, "GIT_URL");
        let (user, password) = (get(&creds, "git-username"), get(&creds, "git-password"));
        let auth_url = match git_url.split_once("://") {
            Some((scheme, rest)) if !user.is_empty() => {
                format!("{scheme}://{user}:{password}@{rest}")
            }
            _ => git_url.clone(),
        };
        TemplateValues::default()
            .with(
                "s3.host",
                s3_endpoint.split_once("://").map_or("", |(_, h)| h),
            )
            .with("s3.endpoint", s3_endpoint.clone())
            .with("s3.bucket", get(&endpoint, "S3_BUCKET"))
            .with("prefix", s3_prefix.trim_end_matches('/'))
            .with("s3.prefix", s3_prefix)
            .with("s3.region", get(&endpoint, "S3_REGION"))
            .with("s3.accessKeyId", get(&creds, "s3-access-key-id"))
            .with("s3.secretAccessKey", get(&creds, "s3-secret-access-key"))
            .with("git.url", git_url)
            .with("git.authUrl", auth_url)
            .with("git.branch", get(&endpoint, "GIT_BRANCH"))
            .with("git.username", user)
            .with("git.password", password)
            .with("restic.password", self.restic_password.clone())
            .with("namespace", self.ns.name().to_owned())
    }

    /// The ConfigMaps and Secrets the subject's wiring asks for, rendered for this case's store.
    pub(super) fn wiring_documents(&self) -> Vec<Value> {
        let Some(wiring) = self.subject().wiring(self.case.backend) else {
            return Vec::new();
        };
        let values = self.template_values();
        let render =
            |data: &BTreeMap<String, harness::subject::Template>| -> BTreeMap<String, String> {
                data.iter()
                    .map(|(k, t)| (k.clone(), t.render(&values)))
                    .collect()
            };
        let config_maps = wiring.config_maps.iter().map(|(name, data)| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": render(data)})
        });
        let secrets = wiring.secrets.iter().map(|(name, data)| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "stringData": render(data)})
        });
        config_maps.chain(secrets).collect()
    }

    /// Every credential value handed to the workload, for redaction and SEC-1.
    pub(super) fn credential_values(&self) -> Vec<String> {
        self.template_values().credentials()
    }

    /// The workload document with the backend, schedule and retention knobs set.
    pub(super) fn with_knobs(&self, mut doc: Value, knobs: &Knobs) -> Value {
        let profile = &self.subject().profile;
        if !profile.workload.is(&doc) {
            return doc;
        }
        let values = self.template_values();
        let runat = (!knobs.schedule.is_empty()).then(|| {
            knobs
                .schedule
                .iter()
                .map(|t| t.format("%H:%M:%S").to_string())
                .collect::<Vec<_>>()
                .join(",")
        });
        let mut fields: BTreeMap<String, Value> = self
            .subject()
            .wiring(self.case.backend)
            .map(|w| {
                w.fields
                    .iter()
                    .map(|(k, t)| (k.clone(), Value::String(t.render(&values))))
                    .collect()
            })
            .unwrap_or_default();
        if let (Some(runat), Some(knob)) = (&runat, profile.maintenance.schedule())
            && let KnobPlace::Field(pointer) = knob.place()
        {
            fields.insert(pointer.to_owned(), Value::String(runat.clone()));
        }
        if let (Some(keep), Some(knob)) = (knobs.keep, &profile.retention)
            && let KnobPlace::Field(pointer) = knob.place()
        {
            fields.insert(pointer.to_owned(), json!(keep));
        }
        for (pointer, value) in fields {
            set_pointer(&mut doc, &pointer, value);
        }
        if profile.workload.is_custom_resource() {
            return doc;
        }
        let mut annotations: BTreeMap<String, String> = self
            .subject()
            .wiring(self.case.backend)
            .map(|w| {
                w.annotations
                    .iter()
                    .map(|(k, t)| (k.clone(), t.render(&values)))
                    .collect()
            })
            .unwrap_or_default();
        let pod = if profile.workload.kind == "Pod" {
            &mut doc
        } else {
            &mut doc["spec"]["template"]
        };
        let backend_env: BTreeMap<String, String> = self
            .subject()
            .wiring(self.case.backend)
            .map(|w| {
                w.env
                    .iter()
                    .map(|(k, t)| (k.clone(), t.render(&values)))
                    .collect()
            })
            .unwrap_or_default();
        let mut maintenance_env = backend_env.clone();
        if let (Some(runat), Some(knob)) = (runat, profile.maintenance.schedule()) {
            match knob.place() {
                KnobPlace::Env(name) => maintenance_env.insert(name.to_owned(), runat),
                KnobPlace::Annotation(name) => annotations.insert(name.to_owned(), runat),
                KnobPlace::Field(_) => None,
            };
        }
        if let (Some(keep), Some(knob)) = (knobs.keep, &profile.retention) {
            match knob.place() {
                KnobPlace::Env(name) => maintenance_env.insert(name.to_owned(), keep.to_string()),
                KnobPlace::Annotation(name) => {
                    annotations.insert(name.to_owned(), keep.to_string())
                }
                KnobPlace::Field(_) => None,
            };
        }
        if !annotations.is_empty() {
            if !pod["metadata"]["annotations"].is_object() {
                pod["metadata"]["annotations"] = json!({});
            }
            for (k, v) in annotations {
                pod["metadata"]["annotations"][k] = Value::String(v);
            }
        }
        let spec = &mut pod["spec"];
        for list in ["initContainers", "containers"] {
            let Some(containers) = spec[list].as_array_mut() else {
                continue;
            };
            for container in containers {
                let name = container["name"].as_str().unwrap_or_default().to_owned();
                if profile.containers.restore.contains(&name) {
                    set_env(container, &backend_env);
                }
                if profile.containers.maintenance.contains(&name) {
                    set_env(container, &maintenance_env);
                }
            }
        }
        doc
    }
}

/// Sets the value at JSON pointer `pointer` (`/spec/backup/keep`) of `doc`, making the objects
/// on the way.
fn set_pointer(doc: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut at = doc;
    for token in parents {
        if !at[token.as_str()].is_object() {
            at[token.as_str()] = json!({});
        }
        at = &mut at[token.as_str()];
    }
    at[last.as_str()] = value;
}

/// Sets (or replaces) env vars on a container document.
fn set_env(container: &mut Value, vars: &BTreeMap<String, String>) {
    if vars.is_empty() {
        return;
    }
    if !container["env"].is_array() {
        container["env"] = json!([]);
    }
    let env = container["env"].as_array_mut().expect("just made an array");
    for (name, value) in vars {
        env.retain(|e| e["name"] != name.as_str());
        env.push(json!({"name": name, "value": value}));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_knob_field_is_set_at_its_pointer_making_the_objects_on_the_way() {
        let mut doc = json!({"kind": "PhasedApp", "spec": {"claimName": "data"}});
        super::set_pointer(&mut doc, "/spec/runAt", json!("12:00:00"));
        super::set_pointer(&mut doc, "/spec/backup/keep", json!(2));
        super::set_pointer(&mut doc, "/metadata/annotations/a~1b", json!("s3"));
        assert_eq!(
            doc,
            json!({
                "kind": "PhasedApp",
                "metadata": {"annotations": {"a/b": "s3"}},
                "spec": {"claimName": "data", "runAt": "12:00:00", "backup": {"keep": 2}}
            })
        );
    }
}

//! Credentials: where the backup store's secrets may and may not be read.

use harness::runtime::PodInfo;
use harness::runtime::Runtime;
use serde_json::Value;

use super::{Scenario, find_container, redact};
use crate::outcome::{Check, Context, Failure};
use crate::{ensure, fail};

impl<'a, R: Runtime> Scenario<'a, R> {
    /// No run-phase container's spec refers to the credentials Secret (env, envFrom, volumes).
    pub fn expect_run_spec_has_no_credentials(&self) -> Check {
        let spec = self.pod_spec()?;
        let secret_names: Vec<&String> = self
            .subject()
            .wiring(self.case.backend)
            .map(|w| w.secrets.keys().collect())
            .unwrap_or_default();
        let credential_volumes: Vec<String> = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| secret_names.iter().any(|s| mentions_secret(v, s)))
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect();
        for name in &self.subject().profile.containers.run {
            let container = find_container(&spec, name)
                .ok_or_else(|| Failure::error(format!("no container `{name}` in the pod spec")))?;
            if let Some(secret) = secret_names.iter().find(|s| {
                mentions_secret(&container["env"], s) || mentions_secret(&container["envFrom"], s)
            }) {
                fail!(
                    "run-phase container `{name}` takes backup credentials from the Secret {secret} in its environment"
                );
            }
            for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                let volume = mount["name"].as_str().unwrap_or_default();
                ensure!(
                    !credential_volumes.iter().any(|v| v == volume),
                    "run-phase container `{name}` mounts volume `{volume}`, which holds the backup credentials"
                );
            }
        }
        Ok(())
    }

    /// No running run-phase process has a credential value in its environment.
    pub async fn expect_run_processes_hold_no_credentials(&self, pod: &PodInfo) -> Check {
        let secrets = self.credential_values();
        for name in &self.subject().profile.containers.run {
            let env = self
                .ns
                .process_env(&pod.name, name)
                .await
                .with_context(|| format!("reading {name}'s environment"))?;
            for (key, value) in env {
                ensure!(
                    !secrets
                        .iter()
                        .any(|s| !s.is_empty() && value.contains(s.as_str())),
                    "run-phase container `{name}` holds a backup credential in env var {key}"
                );
            }
        }
        Ok(())
    }

    /// No file a run-phase container can read under its mounts (the data volume included, and
    /// whatever else it mounts) holds a credential value the harness handed to the pod.
    pub async fn expect_run_mounts_hold_no_credentials(&self, pod: &PodInfo) -> Check {
        let secrets = self.credential_values();
        for name in &self.subject().profile.containers.run {
            let archive = self
                .ns
                .read_container_mounts(&pod.name, name)
                .await
                .with_context(|| format!("reading what {name} mounts"))?;
            let found = files_holding_any(&archive, &secrets)
                .map_err(|e| Failure::error(format!("reading what {name} mounts: {e}")))?;
            if let Some(path) = found.first() {
                fail!(
                    "run-phase container `{name}` can read a backup credential in /{path}{}",
                    if found.len() > 1 {
                        format!(" (and {} more files)", found.len() - 1)
                    } else {
                        String::new()
                    }
                );
            }
        }
        Ok(())
    }

    /// Every maintenance mount of the data's storage is read-only: of the data volume, and of
    /// any other volume backed by the same claim (judged by storage, not by volume name).
    pub fn expect_maintenance_mounts_data_read_only(&self) -> Check {
        let spec = self.pod_spec()?;
        let data = &self.subject().profile.data.volume;
        let claim = self.subject().data_claim.as_deref();
        let same_storage: Vec<&str> = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| {
                v["name"] == data.as_str()
                    || claim.is_some_and(|c| v["persistentVolumeClaim"]["claimName"] == c)
            })
            .filter_map(|v| v["name"].as_str())
            .collect();
        for name in &self.subject().profile.containers.maintenance {
            let container = find_container(&spec, name)
                .ok_or_else(|| Failure::error(format!("no container `{name}` in the pod spec")))?;
            for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                let volume = mount["name"].as_str().unwrap_or_default();
                if same_storage.contains(&volume) {
                    ensure!(
                        mount["readOnly"] == true,
                        "maintenance container `{name}` mounts volume `{volume}` (the data's storage{}) read-write at {} (set readOnly: true)",
                        claim.map(|c| format!(", claim {c}")).unwrap_or_default(),
                        mount["mountPath"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        Ok(())
    }

    /// The workload's pod spec: the last ready pod's as the runtime created it (what admission
    /// webhooks made of it), else the manifest's.
    pub(super) fn pod_spec(&self) -> Check<Value> {
        if let Some(spec) = self.admitted_spec.lock().expect("not poisoned").clone() {
            return Ok(spec);
        }
        let profile = &self.subject().profile;
        if profile.workload.is_custom_resource() {
            return Err(Failure::error(format!(
                "no pod of {} {} was ready yet: its operator makes the pod spec",
                profile.workload.kind, profile.workload.name
            )));
        }
        let doc = self
            .docs
            .iter()
            .find(|d| profile.workload.is(d))
            .ok_or_else(|| Failure::error("the workload is missing from the manifests"))?;
        Ok(if profile.workload.kind == "Pod" {
            doc["spec"].clone()
        } else {
            doc["spec"]["template"]["spec"].clone()
        })
    }

    /// `text` with every credential of the scenario's store replaced by `<redacted>`.
    pub(crate) fn redact(&self, text: &str) -> String {
        redact(text, &self.credential_values())
    }

    /// The credentials handed to the workload: what no report may show.
    pub(crate) fn secrets(&self) -> Vec<String> {
        self.credential_values()
    }

    /// Saves logs and the timeline of the scenario's pods, and what the runtime adds (events,
    /// pod objects), under the report directory, with every credential redacted.
    pub(crate) async fn save_artefacts(&self) {
        let dir = self.env.report_dir.join("artefacts").join(self.ns.name());
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        self.ns.save_runtime_artefacts(&dir).await;
        let roles = &self.subject().profile.containers;
        for pod in self.ns.pods().await.unwrap_or_default() {
            if let Ok(timeline) = self.ns.timeline(&pod.name).await {
                let _ = std::fs::write(
                    dir.join(format!("{}.timeline.txt", pod.name)),
                    timeline.render(),
                );
            }
            for name in roles
                .restore
                .iter()
                .chain(&roles.run)
                .chain(&roles.maintenance)
            {
                if let Ok(logs) = self.ns.logs(&pod.name, name).await {
                    let _ = std::fs::write(dir.join(format!("{}.{name}.log", pod.name)), logs);
                }
            }
        }
        // NB: reports outlive the run; no credential may reach them, whoever wrote the file.
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                let _ = std::fs::write(entry.path(), self.redact(&text));
            }
        }
    }
}

/// The regular files in the tar `archive` whose bytes contain any of `needles` (empty ones
/// ignored), by path.
fn files_holding_any(archive: &[u8], needles: &[String]) -> std::io::Result<Vec<String>> {
    use std::io::Read as _;
    let mut found = Vec::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        let holds = needles
            .iter()
            .any(|n| !n.is_empty() && memchr::memmem::find(&bytes, n.as_bytes()).is_some());
        if holds {
            found.push(path);
        }
    }
    Ok(found)
}

/// Whether a JSON subtree refers to the Secret `name` (secretKeyRef, secretRef, secret volume,
/// projected secret source).
fn mentions_secret(value: &Value, name: &str) -> bool {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let refers = match key.as_str() {
                    "secretKeyRef" | "secretRef" => inner["name"] == name,
                    "secret" => inner["secretName"] == name || inner["name"] == name,
                    _ => false,
                };
                if refers || mentions_secret(inner, name) {
                    return true;
                }
            }
            false
        }
        Value::Array(items) => items.iter().any(|v| mentions_secret(v, name)),
        _ => false,
    }
}

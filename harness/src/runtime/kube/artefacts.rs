//! What a failed scenario leaves behind: pod YAML, timelines, logs of every container instance
//! the API still has, and the namespace's events.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};

use super::logs::{container_names, instances};
use super::status::{timeline_from_pod, to_chrono};
use super::{Error, KubeRuntime, Result};

impl KubeRuntime {
    /// Writes failure artefacts for namespace `ns` into `dir` (created if missing) and returns
    /// the files written, in order:
    ///
    /// - `<pod>.yaml`: the pod as the API server has it (spec and status);
    /// - `<pod>.timeline.txt`: its rendered timeline;
    /// - `<pod>.<container>.log` and `<pod>.<container>.previous.log`: the current and the
    ///   previous instance's log (`previous=true`), for every container that has one;
    /// - `events.txt`: the namespace's events, oldest first.
    ///
    /// Listing pods or events failing is an error; a single log that cannot be read is not: its
    /// file then says why, so one broken container does not hide the others' logs.
    pub async fn collect_failure_artefacts(&self, ns: &str, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: "create the artefact directory".into(),
            path: dir.to_owned(),
            source,
        })?;
        let mut written = Vec::new();
        for pod in self.pod_objects(ns).await? {
            self.pod_artefacts(ns, &pod, dir, &mut written).await?;
        }
        let events = self.events(ns).await?;
        written.push(write(dir, "events.txt", &events)?);
        Ok(written)
    }

    async fn pod_artefacts(
        &self,
        ns: &str,
        pod: &Pod,
        dir: &Path,
        written: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let yaml = serde_saphyr::to_string(pod)
            .unwrap_or_else(|err| format!("# cannot render the pod as YAML: {err}\n"));
        written.push(write(dir, &format!("{name}.yaml"), &yaml)?);
        let timeline = timeline_from_pod(pod).render();
        written.push(write(dir, &format!("{name}.timeline.txt"), &timeline)?);
        for container in container_names(pod) {
            let have = instances(pod, &container);
            for (previous, present, suffix) in [
                (true, have.previous, "previous.log"),
                (false, have.current, "log"),
            ] {
                if !present {
                    continue;
                }
                let text = self
                    .instance_log(ns, name, &container, previous)
                    .await
                    .unwrap_or_else(|err| format!("(no log: {err})\n"));
                written.push(write(dir, &format!("{name}.{container}.{suffix}"), &text)?);
            }
        }
        Ok(())
    }

    /// The namespace's events, one line each, oldest first.
    async fn events(&self, ns: &str) -> Result<String> {
        let mut out = String::new();
        for e in &self.event_objects(ns).await? {
            let _ = writeln!(out, "{}", event_line(e));
        }
        Ok(out)
    }

    /// The namespace's events, oldest first.
    pub(super) async fn event_objects(&self, ns: &str) -> Result<Vec<Event>> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let mut events = api
            .list(&ListParams::default())
            .await
            .map_err(Error::api(format!("list events in {ns}")))?
            .items;
        events.sort_by_key(event_time);
        Ok(events)
    }
}

/// When an event last happened, as far as it says.
fn event_time(e: &Event) -> Option<chrono::DateTime<chrono::Utc>> {
    e.last_timestamp
        .as_ref()
        .or(e.first_timestamp.as_ref())
        .map(to_chrono)
        .or_else(|| e.event_time.as_ref().map(|t| to_chrono(&Time(t.0))))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(to_chrono))
}

/// One event on one line: `<time> <type> <reason> <kind>/<name>: <message> (xN)`.
pub(super) fn event_line(e: &Event) -> String {
    format!(
        "{} {} {} {}/{}: {}{}",
        event_time(e).map_or("-".into(), |t| t.to_rfc3339()),
        e.type_.as_deref().unwrap_or("-"),
        e.reason.as_deref().unwrap_or("-"),
        e.involved_object.kind.as_deref().unwrap_or("-"),
        e.involved_object.name.as_deref().unwrap_or("-"),
        e.message.as_deref().unwrap_or_default().trim(),
        match e.count {
            Some(n) if n > 1 => format!(" (x{n})"),
            _ => String::new(),
        },
    )
}

fn write(dir: &Path, file: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    std::fs::write(&path, text).map_err(|source| Error::Io {
        what: "write a failure artefact".into(),
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

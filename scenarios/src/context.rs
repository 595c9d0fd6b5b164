//! One case's world: its namespace, backup store and subject on the shared runtime.
//!
//! [`Scenario`] is what the checks are written with: deploy, inject faults, observe, and the
//! expectations that read like the catalog.

use std::path::Path;

use chrono::{DateTime, Utc};
use harness::backups::BackupStore;
use harness::formats::FormatKind;
use harness::report::Part;
use harness::runtime::objects;
use harness::runtime::{Namespaced, Runtime};
use harness::services::in_cluster;
use harness::subject::{Layout, Subject};
use serde_json::Value;

use crate::environment::Environment;

mod app;
mod credentials;
mod deploy;
mod inject;
mod observe;
mod record;
mod replication;
mod store;
mod volume;
use crate::outcome::{Check, Context};
use crate::plan::Case;
pub use record::Recorder;
pub(crate) use store::whole_second_after;

/// The subject's knobs for one deployment.
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    schedule: Vec<DateTime<Utc>>,
    keep: Option<u32>,
}

impl Knobs {
    /// Backups at these times (UTC, whole seconds).
    pub fn schedule(times: &[DateTime<Utc>]) -> Self {
        Knobs {
            schedule: times.to_vec(),
            keep: None,
        }
    }

    /// Keep at most `n` backups.
    pub fn with_keep(mut self, n: u32) -> Self {
        self.keep = Some(n);
        self
    }
}

/// One case's view of the world.
pub struct Scenario<'a, R: Runtime> {
    env: &'a Environment<R>,
    case: &'a Case,
    /// The case's namespace on the run's runtime.
    ns: Namespaced<'a, R>,
    store: BackupStore,
    storage_applied: bool,
    workload_applied: bool,
    /// Manifest documents as JSON, before knobs.
    docs: Vec<Value>,
    /// Backups the harness seeded (not the workload's).
    seeded: std::sync::Mutex<Vec<String>>,
    /// The spec of the last pod seen ready, as the runtime created it (after admission).
    admitted_spec: std::sync::Mutex<Option<Value>>,
    /// The restic repository's password (`{restic.password}`), whatever the format.
    restic_password: String,
    /// What happened, for the report: faults, backups, readiness, pods that went away.
    recorder: Recorder,
}

impl<'a, R: Runtime> Scenario<'a, R> {
    pub(crate) async fn open(
        env: &'a Environment<R>,
        case: &'a Case,
        ns: String,
        recorder: Recorder,
    ) -> Check<Scenario<'a, R>> {
        let store = match (&env.external, &env.containers) {
            (Some(external), _) => BackupStore::external(external, case.backend, &ns)
                .context("using the external backup store")?,
            (None, Some(settings)) => BackupStore::start_container(case.backend, settings)
                .await
                .context("starting the backup store container")?,
            (None, None) => BackupStore::start_on(case.backend, env.store_bind)
                .await
                .context("starting the backup store")?,
        };
        // NB: a restic repository's password is a credential the harness hands out like the
        // store's: fresh per case, `{restic.password}` in the subject's templates.
        let restic_password = harness::services::random_token(16)
            .context("making the restic repository's password")?;
        let format: Box<dyn harness::formats::BackupFormat> =
            match case.subject.profile.backup.format {
                FormatKind::Restic => Box::new(
                    harness::formats::Restic::default()
                        .with_password(restic_password.clone())
                        .with_path(
                            case.subject
                                .profile
                                .backup
                                .path
                                .as_deref()
                                .unwrap_or_default(),
                        ),
                ),
                other => other.format(),
            };
        let mut store = store.with_format(format);
        let mut docs = Vec::new();
        for (path, text) in &case.subject.manifests {
            docs.extend(objects::read_documents(text, path).context("reading the manifests")?);
        }
        // NB: the namespace exists already: the environment creates it, so that it can always
        // remove it, whenever the case ends.
        if let (true, Some(addr)) = (env.store_via_service, store.local_addr()) {
            store = store.with_advertised_host(in_cluster::STORE_SERVICE);
            let docs = in_cluster::service_documents(in_cluster::STORE_SERVICE, addr);
            let objects = objects::parse_documents(docs, Path::new("(the store's Service)"))
                .context("building the store's Service")?;
            env.runtime
                .apply(&ns, objects)
                .await
                .context("making the backup store reachable from the namespace")?;
        }
        Ok(Scenario {
            env,
            case,
            ns: env.runtime.namespace(&ns),
            store,
            storage_applied: false,
            workload_applied: false,
            docs,
            seeded: Default::default(),
            admitted_spec: Default::default(),
            restic_password,
            recorder,
        })
    }

    /// The scenario's backup store, for cleanup once its namespace is gone.
    pub(crate) fn into_store(self) -> BackupStore {
        self.store
    }

    pub(crate) fn subject(&self) -> &Subject {
        &self.case.subject
    }

    /// This runtime's wait lengths and fault sizes.
    pub fn pacing(&self) -> &crate::pacing::Pacing {
        &self.env.pacing
    }

    /// The name the workload's pods are found by (for a custom resource: the Deployment or
    /// StatefulSet its operator makes).
    fn workload_name(&self) -> &str {
        self.subject().profile.workload.pods_name()
    }

    /// The first maintenance container's name.
    pub fn maintenance_container(&self) -> &str {
        &self.subject().profile.containers.maintenance[0]
    }

    /// How the subject's dataset sits on the volume.
    pub fn layout(&self) -> Layout {
        self.subject().profile.data.layout
    }

    /// Whether the data lives on a claim (survives the pod) rather than an emptyDir.
    pub fn data_on_claim(&self) -> bool {
        self.subject().data_claim.is_some()
    }
}

/// The part container `name` plays for `subject`, as its profile says.
pub(crate) fn part_of(subject: &Subject, name: &str) -> Option<Part> {
    let roles = &subject.profile.containers;
    let has = |list: &[String]| list.iter().any(|c| c == name);
    if has(&roles.restore) {
        Some(Part::Restore)
    } else if has(&roles.run) {
        Some(Part::Run)
    } else if has(&roles.maintenance) {
        Some(Part::Maintenance)
    } else {
        None
    }
}

/// `text` with every non-empty secret replaced by `<redacted>`.
pub fn redact<'s>(text: &str, secrets: impl IntoIterator<Item = &'s String>) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            out = out.replace(secret.as_str(), "<redacted>");
        }
    }
    out
}

fn find_container<'v>(spec: &'v Value, name: &str) -> Option<&'v Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_every_secret_and_ignores_empty_ones() {
        let secrets = ["s3cr3t".to_owned(), String::new(), "key".to_owned()];
        assert_eq!(
            redact("auth key=s3cr3t failed", &secrets),
            "auth <redacted>=<redacted> failed"
        );
    }
}

//! One case's world: its namespace, backup store and subject on the shared runtime.
//!
//! [`Scenario`] is what the checks are written with: deploy, inject faults, observe, and the
//! expectations that read like the catalog.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use harness::backups::BackupStore;
use harness::dataset::{Dataset, Snapshot};
use harness::faults::{self, Fault};
use harness::formats::{BackupInfo, FormatKind};
use harness::report::{EventKind, Part, PodTrace};
use harness::runtime::PodInfo;
use harness::runtime::Runtime;
use harness::runtime::objects;
use harness::runtime::timeline::Timeline;
use harness::services::in_cluster;
use harness::subject::{Layout, Subject, TemplateValues};
use serde_json::{Value, json};

use crate::environment::Environment;

mod app;
mod record;
use crate::outcome::{Check, Context, Failure};
use crate::runner::Case;
use crate::{ensure, fail};
pub use record::Recorder;

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
    ns: String,
    store: BackupStore,
    storage_applied: bool,
    workload_applied: bool,
    /// Manifest documents as JSON, before knobs.
    docs: Vec<Value>,
    /// Backups the harness seeded (not the workload's).
    seeded: std::sync::Mutex<Vec<String>>,
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
            ns,
            store,
            storage_applied: false,
            workload_applied: false,
            docs,
            seeded: Default::default(),
            restic_password,
            recorder,
        })
    }

    /// The scenario's backup store, for cleanup once its namespace is gone.
    pub(crate) fn into_store(self) -> BackupStore {
        self.store
    }

    fn subject(&self) -> &Subject {
        &self.case.subject
    }

    fn runtime(&self) -> &R {
        &self.env.runtime
    }

    fn workload_name(&self) -> &str {
        &self.subject().profile.workload.name
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

    // ----- deploying -------------------------------------------------------------------------

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

    async fn scale(&self, replicas: u32) -> Check {
        // NB: the pods scaled away are gone from the runtime afterwards; the report keeps
        // their last timelines.
        let retiring = if replicas == 0 {
            self.remember_pods(None).await
        } else {
            Vec::new()
        };
        let at = Utc::now();
        self.runtime()
            .scale(&self.ns, self.workload_name(), replicas)
            .await
            .with_context(|| format!("scaling {} to {replicas}", self.workload_name()))?;
        self.recorder.removed(&retiring, at);
        Ok(())
    }

    /// Records the timelines of the namespace's pods (only `pod` when given) for the report;
    /// returns their UIDs. Best effort: a pod the runtime cannot show is left out.
    async fn remember_pods(&self, pod: Option<&PodInfo>) -> Vec<String> {
        let pods = match pod {
            Some(pod) => vec![pod.clone()],
            None => self.runtime().pods(&self.ns).await.unwrap_or_default(),
        };
        let mut uids = Vec::new();
        for pod in pods {
            if let Ok(timeline) = self.runtime().timeline(&self.ns, &pod.name).await {
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
        let list = self.store.list();
        if let Ok(Ok(backups)) = tokio::time::timeout(Duration::from_secs(5), list).await {
            self.recorder.listed(&backups);
        }
    }

    /// Waits until the workload's pod is ready.
    pub async fn wait_ready(&self) -> Check<PodInfo> {
        match self
            .runtime()
            .wait_for_pod(
                &self.ns,
                self.workload_name(),
                |p| p.ready,
                self.env.timeouts.ready,
            )
            .await
        {
            Ok(pod) => {
                self.recorder.event(Utc::now(), EventKind::Ready, &pod.name);
                Ok(pod)
            }
            Err(e) => Err(Failure::violation(format!(
                "the pod did not become ready: {e}"
            ))),
        }
    }

    /// Waits for a ready pod other than `old`.
    pub async fn wait_replacement(&self, old: &PodInfo) -> Check<PodInfo> {
        let old_uid = old.uid.clone();
        let pod = self
            .runtime()
            .wait_for_pod(
                &self.ns,
                self.workload_name(),
                move |p| p.ready && p.uid != old_uid,
                self.env.timeouts.ready,
            )
            .await
            .context("waiting for the replacement pod")?;
        self.recorder.event(Utc::now(), EventKind::Ready, &pod.name);
        Ok(pod)
    }

    async fn apply(&self, docs: Vec<Value>) -> Check {
        let objects = objects::parse_documents(docs, &self.subject().path)
            .context("reading the manifests")?;
        self.runtime()
            .apply(&self.ns, objects)
            .await
            .context("applying the manifests")
    }

    /// The values of the profile's templates for this case's store.
    fn template_values(&self) -> TemplateValues {
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
            .with("namespace", self.ns.clone())
    }

    /// The ConfigMaps and Secrets the subject's wiring asks for, rendered for this case's store.
    fn wiring_documents(&self) -> Vec<Value> {
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
    fn credential_values(&self) -> Vec<String> {
        self.template_values().credentials()
    }

    /// The workload document with the backend, schedule and retention knobs set.
    fn with_knobs(&self, mut doc: Value, knobs: &Knobs) -> Value {
        let profile = &self.subject().profile;
        if doc["kind"] != profile.workload.kind.as_str()
            || doc["metadata"]["name"] != profile.workload.name.as_str()
        {
            return doc;
        }
        let spec = if profile.workload.kind == "Pod" {
            &mut doc["spec"]
        } else {
            &mut doc["spec"]["template"]["spec"]
        };
        let values = self.template_values();
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
        if !knobs.schedule.is_empty() {
            let runat = knobs
                .schedule
                .iter()
                .map(|t| t.format("%H:%M:%S").to_string())
                .collect::<Vec<_>>()
                .join(",");
            maintenance_env.insert(profile.schedule.env.clone(), runat);
        }
        if let (Some(keep), Some(knob)) = (knobs.keep, &profile.retention) {
            maintenance_env.insert(knob.env.clone(), keep.to_string());
        }
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

    // ----- the backup store ------------------------------------------------------------------

    /// Takes a backup of `dataset` into the scenario's store; returns its ID.
    pub async fn seed_backup(&self, dataset: &Dataset) -> Check<String> {
        let id = self.store.seed(dataset).await.context("seeding a backup")?;
        self.seeded.lock().expect("not poisoned").push(id.clone());
        self.recorder.seeded(&id);
        Ok(id)
    }

    /// Seeds `datasets` (oldest first) as backups taken an hour apart, ending an hour ago.
    /// Where the store allows it (not git, whose history is the order), they are created out
    /// of order (for four: the third, the first, the newest, the second), so that a workload
    /// that takes the newest upload, or the last listed, for the newest backup shows. Returns
    /// their IDs, oldest first.
    pub async fn seed_history(&self, datasets: &[Dataset]) -> Check<Vec<String>> {
        let n = datasets.len();
        let now = Utc::now();
        let taken = |i: usize| now - chrono::Duration::hours((n - i) as i64);
        let order: Vec<usize> = if self.case.backend != harness::subject::Backend::Git && n >= 3 {
            [n - 2, 0, n - 1].into_iter().chain(1..n - 2).collect()
        } else {
            (0..n).collect()
        };
        let mut ids = vec![String::new(); n];
        for i in order {
            let info = self
                .store
                .seed_at(&datasets[i], Some(taken(i)))
                .await
                .context("seeding a backup")?;
            self.seeded
                .lock()
                .expect("not poisoned")
                .push(info.id.clone());
            self.recorder.seeded(&info.id);
            ids[i] = info.id;
        }
        Ok(ids)
    }

    /// Backup IDs in the store, newest first.
    pub async fn backups(&self) -> Check<Vec<String>> {
        Ok(self
            .backup_infos()
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect())
    }

    /// The backups in the store, newest first, with the time each was taken (as the format
    /// lists them: phasepod's IDs, a files backup's name, a restic snapshot's time).
    async fn backup_infos(&self) -> Check<Vec<BackupInfo>> {
        let backups = self.store.list().await.context("listing backups")?;
        self.recorder.listed(&backups);
        Ok(backups)
    }

    /// Restores backup `id` into a scratch directory, verifying every file.
    pub async fn expect_backup_verifies(&self, id: &str) -> Check {
        match self.store.verify(id).await {
            Ok(_) => Ok(()),
            // NB: a backup the subject made that does not verify is its violation; a store the
            // harness cannot read is the harness's error.
            Err(harness::backups::Error::Format(e)) if e.is_bad_backup() => {
                fail!("{e}")
            }
            Err(e) => Err(e).with_context(|| format!("reading backup {id}")),
        }
    }

    /// A whole second at least `lead` from now, for a schedule.
    pub fn schedule_in(&self, lead: Duration) -> DateTime<Utc> {
        let at = Utc::now() + chrono::Duration::from_std(lead).expect("small duration");
        (at + chrono::Duration::seconds(1))
            .with_nanosecond(0)
            .expect("zero nanoseconds is valid")
    }

    /// Waits until the wall clock reaches `at` (a fault that must span a scheduled time).
    pub async fn wait_until(&self, at: DateTime<Utc>) {
        if let Ok(wait) = (at - Utc::now()).to_std() {
            // NB: the condition is the clock itself: the store must stay down past `at`.
            tokio::time::sleep(wait).await;
        }
    }

    /// Sleeps until half a second before `at` (the observation point for "none before it").
    async fn sleep_until_just_before(&self, at: DateTime<Utc>) {
        let target = at - chrono::Duration::milliseconds(500);
        if let Ok(wait) = (target - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Just before `at`, the store holds no backup the workload took before `at` (backup IDs carry
    /// the time they were taken, so a slow listing cannot blur the line; seeded ones do not
    /// count).
    pub async fn expect_no_backup_before(&self, at: DateTime<Utc>) -> Check {
        self.sleep_until_just_before(at).await;
        let seeded = self.seeded.lock().expect("not poisoned").clone();
        let early: Vec<String> = self
            .backup_infos()
            .await?
            .into_iter()
            .filter(|b| b.taken < at)
            .map(|b| b.id)
            .filter(|id| !seeded.contains(id))
            .collect();
        ensure!(
            early.is_empty(),
            "backups taken before the scheduled time {at}: {early:?}"
        );
        Ok(())
    }

    /// The newest backup taken at or after `at`, if the store holds one.
    pub async fn backup_taken_since(&self, at: DateTime<Utc>) -> Check<Option<BackupInfo>> {
        let backups = self.backup_infos().await?;
        Ok(backups
            .into_iter()
            .find(|b| b.taken >= at - chrono::Duration::milliseconds(1)))
    }

    /// Waits for a backup taken at or after `at` and no later than `at + tolerance`.
    pub async fn wait_backup_after(&self, at: DateTime<Utc>, tolerance: Duration) -> Check<String> {
        let deadline = at + chrono::Duration::from_std(tolerance).expect("small duration");
        loop {
            let backups = self.backup_infos().await?;
            if let Some(backup) = backups
                .iter()
                .find(|b| b.taken >= at - chrono::Duration::milliseconds(1))
            {
                ensure!(
                    backup.taken <= deadline,
                    "backup {} was taken at {}, later than {at} + {tolerance:?}",
                    backup.id,
                    backup.taken
                );
                return Ok(backup.id.clone());
            }
            // NB: punctuality is judged by the time a backup was taken (its ID); one taken in
            // time may still be uploading on a loaded machine.
            let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
            ensure!(
                Utc::now() <= deadline + completion_grace(),
                "no backup taken between {at} and {deadline}; backups: {ids:?}"
            );
            // NB: object stores and git remotes offer no change feed; listing every 200 ms is the watch.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the store holds at most `n` backups.
    pub async fn wait_backup_count_at_most(&self, n: u32) -> Check {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ids = self.backups().await?;
            if ids.len() <= n as usize {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{} backups kept with KEEP={n}: {ids:?}",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // ----- faults ----------------------------------------------------------------------------

    /// Realises `fault` on this scenario's runtime and store, and records when it struck.
    pub async fn inject(&mut self, fault: Fault) -> Check {
        let what = fault.to_string();
        let at = self.strike(fault).await?;
        self.recorder.event(at, EventKind::Fault, what);
        Ok(())
    }

    /// Realises `fault`; returns the moment its last step began (the strike itself, after any
    /// preparation or wait).
    async fn strike(&mut self, fault: Fault) -> Check<DateTime<Utc>> {
        let step = format!("fault `{fault}`");
        let at = Utc::now();
        match fault {
            Fault::EmptyVolume => {
                let empty = tempfile::tempdir().context("scratch directory")?;
                let at = Utc::now();
                self.write_volume(empty.path()).await.context(&step)?;
                Ok(at)
            }
            Fault::CorruptVolume { mode } => {
                let copy = self.read_volume().await?;
                faults::corrupt_dataset(copy.path(), &self.subject().profile.data, mode)
                    .context(&step)?;
                let at = Utc::now();
                self.write_volume(copy.path()).await.context(&step)?;
                Ok(at)
            }
            Fault::CorruptLatestBackup => {
                self.store.corrupt_latest().await.context(&step)?;
                Ok(at)
            }
            Fault::DeleteLatestBackup => {
                self.store.delete_latest().await.context(&step)?;
                Ok(at)
            }
            Fault::StoreDown => {
                self.store.down().await.context(&step)?;
                Ok(at)
            }
            Fault::StoreUp => {
                self.store.up().await.context(&step)?;
                Ok(at)
            }
            Fault::SlowStore {
                bytes_per_sec,
                latency,
            } => {
                let slowness = harness::services::Slowness {
                    bytes_per_sec,
                    latency,
                };
                self.store.slow_down(Some(slowness)).context(&step)?;
                Ok(at)
            }
            Fault::StoreFullSpeed => {
                self.store.slow_down(None).context(&step)?;
                Ok(at)
            }
            Fault::KillContainer { name } => {
                let pod = self.current_pod().await?;
                let at = Utc::now();
                self.runtime()
                    .kill_container(&self.ns, &pod.name, &name)
                    .await
                    .context(&step)?;
                Ok(at)
            }
            Fault::DeletePod => {
                let pod = self.current_pod().await?;
                let uids = self.remember_pods(Some(&pod)).await;
                let at = Utc::now();
                self.runtime()
                    .delete_pod(&self.ns, &pod.name)
                    .await
                    .context(&step)?;
                self.recorder.removed(&uids, at);
                Ok(at)
            }
            Fault::KillInitMidRestore => {
                let pod = self
                    .runtime()
                    .wait_for_pod(
                        &self.ns,
                        self.workload_name(),
                        |_| true,
                        self.env.timeouts.ready,
                    )
                    .await
                    .context(&step)?;
                let restore = self.subject().profile.containers.restore[0].clone();
                let name = restore.clone();
                self.runtime()
                    .wait_for_timeline(
                        &self.ns,
                        &pod.name,
                        // NB: started, whether or not it still runs: a restore that already
                        // finished is a missed strike the caller retries.
                        move |t| !t.runs(&name).is_empty(),
                        self.env.timeouts.ready,
                    )
                    .await
                    .violation("waiting for the restore container to start")?;
                self.wait_restore_under_way().await?;
                let at = Utc::now();
                self.runtime()
                    .kill_container(&self.ns, &pod.name, &restore)
                    .await
                    .context(&step)?;
                Ok(at)
            }
        }
    }

    /// Waits until the restore is under way, so a kill lands mid-way: it has written a few files
    /// on the volume; without a claim to look at, it has downloaded [`RESTORE_PROGRESS_BYTES`]
    /// (an embedded store counts them); without either, the start of the restore has to do.
    async fn wait_restore_under_way(&self) -> Check {
        let baseline = self.store.bytes_sent();
        if !self.data_on_claim() && baseline.is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.data_on_claim() {
                if self.volume_file_count(RESTORE_PROGRESS_FILES).await? >= RESTORE_PROGRESS_FILES {
                    return Ok(());
                }
            } else if let Some((now, then)) = self.store.bytes_sent().zip(baseline)
                && now.saturating_sub(then) >= RESTORE_PROGRESS_BYTES
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the restore was not under way within 10 s (no {RESTORE_PROGRESS_FILES} files on \
                 the volume, or {RESTORE_PROGRESS_BYTES} bytes from the store)"
            );
            // NB: no runtime offers a file-change feed for a claim; it is counted every 5 ms.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether a [`Fault::SlowStore`] paces this case's restores: the store is an embedded one
    /// (it can be slowed) and the backend is S3, where a restore writes files as it downloads
    /// them (a git restore fetches everything before it writes a file, so the store cannot pace
    /// its writes).
    pub fn store_paces_restores(&self) -> bool {
        self.store_can_slow_down() && self.case.backend == harness::subject::Backend::S3
    }

    /// Whether the store can be slowed down ([`Fault::SlowStore`]): the embedded ones.
    pub fn store_can_slow_down(&self) -> bool {
        self.store.bytes_sent().is_some()
    }

    async fn current_pod(&self) -> Check<PodInfo> {
        self.runtime()
            .wait_for_pod(
                &self.ns,
                self.workload_name(),
                |_| true,
                self.env.timeouts.ready,
            )
            .await
            .context("finding the pod")
    }

    // ----- the volume ------------------------------------------------------------------------

    /// The data claim's name.
    fn data_claim(&self) -> Check<&str> {
        match &self.subject().data_claim {
            Some(claim) => Ok(claim),
            None => fail!(
                "the data volume is an emptyDir: it cannot be prepared or damaged before the pod exists"
            ),
        }
    }

    /// A copy of the volume's files in a scratch directory.
    async fn read_volume(&self) -> Check<tempfile::TempDir> {
        let archive = self
            .runtime()
            .read_claim(&self.ns, self.data_claim()?)
            .await
            .context("reading the data volume")?;
        let copy = tempfile::tempdir().context("scratch directory")?;
        harness::archive::replace_dir(copy.path(), &archive[..])
            .context("unpacking the data volume")?;
        Ok(copy)
    }

    /// Replaces the volume's files with `dir`'s, owned by the workload's user.
    async fn write_volume(&self, dir: &Path) -> Check {
        let archive =
            harness::archive::pack_dir(dir, Vec::new()).context("packing files for the volume")?;
        self.runtime()
            .write_claim(&self.ns, self.data_claim()?, archive, self.workload_owner())
            .await
            .context("writing the data volume")
    }

    /// The uid and gid the workload's restore container writes as, when its spec says.
    fn workload_owner(&self) -> Option<(u32, u32)> {
        let spec = self.pod_spec().ok()?;
        let restore = find_container(&spec, &self.subject().profile.containers.restore[0])?;
        let field = |name: &str| {
            restore["securityContext"][name]
                .as_u64()
                .or_else(|| spec["securityContext"][name].as_u64())
                .and_then(|id| u32::try_from(id).ok())
        };
        let uid = field("runAsUser")?;
        let gid = field("runAsGroup")
            .or_else(|| spec["securityContext"]["fsGroup"].as_u64()?.try_into().ok())
            .unwrap_or(uid);
        Some((uid, gid))
    }

    /// Regular files on the volume, counted no further than `limit`.
    pub async fn volume_file_count(&self, limit: usize) -> Check<usize> {
        self.runtime()
            .count_claim_files(&self.ns, self.data_claim()?, limit)
            .await
            .context("counting the files on the data volume")
    }

    /// Writes `dataset` onto the volume as a valid dataset in the subject's layout (for
    /// `phasepod`, with a manifest of generation `generation`).
    pub async fn write_volume_dataset(&self, dataset: &Dataset, generation: u64) -> Check {
        let dir = tempfile::tempdir().context("scratch directory")?;
        let data = &self.subject().profile.data;
        let root = dir.path().join(&data.root);
        match data.layout {
            Layout::Phasepod => {
                harness::formats::phasepod::write_dataset_dir(&root, dataset, generation)
                    .context("writing a dataset for the volume")?
            }
            Layout::Plain => dataset
                .write_files(&root)
                .context("writing a dataset for the volume")?,
        }
        self.write_volume(dir.path()).await
    }

    /// Every file under the dataset root on the volume with bytes and modification times (whole
    /// seconds: the volume is read as a tar archive).
    pub async fn volume_snapshot(&self) -> Check<Snapshot> {
        let copy = self.read_volume().await?;
        Snapshot::of(&copy.path().join(&self.subject().profile.data.root))
            .context("reading the volume")
    }

    /// After a killed restore: whatever is on the volume is not mistaken for a valid dataset. Only
    /// a layout with an integrity marker can say "valid" of a volume; for a plain one, what the
    /// next attempt makes of the leftovers is judged by what the app then serves.
    pub async fn expect_no_partial_dataset_looks_valid(&self, backup: &Dataset) -> Check {
        let data = &self.subject().profile.data;
        if !data.layout.has_integrity_marker() {
            return Ok(());
        }
        let copy = self.read_volume().await?;
        let current = copy.path().join(&data.root);
        if !current.exists() {
            return Ok(());
        }
        if let Ok(files) = harness::formats::phasepod::read_dataset_dir(&current) {
            ensure!(
                files == *backup,
                "a killed restore left a dataset that verifies but is not the backup ({} of {} files)",
                files.files.len(),
                backup.files.len()
            );
        }
        Ok(())
    }

    // ----- observations ----------------------------------------------------------------------

    async fn timeline(&self, pod: &str) -> Check<Timeline> {
        self.runtime()
            .timeline(&self.ns, pod)
            .await
            .context("reading the pod's timeline")
    }

    /// RUN-1's rule: every run-phase container's every start came after every restore container
    /// last terminated with exit 0.
    pub async fn expect_restore_finished_before_run(&self, pod: &str) -> Check {
        let timeline = self.timeline(pod).await?;
        let roles = &self.subject().profile.containers;
        let mut restored_at = None;
        for name in &roles.restore {
            let runs = timeline.runs(name);
            let Some(last) = runs.last() else {
                fail!(
                    "restore container `{name}` never ran\n{}",
                    timeline.render()
                );
            };
            ensure!(
                last.exit_code == Some(0),
                "restore container `{name}` did not end with exit 0\n{}",
                timeline.render()
            );
            let finished = last.finished_at.expect("an exit code implies a finish");
            restored_at = Some(restored_at.map_or(finished, |t: DateTime<Utc>| t.max(finished)));
        }
        let restored_at = restored_at.expect("at least one restore container");
        for name in &roles.run {
            for run in timeline.runs(name) {
                ensure!(
                    run.started_at >= restored_at,
                    "run-phase container `{name}` started at {} before the restore finished at {restored_at}\n{}",
                    run.started_at,
                    timeline.render()
                );
            }
        }
        Ok(())
    }

    /// Holds while the store is down until the restore container has failed `n` times (within
    /// the runtime's readiness timeout: a kubelet backs off between restarts), or until one
    /// restore run has kept running for `window` (a restore that retries by itself, as restic
    /// does, is as good as one that fails and is restarted).
    pub async fn wait_restore_held(&self, n: usize, window: Duration) -> Check {
        let pod = self.current_pod().await?;
        let restore = self.subject().profile.containers.restore[0].clone();
        // NB: a cluster keeps only the last two runs; every run before the first one shown
        // failed too (a restore that succeeded would have ended the init phase).
        let failures = {
            let restore = restore.clone();
            move |t: &Timeline| {
                let runs = t.runs(&restore);
                let lost = runs.first().map_or(0, |r| r.restart_count as usize);
                lost + runs
                    .iter()
                    .filter(|r| r.exit_code.is_some_and(|c| c != 0))
                    .count()
            }
        };
        let deadline = Instant::now() + self.env.timeouts.ready;
        let held_for = chrono::Duration::from_std(window).expect("small duration");
        loop {
            let failed_enough = failures.clone();
            // NB: the timeline changes on every failure; between changes the clock decides
            // whether a run has kept going long enough, so the watch wakes once a second.
            let step = self
                .runtime()
                .wait_for_timeline(
                    &self.ns,
                    &pod.name,
                    move |t| failed_enough(t) >= n,
                    Duration::from_secs(1),
                )
                .await;
            if step.is_ok() {
                return Ok(());
            }
            let timeline = self.timeline(&pod.name).await?;
            let last = timeline.runs(&restore).last().cloned();
            if let Some(run) = &last {
                if run.is_running() && Utc::now() - run.started_at >= held_for {
                    return Ok(());
                }
                if run.exit_code == Some(0) {
                    fail!(
                        "the restore exited 0 while the store was down, so the run phase starts on data that did not come from the store\n{}",
                        timeline.render()
                    );
                }
            }
            if Instant::now() >= deadline {
                fail!(
                    "the restore neither failed {n} time(s) nor kept trying for {window:?} while the store was down: it failed {} time(s) in {:?}\n{}",
                    failures(&timeline),
                    self.env.timeouts.ready,
                    timeline.render()
                );
            }
        }
    }

    /// The maintenance container's latest run started before `at`, its scheduled time: else the
    /// machine was too slow for the schedule the scenario set, which says nothing about the
    /// subject (an `error`, not a verdict).
    pub async fn expect_maintenance_running_before(&self, at: DateTime<Utc>) -> Check {
        let pod = self.current_pod().await?;
        let timeline = self.timeline(&pod.name).await?;
        let name = self.maintenance_container().to_owned();
        match timeline.runs(&name).last() {
            Some(run) if run.started_at < at => Ok(()),
            Some(run) => Err(Failure::error(format!(
                "the maintenance container `{name}` started at {}, after its scheduled time {at}: this machine is too slow for the scenario's schedule lead (no verdict)\n{}",
                run.started_at,
                timeline.render()
            ))),
            None => Err(Failure::error(format!(
                "the maintenance container `{name}` has not started\n{}",
                timeline.render()
            ))),
        }
    }

    /// No run-phase container has started in the pod.
    pub async fn expect_run_phase_not_started(&self) -> Check {
        let pod = self.current_pod().await?;
        let timeline = self.timeline(&pod.name).await?;
        for name in &self.subject().profile.containers.run {
            ensure!(
                timeline.runs(name).is_empty(),
                "run-phase container `{name}` started although the restore never succeeded\n{}",
                timeline.render()
            );
        }
        Ok(())
    }

    /// Waits until the maintenance container has been restarted and runs again.
    pub async fn wait_maintenance_restarted(&self, pod: &PodInfo) -> Check {
        let name = self.maintenance_container().to_owned();
        let restarted = move |t: &Timeline| {
            let runs = t.runs(&name);
            runs.len() >= 2 && runs.last().is_some_and(|r| r.is_running())
        };
        if let Err(e) = self
            .runtime()
            .wait_for_timeline(&self.ns, &pod.name, restarted, Duration::from_secs(15))
            .await
        {
            let timeline = self.timeline(&pod.name).await?;
            fail!(
                "the maintenance container `{}` was not restarted after being killed ({e})\n{}",
                self.maintenance_container(),
                timeline.render()
            );
        }
        Ok(())
    }

    /// Every run-phase container has run exactly once.
    pub async fn expect_run_containers_never_restarted(&self, pod: &str) -> Check {
        let timeline = self.timeline(pod).await?;
        for name in &self.subject().profile.containers.run {
            ensure!(
                timeline.runs(name).len() == 1,
                "run-phase container `{name}` was restarted\n{}",
                timeline.render()
            );
        }
        Ok(())
    }

    // ----- credentials -----------------------------------------------------------------------

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
                .runtime()
                .process_env(&self.ns, &pod.name, name)
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
                .runtime()
                .read_container_mounts(&self.ns, &pod.name, name)
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

    fn pod_spec(&self) -> Check<Value> {
        let profile = &self.subject().profile;
        let doc = self
            .docs
            .iter()
            .find(|d| {
                d["kind"] == profile.workload.kind.as_str()
                    && d["metadata"]["name"] == profile.workload.name.as_str()
            })
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
        let dir = self.env.report_dir.join("artefacts").join(&self.ns);
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        self.runtime().save_runtime_artefacts(&self.ns, &dir).await;
        let roles = &self.subject().profile.containers;
        for pod in self.runtime().pods(&self.ns).await.unwrap_or_default() {
            if let Ok(timeline) = self.runtime().timeline(&self.ns, &pod.name).await {
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
                if let Ok(logs) = self.runtime().logs(&self.ns, &pod.name, name).await {
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

/// How long a backup taken in time may take to land in the store.
pub(crate) fn completion_grace() -> chrono::Duration {
    chrono::Duration::seconds(10)
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

/// Files a restore must have written before [`Fault::KillInitMidRestore`] strikes.
const RESTORE_PROGRESS_FILES: usize = 20;

/// Bytes a restore must have downloaded before [`Fault::KillInitMidRestore`] strikes, when the
/// store counts them.
const RESTORE_PROGRESS_BYTES: u64 = 64 * 1024;

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

fn find_container<'v>(spec: &'v Value, name: &str) -> Option<&'v Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
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

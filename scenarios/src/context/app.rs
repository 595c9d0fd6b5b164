//! The subject's app and dataset as the checks see them, from the outside: files read and written
//! through the app the way the profile says (`app.read`, `app.write`: HTTP or exec), and the
//! dataset on the data volume (under `data.root`, in its `data.layout`, minus `data.ignore`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use harness::app::AppClient;
use harness::dataset::Dataset;
use harness::runtime::{PodInfo, Runtime};
use harness::subject::{AppAccess, AppRequest};

use super::Scenario;
use super::store::chrono_of;
use crate::outcome::{Check, Context, Failure};
use crate::probe::BackgroundProbe;
use crate::{ensure, fail};

impl<R: Runtime> Scenario<'_, R> {
    async fn app_client(&self, pod: &PodInfo) -> Check<AppClient> {
        let addr = self
            .ns
            .reach(pod, self.subject().profile.app.port)
            .await
            .context("reaching the app's port")?;
        Ok(AppClient::new(addr))
    }

    /// Reads the file at `path` (relative to the dataset root) through the app.
    async fn read_through_app(
        &self,
        pod: &PodInfo,
        client: &AppClient,
        path: &str,
    ) -> Check<Vec<u8>> {
        let Some(read) = &self.subject().profile.app.read else {
            return Err(Failure::error("the profile gives no `app.read`"));
        };
        match read.for_file(path, None) {
            AppRequest::Http(target) | AppRequest::Webdav(target) => Ok(client
                .get(&target)
                .await
                .violation(&format!("the app did not serve {path}"))?
                .to_vec()),
            AppRequest::Exec(argv) => {
                let out = self.exec_in_app(pod, &argv).await?;
                use base64::Engine as _;
                let text: String = out.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| {
                        Failure::error(format!(
                            "`app.read` printed no base64 for {path} ({e}); make it `base64 \"$1\"`"
                        ))
                    })
            }
        }
    }

    /// Writes `bytes` to `path` (relative to the dataset root) through the app.
    async fn write_file_through_app(
        &self,
        pod: &PodInfo,
        client: &AppClient,
        path: &str,
        bytes: &[u8],
    ) -> Check {
        let Some(write) = &self.subject().profile.app.write else {
            return Err(Failure::error("the profile gives no `app.write`"));
        };
        match write.for_file(path, Some(bytes)) {
            AppRequest::Http(target) => client
                .put(&target, bytes.to_vec())
                .await
                .violation(&format!("the app did not take a write of {path}")),
            AppRequest::Webdav(target) => client
                .webdav_put(&target, bytes.to_vec())
                .await
                .violation(&format!("the app did not take a WebDAV write of {path}")),
            AppRequest::Exec(argv) => self.exec_in_app(pod, &argv).await.map(drop),
        }
    }

    /// Runs `argv` in the app container; a non-zero exit is the app's failure.
    async fn exec_in_app(&self, pod: &PodInfo, argv: &[String]) -> Check<String> {
        let container = &self.subject().profile.app.container;
        let out = self
            .ns
            .exec(&pod.name, container, argv)
            .await
            .context("exec in the app container")?;
        ensure!(
            out.exit_code == 0,
            "`{}` in the app container exited {}: {}",
            argv.join(" "),
            out.exit_code,
            out.stderr.trim()
        );
        Ok(out.stdout)
    }

    /// Writes every file of `dataset` through the app.
    pub async fn write_through_app(&self, pod: &PodInfo, dataset: &Dataset) -> Check {
        let client = self.app_client(pod).await?;
        for (path, bytes) in &dataset.files {
            self.write_file_through_app(pod, &client, path, bytes)
                .await?;
        }
        Ok(())
    }

    /// The dataset is exactly `expected`: on the data volume (when it is a claim the harness can
    /// read), and through the app for every file (when the profile says how to read one).
    pub async fn expect_serves(&self, pod: &PodInfo, expected: &Dataset) -> Check {
        if self.data_on_claim() {
            let on_volume = self.volume_dataset().await?;
            expect_same("the data volume holds", &on_volume, expected)?;
        }
        if self.subject().profile.app.read.is_some() {
            let client = self.app_client(pod).await?;
            for (path, bytes) in &expected.files {
                let served = self.read_through_app(pod, &client, path).await?;
                ensure!(
                    served == *bytes,
                    "the app serves different bytes for {path} ({} bytes, expected {})",
                    served.len(),
                    bytes.len()
                );
            }
        }
        Ok(())
    }

    /// The dataset on the volume: the files under the root (for layout `phasepod`, those its
    /// manifest lists, which must verify; for `sqlite`, the database's `files` table, which must
    /// pass SQLite's integrity check), minus ignored paths.
    pub async fn volume_dataset(&self) -> Check<Dataset> {
        let copy = self.read_volume().await?;
        let data = &self.subject().profile.data;
        let root = copy.path().join(&data.root);
        let dataset = self.dataset_at(&root).await?.map_err(|why| {
            Failure::violation(format!("the dataset on the volume does not verify: {why}"))
        })?;
        Ok(Dataset {
            files: dataset
                .files
                .into_iter()
                .filter(|(path, _)| !data.is_ignored(path))
                .collect(),
        })
    }

    /// Asks the app every [`Pacing::availability_every`](crate::pacing::Pacing::availability_every) in the background until stopped, recording every failed or
    /// slow answer: a read of `path` through HTTP when the app reads over HTTP, else a TCP
    /// connection to its port.
    pub async fn watch_availability(&self, pod: &PodInfo, path: &str) -> Check<BackgroundProbe> {
        let answer = self.pacing().answer;
        let client = self.app_client(pod).await?.with_timeout(answer);
        let target = match &self.subject().profile.app.read {
            Some(read @ AppAccess::HttpGet(_)) => match read.for_file(path, None) {
                AppRequest::Http(target) | AppRequest::Webdav(target) => Some(target),
                AppRequest::Exec(_) => None,
            },
            _ => None,
        };
        Ok(BackgroundProbe::spawn(
            move |_| {
                let (client, target) = (client.clone(), target.clone());
                async move {
                    match target {
                        Some(target) => client
                            .get(&target)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string()),
                        None => tokio::time::timeout(
                            answer,
                            tokio::net::TcpStream::connect(client.addr()),
                        )
                        .await
                        .map_err(|_| format!("no connection within {answer:?}"))?
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    }
                }
            },
            self.pacing().availability_every,
        ))
    }

    /// Writes files through the app, one after another from [`Pacing::churn_lead`](crate::pacing::Pacing::churn_lead) before `at`,
    /// until a backup taken at or after `at` is in the store (no later than `at + patience`; from
    /// `at` on, the store is listed when it has changed, at most every
    /// [`Pacing::store_look_every`](crate::pacing::Pacing::store_look_every));
    /// returns its ID and how many writes were made. The writes go on through the whole backup.
    pub async fn write_until_backup(
        &self,
        pod: &PodInfo,
        at: DateTime<Utc>,
        patience: Duration,
    ) -> Check<(String, usize)> {
        let client = self.app_client(pod).await?;
        let deadline = at + chrono::Duration::from_std(patience).expect("small duration");
        let mut writes = 0usize;
        let mut next_look = at;
        let mut changes = self.store.changes();
        // NB: the writes that matter are those around the backup; churning the app for the
        // whole lead before it only burns the machine.
        let pacing = *self.pacing();
        if let Ok(idle) = (at - chrono_of(pacing.churn_lead) - Utc::now()).to_std() {
            tokio::time::sleep(idle).await;
        }
        loop {
            let path = format!("churn/{:02}.bin", writes % 20);
            let bytes = harness::dataset::pseudo_random_bytes(
                &format!("churn-{writes}"),
                2000 + (writes % 7) * 1000,
            );
            self.write_file_through_app(pod, &client, &path, &bytes)
                .await?;
            writes += 1;
            // NB: listing a store is costly (a git fetch); no backup can be taken before `at`,
            // and none can have appeared unless the store changed.
            let now = Utc::now();
            if now >= next_look && changes.take_change() {
                next_look = now + chrono_of(pacing.store_look_every);
                if let Some(backup) = self.backup_taken_since(at).await? {
                    let (id, taken) = (backup.id, backup.taken);
                    ensure!(
                        taken <= deadline,
                        "backup {id} was taken at {taken}, later than {at} + {patience:?}"
                    );
                    return Ok((id, writes));
                }
            }
            tokio::time::sleep(self.pacing().write_every).await;
            if Utc::now() > deadline + chrono_of(self.pacing().completion_grace) {
                fail!(
                    "no backup taken between {at} and {deadline} while the app was written to ({writes} writes)"
                );
            }
        }
    }
}

/// `actual` is `expected`: the same paths and bytes; else a violation naming what differs.
fn expect_same(what: &str, actual: &Dataset, expected: &Dataset) -> Check {
    let missing: Vec<&String> = expected
        .files
        .keys()
        .filter(|p| !actual.files.contains_key(*p))
        .collect();
    let extra: Vec<&String> = actual
        .files
        .keys()
        .filter(|p| !expected.files.contains_key(*p))
        .collect();
    let changed: Vec<&String> = expected
        .files
        .iter()
        .filter(|(p, bytes)| actual.files.get(*p).is_some_and(|a| a != *bytes))
        .map(|(p, _)| p)
        .collect();
    if missing.is_empty() && extra.is_empty() && changed.is_empty() {
        return Ok(());
    }
    let sample = |paths: &[&String]| {
        paths
            .iter()
            .take(3)
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    fail!(
        "{what} {} files, expected {}: {} missing [{}], {} unexpected [{}], {} with other bytes [{}]",
        actual.files.len(),
        expected.files.len(),
        missing.len(),
        sample(&missing),
        extra.len(),
        sample(&extra),
        changed.len(),
        sample(&changed)
    )
}

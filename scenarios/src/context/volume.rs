//! The data volume: writing, reading and comparing it.

use std::path::Path;

use harness::dataset::{Dataset, Snapshot};
use harness::formats::files_table::FilesTable;
use harness::report::Phase;
use harness::runtime::Runtime;
use harness::subject::Layout;

use super::{Scenario, find_container};
use crate::outcome::{Check, Context};
use crate::{ensure, fail};

impl<'a, R: Runtime> Scenario<'a, R> {
    /// The data claim's name.
    pub(super) fn data_claim(&self) -> Check<&str> {
        match &self.subject().data_claim {
            Some(claim) => Ok(claim),
            None => fail!(
                "the data volume is an emptyDir: it cannot be prepared or damaged before the pod exists"
            ),
        }
    }

    /// A copy of the volume's files in a scratch directory.
    pub(super) async fn read_volume(&self) -> Check<tempfile::TempDir> {
        let archive = self
            .recorder
            .timed(Phase::Volume, self.ns.read_claim(self.data_claim()?))
            .await
            .context("reading the data volume")?;
        let copy = tempfile::tempdir().context("scratch directory")?;
        harness::archive::replace_dir(copy.path(), &archive[..])
            .context("unpacking the data volume")?;
        Ok(copy)
    }

    /// Replaces the volume's files with `dir`'s, owned by the workload's user.
    pub(super) async fn write_volume(&self, dir: &Path) -> Check {
        let archive =
            harness::archive::pack_dir(dir, Vec::new()).context("packing files for the volume")?;
        let write = self
            .ns
            .write_claim(self.data_claim()?, archive, self.workload_owner());
        self.recorder
            .timed(Phase::Volume, write)
            .await
            .context("writing the data volume")
    }

    /// The uid and gid the workload's restore container writes as, when its spec says.
    pub(super) fn workload_owner(&self) -> Option<(u32, u32)> {
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
        let count = self.ns.count_claim_files(self.data_claim()?, limit);
        self.recorder
            .timed(Phase::Volume, count)
            .await
            .context("counting the files on the data volume")
    }

    /// Writes `dataset` onto the volume as a valid dataset in the subject's layout (for
    /// `phasepod`, with a manifest of generation `generation`; for `sqlite`, as a database).
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
            Layout::Sqlite => {
                if let Some(parent) = root.parent() {
                    std::fs::create_dir_all(parent).context("scratch directory")?;
                }
                FilesTable::default()
                    .replace(&root, dataset)
                    .await
                    .context("writing a database for the volume")?
            }
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

    /// The dataset at `root` (a copy of the volume's) in the subject's layout, verified as the
    /// layout verifies it (phasepod's manifest, SQLite's integrity check); `Ok(Err(why))` when
    /// it does not verify. Nothing at `root` is the empty dataset.
    pub(super) async fn dataset_at(&self, root: &Path) -> Check<Result<Dataset, String>> {
        if !root.exists() {
            return Ok(Ok(Dataset::empty()));
        }
        Ok(match self.layout() {
            Layout::Plain => Ok(files_under(root)?),
            Layout::Phasepod => {
                harness::formats::phasepod::read_dataset_dir(root).map_err(|e| e.to_string())
            }
            Layout::Sqlite => FilesTable::default()
                .read(root)
                .await
                .context("reading the database on the volume")?,
        })
    }

    /// After a killed restore: whatever is on the volume is not mistaken for a valid dataset. Only
    /// a self-verifying layout (phasepod's manifest, SQLite's integrity check) can say "valid" of
    /// a volume; for a plain one, what the next attempt makes of the leftovers is judged by what
    /// the app then serves.
    pub async fn expect_no_partial_dataset_looks_valid(&self, backup: &Dataset) -> Check {
        let data = &self.subject().profile.data;
        if !data.layout.self_verifying() {
            return Ok(());
        }
        let copy = self.read_volume().await?;
        let current = copy.path().join(&data.root);
        if !current.exists() {
            return Ok(());
        }
        if let Ok(files) = self.dataset_at(&current).await? {
            ensure!(
                files == *backup,
                "a killed restore left a dataset that verifies but is not the backup ({} of {} files)",
                files.files.len(),
                backup.files.len()
            );
        }
        Ok(())
    }
}

/// Every regular file under `root` (none when it does not exist), by `/`-separated relative path.
fn files_under(root: &Path) -> Check<Dataset> {
    let mut dataset = Dataset::empty();
    if !root.exists() {
        return Ok(dataset);
    }
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).context("reading the volume")? {
            let entry = entry.context("reading the volume")?;
            let kind = entry.file_type().context("reading the volume")?;
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .expect("walked under root")
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(&path).context("reading the volume")?;
                dataset.files.insert(rel, bytes);
            }
        }
    }
    Ok(dataset)
}

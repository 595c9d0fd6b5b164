//! The harness's phasepod format (written from docs/CONTRACTS.md) against phasepod's own store
//! and dataset code, here a subject under test: each side reads, verifies and deletes what the
//! other wrote, and each side's damage fails the other's verification.

use anyhow::{Result, bail};
use harness::dataset::{Dataset, pseudo_random_bytes};
use harness::formats::{self, BackupFormat, GitLocation, Phasepod, S3Location, StoreLocation};
use harness::services::{EmbeddedGitServer, EmbeddedObjectStore};
use phasepod::store::{BackendConfig, BackupId, Corruption, GitConfig, S3Config, Store};

const BUCKET: &str = "contract";
const PREFIX: &str = "team/phasepod/";

/// Hidden files, an empty file, a space and `ü`, six levels of nesting, a file of 9 MiB.
fn awkward_dataset(label: &str) -> Dataset {
    let mut dataset = Dataset::generated(label, 3, 700);
    for (path, len) in [
        (".hidden", 11),
        ("empty", 0),
        ("with space/grün ü.txt", 31),
        ("a/b/c/d/e/f/deep.bin", 41),
        ("big.bin", 9 * 1024 * 1024),
    ] {
        dataset.files.insert(
            path.to_owned(),
            pseudo_random_bytes(&format!("{label}/{path}"), len),
        );
    }
    dataset
}

/// Both sides' view of one store.
struct Sides {
    ours: StoreLocation,
    config: BackendConfig,
    scratch: tempfile::TempDir,
}

impl Sides {
    /// A fresh phasepod client, as each of its processes makes (its git client restores from
    /// what it fetched before, which a rewritten branch no longer holds).
    fn theirs(&self) -> Store {
        Store::new(self.config.clone(), self.scratch.path()).expect("a phasepod store")
    }

    /// phasepod takes a backup of `dataset` (from a dataset directory phasepod wrote).
    async fn phasepod_backup(&self, dataset: &Dataset) -> Result<String> {
        let dir = tempfile::tempdir_in(self.scratch.path())?;
        let current = dir.path().join("current");
        let files: Vec<(&String, &Vec<u8>)> = dataset.files.iter().collect();
        phasepod::dataset::write_dataset(&current, &files, 1)?;
        Ok(self.theirs().take_backup(&current).await?.to_string())
    }

    /// phasepod restores backup `id`; the dataset it verified.
    async fn phasepod_restore(&self, id: &str) -> Result<Dataset, phasepod::store::Error> {
        let dir = tempfile::tempdir_in(self.scratch.path()).expect("scratch");
        let target = dir.path().join("current");
        let id = BackupId::parse(id).expect("a phasepod ID");
        let manifest = self.theirs().restore_into(&id, &target).await?;
        let verified = phasepod::dataset::verify_dir(&target).expect("a restore verifies");
        assert_eq!(verified, manifest);
        let mut dataset = Dataset::empty();
        for entry in manifest.files {
            let bytes = std::fs::read(target.join("files").join(&entry.path)).expect("restored");
            dataset.files.insert(entry.path, bytes);
        }
        Ok(dataset)
    }

    async fn phasepod_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .theirs()
            .list_backups()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    async fn harness_ids(&self) -> Result<Vec<String>> {
        Ok(Phasepod
            .list(&self.ours)
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect())
    }
}

async fn s3_sides() -> Result<(EmbeddedObjectStore, Sides)> {
    let server = EmbeddedObjectStore::start().await?;
    server.create_bucket(BUCKET).await?;
    let ours = S3Location::new(
        server.endpoint(),
        BUCKET,
        server.access_key_id(),
        server.secret_access_key(),
    )
    .with_prefix(PREFIX);
    let scratch = tempfile::tempdir()?;
    let config = BackendConfig::S3(S3Config {
        endpoint: server.endpoint(),
        bucket: BUCKET.into(),
        prefix: PREFIX.into(),
        region: server.region().into(),
        access_key_id: server.access_key_id().into(),
        secret_access_key: server.secret_access_key().into(),
    });
    Ok((
        server,
        Sides {
            ours: ours.into(),
            config,
            scratch,
        },
    ))
}

async fn git_sides() -> Result<(EmbeddedGitServer, Sides)> {
    let server = EmbeddedGitServer::start().await?;
    let url = server.create_repo("backups").await?;
    let ours = GitLocation::new(&url).with_credentials(server.username(), server.password());
    let scratch = tempfile::tempdir()?;
    let config = BackendConfig::Git(GitConfig {
        url,
        branch: "main".into(),
        username: Some(server.username().into()),
        password: Some(server.password().into()),
    });
    Ok((
        server,
        Sides {
            ours: ours.into(),
            config,
            scratch,
        },
    ))
}

/// Backups flow both ways: written by one side, listed, read and verified by the other, in
/// the same order; each side's damage fails the other's verification; deletes are seen.
async fn agree(sides: &Sides) -> Result<()> {
    // phasepod writes, the harness reads.
    let first = awkward_dataset("first");
    let theirs = sides.phasepod_backup(&first).await?;
    assert_eq!(sides.harness_ids().await?, vec![theirs.clone()]);
    assert_eq!(Phasepod.read(&sides.ours, &theirs).await?, first);

    // The harness writes, phasepod reads.
    let second = awkward_dataset("second");
    let ours = Phasepod.seed(&sides.ours, &second, None).await?;
    let newest_first = vec![ours.id.clone(), theirs.clone()];
    assert_eq!(sides.phasepod_ids().await?, newest_first);
    assert_eq!(sides.harness_ids().await?, newest_first);
    assert_eq!(sides.phasepod_restore(&ours.id).await?, second);
    assert_eq!(sides.phasepod_restore(&theirs).await?, first);

    // The harness's damage fails phasepod's verification, and only that backup's.
    Phasepod.damage(&sides.ours, &ours.id).await?;
    match sides.phasepod_restore(&ours.id).await {
        Err(e) if e.is_bad_backup() => println!("phasepod on the harness's damage: {e}"),
        Err(e) => bail!("phasepod failed otherwise on the harness's damage: {e}"),
        Ok(_) => bail!("phasepod restored a backup the harness damaged"),
    }
    assert_eq!(sides.phasepod_restore(&theirs).await?, first);

    // phasepod's damage, every kind of it, fails the harness's verification.
    for how in [
        Corruption::FlipByte,
        Corruption::DeleteFile,
        Corruption::GarbleManifest,
        Corruption::DeleteManifest,
    ] {
        let id = sides
            .phasepod_backup(&Dataset::generated("victim", 3, 500))
            .await?;
        sides
            .theirs()
            .corrupt(&BackupId::parse(&id).expect("an ID"), how)
            .await?;
        match Phasepod.read(&sides.ours, &id).await {
            Err(formats::Error::Invalid { reason, .. }) => {
                println!("the harness on phasepod's {how:?}: {reason}");
            }
            Err(e) => bail!("the harness failed otherwise on phasepod's {how:?}: {e}"),
            Ok(_) => bail!("the harness read a backup phasepod damaged ({how:?})"),
        }
        Phasepod.delete(&sides.ours, &id).await?;
        assert!(!sides.phasepod_ids().await?.contains(&id));
    }

    // Deletes are seen both ways. NB: phasepod deletes a git branch when its last backup goes,
    // which a server refuses for its current branch: the harness deletes the last one.
    sides
        .theirs()
        .delete(&BackupId::parse(&ours.id).expect("an ID"))
        .await?;
    assert_eq!(sides.harness_ids().await?, vec![theirs.clone()]);
    Phasepod.delete(&sides.ours, &theirs).await?;
    assert!(sides.phasepod_ids().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_and_phasepod_agree_on_s3_backups() -> Result<()> {
    let (_server, sides) = s3_sides().await?;
    agree(&sides).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_and_phasepod_agree_on_git_backups() -> Result<()> {
    let (_server, sides) = git_sides().await?;
    agree(&sides).await
}

#[test]
fn the_harness_and_phasepod_agree_on_dataset_directories() {
    let dataset = awkward_dataset("dir");
    let scratch = tempfile::tempdir().unwrap();

    let ours = scratch.path().join("ours");
    formats::phasepod::write_dataset_dir(&ours, &dataset, 7).unwrap();
    let manifest = phasepod::dataset::verify_dir(&ours).unwrap();
    assert_eq!(manifest.generation, 7);
    assert_eq!(manifest.files.len(), dataset.files.len());

    let theirs = scratch.path().join("theirs");
    let files: Vec<(&String, &Vec<u8>)> = dataset.files.iter().collect();
    phasepod::dataset::write_dataset(&theirs, &files, 3).unwrap();
    assert_eq!(
        formats::phasepod::read_dataset_dir(&theirs).unwrap(),
        dataset
    );

    // And both refuse the same damage.
    std::fs::write(theirs.join("files/with space/grün ü.txt"), b"changed").unwrap();
    assert!(phasepod::dataset::verify_dir(&theirs).is_err());
    let refused = formats::phasepod::read_dataset_dir(&theirs).unwrap_err();
    assert!(
        refused.to_string().contains("files/with space/grün ü.txt"),
        "{refused}"
    );
}

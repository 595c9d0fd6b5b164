//! Drills against external stores: the catalog runs in a bucket and a repository it does not own,
//! each scenario in its own prefix or branch, which it removes afterwards; what was there before
//! is untouched, outage scenarios are skipped, and credentials never reach the output.
//!
//! The "external" stores here are embedded servers started by the test, reached only through the
//! coordinates a drill would give.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::dataset::Dataset;
use harness::formats::{BackupFormat as _, GitLocation, Phasepod, StoreLocation};
use harness::report::Outcome;
use harness::services::external::{ExternalGit, ExternalS3, ExternalServices};
use harness::services::{EmbeddedGitServer, EmbeddedObjectStore};
use scenarios::runner::{RunOptions, Services, run_report};

const BUCKET: &str = "drills";
const REPOSITORY: &str = "drills";

/// A bucket and a repository that already hold someone's data.
struct Drill {
    s3: EmbeddedObjectStore,
    git: EmbeddedGitServer,
    git_url: String,
}

impl Drill {
    async fn start() -> Self {
        let s3 = EmbeddedObjectStore::start().await.unwrap();
        s3.create_bucket(BUCKET).await.unwrap();
        s3.client()
            .put_object()
            .bucket(BUCKET)
            .key("team/keep.txt")
            .body(b"not phasecheck's".to_vec().into())
            .send()
            .await
            .unwrap();
        let git = EmbeddedGitServer::start().await.unwrap();
        let git_url = git.create_repo(REPOSITORY).await.unwrap();
        let drill = Drill { s3, git, git_url };
        // Someone's backup chain on `main`, which the drill must leave alone.
        Phasepod
            .seed(
                &drill.main_branch(),
                &Dataset::generated("theirs", 2, 100),
                None,
            )
            .await
            .unwrap();
        drill
    }

    fn services(&self) -> ExternalServices {
        ExternalServices {
            s3: Some(ExternalS3 {
                endpoint: self.s3.endpoint(),
                bucket: BUCKET.into(),
                region: self.s3.region().into(),
                prefix: "team/".into(),
                access_key_id: self.s3.access_key_id().into(),
                secret_access_key: self.s3.secret_access_key().into(),
            }),
            git: Some(ExternalGit {
                url: self.git_url.clone(),
                username: Some(self.git.username().into()),
                password: Some(self.git.password().into()),
            }),
        }
    }

    fn main_branch(&self) -> StoreLocation {
        GitLocation::new(&self.git_url)
            .with_credentials(self.git.username(), self.git.password())
            .into()
    }

    async fn keys(&self) -> BTreeSet<String> {
        let listed = self
            .s3
            .client()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// The bucket holds what it held before the drill, and nothing else.
    async fn expect_only_their_objects(&self) {
        let keys = self.keys().await;
        assert!(keys.contains("team/keep.txt"), "their object is gone");
        let left: Vec<&String> = keys.iter().filter(|k| *k != "team/keep.txt").collect();
        assert!(
            left.is_empty(),
            "{} objects left behind in the bucket, e.g. {:?}",
            left.len(),
            &left[..left.len().min(3)]
        );
    }

    fn branches(&self) -> BTreeSet<String> {
        let repo = git2::Repository::open_bare(self.git.repo_path(REPOSITORY)).unwrap();
        repo.references()
            .unwrap()
            .filter_map(|r| r.ok()?.name().ok().map(str::to_owned))
            .collect()
    }
}

fn classic_subject() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects/phasepod.yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_runs_in_scopes_of_external_stores_and_removes_them_afterwards() {
    let drill = Drill::start().await;
    let options = RunOptions {
        subjects: vec![classic_subject()],
        services: Services::External(Box::new(drill.services())),
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        report_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phasecheck-external"),
        ..RunOptions::new()
    };
    let report = run_report(&options).await.expect("the run starts");
    assert_eq!(report.scenarios.len(), 36, "18 scenarios × 2 backends");
    for result in &report.scenarios {
        let expected = if ["INIT-6", "MNT-3"].contains(&result.id.as_str()) {
            Outcome::Skipped
        } else {
            Outcome::Passed
        };
        assert_eq!(
            result.outcome, expected,
            "{} {}: {}",
            result.id, result.backend, result.message
        );
        for secret in [drill.s3.secret_access_key(), drill.git.password()] {
            assert!(!result.message.contains(secret), "{}", result.message);
        }
    }
    drill.expect_only_their_objects().await;
    assert_eq!(
        drill.branches(),
        BTreeSet::from(["refs/heads/main".to_owned()]),
        "only what was there before is left in the repository"
    );
    assert_eq!(Phasepod.list(&drill.main_branch()).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_external_stores_from_the_environment_and_never_prints_their_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let output = tokio::task::spawn_blocking(move || external_run(&dir, Vec::new()))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("PHASECHECK_S3_ENDPOINT"), "{text}");

    let drill = Drill::start().await;
    let secret_file = tmp.path().join("s3-secret");
    std::fs::write(&secret_file, drill.s3.secret_access_key()).unwrap();
    let envs: Vec<(String, String)> = vec![
        ("PHASECHECK_S3_ENDPOINT".into(), drill.s3.endpoint()),
        ("PHASECHECK_S3_BUCKET".into(), BUCKET.into()),
        (
            "PHASECHECK_S3_ACCESS_KEY_ID".into(),
            drill.s3.access_key_id().into(),
        ),
        (
            "PHASECHECK_S3_SECRET_ACCESS_KEY_FILE".into(),
            secret_file.display().to_string(),
        ),
    ];
    let dir = tmp.path().to_owned();
    let output = tokio::task::spawn_blocking(move || external_run(&dir, envs))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("2 passed") && !text.contains(" git "),
        "INIT-1 of both reference subjects on S3 only (git is not configured)\n{text}"
    );
    let report = std::fs::read_to_string(tmp.path().join("reports/report.json")).unwrap();
    let page = std::fs::read_to_string(tmp.path().join("reports/report.html")).unwrap();
    for secret in [drill.s3.secret_access_key(), drill.s3.access_key_id()] {
        assert!(
            !text.contains(secret),
            "a credential in the output:\n{text}"
        );
        assert!(!report.contains(secret), "a credential in report.json");
        assert!(!page.contains(secret), "a credential in report.html");
    }
    drill.expect_only_their_objects().await;
}

/// `phasecheck run --services external --scenario INIT-1` with exactly `envs` of the
/// PHASECHECK_S3_* / PHASECHECK_GIT_* variables, reports under `dir`.
fn external_run(dir: &Path, envs: Vec<(String, String)>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_phasecheck"));
    command
        .args(["run", "--services", "external", "--scenario", "INIT-1"])
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("TMPDIR", dir);
    for (var, _) in std::env::vars() {
        if var.starts_with("PHASECHECK_S3_") || var.starts_with("PHASECHECK_GIT_") {
            command.env_remove(var);
        }
    }
    command.envs(envs);
    command.output().unwrap()
}

//! Store containers: the catalog against MinIO (from quay.io) and Gitea run by testcontainers,
//! one container per scenario, on the local runtime. Needs a Docker daemon that can pull the
//! images (or has them loaded); ci/ runs it with `-- --ignored`.

use std::path::{Path, PathBuf};

mod common;

use harness::services::containers::ContainerSettings;
use scenarios::runner::{RunOptions, Services, run_report};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a registry (pulls quay.io/minio/minio and gitea/gitea)"]
async fn the_catalog_passes_against_minio_and_gitea_containers() {
    let options = RunOptions {
        subjects: vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects/phasepod.yaml"),
        ],
        services: Services::Container(ContainerSettings::default()),
        jobs: 8,
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        report_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/phasecheck-cluster/containers"),
        ..RunOptions::new()
    };
    let report = run_report(&options).await.expect("the run starts");
    common::write_and_expect_passed(&report, &options.report_dir, false);
    assert_eq!(report.scenarios.len(), 36);
}

//! The cluster tier: the whole catalog on a real kind cluster, and the suite's teeth there.
//!
//! Needs `kind` and Docker; run with `cargo test -p scenarios --test cluster -- --ignored`.
//! The first test to run creates the kind cluster `phasecheck` from kind-config.yaml (or reuses
//! it), builds the reference image and loads it; `PHASECHECK_KIND_NODE_IMAGE` pins the node
//! image (the Kubernetes version) and `PHASECHECK_KEEP_CLUSTER=1` keeps a created cluster.
//! Reports and failure artefacts land in `target/phasecheck-cluster/`. ci/ runs these on GitHub
//! Actions across Kubernetes versions.

use std::path::PathBuf;

mod common;

use harness::report::Outcome;
use harness::services::containers::ContainerSettings;
use rstest::rstest;
use scenarios::runner::{RunOptions, RuntimeKind, Services, run_report};
use tokio::sync::Mutex;

/// One cluster at a time: the tests share the kind cluster `phasecheck`.
static CLUSTER: Mutex<()> = Mutex::const_new(());

fn report_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/phasecheck-cluster")
        .join(name)
}

fn on_kind(subjects: Vec<PathBuf>, scenarios: Vec<String>, report: &str) -> RunOptions {
    RunOptions {
        runtime: RuntimeKind::Kind,
        subjects,
        scenarios,
        jobs: 8,
        report_dir: report_dir(report),
        ..RunOptions::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs cluster (kind)"]
async fn the_reference_subjects_pass_the_whole_catalog_on_kind() {
    let _cluster = CLUSTER.lock().await;
    let options = on_kind(Vec::new(), Vec::new(), "catalog");
    let report = run_report(&options).await.expect("the cluster run starts");
    assert_eq!(report.runtime, "kind");
    // NB: on Kubernetes < 1.29 the native-sidecar subject is skipped, the classic one must pass.
    let passed = common::write_and_expect_passed(&report, &options.report_dir, true);
    assert!(passed >= 36, "only {passed} cases passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs cluster (kind)"]
async fn the_classic_subject_passes_on_kind_with_minio_and_gitea_containers() {
    let _cluster = CLUSTER.lock().await;
    let subject =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects/phasepod.yaml");
    let options = RunOptions {
        services: Services::Container(ContainerSettings::default()),
        ..on_kind(vec![subject], Vec::new(), "containers-on-kind")
    };
    let report = run_report(&options).await.expect("the cluster run starts");
    common::write_and_expect_passed(&report, &options.report_dir, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs cluster (kind)"]
async fn the_litestream_subject_keeps_its_claims_on_kind() {
    let _cluster = CLUSTER.lock().await;
    // NB: the harness reads the replica with the host's `litestream` and `sqlite3` (the
    // workflow installs them); the pods pull docker.io/litestream/litestream and python.
    let subject =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects/litestream.yaml");
    let options = on_kind(vec![subject], Vec::new(), "litestream");
    let report = run_report(&options).await.expect("the cluster run starts");
    let passed = common::write_and_expect_passed(&report, &options.report_dir, false);
    assert!(passed >= 13, "only {passed} cases passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs cluster (kind)"]
async fn the_pods_the_reference_injector_makes_pass_the_whole_catalog_on_kind() {
    let _cluster = CLUSTER.lock().await;
    // NB: the injector (install: of the subject) runs the reference image, which the subject
    // maps to the builtin phasepod, so it is built and loaded with the workload's; its
    // MutatingWebhookConfiguration is registered once per run and removed at the end.
    let subject = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/subjects/phasepod-webhook.yaml");
    let options = on_kind(vec![subject], Vec::new(), "webhook");
    let report = run_report(&options).await.expect("the cluster run starts");
    let passed = common::write_and_expect_passed(&report, &options.report_dir, false);
    assert!(
        passed >= 2 * 18,
        "only {passed} cases passed (two backends × 18 scenarios)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs cluster (kind)"]
async fn the_pods_the_reference_operator_makes_of_a_custom_resource_pass_the_whole_catalog_on_kind()
{
    let _cluster = CLUSTER.lock().await;
    // NB: the install applies the PhasedApp CRD, the operator's RBAC and its Deployment (the
    // reference image); each case applies a PhasedApp with its knobs in the resource's fields
    // and scales it through the CRD's scale subresource. The CRD and cluster role are removed
    // at the end.
    let subject = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/subjects/phasepod-operator.yaml");
    let options = on_kind(vec![subject], Vec::new(), "operator");
    let report = run_report(&options).await.expect("the cluster run starts");
    let passed = common::write_and_expect_passed(&report, &options.report_dir, false);
    assert!(
        passed >= 2 * 18,
        "only {passed} cases passed (two backends × 18 scenarios)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs cluster (kind)"]
async fn a_webhook_that_cannot_be_called_under_fail_fails_init_1_on_kind_naming_it() {
    let _cluster = CLUSTER.lock().await;
    // NB: the ReplicaSet never gets its pod; the case's failure carries its FailedCreate
    // event ("failed calling webhook \"inject.phasecheck.io\"").
    let subject = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/subjects/broken/webhook-down-fail.yaml");
    let options = on_kind(
        vec![subject],
        vec!["INIT-1".to_owned()],
        "teeth-webhook-down-fail",
    );
    let report = run_report(&options).await.expect("the cluster run starts");
    report
        .write(&options.report_dir)
        .expect("the reports are written");
    assert!(
        report.scenarios.iter().any(|r| r.id == "INIT-1"),
        "INIT-1 did not run"
    );
    for result in report.scenarios.iter().filter(|r| r.id == "INIT-1") {
        assert_eq!(
            result.outcome,
            Outcome::Failed,
            "webhook-down-fail should fail INIT-1 on {}: {}",
            result.backend,
            result.message
        );
        assert!(
            result.message.contains("inject.phasecheck.io"),
            "on {}: {}",
            result.backend,
            result.message
        );
    }
}

#[rstest]
#[case::credentials_given_to_the_app("creds-to-app", "SEC-1")]
#[case::restore_starts_fresh_when_the_store_is_down("start-blind", "INIT-6")]
#[case::restore_is_not_atomic("non-atomic-restore", "INIT-7")]
#[case::restore_overwrites_a_valid_dataset("overwrite-valid", "INIT-2")]
#[case::backup_off_schedule_after_a_crash("ignore-schedule", "MNT-5")]
#[case::backup_quiesces_the_app("quiesce-app", "MNT-5")]
#[case::operator_ignores_the_schedule("operator-ignore-schedule", "MNT-1")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs cluster (kind)"]
async fn a_broken_workload_fails_its_scenario_on_kind(
    #[case] variant: &str,
    #[case] scenario: &str,
) {
    let _cluster = CLUSTER.lock().await;
    let subject = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../fixtures/subjects/broken/{variant}.yaml"));
    let options = on_kind(
        vec![subject],
        vec![scenario.to_owned()],
        &format!("teeth-{variant}"),
    );
    let report = run_report(&options).await.expect("the cluster run starts");
    report
        .write(&options.report_dir)
        .expect("the reports are written");
    assert!(
        report.scenarios.iter().any(|r| r.id == scenario),
        "{scenario} did not run"
    );
    for result in report.scenarios.iter().filter(|r| r.id == scenario) {
        assert_eq!(
            result.outcome,
            Outcome::Failed,
            "{variant} should fail {scenario} on {}: {}",
            result.backend,
            result.message
        );
    }
}

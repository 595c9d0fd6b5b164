//! The whole catalog on the embedded local runtime against the reference subjects, once per
//! backend: this is how CI users consume phasecheck.

use harness::report::Outcome;
use rstest::rstest;
use scenarios::runner::{RunOptions, run_report};

/// Prints the summary and fails listing every case that did not pass.
fn assert_every_case_passed(report: &harness::report::RunReport) {
    eprintln!("{}", report.summary_table());
    let failed: Vec<_> = report
        .scenarios
        .iter()
        .filter(|r| r.outcome != Outcome::Passed)
        .map(|r| format!("{} {} {}: {}", r.id, r.subject, r.backend, r.message))
        .collect();
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n")
    );
}

#[rstest]
#[case::s3("s3")]
#[case::git("git")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reference_workload_passes_every_scenario(#[case] backend: &str) {
    let options = RunOptions {
        backends: vec![backend.parse().unwrap()],
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        report_dir: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("phasecheck-catalog-{backend}")),
        ..RunOptions::new()
    };
    let report = run_report(&options).await.expect("the run starts");
    assert_every_case_passed(&report);
    assert_eq!(
        report.scenarios.len(),
        2 * 18,
        "two reference subjects × 18 scenarios"
    );
}

/// The catalog through an admission webhook: the reference injector (`phasepod inject`),
/// installed first, turns a plain annotated Deployment into the phased pod that is judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pods_the_reference_injector_makes_pass_every_scenario() {
    let subject = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/subjects/phasepod-webhook.yaml");
    let options = RunOptions {
        subjects: vec![subject],
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        report_dir: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("phasecheck-catalog-webhook"),
        ..RunOptions::new()
    };
    let report = run_report(&options).await.expect("the run starts");
    assert_every_case_passed(&report);
    assert_eq!(
        report.scenarios.len(),
        2 * 18,
        "two backends × 18 scenarios"
    );
}

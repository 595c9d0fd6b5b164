//! The suite has teeth: each deliberately broken variant of the reference subject
//! (fixtures/subjects/broken/) fails the scenario whose requirement it breaks, on both backends.

use std::path::PathBuf;

use harness::report::Outcome;
use rstest::rstest;
use scenarios::runner::{RunOptions, run_report};

fn broken(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../fixtures/subjects/broken/{name}.yaml"))
}

#[rstest]
#[case::restore_not_in_init_containers("no-wait", "RUN-1")]
#[case::credentials_given_to_the_app("creds-to-app", "SEC-1")]
#[case::credentials_copied_onto_the_data_volume("creds-on-volume", "SEC-1")]
#[case::maintenance_mounts_data_read_write("maint-writable", "SEC-2")]
#[case::maintenance_mounts_the_data_claim_twice("maint-claim-twice", "SEC-2")]
#[case::restore_overwrites_a_valid_dataset("overwrite-valid", "INIT-2")]
#[case::restore_overwrites_data_on_recreate("overwrite-valid", "LIFE-1")]
#[case::restore_skips_verification("skip-verify", "INIT-5")]
#[case::restore_trusts_any_manifest("trust-manifest", "INIT-3")]
#[case::restore_picks_the_oldest_backup("restore-oldest", "INIT-1")]
#[case::restore_reads_one_listing_page("first-page-only", "INIT-1")]
#[case::app_hides_restored_files("serve-partial", "RUN-2")]
#[case::restore_fails_without_backups("no-fresh-start", "INIT-4")]
#[case::restore_starts_fresh_when_the_store_is_down("start-blind", "INIT-6")]
#[case::restore_is_not_atomic("non-atomic-restore", "INIT-7")]
#[case::backup_ignores_the_schedule("ignore-schedule", "MNT-1")]
#[case::backup_off_schedule_after_a_crash("ignore-schedule", "MNT-5")]
#[case::backup_quiesces_the_app("quiesce-app", "MNT-5")]
#[case::backup_uploads_nothing("backup-empty", "MNT-2")]
#[case::backup_leaves_out_hidden_files("skip-hidden", "MNT-2")]
#[case::backup_gives_up_after_an_outage("stop-after-failure", "MNT-3")]
#[case::backup_retries_only_at_the_next_schedule("no-prompt-retry", "MNT-3")]
#[case::backup_never_prunes("no-prune", "MNT-4")]
#[case::backup_takes_torn_snapshots("torn-snapshot", "MNT-6")]
#[case::injector_gives_the_app_credentials("inject-creds-to-app", "SEC-1")]
#[case::injector_leaves_out_restore_in_two_container_pods("inject-skip-init-multi", "INIT-1")]
#[case::injector_mounts_data_read_write_in_the_sidecar("inject-data-rw", "SEC-2")]
#[case::injector_ignores_the_schedule_annotation("inject-ignore-schedule", "MNT-1")]
#[case::webhook_down_under_fail_leaves_no_pod("webhook-down-fail", "INIT-1")]
#[case::webhook_down_under_ignore_admits_an_unmutated_pod("webhook-down-ignore", "INIT-1")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_workload_fails_the_scenario_of_the_requirement_it_breaks(
    #[case] variant: &str,
    #[case] scenario: &str,
) {
    let options = RunOptions {
        subjects: vec![broken(variant)],
        scenarios: vec![scenario.to_owned()],
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        report_dir: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("phasecheck-teeth-{variant}-{scenario}")),
        ..RunOptions::new()
    };
    let report = run_report(&options).await.expect("the run starts");
    assert_eq!(report.scenarios.len(), 2, "one result per backend");
    for result in &report.scenarios {
        assert_eq!(
            result.outcome,
            Outcome::Failed,
            "{variant} should fail {scenario} on {} but {}",
            result.backend,
            result.outcome.as_str()
        );
        eprintln!(
            "{variant} fails {scenario} on {}: {}",
            result.backend, result.message
        );
    }
}

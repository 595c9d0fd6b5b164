//! What a run's environment decides before a scenario starts.

use harness::report::Outcome;
use harness::runtime::local::LocalRuntime;
use scenarios::environment::Environment;
use scenarios::runner::{RunOptions, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sidecar_subjects_are_skipped_where_native_sidecars_cannot_run() {
    let options = RunOptions {
        scenarios: vec!["SEC-2".to_owned()],
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        ..RunOptions::new()
    };
    let cases = plan(&options).expect("the reference subjects load");
    assert!(cases.iter().any(|c| c.subject.native_sidecar));
    assert!(cases.iter().any(|c| !c.subject.native_sidecar));
    let env = Environment::local(&options, &cases)
        .await
        .expect("the local runtime starts")
        .with_native_sidecars(false);
    for case in &cases {
        let result = env.run_case(case).await;
        if case.subject.native_sidecar {
            assert_eq!(result.outcome, Outcome::Skipped, "{}", result.subject);
            assert!(result.message.contains("1.29"), "{}", result.message);
        } else {
            assert_eq!(result.outcome, Outcome::Passed, "{}", result.message);
        }
    }
    env.shutdown().await;
}

/// A subject that claims only RUN-1 and has no retention knob: RUN-1 is judged, INIT-4 runs and
/// is reported not-claimed with what it would have been, MNT-4 is not applicable, and the run
/// passes; `--strict` judges INIT-4 like a claimed requirement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_requirements_run_as_not_claimed_and_missing_parts_are_not_applicable() {
    let fixtures = scenarios::runner::fixtures_dir().join("subjects");
    let profile = std::fs::read_to_string(fixtures.join("phasepod.yaml")).unwrap();
    let manifests = fixtures.join("manifests").canonicalize().unwrap();
    let profile = profile
        .replace("name: phasepod\n", "name: phasepod-claims\n")
        .replace(
            "manifests: [manifests/",
            &format!("manifests: [{}/", manifests.display()),
        )
        .replace("retention: {env: KEEP}\n", "claims: [RUN-1]\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.yaml");
    std::fs::write(&path, profile).unwrap();
    let options = RunOptions {
        subjects: vec![path],
        scenarios: vec!["RUN-1".into(), "INIT-4".into(), "MNT-4".into()],
        backends: vec![harness::subject::Backend::S3],
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        report_dir: dir.path().join("report"),
        ..RunOptions::new()
    };
    let report = scenarios::runner::run_report(&options).await.unwrap();
    let outcome = |id: &str| {
        let r = report.scenarios.iter().find(|r| r.id == id).unwrap();
        (r.outcome, r.would_have_been, r.message.clone())
    };
    assert_eq!(
        outcome("RUN-1").0,
        Outcome::Passed,
        "{:?}",
        outcome("RUN-1")
    );
    assert_eq!(
        (outcome("INIT-4").0, outcome("INIT-4").1),
        (Outcome::NotClaimed, Some(Outcome::Passed)),
        "{:?}",
        outcome("INIT-4")
    );
    let (mnt4, _, why) = outcome("MNT-4");
    assert_eq!(mnt4, Outcome::NotApplicable);
    assert!(why.contains("retention"), "{why}");
    assert!(report.all_passed());

    let strict = RunOptions {
        strict: true,
        scenarios: vec!["INIT-4".into()],
        ..options
    };
    let report = scenarios::runner::run_report(&strict).await.unwrap();
    assert_eq!(report.scenarios[0].outcome, Outcome::Passed);
}

#[test]
fn a_claim_naming_no_requirement_is_an_input_error_naming_the_field() {
    let fixtures = scenarios::runner::fixtures_dir().join("subjects");
    let profile = std::fs::read_to_string(fixtures.join("phasepod.yaml")).unwrap();
    let manifests = fixtures.join("manifests").canonicalize().unwrap();
    let profile = profile
        .replace(
            "manifests: [manifests/",
            &format!("manifests: [{}/", manifests.display()),
        )
        .replace("retention: {env: KEEP}\n", "claims: [RUN-1, RUN-9]\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.yaml");
    std::fs::write(&path, profile).unwrap();
    let options = RunOptions {
        subjects: vec![path],
        ..RunOptions::new()
    };
    let message = plan(&options).unwrap_err().to_string();
    assert!(message.contains("claims.yaml"), "{message}");
    assert!(message.contains("claims[1]"), "{message}");
    assert!(message.contains("RUN-9"), "{message}");
}

/// A scenario the harness cannot run (here: the local runtime refuses a `hostPath` volume) is an
/// `error`, never a verdict on the subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_the_harness_cannot_run_is_an_error_not_a_failure() {
    let fixtures = scenarios::runner::fixtures_dir().join("subjects");
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(fixtures.join("manifests/phasepod-classic.yaml"))
        .unwrap()
        .replace(
            "      volumes:\n",
            "      volumes:\n        - name: host\n          hostPath: {path: /tmp}\n",
        );
    std::fs::create_dir(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/phasepod-classic.yaml"), manifest).unwrap();
    let path = dir.path().join("hostpath.yaml");
    std::fs::copy(fixtures.join("phasepod.yaml"), &path).unwrap();
    let options = RunOptions {
        subjects: vec![path],
        scenarios: vec!["RUN-1".into()],
        backends: vec![harness::subject::Backend::S3],
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        ..RunOptions::new()
    };
    let report = scenarios::runner::run_report(&options).await.unwrap();
    let result = &report.scenarios[0];
    assert_eq!(result.outcome, Outcome::Error, "{}", result.message);
    assert!(
        result.message.contains("volume `host`"),
        "{}",
        result.message
    );
    assert!(!report.all_passed());
}

#[tokio::test]
async fn without_sandboxes_every_case_is_skipped_saying_why() {
    let options = RunOptions {
        scenarios: vec!["RUN-1".to_owned()],
        ..RunOptions::new()
    };
    let cases = plan(&options).expect("the reference subjects load");
    let runtime = LocalRuntime::builder()
        .without_sandbox()
        .build()
        .expect("the runtime builds");
    let isolation = runtime.isolation().clone();
    let env = Environment::new(runtime, "local", &options).with_isolation(isolation);
    assert!(
        env.isolation_note()
            .is_some_and(|n| n.starts_with("no sandboxes (turned off by the caller)"))
    );
    for case in &cases {
        let result = env.run_case(case).await;
        assert_eq!(result.outcome, Outcome::Skipped, "{}", result.message);
        assert!(
            result.message.contains("/data") && result.message.contains("turned off"),
            "{}",
            result.message
        );
    }
    env.shutdown().await;
}

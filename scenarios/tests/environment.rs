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

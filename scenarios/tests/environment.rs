//! What a run's environment decides before a scenario starts.

use harness::report::Outcome;
use scenarios::environment::Environment;
use scenarios::runner::{RunOptions, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sidecar_subjects_are_skipped_where_native_sidecars_cannot_run() {
    let options = RunOptions {
        scenarios: vec!["SEC-2".to_owned()],
        phasepod: Some(vec![
            env!("CARGO_BIN_EXE_phasecheck").to_owned(),
            "phasepod".to_owned(),
        ]),
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

//! The admission path on the local runtime with the reference injector (`phasepod inject`) as
//! a real webhook process: the mutated pod of each fixture against a golden file, no second
//! injection, the opt-out, a certificate that does not match the `caBundle`, and a webhook that
//! cannot be reached under `failurePolicy` Fail and Ignore — what sidecar-injector projects
//! test of their own webhooks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::app::AppClient;
use harness::report::Outcome;
use harness::runtime::local::{ImageMap, LocalRuntime};
use harness::runtime::objects::{Object, parse_manifests};
use harness::runtime::prelude::*;
use k8s_openapi::ByteString;
use scenarios::runner::{RunOptions, run_report};

const WAIT: Duration = Duration::from_secs(30);
const INSTALL_NS: &str = "phasepod-system";

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/subjects")
        .join(rel)
}

fn runtime() -> LocalRuntime {
    let phasecheck = PathBuf::from(env!("CARGO_BIN_EXE_phasecheck"));
    let images = ImageMap::default().with_program(
        "phasecheck/phasepod:dev",
        &phasecheck,
        harness::image::BINARY_PATH,
        Vec::<String>::new(),
    );
    LocalRuntime::builder()
        .with_images(images)
        .with_sandbox_launcher([phasecheck.into_os_string(), "sandbox".into()])
        .with_grace_period(Duration::from_secs(2))
        .build()
        .expect("runtime builds")
}

/// Starts the injector from the reference manifest and registers its webhook configuration,
/// changed by `edit`; returns the CA the injector serves.
async fn install(rt: &LocalRuntime, edit: impl Fn(&mut Object)) -> Vec<u8> {
    let path = fixture("manifests/phasepod-injector.yaml");
    let objects = parse_manifests(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    let (mut webhooks, rest): (Vec<Object>, Vec<Object>) =
        objects.into_iter().partition(Object::is_cluster_scoped);
    rt.create_namespace(INSTALL_NS).await.unwrap();
    rt.apply(INSTALL_NS, rest).await.unwrap();
    let pod = rt
        .wait_for_pod(INSTALL_NS, "phasepod-injector", |p| p.ready, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ca = AppClient::new((pod.ip, 8080).into())
        .get("/ca.crt")
        .await
        .unwrap()
        .to_vec();
    for object in &mut webhooks {
        set_ca(object, &ca);
        edit(object);
    }
    rt.apply(INSTALL_NS, webhooks).await.unwrap();
    ca
}

fn set_ca(object: &mut Object, ca: &[u8]) {
    if let Object::MutatingWebhookConfiguration(c) = object {
        for w in c.webhooks.iter_mut().flatten() {
            w.client_config.ca_bundle = Some(ByteString(ca.to_vec()));
        }
    }
}

/// A pod of the reference image with the data on an emptyDir, annotated with `annotations`.
fn pod(name: &str, annotations: &str, extra_containers: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
  annotations: {{{annotations}}}
spec:
  containers:
    - name: app
      image: phasecheck/phasepod:dev
      args: [serve]
      env: [{{name: DATA_DIR, value: /data}}]
      volumeMounts: [{{name: data, mountPath: /data}}]
{extra_containers}  volumes:
    - name: data
      emptyDir: {{}}
"#
    )
}

/// Applies `yaml` in `ns` and returns the created pod's spec as pretty JSON.
async fn admitted(rt: &LocalRuntime, ns: &str, yaml: &str) -> Result<String, String> {
    let objects = parse_manifests(yaml, Path::new("pod.yaml")).map_err(|e| e.to_string())?;
    let name = objects[0].name().to_owned();
    rt.apply(ns, objects).await.map_err(|e| e.to_string())?;
    let spec = rt.pod_spec(ns, &name).await.map_err(|e| e.to_string())?;
    Ok(serde_json::to_string_pretty(&spec).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injector_makes_the_golden_pods_once_and_honours_the_opt_out() {
    let rt = runtime();
    install(&rt, |_| {}).await;
    rt.create_namespace("golden").await.unwrap();
    let classic = admitted(
        &rt,
        "golden",
        &pod(
            "classic",
            r#"phasecheck.io/phased: "true", phasecheck.io/runat: "03:00", phasecheck.io/keep: "3""#,
            "",
        ),
    )
    .await
    .unwrap();
    insta::assert_snapshot!("injected_classic", classic);
    let native = admitted(
        &rt,
        "golden",
        &pod(
            "native",
            r#"phasecheck.io/phased: "true", phasecheck.io/sidecar: native, phasecheck.io/backend: git"#,
            "",
        ),
    )
    .await
    .unwrap();
    insta::assert_snapshot!("injected_native", native);

    // NB: a pod that already has the phased containers (here: the classic pod as injected,
    // under a new name) gets no second copy.
    let injected: serde_json::Value = serde_json::from_str(&classic).unwrap();
    let again = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "again", "annotations": {"phasecheck.io/phased": "true"}},
        "spec": injected,
    });
    let twice = admitted(&rt, "golden", &again.to_string()).await.unwrap();
    assert_eq!(twice, classic, "an injected pod is injected again");

    let opted_out = admitted(
        &rt,
        "golden",
        &pod(
            "opted-out",
            r#"phasecheck.io/phased: "true", phasecheck.io/inject: "false""#,
            "",
        ),
    )
    .await
    .unwrap();
    let plain = admitted(&rt, "golden", &pod("plain", "", ""))
        .await
        .unwrap();
    assert_eq!(opted_out, plain, "the opt-out annotation is ignored");
    assert!(!plain.contains("\"restore\""), "{plain}");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_ca_bundle_does_not_sign_is_refused() {
    let rt = runtime();
    let other_ca = rcgen::generate_simple_self_signed(vec!["elsewhere".to_owned()])
        .unwrap()
        .cert
        .pem();
    install(&rt, |object| {
        if let Object::MutatingWebhookConfiguration(c) = object {
            for w in c.webhooks.iter_mut().flatten() {
                w.client_config.ca_bundle = Some(ByteString(other_ca.clone().into_bytes()));
            }
        }
    })
    .await;
    rt.create_namespace("wrong-ca").await.unwrap();
    let refused = admitted(
        &rt,
        "wrong-ca",
        &pod("refused", r#"phasecheck.io/phased: "true""#, ""),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("failed calling webhook \"inject.phasecheck.io\"")
            && refused.contains("certificate"),
        "{refused}"
    );
    assert!(rt.pods("wrong-ca").await.unwrap().is_empty());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_refuses_under_fail_and_is_skipped_under_ignore() {
    let rt = runtime();
    install(&rt, |object| {
        if let Object::MutatingWebhookConfiguration(c) = object {
            for w in c.webhooks.iter_mut().flatten() {
                let service = w.client_config.service.as_mut().unwrap();
                service.name = "no-such-service".into();
            }
        }
    })
    .await;
    rt.create_namespace("down").await.unwrap();
    let refused = admitted(
        &rt,
        "down",
        &pod("fail", r#"phasecheck.io/phased: "true""#, ""),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("failed calling webhook \"inject.phasecheck.io\"")
            && refused.contains("no-such-service"),
        "{refused}"
    );
    let path = fixture("manifests/phasepod-injector.yaml");
    let mut ignore: Vec<Object> = parse_manifests(&std::fs::read_to_string(&path).unwrap(), &path)
        .unwrap()
        .into_iter()
        .filter(Object::is_cluster_scoped)
        .collect();
    for object in &mut ignore {
        if let Object::MutatingWebhookConfiguration(c) = object {
            for w in c.webhooks.iter_mut().flatten() {
                w.failure_policy = Some("Ignore".into());
                w.client_config.service.as_mut().unwrap().name = "no-such-service".into();
            }
        }
    }
    rt.apply(INSTALL_NS, ignore).await.unwrap();
    let unmutated = admitted(
        &rt,
        "down",
        &pod("ignore", r#"phasecheck.io/phased: "true""#, ""),
    )
    .await
    .unwrap();
    assert!(!unmutated.contains("\"restore\""), "{unmutated}");
    rt.shutdown().await;
}

/// A webhook that is down with `failurePolicy: Fail`: the case fails naming the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_whose_pod_a_webhook_refuses_fails_naming_the_webhook() {
    let options = RunOptions {
        subjects: vec![fixture("broken/webhook-down-fail.yaml")],
        scenarios: vec!["RUN-1".to_owned()],
        backends: vec![harness::subject::Backend::S3],
        phasecheck: Some(env!("CARGO_BIN_EXE_phasecheck").into()),
        report_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phasecheck-webhook-down"),
        ..RunOptions::new()
    };
    let report = run_report(&options).await.expect("the run starts");
    let result = &report.scenarios[0];
    assert_eq!(result.outcome, Outcome::Failed, "{}", result.message);
    assert!(
        result.message.contains("admission") || result.message.contains("failed calling webhook"),
        "{}",
        result.message
    );
    assert!(
        result.message.contains("inject.phasecheck.io"),
        "{}",
        result.message
    );
}

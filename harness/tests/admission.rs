//! The local runtime's admission chain against a real HTTPS webhook server (this test's own,
//! with a certificate from rcgen): mutations in order, `reinvocationPolicy: IfNeeded`, a
//! validating webhook's denial, `timeoutSeconds` under `failurePolicy` Fail and Ignore, and a
//! workload whose pod is refused failing its wait at once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use harness::runtime::local::{ImageMap, LocalRuntime};
use harness::runtime::objects::parse_manifests;
use harness::runtime::prelude::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A webhook server on 127.0.0.1: `/a` adds env `A<n>` (n counts its calls), `/b` adds env
/// `B`, `/deny` denies, `/slow` answers after 3 s. Returns its port and CA (PEM).
async fn webhook_server() -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let ca = certified.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls_a = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, calls_a) = (acceptor.clone(), calls_a.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let calls_a = calls_a.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        let body = request.into_body().collect().await?.to_bytes();
                        let review: Value = serde_json::from_slice(&body).unwrap();
                        let uid = review["request"]["uid"].clone();
                        let add_env = |name: String| {
                            let patch = json!([{"op": "add", "path": "/spec/containers/0/env/-",
                                "value": {"name": name, "value": "1"}}]);
                            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
                                "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())})
                        };
                        let response = match path.as_str() {
                            "/a" => {
                                add_env(format!("A{}", calls_a.fetch_add(1, Ordering::SeqCst) + 1))
                            }
                            "/b" => add_env("B".to_owned()),
                            "/deny" => json!({"uid": uid, "allowed": false,
                                "status": {"message": "pods labelled deny are not welcome"}}),
                            _ => {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                                json!({"uid": uid, "allowed": true})
                            }
                        };
                        let review = json!({"apiVersion": "admission.k8s.io/v1",
                            "kind": "AdmissionReview", "response": response});
                        Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(
                            review.to_string(),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca)
}

/// A webhook configuration of `kind` named `name` calling `path`.
fn webhook(kind: &str, name: &str, port: u16, ca: &str, path: &str, extra: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: {kind}
metadata: {{name: {name}}}
webhooks:
  - name: {name}.test
    admissionReviewVersions: [v1]
    sideEffects: None
    clientConfig: {{url: "https://127.0.0.1:{port}{path}", caBundle: {ca}}}
    rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}}]
{extra}
"#
    )
}

fn pod(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  restartPolicy: Never\n  containers:\n    - {{name: c, image: test/sh:1, args: ['true'], env: [{{name: X, value: '0'}}]}}\n"
    )
}

fn runtime() -> LocalRuntime {
    LocalRuntime::builder()
        .with_images(ImageMap::default().with_image(
            "test/sh:1",
            ["/bin/sh", "-c"],
            Vec::<String>::new(),
        ))
        .build()
        .expect("runtime builds")
}

async fn apply(rt: &LocalRuntime, ns: &str, yaml: &str) -> Result<(), String> {
    let objects = parse_manifests(yaml, Path::new("test.yaml")).map_err(|e| e.to_string())?;
    rt.apply(ns, objects).await.map_err(|e| e.to_string())
}

async fn env_names(rt: &LocalRuntime, ns: &str, pod: &str) -> Vec<String> {
    let spec = rt.pod_spec(ns, pod).await.unwrap();
    spec.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_apply_in_order_and_if_needed_reinvokes_once_after_a_later_change() {
    let (port, ca) = webhook_server().await;
    let rt = runtime();
    rt.create_namespace("t").await.unwrap();
    let a = webhook(
        "MutatingWebhookConfiguration",
        "a",
        port,
        &ca,
        "/a",
        "    reinvocationPolicy: IfNeeded",
    );
    let b = webhook("MutatingWebhookConfiguration", "b", port, &ca, "/b", "");
    apply(&rt, "t", &format!("{a}---\n{b}")).await.unwrap();
    apply(&rt, "t", &pod("p", "")).await.unwrap();
    assert_eq!(env_names(&rt, "t", "p").await, ["X", "A1", "B", "A2"]);
    rt.delete_cluster_objects(&parse_manifests(&a, Path::new("a")).unwrap())
        .await
        .unwrap();
    apply(&rt, "t", &pod("q", "")).await.unwrap();
    assert_eq!(
        env_names(&rt, "t", "q").await,
        ["X", "B"],
        "an unregistered webhook is still called"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_webhook_denies_only_the_pods_its_object_selector_picks() {
    let (port, ca) = webhook_server().await;
    let rt = runtime();
    rt.create_namespace("t").await.unwrap();
    let deny = webhook(
        "ValidatingWebhookConfiguration",
        "deny",
        port,
        &ca,
        "/deny",
        "    objectSelector: {matchLabels: {deny: \"yes\"}}",
    );
    apply(&rt, "t", &deny).await.unwrap();
    let refused = apply(&rt, "t", &pod("p", "deny: \"yes\""))
        .await
        .unwrap_err();
    assert!(
        refused.contains(
            "admission webhook \"deny.test\" denied the request: pods labelled deny are not welcome"
        ),
        "{refused}"
    );
    apply(&rt, "t", &pod("q", "deny: \"no\"")).await.unwrap();
    assert_eq!(rt.pods("t").await.unwrap().len(), 1);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_times_out_refusing_under_fail_and_admitting_under_ignore() {
    let (port, ca) = webhook_server().await;
    let rt = runtime();
    rt.create_namespace("t").await.unwrap();
    let slow = webhook(
        "MutatingWebhookConfiguration",
        "slow",
        port,
        &ca,
        "/slow",
        "    timeoutSeconds: 1\n    objectSelector: {matchLabels: {policy: fail}}",
    );
    let ignored = webhook(
        "MutatingWebhookConfiguration",
        "ignored",
        port,
        &ca,
        "/slow",
        "    timeoutSeconds: 1\n    failurePolicy: Ignore\n    objectSelector: {matchLabels: {policy: ignore}}",
    );
    apply(&rt, "t", &format!("{slow}---\n{ignored}"))
        .await
        .unwrap();
    let refused = apply(&rt, "t", &pod("p", "policy: fail"))
        .await
        .unwrap_err();
    assert!(
        refused.contains("failed calling webhook \"slow.test\"") && refused.contains("deadline"),
        "{refused}"
    );
    apply(&rt, "t", &pod("q", "policy: ignore")).await.unwrap();
    assert_eq!(env_names(&rt, "t", "q").await, ["X"]);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_whose_pod_is_denied_fails_its_wait_at_once_naming_the_webhook() {
    let (port, ca) = webhook_server().await;
    let rt = runtime();
    rt.create_namespace("t").await.unwrap();
    let deny = webhook(
        "ValidatingWebhookConfiguration",
        "deny",
        port,
        &ca,
        "/deny",
        "",
    );
    apply(&rt, "t", &deny).await.unwrap();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      containers: [{name: c, image: test/sh:1, args: ['sleep 60']}]\n";
    apply(&rt, "t", deployment).await.unwrap();
    let started = std::time::Instant::now();
    let e = rt
        .wait_for_pod("t", "d", |p| p.ready, Duration::from_secs(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(10), "{e}");
    assert!(
        e.contains("admission webhook \"deny.test\" denied the request"),
        "{e}"
    );
    rt.shutdown().await;
}

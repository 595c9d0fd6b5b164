//! One webhook call: an AdmissionReview v1 POSTed over HTTPS, trusting only the webhook's
//! `caBundle`, within its `timeoutSeconds`, as the API server sends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Where a webhook is reached and whom its certificate must name.
#[derive(Clone, Debug)]
pub(super) struct Target {
    /// The address connected to (the Service's backing pod, or the URL's host).
    pub addr: SocketAddr,
    /// The name the certificate must carry: `<service>.<namespace>.svc` or the URL's host.
    pub server_name: String,
    /// The URL shown in messages, as the API server spells it.
    pub url: String,
    /// The request path (with query).
    pub path: String,
}

/// What a webhook answered.
#[derive(Debug)]
pub(super) struct Answer {
    pub allowed: bool,
    /// `status.message` (or `status.reason`) when not allowed.
    pub message: String,
    /// The decoded JSON Patch, if any.
    pub patch: Option<Value>,
}

/// Sends `review` to `target`, trusting `ca_bundle` only, within `timeout`.
pub(super) async fn call(
    target: &Target,
    ca_bundle: &[u8],
    review: &Value,
    uid: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let exchange = exchange(target, ca_bundle, body);
    let bytes = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            format!(
                "Post \"{}\": context deadline exceeded (timeoutSeconds {})",
                target.url,
                timeout.as_secs()
            )
        })?
        .map_err(|e| format!("Post \"{}\": {e}", target.url))?;
    parse_answer(&bytes, uid)
}

async fn exchange(target: &Target, ca_bundle: &[u8], body: Vec<u8>) -> Result<Bytes, String> {
    let config = client_config(ca_bundle)?;
    let name = ServerName::try_from(target.server_name.clone())
        .map_err(|e| format!("`{}` is not a server name: {e}", target.server_name))?;
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("dial tcp {}: {e}", target.addr))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let request = http::Request::post(&target.path)
        .header(http::header::HOST, target.server_name.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(format!(
            "the webhook answered HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    Ok(bytes)
}

/// A TLS client trusting only the certificates in `ca_bundle` (PEM).
fn client_config(ca_bundle: &[u8]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_bundle) {
        let cert = cert.map_err(|e| format!("the caBundle is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the caBundle holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the caBundle holds no certificate".into());
    }
    // NB: ring and aws-lc-rs are both compiled in; rustls needs the provider named.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Reads an AdmissionReview v1 response for request `uid`.
fn parse_answer(bytes: &[u8], uid: &str) -> Result<Answer, String> {
    let review: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the response is not an AdmissionReview: {e}"))?;
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return Err(format!(
            "expected response apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {} {}",
            review["apiVersion"], review["kind"]
        ));
    }
    let response = &review["response"];
    if response["uid"] != uid {
        return Err(format!(
            "expected response.uid=\"{uid}\", got {}",
            response["uid"]
        ));
    }
    let allowed = response["allowed"].as_bool().unwrap_or(false);
    let status = &response["status"];
    let message = status["message"]
        .as_str()
        .or_else(|| status["reason"].as_str())
        .unwrap_or_default()
        .to_owned();
    let patch = match (response["patch"].as_str(), response["patchType"].as_str()) {
        (None, _) => None,
        (Some(encoded), Some("JSONPatch")) => {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("response.patch is not base64: {e}"))?;
            Some(
                serde_json::from_slice(&raw)
                    .map_err(|e| format!("response.patch is not a JSON Patch: {e}"))?,
            )
        }
        (Some(_), other) => {
            return Err(format!(
                "response.patchType {} is not JSONPatch",
                other.unwrap_or("(missing)")
            ));
        }
    };
    Ok(Answer {
        allowed,
        message,
        patch,
    })
}

/// The AdmissionReview v1 request for creating `pod` in `ns`.
pub(super) fn review(uid: &str, ns: &str, pod: &Value) -> Value {
    let kind = json!({"group": "", "version": "v1", "kind": "Pod"});
    let resource = json!({"group": "", "version": "v1", "resource": "pods"});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": pod["metadata"]["name"],
            "namespace": ns,
            "operation": "CREATE",
            "userInfo": {"username": "system:phasecheck:local-runtime"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_for_another_request_is_an_error() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"b","allowed":true}}"#;
        let e = parse_answer(body, "a").unwrap_err();
        assert!(e.contains("response.uid=\"a\""), "{e}");
    }

    #[test]
    fn a_json_patch_is_decoded_and_a_denial_keeps_its_message() {
        use base64::Engine as _;
        let patch = base64::engine::general_purpose::STANDARD
            .encode(br#"[{"op":"add","path":"/x","value":1}]"#);
        let body = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"a","allowed":true,"patchType":"JSONPatch","patch":"{patch}"}}}}"#
        );
        let answer = parse_answer(body.as_bytes(), "a").unwrap();
        assert!(answer.allowed);
        assert_eq!(answer.patch.unwrap()[0]["path"], "/x");
        let denied = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"a","allowed":false,"status":{"message":"no root"}}}"#;
        let answer = parse_answer(denied, "a").unwrap();
        assert!(!answer.allowed);
        assert_eq!(answer.message, "no root");
    }
}

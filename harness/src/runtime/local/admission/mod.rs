//! Admission on the local runtime: the API server's webhook chain, run when a pod is created.
//!
//! Registered `MutatingWebhookConfiguration`s are called first, ordered by configuration name
//! and then by their order within it; each webhook whose `rules` cover pods/CREATE and whose
//! `namespaceSelector` (on the namespace's `kubernetes.io/metadata.name` label, the one label a
//! local namespace has) and `objectSelector` (on the pod's labels) match gets an AdmissionReview
//! v1 over HTTPS — to the Service's ready backing pod, or to its `url` — trusting only its
//! `caBundle`, within `timeoutSeconds` (default 10). Its JSON Patch is applied. A webhook with
//! `reinvocationPolicy: IfNeeded` is called once more when a later webhook changed the pod
//! after it. Then every matching `ValidatingWebhookConfiguration` is called with the final
//! pod. A denial refuses the pod; a webhook that cannot be called (down, wrong certificate,
//! timeout, a patch that does not apply) refuses it under `failurePolicy: Fail` (the default)
//! and is skipped under `Ignore`. Messages are the API server's: `admission webhook "x" denied
//! the request: …`, `failed calling webhook "x": …`.
//!
//! Not done: `matchConditions` (CEL) are rejected when the configuration is applied; only pod
//! creation is reviewed (no UPDATE, DELETE or other resources); webhooks are called one at a
//! time, validating ones too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::namespace::Namespace;
use super::net::random_u64;
use super::{Error, Result};

mod call;
mod select;

/// The label every namespace carries, the only one `namespaceSelector` sees here.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The runtime's webhook configurations and where their Services live.
#[derive(Default)]
pub(super) struct Admission {
    configs: Mutex<Configs>,
    namespaces: Mutex<BTreeMap<String, Weak<Namespace>>>,
}

#[derive(Default)]
struct Configs {
    mutating: BTreeMap<String, Vec<Hook>>,
    validating: BTreeMap<String, Vec<Hook>>,
}

/// One webhook of a configuration, mutating or validating.
#[derive(Clone, Debug)]
struct Hook {
    name: String,
    client: WebhookClientConfig,
    rules: Vec<RuleWithOperations>,
    ignore_failure: bool,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    timeout: Duration,
    reinvoke: bool,
}

/// The fields both kinds of webhook share, borrowed for checking.
struct HookFields<'a> {
    name: &'a str,
    client: &'a WebhookClientConfig,
    rules: &'a Option<Vec<RuleWithOperations>>,
    failure_policy: &'a Option<String>,
    match_policy: &'a Option<String>,
    namespace_selector: &'a Option<LabelSelector>,
    object_selector: &'a Option<LabelSelector>,
    timeout_seconds: Option<i32>,
    versions: &'a [String],
    side_effects: &'a str,
    has_match_conditions: bool,
    reinvocation: Option<&'a str>,
}

impl HookFields<'_> {
    fn check(&self, object: &str, index: usize) -> Result<Hook> {
        let field = |f: &str| format!("webhooks[{index}].{f}");
        let invalid = |problem: String| Error::Invalid {
            object: object.to_owned(),
            problem,
        };
        if self.name.is_empty() {
            return Err(invalid(format!("{} is missing", field("name"))));
        }
        if !self.versions.iter().any(|v| v == "v1") {
            return Err(invalid(format!(
                "{} must include v1 (the only AdmissionReview version sent)",
                field("admissionReviewVersions")
            )));
        }
        if !matches!(self.side_effects, "None" | "NoneOnDryRun") {
            return Err(invalid(format!(
                "{} must be None or NoneOnDryRun, not `{}`",
                field("sideEffects"),
                self.side_effects
            )));
        }
        if self.has_match_conditions {
            return Err(Error::UnsupportedField {
                object: object.to_owned(),
                field: field("matchConditions"),
                reason: "CEL match conditions are not evaluated by the local runtime; use \
                         namespaceSelector or objectSelector, or a cluster"
                    .into(),
            });
        }
        let ignore_failure = match self.failure_policy.as_deref() {
            None | Some("Fail") => false,
            Some("Ignore") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "{} must be Fail or Ignore, not `{other}`",
                    field("failurePolicy")
                )));
            }
        };
        if let Some(policy) = self.match_policy.as_deref()
            && !matches!(policy, "Exact" | "Equivalent")
        {
            return Err(invalid(format!(
                "{} must be Exact or Equivalent, not `{policy}`",
                field("matchPolicy")
            )));
        }
        let reinvoke = match self.reinvocation {
            None | Some("Never") => false,
            Some("IfNeeded") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "{} must be Never or IfNeeded, not `{other}`",
                    field("reinvocationPolicy")
                )));
            }
        };
        let timeout = self.timeout_seconds.unwrap_or(10);
        if !(1..=30).contains(&timeout) {
            return Err(invalid(format!(
                "{} must be between 1 and 30, not {timeout}",
                field("timeoutSeconds")
            )));
        }
        match (&self.client.url, &self.client.service) {
            (Some(url), None) if url.starts_with("https://") => {}
            (Some(url), None) => {
                return Err(invalid(format!(
                    "{} `{url}` must be an https:// URL",
                    field("clientConfig.url")
                )));
            }
            (None, Some(_)) => {}
            _ => {
                return Err(invalid(format!(
                    "{} needs exactly one of url and service",
                    field("clientConfig")
                )));
            }
        }
        Ok(Hook {
            name: self.name.to_owned(),
            client: self.client.clone(),
            rules: self.rules.clone().unwrap_or_default(),
            ignore_failure,
            namespace_selector: self.namespace_selector.clone(),
            object_selector: self.object_selector.clone(),
            timeout: Duration::from_secs(timeout as u64),
            reinvoke,
        })
    }
}

/// The fields of a `MutatingWebhook` or a `ValidatingWebhook` (same names, two types).
macro_rules! hook_fields {
    ($w:expr, $reinvocation:expr) => {
        HookFields {
            name: &$w.name,
            client: &$w.client_config,
            rules: &$w.rules,
            failure_policy: &$w.failure_policy,
            match_policy: &$w.match_policy,
            namespace_selector: &$w.namespace_selector,
            object_selector: &$w.object_selector,
            timeout_seconds: $w.timeout_seconds,
            versions: &$w.admission_review_versions,
            side_effects: &$w.side_effects,
            has_match_conditions: $w.match_conditions.as_ref().is_some_and(|c| !c.is_empty()),
            reinvocation: $reinvocation,
        }
    };
}

/// Checks every webhook of configuration `kind` `name`, in order.
fn check_hooks<W>(
    kind: &str,
    name: Option<&str>,
    webhooks: Option<&Vec<W>>,
    fields: for<'w> fn(&'w W) -> HookFields<'w>,
) -> Result<Vec<Hook>> {
    let object = format!("{kind} {}", name.unwrap_or_default());
    webhooks
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, w)| fields(w).check(&object, i))
        .collect()
}

/// Checks a mutating configuration; its webhooks in order.
fn mutating_hooks(config: &MutatingWebhookConfiguration) -> Result<Vec<Hook>> {
    check_hooks(
        "MutatingWebhookConfiguration",
        config.metadata.name.as_deref(),
        config.webhooks.as_ref(),
        |w| hook_fields!(w, w.reinvocation_policy.as_deref()),
    )
}

/// Checks a validating configuration; its webhooks in order.
fn validating_hooks(config: &ValidatingWebhookConfiguration) -> Result<Vec<Hook>> {
    check_hooks(
        "ValidatingWebhookConfiguration",
        config.metadata.name.as_deref(),
        config.webhooks.as_ref(),
        |w| hook_fields!(w, None),
    )
}

impl Admission {
    /// Registers (or replaces) a mutating configuration, checked first.
    pub(super) fn register_mutating(&self, config: &MutatingWebhookConfiguration) -> Result<()> {
        let hooks = mutating_hooks(config)?;
        let name = config.metadata.name.clone().unwrap_or_default();
        self.lock().mutating.insert(name, hooks);
        Ok(())
    }

    /// Registers (or replaces) a validating configuration, checked first.
    pub(super) fn register_validating(
        &self,
        config: &ValidatingWebhookConfiguration,
    ) -> Result<()> {
        let hooks = validating_hooks(config)?;
        let name = config.metadata.name.clone().unwrap_or_default();
        self.lock().validating.insert(name, hooks);
        Ok(())
    }

    /// Checks a configuration without registering it (for checking a batch first).
    pub(super) fn check(object: &crate::runtime::objects::Object) -> Result<()> {
        use crate::runtime::objects::Object;
        match object {
            Object::MutatingWebhookConfiguration(c) => mutating_hooks(c).map(drop),
            Object::ValidatingWebhookConfiguration(c) => validating_hooks(c).map(drop),
            _ => Ok(()),
        }
    }

    /// Forgets configuration `name` of `kind`; whether there was one.
    pub(super) fn unregister(&self, kind: &str, name: &str) -> bool {
        let mut configs = self.lock();
        match kind {
            "MutatingWebhookConfiguration" => configs.mutating.remove(name).is_some(),
            "ValidatingWebhookConfiguration" => configs.validating.remove(name).is_some(),
            _ => false,
        }
    }

    /// Whether any webhook is registered (pods are then created through [`Self::admit`]).
    pub(super) fn is_active(&self) -> bool {
        let configs = self.lock();
        !configs.mutating.is_empty() || !configs.validating.is_empty()
    }

    /// Makes namespace `ns`'s Services reachable for `clientConfig.service`.
    pub(super) fn add_namespace(&self, ns: &str, namespace: Weak<Namespace>) {
        self.namespaces
            .lock()
            .expect("admission lock")
            .insert(ns.to_owned(), namespace);
    }

    /// Forgets namespace `ns`.
    pub(super) fn remove_namespace(&self, ns: &str) {
        self.namespaces.lock().expect("admission lock").remove(ns);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Configs> {
        self.configs.lock().expect("admission lock")
    }

    /// Runs the chain for creating `pod` in `ns`: the admitted pod, or why it was refused.
    pub(super) async fn admit(&self, ns: &str, pod: Pod) -> std::result::Result<Pod, String> {
        let (mutating, validating): (Vec<Hook>, Vec<Hook>) = {
            let configs = self.lock();
            (
                configs.mutating.values().flatten().cloned().collect(),
                configs.validating.values().flatten().cloned().collect(),
            )
        };
        if mutating.is_empty() && validating.is_empty() {
            return Ok(pod);
        }
        let ns_labels: BTreeMap<String, String> =
            [(NAMESPACE_NAME_LABEL.to_owned(), ns.to_owned())].into();
        let mut object = serde_json::to_value(&pod).map_err(|e| e.to_string())?;
        let mut left_by: Vec<(usize, Value)> = Vec::new();
        for (i, hook) in mutating.iter().enumerate() {
            if self.applies(hook, &ns_labels, &object)? {
                self.mutate(hook, ns, &mut object).await?;
                left_by.push((i, object.clone()));
            }
        }
        let again: Vec<usize> = left_by
            .iter()
            .filter(|(i, after)| mutating[*i].reinvoke && *after != object)
            .map(|(i, _)| *i)
            .collect();
        for i in again {
            self.mutate(&mutating[i], ns, &mut object).await?;
        }
        for hook in &validating {
            if self.applies(hook, &ns_labels, &object)? {
                self.validate(hook, ns, &object).await?;
            }
        }
        serde_json::from_value(object)
            .map_err(|e| format!("the pod the mutating webhooks returned is not a valid Pod: {e}"))
    }

    fn applies(
        &self,
        hook: &Hook,
        ns_labels: &BTreeMap<String, String>,
        object: &Value,
    ) -> std::result::Result<bool, String> {
        if !select::rules_match_pod_create(&hook.rules) {
            return Ok(false);
        }
        let labels: BTreeMap<String, String> =
            serde_json::from_value(object["metadata"]["labels"].clone()).unwrap_or_default();
        let selected = select::selector_matches(hook.namespace_selector.as_ref(), ns_labels)
            .and_then(|ok| {
                Ok(ok && select::selector_matches(hook.object_selector.as_ref(), &labels)?)
            });
        selected.map_err(|e| format!("webhook \"{}\": {e}", hook.name))
    }

    /// Calls a mutating webhook and applies its patch to `object`.
    async fn mutate(
        &self,
        hook: &Hook,
        ns: &str,
        object: &mut Value,
    ) -> std::result::Result<(), String> {
        let answer = match self.send(hook, ns, object).await {
            Ok(answer) => answer,
            Err(e) => return self.call_failed(hook, e),
        };
        if !answer.allowed {
            return Err(denied(hook, &answer.message));
        }
        let Some(patch) = answer.patch else {
            return Ok(());
        };
        let patched = serde_json::from_value::<json_patch::Patch>(patch)
            .map_err(|e| format!("the JSON Patch is not valid: {e}"))
            .and_then(|patch| {
                let mut copy = object.clone();
                json_patch::patch(&mut copy, &patch)
                    .map(|()| copy)
                    .map_err(|e| format!("the JSON Patch does not apply: {e}"))
            });
        match patched {
            Ok(patched) => {
                tracing::debug!(webhook = %hook.name, namespace = ns, "pod mutated");
                *object = patched;
                Ok(())
            }
            Err(e) => self.call_failed(hook, e),
        }
    }

    /// Calls a validating webhook.
    async fn validate(
        &self,
        hook: &Hook,
        ns: &str,
        object: &Value,
    ) -> std::result::Result<(), String> {
        match self.send(hook, ns, object).await {
            Ok(answer) if answer.allowed => Ok(()),
            Ok(answer) if answer.patch.is_some() => {
                self.call_failed(hook, "a validating webhook returned a patch".to_owned())
            }
            Ok(answer) => Err(denied(hook, &answer.message)),
            Err(e) => self.call_failed(hook, e),
        }
    }

    /// A call that failed: refused under `Fail`, skipped (logged) under `Ignore`.
    fn call_failed(&self, hook: &Hook, e: String) -> std::result::Result<(), String> {
        let message = format!(
            "Internal error occurred: failed calling webhook \"{}\": failed to call webhook: {e}",
            hook.name
        );
        if hook.ignore_failure {
            tracing::info!("{message} (failurePolicy Ignore: the pod is admitted unchanged)");
            Ok(())
        } else {
            Err(message)
        }
    }

    async fn send(
        &self,
        hook: &Hook,
        ns: &str,
        object: &Value,
    ) -> std::result::Result<call::Answer, String> {
        let target = self.target(hook).await?;
        let ca_bundle = hook
            .client
            .ca_bundle
            .as_ref()
            .map(|b| b.0.clone())
            .unwrap_or_default();
        if ca_bundle.is_empty() {
            return Err(format!(
                "Post \"{}\": webhook \"{}\" has no clientConfig.caBundle, and the local runtime trusts nothing else",
                target.url, hook.name
            ));
        }
        let uid = format!("{:016x}{:016x}", random_u64(), random_u64());
        let review = call::review(&uid, ns, object);
        call::call(&target, &ca_bundle, &review, &uid, hook.timeout).await
    }

    /// Where `hook` is reached.
    async fn target(&self, hook: &Hook) -> std::result::Result<call::Target, String> {
        let timeout = format!("timeout={}s", hook.timeout.as_secs());
        if let Some(url) = &hook.client.url {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| format!("clientConfig.url `{url}`: {e}"))?;
            let host = uri.host().unwrap_or_default().to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("Post \"{url}\": dial tcp: lookup {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("Post \"{url}\": dial tcp: lookup {host}: no address"))?;
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            let sep = if path.contains('?') { '&' } else { '?' };
            return Ok(call::Target {
                addr,
                server_name: host,
                url: url.clone(),
                path: format!("{path}{sep}{timeout}"),
            });
        }
        let service = hook
            .client
            .service
            .as_ref()
            .expect("checked: url or service");
        let port = service.port.unwrap_or(443);
        let path = service.path.clone().unwrap_or_else(|| "/".into());
        let host = format!("{}.{}.svc", service.name, service.namespace);
        let url = format!("https://{host}:{port}{path}?{timeout}");
        let addr = self
            .endpoint(&service.namespace, &service.name, port)
            .map_err(|e| format!("Post \"{url}\": {e}"))?;
        Ok(call::Target {
            addr,
            server_name: host,
            url,
            path: format!("{path}?{timeout}"),
        })
    }

    /// The address of a ready pod behind `service`'s `port`.
    fn endpoint(
        &self,
        ns: &str,
        service: &str,
        port: i32,
    ) -> std::result::Result<SocketAddr, String> {
        let namespace = self
            .namespaces
            .lock()
            .expect("admission lock")
            .get(ns)
            .and_then(Weak::upgrade)
            .ok_or_else(|| format!("service \"{service}\" not found (no namespace {ns})"))?;
        let state = namespace.lock();
        let svc = state
            .services
            .get(service)
            .ok_or_else(|| format!("service \"{service}\" not found"))?;
        let spec = svc.spec.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        let svc_port = spec
            .ports
            .iter()
            .flatten()
            .find(|p| p.port == port)
            .ok_or_else(|| format!("service \"{service}\" has no port {port}"))?;
        let pods: Vec<_> = state
            .pods
            .values()
            .filter(|p| !p.is_terminating())
            .filter(|p| {
                !selector.is_empty()
                    && selector
                        .iter()
                        .all(|(k, v)| p.fields.labels.get(k) == Some(v))
            })
            .cloned()
            .collect();
        drop(state);
        let pod = pods
            .iter()
            .find(|p| p.info().ready)
            .ok_or_else(|| format!("no endpoints available for service \"{service}\""))?;
        let target = match &svc_port.target_port {
            None => port,
            Some(IntOrString::Int(n)) => *n,
            Some(IntOrString::String(name)) => pod
                .spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    format!("no container port named `{name}` behind service \"{service}\"")
                })?,
        };
        let target = u16::try_from(target).map_err(|_| format!("port {target} is out of range"))?;
        Ok(SocketAddr::new(pod.ip.addr().into(), target))
    }
}

fn denied(hook: &Hook, message: &str) -> String {
    format!(
        "admission webhook \"{}\" denied the request: {message}",
        hook.name
    )
}

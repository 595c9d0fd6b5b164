//! Kubernetes manifests as typed objects.
//!
//! [`parse_manifests`] reads multi-document YAML into [`Object`]s backed by k8s-openapi types.
//! Unlike the API server's default, unknown fields are errors: a misspelt `restartPolicy` should
//! fail loudly, not make a scenario pass or fail for the wrong reason. Numbers with a leading zero
//! are octal, as in the YAML 1.1 Kubernetes reads (`defaultMode: 0440`).

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Errors reading manifests. Every message names the file and the document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not YAML.
    #[error("{origin}: not valid YAML: {source}")]
    Yaml {
        /// The file the text came from.
        origin: PathBuf,
        /// What the parser said, with line and column.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A document is not a Kubernetes object (no `apiVersion`/`kind`, not a mapping).
    #[error("{origin}: document {index}: {problem}")]
    NotAnObject {
        /// The file.
        origin: PathBuf,
        /// 1-based, counting non-empty documents.
        index: usize,
        /// What is missing.
        problem: String,
    },
    /// A document has a field its kind does not have.
    #[error(
        "{origin}: document {index} ({kind} {name}): unknown field `{field}` (check its spelling and indentation)"
    )]
    UnknownField {
        /// The file.
        origin: PathBuf,
        /// 1-based, counting non-empty documents.
        index: usize,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// Dotted path of the field, e.g. `spec.template.spec.containers[0].imagePullPolicyy`.
        field: String,
    },
    /// A field has a value of the wrong type or shape.
    #[error("{origin}: document {index} ({kind} {name}): {source}")]
    Invalid {
        /// The file.
        origin: PathBuf,
        /// 1-based, counting non-empty documents.
        index: usize,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One Kubernetes object.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a handful per scenario; boxing would only add noise at every match"
)]
pub enum Object {
    /// `v1 Pod`.
    Pod(Pod),
    /// `apps/v1 Deployment`.
    Deployment(Deployment),
    /// `apps/v1 StatefulSet`.
    StatefulSet(StatefulSet),
    /// `v1 PersistentVolumeClaim`.
    PersistentVolumeClaim(PersistentVolumeClaim),
    /// `v1 Secret`.
    Secret(Secret),
    /// `v1 ConfigMap`.
    ConfigMap(ConfigMap),
    /// `v1 Service`.
    Service(Service),
    /// `admissionregistration.k8s.io/v1 MutatingWebhookConfiguration` (cluster-scoped).
    MutatingWebhookConfiguration(MutatingWebhookConfiguration),
    /// `admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration` (cluster-scoped).
    ValidatingWebhookConfiguration(ValidatingWebhookConfiguration),
    /// Any other kind, kept as JSON (not checked for unknown fields).
    Other {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
        /// The whole document.
        value: Value,
    },
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> &str {
        match self {
            Object::Pod(_) => "Pod",
            Object::Deployment(_) => "Deployment",
            Object::StatefulSet(_) => "StatefulSet",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::Secret(_) => "Secret",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Service(_) => "Service",
            Object::MutatingWebhookConfiguration(_) => "MutatingWebhookConfiguration",
            Object::ValidatingWebhookConfiguration(_) => "ValidatingWebhookConfiguration",
            Object::Other { kind, .. } => kind,
        }
    }

    /// `metadata.name` (empty if unset).
    pub fn name(&self) -> &str {
        match self.metadata() {
            Some(meta) => meta.name.as_deref().unwrap_or_default(),
            None => match self {
                Object::Other { value, .. } => {
                    value["metadata"]["name"].as_str().unwrap_or_default()
                }
                _ => "",
            },
        }
    }

    /// Whether the object lives outside namespaces (webhook configurations).
    pub fn is_cluster_scoped(&self) -> bool {
        matches!(
            self,
            Object::MutatingWebhookConfiguration(_) | Object::ValidatingWebhookConfiguration(_)
        )
    }

    /// The typed metadata; `None` for [`Object::Other`].
    pub fn metadata(&self) -> Option<&ObjectMeta> {
        Some(match self {
            Object::Pod(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::MutatingWebhookConfiguration(o) => &o.metadata,
            Object::ValidatingWebhookConfiguration(o) => &o.metadata,
            Object::Other { .. } => return None,
        })
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind(), self.name())
    }
}

/// Parses every non-empty document of `yaml` (read from `origin`, named in errors).
pub fn parse_manifests(yaml: &str, origin: &Path) -> Result<Vec<Object>> {
    parse_documents(read_documents(yaml, origin)?, origin)
}

/// Reads every non-empty document of `yaml` as untyped JSON values, the way Kubernetes reads
/// YAML (for callers that edit manifests before [`parse_documents`]).
pub fn read_documents(yaml: &str, origin: &Path) -> Result<Vec<Value>> {
    // NB: Kubernetes reads YAML 1.1, where `0440` is octal; YAML 1.2 would make it 440.
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(yaml, options).map_err(|source| Error::Yaml {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
    Ok(docs.into_iter().filter(|doc| !doc.is_null()).collect())
}

/// Turns documents from [`read_documents`] into typed objects, unknown fields denied.
pub fn parse_documents(docs: Vec<Value>, origin: &Path) -> Result<Vec<Object>> {
    docs.into_iter()
        .enumerate()
        .map(|(i, doc)| parse_document(doc, origin, i + 1))
        .collect()
}

fn parse_document(doc: Value, origin: &Path, index: usize) -> Result<Object> {
    let not_object = |problem: &str| Error::NotAnObject {
        origin: origin.to_owned(),
        index,
        problem: problem.to_owned(),
    };
    if !doc.is_object() {
        return Err(not_object("not a mapping"));
    }
    let api_version = doc["apiVersion"]
        .as_str()
        .ok_or_else(|| not_object("no `apiVersion`"))?
        .to_owned();
    let kind = doc["kind"]
        .as_str()
        .ok_or_else(|| not_object("no `kind`"))?
        .to_owned();
    let typed = Typed {
        origin,
        index,
        kind: &kind,
        name: doc["metadata"]["name"]
            .as_str()
            .or_else(|| doc["metadata"]["generateName"].as_str())
            .unwrap_or("(unnamed)"),
        doc: &doc,
    };
    Ok(match (api_version.as_str(), kind.as_str()) {
        ("v1", "Pod") => Object::Pod(typed.parse()?),
        ("apps/v1", "Deployment") => Object::Deployment(typed.parse()?),
        ("apps/v1", "StatefulSet") => Object::StatefulSet(typed.parse()?),
        ("v1", "PersistentVolumeClaim") => Object::PersistentVolumeClaim(typed.parse()?),
        ("v1", "Secret") => Object::Secret(typed.parse()?),
        ("v1", "ConfigMap") => Object::ConfigMap(typed.parse()?),
        ("v1", "Service") => Object::Service(typed.parse()?),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            Object::MutatingWebhookConfiguration(typed.parse()?)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
            Object::ValidatingWebhookConfiguration(typed.parse()?)
        }
        _ => Object::Other {
            api_version,
            kind,
            value: doc,
        },
    })
}

/// One document on its way to a typed object.
struct Typed<'a> {
    origin: &'a Path,
    index: usize,
    kind: &'a str,
    name: &'a str,
    doc: &'a Value,
}

impl Typed<'_> {
    fn parse<T: DeserializeOwned + Serialize>(&self) -> Result<T> {
        let typed: T =
            serde_json::from_value(self.doc.clone()).map_err(|source| Error::Invalid {
                origin: self.origin.to_owned(),
                index: self.index,
                kind: self.kind.to_owned(),
                name: self.name.to_owned(),
                source,
            })?;
        // NB: k8s-openapi ignores unknown fields. Serialising the typed value back and looking
        // for keys of the input that did not survive finds them, with their path.
        let back = serde_json::to_value(&typed).expect("k8s-openapi objects serialise");
        if let Some(field) = first_unknown(self.doc, &back, "") {
            return Err(Error::UnknownField {
                origin: self.origin.to_owned(),
                index: self.index,
                kind: self.kind.to_owned(),
                name: self.name.to_owned(),
                field,
            });
        }
        Ok(typed)
    }
}

/// The first field of `doc` that type `T` does not know (its dotted path), for kinds the
/// harness keeps as [`Object::Other`] but k8s-openapi has a type for (CRDs, RBAC): what a real
/// API server would reject. An error when `doc` does not deserialise as `T` at all.
pub fn unknown_field<T: DeserializeOwned + Serialize>(
    doc: &Value,
) -> std::result::Result<Option<String>, serde_json::Error> {
    let typed: T = serde_json::from_value(doc.clone())?;
    let back = serde_json::to_value(&typed)?;
    Ok(first_unknown(doc, &back, ""))
}

/// The path of the first key in `input` (not null) that `typed` lacks.
fn first_unknown(input: &Value, typed: &Value, path: &str) -> Option<String> {
    match (input, typed) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                if value.is_null() {
                    continue;
                }
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    None => return Some(here),
                    Some(inner) => {
                        if let Some(found) = first_unknown(value, inner, &here) {
                            return Some(found);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(given), Value::Array(kept)) if given.len() == kept.len() => given
            .iter()
            .zip(kept)
            .enumerate()
            .find_map(|(i, (g, k))| first_unknown(g, k, &format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Object>> {
        parse_manifests(yaml, Path::new("m.yaml"))
    }

    #[test]
    fn the_reference_manifests_parse_strictly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects/manifests");
        for file in ["phasepod-classic.yaml", "phasepod-native.yaml"] {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let objects = parse_manifests(&text, &path).unwrap();
            let kinds: Vec<_> = objects.iter().map(Object::kind).collect();
            assert_eq!(kinds, ["PersistentVolumeClaim", "Deployment"], "{file}");
        }
    }

    #[test]
    fn an_unknown_nested_field_is_named_with_its_path_and_document() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: i\n    restartPolicyy: Always\n";
        let message = parse(yaml).unwrap_err().to_string();
        assert!(
            message.starts_with("m.yaml: document 2 (Pod p)"),
            "{message}"
        );
        assert!(
            message.contains("`spec.containers[0].restartPolicyy`"),
            "{message}"
        );
    }

    #[test]
    fn leading_zero_modes_are_octal_and_secret_data_is_decoded() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: aGVsbG8=}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: i}]\n  volumes: [{name: v, secret: {secretName: s, defaultMode: 0440}}]\n";
        let objects = parse(yaml).unwrap();
        let Object::Secret(secret) = &objects[0] else {
            panic!("{objects:?}")
        };
        assert_eq!(secret.data.as_ref().unwrap()["k"].0, b"hello");
        let Object::Pod(pod) = &objects[1] else {
            panic!("{objects:?}")
        };
        let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
        assert_eq!(
            volumes[0].secret.as_ref().unwrap().default_mode,
            Some(0o440)
        );
    }

    #[test]
    fn a_wrong_type_names_the_document_and_kind() {
        let yaml =
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: many}\n";
        let message = parse(yaml).unwrap_err().to_string();
        assert!(
            message.starts_with("m.yaml: document 1 (Deployment d):"),
            "{message}"
        );
    }

    #[test]
    fn json_documents_separated_by_dashes_parse_too() {
        let text = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"K":"v"}}
---
{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"},"stringData":{"k":"v"}}"#;
        let objects = parse(text).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].to_string(), "Secret/b");
    }

    #[test]
    fn other_kinds_are_kept_as_json() {
        let objects =
            parse("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n").unwrap();
        assert_eq!(objects[0].kind(), "ServiceAccount");
        assert_eq!(objects[0].name(), "sa");
    }
}

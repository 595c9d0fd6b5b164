//! Every shipped subject profile loads, and every manifest under fixtures/subjects deserialises
//! into k8s-openapi types with unknown fields denied (what a real API server would accept).

use std::path::{Path, PathBuf};

use harness::runtime::objects::{self, Object};
use harness::subject::Subject;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

fn subjects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects")
}

#[test]
fn every_fixture_manifest_deserialises_into_kubernetes_types_with_unknown_fields_denied() {
    let mut files = Vec::new();
    files_under(&subjects_dir(), &mut files);
    let manifests: Vec<_> = files
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("manifests")))
        .collect();
    assert!(manifests.len() >= 5, "found {manifests:?}");
    for path in manifests {
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = objects::parse_manifests(&text, path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!parsed.is_empty(), "{}", path.display());
        for object in &parsed {
            if let Object::Other { kind, value, .. } = object {
                check_untyped(path, kind, value);
            }
        }
    }
}

/// An operator's install objects, which the harness keeps untyped, checked against
/// k8s-openapi's types; the one custom resource is the reference operator's `PhasedApp`.
fn check_untyped(path: &Path, kind: &str, value: &serde_json::Value) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let unknown = match kind {
        "CustomResourceDefinition" => objects::unknown_field::<CustomResourceDefinition>(value),
        "ServiceAccount" => objects::unknown_field::<ServiceAccount>(value),
        "ClusterRole" => objects::unknown_field::<ClusterRole>(value),
        "ClusterRoleBinding" => objects::unknown_field::<ClusterRoleBinding>(value),
        "PhasedApp" => return,
        other => panic!(
            "{}: {other} is not a typed Kubernetes object",
            path.display()
        ),
    };
    match unknown {
        Ok(None) => {}
        Ok(Some(field)) => panic!("{}: {kind}: unknown field `{field}`", path.display()),
        Err(e) => panic!("{}: {kind}: {e}", path.display()),
    }
}

#[test]
fn every_shipped_subject_profile_loads_against_its_manifests() {
    let mut files = Vec::new();
    files_under(&subjects_dir(), &mut files);
    let profiles: Vec<_> = files
        .iter()
        .filter(|p| !p.parent().is_some_and(|d| d.ends_with("manifests")))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(profiles.len() >= 2 + 6, "found {profiles:?}");
    for path in profiles {
        let subject = Subject::load(path).unwrap_or_else(|e| panic!("{e}"));
        subject.check_images_mapped().unwrap();
        let backends = subject.backends();
        assert!(!backends.is_empty(), "{}", path.display());
        for backend in backends {
            assert!(
                subject.profile.backup.format.backends().contains(&backend),
                "{}: {backend}",
                path.display()
            );
        }
    }
}

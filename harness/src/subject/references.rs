//! The ConfigMaps and Secrets a pod spec reads, and whether each backend's run provides them:
//! a workload that reads a Secret nobody writes waits forever on a cluster (and fails every
//! case locally), so a profile whose wiring misses one is an input error.

use std::collections::BTreeSet;

use serde_json::Value;

/// A ConfigMap or Secret the pod spec reads, and where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Reference {
    /// `ConfigMap` or `Secret`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Where the spec reads it, e.g. ``container `backup` (envFrom)``.
    pub place: String,
}

/// Every required (not `optional: true`) ConfigMap and Secret the pod spec reads.
pub(super) fn references(spec: &Value) -> Vec<Reference> {
    let mut found = BTreeSet::new();
    let mut add = |kind: &'static str, source: &Value, name_key: &str, place: String| {
        if source["optional"] == Value::Bool(true) {
            return;
        }
        if let Some(name) = source[name_key].as_str() {
            found.insert(Reference {
                kind,
                name: name.to_owned(),
                place,
            });
        }
    };
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let place = format!("volume `{}`", volume["name"].as_str().unwrap_or_default());
        add("ConfigMap", &volume["configMap"], "name", place.clone());
        add("Secret", &volume["secret"], "secretName", place.clone());
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add("ConfigMap", &source["configMap"], "name", place.clone());
            add("Secret", &source["secret"], "name", place.clone());
        }
    }
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten());
    for container in containers {
        let name = container["name"].as_str().unwrap_or_default();
        for from in container["envFrom"].as_array().into_iter().flatten() {
            let place = format!("container `{name}` (envFrom)");
            add("ConfigMap", &from["configMapRef"], "name", place.clone());
            add("Secret", &from["secretRef"], "name", place);
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let place = format!(
                "container `{name}` (env {})",
                var["name"].as_str().unwrap_or_default()
            );
            let from = &var["valueFrom"];
            add("ConfigMap", &from["configMapKeyRef"], "name", place.clone());
            add("Secret", &from["secretKeyRef"], "name", place);
        }
    }
    found.into_iter().collect()
}

/// The ConfigMaps and Secrets the manifests define: `(kind, name)`.
pub(super) fn defined(docs: &[Value]) -> BTreeSet<(String, String)> {
    docs.iter()
        .filter_map(|doc| {
            let kind = doc["kind"].as_str()?;
            let name = doc["metadata"]["name"].as_str()?;
            matches!(kind, "ConfigMap" | "Secret").then(|| (kind.to_owned(), name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_of_reference_is_found_and_optional_ones_are_not() {
        let spec = json!({
            "volumes": [
                {"name": "creds", "secret": {"secretName": "s3-creds"}},
                {"name": "conf", "configMap": {"name": "app-conf", "optional": true}},
                {"name": "both", "projected": {"sources": [{"configMap": {"name": "p-conf"}}]}}
            ],
            "containers": [{
                "name": "backup",
                "envFrom": [{"secretRef": {"name": "restic"}}],
                "env": [{"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "git", "key": "url"}}}]
            }]
        });
        let names: Vec<_> = references(&spec)
            .into_iter()
            .map(|r| format!("{} {} at {}", r.kind, r.name, r.place))
            .collect();
        assert_eq!(
            names,
            [
                "ConfigMap git at container `backup` (env URL)",
                "ConfigMap p-conf at volume `both`",
                "Secret restic at container `backup` (envFrom)",
                "Secret s3-creds at volume `creds`",
            ]
        );
    }
}

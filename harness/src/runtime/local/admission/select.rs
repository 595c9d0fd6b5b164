//! Which webhooks a pod creation is sent to: `rules`, `namespaceSelector`, `objectSelector`.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether one of `rules` covers creating a core `v1` pod.
///
/// `matchPolicy` needs no handling here: pods exist in one group and version only, so
/// `Exact` and `Equivalent` match the same requests.
pub(super) fn rules_match_pod_create(rules: &[RuleWithOperations]) -> bool {
    let has = |list: &Option<Vec<String>>, wanted: &[&str]| {
        list.iter().flatten().any(|v| wanted.contains(&v.as_str()))
    };
    rules.iter().any(|rule| {
        has(&rule.operations, &["CREATE", "*"])
            && has(&rule.api_groups, &["", "*"])
            && has(&rule.api_versions, &["v1", "*"])
            && has(&rule.resources, &["pods", "*", "*/*"])
            && rule.scope.as_deref().is_none_or(|s| s != "Cluster")
    })
}

/// Whether `labels` satisfy `selector`; an absent selector matches everything, as does an
/// empty one. An unknown operator is an error, as the API server rejects it.
pub(super) fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let Some(selector) = selector else {
        return Ok(true);
    };
    for (key, value) in selector.match_labels.iter().flatten() {
        if labels.get(key) != Some(value) {
            return Ok(false);
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let label = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => label.is_some_and(|l| values.contains(l)),
            "NotIn" => label.is_none_or(|l| !values.contains(l)),
            "Exists" => label.is_some(),
            "DoesNotExist" => label.is_none(),
            other => {
                return Err(format!(
                    "label selector operator `{other}` is not one of In, NotIn, Exists, DoesNotExist"
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn rule(
        ops: &[&str],
        groups: &[&str],
        versions: &[&str],
        resources: &[&str],
    ) -> RuleWithOperations {
        let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        RuleWithOperations {
            operations: list(ops),
            api_groups: list(groups),
            api_versions: list(versions),
            resources: list(resources),
            scope: None,
        }
    }

    #[test]
    fn rules_cover_pod_creation_by_name_or_wildcard() {
        assert!(rules_match_pod_create(&[rule(
            &["CREATE"],
            &[""],
            &["v1"],
            &["pods"]
        )]));
        assert!(rules_match_pod_create(&[rule(
            &["*"],
            &["*"],
            &["*"],
            &["*"]
        )]));
        assert!(!rules_match_pod_create(&[rule(
            &["UPDATE"],
            &[""],
            &["v1"],
            &["pods"]
        )]));
        assert!(!rules_match_pod_create(&[rule(
            &["CREATE"],
            &["apps"],
            &["v1"],
            &["deployments"]
        )]));
        assert!(!rules_match_pod_create(&[rule(
            &["CREATE"],
            &[""],
            &["v1"],
            &["pods/exec"]
        )]));
        let mut cluster = rule(&["CREATE"], &[""], &["v1"], &["pods"]);
        cluster.scope = Some("Cluster".into());
        assert!(!rules_match_pod_create(&[cluster]));
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [(
            "kubernetes.io/metadata.name".to_owned(),
            "case-1".to_owned(),
        )]
        .into();
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec!["install".into()]),
            }]),
            ..Default::default()
        };
        assert_eq!(selector_matches(Some(&not_in), &labels), Ok(true));
        let wanted = LabelSelector {
            match_labels: Some([("team".to_owned(), "a".to_owned())].into()),
            ..Default::default()
        };
        assert_eq!(selector_matches(Some(&wanted), &labels), Ok(false));
        assert_eq!(selector_matches(None, &labels), Ok(true));
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(selector_matches(Some(&bad), &labels).is_err());
    }
}

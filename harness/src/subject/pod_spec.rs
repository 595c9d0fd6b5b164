//! Names the profile uses, checked against the workload's pod spec.

use serde_json::Value;

/// Name checks against one pod spec.
pub(super) struct Checked<'a> {
    spec: &'a Value,
}

impl<'a> Checked<'a> {
    pub(super) fn new(spec: &'a Value) -> Self {
        Checked { spec }
    }

    pub(super) fn names(&self, list: &str) -> Vec<&'a str> {
        self.spec[list]
            .as_array()
            .map(|items| items.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default()
    }

    pub(super) fn images(&self) -> Vec<(String, String)> {
        ["initContainers", "containers"]
            .iter()
            .flat_map(|list| self.spec[*list].as_array().into_iter().flatten())
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["image"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    pub(super) fn is_init(&self, name: &str) -> bool {
        self.names("initContainers").contains(&name)
    }

    pub(super) fn container(&self, name: &str) -> Result<(), String> {
        let mut all = self.names("initContainers");
        all.extend(self.names("containers"));
        if all.contains(&name) {
            Ok(())
        } else {
            Err(format!(
                "no container named `{name}` in the pod spec; use one of: {}",
                all.join(", ")
            ))
        }
    }

    pub(super) fn volume_claim(&self, name: &str) -> Result<Option<String>, String> {
        let volumes = self.spec["volumes"].as_array().cloned().unwrap_or_default();
        let Some(volume) = volumes.iter().find(|v| v["name"] == name) else {
            let names: Vec<_> = volumes.iter().filter_map(|v| v["name"].as_str()).collect();
            return Err(format!(
                "no volume named `{name}` in the pod spec; use one of: {}",
                names.join(", ")
            ));
        };
        if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            Ok(Some(claim.to_owned()))
        } else if volume.get("emptyDir").is_some() {
            Ok(None)
        } else {
            Err(format!(
                "volume `{name}` must be a persistentVolumeClaim or an emptyDir"
            ))
        }
    }
}

impl Checked<'_> {
    /// Where `container` mounts `volume` (its first such mount), if it does.
    pub(super) fn mount_path(&self, container: &str, volume: &str) -> Option<String> {
        ["initContainers", "containers"]
            .iter()
            .flat_map(|list| self.spec[*list].as_array().into_iter().flatten())
            .filter(|c| c["name"] == container)
            .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
            .find(|m| m["name"] == volume)
            .and_then(|m| m["mountPath"].as_str().map(str::to_owned))
    }
}

//! kind's cluster configuration (`kind.x-k8s.io/v1alpha4`, kind `Cluster`) as typed structs, so
//! `kind-config.yaml` is checked before kind ever sees it. Unknown fields are errors.
//!
//! Only the fields phasecheck's config may use are modelled; adding one here is deliberate.

use std::path::Path;

use serde::Deserialize;

/// Errors reading a kind config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a kind Cluster config this harness accepts.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column where known.
        message: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The API version kind's config must declare.
pub const API_VERSION: &str = "kind.x-k8s.io/v1alpha4";

/// A kind `Cluster` config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// Always `Cluster`.
    pub kind: String,
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Cluster name (`kind create cluster --name` default).
    #[serde(default)]
    pub name: Option<String>,
    /// The nodes; kind's default is one control-plane node.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Cluster networking.
    #[serde(default)]
    pub networking: Option<Networking>,
    /// Feature gates for every component.
    #[serde(default)]
    pub feature_gates: std::collections::BTreeMap<String, bool>,
}

/// One node of the cluster.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    /// `control-plane` or `worker`.
    pub role: NodeRole,
    /// Node image (`kindest/node:vX.Y.Z@sha256:…`), pinning the Kubernetes version.
    #[serde(default)]
    pub image: Option<String>,
    /// Host directories mounted into the node.
    #[serde(default)]
    pub extra_mounts: Vec<Mount>,
    /// Node ports published on the host.
    #[serde(default)]
    pub extra_port_mappings: Vec<PortMapping>,
    /// Node labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A node's role.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the API server.
    ControlPlane,
    /// Runs workloads only.
    Worker,
}

/// A host path mounted into a node.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    /// Path on the host.
    pub host_path: String,
    /// Path in the node.
    pub container_path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// A node port published on the host.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortMapping {
    /// Port in the node.
    pub container_port: u16,
    /// Port on the host.
    #[serde(default)]
    pub host_port: Option<u16>,
    /// Host address to listen on.
    #[serde(default)]
    pub listen_address: Option<String>,
    /// `TCP`, `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// Cluster networking settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    /// `ipv4`, `ipv6` or `dual`.
    #[serde(default)]
    pub ip_family: Option<String>,
    /// API server address on the host.
    #[serde(default)]
    pub api_server_address: Option<String>,
    /// API server port on the host.
    #[serde(default)]
    pub api_server_port: Option<u16>,
    /// Pod CIDR.
    #[serde(default)]
    pub pod_subnet: Option<String>,
    /// Service CIDR.
    #[serde(default)]
    pub service_subnet: Option<String>,
    /// Skip kind's default CNI.
    #[serde(default, rename = "disableDefaultCNI")]
    pub disable_default_cni: bool,
}

impl Cluster {
    /// Reads and checks a kind config file.
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| Error::Parse {
            path: shown,
            message,
        })
    }

    /// Parses and checks a kind config; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cluster: Cluster = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if cluster.kind != "Cluster" {
            return Err(format!("field `kind`: `{}` is not `Cluster`", cluster.kind));
        }
        if cluster.api_version != API_VERSION {
            return Err(format!(
                "field `apiVersion`: `{}` is not `{API_VERSION}`",
                cluster.api_version
            ));
        }
        if !cluster.nodes.is_empty()
            && !cluster
                .nodes
                .iter()
                .any(|n| n.role == NodeRole::ControlPlane)
        {
            return Err("field `nodes`: needs a control-plane node".into());
        }
        Ok(cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_kind_config_is_a_valid_kind_cluster_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kind-config.yaml");
        let cluster = Cluster::load(&path).unwrap();
        assert_eq!(cluster.name.as_deref(), Some("phasecheck"));
        assert_eq!(cluster.nodes[0].role, NodeRole::ControlPlane);
    }

    #[test]
    fn an_unknown_field_in_a_kind_config_is_an_error_naming_it() {
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n    imagePolicy: always\n";
        let message = Cluster::parse(text).unwrap_err();
        assert!(message.contains("imagePolicy"), "{message}");
    }

    #[test]
    fn a_wrong_api_version_is_an_error() {
        let message =
            Cluster::parse("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n").unwrap_err();
        assert!(message.contains("apiVersion"), "{message}");
    }
}

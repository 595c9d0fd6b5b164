//! Subject profiles as written in YAML, one type per `apiVersion`, each turned into the one
//! [`Profile`](super::Profile) the harness works with.
//!
//! - `phasecheck/v1alpha1`: the reference workload's shape (phasepod's layout, its HTTP API, the
//!   ConfigMap and Secret of docs/CONTRACTS.md). Still loads, as phasepod's format.
//! - `phasecheck/v1alpha2`: any phased workload: the backup format, how the workload finds its
//!   store (ConfigMaps, Secrets and env with [templates](super::template)), where its dataset
//!   lives, how to read and write a file through the app, which requirements it claims.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AppAccess, Backend, ImageSource, RetentionKnob, Roles, ScheduleKnob, WorkloadRef};

/// Only `apiVersion` and `kind`, read first to pick the document type.
#[derive(Deserialize)]
pub(super) struct Header {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
}

/// `phasecheck/v1alpha1`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct V1 {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub manifests: Vec<PathBuf>,
    #[serde(default)]
    pub images: BTreeMap<String, ImageSource>,
    pub workload: WorkloadRef,
    pub data: V1Data,
    pub containers: Roles,
    pub app: V1App,
    pub backends: BTreeMap<Backend, V1Backend>,
    pub schedule: ScheduleKnob,
    #[serde(default)]
    pub retention: Option<RetentionKnob>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct V1Data {
    pub volume: String,
    pub mount_path: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V1App {
    pub container: String,
    pub port: u16,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V1Backend {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `phasecheck/v1alpha2`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct V2 {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub manifests: Vec<PathBuf>,
    #[serde(default)]
    pub images: BTreeMap<String, ImageSource>,
    /// Host programs the local runtime needs (beyond the images' commands), with how to install
    /// each: `{restic: "apt-get install -y restic"}`.
    #[serde(default)]
    pub host_programs: BTreeMap<String, String>,
    pub workload: WorkloadRef,
    pub containers: Roles,
    pub data: V2Data,
    pub app: V2App,
    pub backup: V2Backup,
    /// How the maintenance container backs up; absent = `scheduled`.
    #[serde(default)]
    pub maintenance: Option<V2Maintenance>,
    #[serde(default)]
    pub schedule: Option<ScheduleKnob>,
    #[serde(default)]
    pub retention: Option<RetentionKnob>,
    /// Requirement IDs the subject promises; absent = all.
    #[serde(default)]
    pub claims: Option<Vec<String>>,
    /// What to install before the cases: a webhook or an operator.
    #[serde(default)]
    pub install: Option<V2Install>,
}

/// `install:`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct V2Install {
    #[serde(default)]
    pub namespace: Option<String>,
    pub manifests: Vec<PathBuf>,
    #[serde(default)]
    pub ca_bundle: Option<V2CaBundle>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `install.caBundle`: where the webhook publishes its CA certificate.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V2CaBundle {
    pub deployment: String,
    pub port: u16,
    pub path: String,
}

/// `maintenance: {kind: scheduled}` or `{kind: continuous, lag: 10s}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V2Maintenance {
    pub kind: String,
    #[serde(default)]
    pub lag: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct V2Data {
    pub volume: String,
    /// Where the app mounts the volume; read from the pod spec when absent (required for a
    /// custom-resource workload, which has none).
    #[serde(default)]
    pub mount_path: Option<String>,
    /// The claim behind the volume of a custom-resource workload's pods.
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub layout: Option<String>,
    #[serde(default)]
    pub ignore: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V2App {
    pub container: String,
    pub port: u16,
    #[serde(default)]
    pub read: Option<AppAccess>,
    #[serde(default)]
    pub write: Option<AppAccess>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V2Backup {
    pub format: String,
    #[serde(default)]
    pub path: Option<String>,
    pub backends: BTreeMap<Backend, V2Wiring>,
}

/// How the workload finds one backend's store.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct V2Wiring {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub config_maps: Vec<V2Object>,
    #[serde(default)]
    pub secrets: Vec<V2Object>,
}

/// A ConfigMap or Secret the harness writes: its name and templated data.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V2Object {
    pub name: String,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

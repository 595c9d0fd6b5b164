//! Subject profiles: what is under test.
//!
//! A subject is a YAML profile (`kind: Subject`) next to the Kubernetes manifests it names. The
//! profile says which workload to watch, which containers are restore / run / maintenance, where
//! the dataset lives on the data volume, how to read and write a file through the app, how the
//! workload finds its backup store and in which format it keeps backups, which knobs set the
//! schedule and the retention, and which requirements it claims. Loading checks the profile
//! against its manifests, so a typo becomes an error naming the file, the field and the fix
//! instead of a scenario failure later.
//!
//! ```yaml
//! apiVersion: phasecheck/v1alpha2
//! kind: Subject
//! name: restic
//! manifests: [manifests/restic.yaml]
//! images:                              # the local runtime runs these host programs for them
//!   docker.io/restic/restic:0.14.0: {command: [restic]}
//! hostPrograms: {restic: "apt-get install -y restic"}
//! workload: {kind: Deployment, name: notes}
//! containers: {restore: [restore], run: [app], maintenance: [backup]}
//! data:
//!   volume: data                       # the pod volume holding the dataset
//!   root: ""                           # the dataset's directory inside it
//!   layout: plain                      # plain files, `phasepod` (manifest.json + files/), or
//!                                      # `sqlite` (root names a database; its `files` table)
//!   ignore: ["lost+found/**"]          # not part of the dataset
//! app:
//!   container: app
//!   port: 8080
//!   read: {httpGet: "/{path}"}         # optional: how to read one file through the app
//!   write: {httpPut: "/{path}"}        # optional: how to write one ({webdavPut: …}: MKCOL
//!                                      # the parents first; or {exec: [sh, -c, …]})
//! backup:
//!   format: restic                     # phasepod | files | restic | litestream
//!   path: /data                        # restic: the path the workload's `restic backup` names
//!   backends:
//!     s3:
//!       secrets:
//!         - name: restic
//!           data:
//!             RESTIC_REPOSITORY: "s3:{s3.endpoint}/{s3.bucket}/{prefix}"
//!             RESTIC_PASSWORD: "{restic.password}"
//!             AWS_ACCESS_KEY_ID: "{s3.accessKeyId}"
//!             AWS_SECRET_ACCESS_KEY: "{s3.secretAccessKey}"
//! schedule: {env: RUNAT}               # HH:MM:SS[,HH:MM:SS…] UTC on the maintenance container
//!                                      # (or `maintenance: {kind: continuous, lag: 10s}` and
//!                                      # no schedule: every write in the store within the lag)
//! retention: {env: KEEP}               # optional; without it MNT-4 is not applicable
//! claims: [INIT-1, INIT-2, INIT-4, RUN-1, RUN-2, SEC-1, SEC-2, MNT-1, MNT-2, LIFE-1]
//! ```
//!
//! When a webhook or an operator makes the phased pod, `install:` names its manifests
//! ([`install`]), the restore and maintenance containers named in `containers` are the ones it
//! adds (only the app must be in the workload's own pod spec), and the knobs may be pod template
//! annotations it reads: `schedule: {annotation: phasecheck.io/runat}`, `retention:
//! {annotation: …}`, and per backend `annotations: {phasecheck.io/backend: s3}` beside `env`,
//! `configMaps` and `secrets` (see `fixtures/subjects/phasepod-webhook.yaml`). An operator's
//! workload is a custom resource (any kind but Deployment, StatefulSet and Pod): `workload.pods`
//! names the Deployment or StatefulSet it makes, `data.mountPath` and `data.claim` stand in for
//! the pod spec, and the knobs are fields of the resource, JSON pointers: `schedule: {field:
//! /spec/runAt}`, `retention: {field: …}`, per backend `fields: {/spec/backend: s3}` (see
//! `fixtures/subjects/phasepod-operator.yaml`). Such a subject runs on clusters only.
//!
//! Template fields (`{s3.endpoint}` …) are listed in [`template::FIELDS`]. Profiles of
//! `apiVersion: phasecheck/v1alpha1` (the reference workload's first shape) still load: they mean
//! format and layout `phasepod`, the app's `/files/{path}`, and the ConfigMap
//! `phasecheck-backup-endpoint` and Secret `phasecheck-backup-credentials` of docs/CONTRACTS.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod document;
pub mod install;
mod maintenance;
mod pod_spec;
mod references;
pub mod template;

pub use maintenance::Maintenance;
use pod_spec::Checked;
pub use template::{Template, TemplateValues};

/// The profile versions this harness reads, newest first.
pub const API_VERSIONS: [&str; 2] = ["phasecheck/v1alpha2", "phasecheck/v1alpha1"];

/// Errors loading a subject profile. Every message names the file and, where there is one, the
/// field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile or a manifest could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The profile is not valid YAML for a subject (syntax, unknown or missing field).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        message: String,
    },
    /// A manifest the profile names is not a valid Kubernetes object (not YAML, an unknown field,
    /// a wrong type); the message names the manifest file and the document.
    #[error("{source} (in a manifest of subject {profile})")]
    Manifest {
        /// The profile naming the manifest.
        profile: PathBuf,
        /// What is wrong, naming the manifest file and the document.
        #[source]
        source: Box<crate::runtime::objects::Error>,
    },
    /// A field has a value the harness cannot use.
    #[error("{path}: field `{field}`: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The backup backends the catalog knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An S3-compatible object store.
    S3,
    /// A git repository over smart HTTP.
    Git,
}

impl Backend {
    /// Every backend, in report order.
    pub const ALL: [Backend; 2] = [Backend::S3, Backend::Git];

    /// The lower-case name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::S3 => "s3",
            Backend::Git => "git",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "s3" => Ok(Backend::S3),
            "git" => Ok(Backend::Git),
            other => Err(format!("unknown backend `{other}` (expected s3 or git)")),
        }
    }
}

pub use crate::formats::FormatKind as FormatName;

/// How the dataset sits on the data volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The files under the root are the dataset; nothing marks it valid.
    Plain,
    /// phasepod's: `manifest.json` (paths, sizes, SHA-256) and `files/**` under the root; valid
    /// when the manifest matches the files (docs/CONTRACTS.md).
    Phasepod,
    /// The root names a SQLite database; the dataset is its `files(path, content)` table
    /// ([`crate::formats::files_table`]), compared as content, never as the database's bytes.
    Sqlite,
}

impl Layout {
    /// The layout's name in profiles (`data.layout`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::Phasepod => "phasepod",
            Layout::Sqlite => "sqlite",
        }
    }

    /// Whether the layout has an integrity marker that "remove the marker" corrupts.
    pub fn has_integrity_marker(self) -> bool {
        matches!(self, Layout::Phasepod)
    }

    /// Whether the layout can tell a valid dataset from a damaged one by itself (phasepod's
    /// manifest, SQLite's integrity check); a plain tree of files cannot.
    pub fn self_verifying(self) -> bool {
        matches!(self, Layout::Phasepod | Layout::Sqlite)
    }

    /// Whether the dataset is one file (a database): a restore's progress does not show as a
    /// growing number of files, and a corruption damages that file.
    pub fn is_one_file(self) -> bool {
        matches!(self, Layout::Sqlite)
    }

    /// Whether the dataset is the files' bytes (a valid dataset left alone keeps them); a
    /// database's bytes change whenever it is opened for writing, its content does not.
    pub fn compares_bytes(self) -> bool {
        !matches!(self, Layout::Sqlite)
    }
}

/// How the local runtime runs an image.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ImageSource {
    /// A program phasecheck builds itself; only `phasepod`.
    Builtin(String),
    /// A host command (entrypoint argv) standing in for the image.
    Command(Vec<String>),
}

/// The workload object owning the pod.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `Pod`; any other kind is a custom resource that an
    /// operator (under `install:`) turns into `pods`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// For a custom resource: the Deployment or StatefulSet the operator makes of it, whose
    /// pods are judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsRef>,
}

/// The Deployment or StatefulSet an operator makes of a custom resource.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PodsRef {
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

/// The kinds whose pod spec the harness reads itself.
const POD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "Pod"];

impl WorkloadRef {
    /// Whether the workload is a custom resource (made into pods by an operator).
    pub fn is_custom_resource(&self) -> bool {
        !POD_KINDS.contains(&self.kind.as_str())
    }

    /// The name the workload's pods are found by: the Deployment or StatefulSet the operator
    /// makes of a custom resource, else the workload itself.
    pub fn pods_name(&self) -> &str {
        self.pods.as_ref().map_or(&self.name, |p| &p.name)
    }

    /// Whether `doc` is this workload's manifest.
    pub fn is(&self, doc: &Value) -> bool {
        doc["kind"] == self.kind.as_str() && doc["metadata"]["name"] == self.name.as_str()
    }
}

/// Where the dataset lives.
#[derive(Clone, Debug)]
pub struct DataSpec {
    /// Name of the pod volume holding the data.
    pub volume: String,
    /// Where the app container mounts it.
    pub mount_path: String,
    /// The claim behind the volume, as the profile names it (custom-resource workloads, whose
    /// pod spec the operator makes); else read from the pod spec.
    pub claim: Option<String>,
    /// The dataset's directory inside the volume (`""`: the volume's top); for layout `sqlite`
    /// the database file.
    pub root: String,
    /// How the dataset sits there.
    pub layout: Layout,
    /// Globs (relative to the root; `*` within a name, `**` across directories) of paths that
    /// are not part of the dataset, e.g. `.git/**`, `lost+found/**`.
    pub ignore: Vec<String>,
}

impl DataSpec {
    /// Whether `path` (relative to the root, `/`-separated) is ignored.
    pub fn is_ignored(&self, path: &str) -> bool {
        self.ignore.iter().any(|glob| path_glob_match(glob, path))
    }
}

/// Which containers play which phase.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// Init containers that restore.
    pub restore: Vec<String>,
    /// Run-phase containers.
    pub run: Vec<String>,
    /// Maintenance containers (classic or native sidecars).
    pub maintenance: Vec<String>,
}

/// How the harness reads or writes one file of the dataset through the app. `{path}` in the
/// path or argv is the file's path relative to the dataset root: percent-encoded in an HTTP path,
/// as is in an argv (give it an argv element of its own and refer to it as `"$1"` in `sh -c`, so
/// names with spaces survive).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum AppAccess {
    /// `GET` this path of the app's port; the body is the file.
    HttpGet(String),
    /// `PUT` the file's bytes to this path of the app's port.
    HttpPut(String),
    /// `PUT` the file's bytes with WebDAV: `MKCOL` every parent collection first (a WebDAV
    /// server refuses a `PUT` whose parent is missing with 409, RFC 4918 §9.7.1), as WebDAV
    /// clients do.
    WebdavPut(String),
    /// Run this argv in the app container: for a read, its standard output is the file in
    /// base64 (`base64 "$1"`); for a write, `{content.base64}` is replaced by the file's bytes in
    /// base64.
    Exec(Vec<String>),
}

impl AppAccess {
    /// The path (HTTP) or argv (exec) for the file at `path`; for exec, `content` fills
    /// `{content.base64}`.
    pub fn for_file(&self, path: &str, content: Option<&[u8]>) -> AppRequest {
        use base64::Engine as _;
        let fill_with = |s: &str, path: &str| {
            let s = s.replace("{path}", path);
            match content {
                Some(bytes) => s.replace(
                    "{content.base64}",
                    &base64::engine::general_purpose::STANDARD.encode(bytes),
                ),
                None => s,
            }
        };
        match self {
            AppAccess::HttpGet(p) | AppAccess::HttpPut(p) => {
                AppRequest::Http(fill_with(p, &percent_encode_path(path)))
            }
            AppAccess::WebdavPut(p) => AppRequest::Webdav(fill_with(p, &percent_encode_path(path))),
            AppAccess::Exec(argv) => {
                AppRequest::Exec(argv.iter().map(|a| fill_with(a, path)).collect())
            }
        }
    }
}

/// `path` with every byte but RFC 3986's unreserved ones and `/` percent-encoded.
pub fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request to the app for one file (see [`AppAccess::for_file`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRequest {
    /// An HTTP path on the app's port.
    Http(String),
    /// A WebDAV resource on the app's port: parent collections are made first.
    Webdav(String),
    /// An argv to exec in the app container.
    Exec(Vec<String>),
}

/// How to reach the app.
#[derive(Clone, Debug)]
pub struct AppSpec {
    /// The container serving the data.
    pub container: String,
    /// Its port (HTTP when `read`/`write` are `httpGet`/`httpPut`).
    pub port: u16,
    /// How to read a file through the app; `None`: the dataset is judged on the volume only.
    pub read: Option<AppAccess>,
    /// How to write a file through the app; `None`: scenarios that write through the app
    /// (MNT-2, MNT-6, LIFE-1 with a claim) are not applicable.
    pub write: Option<AppAccess>,
}

/// How the workload finds one backend's store: env on its restore and maintenance containers,
/// and ConfigMaps and Secrets the harness writes into the namespace, all with templated values.
#[derive(Clone, Debug, Default)]
pub struct Wiring {
    /// Env vars set on the restore and maintenance containers.
    pub env: BTreeMap<String, Template>,
    /// Annotations set on the workload's pod template (read by an injecting webhook).
    pub annotations: BTreeMap<String, Template>,
    /// Fields of the workload's manifest (JSON pointers, e.g. `/spec/backend` of a custom
    /// resource an operator reads), set to strings.
    pub fields: BTreeMap<String, Template>,
    /// ConfigMaps: name → key → template.
    pub config_maps: BTreeMap<String, BTreeMap<String, Template>>,
    /// Secrets: name → key → template.
    pub secrets: BTreeMap<String, BTreeMap<String, Template>>,
}

/// The backup format and the wiring per backend.
#[derive(Clone, Debug)]
pub struct BackupSpec {
    /// How backups are kept.
    pub format: FormatName,
    /// Where a backup holds the dataset, for formats that record absolute paths (restic: the
    /// path the workload passes to `restic backup`); `None`: at the backup's root.
    pub path: Option<String>,
    /// Backends the subject supports, with how the workload finds each.
    pub backends: BTreeMap<Backend, Wiring>,
}

/// Where the backup schedule (`HH:MM:SS[,HH:MM:SS…]`) is set: an env var of the maintenance
/// containers (`RUNAT`), or an annotation on the pod template that an injector reads.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleKnob {
    /// Env var name on the maintenance container.
    #[serde(default)]
    pub env: String,
    /// Annotation on the workload's pod template (exclusive with `env`).
    #[serde(default)]
    pub annotation: Option<String>,
    /// Field of the workload's manifest, a JSON pointer such as `/spec/runAt` (exclusive with
    /// `env` and `annotation`).
    #[serde(default)]
    pub field: Option<String>,
}

/// Where the number of backups to keep is set: an env var or a pod template annotation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionKnob {
    /// Env var name on the maintenance container.
    #[serde(default)]
    pub env: String,
    /// Annotation on the workload's pod template (exclusive with `env`).
    #[serde(default)]
    pub annotation: Option<String>,
    /// Field of the workload's manifest, a JSON pointer such as `/spec/runAt` (exclusive with
    /// `env` and `annotation`).
    #[serde(default)]
    pub field: Option<String>,
}

/// Where a knob is set on the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnobPlace<'a> {
    /// An env var of the maintenance containers.
    Env(&'a str),
    /// An annotation on the pod template.
    Annotation(&'a str),
    /// A field of the workload's manifest (a JSON pointer).
    Field(&'a str),
}

impl std::fmt::Display for KnobPlace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KnobPlace::Env(name) => write!(f, "${name}"),
            KnobPlace::Annotation(name) => write!(f, "annotation {name}"),
            KnobPlace::Field(pointer) => write!(f, "field {pointer}"),
        }
    }
}

/// Exactly one of `env`, `annotation` and `field` (a JSON pointer).
fn knob_place<'a>(
    env: &'a str,
    annotation: Option<&'a str>,
    field: Option<&'a str>,
) -> Result<KnobPlace<'a>, String> {
    match (env.is_empty(), annotation, field) {
        (false, None, None) => Ok(KnobPlace::Env(env)),
        (true, Some(a), None) if !a.is_empty() => Ok(KnobPlace::Annotation(a)),
        (true, None, Some(p)) if p.starts_with('/') => Ok(KnobPlace::Field(p)),
        (true, None, Some(p)) => Err(format!(
            "`field: {p}` must be a JSON pointer into the workload's manifest, e.g. `/spec/runAt`"
        )),
        _ => Err("name exactly one of `env` (a variable of the maintenance containers), `annotation` (on the pod template) and `field` (a JSON pointer into the workload's manifest)".into()),
    }
}

impl ScheduleKnob {
    /// Where the schedule is set.
    pub fn place(&self) -> KnobPlace<'_> {
        knob_place(&self.env, self.annotation.as_deref(), self.field.as_deref())
            .unwrap_or(KnobPlace::Env(&self.env))
    }
}

impl RetentionKnob {
    /// Where the retention is set.
    pub fn place(&self) -> KnobPlace<'_> {
        knob_place(&self.env, self.annotation.as_deref(), self.field.as_deref())
            .unwrap_or(KnobPlace::Env(&self.env))
    }
}

/// A loaded profile, whatever its `apiVersion`.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The `apiVersion` it was written in.
    pub api_version: String,
    /// Short name used in reports and namespaces (lower-case letters, digits, `-`).
    pub name: String,
    /// One line on what this subject is.
    pub description: String,
    /// Manifest files, relative to the profile.
    pub manifests: Vec<PathBuf>,
    /// How the local runtime runs each image.
    pub images: BTreeMap<String, ImageSource>,
    /// Host programs the local runtime needs, with how to install each.
    pub host_programs: BTreeMap<String, String>,
    /// The object owning the phased pod.
    pub workload: WorkloadRef,
    /// Where the dataset lives.
    pub data: DataSpec,
    /// Container roles.
    pub containers: Roles,
    /// How to reach the app.
    pub app: AppSpec,
    /// The backup format and how the workload finds each backend's store.
    pub backup: BackupSpec,
    /// How the maintenance container backs up: on a schedule (its knob) or continuously.
    pub maintenance: Maintenance,
    /// The retention knob of the maintenance container, if it has one.
    pub retention: Option<RetentionKnob>,
    /// Requirement IDs the subject promises; `None`: all of them.
    pub claims: Option<BTreeSet<String>>,
    /// What is installed before the cases (a webhook or operator), if anything.
    pub install: Option<install::InstallSpec>,
}

/// A loaded, checked subject: the profile plus its manifests' text.
#[derive(Clone, Debug)]
pub struct Subject {
    /// The profile file.
    pub path: PathBuf,
    /// The profile.
    pub profile: Profile,
    /// Each manifest file with its YAML text.
    pub manifests: Vec<(PathBuf, String)>,
    /// The persistent volume claim behind the data volume; `None` for an emptyDir.
    pub data_claim: Option<String>,
    /// Whether the maintenance container is a native sidecar (an init container).
    pub native_sidecar: bool,
    /// Every container of the pod spec with its image: `(container, image)`.
    pub container_images: Vec<(String, String)>,
    /// Each `install.manifests` file with its YAML text.
    pub install_manifests: Vec<(PathBuf, String)>,
}

impl Subject {
    /// Reads `path` and its manifests and checks them against each other.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read(path)?;
        let parse_error = |e: serde_saphyr::Error| Error::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let invalid = |field: &str, problem: String| Error::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let header: document::Header = serde_saphyr::from_str(&text).map_err(parse_error)?;
        if header.kind != "Subject" {
            return Err(invalid(
                "kind",
                format!("`{}` is not `Subject`", header.kind),
            ));
        }
        let mut profile = match header.api_version.as_str() {
            "phasecheck/v1alpha1" => from_v1(serde_saphyr::from_str(&text).map_err(parse_error)?),
            "phasecheck/v1alpha2" => from_v2(
                serde_saphyr::from_str(&text).map_err(parse_error)?,
                &invalid,
            )?,
            other => {
                return Err(invalid(
                    "apiVersion",
                    format!(
                        "`{other}` is not supported; use one of: {}",
                        API_VERSIONS.join(", ")
                    ),
                ));
            }
        };
        let name_ok = !profile.name.is_empty()
            && profile.name.len() <= 30
            && profile
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            return Err(invalid(
                "name",
                format!(
                    "`{}` must be 1-30 lower-case letters, digits or `-`",
                    profile.name
                ),
            ));
        }
        let backends_field = if profile.api_version == API_VERSIONS[0] {
            "backup.backends"
        } else {
            "backends"
        };
        if profile.backup.backends.is_empty() {
            return Err(invalid(
                backends_field,
                "declare at least one backend (s3 or git)".into(),
            ));
        }
        for backend in profile.backup.backends.keys() {
            if !profile.backup.format.backends().contains(backend) {
                return Err(invalid(
                    &format!("{backends_field}.{backend}"),
                    format!(
                        "format `{}` keeps backups on {} only; remove the {backend} backend",
                        profile.backup.format,
                        profile
                            .backup
                            .format
                            .backends()
                            .iter()
                            .map(|b| b.as_str())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                ));
            }
        }
        if profile.manifests.is_empty() {
            return Err(invalid(
                "manifests",
                "name at least one manifest file".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let manifests = read_manifests(path, base, "manifests", &profile.manifests, &invalid)?;
        let install_manifests = match &profile.install {
            Some(install) => read_manifests(
                path,
                base,
                "install.manifests",
                &install.manifests,
                &invalid,
            )?,
            None => Vec::new(),
        };
        if let Some(source) = profile.install.as_ref().and_then(|i| i.ca_bundle.as_ref()) {
            install_deployment(&install_manifests, &source.deployment)
                .map_err(|problem| invalid("install.caBundle.deployment", problem))?;
        }
        if profile.workload.is_custom_resource() {
            check_custom_resource(&manifests, &profile, &invalid)?;
            return Ok(Subject {
                path: path.to_owned(),
                data_claim: profile.data.claim.clone(),
                profile,
                manifests,
                native_sidecar: false,
                container_images: Vec::new(),
                install_manifests,
            });
        }
        for (field, set) in [
            ("workload.pods", profile.workload.pods.is_some()),
            ("data.claim", profile.data.claim.is_some()),
        ] {
            if set {
                return Err(invalid(
                    field,
                    format!(
                        "only for a custom-resource workload; a {} names its pods and claim itself: remove it",
                        profile.workload.kind
                    ),
                ));
            }
        }
        let pod_spec = find_pod_spec(&manifests, &profile.workload)
            .map_err(|problem| invalid("workload", problem))?;
        let check = Checked::new(&pod_spec);
        let roles = [
            ("containers.restore", &profile.containers.restore),
            ("containers.run", &profile.containers.run),
            ("containers.maintenance", &profile.containers.maintenance),
        ];
        // NB: with an install, the restore and maintenance containers come from the webhook
        // or operator: only the app is in the workload's own pod spec.
        let injected = profile.install.is_some();
        for (field, names) in roles {
            if names.is_empty() {
                return Err(invalid(field, "name at least one container".into()));
            }
            for (i, name) in names.iter().enumerate() {
                if injected && field != "containers.run" {
                    continue;
                }
                check
                    .container(name)
                    .map_err(|problem| invalid(&format!("{field}[{i}]"), problem))?;
            }
        }
        check
            .container(&profile.app.container)
            .map_err(|problem| invalid("app.container", problem))?;
        let data_claim = check
            .volume_claim(&profile.data.volume)
            .map_err(|problem| invalid("data.volume", problem))?;
        if profile.data.mount_path.is_empty() {
            profile.data.mount_path = check
                .mount_path(&profile.app.container, &profile.data.volume)
                .ok_or_else(|| {
                    invalid(
                        "data.volume",
                        format!(
                            "the app container `{}` does not mount volume `{}`",
                            profile.app.container, profile.data.volume
                        ),
                    )
                })?;
        }
        let native_sidecar = profile
            .containers
            .maintenance
            .iter()
            .any(|name| check.is_init(name));
        for (image, source) in &profile.images {
            match source {
                ImageSource::Builtin(name) if name != "phasepod" => {
                    return Err(invalid(
                        &format!("images.{image}.builtin"),
                        format!("unknown builtin `{name}`; the only builtin is `phasepod`"),
                    ));
                }
                ImageSource::Command(argv) if argv.is_empty() => {
                    return Err(invalid(
                        &format!("images.{image}.command"),
                        "name the program (and its default arguments)".into(),
                    ));
                }
                _ => {}
            }
        }
        if !injected {
            check_references(&pod_spec, &manifests, &profile, backends_field, &invalid)?;
        }
        let container_images = check.images();
        Ok(Subject {
            path: path.to_owned(),
            profile,
            manifests,
            data_claim,
            native_sidecar,
            container_images,
            install_manifests,
        })
    }

    /// The install's objects, strictly parsed (none without `install:`).
    pub fn install_objects(&self) -> Vec<crate::runtime::objects::Object> {
        self.install_manifests
            .iter()
            .flat_map(|(file, text)| {
                crate::runtime::objects::parse_manifests(text, file).unwrap_or_default()
            })
            .collect()
    }

    /// The subject's name.
    pub fn name(&self) -> &str {
        &self.profile.name
    }

    /// The first container (of the workload, or of a Deployment or Pod of `install:`) whose
    /// image has no entry in `images` (the local runtime needs one for every image), as an
    /// error naming the field and the fix.
    pub fn check_images_mapped(&self) -> Result<()> {
        let installed = self.install_objects().into_iter().flat_map(|o| {
            let spec = match o {
                crate::runtime::objects::Object::Deployment(d) => {
                    d.spec.and_then(|s| s.template.spec)
                }
                crate::runtime::objects::Object::Pod(p) => p.spec,
                _ => None,
            };
            spec.into_iter()
                .flat_map(|s| s.init_containers.into_iter().flatten().chain(s.containers))
                .map(|c| (c.name, c.image.unwrap_or_default()))
                .collect::<Vec<_>>()
        });
        let all: Vec<(String, String)> = self
            .container_images
            .iter()
            .cloned()
            .chain(installed)
            .collect();
        for (container, image) in &all {
            let mapped = self
                .profile
                .images
                .keys()
                .any(|known| with_tag(known) == with_tag(image));
            if !mapped {
                return Err(Error::Invalid {
                    path: self.path.clone(),
                    field: "images".into(),
                    problem: format!(
                        "image `{image}` (container `{container}`) has no host command; add `{image}: {{command: [/path/to/program]}}` or `{{builtin: phasepod}}`"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether the local runtime can run this subject: not when an operator makes its pods
    /// (a custom-resource workload, or CRDs, RBAC and other kinds under `install:`), which
    /// needs a cluster's API to watch. The error names the field and the fix.
    pub fn check_runs_locally(&self) -> Result<()> {
        let on_a_cluster = "operators (controllers watching the API) need a real cluster: run this subject with --runtime kind, minikube or existing";
        let invalid = |field: &str, problem: String| Error::Invalid {
            path: self.path.clone(),
            field: field.into(),
            problem,
        };
        if self.profile.workload.is_custom_resource() {
            return Err(invalid(
                "workload.kind",
                format!(
                    "`{}` is a custom resource, made into pods by an operator; {on_a_cluster}",
                    self.profile.workload.kind
                ),
            ));
        }
        let other = self
            .install_objects()
            .into_iter()
            .find(|o| matches!(o, crate::runtime::objects::Object::Other { .. }));
        if let Some(other) = other {
            return Err(invalid(
                "install.manifests",
                format!("{other} is a kind the local runtime does not run; {on_a_cluster}"),
            ));
        }
        Ok(())
    }

    /// Checks `claims` against the catalog's IDs.
    pub fn check_claims(&self, known: &[&str]) -> Result<()> {
        for (i, id) in self.profile.claims.iter().flatten().enumerate() {
            if !known.contains(&id.as_str()) {
                return Err(Error::Invalid {
                    path: self.path.clone(),
                    field: format!("claims[{i}]"),
                    problem: format!(
                        "`{id}` is not a requirement of the catalog; use IDs `phasecheck list` shows: {}",
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether the subject promises requirement `id`.
    pub fn claims(&self, id: &str) -> bool {
        self.profile
            .claims
            .as_ref()
            .is_none_or(|claims| claims.contains(id))
    }

    /// The host programs the local runtime needs that are not on `PATH`, each with how to
    /// install it: the first word of every mapped image command, and `hostPrograms`.
    pub fn missing_host_programs(&self) -> Vec<(String, String)> {
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for source in self.profile.images.values() {
            if let ImageSource::Command(argv) = source
                && let Some(program) = argv.first()
            {
                wanted.entry(program.clone()).or_insert_with(|| {
                    format!("install `{program}` or fix the image's command in the profile")
                });
            }
        }
        for (program, hint) in &self.profile.host_programs {
            wanted.insert(program.clone(), hint.clone());
        }
        wanted
            .into_iter()
            .filter(|(program, _)| !program_exists(program))
            .collect()
    }

    /// Backends the subject declares, in report order.
    pub fn backends(&self) -> Vec<Backend> {
        self.profile.backup.backends.keys().copied().collect()
    }

    /// How the workload finds `backend`'s store.
    pub fn wiring(&self, backend: Backend) -> Option<&Wiring> {
        self.profile.backup.backends.get(&backend)
    }
}

/// Whether `program` (a path, or a name looked up on `PATH`) is an executable file.
pub fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(program))))
        .unwrap_or(false)
}

/// A `v1alpha1` profile as phasepod's format, layout, API and wiring.
fn from_v1(doc: document::V1) -> Profile {
    let literal = |s: &str| {
        Template::parse(&s.replace('{', "{{").replace('}', "}}"))
            .expect("escaped text is a template")
    };
    let field = |f: &str| Template::parse(&format!("{{{f}}}")).expect("a known field");
    let endpoint: BTreeMap<String, Template> = [
        ("S3_ENDPOINT", "s3.endpoint"),
        ("S3_BUCKET", "s3.bucket"),
        ("S3_PREFIX", "s3.prefix"),
        ("S3_REGION", "s3.region"),
        ("GIT_URL", "git.url"),
        ("GIT_BRANCH", "git.branch"),
    ]
    .into_iter()
    .map(|(k, f)| (k.to_owned(), field(f)))
    .collect();
    let credentials: BTreeMap<String, Template> = [
        ("s3-access-key-id", "s3.accessKeyId"),
        ("s3-secret-access-key", "s3.secretAccessKey"),
        ("git-username", "git.username"),
        ("git-password", "git.password"),
    ]
    .into_iter()
    .map(|(k, f)| (k.to_owned(), field(f)))
    .collect();
    let backends = doc
        .backends
        .into_iter()
        .map(|(backend, spec)| {
            let wiring = Wiring {
                env: spec
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), literal(v)))
                    .collect(),
                annotations: BTreeMap::new(),
                fields: BTreeMap::new(),
                config_maps: [(V1_ENDPOINT_CONFIGMAP.to_owned(), endpoint.clone())].into(),
                secrets: [(V1_CREDENTIALS_SECRET.to_owned(), credentials.clone())].into(),
            };
            (backend, wiring)
        })
        .collect();
    Profile {
        api_version: doc.api_version,
        name: doc.name,
        description: doc.description,
        manifests: doc.manifests,
        images: doc.images,
        host_programs: BTreeMap::new(),
        workload: doc.workload,
        data: DataSpec {
            volume: doc.data.volume,
            mount_path: doc.data.mount_path,
            claim: None,
            root: "current".into(),
            layout: Layout::Phasepod,
            ignore: Vec::new(),
        },
        containers: doc.containers,
        app: AppSpec {
            container: doc.app.container,
            port: doc.app.port,
            read: Some(AppAccess::HttpGet("/files/{path}".into())),
            write: Some(AppAccess::HttpPut("/files/{path}".into())),
        },
        backup: BackupSpec {
            format: FormatName::Phasepod,
            path: None,
            backends,
        },
        maintenance: Maintenance::Scheduled(doc.schedule),
        retention: doc.retention,
        claims: None,
        install: None,
    }
}

/// The ConfigMap a `v1alpha1` subject reads its store's coordinates from.
pub const V1_ENDPOINT_CONFIGMAP: &str = "phasecheck-backup-endpoint";
/// The Secret a `v1alpha1` subject reads its store's credentials from.
pub const V1_CREDENTIALS_SECRET: &str = "phasecheck-backup-credentials";

/// A `v1alpha2` profile, its formats, layouts, templates and app access checked.
fn from_v2(doc: document::V2, invalid: &dyn Fn(&str, String) -> Error) -> Result<Profile> {
    let format: FormatName = doc.backup.format.parse().map_err(|_| {
        invalid(
            "backup.format",
            format!(
                "unknown format `{}`; use one of: {}",
                doc.backup.format,
                FormatName::ALL.map(|f| f.name()).join(", ")
            ),
        )
    })?;
    let backup_path = match doc.backup.path {
        None => None,
        Some(_) if format != FormatName::Restic => {
            return Err(invalid(
                "backup.path",
                format!(
                    "only the restic format records where a backup holds the dataset; remove it for `{}`",
                    format.name()
                ),
            ));
        }
        Some(path) => Some(check_backup_path(&path).map_err(|e| invalid("backup.path", e))?),
    };
    let layout = match doc.data.layout.as_deref() {
        None | Some("plain") => Layout::Plain,
        Some("phasepod") => Layout::Phasepod,
        Some("sqlite") => Layout::Sqlite,
        Some(other) => {
            return Err(invalid(
                "data.layout",
                format!("unknown layout `{other}`; use `plain`, `phasepod` or `sqlite`"),
            ));
        }
    };
    if layout == Layout::Sqlite && doc.data.root.trim_end_matches('/').is_empty() {
        return Err(invalid(
            "data.root",
            "layout `sqlite` needs the database file's path inside the volume, e.g. `app.db`"
                .into(),
        ));
    }
    let maintenance = maintenance::from_document(doc.maintenance, doc.schedule)
        .map_err(|(field, problem)| invalid(field, problem))?;
    if let Some(knob) = maintenance.schedule() {
        knob_place(&knob.env, knob.annotation.as_deref(), knob.field.as_deref())
            .map_err(|problem| invalid("schedule", problem))?;
    }
    if let Some(knob) = &doc.retention {
        knob_place(&knob.env, knob.annotation.as_deref(), knob.field.as_deref())
            .map_err(|problem| invalid("retention", problem))?;
    }
    let install = doc
        .install
        .map(|spec| {
            install::InstallSpec::from_document(spec, &|field, problem| invalid(field, problem))
        })
        .transpose()?;
    if doc.data.root.starts_with('/') || doc.data.root.split('/').any(|p| p == "..") {
        return Err(invalid(
            "data.root",
            format!(
                "`{}` must be a relative path inside the volume, without `..`",
                doc.data.root
            ),
        ));
    }
    for (field, access) in [("app.read", &doc.app.read), ("app.write", &doc.app.write)] {
        check_access(field, access.as_ref()).map_err(|p| invalid(field, p))?;
    }
    let template = |field: String, text: &str| {
        Template::parse(text).map_err(|problem| invalid(&field, problem))
    };
    let mut backends = BTreeMap::new();
    for (backend, spec) in doc.backup.backends {
        let at = format!("backup.backends.{backend}");
        let mut wiring = Wiring::default();
        for (key, text) in &spec.env {
            wiring
                .env
                .insert(key.clone(), template(format!("{at}.env.{key}"), text)?);
        }
        for (key, text) in &spec.annotations {
            wiring.annotations.insert(
                key.clone(),
                template(format!("{at}.annotations.{key}"), text)?,
            );
        }
        for (pointer, text) in &spec.fields {
            if !pointer.starts_with('/') {
                return Err(invalid(
                    &format!("{at}.fields.{pointer}"),
                    "name a JSON pointer into the workload's manifest, e.g. `/spec/backend`".into(),
                ));
            }
            wiring.fields.insert(
                pointer.clone(),
                template(format!("{at}.fields.{pointer}"), text)?,
            );
        }
        for (kind, objects, out) in [
            ("configMaps", &spec.config_maps, &mut wiring.config_maps),
            ("secrets", &spec.secrets, &mut wiring.secrets),
        ] {
            for (i, object) in objects.iter().enumerate() {
                let mut data = BTreeMap::new();
                for (key, text) in &object.data {
                    data.insert(
                        key.clone(),
                        template(format!("{at}.{kind}[{i}].data.{key}"), text)?,
                    );
                }
                if out.insert(object.name.clone(), data).is_some() {
                    return Err(invalid(
                        &format!("{at}.{kind}[{i}].name"),
                        format!("`{}` is listed twice", object.name),
                    ));
                }
            }
        }
        backends.insert(backend, wiring);
    }
    Ok(Profile {
        api_version: doc.api_version,
        name: doc.name,
        description: doc.description,
        manifests: doc.manifests,
        images: doc.images,
        host_programs: doc.host_programs,
        workload: doc.workload,
        data: DataSpec {
            volume: doc.data.volume,
            mount_path: doc.data.mount_path.unwrap_or_default(),
            claim: doc.data.claim,
            root: doc.data.root.trim_end_matches('/').to_owned(),
            layout,
            ignore: doc.data.ignore,
        },
        containers: doc.containers,
        app: AppSpec {
            container: doc.app.container,
            port: doc.app.port,
            read: doc.app.read,
            write: doc.app.write,
        },
        backup: BackupSpec {
            format,
            path: backup_path,
            backends,
        },
        maintenance,
        retention: doc.retention,
        claims: doc.claims.map(|ids| ids.into_iter().collect()),
        install,
    })
}

/// Reads and strictly parses manifest files named by `field` (relative to `base`).
fn read_manifests(
    profile: &Path,
    base: &Path,
    field: &str,
    files: &[PathBuf],
    invalid: &dyn Fn(&str, String) -> Error,
) -> Result<Vec<(PathBuf, String)>> {
    let mut manifests = Vec::new();
    for (i, rel) in files.iter().enumerate() {
        let file = base.join(rel);
        let text = std::fs::read_to_string(&file).map_err(|source| {
            invalid(
                &format!("{field}[{i}]"),
                format!("cannot read {}: {source}", file.display()),
            )
        })?;
        // NB: strictly, as the runtimes will: a typo in a manifest is an input error now,
        // naming the manifest, not a failure of every case later.
        crate::runtime::objects::parse_manifests(&text, &file).map_err(|source| {
            Error::Manifest {
                profile: profile.to_owned(),
                source: Box::new(source),
            }
        })?;
        manifests.push((file, text));
    }
    Ok(manifests)
}

/// Checks that the install's manifests hold Deployment `name`.
fn install_deployment(manifests: &[(PathBuf, String)], name: &str) -> Result<(), String> {
    let deployments: Vec<String> = manifests
        .iter()
        .flat_map(|(file, text)| {
            crate::runtime::objects::parse_manifests(text, file).unwrap_or_default()
        })
        .filter(|o| o.kind() == "Deployment")
        .map(|o| o.name().to_owned())
        .collect();
    if deployments.iter().any(|d| d == name) {
        Ok(())
    } else {
        Err(format!(
            "no Deployment `{name}` in install.manifests; use one of: {}",
            deployments.join(", ")
        ))
    }
}

/// `backup.path`: absolute, normalised, not `/`; returned without its leading `/`.
fn check_backup_path(path: &str) -> Result<String, String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if !path.starts_with('/') || parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(format!(
            "`{path}` must be an absolute path below `/` without `.` or `..`, as the workload's backup command names it (e.g. `/data`)"
        ));
    }
    Ok(parts.join("/"))
}

/// An app access names `{path}` and, for HTTP, an absolute path.
fn check_access(field: &str, access: Option<&AppAccess>) -> Result<(), String> {
    let Some(access) = access else {
        return Ok(());
    };
    let names_path = match access {
        AppAccess::HttpGet(p) | AppAccess::HttpPut(p) | AppAccess::WebdavPut(p) => {
            if !p.starts_with('/') {
                return Err(format!("`{p}` must start with `/`"));
            }
            p.contains("{path}")
        }
        AppAccess::Exec(argv) => {
            if argv.is_empty() {
                return Err("name the program to exec".into());
            }
            argv.iter().any(|a| a.contains("{path}"))
        }
    };
    match (field, access) {
        ("app.read", AppAccess::HttpPut(_) | AppAccess::WebdavPut(_)) => {
            Err("reading takes `httpGet` or `exec`".into())
        }
        ("app.write", AppAccess::HttpGet(_)) => {
            Err("writing takes `httpPut`, `webdavPut` or `exec`".into())
        }
        _ if !names_path => Err("name the file with `{path}`".into()),
        _ => Ok(()),
    }
}

/// Whether `path` matches `glob`: `*` any characters but `/`, `**` any characters (`dir/**`
/// also matches `dir` itself), `?` one character but `/`.
pub fn path_glob_match(glob: &str, path: &str) -> bool {
    if let Some(dir) = glob.strip_suffix("/**")
        && path_glob_match(dir, path)
    {
        return true;
    }
    fn go(g: &[u8], p: &[u8]) -> bool {
        match (g.first(), p.first()) {
            (None, None) => true,
            (Some(b'*'), _) if g.get(1) == Some(&b'*') => {
                let rest = &g[2..];
                let rest = rest.strip_prefix(b"/").unwrap_or(rest);
                (0..=p.len()).any(|i| go(rest, &p[i..]) || (i > 0 && go(&g[2..], &p[i..])))
            }
            (Some(b'*'), _) => go(&g[1..], p) || (!p.is_empty() && p[0] != b'/' && go(g, &p[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => go(&g[1..], &p[1..]),
            (Some(a), Some(b)) if a == b => go(&g[1..], &p[1..]),
            _ => false,
        }
    }
    go(glob.as_bytes(), path.as_bytes())
}

/// `image` with `:latest` added when it names no tag or digest.
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Finds the pod spec of the workload among the manifests' documents.
/// Every ConfigMap and Secret the pod spec needs is in the manifests or written by the harness,
/// for every backend.
fn check_references(
    pod_spec: &Value,
    manifests: &[(PathBuf, String)],
    profile: &Profile,
    backends_field: &str,
    invalid: &dyn Fn(&str, String) -> Error,
) -> Result<()> {
    let mut docs = Vec::new();
    for (file, text) in manifests {
        docs.extend(
            crate::runtime::objects::read_documents(text, file)
                .map_err(|e| invalid("manifests", e.to_string()))?,
        );
    }
    let defined = references::defined(&docs);
    for reference in references::references(pod_spec) {
        if defined.contains(&(reference.kind.to_owned(), reference.name.clone())) {
            continue;
        }
        for (backend, wiring) in &profile.backup.backends {
            let (written, list) = match reference.kind {
                "ConfigMap" => (&wiring.config_maps, "configMaps"),
                _ => (&wiring.secrets, "secrets"),
            };
            if !written.contains_key(&reference.name) {
                return Err(invalid(
                    &format!("{backends_field}.{backend}"),
                    format!(
                        "the pod spec's {} reads {} `{}`, which neither the manifests nor this backend's wiring provide; add it to `{list}` here (or to the manifests, or mark the reference `optional: true`)",
                        reference.place, reference.kind, reference.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A custom-resource workload: an operator to make it (`install:`), the pods it makes, where
/// the app mounts the data, its knobs in the resource's own fields.
fn check_custom_resource(
    manifests: &[(PathBuf, String)],
    profile: &Profile,
    invalid: &dyn Fn(&str, String) -> Error,
) -> Result<()> {
    let workload = &profile.workload;
    let kind = &workload.kind;
    if profile.install.is_none() {
        return Err(invalid(
            "workload.kind",
            format!(
                "`{kind}` is not Deployment, StatefulSet or Pod, so it is a custom resource: name the operator that makes its pods under `install:`"
            ),
        ));
    }
    match &workload.pods {
        Some(pods) if ["Deployment", "StatefulSet"].contains(&pods.kind.as_str()) => {}
        Some(pods) => {
            return Err(invalid(
                "workload.pods.kind",
                format!("`{}`: use Deployment or StatefulSet", pods.kind),
            ));
        }
        None => {
            return Err(invalid(
                "workload.pods",
                format!(
                    "name the Deployment or StatefulSet the operator makes of {kind}/{}, e.g. `pods: {{kind: Deployment, name: {}}}`",
                    workload.name, workload.name
                ),
            ));
        }
    }
    let mut found = false;
    let mut seen = Vec::new();
    for (file, text) in manifests {
        for doc in crate::runtime::objects::read_documents(text, file)
            .map_err(|e| invalid("manifests", e.to_string()))?
        {
            found |= workload.is(&doc);
            seen.push(format!(
                "{}/{}",
                doc["kind"].as_str().unwrap_or_default(),
                doc["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
    }
    if !found {
        return Err(invalid(
            "workload",
            format!(
                "no {kind}/{} in the manifests (found: {}); fix `workload` or the manifests",
                workload.name,
                seen.join(", ")
            ),
        ));
    }
    if profile.data.mount_path.is_empty() {
        return Err(invalid(
            "data.mountPath",
            format!(
                "a {kind} has no pod spec to read it from: say where the app container mounts volume `{}`, e.g. `mountPath: /data`",
                profile.data.volume
            ),
        ));
    }
    let pod_template_only =
        "the operator makes the pod template: set the knob in the resource, `field: /spec/…`";
    let knobs = [
        (
            "schedule",
            profile.maintenance.schedule().map(|k| k.place()),
        ),
        ("retention", profile.retention.as_ref().map(|k| k.place())),
    ];
    for (field, place) in knobs {
        if matches!(place, Some(KnobPlace::Env(_) | KnobPlace::Annotation(_))) {
            return Err(invalid(field, pod_template_only.into()));
        }
    }
    for (backend, wiring) in &profile.backup.backends {
        if !wiring.env.is_empty() || !wiring.annotations.is_empty() {
            return Err(invalid(
                &format!("backup.backends.{backend}"),
                format!("{pod_template_only} (`fields:`), not `env` or `annotations`"),
            ));
        }
    }
    Ok(())
}

fn find_pod_spec(manifests: &[(PathBuf, String)], workload: &WorkloadRef) -> Result<Value, String> {
    let mut seen = Vec::new();
    for (file, text) in manifests {
        let docs =
            crate::runtime::objects::read_documents(text, file).map_err(|e| e.to_string())?;
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            seen.push(format!("{kind}/{name}"));
            if kind != workload.kind || name != workload.name {
                continue;
            }
            let spec = match kind {
                "Pod" => doc["spec"].clone(),
                "Deployment" | "StatefulSet" => doc["spec"]["template"]["spec"].clone(),
                other => {
                    return Err(format!(
                        "kind `{other}` is not supported; use Deployment, StatefulSet or Pod"
                    ));
                }
            };
            return Ok(spec);
        }
    }
    Err(format!(
        "no {}/{} in the manifests (found: {}); fix `workload` or the manifests",
        workload.kind,
        workload.name,
        seen.join(", ")
    ))
}

#[cfg(test)]
mod tests;

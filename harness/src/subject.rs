//! Subject profiles: what is under test.
//!
//! A subject is a YAML profile (`kind: Subject`) next to the Kubernetes manifests it names. The
//! profile says which workload to watch, which containers are restore / run / maintenance, where
//! the data lives, how to reach the app, which knobs set the schedule and the retention, and which
//! backends the subject supports. Loading checks the profile against its manifests, so a typo
//! becomes an error naming the file, the field and the fix instead of a scenario failure later.
//!
//! ```yaml
//! apiVersion: phasecheck/v1alpha1
//! kind: Subject
//! name: phasepod
//! manifests: [manifests/phasepod-classic.yaml]
//! images:
//!   phasecheck/phasepod:dev: {builtin: phasepod}
//! workload: {kind: Deployment, name: phasepod}
//! data: {volume: data, mountPath: /data}
//! containers: {restore: [restore], run: [app], maintenance: [backup]}
//! app: {container: app, port: 8080}
//! backends:
//!   s3: {env: {BACKEND: s3}}
//!   git: {env: {BACKEND: git}}
//! schedule: {env: RUNAT}
//! retention: {env: KEEP}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The profile as written in YAML.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    /// Must be `phasecheck/v1alpha1`.
    pub api_version: String,
    /// Must be `Subject`.
    pub kind: String,
    /// Short name used in reports and namespaces (lower-case letters, digits, `-`).
    pub name: String,
    /// One line on what this subject is.
    #[serde(default)]
    pub description: String,
    /// Manifest files, relative to the profile.
    pub manifests: Vec<PathBuf>,
    /// How the local runtime runs each image.
    #[serde(default)]
    pub images: BTreeMap<String, ImageSource>,
    /// The object owning the phased pod.
    pub workload: WorkloadRef,
    /// Where the dataset lives.
    pub data: DataSpec,
    /// Container roles.
    pub containers: Roles,
    /// How to reach the app.
    pub app: AppSpec,
    /// Backends the subject supports, with the settings that select each.
    pub backends: BTreeMap<Backend, BackendSpec>,
    /// The schedule knob of the maintenance container.
    pub schedule: ScheduleKnob,
    /// The retention knob of the maintenance container, if it has one.
    #[serde(default)]
    pub retention: Option<RetentionKnob>,
}

/// How the local runtime runs an image.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ImageSource {
    /// A program phasecheck builds itself; only `phasepod`, which sandboxes show at the
    /// reference image's `/phasepod`.
    Builtin(String),
    /// A host command (entrypoint argv) standing in for the image. Sandboxes show the host's
    /// `/usr` and `/etc`; a program elsewhere (an absolute path) is bound in at its own path.
    Command(Vec<String>),
}

/// The workload object owning the pod.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `Pod`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

/// Where the dataset lives.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataSpec {
    /// Name of the pod volume holding the data.
    pub volume: String,
    /// Where the app mounts it.
    pub mount_path: String,
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

/// How to reach the app.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The container serving the data.
    pub container: String,
    /// Its HTTP port (phasepod's API: `/healthz`, `/manifest`, `/files/…`).
    pub port: u16,
}

/// Settings that select one backend.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    /// Env vars set on the restore and maintenance containers.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The env var carrying the backup schedule (`RUNAT=HH:MM:SS[,HH:MM:SS…]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleKnob {
    /// Env var name on the maintenance container.
    pub env: String,
}

/// The env var carrying the number of backups to keep.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionKnob {
    /// Env var name on the maintenance container.
    pub env: String,
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
}

impl Subject {
    /// Reads `path` and its manifests and checks them against each other.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read(path)?;
        let profile: Profile = serde_saphyr::from_str(&text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |field: &str, problem: String| Error::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            problem,
        };
        if profile.api_version != "phasecheck/v1alpha1" {
            return Err(invalid(
                "apiVersion",
                format!(
                    "`{}` is not supported; use `phasecheck/v1alpha1`",
                    profile.api_version
                ),
            ));
        }
        if profile.kind != "Subject" {
            return Err(invalid(
                "kind",
                format!("`{}` is not `Subject`", profile.kind),
            ));
        }
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
        if profile.backends.is_empty() {
            return Err(invalid(
                "backends",
                "declare at least one backend (s3 or git)".into(),
            ));
        }
        if profile.manifests.is_empty() {
            return Err(invalid(
                "manifests",
                "name at least one manifest file".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut manifests = Vec::new();
        for (i, rel) in profile.manifests.iter().enumerate() {
            let file = base.join(rel);
            let text = std::fs::read_to_string(&file).map_err(|source| {
                invalid(
                    &format!("manifests[{i}]"),
                    format!("cannot read {}: {source}", file.display()),
                )
            })?;
            manifests.push((file, text));
        }
        let pod_spec = find_pod_spec(&manifests, &profile.workload)
            .map_err(|problem| invalid("workload", problem))?;
        let check = Checked::new(&pod_spec);
        let roles = [
            ("containers.restore", &profile.containers.restore),
            ("containers.run", &profile.containers.run),
            ("containers.maintenance", &profile.containers.maintenance),
        ];
        for (field, names) in roles {
            if names.is_empty() {
                return Err(invalid(field, "name at least one container".into()));
            }
            for (i, name) in names.iter().enumerate() {
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
        let native_sidecar = profile
            .containers
            .maintenance
            .iter()
            .any(|name| check.is_init(name));
        for (image, source) in &profile.images {
            if let ImageSource::Builtin(name) = source
                && name != "phasepod"
            {
                return Err(invalid(
                    &format!("images.{image}.builtin"),
                    format!("unknown builtin `{name}`; the only builtin is `phasepod`"),
                ));
            }
        }
        let container_images = check.images();
        Ok(Subject {
            path: path.to_owned(),
            profile,
            manifests,
            data_claim,
            native_sidecar,
            container_images,
        })
    }

    /// The subject's name.
    pub fn name(&self) -> &str {
        &self.profile.name
    }

    /// The first container whose image has no entry in `images` (the local runtime needs one
    /// for every image), as an error naming the field and the fix.
    pub fn check_images_mapped(&self) -> Result<()> {
        for (container, image) in &self.container_images {
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

    /// Backends the subject declares, in report order.
    pub fn backends(&self) -> Vec<Backend> {
        self.profile.backends.keys().copied().collect()
    }
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

/// Name checks against one pod spec.
struct Checked<'a> {
    spec: &'a Value,
}

impl<'a> Checked<'a> {
    fn new(spec: &'a Value) -> Self {
        Checked { spec }
    }

    fn names(&self, list: &str) -> Vec<&'a str> {
        self.spec[list]
            .as_array()
            .map(|items| items.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default()
    }

    fn images(&self) -> Vec<(String, String)> {
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

    fn is_init(&self, name: &str) -> bool {
        self.names("initContainers").contains(&name)
    }

    fn container(&self, name: &str) -> Result<(), String> {
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

    fn volume_claim(&self, name: &str) -> Result<Option<String>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: restore, image: i}]\n  containers: [{name: app, image: i}, {name: backup, image: i}]\n  volumes: [{name: data, emptyDir: {}}]\n";

    fn profile(extra: &str) -> String {
        format!(
            "apiVersion: phasecheck/v1alpha1\nkind: Subject\nname: demo\nmanifests: [m.yaml]\nworkload: {{kind: Pod, name: p}}\ndata: {{volume: data, mountPath: /data}}\ncontainers: {{restore: [restore], run: [app], maintenance: [backup]}}\napp: {{container: app, port: 8080}}\nbackends: {{s3: {{}}}}\nschedule: {{env: RUNAT}}\n{extra}"
        )
    }

    #[test]
    fn a_well_formed_profile_loads_with_its_manifests() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.yaml", MANIFEST);
        let path = write(dir.path(), "s.yaml", &profile(""));
        let subject = Subject::load(&path).unwrap();
        assert_eq!(subject.backends(), vec![Backend::S3]);
        assert_eq!(subject.data_claim, None);
        assert!(!subject.native_sidecar);
    }

    #[test]
    fn an_unknown_field_is_an_error_naming_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.yaml", MANIFEST);
        let path = write(dir.path(), "s.yaml", &profile("colour: blue\n"));
        let message = Subject::load(&path).unwrap_err().to_string();
        assert!(message.contains("s.yaml"), "{message}");
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn a_container_missing_from_the_manifests_is_named_with_the_choices() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.yaml", MANIFEST);
        let text = profile("").replace("restore: [restore]", "restore: [restor]");
        let path = write(dir.path(), "s.yaml", &text);
        let message = Subject::load(&path).unwrap_err().to_string();
        assert!(message.contains("containers.restore[0]"), "{message}");
        assert!(message.contains("restore, app, backup"), "{message}");
    }
}

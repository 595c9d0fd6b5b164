//! Turning a container spec into what its process gets: argv, environment, working directory
//! and security settings.
//!
//! Kubernetes rules kept: `command` replaces the image entrypoint and `args` its default
//! arguments; `$(VAR)` in env values, `command` and `args` expands from the container's env
//! (`$$` escapes, unknown names stay as written); `envFrom` first, then `env`, later entries win.
//! Paths stay as the spec writes them: a sandbox shows the container its volumes there.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

use super::images::ImageCommand;
use super::security::{self, Security};

/// One key → bytes map: the data of a Secret or ConfigMap.
pub(super) type Data = BTreeMap<String, Vec<u8>>;

/// The namespace's Secrets and ConfigMaps, as a container start sees them.
#[derive(Clone, Debug, Default)]
pub(super) struct Config {
    /// Secret name → data (decoded).
    pub secrets: BTreeMap<String, Data>,
    /// ConfigMap name → data (`data` and `binaryData`).
    pub config_maps: BTreeMap<String, Data>,
}

/// Pod facts the downward API exposes.
#[derive(Clone, Debug)]
pub(super) struct PodFields {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub ip: Ipv4Addr,
    pub node_name: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// A volume mounted into a container, and the host directory (or file) behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The pod volume's name.
    pub volume: String,
    /// Where the container sees it (`mountPath`).
    pub mount_path: String,
    /// The host directory or file the sandbox binds at `mount_path` (with `subPath` applied).
    pub host_path: PathBuf,
    /// `readOnly` as declared; enforced by the sandbox (writes fail with EROFS).
    pub read_only: bool,
}

/// The `PATH` a container gets when neither its spec nor its image sets one (containerd's).
pub(super) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start one container process.
#[derive(Clone, Debug)]
pub(super) struct Launch {
    /// Program and arguments, expanded.
    pub argv: Vec<String>,
    /// The whole environment of the process.
    pub env: BTreeMap<String, String>,
    /// The working directory as the container sees it (`workingDir`, else `/`); without a
    /// sandbox, the host directory.
    pub cwd: String,
    /// What the sandbox enforces of the security context.
    pub security: Security,
}

/// Where the container's process runs: what it is given besides its spec's env.
#[derive(Clone, Copy, Debug)]
pub(super) enum Host<'a> {
    /// In a sandbox: `PATH` and `HOME` as a container runtime sets them.
    Sandbox,
    /// As a host process: the harness's `PATH`, and the pod's directory as `HOME` and default
    /// working directory.
    Process {
        /// The pod's directory.
        pod_dir: &'a Path,
    },
}

/// Resolves `container` of `pod` into a [`Launch`]. An `Err` is a `CreateContainerConfigError`
/// message (a missing Secret, ConfigMap or key, or a security context that cannot start).
pub(super) fn prepare(
    pod: &PodSpec,
    container: &Container,
    image: &ImageCommand,
    fields: &PodFields,
    config: &Config,
    host: Host<'_>,
) -> Result<Launch, String> {
    let security = security::resolve(pod, container)?;
    let mut env = resolve_env(container, fields, config)?;
    let argv = command_line(container, image, &env);
    // NB: what a kubelet and container runtime add: the hostname, a PATH, a HOME.
    env.entry("HOSTNAME".into())
        .or_insert_with(|| fields.name.clone());
    let working_dir = container.working_dir.clone().filter(|d| !d.is_empty());
    let cwd = match host {
        Host::Sandbox => {
            env.entry("PATH".into())
                .or_insert_with(|| DEFAULT_PATH.into());
            let uid = security.ids.as_ref().map_or(0, |ids| ids.uid);
            env.entry("HOME".into()).or_insert_with(|| home_of(uid));
            working_dir.unwrap_or_else(|| "/".into())
        }
        Host::Process { pod_dir } => {
            env.entry("PATH".into()).or_insert_with(host_path);
            env.entry("HOME".into())
                .or_insert_with(|| pod_dir.to_string_lossy().into_owned());
            match working_dir {
                Some(dir) if Path::new(&dir).is_dir() => dir,
                _ => pod_dir.to_string_lossy().into_owned(),
            }
        }
    };
    Ok(Launch {
        argv,
        env,
        cwd,
        security,
    })
}

/// The home directory of `uid` in the host's `/etc/passwd` (which sandboxes show), else `/`.
fn home_of(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.dir.to_string_lossy().into_owned(),
        _ => "/".into(),
    }
}

/// The harness's `PATH`, so mapped commands like `python3` resolve; nothing else is inherited.
fn host_path() -> String {
    std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
}

/// Kubernetes' argv rule, with `$(VAR)` expanded in `command` and `args` (not the image's).
fn command_line(
    container: &Container,
    image: &ImageCommand,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    let expand_all =
        |list: &[String]| -> Vec<String> { list.iter().map(|s| expand(s, env)).collect() };
    match (&container.command, &container.args) {
        (Some(command), args) => {
            let mut argv = expand_all(command);
            argv.extend(expand_all(args.as_deref().unwrap_or_default()));
            argv
        }
        (None, Some(args)) => {
            let mut argv = image.entrypoint.clone();
            argv.extend(expand_all(args));
            argv
        }
        (None, None) => {
            let mut argv = image.entrypoint.clone();
            argv.extend(image.cmd.iter().cloned());
            argv
        }
    }
}

/// The container's env in Kubernetes' order: `envFrom` sources, then `env`.
fn resolve_env(
    container: &Container,
    fields: &PodFields,
    config: &Config,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &source.config_map_ref {
            match config.config_maps.get(&r.name) {
                Some(d) => Some(d),
                None if r.optional == Some(true) => None,
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        } else if let Some(r) = &source.secret_ref {
            match config.secrets.get(&r.name) {
                Some(d) => Some(d),
                None if r.optional == Some(true) => None,
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        } else {
            None
        };
        for (key, value) in data.into_iter().flatten() {
            if key.contains('=') {
                continue;
            }
            env.insert(
                format!("{prefix}{key}"),
                String::from_utf8_lossy(value).into_owned(),
            );
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = env_value(var, fields, config, &env)? {
            env.insert(var.name.clone(), value);
        }
    }
    Ok(env)
}

/// One `env` entry's value; `None` when an optional source is missing.
fn env_value(
    var: &EnvVar,
    fields: &PodFields,
    config: &Config,
    so_far: &BTreeMap<String, String>,
) -> Result<Option<String>, String> {
    let Some(from) = &var.value_from else {
        return Ok(Some(expand(
            var.value.as_deref().unwrap_or_default(),
            so_far,
        )));
    };
    let ns = &fields.namespace;
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional == Some(true);
        return match config.secrets.get(&r.name) {
            None if optional => Ok(None),
            None => Err(format!("secret \"{}\" not found", r.name)),
            Some(data) => match data.get(&r.key) {
                Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in Secret {ns}/{}",
                    r.key, r.name
                )),
            },
        };
    }
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional == Some(true);
        return match config.config_maps.get(&r.name) {
            None if optional => Ok(None),
            None => Err(format!("configmap \"{}\" not found", r.name)),
            Some(data) => match data.get(&r.key) {
                Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in ConfigMap {ns}/{}",
                    r.key, r.name
                )),
            },
        };
    }
    if let Some(r) = &from.field_ref {
        return field(&r.field_path, fields)
            .map(Some)
            .ok_or_else(|| format!("unsupported fieldRef fieldPath `{}`", r.field_path));
    }
    Err(format!(
        "env var {}: only secretKeyRef, configMapKeyRef and fieldRef are supported",
        var.name
    ))
}

/// A downward-API field.
pub(super) fn field(path: &str, fields: &PodFields) -> Option<String> {
    let subscript = |prefix: &str, map: &BTreeMap<String, String>| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
            .map(|key| map.get(key).cloned().unwrap_or_default())
    };
    Some(match path {
        "metadata.name" => fields.name.clone(),
        "metadata.namespace" => fields.namespace.clone(),
        "metadata.uid" => fields.uid.clone(),
        "spec.nodeName" => fields.node_name.clone(),
        "spec.serviceAccountName" => fields.service_account.clone(),
        "status.podIP" | "status.podIPs" => fields.ip.to_string(),
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".into(),
        _ => {
            return subscript("metadata.labels", &fields.labels)
                .or_else(|| subscript("metadata.annotations", &fields.annotations));
        }
    })
}

/// Kubernetes' `$(VAR)` expansion: `$$` is a literal `$`, unknown or unterminated references
/// stay as written.
pub(super) fn expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = env(&[("A", "x"), ("DATA", "/data")]);
        assert_eq!(expand("$(A)-$(B)", &vars), "x-$(B)");
        assert_eq!(expand("$$(A) $$ $", &vars), "$(A) $ $");
        assert_eq!(expand("$(DATA)/f $(A", &vars), "/data/f $(A");
    }

    #[test]
    fn command_replaces_entrypoint_and_args_replace_cmd() {
        let image = ImageCommand {
            entrypoint: vec!["/bin/prog".into()],
            cmd: vec!["default".into()],
            files: Vec::new(),
        };
        let vars = env(&[("X", "1")]);
        let mut c = Container::default();
        assert_eq!(command_line(&c, &image, &vars), ["/bin/prog", "default"]);
        c.args = Some(vec!["a=$(X)".into()]);
        assert_eq!(command_line(&c, &image, &vars), ["/bin/prog", "a=1"]);
        c.command = Some(vec!["/bin/other".into()]);
        assert_eq!(command_line(&c, &image, &vars), ["/bin/other", "a=1"]);
        c.args = None;
        assert_eq!(command_line(&c, &image, &vars), ["/bin/other"]);
    }
}

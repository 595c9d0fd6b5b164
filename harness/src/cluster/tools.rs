//! Which `kind`, `minikube` and `docker` programs are run, with which time limits, and whether
//! they are installed.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Error, Result};

/// How long `kind create cluster` or `minikube start` may take by default: pulling a node image
/// and booting a control plane.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long any other command (listing, status, image load, network inspect, delete) may take by
/// default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Where to get kind.
pub const KIND_HINT: &str = "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) \
     and Docker, which kind runs its nodes in";

/// Where to get minikube.
pub const MINIKUBE_HINT: &str = "install minikube (https://minikube.sigs.k8s.io/docs/start/)";

/// Where to get Docker.
pub const DOCKER_HINT: &str = "install Docker (https://docs.docker.com/engine/install/; on Debian or \
     Ubuntu `apt-get install -y --no-install-recommends docker.io`)";

/// The CLIs a [`super::Cluster`] drives, and how long their commands may take.
///
/// [`Default`] runs `kind`, `minikube` and `docker` as found on `PATH`; tests point them at fakes
/// with the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    kind: OsString,
    minikube: OsString,
    docker: OsString,
    create_timeout: Duration,
    command_timeout: Duration,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            kind: "kind".into(),
            minikube: "minikube".into(),
            docker: "docker".into(),
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

impl Tools {
    /// Runs this `kind` program (a name looked up on `PATH`, or a path).
    pub fn with_kind(mut self, program: impl Into<OsString>) -> Self {
        self.kind = program.into();
        self
    }

    /// Runs this `minikube` program (a name looked up on `PATH`, or a path).
    pub fn with_minikube(mut self, program: impl Into<OsString>) -> Self {
        self.minikube = program.into();
        self
    }

    /// Runs this `docker` program (a name looked up on `PATH`, or a path).
    pub fn with_docker(mut self, program: impl Into<OsString>) -> Self {
        self.docker = program.into();
        self
    }

    /// Gives `kind create cluster` and `minikube start` this long (default
    /// [`DEFAULT_CREATE_TIMEOUT`]).
    pub fn with_create_timeout(mut self, timeout: Duration) -> Self {
        self.create_timeout = timeout;
        self
    }

    /// Gives every other command this long (default [`DEFAULT_COMMAND_TIMEOUT`]).
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The `kind` program.
    pub fn kind(&self) -> &OsStr {
        &self.kind
    }

    /// The `minikube` program.
    pub fn minikube(&self) -> &OsStr {
        &self.minikube
    }

    /// The `docker` program.
    pub fn docker(&self) -> &OsStr {
        &self.docker
    }

    /// How long `kind create cluster` and `minikube start` may take.
    pub fn create_timeout(&self) -> Duration {
        self.create_timeout
    }

    /// How long every other command may take.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }
}

/// Whether `tool` can be run: a name found as an executable file in a directory of the `PATH`
/// environment variable, or a path (anything with a `/`) to an executable file.
pub fn tool_on_path(tool: &OsStr) -> bool {
    resolve_tool(tool, std::env::var_os("PATH").as_deref()).is_some()
}

/// The executable file `tool` names, searching the directories of `path` (a `PATH`-style list) for
/// a bare name; a name with a `/` is taken as a path, as `execvp` does.
pub fn resolve_tool(tool: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    if tool.is_empty() {
        return None;
    }
    let as_path = Path::new(tool);
    if tool.as_encoded_bytes().contains(&b'/') {
        return is_executable_file(as_path).then(|| as_path.to_owned());
    }
    std::env::split_paths(path?)
        // NB: an empty PATH entry means the current directory.
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            }
        })
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable_file(candidate))
}

/// Whether `path` is a regular file (after symlinks) with an execute bit set.
fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// [`Error::ToolMissing`] unless `program` is on `PATH`.
pub(super) fn require(program: &OsStr, hint: &str) -> Result<()> {
    if tool_on_path(program) {
        Ok(())
    } else {
        Err(Error::ToolMissing {
            tool: program.to_string_lossy().into_owned(),
            hint: hint.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(path: &Path, mode: u32) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_bare_name_is_found_in_the_first_path_directory_that_has_it_executable() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        write_file(&a.join("kind"), 0o644);
        write_file(&b.join("kind"), 0o755);
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            resolve_tool(OsStr::new("kind"), Some(&path)),
            Some(b.join("kind"))
        );
        assert_eq!(resolve_tool(OsStr::new("minikube"), Some(&path)), None);
        assert_eq!(resolve_tool(OsStr::new("kind"), None), None);
    }

    #[test]
    fn a_path_counts_when_it_is_an_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("kind");
        assert!(!tool_on_path(tool.as_os_str()), "missing");
        write_file(&tool, 0o644);
        assert!(!tool_on_path(tool.as_os_str()), "not executable");
        write_file(&tool, 0o755);
        assert!(tool_on_path(tool.as_os_str()));
        assert!(!tool_on_path(dir.path().as_os_str()), "a directory");
        assert!(!tool_on_path(OsStr::new("")));
    }

    #[test]
    fn defaults_are_the_names_on_path() {
        let tools = Tools::default();
        assert_eq!(tools.kind(), "kind");
        assert_eq!(tools.minikube(), "minikube");
        assert_eq!(tools.docker(), "docker");
        assert_eq!(tools.create_timeout(), DEFAULT_CREATE_TIMEOUT);
    }
}

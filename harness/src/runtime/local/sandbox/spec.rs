//! What the harness tells a launcher, and what the launcher's stages tell each other: one JSON
//! line each way over the launcher's standard input (a Unix socket).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One namespace of a sandbox: the launcher's own, a new one, or that of a running process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Ns<T> {
    /// Stay in the launcher's.
    Host,
    /// A new one, set up with `T`.
    New(T),
    /// The one of host process `pid` (a running container, or a pod's PID namespace holder).
    Join(i32),
}

/// A sandbox to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Spec {
    /// A user namespace (when not root): this user becomes root inside.
    pub user: Ns<()>,
    /// The PID namespace.
    pub pid: Ns<()>,
    /// The mount namespace: a new one gets `Root`.
    pub mount: Ns<Root>,
    /// The UTS namespace: a new one gets the hostname.
    pub uts: Ns<String>,
    /// What runs once the sandbox stands.
    pub then: Then,
}

/// A root file system to build (see `plan`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Root {
    /// An empty host directory the root's tmpfs is mounted on before it becomes `/`.
    pub staging: PathBuf,
    /// Volume mounts and image files, in spec order.
    pub mounts: Vec<RootMount>,
    /// `readOnlyRootFilesystem`: nothing writable but the mounts.
    pub read_only: bool,
}

/// A host file or directory shown at a container path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RootMount {
    /// The container path.
    pub target: String,
    /// The host path.
    pub source: PathBuf,
    /// Read-only.
    pub read_only: bool,
}

/// What the sandbox runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Then {
    /// A container process (or an exec in one).
    Exec(Process),
    /// Nothing but holding the namespaces (and reaping orphans): a pod's shared PID namespace.
    Pause,
    /// Nothing: the sandbox was built, which is all a capability check needs.
    Exit,
}

/// A process to start in the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Process {
    /// Program and arguments; a program without `/` is looked up in the env's `PATH`.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: BTreeMap<String, String>,
    /// The working directory (created if missing, as container runtimes do).
    pub cwd: String,
    /// Who it runs as; `None` keeps the launcher's (root, or root of the user namespace).
    pub user: Option<Ids>,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privs: bool,
}

/// User, group and supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ids {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups (`fsGroup`, `supplementalGroups`).
    pub groups: Vec<u32>,
}

/// A launcher's report to whoever started it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The sandbox stands and its process runs (has been exec'd); its host PID.
    Started(i32),
    /// The sandbox could not be built or its program not started.
    Failed(String),
}

//! The errors of [`crate::cluster`].

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Errors provisioning, using or tearing down a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CLI the provider needs is not on `PATH` (or the given path is not an executable file).
    #[error("`{tool}` is not installed (not on PATH, or not executable): {hint}")]
    ToolMissing {
        /// The program looked for, as configured in [`super::Tools`].
        tool: String,
        /// What to install and where to find it.
        hint: String,
    },
    /// A CLI was found but could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}); the end of its output:\n{output}")]
    Failed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The last lines of its standard error (of its standard output when it wrote nothing to
        /// standard error).
        output: String,
    },
    /// A command did not finish in time; it was killed.
    #[error("`{command}` did not finish within {after:?} and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// The time it was given.
        after: Duration,
    },
    /// The kind config a cluster is to be created from does not exist.
    #[error(
        "the kind config {} does not exist (phasecheck's is kind-config.yaml at the workspace root)",
        path.display()
    )]
    ConfigMissing {
        /// The path given in [`super::Provider::Kind`].
        path: PathBuf,
    },
    /// The address of this machine as the cluster's pods reach it is not known, so services
    /// embedded in the harness process cannot be offered to pods.
    #[error("no address of this machine is known for {cluster}: {reason}")]
    NoHostAddress {
        /// The cluster, as [`super::Provider`] displays it.
        cluster: String,
        /// Why, and what to do instead.
        reason: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

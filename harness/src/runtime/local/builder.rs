//! Configuring a [`LocalRuntime`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::images::ImageMap;
use super::node::{Backoff, Node};
use super::sandbox::{self, Isolation, Sandboxes};
use super::{Error, LocalRuntime, Result};

/// Where the sandbox launcher comes from.
#[derive(Clone, Debug)]
enum Launcher {
    /// `phasecheck-sandbox` next to the running program.
    Discover,
    /// A program and the arguments selecting the launcher.
    Given(Vec<OsString>),
    /// No sandboxes, by request.
    Off,
}

/// Builds a [`LocalRuntime`].
#[derive(Clone, Debug)]
pub struct LocalRuntimeBuilder {
    root: Option<PathBuf>,
    images: ImageMap,
    backoff: Backoff,
    grace: Duration,
    log_dir: Option<PathBuf>,
    launcher: Launcher,
    user_namespaces: bool,
}

impl Default for LocalRuntimeBuilder {
    fn default() -> Self {
        LocalRuntimeBuilder {
            root: None,
            images: ImageMap::default(),
            backoff: Backoff {
                initial: Duration::from_millis(200),
                cap: Duration::from_secs(2),
            },
            grace: Duration::from_secs(5),
            log_dir: None,
            launcher: Launcher::Discover,
            user_namespaces: false,
        }
    }
}

impl LocalRuntimeBuilder {
    /// Keeps namespaces under `root` (created if missing) instead of a temporary directory.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// The images the runtime can run.
    pub fn with_images(mut self, images: ImageMap) -> Self {
        self.images = images;
        self
    }

    /// Restart back-off: `initial` doubling up to `cap` (default 200 ms and 2 s).
    pub fn with_backoff(mut self, initial: Duration, cap: Duration) -> Self {
        self.backoff = Backoff {
            initial,
            cap: cap.max(initial),
        };
        self
    }

    /// The longest time between SIGTERM and SIGKILL (default 5 s; a pod's shorter
    /// `terminationGracePeriodSeconds` wins).
    pub fn with_grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Writes container logs under `dir/<ns>/<pod>/<container>/` instead of the pod directory;
    /// they are kept after the namespace is deleted.
    pub fn with_log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Starts sandboxes with `argv` (a program and the arguments that select the launcher in
    /// it: `[phasecheck, "sandbox"]`, or `[phasecheck-sandbox]`). By default the runtime looks
    /// for `phasecheck-sandbox` next to the running program (and one directory up, for test
    /// binaries).
    pub fn with_sandbox_launcher<I>(mut self, argv: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.launcher = Launcher::Given(argv.into_iter().map(Into::into).collect());
        self
    }

    /// Runs containers as plain host processes, without sandboxes (pods that mount volumes are
    /// then refused: their containers could not see them at their mount paths).
    pub fn without_sandbox(mut self) -> Self {
        self.launcher = Launcher::Off;
        self
    }

    /// Makes every sandbox in a user namespace even when running as root, as a user without
    /// root gets them ([`Isolation::UserNamespace`]: users and groups not honoured). For tests
    /// of that set-up.
    pub fn with_user_namespaces(mut self) -> Self {
        self.user_namespaces = true;
        self
    }

    /// Creates the runtime (and its root directory). It checks once that it can make a sandbox
    /// here; [`LocalRuntime::isolation`] says what came of it.
    pub fn build(self) -> Result<LocalRuntime> {
        let (root, tempdir) = match self.root {
            Some(root) => {
                std::fs::create_dir_all(&root).map_err(|source| Error::Io {
                    what: "creating the runtime's root".into(),
                    path: root.clone(),
                    source,
                })?;
                (root, None)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("phasecheck-local-")
                    .tempdir()
                    .map_err(|source| Error::Io {
                        what: "creating the runtime's temporary root".into(),
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (dir.path().to_owned(), Some(dir))
            }
        };
        let sandboxes = sandboxes(
            self.launcher,
            self.user_namespaces,
            &root.join(".sandbox-check"),
        );
        Ok(LocalRuntime {
            root,
            tempdir: Mutex::new(tempdir),
            node: Arc::new(Node::new(
                self.images,
                sandboxes,
                self.backoff,
                self.grace,
                self.log_dir,
            )),
            namespaces: Mutex::new(BTreeMap::new()),
        })
    }
}

/// The runtime's sandboxes, checked by building one in `scratch`; or why there are none.
fn sandboxes(
    launcher: Launcher,
    user_namespaces: bool,
    scratch: &std::path::Path,
) -> Result<Sandboxes, Isolation> {
    let none = |reason: String| Isolation::None { reason };
    let argv = match launcher {
        Launcher::Off => return Err(none("turned off by the caller".into())),
        Launcher::Given(argv) if !argv.is_empty() => argv,
        Launcher::Given(_) => return Err(none("the sandbox launcher's command is empty".into())),
        Launcher::Discover => match sandbox::discover_launcher() {
            Some(path) => vec![path.into_os_string()],
            None => {
                return Err(none(format!(
                    "no `{}` next to this program; set LocalRuntimeBuilder::with_sandbox_launcher",
                    sandbox::LAUNCHER_BINARY
                )));
            }
        },
    };
    let sandboxes = Sandboxes {
        launcher: argv,
        user_namespace: user_namespaces || !nix::unistd::geteuid().is_root(),
    };
    match sandbox::check(&sandboxes, scratch) {
        Ok(()) => Ok(sandboxes),
        Err(why) if sandboxes.user_namespace => Err(none(format!(
            "a sandbox in a user namespace failed: {why}; run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0)"
        ))),
        Err(why) => Err(none(format!("a sandbox could not be made: {why}"))),
    }
}

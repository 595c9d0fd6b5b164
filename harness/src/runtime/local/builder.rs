//! Configuring a [`LocalRuntime`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::images::ImageMap;
use super::node::{Backoff, Node};
use super::{Error, LocalRuntime, Result};

/// Builds a [`LocalRuntime`].
#[derive(Clone, Debug)]
pub struct LocalRuntimeBuilder {
    root: Option<PathBuf>,
    images: ImageMap,
    backoff: Backoff,
    grace: Duration,
    log_dir: Option<PathBuf>,
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

    /// Creates the runtime (and its root directory).
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
        Ok(LocalRuntime {
            root,
            tempdir: Mutex::new(tempdir),
            node: Arc::new(Node::new(
                self.images,
                self.backoff,
                self.grace,
                self.log_dir,
            )),
            namespaces: Mutex::new(BTreeMap::new()),
        })
    }
}

//! The local runtime's namespaces: creating one, applying objects into it, and ending it —
//! stop (keep the files), delete — and the runtime's own end: shut down, abort, drop.

use std::path::Path;
use std::sync::Arc;

use super::apply::check_name;
use super::namespace::{Namespace, NsPhase};
use super::pod::Pod;
use super::{Error, LocalRuntime, Result};
use crate::runtime::Namespaces;
use crate::runtime::objects::Object;

impl LocalRuntime {
    /// Stops every pod of `ns` and keeps its files (volumes, logs) and its timelines for
    /// inspection; no pod is replaced. [`Self::delete_namespace`] still removes it later; the
    /// files outlive [`Self::shutdown`] and drop.
    pub async fn stop_namespace(&self, ns: &str) {
        let Ok(namespace) = self.namespace_state(ns) else {
            return;
        };
        let pods: Vec<Arc<Pod>> = {
            let mut state = namespace.lock();
            state.phase = NsPhase::Stopped;
            state.pods.values().cloned().collect()
        };
        for p in &pods {
            p.request_termination(true);
        }
        if let Err(e) = self
            .wait_gone(&pods, &format!("the pods of {ns} to stop"))
            .await
        {
            tracing::warn!("{e}");
        }
    }
}

impl Namespaces for LocalRuntime {
    /// Creates an empty namespace.
    async fn create_namespace(&self, ns: &str) -> Result<()> {
        self.check_open()?;
        check_name("namespace", ns, false)?;
        let mut namespaces = self.namespaces.lock().expect("runtime lock");
        if namespaces.contains_key(ns) {
            return Err(Error::NamespaceExists { ns: ns.to_owned() });
        }
        let dir = self.namespace_dir(ns);
        for sub in ["pvc", "pods"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|source| Error::Io {
                what: format!("creating namespace {ns}"),
                path: dir.clone(),
                source,
            })?;
        }
        let namespace = Arc::new(Namespace::new(ns.to_owned(), dir, self.node.clone()));
        self.node
            .admission
            .add_namespace(ns, Arc::downgrade(&namespace));
        namespaces.insert(ns.to_owned(), namespace);
        Ok(())
    }

    async fn apply(&self, ns: &str, objects: Vec<Object>) -> Result<()> {
        self.apply_objects(ns, objects).await
    }

    /// Unregisters webhook configurations; other kinds are namespaced and go with their
    /// namespace.
    async fn delete_cluster_objects(&self, objects: &[Object]) -> Result<()> {
        for object in objects.iter().filter(|o| o.is_cluster_scoped()) {
            self.node.admission.unregister(object.kind(), object.name());
        }
        Ok(())
    }

    async fn keep_namespace(&self, ns: &str) -> String {
        self.stop_namespace(ns).await;
        format!(
            "namespace {ns} kept at {}",
            self.namespace_dir(ns).display()
        )
    }

    /// Kills everything in `ns` at once (no grace period), waits, and removes its directory.
    async fn delete_namespace(&self, ns: &str) -> Result<()> {
        let namespace = self
            .namespaces
            .lock()
            .expect("runtime lock")
            .remove(ns)
            .ok_or_else(|| Error::NoNamespace { ns: ns.to_owned() })?;
        self.node.admission.remove_namespace(ns);
        let pods: Vec<Arc<Pod>> = {
            let mut state = namespace.lock();
            state.phase = NsPhase::Deleting;
            state.pods.values().cloned().collect()
        };
        // NB: a namespace is deleted to clean up after its case's verdict: no check watches its
        // pods stop, so they are killed at once instead of waiting out a sidecar's grace period
        // (up to 5 s of a git push per case, holding a job slot).
        for p in &pods {
            p.request_kill();
        }
        self.wait_gone(&pods, &format!("the pods of {ns} to stop"))
            .await?;
        remove_dir(&namespace.dir)
    }

    /// SIGKILLs every process of every namespace, waits until they are gone and removes the
    /// files of every namespace not stopped with [`Self::stop_namespace`]. The runtime refuses
    /// new work afterwards.
    async fn shutdown(&self) {
        self.node.procs.close_and_kill();
        let namespaces: Vec<Arc<Namespace>> = self
            .namespaces
            .lock()
            .expect("runtime lock")
            .values()
            .cloned()
            .collect();
        let mut pods = Vec::new();
        for namespace in &namespaces {
            let mut state = namespace.lock();
            let keep = state.phase == NsPhase::Stopped;
            if !keep {
                state.phase = NsPhase::Deleting;
            }
            for p in state.pods.values() {
                p.request_termination(keep);
                pods.push(p.clone());
            }
        }
        if let Err(e) = self.wait_gone(&pods, "every pod to stop").await {
            tracing::warn!("{e}");
        }
        let mut map = self.namespaces.lock().expect("runtime lock");
        for namespace in namespaces {
            if namespace.lock().phase != NsPhase::Stopped {
                let _ = remove_dir(&namespace.dir);
                map.remove(&namespace.name);
            }
        }
    }

    /// Kills every process at once (SIGKILL, no grace period) and removes the files of every
    /// namespace not stopped with [`Self::stop_namespace`], and the runtime's own temporary
    /// directory unless such a namespace is kept in it. Synchronous and best effort: what drop
    /// does, for a program that must exit now (a second interrupt) and will not drop it.
    fn abort(&self) {
        self.node.procs.close_and_kill();
        let mut kept = false;
        if let Ok(namespaces) = self.namespaces.lock() {
            for namespace in namespaces.values() {
                let Some(state) = namespace.lock_for_drop() else {
                    continue;
                };
                let keep = state.phase == NsPhase::Stopped;
                kept |= keep;
                for p in state.pods.values() {
                    p.request_termination(keep);
                }
                drop(state);
                if !keep {
                    let _ = std::fs::remove_dir_all(&namespace.dir);
                }
            }
        }
        if let Ok(mut tempdir) = self.tempdir.lock()
            && let Some(dir) = tempdir.take()
        {
            if kept {
                let path = dir.keep();
                tracing::info!("kept stopped namespaces under {}", path.display());
            } else {
                drop(dir);
            }
        }
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        self.abort();
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            what: "removing a namespace's directory".into(),
            path: dir.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

//! The embedded runtime: Kubernetes pod specs run as sandboxed host processes.
//!
//! [`LocalRuntime`] needs no cluster, no container engine and no images. It reads the pod spec
//! of a `Pod`, `Deployment` or `StatefulSet` and does what a kubelet would, with host processes
//! in Linux-namespace sandboxes standing in for containers and host directories standing in
//! for volumes. Images map to host programs through an [`ImageMap`] (the subject profile's
//! `images:`). It is the default runtime of phasecheck and the one every scenario is developed
//! against; the real-cluster runtimes implement the same [`Runtime`](crate::runtime::Runtime)
//! trait.
//!
//! # What it does like Kubernetes
//!
//! - **Init containers** run one at a time, in order. One with `restartPolicy: Always` is a
//!   *native sidecar*: started and not awaited (the next init container starts once it runs and
//!   its `startupProbe`, if any, passed — readiness does not gate, as in Kubernetes), restarted
//!   whenever it exits, stopped after the regular containers when the pod ends. A failing init
//!   container is retried under `restartPolicy` `Always`/`OnFailure` and fails the pod under
//!   `Never`. Then all regular containers start together.
//! - **Restarts** follow `restartPolicy` with capped exponential back-off (CrashLoopBackOff), by
//!   default 200 ms doubling up to 2 s instead of Kubernetes' 10 s up to 5 min (see
//!   [`LocalRuntimeBuilder::with_backoff`]); a run lasting twice the cap resets it. Every run is
//!   recorded in the pod's [`Timeline`].
//! - **Command line**: `command` replaces the image's entrypoint, `args` its default arguments;
//!   `$(VAR)` in `command`, `args` and env values expands from the container's env.
//! - **Environment**: `value`, `valueFrom` `secretKeyRef`/`configMapKeyRef` (`optional`
//!   honoured) and `fieldRef` (`metadata.name`, `.namespace`, `.uid`, `.labels['k']`,
//!   `.annotations['k']`, `spec.nodeName`, `spec.serviceAccountName`, `status.podIP`,
//!   `status.hostIP`), and `envFrom` `configMapRef`/`secretRef` (with `prefix`). A missing
//!   Secret, ConfigMap or key leaves the container waiting with `CreateContainerConfigError` in
//!   the timeline (the pod stays Pending/Initializing) until a later `apply` provides it. A
//!   process gets **only** that environment plus what a kubelet and container runtime add:
//!   `HOSTNAME` (the pod's name), and unless the spec sets them `PATH` (containerd's default)
//!   and `HOME` (the user's home in `/etc/passwd`, else `/`). Nothing of the harness's own
//!   environment leaks in.
//! - **Sandboxes** (see [`sandbox`]): each container sees a fresh root — the host's `/usr` and
//!   `/etc` (and `/bin`, `/sbin`, `/lib*`) read-only, its own `/dev`, `/proc` and, unless
//!   `readOnlyRootFilesystem: true`, a writable `/tmp` and root — and every volume mount at its
//!   `mountPath` (with `subPath`). Paths are the pod spec's: a script's `cat /etc/creds/x >
//!   /data/y` works unchanged, and nothing rewrites env or arguments. A program mapped for an
//!   image appears at the image's path (the reference image's `/phasepod`).
//! - **Enforced**: `readOnly` mounts and `readOnlyRootFilesystem` (a write fails with EROFS);
//!   a PID namespace per container (its main process is PID 1 and sees no other pod's
//!   processes), one per pod with `shareProcessNamespace: true`; a UTS namespace (`hostname` is
//!   the pod's name); `runAsUser`, `runAsGroup`, `supplementalGroups` and `fsGroup` (volumes
//!   owned by the group, see `volumes`) when phasecheck runs as root; `allowPrivilegeEscalation:
//!   false` (`no_new_privs`); `runAsNonRoot` against an explicit `runAsUser: 0`. A container dies
//!   with its runtime, however the runtime dies (see [`sandbox`]).
//! - **Volumes**: `emptyDir` (per pod, removed with it), `persistentVolumeClaim` (a directory per
//!   claim that outlives pods; the claim must be applied first, or be a StatefulSet
//!   `volumeClaimTemplate`), `secret`, `configMap`, `downwardAPI` (`fieldRef` items) and
//!   `projected` from those three (files with the decoded values and their declared modes;
//!   `items` honoured), `subPath`. A volume whose Secret or ConfigMap is missing keeps the pod
//!   Pending until it appears.
//! - **Probes**: `startupProbe`, `readinessProbe`, `livenessProbe` with `httpGet` (HTTP, to the
//!   pod's address), `tcpSocket` and `exec` (in the container's sandbox), with
//!   `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`, `successThreshold`,
//!   `failureThreshold`. A failed startup or liveness probe stops the container (SIGTERM,
//!   SIGKILL after the grace period) and the restart rules apply. The pod is ready when every
//!   regular container and native sidecar runs and passes its readiness probe.
//! - **Networking**: pods share the host's network namespace, and every pod gets its own
//!   loopback address from 127.10.0.0/16 (all of 127.0.0.0/8 is loopback on Linux), shown as
//!   `status.podIP` and [`PodInfo::ip`]. Addresses are unique among the live pods of all
//!   runtimes in the process; pods never fight over ports.
//! - **Workloads**: a Deployment or StatefulSet with 0 or 1 replicas keeps one pod from its
//!   template. A deleted Deployment pod is replaced at once by a pod with a new name; a
//!   StatefulSet pod (`<name>-0`, same name, new UID) once the old one is gone. A changed
//!   template replaces the pod (strategy `Recreate`: after the old pod is gone).
//! - **Deletion**: SIGTERM to every process group, SIGKILL after the grace period
//!   (`terminationGracePeriodSeconds`, at most the runtime's, default 5 s); regular containers
//!   first, then native sidecars in reverse order. As on a cluster, a container's PID 1 that
//!   does not handle SIGTERM ignores it and is killed at the end of the grace period.
//!
//! # Fidelity limits
//!
//! - A sandbox is for fidelity, not security: a container running as root keeps every
//!   capability (`capabilities` is not applied), and pods share the host's network and IPC
//!   namespaces. No image contents: the root is the host's `/usr` and `/etc`, plus the mapped
//!   program; `/sys`, `/var`, `/run` and `/home` are absent; `/etc/hosts` is the host's. No
//!   cgroups, so no `resources` limits and no OOM kills. `runAsNonRoot` without a `runAsUser`
//!   is not checked (the image's user is unknown; containers without one run as root).
//! - Without root, sandboxes live in a user namespace mapping this user to root: everything
//!   above holds except users, groups and ownership ([`Isolation::UserNamespace`]). Where no
//!   sandbox can be made ([`Isolation::None`], e.g. unprivileged user namespaces disabled), the
//!   runtime runs containers as plain host processes and refuses pods that mount volumes, with
//!   the reason. [`LocalRuntime::isolation`] says which, once, when the runtime is built.
//! - Secret and ConfigMap volumes are written when the pod starts and not refreshed.
//! - A process of a shared PID namespace that leaves its process group (`setsid`, daemons)
//!   escapes the kill of its container (not of its pod).
//! - `Runtime::write_claim`'s owner is not applied: files the harness writes stay the harness
//!   user's, until a pod's `fsGroup` takes them over at its start.
//! - No `lifecycle` hooks, gRPC probes, `hostNetwork`, `resourceFieldRef`, `subPathExpr` or
//!   other volume kinds: such manifests are rejected with the field named, rather than run
//!   differently. Services are accepted and recorded, and do nothing (no DNS, no proxying):
//!   address pods by [`PodInfo::ip`].
//! - The Kubernetes service variables (`KUBERNETES_SERVICE_HOST`, …) are not set.
//! - Timestamps are wall-clock milliseconds; events within a millisecond compare equal.
//!
//! # Files
//!
//! Under the root (a temporary directory removed on drop, unless
//! [`LocalRuntimeBuilder::with_root`]): `<ns>/pvc/<claim>/` and `<ns>/pods/<pod>/` (with
//! `volumes/<volume>/`, `root/` where each sandbox's root is built (empty on the host) and
//! `logs/<container>/<run>.log`, stdout and stderr interleaved line by line).
//! [`LocalRuntimeBuilder::with_log_dir`] moves logs to `<dir>/<ns>/<pod>/<container>/`, where
//! they outlive the namespace.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::timeline::Timeline;
use super::{ExecOutput, PodInfo};

mod apply;
mod as_runtime;
mod builder;
mod container;
mod error;
mod group;
mod images;
mod kubelet;
mod launch;
mod logs;
mod namespace;
mod net;
mod node;
mod pod;
mod probe;
mod process;
pub mod sandbox;
mod security;
mod spawn;
mod teardown;
mod validate;
mod volumes;

pub use builder::LocalRuntimeBuilder;
pub use error::{Error, Result};
pub use images::{ImageCommand, ImageFile, ImageMap};
pub use launch::Mount;
pub use sandbox::{Isolation, launcher_main as sandbox_launcher};

use apply::check_name;
use namespace::Namespace;
use node::Node;
use pod::{ContainerError, Pod};

/// How long a pod may take to stop beyond its grace period before a wait gives up.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// The embedded runtime; see the [module docs](self).
///
/// Dropping it SIGKILLs every process it started (best effort, synchronously) and removes its
/// files; [`LocalRuntime::abort`] does that without the drop, and [`LocalRuntime::shutdown`]
/// does the same and waits.
pub struct LocalRuntime {
    root: PathBuf,
    tempdir: Mutex<Option<tempfile::TempDir>>,
    node: Arc<Node>,
    namespaces: Mutex<BTreeMap<String, Arc<Namespace>>>,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl LocalRuntime {
    /// A builder with working defaults.
    pub fn builder() -> LocalRuntimeBuilder {
        LocalRuntimeBuilder::default()
    }

    /// How containers are isolated here: decided once, when the runtime was built.
    pub fn isolation(&self) -> &Isolation {
        &self.node.isolation
    }

    /// The directory holding the runtime's namespaces.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The directory of namespace `ns` (whether or not it exists).
    pub fn namespace_dir(&self, ns: &str) -> PathBuf {
        self.root.join(ns)
    }

    fn namespace(&self, ns: &str) -> Result<Arc<Namespace>> {
        self.namespaces
            .lock()
            .expect("runtime lock")
            .get(ns)
            .cloned()
            .ok_or_else(|| Error::NoNamespace { ns: ns.to_owned() })
    }

    fn pod(&self, ns: &str, pod: &str) -> Result<Arc<Pod>> {
        let namespace = self.namespace(ns)?;
        let state = namespace.lock();
        state.pods.get(pod).cloned().ok_or_else(|| Error::NoPod {
            ns: ns.to_owned(),
            pod: pod.to_owned(),
            known: state.pods.keys().cloned().collect(),
        })
    }

    fn container(&self, ns: &str, pod: &str, container: &str) -> Result<(Arc<Pod>, usize)> {
        let p = self.pod(ns, pod)?;
        match p.container_index(container) {
            Some(idx) => Ok((p, idx)),
            None => Err(Error::NoContainer {
                ns: ns.to_owned(),
                pod: pod.to_owned(),
                container: container.to_owned(),
                known: p.container_names(),
            }),
        }
    }

    fn container_error(ns: &str, pod: &str, container: &str, e: ContainerError) -> Error {
        match e {
            ContainerError::NotRunning => Error::NotRunning {
                ns: ns.to_owned(),
                pod: pod.to_owned(),
                container: container.to_owned(),
            },
            ContainerError::Io(source) => Error::Io {
                what: format!("inspecting container {container} of pod {ns}/{pod}"),
                path: PathBuf::from("/proc"),
                source,
            },
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.node.procs.is_closed() {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Creates an empty namespace.
    pub async fn create_namespace(&self, ns: &str) -> Result<()> {
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
        namespaces.insert(
            ns.to_owned(),
            Arc::new(Namespace::new(ns.to_owned(), dir, self.node.clone())),
        );
        Ok(())
    }

    /// The pods of `ns`, oldest first.
    pub async fn pods(&self, ns: &str) -> Result<Vec<PodInfo>> {
        let namespace = self.namespace(ns)?;
        let mut pods: Vec<Arc<Pod>> = namespace.lock().pods.values().cloned().collect();
        pods.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
        Ok(pods.iter().map(|p| p.info()).collect())
    }

    /// Pods named `key` or owned by workload `key`: live before terminating, newest first.
    fn candidates(namespace: &Namespace, key: &str) -> Vec<Arc<Pod>> {
        let mut pods: Vec<Arc<Pod>> = namespace
            .lock()
            .pods
            .values()
            .filter(|p| p.name == key || p.owner_name() == Some(key))
            .cloned()
            .collect();
        pods.sort_by_key(|p| (p.is_terminating(), Reverse(p.created_at), p.name.clone()));
        pods
    }

    /// Waits until a pod named `owner_or_pod_name`, or owned by the Deployment/StatefulSet of
    /// that name, meets `cond`. On timeout the error shows the candidates' timelines.
    pub async fn wait_for_pod(
        &self,
        ns: &str,
        owner_or_pod_name: &str,
        cond: impl Fn(&PodInfo) -> bool + Send,
        timeout: Duration,
    ) -> Result<PodInfo> {
        let namespace = self.namespace(ns)?;
        let mut found = None;
        let (slot, ns_ref) = (&mut found, &namespace);
        // NB: `cond` moves into the closure: it is `Send`, not necessarily `Sync`.
        let wait = self.node.wait_until(move || {
            *slot = Self::candidates(ns_ref, owner_or_pod_name)
                .iter()
                .map(|p| p.info())
                .find(|info| cond(info));
            slot.is_some()
        });
        let timed_out = tokio::time::timeout(timeout, wait).await.is_err();
        match found {
            Some(info) if !timed_out => Ok(info),
            _ => {
                let pods = Self::candidates(&namespace, owner_or_pod_name);
                let state = if pods.is_empty() {
                    let all: Vec<String> = namespace.lock().pods.keys().cloned().collect();
                    format!(
                        "no pod is named or owned by `{owner_or_pod_name}` (pods in {ns}: {})",
                        if all.is_empty() {
                            "none".into()
                        } else {
                            all.join(", ")
                        }
                    )
                } else {
                    pods.iter()
                        .map(|p| p.timeline().render())
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                Err(Error::Timeout {
                    what: format!("pod `{owner_or_pod_name}` in {ns} to meet the condition"),
                    timeout,
                    state,
                })
            }
        }
    }

    /// The pod's timeline.
    pub async fn timeline(&self, ns: &str, pod: &str) -> Result<Timeline> {
        Ok(self.pod(ns, pod)?.timeline())
    }

    /// Waits until the pod's timeline meets `cond` (e.g. a container has run twice); returns
    /// that timeline. On timeout the error shows the last one.
    pub async fn wait_for_timeline(
        &self,
        ns: &str,
        pod: &str,
        cond: impl Fn(&Timeline) -> bool + Send,
        timeout: Duration,
    ) -> Result<Timeline> {
        let p = self.pod(ns, pod)?;
        let mut last = p.timeline();
        let (slot, pod_ref) = (&mut last, &p);
        let wait = self.node.wait_until(move || {
            *slot = pod_ref.timeline();
            cond(slot)
        });
        match tokio::time::timeout(timeout, wait).await {
            Ok(()) => Ok(last),
            Err(_) => Err(Error::Timeout {
                what: format!("the timeline of pod {ns}/{pod} to meet the condition"),
                timeout,
                state: p.timeline().render(),
            }),
        }
    }

    /// Resolves once `container` of `pod` logs, or has logged in any run, a line containing
    /// `needle`.
    pub async fn watch_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<()> {
        let (p, idx) = self.container(ns, pod, container)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let logs = &p.containers[idx].logs;
        let io = |source| Error::Io {
            what: format!("reading the logs of {container} in {ns}/{pod}"),
            path: p.dir.clone(),
            source,
        };
        if logs.wait_for_line(needle, deadline).await.map_err(io)? {
            return Ok(());
        }
        let text = logs.read_all().map_err(io)?;
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(Error::Timeout {
            what: format!(
                "container {container} of {ns}/{pod} to log a line containing {needle:?}"
            ),
            timeout,
            state: format!(
                "{}last lines of {container}:\n{}",
                p.timeline().render(),
                tail.join("\n")
            ),
        })
    }

    /// Everything `container` of `pod` logged, earlier runs first.
    pub async fn logs(&self, ns: &str, pod: &str, container: &str) -> Result<String> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.containers[idx]
            .logs
            .read_all()
            .map_err(|source| Error::Io {
                what: format!("reading the logs of {container} in {ns}/{pod}"),
                path: p.dir.clone(),
                source,
            })
    }

    /// Runs `argv` in the running container: in its sandbox (its mounts, PID namespace and
    /// user), with its environment and working directory.
    pub async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<ExecOutput> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.exec(idx, argv).await.map_err(|e| match e {
            ContainerError::Io(source) => Error::Exec {
                argv: argv.to_vec(),
                container: container.to_owned(),
                source,
            },
            e => Self::container_error(ns, pod, container, e),
        })
    }

    /// The environment of the running container's main process (from `/proc/<pid>/environ`).
    pub async fn process_env(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<BTreeMap<String, String>> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.process_env(idx)
            .await
            .map_err(|e| Self::container_error(ns, pod, container, e))
    }

    /// The container's mounts and the host directories behind them. Empty until the pod's
    /// volumes are set up.
    pub async fn mounts(&self, ns: &str, pod: &str, container: &str) -> Result<Vec<Mount>> {
        let (p, idx) = self.container(ns, pod, container)?;
        Ok(p.mounts(idx))
    }

    /// SIGKILLs the container's process group; the pod's restart rules then apply.
    pub async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<()> {
        let (p, idx) = self.container(ns, pod, container)?;
        p.kill(idx, "killed by kill_container (SIGKILL)")
            .map_err(|e| Self::container_error(ns, pod, container, e))
    }

    /// Deletes the pod: SIGTERM, SIGKILL after the grace period, emptyDirs removed. Returns once
    /// it is gone (like `kubectl delete pod`); its owner, if any, replaces it meanwhile.
    pub async fn delete_pod(&self, ns: &str, pod: &str) -> Result<()> {
        let namespace = self.namespace(ns)?;
        let p = self.pod(ns, pod)?;
        p.request_termination(false);
        namespace.reconcile(&mut namespace.lock());
        self.wait_gone(&[p], &format!("pod {ns}/{pod} to be deleted"))
            .await
    }

    /// Waits until every pod in `pods` has stopped.
    async fn wait_gone(&self, pods: &[Arc<Pod>], what: &str) -> Result<()> {
        let grace = pods.iter().map(|p| p.grace()).max().unwrap_or_default();
        let timeout = grace + STOP_SLACK;
        let wait = self
            .node
            .wait_until(|| pods.iter().all(|p| *p.gone.borrow()));
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::Timeout {
                what: what.to_owned(),
                timeout,
                state: pods
                    .iter()
                    .map(|p| p.timeline().render())
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
    }

    /// Sets the replicas (0 or 1) of Deployment or StatefulSet `workload`. Scaling to 0 returns
    /// once its pod's processes are gone.
    pub async fn scale(&self, ns: &str, workload: &str, replicas: u32) -> Result<()> {
        self.check_open()?;
        let namespace = self.namespace(ns)?;
        if replicas > 1 {
            return Err(Error::Invalid {
                object: format!("workload {workload}"),
                problem: format!("{replicas} replicas: the local runtime runs 0 or 1"),
            });
        }
        let retiring: Vec<Arc<Pod>> = {
            let mut state = namespace.lock();
            let known: Vec<String> = state.workloads.keys().cloned().collect();
            let Some(w) = state.workloads.get_mut(workload) else {
                return Err(Error::NoWorkload {
                    ns: ns.to_owned(),
                    name: workload.to_owned(),
                    known,
                });
            };
            w.replicas = replicas;
            namespace.reconcile(&mut state);
            state
                .pods
                .values()
                .filter(|p| p.owner_name() == Some(workload) && p.is_terminating())
                .cloned()
                .collect()
        };
        if replicas == 0 {
            self.wait_gone(&retiring, &format!("the pods of {ns}/{workload} to stop"))
                .await?;
        }
        Ok(())
    }

    /// The host directory behind claim `claim` of `ns`; it outlives pods.
    pub fn pvc_path(&self, ns: &str, claim: &str) -> Result<PathBuf> {
        let namespace = self.namespace(ns)?;
        let state = namespace.lock();
        state
            .claims
            .get(claim)
            .cloned()
            .ok_or_else(|| Error::NoClaim {
                object: format!("namespace {ns}"),
                claim: claim.to_owned(),
                known: state.claims.keys().cloned().collect(),
            })
    }
}

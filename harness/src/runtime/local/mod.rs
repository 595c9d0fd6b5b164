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
//!   recorded in the pod's [`Timeline`](crate::runtime::timeline::Timeline).
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
//!   `status.podIP` and [`PodInfo::ip`](crate::runtime::PodInfo::ip). Addresses are unique among the live pods of all
//!   runtimes in the process; pods never fight over ports.
//! - **Workloads**: a Deployment or StatefulSet with 0 or 1 replicas keeps one pod from its
//!   template. A deleted Deployment pod is replaced at once by a pod with a new name; a
//!   StatefulSet pod (`<name>-0`, same name, new UID) once the old one is gone. A changed
//!   template replaces the pod (strategy `Recreate`: after the old pod is gone).
//! - **Admission**: `MutatingWebhookConfiguration`s and `ValidatingWebhookConfiguration`s
//!   (cluster-scoped: applied through any namespace, removed with
//!   [`Namespaces::delete_cluster_objects`](crate::runtime::Namespaces::delete_cluster_objects))
//!   are called when a pod is created, as the API server calls them: AdmissionReview v1 over
//!   HTTPS to the Service's ready pod or the `url`, trusting only the `caBundle`; `rules`,
//!   `namespaceSelector` (on `kubernetes.io/metadata.name`), `objectSelector`,
//!   `failurePolicy`, `timeoutSeconds` and `reinvocationPolicy` honoured; the JSON Patch
//!   applied. A pod applied directly that admission refuses is an [`Error::Refused`] of the
//!   `apply`; a workload's is retried with back-off (1 s, 2 s, 4 s, 8 s) like a ReplicaSet's,
//!   and a wait for its pod fails at once with the refusal (as a case fails on a cluster's
//!   `FailedCreate` event). [`Pods::pod_spec`](crate::runtime::Pods::pod_spec) shows the pod
//!   as admitted.
//! - **Deletion**: SIGTERM to every process group, SIGKILL after the grace period
//!   (`terminationGracePeriodSeconds`, at most the runtime's, default 5 s); regular containers
//!   first, then native sidecars in reverse order. As on a cluster, a container's PID 1 that
//!   does not handle SIGTERM ignores it and is killed at the end of the grace period.
//!   Deleting a namespace kills its pods at once (no grace period): it is the harness's clean-up
//!   after a verdict, and no check watches those pods stop.
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
//!   differently. Services are recorded and used only to reach a webhook's pod (no DNS, no
//!   proxying): address pods by [`PodInfo::ip`](crate::runtime::PodInfo::ip).
//! - No API to watch: operators (controllers) need a real cluster. Admission covers pod
//!   creation only (see `admission`).
//! - The Kubernetes service variables (`KUBERNETES_SERVICE_HOST`, …) are not set.
//! - Timestamps are wall-clock milliseconds; events within a millisecond compare equal.
//!
//! # Code
//!
//! Each runtime trait is implemented in a module of its own: `namespace_api.rs`
//! ([`Namespaces`](crate::runtime::Namespaces), and the runtime's end), `pod_api.rs`
//! ([`Pods`](crate::runtime::Pods)), `container_api.rs` ([`Logs`](crate::runtime::Logs),
//! [`Containers`](crate::runtime::Containers)) and `claim_api.rs`
//! ([`Claims`](crate::runtime::Claims)); the pods themselves live in `pod.rs` and `kubelet.rs`.
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

use super::{Error, Result};

mod admission;
mod apply;
mod builder;
mod claim_api;
mod container;
mod container_api;
mod group;
mod images;
mod kubelet;
mod launch;
mod logs;
mod namespace;
mod namespace_api;
mod net;
mod node;
mod pod;
mod pod_api;
mod probe;
mod process;
pub mod sandbox;
mod security;
mod spawn;
mod validate;
mod volumes;

pub use builder::LocalRuntimeBuilder;
pub use images::{ImageCommand, ImageFile, ImageMap};
pub use launch::Mount;
pub use sandbox::{Isolation, launcher_main as sandbox_launcher};

use namespace::Namespace;
use node::Node;
use pod::{ContainerError, Pod};

/// How long a pod may take to stop beyond its grace period before a wait gives up.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// The embedded runtime; see the [module docs](self).
///
/// Dropping it SIGKILLs every process it started (best effort, synchronously) and removes its
/// files; [`Namespaces::abort`](crate::runtime::Namespaces::abort) does that without the drop, and [`Namespaces::shutdown`](crate::runtime::Namespaces::shutdown)
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

    fn namespace_state(&self, ns: &str) -> Result<Arc<Namespace>> {
        self.namespaces
            .lock()
            .expect("runtime lock")
            .get(ns)
            .cloned()
            .ok_or_else(|| Error::NoNamespace { ns: ns.to_owned() })
    }

    fn pod(&self, ns: &str, pod: &str) -> Result<Arc<Pod>> {
        let namespace = self.namespace_state(ns)?;
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

    /// The container's mounts and the host directories behind them. Empty until the pod's
    /// volumes are set up.
    pub async fn mounts(&self, ns: &str, pod: &str, container: &str) -> Result<Vec<Mount>> {
        let (p, idx) = self.container(ns, pod, container)?;
        Ok(p.mounts(idx))
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

    /// The host directory behind claim `claim` of `ns`; it outlives pods.
    pub fn pvc_path(&self, ns: &str, claim: &str) -> Result<PathBuf> {
        let namespace = self.namespace_state(ns)?;
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

//! A namespace's objects and the controllers acting on them: workloads (Deployment, StatefulSet
//! with 0 or 1 replicas) keep their pod, Secrets and ConfigMaps feed containers and volumes,
//! claims are directories.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::{self as core, PodSpec, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::watch;

use super::launch::{Config, PodFields};
use super::logs::LogBook;
use super::net::{PodIp, random_u64};
use super::node::{NODE_NAME, Node};
use super::pod::{ContainerDef, Pod, PodOwner};
use super::probe::{ProbeKind, ProbeSpec};
use super::{Error, Result, kubelet};
use crate::runtime::timeline::ContainerRole;

/// The kinds of workload the runtime runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WorkloadKind {
    Deployment,
    StatefulSet,
}

/// A Deployment or StatefulSet.
#[derive(Clone, Debug)]
pub(super) struct Workload {
    pub kind: WorkloadKind,
    pub replicas: u32,
    pub template: PodTemplateSpec,
    /// Hash of the template; a pod from another template is replaced.
    pub hash: String,
    /// Deployment strategy `Recreate`: a new template's pod waits until the old pod is gone.
    pub recreate: bool,
}

/// Where a namespace is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NsPhase {
    Active,
    /// Pods stopped and kept for inspection; controllers idle.
    Stopped,
    /// Being deleted; controllers idle.
    Deleting,
}

/// The objects of a namespace.
pub(super) struct NsState {
    pub phase: NsPhase,
    pub config: Config,
    pub claims: BTreeMap<String, PathBuf>,
    pub services: BTreeMap<String, Service>,
    pub workloads: BTreeMap<String, Workload>,
    pub pods: BTreeMap<String, Arc<Pod>>,
    /// Workloads whose next pod is in the admission chain.
    pub admitting: BTreeSet<String>,
    /// Pods the admission chain let through, waiting to be created by their workload.
    pub admitted: BTreeMap<String, Admitted>,
    /// Why a workload's last pod was not created (admission refused it); cleared on success.
    pub refusals: BTreeMap<String, Refusal>,
}

/// A workload's pod as admission returned it.
pub(super) struct Admitted {
    /// The template it was made from.
    pub template_hash: String,
    pub name: String,
    pub meta: ObjectMeta,
    pub spec: PodSpec,
}

/// Why a workload has no pod, and how often it was tried.
#[derive(Clone, Debug)]
pub(super) struct Refusal {
    pub message: String,
    pub attempts: u32,
}

/// One namespace.
pub(super) struct Namespace {
    pub name: String,
    /// The namespace's directory: `pvc/<claim>`, `pods/<pod>`.
    pub dir: PathBuf,
    pub node: Arc<Node>,
    state: Mutex<NsState>,
    /// Bumped when a Secret or ConfigMap changes, so waiting containers and volumes retry.
    pub config_changes: watch::Sender<u64>,
}

impl Namespace {
    pub(super) fn new(name: String, dir: PathBuf, node: Arc<Node>) -> Self {
        Namespace {
            name,
            dir,
            node,
            state: Mutex::new(NsState {
                phase: NsPhase::Active,
                config: Config::default(),
                claims: BTreeMap::new(),
                services: BTreeMap::new(),
                workloads: BTreeMap::new(),
                pods: BTreeMap::new(),
                admitting: BTreeSet::new(),
                admitted: BTreeMap::new(),
                refusals: BTreeMap::new(),
            }),
            config_changes: watch::Sender::new(0),
        }
    }

    /// The namespace's objects, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, NsState> {
        self.state.lock().expect("namespace lock")
    }

    /// The namespace's objects, unless the lock is poisoned (for `Drop`).
    pub(super) fn lock_for_drop(&self) -> Option<MutexGuard<'_, NsState>> {
        self.state.lock().ok()
    }

    /// A snapshot of the Secrets and ConfigMaps.
    pub(super) fn config(&self) -> Config {
        self.lock().config.clone()
    }

    /// Claim name → directory.
    pub(super) fn claims(&self) -> BTreeMap<String, PathBuf> {
        self.lock().claims.clone()
    }

    /// The directory of claim `name`.
    pub(super) fn claim_dir(&self, name: &str) -> PathBuf {
        self.dir.join("pvc").join(name)
    }

    /// Called by a deleted pod's kubelet once it is gone: forget it and let its owner react.
    pub(super) fn pod_gone(self: &Arc<Self>, pod: &Pod) {
        let mut state = self.lock();
        if state.pods.get(&pod.name).is_some_and(|p| p.uid == pod.uid) {
            state.pods.remove(&pod.name);
        }
        self.reconcile(&mut state);
    }

    /// Makes the pods match the workloads: retire pods of old templates or of workloads scaled to
    /// zero, create the missing pod.
    pub(super) fn reconcile(self: &Arc<Self>, state: &mut NsState) {
        if state.phase != NsPhase::Active {
            return;
        }
        let workloads: Vec<(String, Workload)> = state
            .workloads
            .iter()
            .map(|(n, w)| (n.clone(), w.clone()))
            .collect();
        for (name, w) in workloads {
            let owned: Vec<Arc<Pod>> = state
                .pods
                .values()
                .filter(|p| p.owner_name() == Some(name.as_str()))
                .cloned()
                .collect();
            let current = |p: &Pod| p.owner.as_ref().is_some_and(|o| o.template_hash == w.hash);
            for p in &owned {
                if !p.is_terminating() && (w.replicas == 0 || !current(p)) {
                    p.request_termination(false);
                }
            }
            if w.replicas == 0 || owned.iter().any(|p| !p.is_terminating() && current(p)) {
                continue;
            }
            let pod_name = match w.kind {
                WorkloadKind::Deployment => {
                    if w.recreate && owned.iter().any(|p| !current(p)) {
                        continue;
                    }
                    format!("{name}-{}-{}", w.hash, suffix(5))
                }
                WorkloadKind::StatefulSet => {
                    let pod_name = format!("{name}-0");
                    if state.pods.contains_key(&pod_name) {
                        continue;
                    }
                    pod_name
                }
            };
            let owner = PodOwner {
                name: name.clone(),
                template_hash: w.hash.clone(),
            };
            let (pod_name, meta, spec) = if self.node.admission.is_active() {
                match state.admitted.remove(&name) {
                    Some(a) if a.template_hash == w.hash => (a.name, a.meta, a.spec),
                    _ => {
                        if state.admitting.insert(name.clone()) {
                            // NB: a refusal stands until this attempt answers, not longer: a
                            // wait begun after a scale-up must not fail on an old answer.
                            state.refusals.remove(&name);
                            let pod = core::Pod {
                                metadata: ObjectMeta {
                                    name: Some(pod_name),
                                    namespace: Some(self.name.clone()),
                                    ..w.template.metadata.clone().unwrap_or_default()
                                },
                                spec: w.template.spec.clone(),
                                status: None,
                            };
                            tokio::spawn(admit(self.clone(), name, w.hash.clone(), pod));
                        }
                        continue;
                    }
                }
            } else {
                let spec = w.template.spec.clone().unwrap_or_default();
                let meta = w.template.metadata.clone().unwrap_or_default();
                (pod_name, meta, spec)
            };
            if let Err(e) = self.create_pod(state, pod_name, &meta, spec, Some(owner)) {
                tracing::warn!(namespace = %self.name, workload = %name, "cannot create a pod: {e}");
                let attempts = state.refusals.get(&name).map_or(0, |r| r.attempts) + 1;
                state.refusals.insert(
                    name.clone(),
                    Refusal {
                        message: e.to_string(),
                        attempts,
                    },
                );
                self.node.notify();
            }
        }
    }

    /// Called when the admission chain has answered for `workload`'s next pod: keep the
    /// admitted pod for [`Self::reconcile`], or record the refusal and try again later (as a
    /// ReplicaSet does, with back-off).
    fn admitted(
        self: &Arc<Self>,
        workload: String,
        template_hash: String,
        result: std::result::Result<core::Pod, String>,
    ) {
        let mut state = self.lock();
        state.admitting.remove(&workload);
        let checked = result.and_then(|pod| {
            let spec = pod.spec.unwrap_or_default();
            let claims: BTreeSet<String> = state.claims.keys().cloned().collect();
            let no_sandbox = match &self.node.isolation {
                super::Isolation::None { reason } => Some(reason),
                _ => None,
            };
            super::validate::pod_spec(
                &spec,
                &super::validate::Context {
                    object: format!("the pod of {workload} as admitted"),
                    path: "spec",
                    images: &self.node.images,
                    claims: &claims,
                    owned: true,
                    no_sandbox,
                },
            )
            .map_err(|e| format!("the admitted pod cannot run: {e}"))?;
            Ok((pod.metadata, spec))
        });
        match checked {
            Ok((meta, spec)) => {
                state.refusals.remove(&workload);
                let name = meta.name.clone().unwrap_or_default();
                state.admitted.insert(
                    workload,
                    Admitted {
                        template_hash,
                        name,
                        meta,
                        spec,
                    },
                );
                self.reconcile(&mut state);
            }
            Err(message) => {
                tracing::warn!(namespace = %self.name, %workload, "FailedCreate: {message}");
                let attempts = state.refusals.get(&workload).map_or(0, |r| r.attempts) + 1;
                state
                    .refusals
                    .insert(workload, Refusal { message, attempts });
                drop(state);
                self.node.notify();
                let delay = std::time::Duration::from_secs(1 << attempts.min(3));
                let namespace = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut state = namespace.lock();
                    namespace.reconcile(&mut state);
                });
            }
        }
    }

    /// Creates pod `name` and starts its kubelet.
    pub(super) fn create_pod(
        self: &Arc<Self>,
        state: &mut NsState,
        name: String,
        meta: &ObjectMeta,
        spec: PodSpec,
        owner: Option<PodOwner>,
    ) -> Result<Arc<Pod>> {
        let ip = PodIp::allocate().ok_or(Error::NoAddress)?;
        let uid = new_uid();
        let dir = self.dir.join("pods").join(&name);
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| Error::Io {
                what: "creating the pod's directory".into(),
                path,
                source,
            }
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // NB: where sandboxes build their roots, each in its own mount namespace.
        let staging = dir.join("root");
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        let log_root = match &self.node.log_dir {
            Some(logs) => logs.join(&self.name).join(&name),
            None => dir.join("logs"),
        };
        if log_root.exists() {
            std::fs::remove_dir_all(&log_root).map_err(io(&log_root))?;
        }
        let fields = PodFields {
            name: name.clone(),
            namespace: self.name.clone(),
            uid: uid.clone(),
            ip: ip.addr(),
            node_name: NODE_NAME.into(),
            service_account: spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".into()),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
        };
        let mut containers = Vec::new();
        let inits = spec.init_containers.iter().flatten().map(|c| {
            let role = if c.restart_policy.as_deref() == Some("Always") {
                ContainerRole::NativeSidecar
            } else {
                ContainerRole::Init
            };
            (c, role)
        });
        let apps = spec.containers.iter().map(|c| (c, ContainerRole::App));
        for (c, role) in inits.chain(apps) {
            let image = c.image.as_deref().unwrap_or_default();
            let image =
                self.node
                    .images
                    .get(image)
                    .cloned()
                    .ok_or_else(|| Error::UnmappedImage {
                        image: image.to_owned(),
                        container: c.name.clone(),
                    })?;
            let mut probes = Vec::new();
            let ports = c.ports.as_deref().unwrap_or_default();
            for (kind, probe) in [
                (ProbeKind::Startup, &c.startup_probe),
                (ProbeKind::Readiness, &c.readiness_probe),
                (ProbeKind::Liveness, &c.liveness_probe),
            ] {
                if let Some(probe) = probe {
                    probes.push(ProbeSpec::new(kind, probe, ports, ip.addr()).map_err(
                        |problem| Error::Invalid {
                            object: format!("Pod {name}"),
                            problem: format!("container {}: {problem}", c.name),
                        },
                    )?);
                }
            }
            containers.push(ContainerDef {
                spec: c.clone(),
                role,
                image,
                logs: LogBook::new(log_root.join(&c.name)),
                probes,
            });
        }
        let pod = Arc::new(Pod::new(
            name.clone(),
            uid,
            ip,
            owner,
            spec,
            fields,
            dir,
            containers,
            self.node.clone(),
            self,
        ));
        state.pods.insert(name, pod.clone());
        tokio::spawn(kubelet::run(pod.clone()));
        self.node.notify();
        Ok(pod)
    }
}

/// Runs the admission chain for `workload`'s next pod and hands the answer back.
async fn admit(namespace: Arc<Namespace>, workload: String, template_hash: String, pod: core::Pod) {
    let result = namespace.node.admission.admit(&namespace.name, pod).await;
    namespace.admitted(workload, template_hash, result);
}

/// A stable hash of a pod template, spelt like Kubernetes' `pod-template-hash`.
pub(super) fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_string(template).expect("templates serialise");
    // NB: `DefaultHasher::new()` has fixed keys, so the hash is stable within a build.
    let mut hasher = std::hash::DefaultHasher::new();
    json.hash(&mut hasher);
    spell(hasher.finish(), 10)
}

/// Kubernetes' alphabet for generated names (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn spell(mut n: u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// A random name suffix.
pub(super) fn suffix(len: usize) -> String {
    spell(random_u64(), len)
}

/// A random UUID (version 4 layout).
fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

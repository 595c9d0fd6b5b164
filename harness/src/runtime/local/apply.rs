//! `apply`: checking a batch of objects, then creating or updating them.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::admission::Admission;
use super::namespace::{self, Namespace, Workload, WorkloadKind};
use super::{Error, LocalRuntime, Result, launch, validate};
use crate::runtime::objects::Object;

impl LocalRuntime {
    /// [`Namespaces::apply`](crate::runtime::Namespaces::apply): creates or updates `objects` in `ns`: Pod, Deployment and StatefulSet (0 or 1 replicas),
    /// PersistentVolumeClaim, Secret, ConfigMap, Service (recorded only). Everything is checked
    /// before anything changes; Secrets, ConfigMaps and claims are applied before the workloads
    /// of the same call.
    pub(super) async fn apply_objects(&self, ns: &str, objects: Vec<Object>) -> Result<()> {
        self.check_open()?;
        let namespace = self.namespace_state(ns)?;
        let mut claims: BTreeSet<String> = namespace.lock().claims.keys().cloned().collect();
        let mut plan = Vec::new();
        for object in objects {
            let name = object_name(&object)?;
            if let Some(other) = object.metadata().and_then(|m| m.namespace.as_deref())
                && other != ns
            {
                return Err(Error::Invalid {
                    object: format!("{} {name}", object.kind()),
                    problem: format!("metadata.namespace is {other}, but it is applied to {ns}"),
                });
            }
            match &object {
                Object::PersistentVolumeClaim(_) => {
                    claims.insert(name.clone());
                }
                Object::StatefulSet(set) => {
                    for t in set
                        .spec
                        .iter()
                        .flat_map(|s| s.volume_claim_templates.iter().flatten())
                    {
                        let template = t.metadata.name.clone().unwrap_or_default();
                        claims.insert(format!("{template}-{name}-0"));
                    }
                }
                Object::Other { kind, .. } => {
                    return Err(Error::UnsupportedKind {
                        kind: kind.clone(),
                        name,
                    });
                }
                Object::MutatingWebhookConfiguration(_)
                | Object::ValidatingWebhookConfiguration(_) => Admission::check(&object)?,
                _ => {}
            }
            plan.push((name, object));
        }
        self.admit_new_pods(ns, &namespace, &mut plan).await?;
        let mut workloads = Vec::new();
        for (name, object) in &plan {
            let (path, spec, owned) = match object {
                Object::Pod(pod) => ("spec", pod.spec.clone(), false),
                Object::Deployment(_) | Object::StatefulSet(_) => {
                    let workload = workload(name, object)?;
                    let spec = workload.template.spec.clone();
                    workloads.push((name.clone(), workload));
                    ("spec.template.spec", spec, true)
                }
                _ => continue,
            };
            let object_id = format!("{} {name}", object.kind());
            let spec = spec.ok_or_else(|| Error::Invalid {
                object: object_id.clone(),
                problem: format!("`{path}` is missing"),
            })?;
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(&spec.containers)
            {
                check_name("container", &c.name, false)?;
            }
            validate::pod_spec(
                &spec,
                &validate::Context {
                    object: object_id,
                    path,
                    images: &self.node.images,
                    claims: &claims,
                    owned,
                    no_sandbox: match &self.node.isolation {
                        super::Isolation::None { reason } => Some(reason),
                        _ => None,
                    },
                },
            )?;
        }
        let mut config_changed = false;
        let mut state = namespace.lock();
        for (name, object) in &plan {
            match object {
                Object::Secret(secret) => {
                    let mut data: launch::Data = secret
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect();
                    for (k, v) in secret.string_data.iter().flatten() {
                        data.insert(k.clone(), v.clone().into_bytes());
                    }
                    state.config.secrets.insert(name.clone(), data);
                    config_changed = true;
                }
                Object::ConfigMap(map) => {
                    let mut data: launch::Data = map
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                        .collect();
                    for (k, v) in map.binary_data.iter().flatten() {
                        data.insert(k.clone(), v.0.clone());
                    }
                    state.config.config_maps.insert(name.clone(), data);
                    config_changed = true;
                }
                Object::PersistentVolumeClaim(_) => {
                    let dir = namespace.claim_dir(name);
                    create_claim(&dir)?;
                    state.claims.insert(name.clone(), dir);
                }
                Object::Service(service) => {
                    state.services.insert(name.clone(), service.clone());
                }
                Object::MutatingWebhookConfiguration(config) => {
                    self.node.admission.register_mutating(config)?;
                }
                Object::ValidatingWebhookConfiguration(config) => {
                    self.node.admission.register_validating(config)?;
                }
                _ => {}
            }
        }
        for (name, w) in &workloads {
            if w.kind == WorkloadKind::StatefulSet {
                for v in w
                    .template
                    .spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten())
                {
                    if let Some(pvc) = &v.persistent_volume_claim
                        && !state.claims.contains_key(&pvc.claim_name)
                    {
                        let dir = namespace.claim_dir(&pvc.claim_name);
                        create_claim(&dir)?;
                        state.claims.insert(pvc.claim_name.clone(), dir);
                    }
                }
            }
            state.workloads.insert(name.clone(), w.clone());
        }
        for (name, object) in &plan {
            let Object::Pod(pod) = object else {
                continue;
            };
            let spec = pod.spec.clone().unwrap_or_default();
            match state.pods.get(name) {
                Some(existing) if existing.spec == spec => {}
                Some(_) => return Err(Error::Immutable { name: name.clone() }),
                None => {
                    namespace.create_pod(&mut state, name.clone(), &pod.metadata, spec, None)?;
                }
            }
        }
        namespace.reconcile(&mut state);
        drop(state);
        if config_changed {
            namespace.config_changes.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Sends every Pod of `plan` that does not exist yet through the admission chain and puts
    /// the admitted pod in its place; a refusal is the error of the whole batch.
    async fn admit_new_pods(
        &self,
        ns: &str,
        namespace: &Namespace,
        plan: &mut [(String, Object)],
    ) -> Result<()> {
        if !self.node.admission.is_active() {
            return Ok(());
        }
        for (name, object) in plan.iter_mut() {
            let Object::Pod(pod) = object else {
                continue;
            };
            if namespace.lock().pods.contains_key(name.as_str()) {
                continue;
            }
            let mut submitted = pod.clone();
            submitted.metadata.name = Some(name.clone());
            submitted.metadata.namespace = Some(ns.to_owned());
            let admitted = self
                .node
                .admission
                .admit(ns, submitted)
                .await
                .map_err(|message| Error::Refused {
                    ns: ns.to_owned(),
                    pod: name.clone(),
                    message,
                })?;
            *pod = admitted;
        }
        Ok(())
    }
}

/// `name` is a DNS label (`subdomain`: dots allowed too).
pub(super) fn check_name(what: &'static str, name: &str, subdomain: bool) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= if subdomain { 253 } else { 63 }
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (subdomain && b == b'.')
        })
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(Error::BadName {
            what,
            name: name.to_owned(),
        })
    }
}

/// The object's name, generated from `generateName` for a Pod without one.
fn object_name(object: &Object) -> Result<String> {
    let meta = object.metadata().cloned().unwrap_or_default();
    let name = match (&meta.name, &meta.generate_name, object) {
        (Some(name), _, _) if !name.is_empty() => name.clone(),
        (_, Some(prefix), Object::Pod(_)) => format!("{prefix}{}", namespace::suffix(5)),
        _ if matches!(object, Object::Other { .. }) => object.name().to_owned(),
        _ => {
            return Err(Error::Invalid {
                object: object.kind().to_owned(),
                problem: "metadata.name is missing".into(),
            });
        }
    };
    if !matches!(object, Object::Other { .. }) {
        check_name(object_kind_word(object), &name, true)?;
    }
    Ok(name)
}

fn object_kind_word(object: &Object) -> &'static str {
    match object {
        Object::Pod(_) => "pod",
        Object::Deployment(_) => "deployment",
        Object::StatefulSet(_) => "statefulset",
        Object::PersistentVolumeClaim(_) => "persistentvolumeclaim",
        Object::Secret(_) => "secret",
        Object::ConfigMap(_) => "configmap",
        Object::Service(_) => "service",
        Object::MutatingWebhookConfiguration(_) => "mutatingwebhookconfiguration",
        Object::ValidatingWebhookConfiguration(_) => "validatingwebhookconfiguration",
        Object::Other { .. } => "object",
    }
}

/// The workload behind a Deployment or StatefulSet object.
fn workload(name: &str, object: &Object) -> Result<Workload> {
    let invalid = |problem: String| Error::Invalid {
        object: format!("{} {name}", object.kind()),
        problem,
    };
    let (kind, replicas, mut template, recreate) = match object {
        Object::Deployment(d) => {
            let spec = d
                .spec
                .clone()
                .ok_or_else(|| invalid("`spec` is missing".into()))?;
            let recreate =
                spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
            (
                WorkloadKind::Deployment,
                spec.replicas,
                spec.template,
                recreate,
            )
        }
        Object::StatefulSet(s) => {
            let spec = s
                .spec
                .clone()
                .ok_or_else(|| invalid("`spec` is missing".into()))?;
            let mut template = spec.template;
            // NB: the StatefulSet controller adds a volume per claim template, claim
            // `<template>-<set>-<ordinal>`.
            if let Some(pod_spec) = template.spec.as_mut() {
                let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
                for t in spec.volume_claim_templates.iter().flatten() {
                    let tname = t.metadata.name.clone().unwrap_or_default();
                    if !volumes.iter().any(|v| v.name == tname) {
                        volumes.push(Volume {
                            name: tname.clone(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: format!("{tname}-{name}-0"),
                                read_only: None,
                            }),
                            ..Volume::default()
                        });
                    }
                }
            }
            (WorkloadKind::StatefulSet, spec.replicas, template, false)
        }
        _ => unreachable!("only workloads"),
    };
    let replicas = replicas.unwrap_or(1);
    if !(0..=1).contains(&replicas) {
        return Err(invalid(format!(
            "spec.replicas is {replicas}: the local runtime runs 0 or 1"
        )));
    }
    template.metadata.get_or_insert_with(ObjectMeta::default);
    Ok(Workload {
        kind,
        replicas: replicas as u32,
        hash: namespace::template_hash(&template),
        template,
        recreate,
    })
}

/// A claim's directory, mode 0777 like a freshly provisioned volume's.
fn create_claim(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)))
        .map_err(|source| Error::Io {
            what: "creating a claim's directory".into(),
            path: dir.to_owned(),
            source,
        })
}

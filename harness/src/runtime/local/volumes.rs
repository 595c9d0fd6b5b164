//! Pod volumes as host directories.
//!
//! `emptyDir`, `secret`, `configMap` and `projected` (secret and configMap sources) volumes are
//! directories under the pod's directory, created when the pod starts and removed with the pod;
//! a `persistentVolumeClaim` is the claim's directory under the namespace, which outlives pods.
//! Secret and ConfigMap volumes are written once, when the pod starts (Kubernetes refreshes them
//! later; this runtime does not).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, PodSpec};

use super::launch::{Config, Data, Mount};

/// Why a pod's volumes could not be set up.
#[derive(Debug)]
pub(super) enum VolumeError {
    /// A Secret, ConfigMap, key or claim is missing; the pod waits for it.
    Missing(String),
    /// The host refused.
    Io(PathBuf, io::Error),
}

/// Volume name → host directory.
pub(super) type Volumes = BTreeMap<String, PathBuf>;

/// Creates the pod's volumes under `dir` (one sub-directory each).
pub(super) fn materialise(
    spec: &PodSpec,
    dir: &Path,
    claims: &BTreeMap<String, PathBuf>,
    config: &Config,
) -> Result<Volumes, VolumeError> {
    let mut volumes = Volumes::new();
    for volume in spec.volumes.iter().flatten() {
        let own = dir.join(&volume.name);
        let io = |e: io::Error| VolumeError::Io(own.clone(), e);
        if let Some(pvc) = &volume.persistent_volume_claim {
            let path = claims.get(&pvc.claim_name).ok_or_else(|| {
                VolumeError::Missing(format!(
                    "volume \"{}\": persistentvolumeclaim \"{}\" not found",
                    volume.name, pvc.claim_name
                ))
            })?;
            volumes.insert(volume.name.clone(), path.clone());
            continue;
        }
        // NB: a retry after a missing Secret starts from scratch.
        if own.exists() && volume.empty_dir.is_none() {
            std::fs::remove_dir_all(&own).map_err(io)?;
        }
        std::fs::create_dir_all(&own).map_err(io)?;
        // Writes one Secret's or ConfigMap's keys into the volume; a missing one holds the pod
        // unless it is optional.
        let fill = |kind: &str,
                    store: &BTreeMap<String, Data>,
                    name: &str,
                    items: Option<&[KeyToPath]>,
                    mode: Option<i32>,
                    optional: Option<bool>| {
            match store.get(name) {
                Some(data) => write_files(&own, data, items, mode, &volume.name, kind, name),
                None if optional == Some(true) => Ok(()),
                None => Err(VolumeError::Missing(format!(
                    "MountVolume.SetUp failed for volume \"{}\": {} \"{name}\" not found",
                    volume.name,
                    kind.to_ascii_lowercase()
                ))),
            }
        };
        if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            let items = secret.items.as_deref();
            fill(
                "Secret",
                &config.secrets,
                &name,
                items,
                secret.default_mode,
                secret.optional,
            )?;
        } else if let Some(map) = &volume.config_map {
            let items = map.items.as_deref();
            fill(
                "ConfigMap",
                &config.config_maps,
                &map.name,
                items,
                map.default_mode,
                map.optional,
            )?;
        } else if let Some(projected) = &volume.projected {
            let mode = projected.default_mode;
            for source in projected.sources.iter().flatten() {
                if let Some(secret) = &source.secret {
                    let items = secret.items.as_deref();
                    fill(
                        "Secret",
                        &config.secrets,
                        &secret.name,
                        items,
                        mode,
                        secret.optional,
                    )?;
                }
                if let Some(map) = &source.config_map {
                    let items = map.items.as_deref();
                    fill(
                        "ConfigMap",
                        &config.config_maps,
                        &map.name,
                        items,
                        mode,
                        map.optional,
                    )?;
                }
            }
        }
        volumes.insert(volume.name.clone(), own);
    }
    Ok(volumes)
}

/// Writes `data` as files: every key, or only `items` (key → path, mode).
fn write_files(
    dir: &Path,
    data: &Data,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    volume: &str,
    kind: &str,
    name: &str,
) -> Result<(), VolumeError> {
    let default_mode = default_mode.unwrap_or(0o644);
    let entries: Vec<(&str, &str, i32)> = match items {
        Some(items) => {
            let mut entries = Vec::new();
            for item in items {
                if !data.contains_key(&item.key) {
                    return Err(VolumeError::Missing(format!(
                        "MountVolume.SetUp failed for volume \"{volume}\": couldn't find key {} in {kind} {name}",
                        item.key
                    )));
                }
                entries.push((
                    item.key.as_str(),
                    item.path.as_str(),
                    item.mode.unwrap_or(default_mode),
                ));
            }
            entries
        }
        None => data
            .keys()
            .map(|k| (k.as_str(), k.as_str(), default_mode))
            .collect(),
    };
    for (key, rel, mode) in entries {
        if !is_relative_inside(rel) {
            continue;
        }
        let path = dir.join(rel);
        let io = |e: io::Error| VolumeError::Io(path.clone(), e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, &data[key]).map_err(io)?;
        // NB: best effort; the owner keeps read access so the runtime can clean up.
        let mode = (mode as u32 & 0o7777) | 0o400;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
    }
    Ok(())
}

/// `path` is relative and does not climb out (`..`).
pub(super) fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The container's mounts, with `subPath` directories created.
pub(super) fn mounts(container: &Container, volumes: &Volumes) -> io::Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(base) = volumes.get(&m.name) else {
            continue;
        };
        let host_path = match m.sub_path.as_deref() {
            Some(sub) if !sub.is_empty() && is_relative_inside(sub) => {
                let path = base.join(sub);
                if !path.exists() {
                    std::fs::create_dir_all(&path)?;
                }
                path
            }
            _ => base.clone(),
        };
        mounts.push(Mount {
            volume: m.name.clone(),
            mount_path: m.mount_path.clone(),
            host_path,
            read_only: m.read_only == Some(true),
        });
    }
    Ok(mounts)
}

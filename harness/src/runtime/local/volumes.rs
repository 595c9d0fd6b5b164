//! Pod volumes as host directories.
//!
//! `emptyDir`, `secret`, `configMap`, `downwardAPI` and `projected` (secret, configMap and
//! downwardAPI sources) volumes are
//! directories under the pod's directory, created when the pod starts and removed with the pod;
//! a `persistentVolumeClaim` is the claim's directory under the namespace, which outlives pods.
//! Secret and ConfigMap volumes are written once, when the pod starts (Kubernetes refreshes them
//! later; this runtime does not), each file with its declared mode (`defaultMode`, an item's
//! `mode`; 0644 by default). An `emptyDir` starts with mode 0777, as on a kubelet.
//!
//! With a pod `fsGroup` (and sandboxes made as root), every volume is given to that group when
//! the pod starts, as the kubelet does for volumes that support ownership management: group
//! `fsGroup`, group read and write (read only for Secret, ConfigMap and projected volumes and
//! read-only claims), directories setgid so new files join the group. `fsGroupChangePolicy:
//! OnRootMismatch` skips a volume whose root already has that group and mode. Claims get this
//! like a CSI volume; kind's hostPath-backed claims would not.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, PodSpec};

use super::launch::{Config, Data, Mount, PodFields};

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
    fields: &PodFields,
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
        let mode = if volume.empty_dir.is_some() {
            0o777
        } else {
            0o755
        };
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(mode)).map_err(io)?;
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
        } else if let Some(downward) = &volume.downward_api {
            let items = downward.items.as_deref().unwrap_or_default();
            write_fields(&own, items, downward.default_mode, fields)?;
        } else if let Some(projected) = &volume.projected {
            let mode = projected.default_mode;
            for source in projected.sources.iter().flatten() {
                if let Some(downward) = &source.downward_api {
                    let items = downward.items.as_deref().unwrap_or_default();
                    write_fields(&own, items, mode, fields)?;
                }
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
        let mode = mode as u32 & 0o7777;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    Ok(())
}

/// Writes downward-API `items` (pod fields) as files.
fn write_fields(
    dir: &Path,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    fields: &PodFields,
) -> Result<(), VolumeError> {
    for item in items {
        let Some(selector) = &item.field_ref else {
            continue;
        };
        if !is_relative_inside(&item.path) {
            continue;
        }
        let value = volume_field(&selector.field_path, fields).unwrap_or_default();
        let path = dir.join(&item.path);
        let io = |e: io::Error| VolumeError::Io(path.clone(), e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, value).map_err(io)?;
        let mode = item.mode.or(default_mode).unwrap_or(0o644) as u32 & 0o7777;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    Ok(())
}

/// A pod field as a downward-API volume file holds it: one field, or a whole label or
/// annotation map as sorted `key="value"` lines.
pub(super) fn volume_field(path: &str, fields: &PodFields) -> Option<String> {
    let map = match path {
        "metadata.labels" => &fields.labels,
        "metadata.annotations" => &fields.annotations,
        _ => return super::launch::field(path, fields),
    };
    Some(
        map.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// `path` is relative and does not climb out (`..`).
pub(super) fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The container's mounts, with missing `subPath` directories created with the mode of their
/// volume's root (as the kubelet does).
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
                    let mode = std::fs::metadata(base)?.permissions().mode() & 0o7777;
                    std::fs::create_dir_all(&path)?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
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

/// Gives the pod's volumes to its `fsGroup` (see the module docs); nothing without one.
pub(super) fn apply_fs_group(spec: &PodSpec, volumes: &Volumes) -> io::Result<()> {
    let Some(group) = super::security::fs_group(spec) else {
        return Ok(());
    };
    let on_root_mismatch = spec
        .security_context
        .as_ref()
        .and_then(|c| c.fs_group_change_policy.as_deref())
        == Some("OnRootMismatch");
    for volume in spec.volumes.iter().flatten() {
        let Some(dir) = volumes.get(&volume.name) else {
            continue;
        };
        let read_only = volume.secret.is_some()
            || volume.config_map.is_some()
            || volume.downward_api.is_some()
            || volume.projected.is_some()
            || volume
                .persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.read_only == Some(true));
        let mask = if read_only { 0o440 } else { 0o660 };
        if on_root_mismatch {
            let meta = std::fs::metadata(dir)?;
            let wanted = mask | 0o110 | 0o2000;
            if meta.gid() == group && meta.mode() & wanted == wanted {
                continue;
            }
        }
        give_to_group(dir, group, mask)?;
    }
    Ok(())
}

/// `chgrp -R group` and `chmod -R +mask` (directories also `+x` and setgid), not following links.
fn give_to_group(path: &Path, group: u32, mask: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    std::os::unix::fs::lchown(path, None, Some(group))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mode = meta.mode() & 0o7777 | mask;
    if meta.is_dir() {
        mode |= 0o110 | 0o2000;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give_to_group(&entry?.path(), group, mask)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fs_group_owns_writable_volumes_read_write_and_secrets_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let creds = dir.path().join("creds");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/file"), "x").unwrap();
        std::fs::set_permissions(
            data.join("sub/file"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::create_dir_all(&creds).unwrap();
        std::fs::write(creds.join("key"), "k").unwrap();
        std::fs::set_permissions(creds.join("key"), std::fs::Permissions::from_mode(0o400))
            .unwrap();
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "securityContext": {"fsGroup": nix::unistd::getgid().as_raw()},
            "containers": [],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "s"}}
            ]
        }))
        .unwrap();
        let volumes: Volumes = [
            ("data".into(), data.clone()),
            ("creds".into(), creds.clone()),
        ]
        .into_iter()
        .collect();
        apply_fs_group(&spec, &volumes).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&data.join("sub/file")), 0o660);
        assert_eq!(mode(&data.join("sub")) & 0o2770, 0o2770);
        assert_eq!(mode(&creds.join("key")), 0o440);
    }
}

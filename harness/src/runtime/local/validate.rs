//! Checks a pod spec against what the local runtime can do, before anything is applied, so a
//! manifest it cannot honour fails with the field to blame rather than running differently.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};

use super::images::ImageMap;
use super::probe::{ProbeKind, ProbeSpec};
use super::volumes::is_relative_inside;
use super::{Error, Result};

/// What a pod spec is checked against.
pub(super) struct Context<'a> {
    /// `Kind/name` of the object holding the spec, for messages.
    pub object: String,
    /// The spec's path in that object (`spec` or `spec.template.spec`).
    pub path: &'a str,
    pub images: &'a ImageMap,
    /// Claims that exist (or are applied in the same batch).
    pub claims: &'a BTreeSet<String>,
    /// Whether a workload owns the pods (their restartPolicy must be Always).
    pub owned: bool,
    /// Why the runtime has no sandboxes, if it has none.
    pub no_sandbox: Option<&'a String>,
}

impl Context<'_> {
    fn unsupported(&self, field: String, reason: &str) -> Error {
        Error::UnsupportedField {
            object: self.object.clone(),
            field,
            reason: reason.to_owned(),
        }
    }

    fn invalid(&self, problem: String) -> Error {
        Error::Invalid {
            object: self.object.clone(),
            problem,
        }
    }
}

/// Checks `spec`.
pub(super) fn pod_spec(spec: &PodSpec, cx: &Context<'_>) -> Result<()> {
    let path = cx.path;
    if spec.containers.is_empty() {
        return Err(cx.invalid(format!(
            "{path}.containers: at least one container is required"
        )));
    }
    match spec.restart_policy.as_deref() {
        None | Some("Always") => {}
        Some("OnFailure" | "Never") if !cx.owned => {}
        Some(other) => {
            return Err(cx.invalid(format!(
                "{path}.restartPolicy: `{other}` is not allowed here (use Always{})",
                if cx.owned {
                    "; workloads require it"
                } else {
                    ", OnFailure or Never"
                }
            )));
        }
    }
    if spec.host_network == Some(true) {
        return Err(cx.unsupported(
            format!("{path}.hostNetwork"),
            "every pod gets its own loopback address instead",
        ));
    }
    let mut volumes = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("{path}.volumes[{i}]");
        if !volumes.insert(volume.name.as_str()) {
            return Err(cx.invalid(format!("{field}: duplicate volume name `{}`", volume.name)));
        }
        volume_source(volume, &field, cx)?;
    }
    let mut names = BTreeSet::new();
    let inits = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("{path}.initContainers[{i}]"), c, true));
    let apps = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{path}.containers[{i}]"), c, false));
    for (field, c, init) in inits.chain(apps) {
        if !names.insert(c.name.as_str()) {
            return Err(cx.invalid(format!("{field}: duplicate container name `{}`", c.name)));
        }
        container(c, &field, init, &volumes, cx)?;
    }
    Ok(())
}

fn volume_source(
    volume: &k8s_openapi::api::core::v1::Volume,
    field: &str,
    cx: &Context<'_>,
) -> Result<()> {
    if let Some(pvc) = &volume.persistent_volume_claim {
        if !cx.claims.contains(&pvc.claim_name) {
            return Err(Error::NoClaim {
                object: cx.object.clone(),
                claim: pvc.claim_name.clone(),
                known: cx.claims.iter().cloned().collect(),
            });
        }
        return Ok(());
    }
    let items_ok = |items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>| {
        items
            .iter()
            .flatten()
            .all(|item| is_relative_inside(&item.path))
    };
    if let Some(s) = &volume.secret {
        if !items_ok(&s.items) {
            return Err(cx.invalid(format!(
                "{field}.secret.items: a path must be relative, without `..`"
            )));
        }
        return Ok(());
    }
    if let Some(m) = &volume.config_map {
        if !items_ok(&m.items) {
            return Err(cx.invalid(format!(
                "{field}.configMap.items: a path must be relative, without `..`"
            )));
        }
        return Ok(());
    }
    if volume.empty_dir.is_some() {
        return Ok(());
    }
    if let Some(downward) = &volume.downward_api {
        return downward_items(
            downward.items.as_deref(),
            &format!("{field}.downwardAPI"),
            cx,
        );
    }
    if let Some(projected) = &volume.projected {
        for (j, source) in projected.sources.iter().flatten().enumerate() {
            let here = format!("{field}.projected.sources[{j}]");
            let ok = match (&source.secret, &source.config_map, &source.downward_api) {
                (Some(s), None, None) => items_ok(&s.items),
                (None, Some(m), None) => items_ok(&m.items),
                (None, None, Some(d)) => {
                    downward_items(d.items.as_deref(), &format!("{here}.downwardAPI"), cx)?;
                    true
                }
                _ => false,
            };
            if !ok {
                return Err(cx.unsupported(
                    here,
                    "only secret, configMap and downwardAPI sources (with relative item paths) are supported",
                ));
            }
        }
        return Ok(());
    }
    Err(cx.unsupported(
        field.to_owned(),
        &format!(
            "volume `{}`: only emptyDir, persistentVolumeClaim, secret, configMap, downwardAPI and projected (secret, configMap, downwardAPI) volumes are supported",
            volume.name
        ),
    ))
}

/// The items of a downward-API volume: relative paths, pod fields the runtime knows.
fn downward_items(
    items: Option<&[k8s_openapi::api::core::v1::DownwardAPIVolumeFile]>,
    field: &str,
    cx: &Context<'_>,
) -> Result<()> {
    for (i, item) in items.unwrap_or_default().iter().enumerate() {
        if !is_relative_inside(&item.path) {
            return Err(cx.invalid(format!(
                "{field}.items[{i}].path: must be relative, without `..`"
            )));
        }
        let Some(selector) = &item.field_ref else {
            return Err(cx.unsupported(
                format!("{field}.items[{i}]"),
                "only fieldRef items (no resourceFieldRef: there are no resource limits)",
            ));
        };
        if super::volumes::volume_field(&selector.field_path, &probe_fields()).is_none() {
            return Err(cx.unsupported(
                format!("{field}.items[{i}].fieldRef.fieldPath"),
                &format!("`{}` is not supported", selector.field_path),
            ));
        }
    }
    Ok(())
}

/// Pod fields with every value empty, to ask whether a field path is known.
fn probe_fields() -> super::launch::PodFields {
    super::launch::PodFields {
        name: String::new(),
        namespace: String::new(),
        uid: String::new(),
        ip: Ipv4Addr::LOCALHOST,
        node_name: String::new(),
        service_account: String::new(),
        labels: Default::default(),
        annotations: Default::default(),
    }
}

fn container(
    c: &Container,
    field: &str,
    init: bool,
    volumes: &BTreeSet<&str>,
    cx: &Context<'_>,
) -> Result<()> {
    let image = c.image.as_deref().unwrap_or_default();
    if cx.images.get(image).is_none() {
        return Err(Error::UnmappedImage {
            image: image.to_owned(),
            container: c.name.clone(),
        });
    }
    let sidecar = match (init, c.restart_policy.as_deref()) {
        (_, None) => false,
        (true, Some("Always")) => true,
        (true, Some(other)) => {
            return Err(cx.invalid(format!(
                "{field}.restartPolicy: `{other}` is not allowed; an init container takes only Always (a native sidecar)"
            )));
        }
        (false, Some(_)) => {
            return Err(cx.invalid(format!(
                "{field}.restartPolicy: only init containers take a restartPolicy in Kubernetes 1.33"
            )));
        }
    };
    if c.lifecycle.is_some() {
        return Err(cx.unsupported(
            format!("{field}.lifecycle"),
            "postStart/preStop hooks are not run",
        ));
    }
    if c.volume_devices.is_some() {
        return Err(cx.unsupported(format!("{field}.volumeDevices"), "no block devices"));
    }
    let probes: [(&str, &Option<Probe>, ProbeKind); 3] = [
        ("startupProbe", &c.startup_probe, ProbeKind::Startup),
        ("readinessProbe", &c.readiness_probe, ProbeKind::Readiness),
        ("livenessProbe", &c.liveness_probe, ProbeKind::Liveness),
    ];
    for (name, probe, kind) in probes {
        let Some(probe) = probe else {
            continue;
        };
        if init && !sidecar {
            return Err(cx.invalid(format!(
                "{field}.{name}: init containers that are not native sidecars cannot have probes"
            )));
        }
        if probe.grpc.is_some() {
            return Err(cx.unsupported(
                format!("{field}.{name}.grpc"),
                "use httpGet, tcpSocket or exec",
            ));
        }
        let ports = c.ports.as_deref().unwrap_or_default();
        ProbeSpec::new(kind, probe, ports, Ipv4Addr::LOCALHOST)
            .map_err(|problem| cx.invalid(format!("{field}.{name}: {problem}")))?;
    }
    for (i, var) in c.env.iter().flatten().enumerate() {
        if var
            .value_from
            .as_ref()
            .is_some_and(|f| f.resource_field_ref.is_some())
        {
            return Err(cx.unsupported(
                format!("{field}.env[{i}].valueFrom.resourceFieldRef"),
                "there are no resource limits on the host",
            ));
        }
        if let Some(r) = var.value_from.as_ref().and_then(|f| f.field_ref.as_ref())
            && super::launch::field(&r.field_path, &probe_fields()).is_none()
        {
            return Err(cx.unsupported(
                format!("{field}.env[{i}].valueFrom.fieldRef.fieldPath"),
                &format!("`{}` is not supported", r.field_path),
            ));
        }
    }
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        if let Some(reason) = cx.no_sandbox {
            return Err(cx.unsupported(
                format!("{field}.volumeMounts[{i}]"),
                &format!(
                    "this runtime has no sandboxes ({reason}), so the container would not see volume `{}` at {}",
                    m.name, m.mount_path
                ),
            ));
        }
        if !volumes.contains(m.name.as_str()) {
            return Err(cx.invalid(format!(
                "{field}.volumeMounts[{i}]: no volume named `{}` in the pod",
                m.name
            )));
        }
        if m.sub_path_expr.is_some() {
            return Err(cx.unsupported(
                format!("{field}.volumeMounts[{i}].subPathExpr"),
                "use subPath",
            ));
        }
        if m.sub_path
            .as_deref()
            .is_some_and(|s| !s.is_empty() && !is_relative_inside(s))
        {
            return Err(cx.invalid(format!(
                "{field}.volumeMounts[{i}].subPath: must be relative, without `..`"
            )));
        }
        if !m.mount_path.starts_with('/')
            || m.mount_path.trim_end_matches('/').is_empty()
            || m.mount_path.split('/').any(|c| c == "..")
        {
            return Err(cx.invalid(format!(
                "{field}.volumeMounts[{i}].mountPath: `{}` must be an absolute path other than /, without `..`",
                m.mount_path
            )));
        }
    }
    Ok(())
}

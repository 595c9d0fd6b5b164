//! A container's `securityContext` (and its pod's) as the sandbox applies it: who the process
//! runs as, whether the root file system is read-only, whether it may gain privileges.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::sandbox::spec::Ids;

/// What the sandbox enforces of a container's security settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Security {
    /// `runAsUser`, `runAsGroup`, `fsGroup` and `supplementalGroups`; `None` when the spec sets
    /// no user (the image's, which the runtime takes as root).
    pub ids: Option<Ids>,
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privs: bool,
}

/// Resolves the container's settings over the pod's. An `Err` is a
/// `CreateContainerConfigError` message.
pub(super) fn resolve(pod: &PodSpec, container: &Container) -> Result<Security, String> {
    let pod_ctx = pod.security_context.as_ref();
    let ctx = container.security_context.as_ref();
    let uid = ctx
        .and_then(|c| c.run_as_user)
        .or_else(|| pod_ctx.and_then(|p| p.run_as_user));
    let gid = ctx
        .and_then(|c| c.run_as_group)
        .or_else(|| pod_ctx.and_then(|p| p.run_as_group));
    let non_root = ctx
        .and_then(|c| c.run_as_non_root)
        .or_else(|| pod_ctx.and_then(|p| p.run_as_non_root))
        == Some(true);
    if non_root && uid == Some(0) {
        return Err(format!(
            "container's runAsUser breaks non-root policy (container: {})",
            container.name
        ));
    }
    let mut groups = Vec::new();
    if let Some(fs_group) = pod_ctx.and_then(|p| p.fs_group) {
        groups.push(fs_group);
    }
    groups.extend(
        pod_ctx
            .and_then(|p| p.supplemental_groups.clone())
            .unwrap_or_default(),
    );
    let id =
        |n: i64, what: &str| u32::try_from(n).map_err(|_| format!("{what} {n} is not a valid id"));
    let ids = match (uid, gid) {
        (None, None) if groups.is_empty() => None,
        (uid, gid) => Some(Ids {
            uid: id(uid.unwrap_or(0), "runAsUser")?,
            gid: id(gid.unwrap_or(0), "runAsGroup")?,
            groups: groups
                .into_iter()
                .map(|g| id(g, "a group"))
                .collect::<Result<_, _>>()?,
        }),
    };
    Ok(Security {
        ids,
        read_only_root: ctx.and_then(|c| c.read_only_root_filesystem) == Some(true),
        no_new_privs: ctx.and_then(|c| c.allow_privilege_escalation) == Some(false),
    })
}

/// The pod's `fsGroup`, which owns its writable volumes.
pub(super) fn fs_group(pod: &PodSpec) -> Option<u32> {
    pod.security_context
        .as_ref()
        .and_then(|p| p.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};

    #[test]
    fn the_container_overrides_the_pod_and_fs_group_joins_the_groups() {
        let pod = PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(1000),
                fs_group: Some(2000),
                supplemental_groups: Some(vec![3000]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = Container {
            name: "c".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(65532),
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = resolve(&pod, &container).unwrap();
        assert_eq!(
            s.ids,
            Some(Ids {
                uid: 65532,
                gid: 1000,
                groups: vec![2000, 3000]
            })
        );
        assert!(s.read_only_root && s.no_new_privs);
        assert_eq!(
            resolve(&PodSpec::default(), &Container::default()).unwrap(),
            Security::default()
        );
    }

    #[test]
    fn run_as_non_root_with_user_zero_does_not_start() {
        let pod = PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = resolve(&pod, &Container::default()).unwrap_err();
        assert!(err.contains("non-root"), "{err}");
    }
}

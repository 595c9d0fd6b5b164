//! Helper pods: how the harness reaches a claim's files and a container's processes on a real
//! cluster, using only the harness's tools image, `phasecheck-tools` (scratch images have no
//! shell; the image under test is never used for the harness's own work).
//!
//! - A **claim helper** (`phasecheck-claim-<claim>`) mounts the claim at [`CLAIM_MOUNT`] and runs
//!   as root without extra capabilities, so it can read anything on the claim and hand written
//!   files to the workload's user. Archives travel over `exec` (stdout, and stdin sized up front).
//! - A **node helper** (`phasecheck-node-<node>`) runs as root with `hostPID: true` and only the
//!   `KILL`, `SYS_PTRACE` and `DAC_READ_SEARCH` capabilities on the target pod's node, finds a container's processes by the runtime ID from the pod's status
//!   and SIGKILLs them (the kubelet then restarts the container by its restart policy) or reads
//!   the main process's environment.
//!
//! Helpers live in the scenario's namespace, are created on first use and go with it. They
//! need a cluster that admits root and hostPID pods in that namespace (kind and minikube do by
//! default; a namespace enforcing the `baseline` or `restricted` Pod Security level does not).

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::json;

use super::exec::ExecBytes;
use super::{Error, KubeRuntime, MANAGED_BY, Result};
use crate::runtime::{Claims, Containers, ExecOutput, PodPhase, Pods};

/// Where a claim helper mounts the claim.
pub const CLAIM_MOUNT: &str = "/claim";
/// The helper pods' container.
const TOOL_CONTAINER: &str = "tool";
/// The label telling helper pods from the workload's.
pub const HELPER_LABEL: &str = "phasecheck.io/helper";

impl KubeRuntime {
    /// The node and runtime ID of a running (init or regular) container of the pod.
    async fn running_container(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<(String, String)> {
        let object = self.pod(ns, pod).await?;
        let status = object.status.as_ref();
        let statuses = status
            .and_then(|s| s.init_container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            );
        let mut known = Vec::new();
        for s in statuses {
            known.push(s.name.clone());
            if s.name != container {
                continue;
            }
            let running = s.state.as_ref().is_some_and(|st| st.running.is_some());
            let (Some(id), true) = (s.container_id.clone(), running) else {
                return Err(Error::Exec {
                    ns: ns.to_owned(),
                    pod: pod.to_owned(),
                    container: container.to_owned(),
                    argv: Vec::new(),
                    problem: "the container is not running".into(),
                });
            };
            let node = object
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            return Ok((node, id));
        }
        Err(Error::NoContainer {
            ns: ns.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            known,
        })
    }

    /// Runs `phasecheck-tools <args>` in a helper; a non-zero exit is an error with its stderr.
    async fn tool(
        &self,
        ns: &str,
        helper: &str,
        args: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecBytes> {
        let argv: Vec<String> = [crate::image::TOOLS_BINARY_PATH]
            .iter()
            .chain(args)
            .map(|s| (*s).to_owned())
            .collect();
        let out = self
            .exec_bytes(ns, helper, TOOL_CONTAINER, &argv, stdin)
            .await?;
        if out.exit_code != 0 {
            return Err(Error::Exec {
                ns: ns.to_owned(),
                pod: helper.to_owned(),
                container: TOOL_CONTAINER.into(),
                argv,
                problem: format!("exit code {}: {}", out.exit_code, out.stderr.trim()),
            });
        }
        Ok(out)
    }

    async fn claim_helper(&self, ns: &str, claim: &str) -> Result<String> {
        let name = helper_name("claim", claim);
        let pod = claim_helper_pod(&name, claim, &self.tool_image);
        self.ensure_helper(ns, &name, pod).await?;
        Ok(name)
    }

    async fn node_helper(&self, ns: &str, node: &str) -> Result<String> {
        let name = helper_name("node", node);
        let pod = node_helper_pod(&name, node, &self.tool_image);
        self.ensure_helper(ns, &name, pod).await?;
        Ok(name)
    }

    /// Creates the helper pod unless it exists, and waits until it runs.
    async fn ensure_helper(&self, ns: &str, name: &str, pod: serde_json::Value) -> Result<()> {
        let api = self.pod_api(ns);
        let exists = api
            .get_opt(name)
            .await
            .map_err(Error::api(format!("get pod {ns}/{name}")))?
            .is_some();
        if !exists {
            let pod: Pod = serde_json::from_value(pod).expect("helper pods are valid Pods");
            match api.create(&PostParams::default(), &pod).await {
                Ok(_) => {}
                // NB: a concurrent fault injection in the same scenario may have created it.
                Err(kube::Error::Api(status)) if status.is_already_exists() => {}
                Err(source) => {
                    return Err(Error::Api {
                        what: format!("create helper pod {ns}/{name}"),
                        source,
                    });
                }
            }
        }
        self.wait_for_pod(
            ns,
            name,
            |p| p.phase == PodPhase::Running && p.ready,
            self.wait_timeout,
        )
        .await
        .map(drop)
    }
}

impl Containers for KubeRuntime {
    /// Runs `argv` in the running `container`. The image must contain the program: scratch
    /// images have no shell or coreutils.
    async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<ExecOutput> {
        let out = self.exec_bytes(ns, pod, container, argv, None).await?;
        Ok(ExecOutput {
            exit_code: out.exit_code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: out.stderr,
        })
    }

    /// SIGKILLs the running `container` of `pod` through a node helper on the pod's node.
    async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<()> {
        let (node, id) = self.running_container(ns, pod, container).await?;
        let helper = self.node_helper(ns, &node).await?;
        self.tool(ns, &helper, &["kill-container", &id], None)
            .await
            .map(drop)
    }

    /// The environment of the running `container`'s main process, read on its node.
    async fn process_env(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let (node, id) = self.running_container(ns, pod, container).await?;
        let helper = self.node_helper(ns, &node).await?;
        let out = self
            .tool(ns, &helper, &["container-env", &id], None)
            .await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// A tar archive of everything the running `container` can read under its volume mounts
    /// (each under its `mountPath` without the leading `/`), read on its node through
    /// `/proc/<pid>/root` of the container's main process.
    async fn read_container_mounts(&self, ns: &str, pod: &str, container: &str) -> Result<Vec<u8>> {
        let (node, id) = self.running_container(ns, pod, container).await?;
        let object = self.pod(ns, pod).await?;
        let spec = object.spec.as_ref();
        let mount_paths: Vec<String> = spec
            .map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
                    .filter(|c| c.name == container)
                    .flat_map(|c| c.volume_mounts.iter().flatten())
                    .map(|m| m.mount_path.clone())
                    .collect()
            })
            .unwrap_or_default();
        let helper = self.node_helper(ns, &node).await?;
        let mut args = vec!["container-mounts", id.as_str()];
        args.extend(mount_paths.iter().map(String::as_str));
        Ok(self.tool(ns, &helper, &args, None).await?.stdout)
    }
}

impl Claims for KubeRuntime {
    /// A tar archive of everything on the claim (through its claim helper).
    async fn read_claim(&self, ns: &str, claim: &str) -> Result<Vec<u8>> {
        let helper = self.claim_helper(ns, claim).await?;
        let out = self.tool(ns, &helper, &["pack", CLAIM_MOUNT], None).await?;
        Ok(out.stdout)
    }

    /// Replaces everything on the claim with `archive`'s contents, owned by `owner`.
    async fn write_claim(
        &self,
        ns: &str,
        claim: &str,
        archive: Vec<u8>,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        let helper = self.claim_helper(ns, claim).await?;
        let size = archive.len().to_string();
        let mut args = vec!["replace", CLAIM_MOUNT, "--size", &size];
        let owner = owner.map(|(uid, gid)| format!("{uid}:{gid}"));
        if let Some(owner) = &owner {
            args.extend(["--owner", owner]);
        }
        self.tool(ns, &helper, &args, Some(archive)).await?;
        Ok(())
    }

    /// The regular files on the claim, counted no further than `limit`.
    async fn count_claim_files(&self, ns: &str, claim: &str, limit: usize) -> Result<usize> {
        let helper = self.claim_helper(ns, claim).await?;
        let limit = limit.to_string();
        let out = self
            .tool(ns, &helper, &["count", CLAIM_MOUNT, &limit], None)
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| Error::Exec {
            ns: ns.to_owned(),
            pod: helper,
            container: TOOL_CONTAINER.into(),
            argv: vec!["count".into()],
            problem: format!("printed `{}`, not a number", text.trim()),
        })
    }
}

/// `phasecheck-<role>-<target>`, cut to a valid pod name.
fn helper_name(role: &str, target: &str) -> String {
    let mut name = format!("phasecheck-{role}-{target}");
    name.truncate(63);
    name.trim_end_matches(['-', '.']).to_owned()
}

fn labels(role: &str) -> serde_json::Value {
    json!({ MANAGED_BY.0: MANAGED_BY.1, HELPER_LABEL: role })
}

/// The claim helper: the claim at [`CLAIM_MOUNT`], root without extra capabilities.
pub fn claim_helper_pod(name: &str, claim: &str, image: &str) -> serde_json::Value {
    let mut pod = helper_pod(
        name,
        "claim",
        image,
        json!({"allowPrivilegeEscalation": false}),
    );
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "claim", "mountPath": CLAIM_MOUNT}]);
    pod["spec"]["volumes"] =
        json!([{"name": "claim", "persistentVolumeClaim": {"claimName": claim}}]);
    pod
}

/// The node helper: root with `KILL`, `SYS_PTRACE` and `DAC_READ_SEARCH` only, in the node's
/// PID namespace, pinned to `node`.
pub fn node_helper_pod(name: &str, node: &str, image: &str) -> serde_json::Value {
    let mut pod = helper_pod(
        name,
        "node",
        image,
        json!({"capabilities": {"drop": ["ALL"], "add": ["KILL", "SYS_PTRACE", "DAC_READ_SEARCH"]}}),
    );
    pod["spec"]["nodeName"] = json!(node);
    pod["spec"]["hostPID"] = json!(true);
    pod["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    pod
}

/// A root pod running `phasecheck-tools hold` in [`TOOL_CONTAINER`], with `security` added to the
/// container's security context.
fn helper_pod(
    name: &str,
    role: &str,
    image: &str,
    security: serde_json::Value,
) -> serde_json::Value {
    let mut context = json!({
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": false,
        "readOnlyRootFilesystem": true,
    });
    if let (Some(context), Some(extra)) = (context.as_object_mut(), security.as_object()) {
        context.extend(extra.clone());
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels(role)},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": TOOL_CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": [crate::image::TOOLS_BINARY_PATH, "hold"],
                "securityContext": context,
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_pods_are_valid_pods_with_names_kubernetes_accepts() {
        let long = "x".repeat(80);
        let name = helper_name("node", &long);
        assert!(name.len() <= 63 && name.starts_with("phasecheck-node-x"));
        let claim: Pod =
            serde_json::from_value(claim_helper_pod("phasecheck-claim-data", "data", "img"))
                .unwrap();
        let spec = claim.spec.unwrap();
        assert_eq!(
            spec.volumes.unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "data"
        );
        assert_eq!(
            spec.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path,
            CLAIM_MOUNT
        );
        let node: Pod =
            serde_json::from_value(node_helper_pod("phasecheck-node-n1", "n1", "img")).unwrap();
        let spec = node.spec.unwrap();
        assert_eq!(spec.host_pid, Some(true));
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        let context = spec.containers[0].security_context.clone().unwrap();
        assert_eq!(context.run_as_user, Some(0));
        assert_eq!(context.privileged, None, "no more than three capabilities");
        assert_eq!(
            context.capabilities.unwrap().add.unwrap(),
            ["KILL", "SYS_PTRACE", "DAC_READ_SEARCH"]
        );
    }
}

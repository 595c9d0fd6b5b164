//! `phasecheck clean`: removes what killed runs left behind on a cluster and in Docker — the
//! namespaces labelled `app.kubernetes.io/managed-by=phasecheck` and the store containers with
//! that label. Creates nothing: a cluster that is not there has nothing to clean.
//!
//! Do not run it while a run uses the same cluster: it cannot tell that run's namespaces apart.

use std::process::ExitCode;

use harness::runtime::kube::{KubeRuntime, MANAGED_BY};

use crate::cluster::{CLUSTER_NAME, CONTEXT_ENV};
use crate::runner::RuntimeKind;

/// Cleans up after phasecheck on `runtime`'s cluster and in the local Docker daemon; returns the
/// exit code (0 clean, 1 something could not be removed, 2 the cluster cannot be reached).
pub async fn run(runtime: RuntimeKind) -> ExitCode {
    let mut failed = false;
    if runtime != RuntimeKind::Local {
        let context = match runtime {
            RuntimeKind::Kind => Some(format!("kind-{CLUSTER_NAME}")),
            RuntimeKind::Minikube => Some(CLUSTER_NAME.to_owned()),
            _ => std::env::var(CONTEXT_ENV).ok().filter(|c| !c.is_empty()),
        };
        let kube = match KubeRuntime::from_kubeconfig(context.as_deref()).await {
            Ok(kube) => kube,
            Err(e) => {
                eprintln!("phasecheck: error: clean: {e}");
                return ExitCode::from(2);
            }
        };
        match clean_namespaces(&kube).await {
            Ok(ok) => failed |= !ok,
            Err(e) => {
                eprintln!("phasecheck: error: clean: {e}");
                return ExitCode::from(2);
            }
        }
    }
    failed |= !clean_containers().await;
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Deletes every managed namespace; `Ok(false)` when one could not be deleted.
pub async fn clean_namespaces(kube: &KubeRuntime) -> Result<bool, harness::runtime::kube::Error> {
    let namespaces = kube.managed_namespaces().await?;
    eprintln!(
        "phasecheck: {} namespace(s) labelled {}={}",
        namespaces.len(),
        MANAGED_BY.0,
        MANAGED_BY.1
    );
    let mut all = true;
    for ns in namespaces {
        match kube.delete_namespace(&ns).await {
            Ok(()) => eprintln!("phasecheck: deleted namespace {ns}"),
            Err(e) => {
                eprintln!("phasecheck: error: {e}");
                all = false;
            }
        }
    }
    Ok(all)
}

/// Removes store containers labelled as phasecheck's; `false` when Docker refused. No Docker is
/// nothing to clean.
async fn clean_containers() -> bool {
    let filter = format!("label={}={}", MANAGED_BY.0, MANAGED_BY.1);
    let listed = tokio::process::Command::new("docker")
        .args(["ps", "--all", "--quiet", "--filter", &filter])
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let ids: Vec<String> = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        _ => return true,
    };
    eprintln!(
        "phasecheck: {} store container(s) labelled {filter}",
        ids.len()
    );
    if ids.is_empty() {
        return true;
    }
    let removed = tokio::process::Command::new("docker")
        .args(["rm", "--force", "--volumes"])
        .args(&ids)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match removed {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "phasecheck: error: docker rm: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("phasecheck: error: docker rm: {e}");
            false
        }
    }
}

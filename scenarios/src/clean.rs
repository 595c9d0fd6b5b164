//! `phasecheck clean`: removes what killed runs left behind — on this host, the run directories
//! (`phasecheck-run-*` under `$TMPDIR`, `/dev/shm` or `/tmp`, see [`crate::workdir`]) and local
//! runtime directories (`phasecheck-local-*`) of runs that are gone, and the processes still
//! working in them; in Docker, the store containers labelled `app.kubernetes.io/managed-by=phasecheck`;
//! on a cluster, the namespaces with that label. Creates nothing: a cluster that is not there has
//! nothing to clean.
//!
//! Such a directory belongs to the run whose process id and start time its [`OWNER_FILE`] names
//! ([`crate::workdir::claim_dir`]); it is removed only when that process is gone.
//! Directories without that file (a runtime a test built, or an older phasecheck) are left alone
//! and listed. The processes removed are those whose working directory or environment points
//! into a removed directory; each is killed with its process group (a container's processes).
//!
//! Do not run it while a run uses the same cluster: it cannot tell that run's namespaces apart.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use harness::runtime::Namespaces;
use harness::runtime::kube::{KubeRuntime, MANAGED_BY};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgid};

use crate::cluster::{CLUSTER_NAME, CONTEXT_ENV};
use crate::note;
use crate::plan::RuntimeKind;
use crate::workdir::{LOCAL_PREFIX, OWNER_FILE, RUN_PREFIX, owner};

/// Cleans up after phasecheck; returns the exit code: 0 clean, 1 something could not be
/// removed, 2 the cluster `runtime` names explicitly cannot be reached (what can be reached is
/// cleaned anyway). Without `runtime`, the kind cluster is cleaned when it is reachable and
/// skipped with a note when not.
pub async fn run(runtime: Option<RuntimeKind>) -> ExitCode {
    let mut failed = !clean_local();
    failed |= !clean_containers().await;
    let mut unreachable = false;
    let cluster = match runtime {
        Some(RuntimeKind::Local) => None,
        Some(kind) => Some((kind, true)),
        None => Some((RuntimeKind::Kind, false)),
    };
    if let Some((kind, required)) = cluster {
        let context = match kind {
            RuntimeKind::Kind | RuntimeKind::Local => Some(format!("kind-{CLUSTER_NAME}")),
            RuntimeKind::Minikube => Some(CLUSTER_NAME.to_owned()),
            RuntimeKind::Existing => std::env::var(CONTEXT_ENV).ok().filter(|c| !c.is_empty()),
        };
        let reached = match KubeRuntime::from_kubeconfig(context.as_deref()).await {
            Ok(kube) => clean_namespaces(&kube).await,
            Err(e) => Err(e),
        };
        match reached {
            Ok(ok) => failed |= !ok,
            Err(e) if required => {
                note!(
                    "phasecheck: error: clean: cannot reach the {} cluster: {e}",
                    kind.as_str()
                );
                unreachable = true;
            }
            Err(e) => note!(
                "phasecheck: clean: the kind cluster is not reachable ({e}); nothing cleaned there (`--runtime minikube|existing` names another cluster)"
            ),
        }
    }
    if unreachable {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Deletes every managed namespace; `Ok(false)` when one could not be deleted.
pub async fn clean_namespaces(kube: &KubeRuntime) -> Result<bool, harness::runtime::Error> {
    let namespaces = kube.managed_namespaces().await?;
    note!(
        "phasecheck: {} namespace(s) labelled {}={}",
        namespaces.len(),
        MANAGED_BY.0,
        MANAGED_BY.1
    );
    let mut all = true;
    match kube.delete_managed_cluster_objects().await {
        Ok(deleted) => {
            for object in deleted {
                note!("phasecheck: deleted {object}");
            }
        }
        Err(e) => {
            note!("phasecheck: error: {e}");
            all = false;
        }
    }
    for ns in namespaces {
        match kube.delete_namespace(&ns).await {
            Ok(()) => note!("phasecheck: deleted namespace {ns}"),
            Err(e) => {
                note!("phasecheck: error: {e}");
                all = false;
            }
        }
    }
    Ok(all)
}

/// Removes the run and local runtime directories of runs that are gone, and the processes
/// working in them; `false` when one could not be removed.
fn clean_local() -> bool {
    let roots = crate::workdir::scratch_roots();
    let mut dirs: Vec<PathBuf> = roots
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(LOCAL_PREFIX) || name.starts_with(RUN_PREFIX)
        })
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let (mut dead, mut live, mut unowned) = (Vec::new(), 0, Vec::new());
    for dir in dirs {
        match owner(&dir) {
            Some(owner) if owner.alive() => live += 1,
            Some(_) => dead.push(dir),
            None => unowned.push(dir),
        }
    }
    note!(
        "phasecheck: {} director(y/ies) of runs that are gone under {}{}",
        dead.len(),
        roots
            .iter()
            .map(|root| root.display().to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        if live > 0 {
            format!(" ({live} of running runs left alone)")
        } else {
            String::new()
        }
    );
    for dir in &unowned {
        note!(
            "phasecheck: left alone (no {OWNER_FILE}: not made by `phasecheck run`, or by an older one): {}",
            dir.display()
        );
    }
    let mut all = true;
    for dir in dead {
        let killed = kill_processes_in(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => note!(
                "phasecheck: removed {}{}",
                dir.display(),
                if killed > 0 {
                    format!(" and killed {killed} process group(s) working in it")
                } else {
                    String::new()
                }
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                note!("phasecheck: error: removing {}: {e}", dir.display());
                all = false;
            }
        }
    }
    all
}

/// SIGKILLs the process group of every process whose working directory or environment points
/// into `dir`; returns how many groups.
fn kill_processes_in(dir: &Path) -> usize {
    let exact = dir.to_string_lossy().into_owned();
    let inside = format!("{exact}/");
    // NB: `…/phasecheck-run-ab` must not match `…/phasecheck-run-abc`.
    let points_in =
        |value: &str| value.ends_with(exact.as_str()) || value.contains(inside.as_str());
    let mut groups = std::collections::BTreeSet::new();
    let me = std::process::id() as i32;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let in_dir = std::fs::read_link(entry.path().join("cwd"))
            .is_ok_and(|cwd| cwd.starts_with(dir))
            || std::fs::read(entry.path().join("environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|var| points_in(&String::from_utf8_lossy(var)))
            });
        if in_dir && let Ok(pgid) = getpgid(Some(Pid::from_raw(pid))) {
            groups.insert(pgid.as_raw());
        }
    }
    let own = getpgid(None).map(|p| p.as_raw()).unwrap_or(0);
    // NB: never our own group, nor init's.
    groups.retain(|pgid| *pgid > 1 && *pgid != own);
    for pgid in &groups {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    groups.len()
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
        Ok(_) => {
            note!("phasecheck: clean: no Docker daemon answers; no store container to clean");
            return true;
        }
        Err(_) => {
            note!("phasecheck: clean: no `docker` program; no store container to clean");
            return true;
        }
    };
    note!(
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
            note!(
                "phasecheck: error: docker rm: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            note!("phasecheck: error: docker rm: {e}");
            false
        }
    }
}

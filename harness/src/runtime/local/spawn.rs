//! Starting a pod's processes: a container's main process, an `exec` in a running container,
//! and a pod's PID-namespace holder — each in a sandbox, or as a plain host process where the
//! runtime has no sandboxes.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Child;

use super::group::GroupGuard;
use super::launch::Launch;
use super::pod::Pod;
use super::process::{Owner, Spawned};
use super::sandbox::spec::{Ns, Process, Root, RootMount, Spec, Then};
use super::sandbox::{Control, Sandboxes};

/// What to start.
pub(super) enum What<'a> {
    /// Container `idx`'s main process.
    Main {
        /// The container's index.
        idx: usize,
        /// Its resolved command line and environment.
        launch: &'a Launch,
    },
    /// `argv` in running container `idx`, whose main process is host PID `target`.
    Exec {
        /// The container's index.
        idx: usize,
        /// The container's launch (environment, working directory, user).
        launch: &'a Launch,
        /// The command.
        argv: &'a [String],
        /// The container's main process.
        target: i32,
    },
    /// The holder of a pod's shared PID namespace.
    Pause,
}

/// A started process.
pub(super) struct Started {
    /// Kills what is left of the process group when dropped (declared before `child`, so it
    /// drops first, while the leader is not yet reaped).
    pub group: GroupGuard,
    /// The process group's leader (the launcher, or the process itself).
    pub child: Child,
    /// The host PID of the container's own process (inside the sandbox), for `/proc`.
    pub main_pid: i32,
    /// Keeps the sandbox alive; dropping it kills the sandbox.
    pub _control: Option<Control>,
}

/// How a start ended.
pub(super) enum Start {
    /// It runs.
    Started(Box<Started>),
    /// Not started: the runtime or pod is stopping (`allowed` said no).
    Refused,
    /// It could not start (Kubernetes' `StartError`), and why.
    Failed(String),
}

/// Starts `what` for `pod`, unless `allowed()` is false when it comes to it.
pub(super) async fn start(pod: &Pod, what: What<'_>, allowed: impl FnOnce() -> bool) -> Start {
    let node = &pod.node;
    let (container, main) = match &what {
        What::Main { idx, .. } => (*idx, true),
        What::Exec { idx, .. } => (*idx, false),
        What::Pause => (usize::MAX, false),
    };
    let owner = Owner {
        pod_uid: pod.uid.clone(),
        container,
        main,
    };
    let name = match &what {
        What::Pause => "pause".to_owned(),
        What::Main { idx, .. } => pod.containers[*idx].spec.name.clone(),
        What::Exec { idx, .. } => format!("{} (exec)", pod.containers[*idx].spec.name),
    };
    let label = format!("{}/{name}", pod.dir.display());
    let (mut cmd, control, spec) = match &node.sandboxes {
        Some(sandboxes) => {
            let spec = sandbox_spec(pod, sandboxes, &what);
            match sandboxes.command(&label) {
                Ok((cmd, control)) => (cmd, Some(control), Some(spec)),
                Err(e) => return Start::Failed(format!("cannot start the sandbox launcher: {e}")),
            }
        }
        None => match host_command(pod, &what) {
            Some(cmd) => (cmd, None, None),
            None => {
                return Start::Failed(
                    "no command: the image map gives no entrypoint and the spec no command".into(),
                );
            }
        },
    };
    let (mut child, pgid) = match node.procs.spawn(&mut cmd, owner, allowed) {
        Ok(Spawned::Started(child, pgid)) => (child, pgid),
        Ok(Spawned::Refused) => return Start::Refused,
        Err(e) => return Start::Failed(format!("cannot start {label}: {e}")),
    };
    drop(cmd);
    let mut group = GroupGuard::new(node.clone(), pgid);
    let (main_pid, control) = match (control, spec) {
        (Some(mut control), Some(spec)) => match control.start(&spec).await {
            Ok(pid) => (pid, Some(control)),
            Err(message) => {
                group.release();
                let _ = child.wait().await;
                return Start::Failed(message);
            }
        },
        _ => (pgid, None),
    };
    Start::Started(Box::new(Started {
        group,
        child,
        main_pid,
        _control: control,
    }))
}

/// The sandbox for `what`.
fn sandbox_spec(pod: &Pod, sandboxes: &Sandboxes, what: &What<'_>) -> Spec {
    let process = |launch: &Launch, argv: &[String]| {
        Then::Exec(Process {
            argv: argv.to_vec(),
            env: launch.env.clone(),
            cwd: launch.cwd.clone(),
            // NB: in a user namespace only root is mapped; the container runs as this user.
            user: if sandboxes.user_namespace {
                None
            } else {
                launch.security.ids.clone()
            },
            no_new_privs: launch.security.no_new_privs,
        })
    };
    match what {
        What::Main { idx, launch } => {
            let def = &pod.containers[*idx];
            let mut mounts: Vec<RootMount> = def
                .image
                .files
                .iter()
                .map(|f| RootMount {
                    target: f.path.clone(),
                    source: f.host.clone(),
                    read_only: true,
                })
                .collect();
            mounts.extend(pod.mounts(*idx).into_iter().map(|m| RootMount {
                target: m.mount_path,
                source: m.host_path,
                read_only: m.read_only,
            }));
            let (user, pid) = match pod.pause_pid() {
                Some(pause) => (sandboxes.join_user(pause), Ns::Join(pause)),
                None => (sandboxes.new_user(), Ns::New(())),
            };
            Spec {
                user,
                pid,
                mount: Ns::New(Root {
                    staging: pod.dir.join("root"),
                    mounts,
                    read_only: launch.security.read_only_root,
                }),
                uts: Ns::New(pod.name.clone()),
                then: process(launch, &launch.argv),
            }
        }
        What::Exec {
            launch,
            argv,
            target,
            ..
        } => Spec {
            user: sandboxes.join_user(*target),
            pid: Ns::Join(*target),
            mount: Ns::Join(*target),
            uts: Ns::Join(*target),
            then: process(launch, argv),
        },
        What::Pause => Spec {
            user: sandboxes.new_user(),
            pid: Ns::New(()),
            mount: Ns::Host,
            uts: Ns::Host,
            then: Then::Pause,
        },
    }
}

/// `what` as a plain host process (no sandboxes): `None` for an empty command line.
fn host_command(pod: &Pod, what: &What<'_>) -> Option<tokio::process::Command> {
    let (idx, launch, argv) = match what {
        What::Main { idx, launch } => (*idx, *launch, launch.argv.as_slice()),
        What::Exec {
            idx, launch, argv, ..
        } => (*idx, *launch, *argv),
        What::Pause => return None,
    };
    let (program, args) = argv.split_first()?;
    let image = &pod.containers[idx].image;
    let mut cmd = match image.host_file(program) {
        Some(host) => {
            let mut cmd = tokio::process::Command::new(host);
            cmd.arg0(program);
            cmd
        }
        None => tokio::process::Command::new(program),
    };
    cmd.args(args)
        .env_clear()
        .envs(&launch.env)
        .current_dir(PathBuf::from(&launch.cwd))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Some(cmd)
}

//! `phasecheck-tools`: the harness's own helper program, shipped as the tools image
//! (`phasecheck/tools:dev`, see `harness::image::TOOLS_IMAGE`) and run by the Kubernetes
//! runtime's helper pods. It is never the image under test: a bug in the subject must never sit
//! on both sides of a check.
//!
//! - On a **claim helper** pod (the data claim mounted at a directory): `pack` a claim's files
//!   into a tar archive, `replace` them from one, `count` files during a restore. The archive code
//!   is `phasecheck-archive`, the same crate the harness reads and writes archives with.
//! - On a **node helper** pod (`hostPID: true`, root with `KILL`, `SYS_PTRACE` and
//!   `DAC_READ_SEARCH`): find a container's processes by its runtime ID in `/proc/<pid>/cgroup`
//!   ([`container_pids`]), SIGKILL them, print the main process's environment, or pack what it
//!   sees at its mounts.
//! - `hold`: the helper's main process; waits for SIGTERM or SIGINT.

use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, chown};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use archive::{count_files, pack_dir, pack_trees, replace_dir};
use clap::Parser;

/// The harness's helper program.
#[derive(Debug, Parser)]
#[command(name = "phasecheck-tools", version, about)]
struct Cli {
    #[command(subcommand)]
    command: ToolCommand,
}

fn main() -> ExitCode {
    ExitCode::from(run(Cli::parse().command))
}
/// The helper subcommands.
#[derive(Debug, clap::Subcommand)]
enum ToolCommand {
    /// Wait for SIGTERM or SIGINT (a helper pod's main process).
    Hold,
    /// Write a tar archive of DIR's contents to standard output.
    Pack {
        /// The directory (a claim's mount point).
        dir: PathBuf,
    },
    /// Replace DIR's contents with the tar archive on standard input.
    Replace {
        /// The directory (a claim's mount point).
        dir: PathBuf,
        /// Owner of what is written, `UID:GID`.
        #[arg(long, value_name = "UID:GID")]
        owner: Option<String>,
        /// Read exactly this many bytes, not up to end of input (for callers that cannot
        /// close standard input without losing the exit status).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Print how many regular files DIR holds, counting no further than LIMIT.
    Count {
        /// The directory.
        dir: PathBuf,
        /// Where to stop counting.
        limit: usize,
    },
    /// SIGKILL every process of the container with this runtime ID (`containerd://…` or bare).
    KillContainer {
        /// The container ID from the pod's status.
        id: String,
    },
    /// Print the environment of the container's oldest process, NUL-separated.
    ContainerEnv {
        /// The container ID from the pod's status.
        id: String,
    },
    /// Write a tar archive of what the container's oldest process sees at each PATH (its
    /// volume mounts, read through `/proc/<pid>/root`), each under PATH without its leading `/`.
    ContainerMounts {
        /// The container ID from the pod's status.
        id: String,
        /// Paths inside the container.
        paths: Vec<PathBuf>,
    },
}

/// Runs a tool command; returns the process exit code.
fn run(command: ToolCommand) -> u8 {
    let result = match command {
        ToolCommand::Hold => hold(),
        ToolCommand::Pack { dir } => pack_dir(&dir, io::stdout().lock()).map(drop),
        ToolCommand::Replace { dir, owner, size } => {
            parse_owner(owner.as_deref()).and_then(|owner| {
                let stdin = io::stdin().lock();
                match size {
                    Some(size) => replace_dir(&dir, stdin.take(size)),
                    None => replace_dir(&dir, stdin),
                }
                .and_then(|()| match owner {
                    Some((uid, gid)) => chown_tree(&dir, uid, gid),
                    None => Ok(()),
                })
            })
        }
        ToolCommand::Count { dir, limit } => {
            println!("{}", count_files(&dir, limit));
            Ok(())
        }
        ToolCommand::KillContainer { id } => kill_container(Path::new("/proc"), &id),
        ToolCommand::ContainerEnv { id } => container_env(Path::new("/proc"), &id)
            .and_then(|env| io::stdout().lock().write_all(&env)),
        ToolCommand::ContainerMounts { id, paths } => {
            container_mounts(Path::new("/proc"), &id, &paths, io::stdout().lock()).map(drop)
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("phasecheck-tools: {e}");
            1
        }
    }
}

fn hold() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

fn parse_owner(owner: Option<&str>) -> io::Result<Option<(u32, u32)>> {
    let Some(owner) = owner else {
        return Ok(None);
    };
    let parsed = owner
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
    parsed.map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--owner `{owner}`: expected UID:GID, e.g. 65532:65532"),
        )
    })
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        chown(entry.path(), Some(uid), Some(gid))?;
        if entry.file_type()?.is_dir() {
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The bare ID of a status `containerID` (`containerd://abc…` → `abc…`).
fn bare_container_id(id: &str) -> &str {
    id.rsplit_once("://").map_or(id, |(_, bare)| bare)
}

/// The PIDs under `proc_root` whose cgroup names the container `id`, oldest (lowest start
/// time) first.
fn container_pids(proc_root: &Path, id: &str) -> io::Result<Vec<u32>> {
    let id = bare_container_id(id);
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{id}` is not a container ID (hex, at least 12 digits)"),
        ));
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // NB: processes come and go while we look; a vanished one is simply not a match.
        let Ok(cgroup) = std::fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        if cgroup.lines().any(|line| line.contains(id)) {
            let started = entry.metadata().map(|m| m.ctime()).unwrap_or(i64::MAX);
            found.push((started, pid));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, pid)| pid).collect())
}

fn no_process(id: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no process of container {id} on this node (is the helper on the pod's node, with hostPID?)"
        ),
    )
}

fn kill_container(proc_root: &Path, id: &str) -> io::Result<()> {
    let pids = container_pids(proc_root, id)?;
    if pids.is_empty() {
        return Err(no_process(id));
    }
    for pid in &pids {
        let pid = nix::unistd::Pid::from_raw(*pid as i32);
        match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    println!("killed {} process(es) of container {id}", pids.len());
    Ok(())
}

fn container_env(proc_root: &Path, id: &str) -> io::Result<Vec<u8>> {
    let pids = container_pids(proc_root, id)?;
    let pid = pids.first().ok_or_else(|| no_process(id))?;
    std::fs::read(proc_root.join(pid.to_string()).join("environ"))
}

/// A tar archive of `paths` as the container's oldest process sees them, each stored under its
/// path without the leading `/`; paths that do not exist there are left out.
fn container_mounts<W: Write>(
    proc_root: &Path,
    id: &str,
    paths: &[PathBuf],
    out: W,
) -> io::Result<W> {
    let pids = container_pids(proc_root, id)?;
    let pid = pids.first().ok_or_else(|| no_process(id))?;
    let root = proc_root.join(pid.to_string()).join("root");
    let trees: Vec<(String, PathBuf)> = paths
        .iter()
        .map(|path| {
            let name = path.strip_prefix("/").unwrap_or(path);
            (name.display().to_string(), root.join(name))
        })
        .collect();
    pack_trees(&trees, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_processes_are_found_by_the_id_in_their_cgroup() {
        let proc_root = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef0123";
        let write = |pid: &str, cgroup: &str| {
            let dir = proc_root.path().join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cgroup"), cgroup).unwrap();
            std::fs::write(dir.join("environ"), format!("PID={pid}\0")).unwrap();
        };
        write(
            "41",
            &format!("0::/kubelet.slice/kubepods.slice/cri-containerd-{id}.scope\n"),
        );
        write("42", "0::/system.slice/containerd.service\n");
        std::fs::create_dir_all(proc_root.path().join("self")).unwrap();
        let pids = container_pids(proc_root.path(), &format!("containerd://{id}")).unwrap();
        assert_eq!(pids, vec![41]);
        assert_eq!(
            container_env(proc_root.path(), id).unwrap(),
            b"PID=41\0".to_vec()
        );
        assert!(container_pids(proc_root.path(), "abc").is_err());
        let none = container_env(proc_root.path(), "fedcba9876543210").unwrap_err();
        assert!(none.to_string().contains("no process of container"));
    }

    #[test]
    fn a_container_s_mounts_are_packed_as_its_process_sees_them() {
        let proc_root = tempfile::tempdir().unwrap();
        let id = "fedcba98765432100123";
        let pid = proc_root.path().join("77");
        std::fs::create_dir_all(pid.join("root/data/current")).unwrap();
        std::fs::write(
            pid.join("cgroup"),
            format!("0::/kubepods/cri-containerd-{id}.scope\n"),
        )
        .unwrap();
        std::fs::write(pid.join("root/data/current/.cache"), b"leak").unwrap();
        std::fs::write(pid.join("root/elsewhere"), b"not mounted").unwrap();
        let archive = container_mounts(
            proc_root.path(),
            id,
            &[PathBuf::from("/data"), PathBuf::from("/missing")],
            Vec::new(),
        )
        .unwrap();
        let mut files = Vec::new();
        for entry in tar::Archive::new(&archive[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type().is_file() {
                let mut content = String::new();
                entry.read_to_string(&mut content).unwrap();
                files.push((entry.path().unwrap().display().to_string(), content));
            }
        }
        assert_eq!(
            files,
            [("data/current/.cache".to_owned(), "leak".to_owned())]
        );
    }

    #[test]
    fn owners_parse_as_uid_colon_gid() {
        assert_eq!(
            parse_owner(Some("65532:65532")).unwrap(),
            Some((65532, 65532))
        );
        assert_eq!(parse_owner(None).unwrap(), None);
        let bad = parse_owner(Some("nobody")).unwrap_err();
        assert!(bad.to_string().contains("UID:GID"));
    }
}

#[cfg(test)]
mod replace_tests {
    use super::*;

    #[test]
    fn replace_with_an_owner_hands_every_entry_to_that_owner() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("a/b")).unwrap();
        std::fs::write(from.path().join("a/b/f"), b"f").unwrap();
        let archive = pack_dir(from.path(), Vec::new()).unwrap();
        let to = tempfile::tempdir().unwrap();
        replace_dir(to.path(), &archive[..]).unwrap();
        // NB: chown to our own ids works unprivileged, so this runs anywhere.
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        chown_tree(to.path(), uid, gid).unwrap();
        let meta = std::fs::metadata(to.path().join("a/b/f")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        assert_eq!(count_files(to.path(), 10), 1);
    }
}

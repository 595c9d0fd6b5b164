//! Building a sandbox's root file system from its [plan](super::plan), inside the launcher's
//! second stage (in the new mount namespace), then making it `/`.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{chdir, pivot_root};

use super::plan::{self, Node, Placement};
use super::spec::Root;

/// Device nodes every sandbox's `/dev` has (bound from the host's).
const DEVICES: &[&str] = &["full", "null", "random", "tty", "urandom", "zero"];

/// Parts of `/proc` that stay read-only, as container runtimes keep them.
const PROC_READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// Builds `root` and makes it the process's `/`. The caller has unshared the mount namespace.
pub(super) fn build(root: &Root) -> Result<(), String> {
    mount_at(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    let placements: Vec<Placement> = root
        .mounts
        .iter()
        .map(|m| Placement {
            target: m.target.clone(),
            source: m.source.clone(),
            read_only: m.read_only,
        })
        .collect();
    let tree = plan::plan(
        &plan::host_system_dirs(),
        &placements,
        root.read_only,
        &plan::list_host_dir,
    )?;
    let staging = &root.staging;
    let Node::Tmpfs { mode, children, .. } = &tree else {
        unreachable!("the plan's root is a tmpfs");
    };
    tmpfs(staging, *mode)?;
    for (name, node) in children {
        create(&staging.join(name), node)?;
    }
    chdir(staging).map_err(|e| format!("chdir {}: {e}", staging.display()))?;
    pivot_root(".", ".").map_err(|e| format!("pivot_root into {}: {e}", staging.display()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the old root: {e}"))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    seal(&tree)
}

/// Creates `node` at host path `path` (under the staging directory), then what is inside.
fn create(path: &Path, node: &Node) -> Result<(), String> {
    let io = |what: &str, e: io::Error| format!("{what} {}: {e}", path.display());
    match node {
        Node::Tmpfs { mode, children, .. } => {
            mkdir(path, 0o755)?;
            tmpfs(path, *mode)?;
            create_children(path, children)
        }
        Node::Dir { mode, children } => {
            mkdir(path, *mode)?;
            create_children(path, children)
        }
        Node::Bind {
            source, children, ..
        } => {
            let meta =
                fs::metadata(source).map_err(|e| format!("reading {}: {e}", source.display()))?;
            if meta.is_dir() {
                mkdir(path, 0o755)?;
            } else if fs::symlink_metadata(path).is_err() {
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|e| io("creating the mount point", e))?;
            }
            mount_at(
                Some(source),
                path,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            create_children(path, children)
        }
        Node::Symlink(target) => symlink(target, path).map_err(|e| io("creating the link", e)),
        Node::Proc => {
            mkdir(path, 0o555)?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount_at(Some(Path::new("proc")), path, Some("proc"), flags, None)?;
            for name in PROC_READ_ONLY {
                let p = path.join(name);
                if p.exists() {
                    mount_at(Some(&p), &p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
                    remount_read_only(&p)?;
                }
            }
            Ok(())
        }
        Node::Dev { children } => {
            create_dev(path)?;
            create_children(path, children)
        }
    }
}

fn create_children(
    path: &Path,
    children: &std::collections::BTreeMap<OsString, Node>,
) -> Result<(), String> {
    for (name, node) in children {
        create(&path.join(name), node)?;
    }
    Ok(())
}

/// A minimal `/dev`: a tmpfs with the host's harmless device nodes bound in, the usual links,
/// `shm` and a private `pts`.
fn create_dev(path: &Path) -> Result<(), String> {
    mkdir(path, 0o755)?;
    mount_at(
        Some(Path::new("tmpfs")),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let node = path.join(name);
        fs::File::create(&node).map_err(|e| format!("creating {}: {e}", node.display()))?;
        mount_at(Some(&host), &node, None, MsFlags::MS_BIND, None)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let link = path.join(name);
        symlink(target, &link).map_err(|e| format!("creating {}: {e}", link.display()))?;
    }
    let shm = path.join("shm");
    mkdir(&shm, 0o1777)?;
    mount_at(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    let pts = path.join("pts");
    mkdir(&pts, 0o755)?;
    // NB: a terminal is a nicety; a kernel that refuses a private devpts still runs containers.
    let _ = mount_at(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    );
    Ok(())
}

/// Remounts read-only every mount the plan wants read-only. Runs once the root is `/`, so the
/// mount points in `/proc/self/mountinfo` are the container's paths.
fn seal(tree: &Node) -> Result<(), String> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    for point in mount_points(&info) {
        if point.starts_with("/proc") {
            continue;
        }
        let relative = point.strip_prefix("/").unwrap_or(&point);
        if tree.read_only_at(relative) {
            remount_read_only(&point)?;
        }
    }
    Ok(())
}

/// The mount points listed in a `mountinfo` text (field 5, octal escapes decoded).
pub(super) fn mount_points(info: &str) -> Vec<PathBuf> {
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

/// Decodes the `\ooo` escapes of `mountinfo` (space, tab, newline, backslash).
fn unescape(field: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt as _;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..=i + 3]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let n = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

/// Makes the mount at `path` read-only, keeping the flags a user namespace may not drop.
fn remount_read_only(path: &Path) -> Result<(), String> {
    let current = statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    let flags = current.flags();
    if flags.contains(FsFlags::ST_RDONLY) {
        return Ok(());
    }
    let mut ms = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    for (st, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(st) {
            ms |= m;
        }
    }
    mount_at(None, path, None, ms, None).map_err(|e| format!("making read-only: {e}"))
}

/// A fresh tmpfs on `path`.
fn tmpfs(path: &Path, mode: u32) -> Result<(), String> {
    let options = format!("mode={mode:o}");
    mount_at(
        Some(Path::new("tmpfs")),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(&options),
    )
}

/// Creates directory `path` (and parents) if missing, with `mode` (umask aside).
fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} exists and is not a directory", path.display())),
        Err(_) => {
            fs::create_dir_all(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", path.display()))
        }
    }
}

fn mount_at(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(source, target, fstype, flags, data).map_err(|e| {
        let what = fstype.unwrap_or("bind");
        match source {
            Some(s) if fstype.is_none() => {
                format!(
                    "mount {} on {} ({what}): {e}",
                    s.display(),
                    target.display()
                )
            }
            _ => format!("mount {what} on {}: {e}", target.display()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_mount_points_are_decoded() {
        let info = "22 1 0:21 / / rw,relatime - tmpfs tmpfs rw\n\
                    23 22 8:1 /h/with\\040space /data\\040dir ro - ext4 /dev/sda rw\n";
        assert_eq!(
            mount_points(info),
            [PathBuf::from("/"), PathBuf::from("/data dir")]
        );
    }
}

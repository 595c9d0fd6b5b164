//! What a sandbox's root file system looks like, as a tree, before any mount is made.
//!
//! The root is a fresh tmpfs. The host's system directories (`/usr`, `/etc`, and `/bin`,
//! `/lib*`, `/sbin` as links or directories, whichever the host has) are bound into it
//! read-only; `/dev` and `/proc` are the sandbox's own; then every mount of the pod spec (and
//! every file an image mapping shows) is placed at its path, parents first.
//!
//! A mount point must exist before anything can be mounted on it, and creating one inside a
//! host directory bound read-only (`/etc/creds` inside the host's `/etc`) would change the host.
//! So such a host directory is *split open*: it becomes a tmpfs holding one bind per entry of
//! the host directory, and the new mount point is created in that tmpfs. Only the directories on
//! the way to a mount point are split; the rest stay single binds.
//!
//! A mount point inside a volume (`/data/sub` under `/data`) is created in the volume itself, as
//! a container runtime does.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The host's system directories shown in every sandbox, read-only.
pub(super) const SYSTEM_DIRS: &[&str] = &[
    "bin", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr",
];

/// One entry of a host directory, as the plan needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HostEntry {
    /// A directory.
    Dir,
    /// A symbolic link and its target.
    Symlink(PathBuf),
    /// Anything else that can be bound (a regular file, a socket, …).
    File,
}

/// Reads a host directory: its entries' names and kinds.
pub(super) type Lister = dyn Fn(&Path) -> std::io::Result<Vec<(OsString, HostEntry)>>;

/// A node of the root's tree. Paths are the children's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Node {
    /// A tmpfs of its own: the root, or a host directory split open.
    Tmpfs {
        /// Its mode.
        mode: u32,
        /// Whether it ends read-only.
        read_only: bool,
        /// What is in it.
        children: BTreeMap<OsString, Node>,
    },
    /// A directory created on the parent's file system (a mount point, or on the way to one).
    Dir {
        /// Its mode (when created).
        mode: u32,
        /// What is in it.
        children: BTreeMap<OsString, Node>,
    },
    /// A host file or directory bound here.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Whether it ends read-only.
        read_only: bool,
        /// A host system directory: split open when a mount point is needed inside. A volume is
        /// not: its mount points are created in it.
        system: bool,
        /// Mount points inside it.
        children: BTreeMap<OsString, Node>,
    },
    /// A symbolic link.
    Symlink(PathBuf),
    /// The sandbox's `/proc`.
    Proc,
    /// The sandbox's `/dev` (a tmpfs with the usual device nodes, `shm` and `pts`).
    Dev {
        /// Mount points inside it (`/dev/shm` volumes).
        children: BTreeMap<OsString, Node>,
    },
}

/// A volume mount or image file as the plan takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Placement {
    /// Where the container sees it (absolute).
    pub target: String,
    /// The host file or directory.
    pub source: PathBuf,
    /// `readOnly`.
    pub read_only: bool,
}

impl Node {
    fn children_mut(&mut self) -> Option<&mut BTreeMap<OsString, Node>> {
        match self {
            Node::Tmpfs { children, .. }
            | Node::Dir { children, .. }
            | Node::Bind { children, .. }
            | Node::Dev { children } => Some(children),
            Node::Symlink(_) | Node::Proc => None,
        }
    }

    /// The node at `path` (relative components), if the tree has one.
    #[cfg(test)]
    pub(super) fn get(&self, path: &Path) -> Option<&Node> {
        let mut node = self;
        for c in path.components() {
            let Component::Normal(name) = c else {
                continue;
            };
            node = match node {
                Node::Tmpfs { children, .. }
                | Node::Dir { children, .. }
                | Node::Bind { children, .. }
                | Node::Dev { children } => children.get(name)?,
                Node::Symlink(_) | Node::Proc => return None,
            };
        }
        Some(node)
    }

    /// Whether what is mounted at `path` (relative to the root) ends read-only: the read-only
    /// flag of the deepest tmpfs or bind on the way (directories belong to their parent).
    pub(super) fn read_only_at(&self, path: &Path) -> bool {
        let mut node = self;
        let mut read_only = self.own_read_only().unwrap_or(false);
        for c in path.components() {
            let Component::Normal(name) = c else {
                continue;
            };
            let Some(next) = (match node {
                Node::Tmpfs { children, .. }
                | Node::Dir { children, .. }
                | Node::Bind { children, .. }
                | Node::Dev { children } => children.get(name),
                Node::Symlink(_) | Node::Proc => None,
            }) else {
                break;
            };
            node = next;
            if let Some(ro) = node.own_read_only() {
                read_only = ro;
            }
        }
        read_only
    }

    /// The read-only flag of a node that is a mount of its own.
    fn own_read_only(&self) -> Option<bool> {
        match self {
            Node::Tmpfs { read_only, .. } | Node::Bind { read_only, .. } => Some(*read_only),
            Node::Dev { .. } | Node::Proc => Some(false),
            Node::Dir { .. } | Node::Symlink(_) => None,
        }
    }
}

/// The container path `target` as components, refusing `..` and anything not absolute.
fn components(target: &str) -> Result<Vec<OsString>, String> {
    let path = Path::new(target);
    if !path.is_absolute() {
        return Err(format!("mount path `{target}` is not absolute"));
    }
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name.to_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("mount path `{target}` must not contain `..`"));
            }
        }
    }
    if out.is_empty() {
        return Err("nothing can be mounted at `/`".into());
    }
    Ok(out)
}

/// Plans the root: system directories from `system` (name → what the host has there), `/dev`,
/// `/proc`, a writable `/tmp` unless `read_only`, then `placements` in order of depth.
/// `list` reads a host directory when one must be split open.
pub(super) fn plan(
    system: &[(OsString, HostEntry)],
    placements: &[Placement],
    read_only: bool,
    list: &Lister,
) -> Result<Node, String> {
    let mut children = BTreeMap::new();
    for (name, entry) in system {
        let source = Path::new("/").join(name);
        let node = match entry {
            HostEntry::Symlink(target) => Node::Symlink(target.clone()),
            HostEntry::Dir => Node::Bind {
                source,
                read_only: true,
                system: true,
                children: BTreeMap::new(),
            },
            HostEntry::File => continue,
        };
        children.insert(name.clone(), node);
    }
    children.insert(
        "dev".into(),
        Node::Dev {
            children: BTreeMap::new(),
        },
    );
    children.insert("proc".into(), Node::Proc);
    if !read_only {
        children.insert(
            "tmp".into(),
            Node::Dir {
                mode: 0o1777,
                children: BTreeMap::new(),
            },
        );
    }
    let mut root = Node::Tmpfs {
        mode: 0o755,
        read_only,
        children,
    };
    let mut ordered: Vec<&Placement> = placements.iter().collect();
    // NB: a stable sort: of two mounts at one path, the later one wins, as in Kubernetes.
    ordered.sort_by_key(|p| Path::new(&p.target).components().count());
    for p in ordered {
        let names = components(&p.target)?;
        let leaf = Node::Bind {
            source: p.source.clone(),
            read_only: p.read_only,
            system: false,
            children: BTreeMap::new(),
        };
        place(&mut root, &names, leaf, &p.target, list)?;
    }
    Ok(root)
}

fn place(
    node: &mut Node,
    names: &[OsString],
    leaf: Node,
    target: &str,
    list: &Lister,
) -> Result<(), String> {
    let Some((first, rest)) = names.split_first() else {
        return Err(format!("nothing can be mounted at `{target}`"));
    };
    if let Node::Bind {
        source,
        system: true,
        read_only,
        ..
    } = node
    {
        *node = split_open(source, *read_only, list)?;
    }
    let children = match node {
        Node::Proc => return Err(format!("`{target}`: nothing can be mounted under /proc")),
        Node::Symlink(link) => {
            return Err(format!(
                "`{target}` goes through a symbolic link (to {}); mount at the link's target",
                link.display()
            ));
        }
        _ => node.children_mut().expect("a node with children"),
    };
    if rest.is_empty() {
        children.insert(first.clone(), leaf);
        return Ok(());
    }
    let child = children.entry(first.clone()).or_insert_with(|| Node::Dir {
        mode: 0o755,
        children: BTreeMap::new(),
    });
    place(child, rest, leaf, target, list)
}

/// A host system directory as a tmpfs with a bind (or link) per entry.
fn split_open(source: &Path, read_only: bool, list: &Lister) -> Result<Node, String> {
    let entries = list(source).map_err(|e| format!("cannot list {}: {e}", source.display()))?;
    let mut children = BTreeMap::new();
    for (name, entry) in entries {
        let node = match entry {
            HostEntry::Symlink(target) => Node::Symlink(target),
            HostEntry::Dir | HostEntry::File => Node::Bind {
                source: source.join(&name),
                read_only,
                system: entry == HostEntry::Dir,
                children: BTreeMap::new(),
            },
        };
        children.insert(name, node);
    }
    Ok(Node::Tmpfs {
        mode: 0o755,
        read_only,
        children,
    })
}

/// What the host has at `/<name>` for each system directory (missing ones left out).
pub(super) fn host_system_dirs() -> Vec<(OsString, HostEntry)> {
    SYSTEM_DIRS
        .iter()
        .filter_map(|name| {
            let path = Path::new("/").join(name);
            host_entry(&path).map(|e| (OsString::from(name), e))
        })
        .collect()
}

/// What `path` is on the host, `None` if it does not exist.
fn host_entry(path: &Path) -> Option<HostEntry> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(if meta.file_type().is_symlink() {
        HostEntry::Symlink(std::fs::read_link(path).ok()?)
    } else if meta.is_dir() {
        HostEntry::Dir
    } else {
        HostEntry::File
    })
}

/// The entries of host directory `dir`.
pub(super) fn list_host_dir(dir: &Path) -> std::io::Result<Vec<(OsString, HostEntry)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(kind) = host_entry(&entry.path()) {
            out.push((name, kind));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn system() -> Vec<(OsString, HostEntry)> {
        vec![
            ("bin".into(), HostEntry::Symlink("usr/bin".into())),
            ("etc".into(), HostEntry::Dir),
            ("usr".into(), HostEntry::Dir),
        ]
    }

    fn listing(dir: &Path) -> std::io::Result<Vec<(OsString, HostEntry)>> {
        match dir.to_str() {
            Some("/etc") => Ok(vec![
                ("passwd".into(), HostEntry::File),
                ("ssl".into(), HostEntry::Dir),
                (
                    "mtab".into(),
                    HostEntry::Symlink("../proc/self/mounts".into()),
                ),
            ]),
            _ => Err(std::io::Error::other(format!(
                "unexpected listing of {dir:?}"
            ))),
        }
    }

    fn placement(target: &str, source: &str, read_only: bool) -> Placement {
        Placement {
            target: target.into(),
            source: source.into(),
            read_only,
        }
    }

    #[test]
    fn a_mount_under_etc_splits_etc_open_and_leaves_usr_whole() {
        let root = plan(
            &system(),
            &[placement("/etc/creds", "/h/creds", true)],
            false,
            &listing,
        )
        .unwrap();
        let Some(Node::Tmpfs {
            read_only: true,
            children,
            ..
        }) = root.get(Path::new("etc"))
        else {
            panic!("etc is not split open: {root:?}");
        };
        let names: Vec<&OsString> = children.keys().collect();
        assert_eq!(names, ["creds", "mtab", "passwd", "ssl"]);
        assert!(matches!(
            root.get(Path::new("etc/ssl")),
            Some(Node::Bind {
                system: true,
                read_only: true,
                ..
            })
        ));
        assert!(matches!(
            root.get(Path::new("etc/creds")),
            Some(Node::Bind {
                system: false,
                read_only: true,
                ..
            })
        ));
        assert!(matches!(
            root.get(Path::new("usr")),
            Some(Node::Bind { .. })
        ));
        assert!(matches!(root.get(Path::new("bin")), Some(Node::Symlink(_))));
        assert!(matches!(
            root.get(Path::new("tmp")),
            Some(Node::Dir { mode: 0o1777, .. })
        ));
    }

    #[test]
    fn nested_mounts_go_inside_their_volume_and_read_only_follows_the_deepest_mount() {
        let root = plan(
            &system(),
            &[
                placement("/data/sub", "/h/sub", false),
                placement("/data", "/h/data", true),
                placement("/deep/er/x", "/h/x", false),
            ],
            true,
            &listing,
        )
        .unwrap();
        let Some(Node::Bind { children, .. }) = root.get(Path::new("data")) else {
            panic!("{root:?}");
        };
        assert!(children.contains_key(OsStr::new("sub")));
        assert!(root.read_only_at(Path::new("data")));
        assert!(!root.read_only_at(Path::new("data/sub")));
        assert!(root.read_only_at(Path::new("")), "readOnlyRootFilesystem");
        assert!(
            root.read_only_at(Path::new("deep/er")),
            "a directory of the root"
        );
        assert!(!root.read_only_at(Path::new("deep/er/x")));
        assert!(!root.read_only_at(Path::new("dev")));
        assert!(
            root.get(Path::new("tmp")).is_none(),
            "no /tmp on a read-only root"
        );
    }

    #[test]
    fn paths_through_links_proc_or_parents_are_refused() {
        for (target, needle) in [
            ("/bin/tool", "symbolic link"),
            ("/proc/x", "/proc"),
            ("/a/../b", "`..`"),
            ("relative", "absolute"),
        ] {
            let err = plan(
                &system(),
                &[placement(target, "/h", false)],
                false,
                &listing,
            )
            .unwrap_err();
            assert!(err.contains(needle), "{target}: {err}");
        }
    }
}

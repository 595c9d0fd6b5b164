//! The harness's git client: a scratch bare repository per operation, fetching one branch of a
//! remote over smart HTTP and pushing commits built there without any working tree.
//!
//! libgit2 is blocking: [`session`] runs the whole operation on the blocking pool under an
//! overall time limit. A scratch repository an operation leaves whole is kept with its
//! [`GitLocation`] for the next operation on it, so a fetch transfers only the objects the remote
//! gained since (a case lists its store many times; a full clone of backups with 8 MiB files
//! each time cost the server's `pack-objects` and this client's indexing seconds of CPU).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use git2::build::TreeUpdateBuilder;
use git2::{
    AutotagOption, Commit, Cred, CredentialType, FetchOptions, FileMode, ObjectType, Oid,
    PushOptions, RemoteCallbacks, Repository, Signature, Time,
};

use super::GitLocation;

/// Limit on one whole operation (fetch, build, push).
const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// Fetch attempts before a failure is reported (see [`Session::fetch_tip`]).
const FETCH_ATTEMPTS: u32 = 3;
/// Where fetches put the remote branch's tip in the scratch repository.
const TIP_REF: &str = "refs/phasecheck/tip";
/// The tip an earlier fetch got, kept during the next fetch so the remote sends only newer
/// objects.
const HAD_REF: &str = "refs/phasecheck/had";
/// At most this many idle scratch repositories are kept per location.
const IDLE_SCRATCHES: usize = 4;
/// The local ref pushes are made from.
const PUSH_REF: &str = "refs/phasecheck/push";
/// Who the harness's commits are by.
const AUTHOR: (&str, &str) = ("phasecheck", "phasecheck@localhost");

/// Errors of the git client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A libgit2 operation failed (on the remote or in the scratch repository).
    #[error("git: {op}: {}", .source.message())]
    Git {
        /// What was being done.
        op: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// The remote refused to update the branch.
    #[error("git: push to {url} rejected: {message}")]
    Rejected {
        /// The remote.
        url: String,
        /// What the remote said.
        message: String,
    },
    /// The operation did not finish in time.
    #[error("git: {op} ({url}): no result within {OP_TIMEOUT:?}")]
    Timeout {
        /// What was being done.
        op: String,
        /// The remote.
        url: String,
    },
    /// The scratch repository could not be created.
    #[error("git: scratch repository: {0}")]
    Scratch(#[source] std::io::Error),
    /// The blocking task panicked or was cancelled.
    #[error("git: internal task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An [`Error::Git`] for `op`.
pub fn git_err(op: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
    let op = op.into();
    move |source| Error::Git { op, source }
}

/// One file of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// Its path from the tree's root, `/`-separated.
    pub path: String,
    /// The object it names.
    pub oid: Oid,
    /// Its git file mode (`0o100644`, `0o100755`, `0o120000` for a symlink, `0o160000` for a
    /// submodule).
    pub mode: i32,
}

impl TreeFile {
    /// Whether it is a regular file (executable or not).
    pub fn is_regular(&self) -> bool {
        self.mode == i32::from(FileMode::Blob) || self.mode == i32::from(FileMode::BlobExecutable)
    }
}

/// One operation's scratch repository and remote.
pub struct Session {
    repo: Repository,
    location: GitLocation,
    deadline: Instant,
}

/// Runs `f` with a fresh scratch repository for `location` on the blocking pool, under an
/// overall time limit; `op` names the operation in errors.
pub async fn session<T, E, F>(location: &GitLocation, op: &str, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
    F: FnOnce(&Session) -> Result<T, E> + Send + 'static,
{
    let location = location.clone();
    let url = location.url.clone();
    let task = tokio::task::spawn_blocking(move || {
        let scratches = location.scratch.clone();
        let (scratch, repo) = match scratches.take() {
            Some(reused) => reused,
            None => {
                let scratch = tempfile::Builder::new()
                    .prefix("phasecheck-git-")
                    .tempdir()
                    .map_err(Error::Scratch)?;
                let repo = Repository::init_bare(scratch.path())
                    .map_err(git_err("init a scratch repository"))?;
                (scratch, repo)
            }
        };
        let session = Session {
            repo,
            location,
            deadline: Instant::now() + OP_TIMEOUT,
        };
        let result = f(&session);
        drop(session);
        // NB: a failed operation may have left anything behind; its scratch goes.
        if result.is_ok() {
            scratches.put(scratch);
        }
        result
    });
    match tokio::time::timeout(OP_TIMEOUT + Duration::from_secs(5), task).await {
        Ok(joined) => joined.map_err(|e| E::from(Error::Task(e)))?,
        Err(_) => Err(E::from(Error::Timeout {
            op: op.to_owned(),
            url,
        })),
    }
}

impl Session {
    /// The scratch repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The remote and branch.
    pub fn location(&self) -> &GitLocation {
        &self.location
    }

    /// Callbacks for one network operation: basic auth offered once (a rejected password fails
    /// instead of looping), progress aborted past the deadline, push rejections recorded.
    fn callbacks<'a>(
        &'a self,
        rejected: Option<&'a RefCell<Option<String>>>,
    ) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let mut asked = false;
        callbacks.credentials(move |url, _, allowed| {
            if asked {
                return Err(git2::Error::from_str(&format!(
                    "authentication to {url} failed (wrong user name or password)"
                )));
            }
            asked = true;
            match &self.location.username {
                Some(user) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                    Cred::userpass_plaintext(user, self.location.password.as_deref().unwrap_or(""))
                }
                _ => Err(git2::Error::from_str(&format!(
                    "{url} asks for credentials, and none were given"
                ))),
            }
        });
        let deadline = self.deadline;
        callbacks.transfer_progress(move |_| Instant::now() < deadline);
        callbacks.sideband_progress(move |_| Instant::now() < deadline);
        if let Some(rejected) = rejected {
            callbacks.push_update_reference(move |refname, status| {
                if let Some(message) = status {
                    *rejected.borrow_mut() = Some(format!("{refname}: {message}"));
                }
                Ok(())
            });
        }
        callbacks
    }

    /// Fetches the branch; its tip, or `None` when the remote has no such branch.
    pub fn fetch_tip(&self) -> Result<Option<Oid>> {
        if let Ok(mut stale) = self.repo.find_reference(TIP_REF) {
            if let Some(had) = stale.target() {
                self.repo
                    .reference(HAD_REF, had, true, "phasecheck: the tip fetched before")
                    .map_err(git_err("keep the fetched tip"))?;
            }
            stale.delete().map_err(git_err("reset the fetched tip"))?;
        }
        let url = &self.location.url;
        let refspec = format!("+refs/heads/{}:{TIP_REF}", self.location.branch);
        // NB: smart HTTP is stateless: when another client rewrites the branch between the ref
        // advertisement and the fetch request, the server answers "not our ref". A fresh
        // connection sees the new tip.
        let mut attempt = 1;
        loop {
            let mut remote = self
                .repo
                .remote_anonymous(url)
                .map_err(git_err(format!("fetch from {url}")))?;
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(self.callbacks(None))
                .download_tags(AutotagOption::None)
                .update_fetchhead(false);
            match remote.fetch(&[refspec.as_str()], Some(&mut options), None) {
                Ok(()) => break,
                Err(e) if attempt < FETCH_ATTEMPTS && Instant::now() < self.deadline => {
                    tracing::debug!(
                        "fetch from {url} failed ({e}); attempt {attempt} of {FETCH_ATTEMPTS}"
                    );
                    attempt += 1;
                }
                Err(e) => return Err(git_err(format!("fetch from {url}"))(e)),
            }
        }
        Ok(self
            .repo
            .find_reference(TIP_REF)
            .ok()
            .and_then(|r| r.target()))
    }

    /// Makes the remote branch point at `commit` (force: even if that is not a fast-forward), or
    /// deletes it for `None`.
    pub fn push(&self, commit: Option<Oid>, force: bool) -> Result<()> {
        let url = &self.location.url;
        let branch = &self.location.branch;
        let refspec = match commit {
            Some(oid) => {
                self.repo
                    .reference(PUSH_REF, oid, true, "phasecheck push")
                    .map_err(git_err("set the push ref"))?;
                format!(
                    "{}{PUSH_REF}:refs/heads/{branch}",
                    if force { "+" } else { "" }
                )
            }
            None => format!(":refs/heads/{branch}"),
        };
        let rejected = RefCell::new(None);
        let mut remote = self
            .repo
            .remote_anonymous(url)
            .map_err(git_err(format!("push to {url}")))?;
        let mut options = PushOptions::new();
        options.remote_callbacks(self.callbacks(Some(&rejected)));
        remote
            .push(&[refspec.as_str()], Some(&mut options))
            .map_err(git_err(format!("push to {url}")))?;
        drop(options);
        match rejected.into_inner() {
            Some(message) => Err(Error::Rejected {
                url: url.clone(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// The commits along first parents from `tip`, newest first.
    pub fn first_parents(&self, tip: Option<Oid>) -> Result<Vec<Oid>> {
        let mut chain = Vec::new();
        let mut next = tip;
        while let Some(oid) = next {
            let commit = self
                .repo
                .find_commit(oid)
                .map_err(git_err("walk the branch"))?;
            chain.push(oid);
            next = commit.parent_id(0).ok();
        }
        Ok(chain)
    }

    /// A commit of the scratch repository.
    pub fn commit(&self, oid: Oid) -> Result<Commit<'_>> {
        self.repo
            .find_commit(oid)
            .map_err(git_err(format!("read commit {oid}")))
    }

    /// A tree of exactly `files` (path → content), directories created as needed.
    pub fn tree_of<'a>(&self, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<Oid> {
        let mut update = TreeUpdateBuilder::new();
        for (path, content) in files {
            let blob = self.repo.blob(content).map_err(git_err("store a file"))?;
            update.upsert(path, blob, FileMode::Blob);
        }
        let empty = self
            .repo
            .treebuilder(None)
            .and_then(|b| b.write())
            .and_then(|oid| self.repo.find_tree(oid))
            .map_err(git_err("write the empty tree"))?;
        update
            .create_updated(&self.repo, &empty)
            .map_err(git_err("build a tree"))
    }

    /// `tree` with `path` pointing at a blob of `content` instead.
    pub fn tree_with(&self, tree: Oid, path: &str, content: &[u8]) -> Result<Oid> {
        let tree = self.repo.find_tree(tree).map_err(git_err("read a tree"))?;
        let blob = self.repo.blob(content).map_err(git_err("store a file"))?;
        let mut update = TreeUpdateBuilder::new();
        update.upsert(path, blob, FileMode::Blob);
        update
            .create_updated(&self.repo, &tree)
            .map_err(git_err("build a tree"))
    }

    /// Commits `tree` on `parent` with `message`, authored and committed by the harness at
    /// `time`.
    pub fn commit_tree(
        &self,
        tree: Oid,
        parent: Option<Oid>,
        message: &str,
        time: DateTime<Utc>,
    ) -> Result<Oid> {
        let signature = Signature::new(AUTHOR.0, AUTHOR.1, &Time::new(time.timestamp(), 0))
            .map_err(git_err("make a signature"))?;
        let tree = self.repo.find_tree(tree).map_err(git_err("read a tree"))?;
        let parent = parent.map(|p| self.commit(p)).transpose()?;
        let parents: Vec<&Commit<'_>> = parent.iter().collect();
        self.repo
            .commit(None, &signature, &signature, message, &tree, &parents)
            .map_err(git_err("commit"))
    }

    /// Rewrites `chain[..=upto]` (a first-parent chain, newest first) oldest first onto
    /// `chain[upto]`'s first parent: `tree_for` gives each commit's new tree, or `None` to drop
    /// it. Messages, authors, committers and other parents are kept. Returns the new tip
    /// (`None` when nothing is left).
    pub fn rewrite<E: From<Error>>(
        &self,
        chain: &[Oid],
        upto: usize,
        mut tree_for: impl FnMut(&Commit<'_>) -> Result<Option<Oid>, E>,
    ) -> Result<Option<Oid>, E> {
        let mut parent = self.commit(chain[upto])?.parent_id(0).ok();
        for oid in chain[..=upto].iter().rev() {
            let old = self.commit(*oid)?;
            let Some(tree) = tree_for(&old)? else {
                continue;
            };
            let tree = self.repo.find_tree(tree).map_err(git_err("read a tree"))?;
            let mut parents = Vec::new();
            if let Some(p) = parent {
                parents.push(self.commit(p)?);
            }
            for other in old.parent_ids().skip(1) {
                parents.push(self.commit(other)?);
            }
            let parents: Vec<&Commit<'_>> = parents.iter().collect();
            parent = Some(
                self.repo
                    .commit(
                        None,
                        &old.author(),
                        &old.committer(),
                        old.message().unwrap_or_default(),
                        &tree,
                        &parents,
                    )
                    .map_err(git_err("rewrite a commit"))?,
            );
        }
        Ok(parent)
    }

    /// Every non-tree entry under `tree`, in path order.
    pub fn tree_files(&self, tree: Oid) -> Result<Vec<TreeFile>> {
        let tree = self.repo.find_tree(tree).map_err(git_err("read a tree"))?;
        let mut files = Vec::new();
        let mut failed = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
            if entry.kind() == Some(ObjectType::Tree) {
                return git2::TreeWalkResult::Ok;
            }
            match entry.name() {
                Ok(name) => files.push(TreeFile {
                    path: format!("{root}{name}"),
                    oid: entry.id(),
                    mode: entry.filemode(),
                }),
                Err(_) => {
                    failed = Some(format!("{root}: an entry whose name is not UTF-8"));
                    return git2::TreeWalkResult::Abort;
                }
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(git_err("walk a tree"))?;
        if let Some(problem) = failed {
            return Err(git_err("walk a tree")(git2::Error::from_str(&problem)));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The content of blob `oid`; `Err` says why it cannot be read (a missing object is what a
    /// corrupt object on the server looks like after a fetch: it arrives under another name).
    pub fn blob(&self, oid: Oid) -> Result<Vec<u8>, String> {
        self.repo
            .find_blob(oid)
            .map(|b| b.content().to_vec())
            .map_err(|e| format!("object {oid} is missing or corrupt ({})", e.message()))
    }

    /// Every regular file under `tree` with its content: `Err` names the first path that is
    /// not a readable regular file.
    pub fn read_files(&self, tree: Oid) -> Result<Result<BTreeMap<String, Vec<u8>>, String>> {
        let mut out = BTreeMap::new();
        for file in self.tree_files(tree)? {
            if !file.is_regular() {
                return Ok(Err(format!(
                    "{}: not a regular file (git mode {:o})",
                    file.path, file.mode
                )));
            }
            match self.blob(file.oid) {
                Ok(content) => {
                    out.insert(file.path, content);
                }
                Err(problem) => return Ok(Err(format!("{}: {problem}", file.path))),
            }
        }
        Ok(Ok(out))
    }
}

/// Idle scratch repositories of one [`GitLocation`] (shared by its clones; each removed from
/// disk when dropped). Equal to any other: a cache, not part of the location's identity.
#[derive(Clone, Default)]
pub(super) struct Scratches(Arc<Mutex<Vec<tempfile::TempDir>>>);

impl Scratches {
    /// An idle scratch repository, if one is left and still opens.
    fn take(&self) -> Option<(tempfile::TempDir, Repository)> {
        loop {
            let scratch = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if let Ok(repo) = Repository::open_bare(scratch.path()) {
                return Some((scratch, repo));
            }
        }
    }

    /// Keeps `scratch` for the next operation (the oldest goes past [`IDLE_SCRATCHES`]).
    fn put(&self, scratch: tempfile::TempDir) {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(scratch);
        if idle.len() > IDLE_SCRATCHES {
            idle.remove(0);
        }
    }

    /// Forgets every idle scratch repository: the remote's objects changed under their names
    /// (damage on the server's disk), and a copy here would hide that.
    pub(super) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl PartialEq for Scratches {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Scratches {}

/// Deletes the branch of `location` on the remote.
pub async fn delete_branch(location: &GitLocation) -> Result<()> {
    session(location, "delete the branch", |s: &Session| {
        s.push(None, false)
    })
    .await
}

/// Whether `path` looks like a bare repository (for a [`GitLocation::local_repository`]).
pub fn is_bare_repository(path: &Path) -> bool {
    path.join("objects").is_dir() && path.join("HEAD").is_file()
}

//! Where backups live, and the harness's own clients for them.
//!
//! A [`StoreLocation`] names one scenario's share of a store — an S3 bucket and key prefix, or a
//! git repository and branch — with the credentials to use it. [`s3`] and [`git`] are the
//! harness's own clients for them: the backup formats ([`crate::formats`]) and the backup store
//! ([`crate::backups`]) use nothing else, and never the code of a workload under test.

use std::fmt;
use std::path::PathBuf;

use crate::subject::Backend;

pub mod git;
pub mod s3;

/// The region used when none is given.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The branch used when none is given.
pub const DEFAULT_BRANCH: &str = "main";

/// One scenario's share of a backup store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// A key prefix of an S3 bucket.
    S3(S3Location),
    /// A branch of a git repository.
    Git(GitLocation),
}

impl StoreLocation {
    /// Which kind of store.
    pub fn backend(&self) -> Backend {
        match self {
            StoreLocation::S3(_) => Backend::S3,
            StoreLocation::Git(_) => Backend::Git,
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::S3(s3) => fmt::Display::fmt(s3, f),
            StoreLocation::Git(git) => fmt::Display::fmt(git, f),
        }
    }
}

impl From<S3Location> for StoreLocation {
    fn from(location: S3Location) -> Self {
        StoreLocation::S3(location)
    }
}

impl From<GitLocation> for StoreLocation {
    fn from(location: GitLocation) -> Self {
        StoreLocation::Git(location)
    }
}

/// A key prefix of an S3 bucket, reached path-style with static credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Endpoint URL (`http://host:port` or `https://…`).
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix, used verbatim (`team/app/`, or empty).
    pub prefix: String,
    /// Region to sign for.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl S3Location {
    /// `bucket` at `endpoint` with these credentials; no prefix, region `us-east-1`.
    pub fn new(
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        S3Location {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            prefix: String::new(),
            region: DEFAULT_REGION.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }

    /// Only keys under `prefix` (verbatim: end it with `/` for a "directory").
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sign for `region` instead of `us-east-1`.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The same bucket with `more` appended to the prefix.
    pub fn under(&self, more: &str) -> Self {
        let mut location = self.clone();
        location.prefix.push_str(more);
        location
    }
}

impl fmt::Debug for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Location")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3 {}/{}/{}", self.endpoint, self.bucket, self.prefix)
    }
}

/// A branch of a git repository reached over smart HTTP, with basic-auth credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct GitLocation {
    /// Repository URL (`http://…`: libgit2 is built without TLS here).
    pub url: String,
    /// The branch holding the backups.
    pub branch: String,
    /// Basic-auth user name, if the server asks for one.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// The bare repository's directory when the server runs on this machine (the embedded
    /// server). Only damage that git itself must notice needs it: over the git protocol every
    /// change is a new, legitimate commit (see [`crate::formats`]).
    pub local_repository: Option<PathBuf>,
    /// The scratch repositories earlier operations left, shared by every clone of this location
    /// (see [`git::session`]); removed with the last clone.
    scratch: git::Scratches,
}

impl GitLocation {
    /// Branch `main` of the repository at `url`, without credentials.
    pub fn new(url: impl Into<String>) -> Self {
        GitLocation {
            url: url.into(),
            branch: DEFAULT_BRANCH.into(),
            username: None,
            password: None,
            local_repository: None,
            scratch: git::Scratches::default(),
        }
    }

    /// Use `branch` instead of `main`.
    pub fn with_branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = branch.into();
        self
    }

    /// Authenticate with these basic-auth credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// The server keeps the repository in this directory on this machine.
    pub fn with_local_repository(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_repository = Some(dir.into());
        self
    }

    /// Forgets the objects earlier operations fetched, so the next one fetches everything
    /// again: for after the remote's objects were changed on its disk, which a copy kept here
    /// would hide.
    pub fn forget_fetched(&self) {
        self.scratch.clear();
    }
}

impl fmt::Debug for GitLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitLocation")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("local_repository", &self.local_repository)
            .finish()
    }
}

impl fmt::Display for GitLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "git {} branch {}", self.url, self.branch)
    }
}

/// `error` and its sources in one line (`a: b: c`), skipping sources whose text the previous
/// one already ends with.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_never_show_their_secrets() {
        let s3 = S3Location::new("http://s", "b", "AKID", "sekrit").with_prefix("p/");
        let git = GitLocation::new("http://g/r").with_credentials("u", "pa55");
        let shown = format!("{s3:?} {s3} {git:?} {git}");
        assert!(
            !shown.contains("sekrit") && !shown.contains("pa55"),
            "{shown}"
        );
        assert_eq!(s3.under("x/").prefix, "p/x/");
        assert_eq!(StoreLocation::from(git).backend(), Backend::Git);
    }
}

//! Embedded backup services: an S3 object store and a git smart-HTTP server, in-process, speaking
//! their real protocols on real sockets.
//!
//! Both serve HTTP/1.1 on a random port of `127.0.0.1` unless their builder says otherwise
//! (`with_bind_addr(Ipv4Addr::UNSPECIFIED)` for containers that reach the host), generate their
//! own credentials, keep their data in a temporary directory, and can be switched off and on to
//! simulate an outage.
//!
//! # [`EmbeddedObjectStore`]
//!
//! [s3s] with its file-system backend [s3s-fs] (buckets are directories, objects are files under
//! [`EmbeddedObjectStore::data_dir`]). It honours:
//!
//! - path-style requests only (`http://127.0.0.1:PORT/bucket/key`), region `us-east-1`;
//! - AWS Signature Version 4 (header and presigned-query forms, including streaming and unsigned
//!   payloads as s3s 0.14.1 supports them; s3s also verifies the older SigV2) checked against one
//!   access key pair, generated unless the builder sets one; a request signed with anything else
//!   is answered `403 SignatureDoesNotMatch` (unknown key: `403 NotSignedUp`), an unsigned one
//!   `403 AccessDenied`;
//! - the bucket and object operations s3s-fs implements: buckets (create, head, list, delete),
//!   objects (put, get incl. ranges, head, copy, delete, delete-many, list v1 and v2) and multipart
//!   uploads. No versioning, no ACLs or policies, no lifecycle rules, no virtual-hosted style;
//! - listings as real clients ask for them: an empty `delimiter=` is no delimiter (s3s-fs took it
//!   for one, which broke every recursive listing of restic and rclone) and `encoding-type=url`
//!   encodes the names it returns (s3s-fs only echoed it) — see `s3_backend`;
//! - since objects are files, a key cannot also be a "directory" of other keys (`a` and `a/b`
//!   cannot both exist).
//!
//! # [`EmbeddedGitServer`]
//!
//! git's own `git http-backend` run as a CGI program per request behind an in-process HTTP server,
//! over bare repositories under [`EmbeddedGitServer::root`]. It honours:
//!
//! - the smart HTTP protocol (v0, v1 and v2 via the `Git-Protocol` header), fetch and push; the
//!   dumb protocol too, because `http-backend` serves it (`GIT_HTTP_EXPORT_ALL` is set);
//! - gzip-compressed request bodies (`Content-Encoding: gzip`, which git clients send for large
//!   negotiations) and chunked request bodies (large pushes);
//! - HTTP basic authentication on every request, for one generated user: anything else is answered
//!   `401` with `WWW-Authenticate: Basic realm="phasecheck"`; the authenticated user may push
//!   (`http.receivepack=true`) and is passed on as `REMOTE_USER`;
//! - repositories created with [`EmbeddedGitServer::create_repo`] only (`HEAD` → `refs/heads/main`).
//!
//! `git http-backend` and its children run in their own process group with a hermetic
//! environment (no system or global git config). A child whose client goes away, or that is still
//! running at an outage or when the server is dropped, is killed with its whole group and reaped.
//!
//! # Outages
//!
//! [`EmbeddedObjectStore::down`] / [`EmbeddedGitServer::down`] close the listening socket and
//! reset every open connection (keep-alive ones included) before they return: new connections are
//! refused, requests in flight fail, nothing hangs. The port stays reserved by a bound,
//! non-listening socket, so `up()` listens on the same address again and clients configured with
//! the old endpoint just work.
//!
//! # Change feeds
//!
//! `changes()` on either service returns a [`tokio::sync::watch::Receiver`] whose count goes up
//! each time a request that may have changed the store has ended (S3: any method but `GET` and
//! `HEAD`; git: a push). Scenarios wait on it instead of listing the store on a timer.
//!
//! # Slow stores
//!
//! [`EmbeddedObjectStore::slow_down`] / [`EmbeddedGitServer::slow_down`] limit the bandwidth of
//! everything the service sends and add latency before each request ([`throttle`]), until called
//! with `None`; `bytes_sent()` tells how much it has sent.
//!
//! Dropping a service stops it the same way, kills and reaps its children, removes its temporary
//! directory and frees its port.
//!
//! [s3s]: https://docs.rs/s3s/0.14.1
//! [s3s-fs]: https://docs.rs/s3s-fs/0.14.1

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitStatus;

mod cgi;
mod changes;
pub mod containers;
pub mod external;
mod git;
pub mod in_cluster;
mod net;
mod object_store;
mod s3_backend;
pub mod throttle;

pub use git::{AUTH_REALM, DEFAULT_BRANCH, EmbeddedGitServer, EmbeddedGitServerBuilder};
pub use object_store::{EmbeddedObjectStore, EmbeddedObjectStoreBuilder, REGION};
pub use throttle::Slowness;

/// Errors starting or driving an embedded service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listening socket could not be set up on the address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for (port 0: any free port).
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The thread that times an outage could not be started.
    #[error("cannot start the thread that takes {addr} down on time: {source}")]
    OutageThread {
        /// The service's address.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A service was started outside a tokio runtime.
    #[error("embedded services must be started inside a tokio runtime: {source}")]
    NoRuntime {
        /// What tokio said.
        #[source]
        source: tokio::runtime::TryCurrentError,
    },
    /// The temporary directory for a service's data could not be created.
    #[error("cannot create a temporary directory for the {service}: {source}")]
    TempDir {
        /// Which service.
        service: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random source failed while generating credentials.
    #[error("cannot generate credentials: {source}")]
    Random {
        /// What getrandom said.
        #[source]
        source: getrandom::Error,
    },
    /// s3s-fs refused the data directory.
    #[error("cannot serve objects from {path}: {message}")]
    ObjectStoreInit {
        /// The data directory.
        path: PathBuf,
        /// What s3s-fs said (its error type implements neither `Display` nor `Error`).
        message: String,
    },
    /// Creating a bucket through the S3 API failed.
    #[error("cannot create bucket `{bucket}`: {source}")]
    CreateBucket {
        /// The bucket.
        bucket: String,
        /// The S3 client's error.
        #[source]
        source: Box<
            aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::create_bucket::CreateBucketError>,
        >,
    },
    /// A repository name is not usable (empty, a path, or characters outside `[A-Za-z0-9._-]`).
    #[error("invalid repository name {name:?}: {reason}")]
    InvalidRepoName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A repository of that name already exists.
    #[error("repository `{name}` already exists at {path}")]
    RepoExists {
        /// The name.
        name: String,
        /// Its directory.
        path: PathBuf,
    },
    /// The `git` program could not be run.
    #[error("cannot run `{command}`: {source}")]
    GitSpawn {
        /// The command line.
        command: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `git` command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    GitFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `n` random bytes, hex-encoded: URL-, header- and shell-safe credentials.
pub fn random_token(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|source| Error::Random { source })?;
    Ok(hex::encode(bytes))
}

/// The base URL clients use for a server listening on `addr`: an unspecified bind address
/// (`0.0.0.0`, `::`) is reached over loopback from this host.
fn endpoint_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Removes a service's temporary directory, tolerating files that processes being killed create
/// while it is removed.
fn remove_dir_patiently(path: &std::path::Path) {
    // NB: killed children (SIGKILL is delivered asynchronously) and aborted blocking writes may
    // still add an entry or two right after the kill; a few retries close that window.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if std::time::Instant::now() >= deadline => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove service directory");
                return;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn services_can_be_shared_between_tasks() {
        assert_send_sync::<EmbeddedObjectStore>();
        assert_send_sync::<EmbeddedGitServer>();
    }

    #[test]
    fn endpoints_for_unspecified_addresses_name_loopback() {
        assert_eq!(
            endpoint_for("0.0.0.0:80".parse().unwrap()),
            "http://127.0.0.1:80"
        );
        assert_eq!(endpoint_for("[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(
            endpoint_for("10.1.2.3:9".parse().unwrap()),
            "http://10.1.2.3:9"
        );
    }

    #[test]
    fn tokens_are_hex_of_the_requested_length() {
        let token = random_token(8).unwrap();
        assert_eq!(token.len(), 16);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, random_token(8).unwrap());
    }
}

//! The embedded git server: `git http-backend` behind hyper, with basic auth.

use std::convert::Infallible;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;

use super::cgi::{self, CgiCommand, HttpBody, ProcessGroups, text_response};
use super::changes::WriteCounter;
use super::net::{ServeFn, SwitchedListener};
use super::{Error, Result, endpoint_for, random_token, remove_dir_patiently};

/// The realm named in the `WWW-Authenticate` challenge.
pub const AUTH_REALM: &str = "phasecheck";

/// The branch new repositories' `HEAD` points at.
pub const DEFAULT_BRANCH: &str = "main";

/// Builds an [`EmbeddedGitServer`]. The default listens on a random port of `127.0.0.1` with
/// generated credentials and runs the `git` found on `PATH`.
#[derive(Clone, Debug)]
pub struct EmbeddedGitServerBuilder {
    bind_ip: IpAddr,
    port: u16,
    credentials: Option<(String, String)>,
    git: PathBuf,
}

impl Default for EmbeddedGitServerBuilder {
    fn default() -> Self {
        EmbeddedGitServerBuilder {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            credentials: None,
            git: PathBuf::from("git"),
        }
    }
}

impl EmbeddedGitServerBuilder {
    /// Listen on `ip` instead of `127.0.0.1` — `Ipv4Addr::UNSPECIFIED` for containers that reach
    /// the host. [`EmbeddedGitServer::url`] still names loopback then.
    pub fn with_bind_addr(mut self, ip: impl Into<IpAddr>) -> Self {
        self.bind_ip = ip.into();
        self
    }

    /// Listen on this port instead of a random free one (0: random).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Accept these credentials instead of generated ones. They end up in URLs, so keep them to
    /// characters that need no percent-encoding.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// Run this `git` instead of the one on `PATH`.
    pub fn with_git(mut self, git: impl Into<PathBuf>) -> Self {
        self.git = git.into();
        self
    }

    /// Starts the server. Needs a tokio runtime.
    pub async fn start(self) -> Result<EmbeddedGitServer> {
        let (username, password) = match self.credentials {
            Some(credentials) => credentials,
            None => (format!("pc-{}", random_token(4)?), random_token(20)?),
        };
        let dir = tempfile::Builder::new()
            .prefix("phasecheck-git-")
            .tempdir()
            .map_err(|source| Error::TempDir {
                service: "git server",
                source,
            })?;
        let root = dir.path().to_owned();
        let groups = Arc::new(ProcessGroups::default());
        // NB: a bare program name with a PATH in the child's environment makes std fork the
        // whole harness (page tables and all) per request instead of using posix_spawn.
        let git = on_search_path(&self.git);
        let backend = Arc::new(Backend {
            git: git.clone(),
            root: root.clone(),
            username: username.clone(),
            password: password.clone(),
            groups: Arc::clone(&groups),
            path: search_path(),
        });
        let writes = WriteCounter::new();
        let counter = writes.clone();
        let serve: ServeFn = Arc::new(move |stream, peer| {
            let backend = Arc::clone(&backend);
            let counter = counter.clone();
            Box::pin(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let backend = Arc::clone(&backend);
                    let counter = counter.clone();
                    let push = request.method() == Method::POST
                        && request.uri().path().ends_with("/git-receive-pack");
                    async move {
                        let response = backend.handle(request, peer).await;
                        Ok::<_, Infallible>(response.map(|body| counter.response_body(body, push)))
                    }
                });
                let served = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "git server connection ended");
                }
            })
        });
        let listener = SwitchedListener::start(SocketAddr::new(self.bind_ip, self.port), serve)?;
        tracing::debug!(addr = %listener.local_addr(), "embedded git server started");
        Ok(EmbeddedGitServer {
            listener,
            writes,
            dir: Some(dir),
            root,
            username,
            password,
            git,
            groups,
        })
    }
}

/// A git smart-HTTP server for bare repositories in a temporary directory, with basic auth and
/// an outage switch. See the [module docs](super) for what it honours.
///
/// Dropping it stops the server, kills and reaps any `git` still running for it, and removes the
/// repositories.
pub struct EmbeddedGitServer {
    listener: SwitchedListener,
    writes: WriteCounter,
    dir: Option<TempDir>,
    root: PathBuf,
    username: String,
    password: String,
    git: PathBuf,
    groups: Arc<ProcessGroups>,
}

impl std::fmt::Debug for EmbeddedGitServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedGitServer")
            .field("endpoint", &self.endpoint())
            .field("root", &self.root)
            .field("username", &self.username)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl EmbeddedGitServer {
    /// A builder with the defaults.
    pub fn builder() -> EmbeddedGitServerBuilder {
        EmbeddedGitServerBuilder::default()
    }

    /// Starts a server with the defaults: random port of `127.0.0.1`, generated credentials.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        endpoint_for(self.listener.local_addr())
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().port()
    }

    /// The basic-auth user name it accepts.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The basic-auth password it accepts.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory holding the bare repositories (`<name>.git` each).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The clone URL of repository `name` (a trailing `.git` on `name` is ignored), without
    /// credentials: `http://127.0.0.1:PORT/<name>.git`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{}.git", self.endpoint(), strip_git_suffix(name))
    }

    /// The clone URL with the credentials in it, `http://user:password@127.0.0.1:PORT/<name>.git`,
    /// for the `git` CLI.
    pub fn url_with_credentials(&self, name: &str) -> String {
        let url = self.url(name);
        let rest = url.strip_prefix("http://").unwrap_or(&url);
        format!("http://{}:{}@{rest}", self.username, self.password)
    }

    /// Where repository `name`'s bare repository lives (a trailing `.git` on `name` is ignored).
    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{}.git", strip_git_suffix(name)))
    }

    /// Creates an empty bare repository whose `HEAD` is `refs/heads/main`; returns its URL
    /// (see [`url`](Self::url)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRepoName`] unless `name` is made of `[A-Za-z0-9._-]` (and is not `.`-led),
    /// [`Error::RepoExists`], or the errors of running `git init`.
    pub async fn create_repo(&self, name: &str) -> Result<String> {
        validate_repo_name(name)?;
        let path = self.repo_path(name);
        if path.exists() {
            return Err(Error::RepoExists {
                name: name.to_owned(),
                path,
            });
        }
        let mut cmd = tokio::process::Command::new(&self.git);
        cmd.arg("init")
            .arg("--bare")
            .arg("--quiet")
            .arg(format!("--initial-branch={DEFAULT_BRANCH}"))
            .arg(&path)
            .env_clear()
            .envs(hermetic_git_env(&self.root, search_path()))
            .kill_on_drop(true);
        let command = format!("git init --bare {}", path.display());
        let output = cmd.output().await.map_err(|source| Error::GitSpawn {
            command: command.clone(),
            source,
        })?;
        if !output.status.success() {
            return Err(Error::GitFailed {
                command,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(self.url(name))
    }

    /// How many `git http-backend` processes are running for requests right now.
    pub fn running_backends(&self) -> usize {
        self.groups.running()
    }

    /// Its change feed: the count goes up each time a push has ended (see the
    /// [module docs](super)).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writes.subscribe()
    }

    /// Whether it is serving (not [`down`](Self::down)).
    pub fn is_up(&self) -> bool {
        self.listener.is_up()
    }

    /// Simulates an outage: closes the listener and resets every open connection before
    /// returning (a `git` running for one of them is killed). New connections are refused until
    /// [`up`](Self::up). Repositories are kept. Idempotent.
    pub fn down(&self) {
        self.listener.down();
    }

    /// Like [`down`](Self::down), when the wall clock reaches `at`, timed by a thread of its own
    /// (a busy async runtime cannot make the outage late). Resolves to the moment it went down.
    ///
    /// # Errors
    ///
    /// [`Error::OutageThread`] if the timing thread cannot be started.
    pub fn down_at(
        &self,
        at: std::time::SystemTime,
    ) -> Result<impl std::future::Future<Output = std::time::SystemTime> + use<>> {
        self.listener.down_at(at)
    }

    /// Ends an outage: listens on the same address again before returning. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be listened on again.
    pub fn up(&self) -> Result<()> {
        self.listener.up()
    }

    /// Slows the service down (see [`super::throttle`]) from now on; `None`: full speed again.
    pub fn slow_down(&self, slowness: Option<super::Slowness>) {
        self.listener.throttle().set(slowness);
    }

    /// Bytes the service has sent to its clients since it started.
    pub fn bytes_sent(&self) -> u64 {
        self.listener.throttle().bytes_sent()
    }
}

impl Drop for EmbeddedGitServer {
    fn drop(&mut self) {
        self.listener.down();
        self.groups.kill_all();
        if let Some(dir) = self.dir.take() {
            remove_dir_patiently(&dir.keep());
        }
    }
}

/// What every request is served with.
struct Backend {
    git: PathBuf,
    root: PathBuf,
    username: String,
    password: String,
    groups: Arc<ProcessGroups>,
    path: OsString,
}

impl Backend {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<HttpBody> {
        if !self.authorized(request.headers()) {
            let mut response = text_response(StatusCode::UNAUTHORIZED, "authentication required\n");
            let challenge = HeaderValue::from_str(&format!("Basic realm=\"{AUTH_REALM}\""))
                .expect("the realm is a valid header value");
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, challenge);
            return response;
        }
        let path_info = match path_info(request.uri().path()) {
            Ok(path_info) => path_info,
            Err(problem) => return text_response(StatusCode::BAD_REQUEST, format!("{problem}\n")),
        };
        let (parts, body) = request.into_parts();
        let mut env = hermetic_git_env(&self.root, self.path.clone());
        let mut set = |key: &str, value: OsString| env.push((OsString::from(key), value));
        set("GATEWAY_INTERFACE", "CGI/1.1".into());
        set("SERVER_PROTOCOL", "HTTP/1.1".into());
        set("SERVER_SOFTWARE", "phasecheck".into());
        set("GIT_PROJECT_ROOT", self.root.clone().into());
        set("GIT_HTTP_EXPORT_ALL", "1".into());
        set("PATH_INFO", path_info);
        set("QUERY_STRING", parts.uri.query().unwrap_or_default().into());
        set("REQUEST_METHOD", parts.method.as_str().into());
        set("REMOTE_USER", self.username.clone().into());
        set("REMOTE_ADDR", peer.ip().to_string().into());
        set("REMOTE_PORT", peer.port().to_string().into());
        let header = |name| {
            parts.headers.get(name).map(|value: &HeaderValue| {
                OsString::from(std::ffi::OsStr::from_bytes(value.as_bytes()))
            })
        };
        if let Some(value) = header(CONTENT_TYPE) {
            set("CONTENT_TYPE", value);
        }
        if let Some(value) = header(CONTENT_LENGTH) {
            set("CONTENT_LENGTH", value);
        }
        if let Some(value) = header(CONTENT_ENCODING) {
            // NB: http-backend inflates gzip request bodies itself when told so.
            set("HTTP_CONTENT_ENCODING", value);
        }
        if let Some(value) = header(http::header::HeaderName::from_static("git-protocol")) {
            set("GIT_PROTOCOL", value);
        }
        let command = CgiCommand {
            program: self.git.clone(),
            // NB: receive-pack would otherwise start `git maintenance --auto --detach` after
            // every push, which daemonizes out of our process group and outlives the request.
            args: [
                "-c",
                "http.receivepack=true",
                "-c",
                "receive.autogc=false",
                "-c",
                "maintenance.auto=false",
                "http-backend",
            ]
            .into_iter()
            .map(OsString::from)
            .collect(),
            cwd: self.root.clone(),
            env,
        };
        cgi::run(command, body, &self.groups).await
    }

    /// Whether the request carries this server's basic-auth credentials.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = BASE64.decode(token.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.username, self.password);
        constant_time_eq(&decoded, expected.as_bytes())
    }
}

/// The environment every `git` the server runs gets: no system or global configuration, no
/// inherited `GIT_*` variables.
fn hermetic_git_env(home: &Path, path: OsString) -> Vec<(OsString, OsString)> {
    vec![
        ("PATH".into(), path),
        ("HOME".into(), home.into()),
        ("LC_ALL".into(), "C".into()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        // NB: the datasets hold megabytes of random bytes; deflating them and searching deltas
        // between them was a quarter of the catalog's CPU time on 2 cores, and changes nothing
        // a client sees. Uncompressed, no deltas for blobs over 1 MiB.
        ("GIT_CONFIG_COUNT".into(), "2".into()),
        ("GIT_CONFIG_KEY_0".into(), "core.compression".into()),
        ("GIT_CONFIG_VALUE_0".into(), "0".into()),
        ("GIT_CONFIG_KEY_1".into(), "core.bigFileThreshold".into()),
        ("GIT_CONFIG_VALUE_1".into(), "1m".into()),
    ]
}

/// `program` as the path of the file it names on [`search_path`], unchanged when it holds a `/`
/// or is not found there (spawning it then reports the problem).
fn on_search_path(program: &Path) -> PathBuf {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return program.to_owned();
    }
    std::env::split_paths(&search_path())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| program.to_owned())
}

/// The `PATH` the server's `git` runs with: this process's.
fn search_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"))
}

/// The percent-decoded request path, refused if it could step outside the project root.
fn path_info(path: &str) -> std::result::Result<OsString, &'static str> {
    let bytes = percent_decode(path).ok_or("bad percent-encoding in path")?;
    if !bytes.starts_with(b"/") {
        return Err("path must be absolute");
    }
    if bytes.contains(&0) || bytes.contains(&b'\\') {
        return Err("path contains forbidden characters");
    }
    if bytes
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
    {
        return Err("path contains `.` or `..` segments");
    }
    Ok(std::ffi::OsStr::from_bytes(&bytes).to_owned())
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn strip_git_suffix(name: &str) -> &str {
    name.strip_suffix(".git").unwrap_or(name)
}

fn validate_repo_name(name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidRepoName {
        name: name.to_owned(),
        reason,
    };
    let stem = strip_git_suffix(name);
    if stem.is_empty() {
        return Err(invalid("empty"));
    }
    if stem.len() > 200 {
        return Err(invalid("longer than 200 characters"));
    }
    if stem.starts_with('.') {
        return Err(invalid("starts with `.`"));
    }
    if !stem
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "only ASCII letters, digits, `.`, `_` and `-` are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_info_is_decoded_and_refuses_dot_segments() {
        assert_eq!(
            path_info("/a%2Db.git/info/refs").unwrap(),
            "/a-b.git/info/refs"
        );
        assert!(path_info("/../etc/passwd").is_err());
        assert!(path_info("/a/%2e%2e/b").is_err());
        assert!(path_info("/a%zz").is_err());
    }

    #[test]
    fn repo_names_are_plain_words() {
        assert!(validate_repo_name("backups").is_ok());
        assert!(validate_repo_name("backups.git").is_ok());
        assert!(validate_repo_name("a/b").is_err());
        assert!(validate_repo_name("..").is_err());
        assert!(validate_repo_name("").is_err());
        assert!(validate_repo_name(".git").is_err());
    }
}

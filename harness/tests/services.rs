//! The embedded backup services over real sockets: the S3 object store with the AWS SDK, the git
//! server with the `git` CLI and libgit2.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use harness::services::{EmbeddedGitServer, EmbeddedObjectStore, Slowness};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long anything that should be prompt may take.
const PROMPT: Duration = Duration::from_secs(5);

/// Waits until `condition` holds, checking every 20 ms, or fails after `timeout`.
async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a fresh TCP connection to `addr` is refused.
async fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(PROMPT, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Reads until the peer ends the connection (EOF or reset); fails if it stays open.
async fn assert_connection_ends(stream: &mut TcpStream) -> Result<()> {
    let ended = tokio::time::timeout(PROMPT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    ensure!(ended.is_ok(), "the open connection was not ended");
    Ok(())
}

/// Sends one HTTP/1.1 request that keeps the connection alive and reads its response head.
async fn keep_alive_exchange(stream: &mut TcpStream, path: &str, auth: Option<&str>) -> Result<()> {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(PROMPT, stream.read(&mut buf)).await??;
    ensure!(
        buf[..n].starts_with(b"HTTP/1.1 "),
        "no HTTP response: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Object store
// ---------------------------------------------------------------------------------------------

/// A client that fails fast: no retries, short timeouts.
fn impatient_client(store: &EmbeddedObjectStore) -> aws_sdk_s3::Client {
    let config = store
        .client_config()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Bytes> {
    let object = client.get_object().bucket(bucket).key(key).send().await?;
    Ok(object.body.collect().await?.into_bytes())
}

#[tokio::test]
async fn object_store_round_trips_objects_through_the_s3_api() -> Result<()> {
    let store = EmbeddedObjectStore::start().await?;
    assert_eq!(
        store.endpoint(),
        format!("http://127.0.0.1:{}", store.port())
    );
    assert_eq!(store.region(), "us-east-1");
    store.create_bucket("backups").await?;
    let client = store.client();

    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    for (key, body) in [
        (
            "data/1/manifest.json",
            Bytes::from_static(b"{\"format\":1}"),
        ),
        ("data/1/files/big.bin", Bytes::from(big.clone())),
        ("index/1", Bytes::from_static(b"digest")),
    ] {
        client
            .put_object()
            .bucket("backups")
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("put {key}"))?;
    }
    assert_eq!(
        get_bytes(&client, "backups", "data/1/manifest.json").await?,
        Bytes::from_static(b"{\"format\":1}")
    );
    assert_eq!(
        get_bytes(&client, "backups", "data/1/files/big.bin").await?,
        big
    );
    assert!(
        store
            .data_dir()
            .join("backups/data/1/manifest.json")
            .is_file()
    );

    let listed = client
        .list_objects_v2()
        .bucket("backups")
        .prefix("data/")
        .send()
        .await?;
    let mut keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["data/1/files/big.bin", "data/1/manifest.json"]);

    client
        .delete_object()
        .bucket("backups")
        .key("index/1")
        .send()
        .await?;
    let missing = client
        .get_object()
        .bucket("backups")
        .key("index/1")
        .send()
        .await
        .expect_err("deleted object is still there");
    assert_eq!(missing.code(), Some("NoSuchKey"));
    let listed = client
        .list_objects_v2()
        .bucket("backups")
        .prefix("index/")
        .send()
        .await?;
    assert!(listed.contents().is_empty());
    Ok(())
}

#[tokio::test]
async fn object_store_rejects_requests_signed_with_wrong_credentials() -> Result<()> {
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket("backups").await?;
    assert_ne!(store.secret_access_key(), "wrong");

    let wrong_secret =
        store
            .client_config()
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                store.access_key_id(),
                "wrong",
                None,
                None,
                "test",
            ));
    let wrong_key =
        store
            .client_config()
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIAWRONG",
                store.secret_access_key(),
                None,
                None,
                "test",
            ));
    for (config, expected) in [
        (wrong_secret, "SignatureDoesNotMatch"),
        (wrong_key, "NotSignedUp"),
    ] {
        let client =
            aws_sdk_s3::Client::from_conf(config.retry_config(RetryConfig::disabled()).build());
        let error = client
            .put_object()
            .bucket("backups")
            .key("intruder")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("a request with wrong credentials was accepted");
        let status = error.raw_response().map(|r| r.status().as_u16());
        assert_eq!(
            (error.code(), status),
            (Some(expected), Some(403)),
            "unexpected rejection: {error:?}"
        );
    }
    let listed = store
        .client()
        .list_objects_v2()
        .bucket("backups")
        .send()
        .await?;
    assert!(
        listed.contents().is_empty(),
        "a rejected put stored an object"
    );
    let (anonymous, _) = http_get(store.local_addr(), "/backups/intruder", None).await?;
    assert_eq!(
        anonymous,
        http::StatusCode::FORBIDDEN,
        "an unsigned request was not refused"
    );
    Ok(())
}

/// MNT-3's outage must begin before a scheduled time however busy the harness is: `down_at`
/// is timed by a thread of its own, so it strikes on time while the async runtime's only
/// thread is blocked (as a starved runtime would be).
#[tokio::test]
async fn an_outage_set_for_a_time_begins_then_while_the_runtime_is_blocked() -> Result<()> {
    let store = EmbeddedObjectStore::start().await?;
    let at = std::time::SystemTime::now() + Duration::from_millis(300);
    let went_down = store.down_at(at)?;
    // NB: blocks the runtime's one thread past `at`: nothing async can run meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let refused = std::net::TcpStream::connect_timeout(&store.local_addr(), PROMPT).is_err();
    let went_down = went_down.await;
    assert!(
        refused,
        "a connection was accepted 1.2 s after the outage was due"
    );
    let late = went_down.duration_since(at).unwrap_or_default();
    assert!(
        went_down >= at && late < Duration::from_millis(700),
        "the outage began {late:?} after it was due"
    );
    assert!(!store.is_up());
    Ok(())
}

#[tokio::test]
async fn object_store_outage_fails_requests_fast_and_up_restores_earlier_objects() -> Result<()> {
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket("backups").await?;
    let client = impatient_client(&store);
    client
        .put_object()
        .bucket("backups")
        .key("before")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await?;
    // A raw keep-alive connection, to see it aborted.
    let mut open = TcpStream::connect(store.local_addr()).await?;
    keep_alive_exchange(&mut open, "/", None).await?;

    store.down();
    store.down();
    assert!(!store.is_up());
    assert_connection_ends(&mut open).await?;
    assert!(refuses_connections(store.local_addr()).await);
    let started = Instant::now();
    let failed = client
        .get_object()
        .bucket("backups")
        .key("before")
        .send()
        .await;
    assert!(
        failed.is_err(),
        "a request succeeded while the store was down"
    );
    assert!(
        started.elapsed() < PROMPT,
        "a request took {:?} to fail while the store was down",
        started.elapsed()
    );
    let failed = client
        .put_object()
        .bucket("backups")
        .key("during")
        .body(ByteStream::from_static(b"lost"))
        .send()
        .await;
    assert!(failed.is_err(), "a put succeeded while the store was down");

    store.up()?;
    store.up()?;
    assert!(store.is_up());
    assert_eq!(
        get_bytes(&client, "backups", "before").await?,
        Bytes::from_static(b"kept")
    );
    client
        .put_object()
        .bucket("backups")
        .key("after")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await?;
    assert_eq!(
        get_bytes(&store.client(), "backups", "after").await?,
        Bytes::from_static(b"new")
    );
    Ok(())
}

#[tokio::test]
async fn a_slowed_object_store_sends_no_faster_than_its_bandwidth_until_lifted() -> Result<()> {
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket("backups").await?;
    let client = store.client();
    let body = random_bytes(300_000);
    client
        .put_object()
        .bucket("backups")
        .key("big")
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;
    store.slow_down(Some(Slowness {
        bytes_per_sec: 200_000,
        latency: Duration::from_millis(50),
    }));
    let before = store.bytes_sent();
    let started = Instant::now();
    assert_eq!(get_bytes(&client, "backups", "big").await?, body);
    let slow = started.elapsed();
    ensure!(
        slow >= Duration::from_millis(1400),
        "300 kB at 200 kB/s in {slow:?}"
    );
    ensure!(store.bytes_sent() - before >= 300_000);
    store.slow_down(None);
    let started = Instant::now();
    assert_eq!(get_bytes(&client, "backups", "big").await?, body);
    ensure!(
        started.elapsed() < slow / 3,
        "full speed took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_slowed_git_server_paces_a_clone() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("backups").await?;
    let work = tempfile::tempdir()?;
    let authed = server.url_with_credentials("backups");
    clone_commit_push(work.path(), &authed, "f", &random_bytes(200_000)).await?;
    server.slow_down(Some(Slowness {
        bytes_per_sec: 100_000,
        latency: Duration::ZERO,
    }));
    let started = Instant::now();
    git_ok(work.path(), &["clone", &authed, "b"]).await?;
    let slow = started.elapsed();
    ensure!(
        slow >= Duration::from_millis(1800),
        "200 kB at 100 kB/s in {slow:?}"
    );
    Ok(())
}

/// Waits (at most [`PROMPT`]) for the next change on a service's change feed, after `what`.
async fn next_change(changes: &mut tokio::sync::watch::Receiver<u64>, what: &str) -> Result<()> {
    tokio::time::timeout(PROMPT, changes.changed())
        .await
        .with_context(|| format!("no change reported for {what}"))??;
    Ok(())
}

#[tokio::test]
async fn object_store_reports_each_write_on_its_change_feed_and_no_read() -> Result<()> {
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket("backups").await?;
    let mut changes = store.changes();
    let client = store.client();
    client
        .put_object()
        .bucket("backups")
        .key("k")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await?;
    next_change(&mut changes, "a PUT").await?;
    get_bytes(&client, "backups", "k").await?;
    client.list_objects_v2().bucket("backups").send().await?;
    ensure!(
        !changes.has_changed()?,
        "a GET or a listing was reported as a change"
    );
    client
        .delete_object()
        .bucket("backups")
        .key("k")
        .send()
        .await?;
    next_change(&mut changes, "a DELETE").await?;
    Ok(())
}

#[tokio::test]
async fn git_server_reports_a_push_on_its_change_feed_and_no_fetch() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("backups").await?;
    let mut changes = server.changes();
    let work = tempfile::tempdir()?;
    let authed = server.url_with_credentials("backups");
    clone_commit_push(work.path(), &authed, "f", b"content").await?;
    next_change(&mut changes, "a push").await?;
    git_ok(work.path(), &["clone", &authed, "b"]).await?;
    ensure!(!changes.has_changed()?, "a clone was reported as a change");
    Ok(())
}

#[tokio::test]
async fn object_store_drop_removes_the_data_dir_and_frees_the_port() -> Result<()> {
    let store = EmbeddedObjectStore::start().await?;
    store.create_bucket("backups").await?;
    store
        .client()
        .put_object()
        .bucket("backups")
        .key("k")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await?;
    let data_dir = store.data_dir().to_owned();
    let addr = store.local_addr();
    let mut open = TcpStream::connect(addr).await?;
    keep_alive_exchange(&mut open, "/", None).await?;
    assert!(data_dir.join("backups/k").is_file());

    drop(store);
    assert!(
        !data_dir.exists(),
        "{} survived the store",
        data_dir.display()
    );
    assert_connection_ends(&mut open).await?;
    assert!(refuses_connections(addr).await);
    eventually(PROMPT, "the port can be bound again", || async {
        std::net::TcpListener::bind(addr).is_ok()
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Git server
// ---------------------------------------------------------------------------------------------

/// Runs the `git` CLI hermetically (no user or system config, no prompts) in `dir`.
async fn git(dir: &Path, args: &[&str]) -> Result<Output> {
    git_with_env(dir, args, &[]).await
}

async fn git_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let output = tokio::process::Command::new("git")
        // No `maintenance --auto --detach`: it would daemonize and outlive the test.
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.version=2",
            "-c",
            "maintenance.auto=false",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "phasecheck")
        .env("GIT_AUTHOR_EMAIL", "phasecheck@example.invalid")
        .env("GIT_COMMITTER_NAME", "phasecheck")
        .env("GIT_COMMITTER_EMAIL", "phasecheck@example.invalid")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run git")?;
    Ok(output)
}

/// Like [`git`], failing unless git succeeds.
async fn git_ok(dir: &Path, args: &[&str]) -> Result<Output> {
    let output = git(dir, args).await?;
    ensure!(
        output.status.success(),
        "git {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// Clones `authed` into `work/a`, commits `content` as `file` and pushes it to `main`; returns
/// the clone.
async fn clone_commit_push(
    work: &Path,
    authed: &str,
    file: &str,
    content: &[u8],
) -> Result<PathBuf> {
    git_ok(work, &["clone", authed, "a"]).await?;
    let a = work.join("a");
    std::fs::write(a.join(file), content)?;
    git_ok(&a, &["add", file]).await?;
    git_ok(&a, &["commit", "-m", file]).await?;
    git_ok(&a, &["push", "origin", "HEAD:main"]).await?;
    Ok(a)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Random, incompressible bytes.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
}

/// A process seen in /proc: pid and start time (together they identify it across pid reuse).
type ProcId = (u32, u64);

fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may contain spaces) start with field 3, the state;
    // field 22 is the start time.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Processes whose environment or working directory points into `root`.
fn processes_serving(root: &Path) -> Vec<ProcId> {
    let needle = format!("GIT_PROJECT_ROOT={}", root.display());
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let in_env = environ
            .split(|&b| b == 0)
            .any(|var| var == needle.as_bytes());
        let in_cwd =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(root));
        if (in_env || in_cwd)
            && let Some(start) = proc_start_time(pid)
        {
            found.push((pid, start));
        }
    }
    found
}

/// Whether a process still exists (running or zombie).
fn exists(&(pid, start): &ProcId) -> bool {
    proc_start_time(pid) == Some(start)
}

/// Starts a push whose body never completes, so `git http-backend` and `git receive-pack` stay
/// running for it; returns the open connection.
async fn hanging_push(server: &EmbeddedGitServer, repo: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(server.local_addr()).await?;
    let credentials = base64_encode(&format!("{}:{}", server.username(), server.password()));
    let head = format!(
        "POST /{repo}.git/git-receive-pack HTTP/1.1\r\nHost: test\r\n\
         Authorization: Basic {credentials}\r\n\
         Content-Type: application/x-git-receive-pack-request\r\n\
         Content-Length: 100000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(b"0000").await?;
    Ok(stream)
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// One HTTP request on a fresh connection; returns the status and the `WWW-Authenticate` header.
async fn http_get(
    addr: SocketAddr,
    path: &str,
    authorization: Option<String>,
) -> Result<(http::StatusCode, Option<String>)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let mut request = http::Request::get(path).header(http::header::HOST, "test");
    if let Some(authorization) = authorization {
        request = request.header(http::header::AUTHORIZATION, authorization);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new())?)
        .await?;
    let status = response.status();
    let challenge = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    response.into_body().collect().await?;
    connection.abort();
    Ok((status, challenge))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_serves_clone_commit_push_and_clone_again_with_the_cli() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    let url = server.create_repo("backups").await?;
    assert_eq!(
        url,
        format!("http://127.0.0.1:{}/backups.git", server.port())
    );
    assert_eq!(url, server.url("backups"));
    assert_eq!(
        server.repo_path("backups"),
        server.root().join("backups.git")
    );
    let head = std::fs::read_to_string(server.repo_path("backups").join("HEAD"))?;
    assert_eq!(head.trim(), "ref: refs/heads/main");

    let work = tempfile::tempdir()?;
    let authed = server.url_with_credentials("backups");
    assert!(authed.starts_with(&format!(
        "http://{}:{}@",
        server.username(),
        server.password()
    )));
    git_ok(work.path(), &["clone", &authed, "first"]).await?;
    let first = work.path().join("first");
    std::fs::write(first.join("manifest.json"), "{\"format\":1}\n")?;
    git_ok(&first, &["add", "manifest.json"]).await?;
    git_ok(&first, &["commit", "-m", "phasepod backup 1"]).await?;
    git_ok(&first, &["push", "origin", "HEAD:main"]).await?;
    let pushed = stdout(&git_ok(&first, &["rev-parse", "HEAD"]).await?);

    git_ok(work.path(), &["clone", &authed, "second"]).await?;
    let second = work.path().join("second");
    assert_eq!(
        std::fs::read_to_string(second.join("manifest.json"))?,
        "{\"format\":1}\n"
    );
    assert_eq!(
        stdout(&git_ok(&second, &["rev-parse", "HEAD"]).await?),
        pushed
    );
    assert_eq!(
        stdout(&git_ok(&second, &["rev-parse", "--abbrev-ref", "HEAD"]).await?),
        "main"
    );

    // A second backup on top, fetched into the second clone.
    std::fs::write(first.join("b"), "two")?;
    git_ok(&first, &["add", "b"]).await?;
    git_ok(&first, &["commit", "-m", "phasepod backup 2"]).await?;
    git_ok(&first, &["push", "origin", "main"]).await?;
    git_ok(&second, &["pull", "--ff-only"]).await?;
    assert_eq!(std::fs::read_to_string(second.join("b"))?, "two");
    eventually(PROMPT, "no git http-backend is left running", || async {
        server.running_backends() == 0
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_accepts_a_push_of_several_megabytes() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("large").await?;
    let work = tempfile::tempdir()?;
    let authed = server.url_with_credentials("large");
    let payload = random_bytes(6 * 1024 * 1024);
    // Larger than http.postBuffer: the pack goes up as a chunked request body.
    clone_commit_push(work.path(), &authed, "blob.bin", &payload).await?;

    git_ok(work.path(), &["clone", &authed, "b"]).await?;
    assert!(std::fs::read(work.path().join("b/blob.bin"))? == payload);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_inflates_gzip_request_bodies_from_git_clients() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("negotiation").await?;
    let work = tempfile::tempdir()?;
    let authed = server.url_with_credentials("negotiation");
    let a = clone_commit_push(work.path(), &authed, "f", b"server side").await?;

    // A repository with a long unrelated history: fetching sends many `have` lines, and git
    // gzips request bodies over 1 KiB.
    let b = work.path().join("b");
    std::fs::create_dir(&b)?;
    git_ok(&b, &["init", "--quiet"]).await?;
    let mut stream = String::new();
    for i in 1..=300 {
        stream.push_str(&format!(
            "commit refs/heads/local\nmark :{i}\ncommitter t <t@example.invalid> {} +0000\n\
             data 3\nc{:02}\n",
            1_700_000_000 + i,
            i % 100
        ));
        if i > 1 {
            stream.push_str(&format!("from :{}\n", i - 1));
        }
        stream.push_str(&format!(
            "M 644 inline f\ndata {}\n{i}\n\n",
            i.to_string().len() + 1
        ));
    }
    let mut import = tokio::process::Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&b)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    import
        .stdin
        .take()
        .context("stdin")?
        .write_all(stream.as_bytes())
        .await?;
    ensure!(import.wait().await?.success(), "git fast-import failed");

    let fetched = git_with_env(
        &b,
        &["fetch", &authed, "main:refs/remotes/server/main"],
        &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
    )
    .await?;
    let trace = String::from_utf8_lossy(&fetched.stderr);
    ensure!(fetched.status.success(), "fetch failed: {trace}");
    assert!(
        trace
            .to_ascii_lowercase()
            .contains("content-encoding: gzip"),
        "git sent no gzip request body; the test proves nothing"
    );
    let fetched_tip = stdout(&git_ok(&b, &["rev-parse", "refs/remotes/server/main"]).await?);
    assert_eq!(
        fetched_tip,
        stdout(&git_ok(&a, &["rev-parse", "HEAD"]).await?)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_demands_basic_auth_on_every_request() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("secret").await?;
    let path = "/secret.git/info/refs?service=git-upload-pack";
    let addr = server.local_addr();

    let (status, challenge) = http_get(addr, path, None).await?;
    assert_eq!(status, http::StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(r#"Basic realm="phasecheck""#));
    let wrong = format!(
        "Basic {}",
        base64_encode(&format!("{}:nope", server.username()))
    );
    assert_eq!(
        http_get(addr, path, Some(wrong)).await?.0,
        http::StatusCode::UNAUTHORIZED
    );
    let right = format!(
        "Basic {}",
        base64_encode(&format!("{}:{}", server.username(), server.password()))
    );
    assert_eq!(
        http_get(addr, path, Some(right.clone())).await?.0,
        http::StatusCode::OK
    );
    assert_eq!(
        http_get(
            addr,
            "/absent.git/info/refs?service=git-upload-pack",
            Some(right)
        )
        .await?
        .0,
        http::StatusCode::NOT_FOUND
    );

    let work = tempfile::tempdir()?;
    let anonymous = git(work.path(), &["ls-remote", &server.url("secret")]).await?;
    assert!(!anonymous.status.success(), "anonymous ls-remote succeeded");
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains("401")
            || stderr.contains("Authentication failed")
            || stderr.contains("could not read Username"),
        "unexpected failure: {stderr}"
    );
    let bad_url = server
        .url_with_credentials("secret")
        .replace(server.password(), "wrong");
    let bad = git(work.path(), &["ls-remote", &bad_url]).await?;
    assert!(
        !bad.status.success(),
        "ls-remote with a wrong password succeeded"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_outage_refuses_connections_and_up_restores_the_same_url() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("backups").await?;
    let work = tempfile::tempdir()?;
    let authed = server.url_with_credentials("backups");
    let a = clone_commit_push(work.path(), &authed, "f", b"before").await?;
    let mut open = TcpStream::connect(server.local_addr()).await?;
    keep_alive_exchange(&mut open, "/", None).await?;

    server.down();
    server.down();
    assert!(!server.is_up());
    assert_connection_ends(&mut open).await?;
    assert!(refuses_connections(server.local_addr()).await);
    let started = Instant::now();
    let during = tokio::time::timeout(PROMPT, git(work.path(), &["ls-remote", &authed]))
        .await
        .context("git ls-remote hung while the server was down")??;
    assert!(
        !during.status.success(),
        "ls-remote succeeded while the server was down"
    );
    assert!(started.elapsed() < PROMPT);

    server.up()?;
    server.up()?;
    assert!(server.is_up());
    let refs = stdout(&git_ok(work.path(), &["ls-remote", &authed]).await?);
    assert!(refs.contains("refs/heads/main"), "refs after up(): {refs}");
    std::fs::write(a.join("f"), "after")?;
    git_ok(&a, &["commit", "-am", "after"]).await?;
    git_ok(&a, &["push", "origin", "HEAD:main"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_outage_kills_the_git_processes_of_open_requests() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("backups").await?;
    let mut push = hanging_push(&server, "backups").await?;
    eventually(PROMPT, "http-backend runs for the hanging push", || async {
        server.running_backends() == 1 && !processes_serving(server.root()).is_empty()
    })
    .await?;
    let running = processes_serving(server.root());

    server.down();
    assert_connection_ends(&mut push).await?;
    eventually(
        PROMPT,
        "the push's git processes are killed and reaped",
        || async { server.running_backends() == 0 && !running.iter().any(exists) },
    )
    .await?;
    assert!(processes_serving(server.root()).is_empty());
    server.up()?;
    let refs = git_ok(
        Path::new("/"),
        &["ls-remote", &server.url_with_credentials("backups")],
    )
    .await?;
    assert!(stdout(&refs).is_empty(), "an empty repository has no refs");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_drop_kills_and_reaps_its_git_processes_and_removes_the_root() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    server.create_repo("backups").await?;
    let root: PathBuf = server.root().to_owned();
    let addr = server.local_addr();
    let mut push = hanging_push(&server, "backups").await?;
    eventually(
        PROMPT,
        "http-backend and receive-pack run for the hanging push",
        || async { processes_serving(&root).len() >= 2 },
    )
    .await?;
    let running = processes_serving(&root);

    drop(server);
    assert!(!root.exists(), "{} survived the server", root.display());
    assert_connection_ends(&mut push).await?;
    assert!(refuses_connections(addr).await);
    eventually(
        PROMPT,
        "no git process of the dropped server exists, not even a zombie",
        || async { !running.iter().any(exists) && processes_serving(&root).is_empty() },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_serves_clone_and_push_through_libgit2() -> Result<()> {
    let server = EmbeddedGitServer::start().await?;
    let url = server.create_repo("libgit2").await?;
    let username = server.username().to_owned();
    let password = server.password().to_owned();
    let work = tempfile::tempdir()?;
    let dir = work.path().to_owned();
    let asked = Arc::new(AtomicUsize::new(0));
    let asked_in_task = Arc::clone(&asked);

    let cloned = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let callbacks = || {
            let mut callbacks = git2::RemoteCallbacks::new();
            let asked = Arc::clone(&asked_in_task);
            let (username, password) = (username.clone(), password.clone());
            callbacks.credentials(move |_url, _user, _allowed| {
                if asked.fetch_add(1, Ordering::SeqCst) > 10 {
                    return Err(git2::Error::from_str("credentials rejected repeatedly"));
                }
                git2::Cred::userpass_plaintext(&username, &password)
            });
            callbacks
        };

        // Push a first commit from a fresh repository.
        let repo = git2::Repository::init(dir.join("origin"))?;
        std::fs::write(dir.join("origin/manifest.json"), b"{\"format\":1}")?;
        let mut index = repo.index()?;
        index.add_path(Path::new("manifest.json"))?;
        index.write()?;
        let tree = repo.find_tree(index.write_tree()?)?;
        let signature = git2::Signature::now("phasecheck", "phasecheck@example.invalid")?;
        repo.commit(
            Some("refs/heads/main"),
            &signature,
            &signature,
            "backup 1",
            &tree,
            &[],
        )?;
        let mut remote = repo.remote("origin", &url)?;
        let rejected = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut push_callbacks = callbacks();
        let rejected_in_cb = Arc::clone(&rejected);
        push_callbacks.push_update_reference(move |reference, status| {
            if let Some(status) = status {
                rejected_in_cb
                    .lock()
                    .unwrap()
                    .push(format!("{reference}: {status}"));
            }
            Ok(())
        });
        let mut push_options = git2::PushOptions::new();
        push_options.remote_callbacks(push_callbacks);
        remote.push(
            &["refs/heads/main:refs/heads/main"],
            Some(&mut push_options),
        )?;
        ensure!(
            rejected.lock().unwrap().is_empty(),
            "push rejected: {:?}",
            rejected.lock()
        );

        // Clone it back.
        let mut fetch_options = git2::FetchOptions::new();
        fetch_options.remote_callbacks(callbacks());
        let clone = git2::build::RepoBuilder::new()
            .fetch_options(fetch_options)
            .clone(&url, &dir.join("clone"))?;
        ensure!(
            clone.head()?.shorthand().ok() == Some("main"),
            "clone's HEAD is not main"
        );
        Ok(std::fs::read(dir.join("clone/manifest.json"))?)
    })
    .await??;

    assert_eq!(cloned, b"{\"format\":1}");
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "libgit2 never asked for credentials"
    );
    Ok(())
}

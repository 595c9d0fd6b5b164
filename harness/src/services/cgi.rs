//! A CGI/1.1 gateway, enough for `git http-backend`: runs the program once per request with the
//! request's meta-variables in its environment, streams the request body to its stdin, parses the
//! `Status:` line and headers it prints, and streams the rest of its stdout back as the body.
//!
//! Every program runs in its own process group, registered in [`ProcessGroups`] until it has
//! finished. A per-request supervisor task owns the child: when the response has been streamed it
//! reaps the child; when the client goes away first (connection closed or aborted by an outage)
//! it kills the whole group and reaps the child. [`ProcessGroups::kill_all`] kills every group
//! synchronously, for the server's `Drop`; the supervisors still reap.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, Incoming};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

/// The response body type of the embedded HTTP services.
pub(crate) type HttpBody = BoxBody<Bytes, std::io::Error>;

/// The CGI header block may not be larger than this.
const MAX_HEAD: usize = 64 * 1024;
/// How much of a program's stderr is kept for the log.
const MAX_STDERR: usize = 16 * 1024;
/// Chunks of the response body in flight between the program and the connection.
const BODY_CHANNEL: usize = 8;

/// A complete response with a small text body.
pub(crate) fn text_response(status: StatusCode, text: impl Into<String>) -> Response<HttpBody> {
    let mut response = Response::new(
        http_body_util::Full::new(Bytes::from(text.into()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// One CGI invocation: program, arguments, working directory and the complete environment
/// (nothing is inherited).
#[derive(Debug)]
pub(crate) struct CgiCommand {
    /// The program.
    pub(crate) program: PathBuf,
    /// Its arguments.
    pub(crate) args: Vec<OsString>,
    /// Its working directory.
    pub(crate) cwd: PathBuf,
    /// Its whole environment.
    pub(crate) env: Vec<(OsString, OsString)>,
}

/// Runs `command` for one request and answers with what it prints.
pub(crate) async fn run(
    command: CgiCommand,
    body: Incoming,
    groups: &Arc<ProcessGroups>,
) -> Response<HttpBody> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .current_dir(&command.cwd)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(program = %command.program.display(), %error, "cannot start CGI program");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start {}: {error}\n", command.program.display()),
            );
        }
    };
    let Some(pid) = child.id() else {
        return text_response(StatusCode::INTERNAL_SERVER_ERROR, "CGI program vanished\n");
    };
    // process_group(0): the group id is the child's pid.
    let group = groups.register(Pid::from_raw(pid.cast_signed()));
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return text_response(StatusCode::INTERNAL_SERVER_ERROR, "CGI pipes missing\n");
    };
    let (head_tx, head_rx) = oneshot::channel();
    // NB: this request's future holds `body_rx` from here on, and the response body after it, so
    // the supervisor sees the client go away as `body_tx.closed()` at any point.
    let (body_tx, body_rx) = mpsc::channel(BODY_CHANNEL);
    let program = command.program.display().to_string();
    tokio::spawn(async move {
        let stderr = tokio::spawn(read_capped(stderr, MAX_STDERR));
        let watcher = body_tx.clone();
        let outcome = tokio::select! {
            outcome = relay(stdin, stdout, body, head_tx, body_tx) => outcome,
            () = watcher.closed() => Outcome::Abandoned,
        };
        drop(watcher);
        match outcome {
            Outcome::Completed => group.forget(),
            Outcome::Abandoned | Outcome::Failed => group.kill(),
        }
        let status = child.wait().await;
        let stderr = stderr.await.unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        match status {
            Ok(status) if status.success() || outcome != Outcome::Completed => {
                tracing::debug!(%program, ?outcome, %status, %stderr, "CGI program finished");
            }
            Ok(status) => tracing::warn!(%program, %status, %stderr, "CGI program failed"),
            Err(error) => tracing::warn!(%program, %error, "cannot reap CGI program"),
        }
    });
    match head_rx.await {
        Ok(Ok(head)) => {
            let mut response = Response::new(CgiBody { rx: body_rx }.boxed());
            *response.status_mut() = head.status;
            *response.headers_mut() = head.headers;
            response
        }
        Ok(Err(problem)) => {
            tracing::warn!(%problem, "bad CGI response");
            text_response(StatusCode::BAD_GATEWAY, format!("{problem}\n"))
        }
        Err(_) => text_response(StatusCode::BAD_GATEWAY, "CGI program ended early\n"),
    }
}

/// How a request's exchange with its program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The program's output was relayed to its end.
    Completed,
    /// The client went away first.
    Abandoned,
    /// The program's output was not a CGI response, or reading it failed.
    Failed,
}

/// Feeds the request body to the program while relaying its response.
async fn relay(
    stdin: ChildStdin,
    mut stdout: ChildStdout,
    body: Incoming,
    head_tx: oneshot::Sender<Result<CgiHead, String>>,
    body_tx: mpsc::Sender<std::io::Result<Bytes>>,
) -> Outcome {
    let feed = feed(body, stdin);
    let pump = async move {
        let (head, rest) = match read_head(&mut stdout).await {
            Ok(head) => head,
            Err(problem) => {
                let _ = head_tx.send(Err(problem));
                return Outcome::Failed;
            }
        };
        if head_tx.send(Ok(head)).is_err() {
            return Outcome::Abandoned;
        }
        if !rest.is_empty() && body_tx.send(Ok(rest)).await.is_err() {
            return Outcome::Abandoned;
        }
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(64 * 1024);
            match stdout.read_buf(&mut buf).await {
                Ok(0) => return Outcome::Completed,
                Ok(_) => {
                    if body_tx.send(Ok(buf.split().freeze())).await.is_err() {
                        return Outcome::Abandoned;
                    }
                }
                Err(error) => {
                    let _ = body_tx.send(Err(error)).await;
                    return Outcome::Failed;
                }
            }
        }
    };
    tokio::pin!(feed, pump);
    let mut fed = false;
    loop {
        tokio::select! {
            result = &mut feed, if !fed => {
                fed = true;
                if let Err(error) = result {
                    // The program stopped reading (it answered early) or the client's body broke;
                    // either way the program sees the end of its input and its output tells.
                    tracing::debug!(%error, "request body not fully passed to CGI program");
                }
            }
            outcome = &mut pump => return outcome,
        }
    }
}

/// Copies the request body to the program's stdin, then closes it.
async fn feed(mut body: Incoming, mut stdin: ChildStdin) -> std::io::Result<()> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(std::io::Error::other)?;
        if let Ok(data) = frame.into_data() {
            stdin.write_all(&data).await?;
        }
    }
    stdin.shutdown().await
}

/// Reads up to `cap` bytes for the log and discards the rest, so the program never blocks on a
/// full pipe.
async fn read_capped(mut reader: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// The status and headers of a CGI response.
#[derive(Debug)]
struct CgiHead {
    status: StatusCode,
    headers: HeaderMap,
}

/// Reads the header block; returns it and the body bytes read past it.
async fn read_head(stdout: &mut ChildStdout) -> Result<(CgiHead, Bytes), String> {
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        if let Some((head_end, body_start)) = find_head_end(&buf) {
            let head = parse_head(&buf[..head_end])?;
            let rest = buf.split_off(body_start).freeze();
            return Ok((head, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("CGI headers longer than {MAX_HEAD} bytes"));
        }
        match stdout.read_buf(&mut buf).await {
            Ok(0) => {
                return Err(format!(
                    "CGI program ended before its headers ({} bytes of output)",
                    buf.len()
                ));
            }
            Ok(_) => {}
            Err(error) => return Err(format!("cannot read CGI output: {error}")),
        }
    }
}

/// Where the header block ends (exclusive) and the body starts: at the first empty line, which
/// may end in `\n` or `\r\n`.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let blank_at = |i: usize| match buf.get(i..) {
        Some([b'\n', ..]) => Some(i + 1),
        Some([b'\r', b'\n', ..]) => Some(i + 2),
        _ => None,
    };
    if let Some(body_start) = blank_at(0) {
        return Some((0, body_start));
    }
    buf.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(i, _)| blank_at(i + 1).map(|body_start| (i + 1, body_start)))
}

/// Parses `Name: value` lines; `Status: NNN reason` becomes the status.
fn parse_head(head: &[u8]) -> Result<CgiHead, String> {
    let mut status = None;
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!(
                "malformed CGI header line {:?}",
                String::from_utf8_lossy(line)
            ));
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"status") {
            let code = value.split(|&b| b == b' ').next().unwrap_or_default();
            status = Some(
                StatusCode::from_bytes(code)
                    .map_err(|_| format!("bad CGI status {:?}", String::from_utf8_lossy(value)))?,
            );
            continue;
        }
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("bad CGI header name {:?}", String::from_utf8_lossy(name)))?;
        if is_hop_by_hop(&name) {
            continue;
        }
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("bad value for CGI header {name}"))?;
        headers.append(name, value);
    }
    let status = status.unwrap_or(if headers.contains_key(http::header::LOCATION) {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    Ok(CgiHead { status, headers })
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        HeaderName::from_static("keep-alive"),
    ]
    .contains(name)
}

/// The response body: what the supervisor relays from the program's stdout.
struct CgiBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl hyper::body::Body for CgiBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

/// The process groups of the CGI programs still running.
#[derive(Debug, Default)]
pub(crate) struct ProcessGroups {
    state: Mutex<GroupsState>,
}

#[derive(Debug, Default)]
struct GroupsState {
    next: u64,
    live: HashMap<u64, Pid>,
    /// Set by [`ProcessGroups::kill_all`]: groups registered later are killed at once.
    closed: bool,
}

impl ProcessGroups {
    fn lock(&self) -> MutexGuard<'_, GroupsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tracks a group until [`GroupGuard::forget`] or [`GroupGuard::kill`] (or its drop).
    fn register(self: &Arc<Self>, pgid: Pid) -> GroupGuard {
        let mut state = self.lock();
        let id = state.next;
        state.next += 1;
        if state.closed {
            let _ = killpg(pgid, Signal::SIGKILL);
        } else {
            state.live.insert(id, pgid);
        }
        GroupGuard {
            groups: Arc::clone(self),
            id,
        }
    }

    /// Kills every group still running and every group registered from now on.
    pub(crate) fn kill_all(&self) {
        let mut state = self.lock();
        state.closed = true;
        for (_, pgid) in state.live.drain() {
            // NB: the leader is not reaped before its guard leaves the registry, so the group id
            // cannot have been reused by an unrelated process.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    /// How many groups are running.
    pub(crate) fn running(&self) -> usize {
        self.lock().live.len()
    }
}

/// A registered process group; killed when dropped unless forgotten.
struct GroupGuard {
    groups: Arc<ProcessGroups>,
    id: u64,
}

impl GroupGuard {
    /// The program finished on its own: stop tracking it (before reaping it).
    fn forget(self) {
        self.groups.lock().live.remove(&self.id);
    }

    /// Kills the group (before reaping its leader).
    fn kill(self) {
        drop(self);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let mut state = self.groups.lock();
        if let Some(pgid) = state.live.remove(&self.id) {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_ends_at_the_first_empty_line_with_either_line_ending() {
        assert_eq!(find_head_end(b"A: b\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(find_head_end(b"A: b\n\nbody"), Some((5, 6)));
        assert_eq!(find_head_end(b"\r\nbody"), Some((0, 2)));
        assert_eq!(find_head_end(b"A: b\r\nC: d\r\n"), None);
    }

    #[test]
    fn status_line_sets_the_status_and_other_lines_become_headers() {
        let head =
            parse_head(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: 0\r\n")
                .unwrap();
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert_eq!(head.headers["content-type"], "text/plain");
        assert_eq!(head.headers["expires"], "0");
        assert!(!head.headers.contains_key("status"));
    }

    #[test]
    fn missing_status_means_ok_and_hop_by_hop_headers_are_dropped() {
        let head = parse_head(b"Content-Type: x\nTransfer-Encoding: chunked\n").unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert!(!head.headers.contains_key("transfer-encoding"));
    }

    #[test]
    fn a_line_without_colon_is_rejected() {
        assert!(parse_head(b"garbage\r\n").is_err());
    }
}

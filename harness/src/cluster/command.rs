//! Running one CLI command as a child process: a time limit, killed when dropped, its output
//! collected (and optionally echoed line by line), failures reported with the command line and
//! the end of what it printed.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{Error, Result};

/// How many lines of a failed command's output an error quotes.
pub(super) const TAIL_LINES: usize = 20;

/// How long to keep reading a command's pipes after it exited (something it started may hold
/// them open).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How often a spawn that failed with "text file busy" is retried.
const BUSY_RETRIES: u32 = 5;

/// One command to run.
pub(super) struct Command<'a> {
    program: &'a OsStr,
    args: Vec<OsString>,
    timeout: Duration,
    echo: bool,
}

/// What a finished command printed.
pub(super) struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to standard output.
    pub stdout: String,
    /// The last [`TAIL_LINES`] lines of standard error, or of standard output when standard error
    /// is empty.
    pub tail: String,
}

impl<'a> Command<'a> {
    /// `program args…`, given `timeout` to finish.
    pub fn new<S: AsRef<OsStr>>(program: &'a OsStr, args: &[S], timeout: Duration) -> Self {
        Self {
            program,
            args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
            timeout,
            echo: false,
        }
    }

    /// Hands every line the command prints to the `progress` callback of [`Self::run`].
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// The command as a shell would take it.
    pub fn line(&self) -> String {
        command_line(self.program, &self.args)
    }

    /// Runs the command; any exit status is an `Ok`.
    pub async fn run<P: Fn(&str) + ?Sized>(&self, progress: &P) -> Result<Output> {
        let command = self.line();
        tracing::debug!(%command, "running");
        let mut child = self.spawn().await.map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut out = Vec::new();
        let mut err = Vec::new();
        let echo = self.echo.then_some(progress);
        let finished = async {
            let pumps =
                async { tokio::join!(pump(stdout, &mut out, echo), pump(stderr, &mut err, echo)) };
            let mut pumps = std::pin::pin!(pumps);
            tokio::select! {
                _ = &mut pumps => child.wait().await,
                status = child.wait() => {
                    let _ = tokio::time::timeout(PIPE_GRACE, &mut pumps).await;
                    status
                }
            }
        };
        let status = tokio::time::timeout(self.timeout, finished)
            .await
            .map_err(|_| Error::Timeout {
                command: command.clone(),
                after: self.timeout,
            })?
            .map_err(|source| Error::Spawn { command, source })?;
        let tail = if err.iter().any(|l| !l.trim().is_empty()) {
            tail(&err)
        } else {
            tail(&out)
        };
        Ok(Output {
            status,
            stdout: out.join("\n"),
            tail,
        })
    }

    /// Runs the command; an unsuccessful exit is [`Error::Failed`]. Returns its standard output.
    pub async fn run_ok<P: Fn(&str) + ?Sized>(&self, progress: &P) -> Result<String> {
        let output = self.run(progress).await?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(self.failed(output))
        }
    }

    /// [`Error::Failed`] for this command and what it printed.
    pub fn failed(&self, output: Output) -> Error {
        Error::Failed {
            command: self.line(),
            status: output.status,
            output: if output.tail.is_empty() {
                "(it printed nothing)".to_owned()
            } else {
                output.tail
            },
        }
    }

    async fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let mut attempt = 0;
        loop {
            let spawned = tokio::process::Command::new(self.program)
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn();
            match spawned {
                // NB: a program just written (a downloaded tool, a test's fake) may still be open
                // for writing in a process another thread is forking; that passes in moments.
                Err(e)
                    if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && attempt < BUSY_RETRIES =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                other => return other,
            }
        }
    }
}

/// Reads `pipe` line by line into `lines`, handing each to `echo`.
async fn pump<R: AsyncRead + Unpin, P: Fn(&str) + ?Sized>(
    pipe: R,
    lines: &mut Vec<String>,
    echo: Option<&P>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    // NB: read_until rather than lines(): a tool's output need not be UTF-8.
    while let Ok(n) = reader.read_until(b'\n', &mut buf).await {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']).to_owned();
        if let Some(echo) = echo
            && !line.trim().is_empty()
        {
            echo(&line);
        }
        lines.push(line);
        buf.clear();
    }
}

/// The last [`TAIL_LINES`] non-empty lines, joined.
fn tail(lines: &[String]) -> String {
    let mut tail: VecDeque<&str> = VecDeque::with_capacity(TAIL_LINES);
    for line in lines.iter().map(|l| l.trim_end()).filter(|l| !l.is_empty()) {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    Vec::from(tail).join("\n")
}

/// `program args…`, quoting what a shell would split or expand.
pub(super) fn command_line(program: &OsStr, args: &[OsString]) -> String {
    let mut line = quote(&program.to_string_lossy());
    for arg in args {
        let _ = write!(line, " {}", quote(&arg.to_string_lossy()));
    }
    line
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args: Vec<OsString> = [
            "network",
            "inspect",
            "kind",
            "--format",
            "{{.Gateway}} x",
            "it's",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(
            command_line(OsStr::new("docker"), &args),
            r"docker network inspect kind --format '{{.Gateway}} x' 'it'\''s'"
        );
    }

    #[test]
    fn the_tail_keeps_the_last_twenty_non_empty_lines() {
        let lines: Vec<String> = (1..=30)
            .flat_map(|i| [format!("line {i}"), String::new()])
            .collect();
        let tail = tail(&lines);
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.starts_with("line 11\n"));
        assert!(tail.ends_with("line 30"));
    }

    #[tokio::test]
    async fn a_failed_command_reports_its_line_status_and_stderr_tail() {
        let command = Command::new(
            OsStr::new("sh"),
            &["-c", "echo out; echo oops >&2; exit 3"],
            Duration::from_secs(10),
        );
        let e = command.run_ok(&|_: &str| {}).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("`sh -c 'echo out; echo oops >&2; exit 3'` failed"),
            "{text}"
        );
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.ends_with("\noops"), "{text}");
    }

    #[tokio::test]
    async fn echoed_lines_reach_the_progress_callback() {
        let seen = std::sync::Mutex::new(Vec::new());
        let command = Command::new(
            OsStr::new("sh"),
            &["-c", "echo one; echo two >&2"],
            Duration::from_secs(10),
        )
        .echo();
        let stdout = command
            .run_ok(&|line: &str| seen.lock().unwrap().push(line.to_owned()))
            .await
            .unwrap();
        assert_eq!(stdout, "one");
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
    }

    #[tokio::test]
    async fn a_command_that_outlives_its_timeout_is_a_timeout_error() {
        let command = Command::new(OsStr::new("sleep"), &["30"], Duration::from_millis(200));
        let started = std::time::Instant::now();
        let e = command.run(&|_: &str| {}).await.err().unwrap();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

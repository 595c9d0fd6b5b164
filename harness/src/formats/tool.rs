//! Running a backup tool (`restic`, `litestream`, `sqlite3`) with an environment of its own:
//! only what the caller passes, `PATH` and a scratch `HOME`, never the host's variables.

use std::path::Path;
use std::time::Duration;

use super::{Error, Result};

/// Limit on one command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// One program: its name for messages, the program and how to install it.
pub(crate) struct Tool<'a> {
    pub name: &'static str,
    pub program: &'a Path,
    pub install: &'static str,
}

/// What one run gets besides its arguments.
#[derive(Default)]
pub(crate) struct Input<'a> {
    /// The only variables it sees, besides `PATH` and a scratch `HOME`.
    pub env: &'a [(&'a str, &'a str)],
    /// Written to its standard input (else it reads nothing).
    pub stdin: Option<Vec<u8>>,
    /// Its working directory (else the harness's).
    pub cwd: Option<&'a Path>,
}

/// Runs `tool` with `args` and `input`; its output when it exits 0.
pub(crate) async fn run(tool: &Tool<'_>, args: &[&str], input: Input<'_>) -> Result<Vec<u8>> {
    let Input { env, stdin, cwd } = input;
    use tokio::io::AsyncWriteExt as _;

    let home = tempfile::Builder::new()
        .prefix("phasecheck-tool-home-")
        .tempdir()
        .map_err(Error::local(
            "create a scratch HOME in",
            std::env::temp_dir(),
        ))?;
    let mut command = tokio::process::Command::new(tool.program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    // NB: the SQL holds the dataset, not secrets; the line names the command without it.
    let line = format!(
        "{} {}",
        tool.name,
        args.iter()
            .map(|a| if a.len() > 80 { "…" } else { a })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = match command.spawn() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ToolMissing {
                program: tool.name,
                install: tool.install,
            });
        }
        Err(e) => return Err(Error::local("run", tool.program)(e)),
        Ok(child) => child,
    };
    let finished = async move {
        let mut child = child;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // NB: written while the output is read below would need two tasks; the SQL goes in
            // first and sqlite3 prints nothing large while it executes it.
            pipe.write_all(&input).await?;
            drop(pipe);
        }
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, finished).await {
        Err(_) => {
            return Err(Error::ToolOutput {
                command: line,
                problem: format!("no result within {COMMAND_TIMEOUT:?}"),
            });
        }
        Ok(Err(e)) => return Err(Error::local("run", tool.program)(e)),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(super::tool_failed(line, &output));
    }
    Ok(output.stdout)
}

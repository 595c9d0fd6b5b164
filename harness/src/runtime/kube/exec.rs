//! Running commands in containers (the `exec` subresource over a websocket).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Error, KubeRuntime, Result};

impl KubeRuntime {
    /// Runs `argv` in the running `container`, feeding it `stdin` when given, and returns its
    /// raw standard output.
    ///
    /// NB: stdin is held open until the command has ended: on API servers without the v5
    /// stream protocol, closing stdin closes the whole session and loses the exit status, so a
    /// command fed on stdin must know how much to read (e.g. a `--size` argument).
    pub async fn exec_bytes(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecBytes> {
        let failed = |problem: String| Error::Exec {
            ns: ns.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            argv: argv.to_vec(),
            problem,
        };
        let params = AttachParams::default()
            .container(container)
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true);
        let mut process = self
            .pod_api(ns)
            .exec(pod, argv.to_vec(), &params)
            .await
            .map_err(Error::api(format!(
                "exec in {ns}/{pod} container {container}"
            )))?;
        let (Some(mut stdout), Some(mut stderr), Some(status)) =
            (process.stdout(), process.stderr(), process.take_status())
        else {
            return Err(failed(
                "the exec session has no stdout, stderr or status".into(),
            ));
        };
        let mut writer = process.stdin();
        let feed = async {
            if let (Some(writer), Some(bytes)) = (writer.as_mut(), stdin.as_deref()) {
                writer.write_all(bytes).await?;
                writer.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (fed, read_out, read_err) = tokio::join!(
            feed,
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err)
        );
        fed.map_err(|e| failed(format!("writing stdin: {e}")))?;
        read_out
            .and(read_err)
            .map_err(|e| failed(format!("reading output: {e}")))?;
        let status = status.await;
        drop(writer);
        process
            .join()
            .await
            .map_err(|e| failed(format!("the exec session failed: {e}")))?;
        let exit_code = exit_code(status.as_ref()).map_err(failed)?;
        Ok(ExecBytes {
            exit_code,
            stdout: out,
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }
}

/// A command's end with its raw standard output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecBytes {
    /// The exit code.
    pub exit_code: i32,
    /// Standard output, as sent.
    pub stdout: Vec<u8>,
    /// Standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

/// The exit code an exec session's final `Status` reports.
fn exit_code(status: Option<&Status>) -> Result<i32, String> {
    let Some(status) = status else {
        return Err("the API server sent no exit status".into());
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let reason = status.reason.as_deref().unwrap_or_default();
    if reason == "NonZeroExitCode" {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_deref())
            .unwrap_or_default()
            .iter()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref()?.parse().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(format!(
        "{} ({})",
        status.message.as_deref().unwrap_or("no message"),
        if reason.is_empty() {
            "no reason"
        } else {
            reason
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_statuses_map_to_exit_codes_or_errors() {
        let ok: Status = serde_json::from_value(serde_json::json!({
            "metadata": {}, "status": "Success"
        }))
        .unwrap();
        assert_eq!(exit_code(Some(&ok)), Ok(0));
        let nonzero: Status = serde_json::from_value(serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }))
        .unwrap();
        assert_eq!(exit_code(Some(&nonzero)), Ok(3));
        let missing: Status = serde_json::from_value(serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": "exec: \"cat\": executable file not found in $PATH: unknown"
        }))
        .unwrap();
        assert!(exit_code(Some(&missing)).unwrap_err().contains("not found"));
        assert!(exit_code(None).is_err());
    }
}

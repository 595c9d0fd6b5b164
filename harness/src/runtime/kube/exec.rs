//! Running commands in containers (the `exec` subresource over a websocket).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use tokio::io::AsyncReadExt;

use super::{Error, KubeRuntime, Result};
use crate::runtime::ExecOutput;

impl KubeRuntime {
    /// Runs `argv` in the running `container`. The image must contain the program: scratch
    /// images have no shell or coreutils.
    pub async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<ExecOutput> {
        let failed = |problem: String| Error::Exec {
            ns: ns.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            argv: argv.to_vec(),
            problem,
        };
        let params = AttachParams::default()
            .container(container)
            .stdin(false)
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
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (read_out, read_err) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        read_out
            .and(read_err)
            .map_err(|e| failed(format!("reading output: {e}")))?;
        let status = status.await;
        process
            .join()
            .await
            .map_err(|e| failed(format!("the exec session failed: {e}")))?;
        let exit_code = exit_code(status.as_ref()).map_err(failed)?;
        Ok(ExecOutput {
            exit_code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    /// The environment of `container`'s main process, read from `/proc/1/environ` with `cat`
    /// (so the image needs `cat`; scratch images fail with [`Error::Exec`]).
    pub async fn process_env(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<BTreeMap<String, String>> {
        let argv = ["cat".to_owned(), "/proc/1/environ".to_owned()];
        let out = self.exec(ns, pod, container, &argv).await?;
        if out.exit_code != 0 {
            return Err(Error::Exec {
                ns: ns.to_owned(),
                pod: pod.to_owned(),
                container: container.to_owned(),
                argv: argv.to_vec(),
                problem: format!("exit code {}: {}", out.exit_code, out.stderr.trim()),
            });
        }
        Ok(out
            .stdout
            .split('\0')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
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

//! Probe specs and the network checks (`httpGet`, `tcpSocket`); `exec` checks run through the
//! pod, which knows the container's environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProbeKind {
    /// Gates the other two; failing it restarts the container.
    Startup,
    /// Gates readiness.
    Readiness,
    /// Failing it restarts the container.
    Liveness,
}

impl ProbeKind {
    /// Lower-case name for messages.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Liveness => "liveness",
        }
    }
}

/// What a probe does.
#[derive(Clone, Debug)]
pub(super) enum Action {
    /// `GET path` over HTTP/1.1; 200-399 passes.
    Http {
        /// Where to connect.
        addr: SocketAddr,
        /// Path and query.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// A TCP connection that opens passes.
    Tcp {
        /// Where to connect.
        addr: SocketAddr,
    },
    /// A command in the container that exits 0 passes.
    Exec {
        /// The command (no shell, no expansion).
        argv: Vec<String>,
    },
}

/// A probe with its timing, defaults filled in as Kubernetes does.
#[derive(Clone, Debug)]
pub(super) struct ProbeSpec {
    pub kind: ProbeKind,
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeSpec {
    /// Reads `probe` of a container with `ports` in a pod at `ip`.
    pub(super) fn new(
        kind: ProbeKind,
        probe: &Probe,
        ports: &[ContainerPort],
        ip: Ipv4Addr,
    ) -> Result<Self, String> {
        let port = |p: &IntOrString| -> Result<u16, String> {
            match p {
                IntOrString::Int(n) => {
                    u16::try_from(*n).map_err(|_| format!("port {n} is out of range"))
                }
                IntOrString::String(name) => ports
                    .iter()
                    .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                    .and_then(|cp| u16::try_from(cp.container_port).ok())
                    .ok_or_else(|| format!("no container port named `{name}`")),
            }
        };
        let host = |h: &Option<String>| -> Result<IpAddr, String> {
            match h.as_deref() {
                None | Some("") => Ok(IpAddr::V4(ip)),
                Some(h) => h
                    .parse()
                    .map_err(|_| format!("host `{h}` is not an IP address")),
            }
        };
        let action = if let Some(get) = &probe.http_get {
            if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                return Err("only HTTP httpGet probes are supported".into());
            }
            Action::Http {
                addr: SocketAddr::new(host(&get.host)?, port(&get.port)?),
                path: get
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or("/".into()),
                headers: get
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::Tcp {
                addr: SocketAddr::new(host(&tcp.host)?, port(&tcp.port)?),
            }
        } else if let Some(exec) = &probe.exec {
            Action::Exec {
                argv: exec.command.clone().unwrap_or_default(),
            }
        } else {
            return Err("a probe needs httpGet, tcpSocket or exec".into());
        };
        let secs = |v: Option<i32>, default: i32, min: i32| -> Duration {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        Ok(ProbeSpec {
            kind,
            action,
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        })
    }
}

/// One HTTP GET; `Ok` for a 2xx or 3xx status.
pub(super) async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 8192 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET http://{addr}{path}: no HTTP status in the answer"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("GET http://{addr}{path}: HTTP {status}"))
    }
}

/// One TCP connect.
pub(super) async fn tcp_connect(addr: SocketAddr) -> Result<(), String> {
    TcpStream::connect(addr)
        .await
        .map(drop)
        .map_err(|e| format!("connect {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_get_passes_on_2xx_and_fails_on_5xx_or_refusal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for answer in [
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.0 503 Nope\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(http_get(addr, "/healthz", &[]).await, Ok(()));
        let err = http_get(addr, "/healthz", &[]).await.unwrap_err();
        assert!(err.contains("HTTP 503"), "{err}");
        server.await.unwrap();
        assert!(http_get(addr, "/", &[]).await.is_err());
    }
}

//! What the API server's version allows: native sidecars arrived (on by default) in 1.29.

use k8s_openapi::apimachinery::pkg::version::Info;

use super::{Error, KubeRuntime, Result};

/// The first Kubernetes minor version (1.x) that runs native sidecars by default.
pub const NATIVE_SIDECARS_SINCE: u32 = 29;

impl KubeRuntime {
    /// The server's `/version`.
    pub async fn server_version(&self) -> Result<Info> {
        self.client
            .apiserver_version()
            .await
            .map_err(Error::api("read the API server's version".to_owned()))
    }

    /// Whether the server runs native sidecars (init containers with `restartPolicy: Always`).
    pub async fn supports_native_sidecars(&self) -> Result<bool> {
        Ok(native_sidecars_supported(&self.server_version().await?))
    }
}

/// Whether `info` is Kubernetes 1.29 or later; `minor` may carry a suffix (`"29+"` on GKE/EKS).
pub fn native_sidecars_supported(info: &Info) -> bool {
    let number = |s: &str| -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number(&info.major), number(&info.minor)) {
        (Some(major), _) if major > 1 => true,
        (Some(1), Some(minor)) => minor >= NATIVE_SIDECARS_SINCE,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            ..Info::default()
        }
    }

    #[test]
    fn native_sidecars_need_kubernetes_1_29_or_later() {
        assert!(!native_sidecars_supported(&info("1", "28")));
        assert!(native_sidecars_supported(&info("1", "29")));
        assert!(native_sidecars_supported(&info("1", "33+")));
        assert!(!native_sidecars_supported(&info("", "")));
    }
}

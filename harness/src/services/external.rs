//! External backup stores, for drills against the real thing: an S3 bucket and a git repository
//! someone else runs, described by environment variables.
//!
//! | variable | meaning |
//! |---|---|
//! | `PHASECHECK_S3_ENDPOINT` | S3 endpoint URL (path-style addressing) |
//! | `PHASECHECK_S3_BUCKET` | an existing bucket |
//! | `PHASECHECK_S3_REGION` | region, default `us-east-1` |
//! | `PHASECHECK_S3_PREFIX` | key prefix under which phasecheck works, default empty |
//! | `PHASECHECK_S3_ACCESS_KEY_ID`, `PHASECHECK_S3_SECRET_ACCESS_KEY` | credentials |
//! | `PHASECHECK_GIT_URL` | an existing repository (smart HTTP, `http://` only) |
//! | `PHASECHECK_GIT_USERNAME`, `PHASECHECK_GIT_PASSWORD` | basic-auth credentials (optional) |
//!
//! Every credential may instead come from a file named by the variable with `_FILE` appended
//! (e.g. `PHASECHECK_S3_SECRET_ACCESS_KEY_FILE`). Credentials are never printed: errors name the
//! variable, and `Debug` shows `<redacted>`.
//!
//! Scenarios share the bucket and the repository: each works under its own key prefix
//! (`<prefix>phasecheck/<namespace>/`) or on its own branch (`phasecheck/<namespace>`), and
//! removes it afterwards. External stores have no outage switch.

use std::fmt;
use std::path::PathBuf;

use crate::subject::Backend;

/// A bad or incomplete description of the external services.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// A variable the configuration needs is not set.
    #[error("{var} is not set: {why}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// Neither backend is configured.
    #[error(
        "no external service is configured: set PHASECHECK_S3_ENDPOINT (and PHASECHECK_S3_BUCKET, credentials) and/or PHASECHECK_GIT_URL"
    )]
    Nothing,
    /// A `*_FILE` variable names a file that cannot be read.
    #[error("{var}: cannot read {}: {source}", path.display())]
    File {
        /// The variable.
        var: String,
        /// The file it names.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A git URL over https, which phasepod's git client (libgit2 without TLS) cannot reach.
    #[error(
        "PHASECHECK_GIT_URL: `{value}` is https; phasepod's git client speaks plain http:// only (libgit2 is built without TLS), so use an http:// endpoint reachable from the cluster"
    )]
    GitHttps {
        /// The URL (not a secret).
        value: String,
    },
    /// A URL that is not http(s).
    #[error("{var}: `{value}` is not an http:// or https:// URL")]
    BadUrl {
        /// The variable.
        var: &'static str,
        /// Its value (a URL, not a secret).
        value: String,
    },
}

/// An external S3 bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalS3 {
    /// Endpoint URL.
    pub endpoint: String,
    /// Bucket (must exist).
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Key prefix phasecheck works under.
    pub prefix: String,
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// An external git repository.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalGit {
    /// Repository URL (smart HTTP).
    pub url: String,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
}

/// The external services of a drill: either or both backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalServices {
    /// The S3 bucket, if any.
    pub s3: Option<ExternalS3>,
    /// The git repository, if any.
    pub git: Option<ExternalGit>,
}

impl fmt::Debug for ExternalS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalS3")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for ExternalGit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalGit")
            .field("url", &self.url)
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ExternalServices {
    /// Reads the variables above from the process environment.
    pub fn from_env() -> Result<Self, ExternalError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the variables above through `lookup` (empty values count as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ExternalError> {
        let get = |var: &str| lookup(var).filter(|v| !v.is_empty());
        let secret = |var: &'static str| -> Result<Option<String>, ExternalError> {
            if let Some(value) = get(var) {
                return Ok(Some(value));
            }
            let file_var = format!("{var}_FILE");
            match get(&file_var) {
                None => Ok(None),
                Some(path) => std::fs::read_to_string(&path)
                    .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_owned()))
                    .map_err(|source| ExternalError::File {
                        var: file_var,
                        path: path.into(),
                        source,
                    }),
            }
        };
        let required = |value: Option<String>, var: &'static str, why: &'static str| {
            value.ok_or(ExternalError::Missing { var, why })
        };
        let url = |var: &'static str| -> Result<Option<String>, ExternalError> {
            match get(var) {
                Some(v) if !(v.starts_with("http://") || v.starts_with("https://")) => {
                    Err(ExternalError::BadUrl { var, value: v })
                }
                other => Ok(other),
            }
        };
        let s3 = match url("PHASECHECK_S3_ENDPOINT")? {
            None => None,
            Some(endpoint) => {
                let why = "PHASECHECK_S3_ENDPOINT is set";
                Some(ExternalS3 {
                    endpoint,
                    bucket: required(get("PHASECHECK_S3_BUCKET"), "PHASECHECK_S3_BUCKET", why)?,
                    region: get("PHASECHECK_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                    prefix: get("PHASECHECK_S3_PREFIX").unwrap_or_default(),
                    access_key_id: required(
                        secret("PHASECHECK_S3_ACCESS_KEY_ID")?,
                        "PHASECHECK_S3_ACCESS_KEY_ID",
                        why,
                    )?,
                    secret_access_key: required(
                        secret("PHASECHECK_S3_SECRET_ACCESS_KEY")?,
                        "PHASECHECK_S3_SECRET_ACCESS_KEY",
                        why,
                    )?,
                })
            }
        };
        let git = match url("PHASECHECK_GIT_URL")? {
            None => None,
            // NB: libgit2 is built without TLS here (no `https` feature), in phasepod and the harness.
            Some(url) if url.starts_with("https://") => {
                return Err(ExternalError::GitHttps { value: url });
            }
            Some(url) => Some(ExternalGit {
                url,
                username: secret("PHASECHECK_GIT_USERNAME")?,
                password: secret("PHASECHECK_GIT_PASSWORD")?,
            }),
        };
        if s3.is_none() && git.is_none() {
            return Err(ExternalError::Nothing);
        }
        Ok(ExternalServices { s3, git })
    }

    /// Whether `backend` is configured.
    pub fn has(&self, backend: Backend) -> bool {
        match backend {
            Backend::S3 => self.s3.is_some(),
            Backend::Git => self.git.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |var| map.get(var).cloned()
    }

    #[test]
    fn an_s3_bucket_needs_its_bucket_and_credentials_and_errors_name_the_variable() {
        let e = ExternalServices::from_lookup(lookup(&[
            ("PHASECHECK_S3_ENDPOINT", "https://s3.example.com"),
            ("PHASECHECK_S3_BUCKET", "drills"),
            ("PHASECHECK_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("PHASECHECK_S3_SECRET_ACCESS_KEY"),
            "{e}"
        );
        let e = ExternalServices::from_lookup(lookup(&[])).unwrap_err();
        assert!(matches!(e, ExternalError::Nothing));
        let e = ExternalServices::from_lookup(lookup(&[("PHASECHECK_GIT_URL", "git@host:x")]))
            .unwrap_err();
        assert!(e.to_string().contains("PHASECHECK_GIT_URL"), "{e}");
        let e = ExternalServices::from_lookup(lookup(&[(
            "PHASECHECK_GIT_URL",
            "https://git.example.com/b.git",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("http:// only"), "{e}");
    }

    #[test]
    fn credentials_come_from_files_and_never_show_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cr3t-value\n").unwrap();
        let services = ExternalServices::from_lookup(lookup(&[
            ("PHASECHECK_S3_ENDPOINT", "http://minio:9000"),
            ("PHASECHECK_S3_BUCKET", "drills"),
            ("PHASECHECK_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            (
                "PHASECHECK_S3_SECRET_ACCESS_KEY_FILE",
                file.to_str().unwrap(),
            ),
            ("PHASECHECK_GIT_URL", "http://git.example.com/backups.git"),
            ("PHASECHECK_GIT_PASSWORD", "hunter2"),
        ]))
        .unwrap();
        let s3 = services.s3.as_ref().unwrap();
        assert_eq!(s3.secret_access_key, "s3cr3t-value");
        assert_eq!(s3.region, "us-east-1");
        assert!(services.has(Backend::Git) && services.has(Backend::S3));
        let shown = format!("{services:?}");
        for secret in ["s3cr3t-value", "AKIAEXAMPLE", "hunter2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let missing = ExternalServices::from_lookup(lookup(&[
            ("PHASECHECK_GIT_URL", "http://git.example.com/b.git"),
            ("PHASECHECK_GIT_PASSWORD_FILE", "/nonexistent/pw"),
        ]))
        .unwrap_err();
        assert!(
            missing.to_string().contains("PHASECHECK_GIT_PASSWORD_FILE"),
            "{missing}"
        );
    }
}

//! `install:`: what a subject installs before its cases — an admission webhook that injects
//! the phased containers, or an operator — and how the harness hands a webhook its CA.
//!
//! ```yaml
//! install:
//!   namespace: phasepod-system          # default: phasecheck-install
//!   manifests: [manifests/phasepod-injector.yaml]
//!   caBundle: {deployment: phasepod-injector, port: 8080, path: /ca.crt}
//!   env: {PHASEPOD_BREAK: inject-data-rw} # set on every container of the install's Deployments
//! ```
//!
//! The manifests are applied once per run, into `namespace`, before any case of the subject;
//! the harness waits until every Deployment among them is ready, then reads the CA
//! certificate the webhook made at start-up (`caBundle`: an HTTP GET to a port of the
//! Deployment's pod) and puts it into every webhook configuration of the manifests that has no
//! `clientConfig.caBundle`, then applies the webhook configurations. Everything is removed
//! after the run. The subject's `workload` is then the user's plain workload, and its
//! `containers` roles name the containers the webhook injects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Error, document};

/// The namespace of an install that names none.
pub const DEFAULT_NAMESPACE: &str = "phasecheck-install";

/// A subject's `install:`.
#[derive(Clone, Debug)]
pub struct InstallSpec {
    /// Where the namespaced objects go.
    pub namespace: String,
    /// Manifest files, relative to the profile.
    pub manifests: Vec<PathBuf>,
    /// Where the webhook publishes its CA certificate, if the harness is to hand it over.
    pub ca_bundle: Option<CaBundleSource>,
    /// Env vars set on every container of the install's Deployments (a release's flags).
    pub env: BTreeMap<String, String>,
}

/// An HTTP GET to a port of a Deployment's pod that answers with the webhook's CA (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundleSource {
    /// The Deployment, among the install's manifests.
    pub deployment: String,
    /// The container port.
    pub port: u16,
    /// The path, e.g. `/ca.crt`.
    pub path: String,
}

impl InstallSpec {
    pub(super) fn from_document(
        doc: document::V2Install,
        invalid: &dyn Fn(&str, String) -> Error,
    ) -> Result<Self, Error> {
        let namespace = doc
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let label_ok = !namespace.is_empty()
            && namespace.len() <= 63
            && namespace
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-');
        if !label_ok {
            return Err(invalid(
                "install.namespace",
                format!("`{namespace}` must be a DNS label (lower-case letters, digits, `-`)"),
            ));
        }
        if doc.manifests.is_empty() {
            return Err(invalid(
                "install.manifests",
                "name at least one manifest file (the webhook's or operator's)".into(),
            ));
        }
        let ca_bundle = match doc.ca_bundle {
            None => None,
            Some(source) if !source.path.starts_with('/') => {
                return Err(invalid(
                    "install.caBundle.path",
                    format!("`{}` must start with `/`", source.path),
                ));
            }
            Some(source) => Some(CaBundleSource {
                deployment: source.deployment,
                port: source.port,
                path: source.path,
            }),
        };
        Ok(InstallSpec {
            namespace,
            manifests: doc.manifests,
            ca_bundle,
            env: doc.env,
        })
    }
}

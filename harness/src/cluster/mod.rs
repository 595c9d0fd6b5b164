//! Provisioning the real clusters phasecheck runs on, by driving the `kind`, `minikube` and
//! `docker` CLIs as child processes.
//!
//! [`Cluster::provision`] creates or reuses a cluster for a [`Provider`]:
//!
//! | provider | provision | [`Cluster::kube_context`] | [`Cluster::load_image`] | [`Cluster::host_address`] | [`Cluster::teardown`] (when created) |
//! |---|---|---|---|---|---|
//! | [`Provider::Kind`] | reuse when `kind get clusters` lists the name, else `kind create cluster --name N --config PATH [--image IMG] --wait 180s` | `kind-N` | `kind load docker-image IMG --name N` | this machine's address on the docker network `kind` | `kind delete cluster --name N` |
//! | [`Provider::Minikube`] | reuse when `minikube -p P status` exits 0, else `minikube start -p P` | `P` | `minikube -p P image load IMG` | this machine's address on the docker network `P` (docker driver only) | `minikube delete -p P` |
//! | [`Provider::Existing`] | nothing | the given context (`None`: current) | nothing: the image must be pullable | an error: set `PHASECHECK_HOST_ADDRESS` | nothing |
//!
//! Every command runs with a time limit ([`Tools::with_create_timeout`],
//! [`Tools::with_command_timeout`]) and is killed when its future is dropped. A command that fails
//! is an [`Error::Failed`] naming the command line and quoting the last lines of its standard
//! error. A missing CLI is an [`Error::ToolMissing`] that says what to install.
//!
//! A cluster that [`Cluster::provision`] reused is never deleted. Dropping a [`Cluster`] deletes
//! nothing; call [`Cluster::teardown`].

mod command;
mod error;
mod kind;
mod minikube;
mod network;
mod tools;

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use error::{Error, Result};
pub use kind::{KIND_NETWORK, KIND_WAIT};
pub use network::{
    INSPECT_FORMAT, NetworkFacts, host_address as docker_host_address, interface_ipv4,
};
pub use tools::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CREATE_TIMEOUT, DOCKER_HINT, KIND_HINT, MINIKUBE_HINT, Tools,
    resolve_tool, tool_on_path,
};

/// Where a cluster comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// kind cluster `name` created from `config` (kind-config.yaml) unless one of that name exists.
    Kind {
        /// The cluster name (`kind create cluster --name`; overrides the config's `name`).
        name: String,
        /// The kind config (`kind create cluster --config`).
        config: PathBuf,
        /// The node image (`kind create cluster --image`), e.g. `kindest/node:v1.33.1@sha256:…`,
        /// pinning the Kubernetes version; `None` = the config's or kind's default.
        node_image: Option<String>,
    },
    /// minikube profile, started unless running.
    ///
    /// NB: a profile that exists but is not running is started and counts as created, so
    /// [`Cluster::teardown`] deletes it unless told to keep it.
    Minikube {
        /// The profile (`minikube -p`).
        profile: String,
    },
    /// An existing kubeconfig context (None = current context). Nothing is created or deleted.
    Existing {
        /// The kubeconfig context; `None` = the current context.
        context: Option<String>,
    },
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Kind { name, .. } => write!(f, "kind cluster `{name}`"),
            Provider::Minikube { profile } => write!(f, "minikube profile `{profile}`"),
            Provider::Existing {
                context: Some(context),
            } => write!(f, "the existing cluster of kubeconfig context `{context}`"),
            Provider::Existing { context: None } => {
                write!(f, "the existing cluster of the current kubeconfig context")
            }
        }
    }
}

/// A cluster phasecheck can run on: provisioned (created or reused) from a [`Provider`].
#[derive(Debug)]
pub struct Cluster {
    provider: Provider,
    tools: Tools,
    created: bool,
}

impl Cluster {
    /// Creates the cluster `provider` describes, or reuses it when it is there; `progress` hears
    /// each step and, while a cluster is created, every line the CLI prints.
    ///
    /// - kind: checks that the `kind` binary is on `PATH` (else [`Error::ToolMissing`]); reuses
    ///   the cluster when `kind get clusters` lists its name, else runs `kind create cluster
    ///   --name N --config PATH [--image IMG] --wait 180s` ([`Error::ConfigMissing`] when the
    ///   config is not a file). A create that times out is killed and the half-made cluster
    ///   deleted.
    /// - minikube: checks that `minikube` is on `PATH`; reuses the profile when
    ///   `minikube -p P status` exits 0, else runs `minikube start -p P`.
    /// - existing: runs nothing.
    pub async fn provision(
        provider: Provider,
        tools: Tools,
        progress: impl Fn(&str),
    ) -> Result<Cluster> {
        let created = match &provider {
            Provider::Kind {
                name,
                config,
                node_image,
            } => kind::provision(&tools, name, config, node_image.as_deref(), &progress).await?,
            Provider::Minikube { profile } => {
                minikube::provision(&tools, profile, &progress).await?
            }
            Provider::Existing { .. } => {
                progress(&format!("using {provider}"));
                false
            }
        };
        Ok(Cluster {
            provider,
            tools,
            created,
        })
    }

    /// The kubeconfig context to talk to it: kind → `kind-<name>`, minikube → the profile name,
    /// existing → the given one (`None` = the current context).
    pub fn kube_context(&self) -> Option<String> {
        match &self.provider {
            Provider::Kind { name, .. } => Some(format!("kind-{name}")),
            Provider::Minikube { profile } => Some(profile.clone()),
            Provider::Existing { context } => context.clone(),
        }
    }

    /// Whether [`Self::provision`] created (or started) it, so [`Self::teardown`] deletes it.
    pub fn created(&self) -> bool {
        self.created
    }

    /// What it was provisioned from.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The CLIs it is driven with.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// Makes a locally built image available to the cluster's nodes: `kind load docker-image IMG
    /// --name N`, or `minikube -p P image load IMG`.
    ///
    /// For [`Provider::Existing`] nothing is done and `Ok(())` returned: the image must be
    /// pullable by that cluster, e.g. pushed to a registry its nodes can reach.
    pub async fn load_image(&self, image: &str) -> Result<()> {
        match &self.provider {
            Provider::Kind { name, .. } => kind::load_image(&self.tools, name, image).await,
            Provider::Minikube { profile } => {
                minikube::load_image(&self.tools, profile, image).await
            }
            Provider::Existing { .. } => Ok(()),
        }
    }

    /// The IPv4 address of this machine as the cluster's pods reach it, so services embedded in
    /// the harness process can bind to it and be reached from pods.
    ///
    /// - kind: this machine's address on the docker network `kind` (its IPAM gateway, else its
    ///   bridge interface's address; see [`NetworkFacts`]).
    /// - minikube: the same on the docker network named after the profile, which
    ///   only the docker driver creates; otherwise [`Error::NoHostAddress`] saying that embedded
    ///   services need the docker driver.
    /// - existing: [`Error::NoHostAddress`] saying to set `PHASECHECK_HOST_ADDRESS`;
    ///   no address is guessed.
    pub async fn host_address(&self) -> Result<Ipv4Addr> {
        let cluster = self.provider.to_string();
        match &self.provider {
            Provider::Kind { .. } => kind::host_address(&self.tools, cluster).await,
            Provider::Minikube { profile } => {
                minikube::host_address(&self.tools, profile, cluster).await
            }
            Provider::Existing { .. } => Err(Error::NoHostAddress {
                cluster,
                reason: "phasecheck does not know how that cluster's pods reach this machine; \
                         set PHASECHECK_HOST_ADDRESS to an IPv4 address of this machine that the cluster's pods \
                         can reach (external S3 and git services are not supported yet)"
                    .to_owned(),
            }),
        }
    }

    /// Deletes what [`Self::provision`] created (`kind delete cluster --name N`,
    /// `minikube delete -p P`) unless `keep`; a reused cluster is never deleted. A failed delete
    /// is an `Err`.
    pub async fn teardown(self, keep: bool) -> Result<()> {
        if !self.created {
            return Ok(());
        }
        if keep {
            tracing::info!(cluster = %self.provider, "keeping the cluster as asked");
            return Ok(());
        }
        match &self.provider {
            Provider::Kind { name, .. } => kind::delete(&self.tools, name).await,
            Provider::Minikube { profile } => minikube::delete(&self.tools, profile).await,
            Provider::Existing { .. } => Ok(()),
        }
    }
}

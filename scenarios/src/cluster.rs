//! The real-cluster side of a run: provision (or reuse) the cluster, build and load the
//! reference image, connect with kube-rs, and afterwards delete only what this run created.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use harness::cluster::{Cluster, Provider, Tools};
use harness::image::{ImageBuilder, ImageSpec};
use harness::runtime::kube::KubeRuntime;
use harness::subject::ImageSource;

use crate::environment::Environment;
use crate::note;
use crate::pacing::Pacing;
use crate::plan::Timeouts;
use crate::plan::{Case, InputError, RunOptions, RuntimeKind, Services};

/// The kind cluster or minikube profile phasecheck creates and reuses.
pub const CLUSTER_NAME: &str = "phasecheck";
/// Overrides the kind node image (pins the Kubernetes version), e.g. in a CI matrix.
pub const NODE_IMAGE_ENV: &str = "PHASECHECK_KIND_NODE_IMAGE";
/// Selects a kubeconfig context for `--runtime existing` (default: the current one).
pub const CONTEXT_ENV: &str = "PHASECHECK_KUBE_CONTEXT";
/// The IPv4 address the cluster's pods reach this machine by, where the cluster cannot say
/// (`--runtime existing`, minikube without the docker driver).
pub const HOST_ADDRESS_ENV: &str = "PHASECHECK_HOST_ADDRESS";
/// Set to `1` to keep a cluster this run created (it is deleted by default).
pub const KEEP_CLUSTER_ENV: &str = "PHASECHECK_KEEP_CLUSTER";

/// A provisioned cluster and the run's environment on it.
pub struct ClusterRun {
    cluster: Cluster,
    /// What every case shares.
    pub env: Arc<Environment<KubeRuntime>>,
}

impl ClusterRun {
    /// Provisions the cluster `options.runtime` names, makes the subjects' builtin images
    /// available to it, and connects. A cluster created here is deleted again when a later
    /// step fails.
    pub async fn start(options: &RunOptions, cases: &[Case]) -> Result<Self, InputError> {
        let progress = |line: &str| note!("phasecheck: {line}");
        let cluster = Cluster::provision(provider(options.runtime), Tools::default(), progress)
            .await
            .map_err(|e| InputError::Runtime(format!("--runtime {}: {e}", name(options))))?;
        match connect(&cluster, options, cases, &progress).await {
            Ok(env) => Ok(ClusterRun {
                cluster,
                env: Arc::new(env),
            }),
            Err(e) => {
                if let Err(cleanup) = cluster.teardown(keep_cluster()).await {
                    note!("phasecheck: error: {cleanup}");
                }
                Err(e)
            }
        }
    }

    /// Deletes the cluster when this run created it (unless [`KEEP_CLUSTER_ENV`] is set).
    pub async fn finish(self) -> Result<(), String> {
        self.env.shutdown().await;
        self.cluster
            .teardown(keep_cluster())
            .await
            .map_err(|e| format!("tearing down the cluster: {e}"))
    }
}

async fn connect(
    cluster: &Cluster,
    options: &RunOptions,
    cases: &[Case],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Environment<KubeRuntime>, InputError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        InputError::Runtime(format!("--runtime {}: {what}: {e}", name(options)))
    };
    for (image, spec) in images_to_load(cases) {
        progress(&format!(
            "building {image} (a static release build; minutes when cold)"
        ));
        ImageBuilder::new(workspace_root())
            .with_spec(spec)
            .with_tag(image.clone())
            .build(|line| tracing::info!("{line}"))
            .await
            .map_err(|e| fail(&format!("building {image}"), &e))?;
        progress(&format!("loading {image} into {}", cluster.provider()));
        cluster
            .load_image(&image)
            .await
            .map_err(|e| fail(&format!("loading {image}"), &e))?;
    }
    let external = matches!(options.services, Services::External(_));
    let host = match std::env::var(HOST_ADDRESS_ENV) {
        Ok(text) => text.parse().map_err(|_| {
            InputError::Runtime(format!(
                "{HOST_ADDRESS_ENV}=`{text}` is not an IPv4 address (e.g. 172.18.0.1)"
            ))
        })?,
        // NB: external stores are reached at their own URLs; the host's address is not needed.
        Err(_) if external => std::net::Ipv4Addr::UNSPECIFIED,
        Err(_) => cluster
            .host_address()
            .await
            .map_err(|e| fail("finding the address pods reach this host by", &e))?,
    };
    let runtime = KubeRuntime::from_kubeconfig(cluster.kube_context().as_deref())
        .await
        .map_err(|e| fail("connecting", &e))?;
    let native = runtime
        .supports_native_sidecars()
        .await
        .map_err(|e| fail("reading the server version", &e))?;
    if !native {
        progress("the server is older than Kubernetes 1.29: native-sidecar subjects are skipped");
    }
    let env = Environment::new(runtime, name(options), options)
        .with_native_sidecars(native)
        .with_timeouts(Timeouts::CLUSTER)
        .with_pacing(Pacing::CLUSTER)
        .with_container_network(docker_network(cluster.provider()));
    env.check_store_images(cases).await?;
    Ok(if external {
        env
    } else {
        env.with_stores_behind_service(IpAddr::V4(host))
    })
}

/// The cluster `kind` describes, with the defaults and environment overrides above.
pub fn provider(kind: RuntimeKind) -> Provider {
    match kind {
        RuntimeKind::Kind | RuntimeKind::Local => Provider::Kind {
            name: CLUSTER_NAME.into(),
            config: kind_config(),
            node_image: std::env::var(NODE_IMAGE_ENV).ok().filter(|s| !s.is_empty()),
        },
        RuntimeKind::Minikube => Provider::Minikube {
            profile: CLUSTER_NAME.into(),
        },
        RuntimeKind::Existing => Provider::Existing {
            context: std::env::var(CONTEXT_ENV).ok().filter(|s| !s.is_empty()),
        },
    }
}

/// The Docker network the cluster's nodes are on, for store containers.
fn docker_network(provider: &Provider) -> Option<String> {
    match provider {
        Provider::Kind { .. } => Some(harness::cluster::KIND_NETWORK.to_owned()),
        Provider::Minikube { profile } => Some(profile.clone()),
        Provider::Existing { .. } => None,
    }
}

fn name(options: &RunOptions) -> &'static str {
    match options.runtime {
        RuntimeKind::Local => "local",
        RuntimeKind::Kind => "kind",
        RuntimeKind::Minikube => "minikube",
        RuntimeKind::Existing => "existing",
    }
}

fn keep_cluster() -> bool {
    std::env::var(KEEP_CLUSTER_ENV).is_ok_and(|v| v == "1")
}

/// The images a cluster run builds and loads: the harness's tools image (its helper pods run
/// it), then every image the subjects map to the builtin phasepod.
fn images_to_load(cases: &[Case]) -> Vec<(String, ImageSpec)> {
    let mut images = vec![(ImageSpec::TOOLS.tag.to_owned(), ImageSpec::TOOLS)];
    for case in cases {
        for (image, source) in &case.subject.profile.images {
            if matches!(source, ImageSource::Builtin(_)) && !images.iter().any(|(i, _)| i == image)
            {
                images.push((image.clone(), ImageSpec::REFERENCE));
            }
        }
    }
    images
}

/// `./kind-config.yaml` when run from a checkout that has one, else the workspace's.
fn kind_config() -> PathBuf {
    let local = Path::new("kind-config.yaml");
    if local.is_file() {
        local.to_owned()
    } else {
        workspace_root().join("kind-config.yaml")
    }
}

/// The workspace this binary was built from (the image is built from its sources).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

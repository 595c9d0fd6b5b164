//! Backup stores as containers (testcontainers): MinIO from a pinned quay.io tag (Docker Hub no
//! longer serves MinIO) or RustFS as the object store, Gitea as the git server.
//!
//! Each scenario gets its own container on the Docker network the workloads can reach (the
//! default bridge for the local runtime, kind's `kind` network for a kind cluster), addressed at
//! the container's IP on that network: this host routes to it, and a cluster's pods reach it
//! through the namespace's `phasecheck-store` Service and EndpointSlice. A store outage is
//! `docker pause`, so connections hang as with a dead host, and `docker unpause` ends it.
//!
//! Nothing is pulled silently mid-run: [`ensure_images`] checks (and pulls) the images first and
//! says how to preload them where no registry is reachable.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};
use testcontainers_modules::gitea::{Gitea, GiteaRepo};
use testcontainers_modules::minio::MinIO;
use testcontainers_modules::rustfs::RustFS;

use crate::subject::Backend;

/// MinIO's image, from quay.io.
pub const MINIO_IMAGE: &str = "quay.io/minio/minio";
/// The pinned MinIO release.
pub const MINIO_TAG: &str = "RELEASE.2025-02-28T09-55-16Z";
/// RustFS's image.
pub const RUSTFS_IMAGE: &str = "rustfs/rustfs";
/// The RustFS tag (RustFS publishes no stable release line yet; override with
/// [`ObjectStoreImage::RustFs`]'s tag argument to pin one).
pub const RUSTFS_TAG: &str = "latest";
/// Gitea's image.
pub const GITEA_IMAGE: &str = "gitea/gitea";
/// The pinned Gitea release (rootless variant).
pub const GITEA_TAG: &str = "1.22.3-rootless";
/// The S3 API port of MinIO and RustFS.
const S3_PORT: u16 = 9000;
/// Gitea's HTTP port.
const GITEA_PORT: u16 = 3000;
/// The repository each Gitea container holds.
pub const GITEA_REPOSITORY: &str = "backups";
/// How long pulling an image may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Errors of container stores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image is neither present nor pullable.
    #[error(
        "image {image} is not available and cannot be pulled ({problem}); pull it where a registry is reachable and `docker save`/`docker load` it here, or use --services embedded"
    )]
    Image {
        /// The image reference.
        image: String,
        /// What `docker` said.
        problem: String,
    },
    /// The containers' credentials could not be generated.
    #[error("generating the store's credentials: {0}")]
    Credentials(#[source] super::Error),
    /// testcontainers could not start, inspect, pause or unpause the container.
    #[error("{what}: {source}")]
    Container {
        /// What was being done.
        what: String,
        /// testcontainers' error.
        #[source]
        source: testcontainers::TestcontainersError,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which object store image to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ObjectStoreImage {
    /// MinIO at [`MINIO_TAG`].
    #[default]
    MinIO,
    /// RustFS at the given tag.
    RustFs(String),
}

/// What every container store of a run shares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSettings {
    /// The object store image.
    pub object_store: ObjectStoreImage,
    /// The Docker network to attach to (`None`: the default bridge).
    pub network: Option<String>,
}

impl ContainerSettings {
    /// The image references `backends` need.
    pub fn images(&self, backends: &[Backend]) -> Vec<String> {
        let mut images = Vec::new();
        if backends.contains(&Backend::S3) {
            images.push(match &self.object_store {
                ObjectStoreImage::MinIO => format!("{MINIO_IMAGE}:{MINIO_TAG}"),
                ObjectStoreImage::RustFs(tag) => format!("{RUSTFS_IMAGE}:{tag}"),
            });
        }
        if backends.contains(&Backend::Git) {
            images.push(format!("{GITEA_IMAGE}:{GITEA_TAG}"));
        }
        images
    }
}

/// Makes sure every image `backends` need is present, pulling what is missing.
pub async fn ensure_images(settings: &ContainerSettings, backends: &[Backend]) -> Result<()> {
    for image in settings.images(backends) {
        let present = docker(&["image", "inspect", "--format", "{{.Id}}", &image]).await;
        if present.is_ok() {
            continue;
        }
        docker(&["pull", "--quiet", &image])
            .await
            .map_err(|problem| Error::Image {
                image: image.clone(),
                problem,
            })?;
    }
    Ok(())
}

async fn docker(args: &[&str]) -> Result<(), String> {
    let run = tokio::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PULL_TIMEOUT, run).await {
        Err(_) => Err(format!("`docker {}` timed out", args.join(" "))),
        Ok(Err(e)) => Err(format!("cannot run docker: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
    }
}

/// A running store container.
pub enum StoreContainer {
    /// MinIO.
    MinIO(ContainerAsync<MinIO>),
    /// RustFS.
    RustFs(ContainerAsync<RustFS>),
    /// Gitea.
    Gitea(ContainerAsync<Gitea>),
}

/// Where a started object store listens and how to sign in.
pub struct S3Coordinates {
    /// The container's address on its network and the S3 port.
    pub addr: SocketAddr,
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// Where a started git server's repository is and how to sign in.
pub struct GitCoordinates {
    /// The container's address on its network and the HTTP port.
    pub addr: SocketAddr,
    /// The repository URL.
    pub url: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl StoreContainer {
    /// Starts an object store; the caller creates the bucket.
    pub async fn start_s3(settings: &ContainerSettings) -> Result<(Self, S3Coordinates)> {
        let (container, access_key_id, secret_access_key) = match &settings.object_store {
            ObjectStoreImage::MinIO => {
                let (user, password) = (random_token()?, random_token()?);
                let request = attach(
                    MinIO::default()
                        .with_name(MINIO_IMAGE)
                        .with_tag(MINIO_TAG)
                        .with_env_var("MINIO_ROOT_USER", &user)
                        .with_env_var("MINIO_ROOT_PASSWORD", &password),
                    settings,
                );
                let started = request.start().await.map_err(failed("starting MinIO"))?;
                (StoreContainer::MinIO(started), user, password)
            }
            ObjectStoreImage::RustFs(tag) => {
                // NB: RustFS's default credentials; the container is private to one scenario.
                let request = attach(RustFS::default().with_tag(tag), settings);
                let started = request.start().await.map_err(failed("starting RustFS"))?;
                let admin = "rustfsadmin".to_owned();
                (StoreContainer::RustFs(started), admin.clone(), admin)
            }
        };
        let ip = container.ip().await?;
        Ok((
            container,
            S3Coordinates {
                addr: SocketAddr::new(ip, S3_PORT),
                access_key_id,
                secret_access_key,
            },
        ))
    }

    /// Starts a Gitea with a private repository [`GITEA_REPOSITORY`].
    pub async fn start_git(settings: &ContainerSettings) -> Result<(Self, GitCoordinates)> {
        let (username, password) = (format!("pc-{}", &random_token()?[..6]), random_token()?);
        let request = attach(
            Gitea::default()
                .with_admin_account(&username, &password, None)
                .with_repo(GiteaRepo::Private(GITEA_REPOSITORY.into()))
                .with_name(GITEA_IMAGE)
                .with_tag(GITEA_TAG),
            settings,
        );
        let container =
            StoreContainer::Gitea(request.start().await.map_err(failed("starting Gitea"))?);
        let ip = container.ip().await?;
        let addr = SocketAddr::new(ip, GITEA_PORT);
        Ok((
            container,
            GitCoordinates {
                addr,
                url: format!("http://{addr}/{username}/{GITEA_REPOSITORY}.git"),
                username,
                password,
            },
        ))
    }

    /// The container's address on its network.
    async fn ip(&self) -> Result<IpAddr> {
        let ip = match self {
            StoreContainer::MinIO(c) => c.get_bridge_ip_address().await,
            StoreContainer::RustFs(c) => c.get_bridge_ip_address().await,
            StoreContainer::Gitea(c) => c.get_bridge_ip_address().await,
        };
        ip.map_err(failed("reading the container's address"))
    }

    /// Freezes the container: the store stops answering.
    pub async fn pause(&self) -> Result<()> {
        let paused = match self {
            StoreContainer::MinIO(c) => c.pause().await,
            StoreContainer::RustFs(c) => c.pause().await,
            StoreContainer::Gitea(c) => c.pause().await,
        };
        paused.map_err(failed("pausing the store container"))
    }

    /// Thaws the container.
    pub async fn unpause(&self) -> Result<()> {
        let thawed = match self {
            StoreContainer::MinIO(c) => c.unpause().await,
            StoreContainer::RustFs(c) => c.unpause().await,
            StoreContainer::Gitea(c) => c.unpause().await,
        };
        thawed.map_err(failed("unpausing the store container"))
    }
}

/// `request` on the settings' network, with the harness's label.
fn attach<I: testcontainers::Image>(
    request: testcontainers::ContainerRequest<I>,
    settings: &ContainerSettings,
) -> testcontainers::ContainerRequest<I> {
    let request = request.with_label(
        crate::runtime::kube::MANAGED_BY.0,
        crate::runtime::kube::MANAGED_BY.1,
    );
    match &settings.network {
        Some(network) => request.with_network(network),
        None => request,
    }
}

fn failed(what: &str) -> impl FnOnce(testcontainers::TestcontainersError) -> Error + '_ {
    move |source| Error::Container {
        what: what.to_owned(),
        source,
    }
}

/// 20 random lowercase hex characters.
fn random_token() -> Result<String> {
    super::random_token(10).map_err(Error::Credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_images_follow_the_backends_and_minio_comes_from_quay_io() {
        let settings = ContainerSettings::default();
        assert_eq!(
            settings.images(&[Backend::S3, Backend::Git]),
            [
                "quay.io/minio/minio:RELEASE.2025-02-28T09-55-16Z",
                "gitea/gitea:1.22.3-rootless"
            ]
        );
        let rustfs = ContainerSettings {
            object_store: ObjectStoreImage::RustFs("1.0.0".into()),
            network: Some("kind".into()),
        };
        assert_eq!(rustfs.images(&[Backend::S3]), ["rustfs/rustfs:1.0.0"]);
        assert!(rustfs.images(&[]).is_empty());
    }
}

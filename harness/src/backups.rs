//! One scenario's backup store: an embedded object store or git server of its own, plus the
//! means to seed, list, verify, corrupt and delete backups in phasepod's layout
//! (docs/CONTRACTS.md).

use std::collections::BTreeMap;
use std::path::Path;

use crate::dataset::Dataset;
use crate::services::{EmbeddedGitServer, EmbeddedObjectStore};
use crate::subject::Backend;

/// Errors of the backup store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded service did not start.
    #[error("starting the embedded {backend} service: {source}")]
    Service {
        /// Which backend.
        backend: Backend,
        /// What failed.
        #[source]
        source: crate::services::Error,
    },
    /// phasepod's store client failed.
    #[error(transparent)]
    Store(#[from] phasepod::store::Error),
    /// A dataset could not be written or read.
    #[error(transparent)]
    Dataset(#[from] phasepod::dataset::Error),
    /// A dataset on disk is not valid.
    #[error("{0}")]
    Invalid(#[from] phasepod::dataset::Invalid),
    /// There is no backup to act on.
    #[error("the store holds no backup")]
    NoBackup,
    /// A backup ID is not in phasepod's format.
    #[error("`{0}` is not a backup ID (YYYYMMDDTHHMMSS.mmmZ)")]
    BadId(String),
    /// Scratch space failed.
    #[error("scratch directory: {0}")]
    Scratch(#[source] std::io::Error),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The bucket every scenario's object store uses (each scenario has its own server).
pub const BUCKET: &str = "phasecheck";
/// The key prefix of backups in the bucket.
pub const PREFIX: &str = "backups/";
/// The repository every scenario's git server uses.
pub const REPOSITORY: &str = "backups";
/// The branch backups go to.
pub const BRANCH: &str = "main";

enum Service {
    S3(EmbeddedObjectStore),
    Git(EmbeddedGitServer),
}

/// A scenario's store and a phasepod client for it.
pub struct BackupStore {
    service: Service,
    config: phasepod::store::BackendConfig,
    scratch: tempfile::TempDir,
    advertised_host: Option<String>,
}

impl BackupStore {
    /// Starts a fresh embedded service for `backend` on loopback with an empty bucket or
    /// repository.
    pub async fn start(backend: Backend) -> Result<Self> {
        Self::start_on(backend, std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Like [`Self::start`], listening on `bind` (e.g. the address a cluster's pods reach this
    /// host by).
    pub async fn start_on(backend: Backend, bind: std::net::IpAddr) -> Result<Self> {
        let service_error = |source| Error::Service { backend, source };
        let (service, config) = match backend {
            Backend::S3 => {
                let server = EmbeddedObjectStore::builder()
                    .with_bind_addr(bind)
                    .start()
                    .await
                    .map_err(service_error)?;
                server.create_bucket(BUCKET).await.map_err(service_error)?;
                let config = phasepod::store::BackendConfig::S3(phasepod::store::S3Config {
                    endpoint: server.endpoint(),
                    bucket: BUCKET.into(),
                    prefix: PREFIX.into(),
                    region: server.region().into(),
                    access_key_id: server.access_key_id().into(),
                    secret_access_key: server.secret_access_key().into(),
                });
                (Service::S3(server), config)
            }
            Backend::Git => {
                let server = EmbeddedGitServer::builder()
                    .with_bind_addr(bind)
                    .start()
                    .await
                    .map_err(service_error)?;
                let url = server
                    .create_repo(REPOSITORY)
                    .await
                    .map_err(service_error)?;
                let config = phasepod::store::BackendConfig::Git(phasepod::store::GitConfig {
                    url,
                    branch: BRANCH.into(),
                    username: Some(server.username().into()),
                    password: Some(server.password().into()),
                });
                (Service::Git(server), config)
            }
        };
        let scratch = tempfile::Builder::new()
            .prefix("phasecheck-store-")
            .tempdir()
            .map_err(Error::Scratch)?;
        Ok(BackupStore {
            service,
            config,
            scratch,
            advertised_host: None,
        })
    }

    /// Workloads reach the store by `host` (e.g. a Service name) instead of its IP; the port
    /// stays the same.
    pub fn with_advertised_host(mut self, host: impl Into<String>) -> Self {
        self.advertised_host = Some(host.into());
        self
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        match &self.service {
            Service::S3(s) => s.local_addr(),
            Service::Git(g) => g.local_addr(),
        }
    }

    /// `url` as workloads should use it: the advertised host in place of the listen address.
    fn advertised(&self, url: &str) -> String {
        match &self.advertised_host {
            Some(host) => {
                let addr = self.local_addr();
                url.replacen(&addr.to_string(), &format!("{host}:{}", addr.port()), 1)
            }
            None => url.to_owned(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self.service {
            Service::S3(_) => Backend::S3,
            Service::Git(_) => Backend::Git,
        }
    }

    /// What the harness writes into the endpoint ConfigMap (every key, empty when unused).
    pub fn endpoint_settings(&self) -> BTreeMap<String, String> {
        let mut settings: BTreeMap<String, String> = [
            "S3_ENDPOINT",
            "S3_BUCKET",
            "S3_PREFIX",
            "S3_REGION",
            "GIT_URL",
            "GIT_BRANCH",
        ]
        .into_iter()
        .map(|k| (k.to_owned(), String::new()))
        .collect();
        match &self.config {
            phasepod::store::BackendConfig::S3(s3) => {
                settings.insert("S3_ENDPOINT".into(), self.advertised(&s3.endpoint));
                settings.insert("S3_BUCKET".into(), s3.bucket.clone());
                settings.insert("S3_PREFIX".into(), s3.prefix.clone());
                settings.insert("S3_REGION".into(), s3.region.clone());
            }
            phasepod::store::BackendConfig::Git(git) => {
                settings.insert("GIT_URL".into(), self.advertised(&git.url));
                settings.insert("GIT_BRANCH".into(), git.branch.clone());
            }
        }
        settings
    }

    /// What the harness writes into the credentials Secret (every key, empty when unused).
    pub fn credentials(&self) -> BTreeMap<String, String> {
        let mut creds: BTreeMap<String, String> = [
            "s3-access-key-id",
            "s3-secret-access-key",
            "git-username",
            "git-password",
        ]
        .into_iter()
        .map(|k| (k.to_owned(), String::new()))
        .collect();
        match &self.config {
            phasepod::store::BackendConfig::S3(s3) => {
                creds.insert("s3-access-key-id".into(), s3.access_key_id.clone());
                creds.insert("s3-secret-access-key".into(), s3.secret_access_key.clone());
            }
            phasepod::store::BackendConfig::Git(git) => {
                creds.insert(
                    "git-username".into(),
                    git.username.clone().unwrap_or_default(),
                );
                creds.insert(
                    "git-password".into(),
                    git.password.clone().unwrap_or_default(),
                );
            }
        }
        creds
    }

    fn client(&self) -> Result<phasepod::store::Store> {
        Ok(phasepod::store::Store::new(
            self.config.clone(),
            self.scratch.path(),
        )?)
    }

    /// Takes a backup of `dataset` (generation 1); returns its ID.
    pub async fn seed(&self, dataset: &Dataset) -> Result<String> {
        let dir = tempfile::Builder::new()
            .prefix("seed-")
            .tempdir_in(self.scratch.path())
            .map_err(Error::Scratch)?;
        let current = dir.path().join("current");
        write_dataset_dir(&current, dataset, 1)?;
        let id = self.client()?.take_backup(&current).await?;
        Ok(id.to_string())
    }

    /// Backup IDs, newest first.
    pub async fn list(&self) -> Result<Vec<String>> {
        let ids = self.client()?.list_backups().await?;
        Ok(ids.iter().map(ToString::to_string).collect())
    }

    /// Restores backup `id` into scratch space, verifying every file; returns its content.
    pub async fn verify(&self, id: &str) -> Result<Dataset> {
        let id = parse_id(id)?;
        let dir = tempfile::Builder::new()
            .prefix("verify-")
            .tempdir_in(self.scratch.path())
            .map_err(Error::Scratch)?;
        let target = dir.path().join("current");
        self.client()?.restore_into(&id, &target).await?;
        read_valid_dataset(&target)
    }

    /// Flips a byte of a file of the newest backup so that it fails verification.
    pub async fn corrupt_latest(&self) -> Result<()> {
        let store = self.client()?;
        let newest = store
            .list_backups()
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NoBackup)?;
        Ok(store
            .corrupt(&newest, phasepod::store::Corruption::FlipByte)
            .await?)
    }

    /// Removes the newest backup.
    pub async fn delete_latest(&self) -> Result<()> {
        let store = self.client()?;
        let newest = store
            .list_backups()
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NoBackup)?;
        Ok(store.delete(&newest).await?)
    }

    /// Makes the store unreachable.
    pub fn down(&self) {
        match &self.service {
            Service::S3(s) => s.down(),
            Service::Git(g) => g.down(),
        }
    }

    /// Makes the store reachable again (listening on the same port).
    pub fn up(&self) -> Result<()> {
        let backend = self.backend();
        match &self.service {
            Service::S3(s) => s.up(),
            Service::Git(g) => g.up(),
        }
        .map_err(|source| Error::Service { backend, source })
    }
}

fn parse_id(id: &str) -> Result<phasepod::store::BackupId> {
    phasepod::store::BackupId::parse(id).ok_or_else(|| Error::BadId(id.to_owned()))
}

/// Writes `dataset` as a valid phasepod dataset (files + manifest) into `dir`.
pub fn write_dataset_dir(dir: &Path, dataset: &Dataset, generation: u64) -> Result<()> {
    let files: Vec<(&String, &Vec<u8>)> = dataset.files.iter().collect();
    phasepod::dataset::write_dataset(dir, &files, generation)?;
    Ok(())
}

/// Reads a dataset directory that verifies; an error says why it does not.
pub fn read_valid_dataset(dir: &Path) -> Result<Dataset> {
    let manifest = phasepod::dataset::verify_dir(dir)?;
    let mut dataset = Dataset::empty();
    for entry in &manifest.files {
        let bytes = std::fs::read(dir.join("files").join(&entry.path)).map_err(Error::Scratch)?;
        dataset.files.insert(entry.path.clone(), bytes);
    }
    Ok(dataset)
}

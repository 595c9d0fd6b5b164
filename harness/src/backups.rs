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
    /// The store container did not start, pause or unpause.
    #[error(transparent)]
    Container(#[from] crate::services::containers::Error),
    /// A store container started but could not be prepared.
    #[error("preparing the store container: {0}")]
    ContainerSetup(String),
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
    /// External stores cannot be taken down and brought back.
    #[error("an external {0} store has no outage switch")]
    NoOutageSwitch(Backend),
    /// Removing the scenario's prefix or branch from an external store failed.
    #[error("removing {what} from the external store: {problem}")]
    Cleanup {
        /// The prefix or branch.
        what: String,
        /// What went wrong.
        problem: String,
    },
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
    /// Someone else's store: the scenario owns only its prefix or branch.
    External(Backend),
    /// A container of the scenario's own, at an address on a Docker network.
    Container(
        Backend,
        Box<crate::services::containers::StoreContainer>,
        std::net::SocketAddr,
    ),
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

    /// A scenario's share of external `services` for `backend`: the key prefix
    /// `<prefix>phasecheck/<scope>/` of the bucket, or the branch `phasecheck/<scope>` of the
    /// repository. [`Self::remove_scope`] removes it again.
    pub fn external(
        services: &crate::services::external::ExternalServices,
        backend: Backend,
        scope: &str,
    ) -> Result<Self> {
        let not_configured = || Error::Cleanup {
            what: format!("the {backend} store"),
            problem: "no external store is configured for this backend".into(),
        };
        let config = match backend {
            Backend::S3 => {
                let s3 = services.s3.as_ref().ok_or_else(not_configured)?;
                phasepod::store::BackendConfig::S3(phasepod::store::S3Config {
                    endpoint: s3.endpoint.clone(),
                    bucket: s3.bucket.clone(),
                    prefix: format!("{}phasecheck/{scope}/", s3.prefix),
                    region: s3.region.clone(),
                    access_key_id: s3.access_key_id.clone(),
                    secret_access_key: s3.secret_access_key.clone(),
                })
            }
            Backend::Git => {
                let git = services.git.as_ref().ok_or_else(not_configured)?;
                phasepod::store::BackendConfig::Git(phasepod::store::GitConfig {
                    url: git.url.clone(),
                    branch: format!("phasecheck/{scope}"),
                    username: git.username.clone(),
                    password: git.password.clone(),
                })
            }
        };
        let scratch = tempfile::Builder::new()
            .prefix("phasecheck-store-")
            .tempdir()
            .map_err(Error::Scratch)?;
        Ok(BackupStore {
            service: Service::External(backend),
            config,
            scratch,
            advertised_host: None,
        })
    }

    /// Starts a store container of `backend` for one scenario (see
    /// [`containers`](crate::services::containers)), with an empty bucket or repository.
    pub async fn start_container(
        backend: Backend,
        settings: &crate::services::containers::ContainerSettings,
    ) -> Result<Self> {
        use crate::services::containers::StoreContainer;
        crate::runtime::kube::install_crypto_provider();
        let (container, config, addr) = match backend {
            Backend::S3 => {
                let (container, at) = StoreContainer::start_s3(settings).await?;
                let config = phasepod::store::S3Config {
                    endpoint: format!("http://{}", at.addr),
                    bucket: BUCKET.into(),
                    prefix: PREFIX.into(),
                    region: crate::services::REGION.into(),
                    access_key_id: at.access_key_id,
                    secret_access_key: at.secret_access_key,
                };
                phasepod::store::s3_client(&config)
                    .create_bucket()
                    .bucket(BUCKET)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::ContainerSetup(format!(
                            "creating bucket {BUCKET}: {}",
                            phasepod::chain(&e)
                        ))
                    })?;
                (
                    container,
                    phasepod::store::BackendConfig::S3(config),
                    at.addr,
                )
            }
            Backend::Git => {
                let (container, at) = StoreContainer::start_git(settings).await?;
                let config = phasepod::store::GitConfig {
                    url: at.url,
                    branch: BRANCH.into(),
                    username: Some(at.username),
                    password: Some(at.password),
                };
                (
                    container,
                    phasepod::store::BackendConfig::Git(config),
                    at.addr,
                )
            }
        };
        let scratch = tempfile::Builder::new()
            .prefix("phasecheck-store-")
            .tempdir()
            .map_err(Error::Scratch)?;
        Ok(BackupStore {
            service: Service::Container(backend, Box::new(container), addr),
            config,
            scratch,
            advertised_host: None,
        })
    }

    /// Whether the store is someone else's (no outage switch; the scenario's scope to remove).
    pub fn is_external(&self) -> bool {
        matches!(self.service, Service::External(_))
    }

    /// Removes everything the scenario wrote to an external store: every object under its key
    /// prefix, or its branch. Embedded stores go with their process; nothing to do.
    pub async fn remove_scope(&self) -> Result<()> {
        if !self.is_external() {
            return Ok(());
        }
        match &self.config {
            phasepod::store::BackendConfig::S3(s3) => remove_prefix(s3).await,
            phasepod::store::BackendConfig::Git(git) => remove_branch(git, self.scratch.path()),
        }
    }

    /// Workloads reach the store by `host` (e.g. a Service name) instead of its IP; the port
    /// stays the same.
    pub fn with_advertised_host(mut self, host: impl Into<String>) -> Self {
        self.advertised_host = Some(host.into());
        self
    }

    /// The address the service listens on; `None` for an external store.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.service {
            Service::S3(s) => Some(s.local_addr()),
            Service::Git(g) => Some(g.local_addr()),
            Service::External(_) => None,
            Service::Container(_, _, addr) => Some(*addr),
        }
    }

    /// `url` as workloads should use it: the advertised host in place of the listen address.
    fn advertised(&self, url: &str) -> String {
        match (&self.advertised_host, self.local_addr()) {
            (Some(host), Some(addr)) => {
                url.replacen(&addr.to_string(), &format!("{host}:{}", addr.port()), 1)
            }
            _ => url.to_owned(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self.service {
            Service::S3(_) => Backend::S3,
            Service::Git(_) => Backend::Git,
            Service::External(backend) | Service::Container(backend, ..) => backend,
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

    /// Makes the store unreachable (a container is paused).
    pub async fn down(&self) -> Result<()> {
        match &self.service {
            Service::S3(s) => s.down(),
            Service::Git(g) => g.down(),
            Service::Container(_, container, _) => container.pause().await?,
            Service::External(backend) => return Err(Error::NoOutageSwitch(*backend)),
        }
        Ok(())
    }

    /// Makes the store reachable again (listening on the same port).
    pub async fn up(&self) -> Result<()> {
        let backend = self.backend();
        match &self.service {
            Service::S3(s) => s.up(),
            Service::Git(g) => g.up(),
            Service::Container(_, container, _) => return Ok(container.unpause().await?),
            Service::External(backend) => return Err(Error::NoOutageSwitch(*backend)),
        }
        .map_err(|source| Error::Service { backend, source })
    }
}

/// Deletes every object under the configured prefix.
async fn remove_prefix(s3: &phasepod::store::S3Config) -> Result<()> {
    let client = phasepod::store::s3_client(s3);
    let failed = |problem: String| Error::Cleanup {
        what: format!("s3://{}/{}", s3.bucket, s3.prefix),
        problem,
    };
    loop {
        let listed = client
            .list_objects_v2()
            .bucket(&s3.bucket)
            .prefix(&s3.prefix)
            .send()
            .await
            .map_err(|e| failed(phasepod::chain(&e)))?;
        let keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            client
                .delete_object()
                .bucket(&s3.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| failed(format!("{key}: {}", phasepod::chain(&e))))?;
        }
    }
}

/// Deletes the configured branch on the remote (`git push <url> :refs/heads/<branch>`).
fn remove_branch(git: &phasepod::store::GitConfig, scratch: &Path) -> Result<()> {
    let failed = |problem: String| Error::Cleanup {
        what: format!("branch {}", git.branch),
        problem,
    };
    let dir = tempfile::Builder::new()
        .prefix("cleanup-")
        .tempdir_in(scratch)
        .map_err(Error::Scratch)?;
    let repo = git2::Repository::init_bare(dir.path()).map_err(|e| failed(e.to_string()))?;
    let mut remote = repo
        .remote_anonymous(&git.url)
        .map_err(|e| failed(e.to_string()))?;
    let mut callbacks = git2::RemoteCallbacks::new();
    let (user, password) = (git.username.clone(), git.password.clone());
    callbacks.credentials(move |_, _, _| {
        git2::Cred::userpass_plaintext(
            user.as_deref().unwrap_or_default(),
            password.as_deref().unwrap_or_default(),
        )
    });
    let rejected = std::rc::Rc::new(std::cell::RefCell::new(None));
    let seen = rejected.clone();
    callbacks.push_update_reference(move |reference, status| {
        if let Some(status) = status {
            *seen.borrow_mut() = Some(format!("{reference}: {status}"));
        }
        Ok(())
    });
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(callbacks);
    let refspec = format!(":refs/heads/{}", git.branch);
    remote
        .push(&[refspec.as_str()], Some(&mut options))
        .map_err(|e| failed(e.message().to_owned()))?;
    drop(options);
    let problem = rejected.borrow_mut().take();
    match problem {
        Some(problem) => Err(failed(problem)),
        None => Ok(()),
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

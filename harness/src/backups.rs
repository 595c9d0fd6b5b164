//! One scenario's backup store: an embedded object store or git server of its own, a store
//! container, or its share of an external store — with its endpoint settings, credentials and
//! outage switch — and the means to seed, list, verify, damage and delete backups through a
//! [backup format](crate::formats) (phasepod's layout unless the caller chooses another).
//!
//! Everything goes through the harness's own clients ([`crate::remote`]), never through the code
//! of the workload under test.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::dataset::Dataset;
use crate::formats::{BackupFormat, BackupInfo, FormatKind};
use crate::remote::{GitLocation, S3Location, StoreLocation};
use crate::services::{EmbeddedGitServer, EmbeddedObjectStore, Slowness};
use crate::subject::Backend;

/// Errors of the backup store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store container did not start, pause or unpause.
    #[error(transparent)]
    Container(#[from] crate::services::containers::Error),
    /// A store container started but its bucket could not be created.
    #[error("preparing the store container: {0}")]
    ContainerSetup(#[source] crate::remote::s3::Error),
    /// The embedded service did not start.
    #[error("starting the embedded {backend} service: {source}")]
    Service {
        /// Which backend.
        backend: Backend,
        /// What failed.
        #[source]
        source: crate::services::Error,
    },
    /// The backup format failed (the store, the format's program, or a backup that does not
    /// verify).
    #[error(transparent)]
    Format(#[from] crate::formats::Error),
    /// There is no backup to act on.
    #[error("the store holds no backup")]
    NoBackup,
    /// Only the embedded services can be slowed down.
    #[error("only an embedded {0} store can be slowed down (--services embedded)")]
    NoThrottle(Backend),
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

/// How often a store without a change feed is listed while a scenario waits on it.
pub const POLL_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);

/// A store's changes since it was made ([`BackupStore::changes`]) or since the last
/// [`StoreChanges::next`].
#[derive(Debug)]
pub struct StoreChanges(Option<tokio::sync::watch::Receiver<u64>>);

impl StoreChanges {
    /// Whether the store may hold something new since the last call, without waiting: a write
    /// to it has ended since; always, for a store without a change feed.
    pub fn take_change(&mut self) -> bool {
        match &mut self.0 {
            Some(feed) => {
                let changed = feed.has_changed().unwrap_or(true);
                feed.borrow_and_update();
                changed
            }
            None => true,
        }
    }

    /// Returns once the store may hold something new — a write to it has ended since the last
    /// call, or [`POLL_PERIOD`] has passed for a store without a change feed — or after
    /// `limit`, whichever comes first.
    pub async fn next(&mut self, limit: std::time::Duration) {
        match &mut self.0 {
            Some(feed) => {
                if let Ok(Err(_closed)) = tokio::time::timeout(limit, feed.changed()).await {
                    // NB: the service is gone; the next listing reports it.
                    tokio::time::sleep(limit.min(POLL_PERIOD)).await;
                }
            }
            None => tokio::time::sleep(limit.min(POLL_PERIOD)).await,
        }
    }
}

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

/// A scenario's store and the format its backups are in.
pub struct BackupStore {
    service: Service,
    location: StoreLocation,
    format: Box<dyn BackupFormat>,
    advertised_host: Option<String>,
}

impl BackupStore {
    fn new(service: Service, location: StoreLocation) -> Self {
        BackupStore {
            service,
            location,
            format: FormatKind::default().format(),
            advertised_host: None,
        }
    }

    /// Starts a fresh embedded service for `backend` on loopback with an empty bucket or
    /// repository.
    pub async fn start(backend: Backend) -> Result<Self> {
        Self::start_on(backend, std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Like [`Self::start`], listening on `bind` (e.g. the address a cluster's pods reach this
    /// host by).
    pub async fn start_on(backend: Backend, bind: std::net::IpAddr) -> Result<Self> {
        let service_error = |source| Error::Service { backend, source };
        Ok(match backend {
            Backend::S3 => {
                let server = EmbeddedObjectStore::builder()
                    .with_bind_addr(bind)
                    .start()
                    .await
                    .map_err(service_error)?;
                server.create_bucket(BUCKET).await.map_err(service_error)?;
                let location = S3Location::new(
                    server.endpoint(),
                    BUCKET,
                    server.access_key_id(),
                    server.secret_access_key(),
                )
                .with_prefix(PREFIX)
                .with_region(server.region());
                Self::new(Service::S3(server), location.into())
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
                let location = GitLocation::new(url)
                    .with_branch(BRANCH)
                    .with_credentials(server.username(), server.password())
                    .with_local_repository(server.repo_path(REPOSITORY));
                Self::new(Service::Git(server), location.into())
            }
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
        let location = match backend {
            Backend::S3 => {
                let s3 = services.s3.as_ref().ok_or_else(not_configured)?;
                S3Location::new(
                    &s3.endpoint,
                    &s3.bucket,
                    &s3.access_key_id,
                    &s3.secret_access_key,
                )
                .with_prefix(format!("{}phasecheck/{scope}/", s3.prefix))
                .with_region(&s3.region)
                .into()
            }
            Backend::Git => {
                let git = services.git.as_ref().ok_or_else(not_configured)?;
                let mut location =
                    GitLocation::new(&git.url).with_branch(format!("phasecheck/{scope}"));
                location.username = git.username.clone();
                location.password = git.password.clone();
                location.into()
            }
        };
        Ok(Self::new(Service::External(backend), location))
    }

    /// Starts a store container of `backend` for one scenario (see
    /// [`containers`](crate::services::containers)), with an empty bucket or repository.
    pub async fn start_container(
        backend: Backend,
        settings: &crate::services::containers::ContainerSettings,
    ) -> Result<Self> {
        use crate::services::containers::StoreContainer;
        crate::runtime::kube::install_crypto_provider();
        let (container, location, addr) = match backend {
            Backend::S3 => {
                let (container, at) = StoreContainer::start_s3(settings).await?;
                let location = S3Location::new(
                    format!("http://{}", at.addr),
                    BUCKET,
                    at.access_key_id,
                    at.secret_access_key,
                )
                .with_prefix(PREFIX)
                .with_region(crate::services::REGION);
                crate::remote::s3::S3Client::new(&location)
                    .create_bucket()
                    .await
                    .map_err(Error::ContainerSetup)?;
                (container, location.into(), at.addr)
            }
            Backend::Git => {
                let (container, at) = StoreContainer::start_git(settings).await?;
                let location = GitLocation::new(at.url)
                    .with_branch(BRANCH)
                    .with_credentials(at.username, at.password);
                (container, location.into(), at.addr)
            }
        };
        Ok(Self::new(
            Service::Container(backend, Box::new(container), addr),
            location,
        ))
    }

    /// Seeds, lists, verifies, damages and deletes backups in `format` instead of phasepod's.
    pub fn with_format(mut self, format: Box<dyn BackupFormat>) -> Self {
        self.format = format;
        self
    }

    /// The format backups are in.
    pub fn format(&self) -> &dyn BackupFormat {
        self.format.as_ref()
    }

    /// Where the scenario's backups live, as the harness reaches them.
    pub fn location(&self) -> &StoreLocation {
        &self.location
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
        match &self.location {
            StoreLocation::S3(s3) => crate::remote::s3::S3Client::new(s3)
                .delete_prefix(&s3.prefix)
                .await
                .map(drop)
                .map_err(|e| Error::Cleanup {
                    what: format!("s3://{}/{}", s3.bucket, s3.prefix),
                    problem: e.to_string(),
                }),
            StoreLocation::Git(git) => {
                crate::remote::git::delete_branch(git)
                    .await
                    .map_err(|e| Error::Cleanup {
                        what: format!("branch {}", git.branch),
                        problem: e.to_string(),
                    })
            }
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
        match &self.location {
            StoreLocation::S3(s3) => {
                settings.insert("S3_ENDPOINT".into(), self.advertised(&s3.endpoint));
                settings.insert("S3_BUCKET".into(), s3.bucket.clone());
                settings.insert("S3_PREFIX".into(), s3.prefix.clone());
                settings.insert("S3_REGION".into(), s3.region.clone());
            }
            StoreLocation::Git(git) => {
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
        match &self.location {
            StoreLocation::S3(s3) => {
                creds.insert("s3-access-key-id".into(), s3.access_key_id.clone());
                creds.insert("s3-secret-access-key".into(), s3.secret_access_key.clone());
            }
            StoreLocation::Git(git) => {
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

    /// Takes a backup of `dataset` now; returns its ID.
    pub async fn seed(&self, dataset: &Dataset) -> Result<String> {
        Ok(self.seed_at(dataset, None).await?.id)
    }

    /// Takes a backup of `dataset` as taken at `at` (now when `None`).
    pub async fn seed_at(
        &self,
        dataset: &Dataset,
        at: Option<DateTime<Utc>>,
    ) -> Result<BackupInfo> {
        Ok(self.format.seed(&self.location, dataset, at).await?)
    }

    /// The backups, newest first, with the time each was taken.
    pub async fn list(&self) -> Result<Vec<BackupInfo>> {
        Ok(self.format.list(&self.location).await?)
    }

    /// Reads backup `id` back, verified in its format's own terms; returns its content.
    pub async fn verify(&self, id: &str) -> Result<Dataset> {
        Ok(self.format.read(&self.location, id).await?)
    }

    async fn newest(&self) -> Result<String> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NoBackup)?
            .id)
    }

    /// Damages the newest backup so that it fails verification (what that means per format:
    /// [`crate::formats`]); returns what was done, in words.
    pub async fn corrupt_latest(&self) -> Result<String> {
        let newest = self.newest().await?;
        let what = self.format.damage(&self.location, &newest).await?;
        tracing::info!("damaged the newest backup: {what}");
        Ok(what)
    }

    /// Removes the newest backup.
    pub async fn delete_latest(&self) -> Result<()> {
        let newest = self.newest().await?;
        Ok(self.format.delete(&self.location, &newest).await?)
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

    /// Makes the store unreachable when the wall clock reaches `at` and returns once it is,
    /// with the moment it went down. An embedded store is switched off by a thread of its own,
    /// so a busy async runtime cannot make the outage late; a container is paused after an
    /// async wait (its pause takes a Docker round trip anyway).
    pub async fn down_at(&self, at: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let backend = self.backend();
        let service_error = |source| Error::Service { backend, source };
        let went_down = match &self.service {
            Service::S3(s) => s.down_at(at.into()).map_err(service_error)?.await,
            Service::Git(g) => g.down_at(at.into()).map_err(service_error)?.await,
            Service::Container(..) => {
                if let Ok(wait) = (at - Utc::now()).to_std() {
                    // NB: the condition is the clock itself: the outage begins at `at`.
                    tokio::time::sleep(wait).await;
                }
                self.down().await?;
                return Ok(Utc::now());
            }
            Service::External(backend) => return Err(Error::NoOutageSwitch(*backend)),
        };
        Ok(went_down.into())
    }

    /// Limits what the store sends to `bytes_per_sec` and pauses before each request
    /// ([`crate::services::throttle`]); `None`: full speed again. Embedded stores only.
    pub fn slow_down(&self, slowness: Option<Slowness>) -> Result<()> {
        match &self.service {
            Service::S3(s) => s.slow_down(slowness),
            Service::Git(g) => g.slow_down(slowness),
            Service::Container(backend, ..) | Service::External(backend) => {
                return Err(Error::NoThrottle(*backend));
            }
        }
        Ok(())
    }

    /// A feed of the store's changes, for waiting on what it will hold rather than listing it
    /// on a timer: embedded services report each write that has ended; other stores are
    /// listed every [`POLL_PERIOD`].
    pub fn changes(&self) -> StoreChanges {
        StoreChanges(match &self.service {
            Service::S3(s) => Some(s.changes()),
            Service::Git(g) => Some(g.changes()),
            Service::Container(..) | Service::External(_) => None,
        })
    }

    /// Bytes the store has sent to its clients, where it can tell (embedded stores).
    pub fn bytes_sent(&self) -> Option<u64> {
        match &self.service {
            Service::S3(s) => Some(s.bytes_sent()),
            Service::Git(g) => Some(g.bytes_sent()),
            Service::Container(..) | Service::External(_) => None,
        }
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

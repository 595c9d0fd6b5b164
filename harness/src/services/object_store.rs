//! The embedded S3 object store: s3s + s3s-fs (listing fixed, see [`super::s3_backend`]) behind
//! hyper.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use http::{Method, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tempfile::TempDir;

use super::changes::WriteCounter;
use super::net::{ServeFn, SwitchedListener};
use super::{Error, Result, endpoint_for, random_token, remove_dir_patiently};

/// The region the store claims and its clients sign for.
pub const REGION: &str = "us-east-1";

/// Builds an [`EmbeddedObjectStore`]. The default listens on a random port of `127.0.0.1` with
/// generated credentials.
#[derive(Clone, Debug)]
pub struct EmbeddedObjectStoreBuilder {
    bind_ip: IpAddr,
    port: u16,
    credentials: Option<(String, String)>,
}

impl Default for EmbeddedObjectStoreBuilder {
    fn default() -> Self {
        EmbeddedObjectStoreBuilder {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            credentials: None,
        }
    }
}

impl EmbeddedObjectStoreBuilder {
    /// Listen on `ip` instead of `127.0.0.1` — `Ipv4Addr::UNSPECIFIED` for containers that reach
    /// the host. [`EmbeddedObjectStore::endpoint`] still names loopback then.
    pub fn with_bind_addr(mut self, ip: impl Into<IpAddr>) -> Self {
        self.bind_ip = ip.into();
        self
    }

    /// Listen on this port instead of a random free one (0: random).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Accept these credentials instead of generated ones.
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// Starts the store. Needs a tokio runtime.
    pub async fn start(self) -> Result<EmbeddedObjectStore> {
        let (access_key_id, secret_access_key) = match self.credentials {
            Some(credentials) => credentials,
            None => (
                format!("PC{}", random_token(9)?.to_uppercase()),
                random_token(20)?,
            ),
        };
        let dir = tempfile::Builder::new()
            .prefix("phasecheck-s3-")
            .tempdir()
            .map_err(|source| Error::TempDir {
                service: "object store",
                source,
            })?;
        let fs =
            super::s3_backend::HarnessFs::new(dir.path()).map_err(|e| Error::ObjectStoreInit {
                path: dir.path().to_owned(),
                message: format!("{e:?}"),
            })?;
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(
                access_key_id.clone(),
                secret_access_key.clone(),
            ));
            builder.build()
        };
        let writes = WriteCounter::new();
        let counter = writes.clone();
        let serve: ServeFn = Arc::new(move |stream, peer| {
            let service = service.clone();
            let counter = counter.clone();
            Box::pin(async move {
                let counted = service_fn(move |request: Request<Incoming>| {
                    let writes = !matches!(*request.method(), Method::GET | Method::HEAD);
                    let service = service.clone();
                    let counter = counter.clone();
                    async move {
                        let response = service.call(request.map(s3s::Body::from)).await?;
                        Ok::<_, s3s::HttpError>(
                            response.map(|body| counter.response_body(body, writes)),
                        )
                    }
                });
                let served = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), counted)
                    .await;
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "object store connection ended");
                }
            })
        });
        let listener = SwitchedListener::start(SocketAddr::new(self.bind_ip, self.port), serve)?;
        tracing::debug!(addr = %listener.local_addr(), "embedded object store started");
        Ok(EmbeddedObjectStore {
            listener,
            writes,
            dir: Some(dir),
            access_key_id,
            secret_access_key,
        })
    }
}

/// An S3 object store served from a temporary directory on a loopback port, with real SigV4
/// authentication and an outage switch. See the [module docs](super) for what it honours.
///
/// Dropping it stops the server and removes the data.
pub struct EmbeddedObjectStore {
    listener: SwitchedListener,
    writes: WriteCounter,
    dir: Option<TempDir>,
    access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for EmbeddedObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedObjectStore")
            .field("endpoint", &self.endpoint())
            .field("data_dir", &self.data_dir())
            .field("access_key_id", &self.access_key_id)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl EmbeddedObjectStore {
    /// A builder with the defaults.
    pub fn builder() -> EmbeddedObjectStoreBuilder {
        EmbeddedObjectStoreBuilder::default()
    }

    /// Starts a store with the defaults: random port of `127.0.0.1`, generated credentials.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (path-style: buckets are the first segment).
    pub fn endpoint(&self) -> String {
        endpoint_for(self.listener.local_addr())
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().port()
    }

    /// The region to sign for: `us-east-1`.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The access key id it accepts.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key it accepts.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Where the objects live: one directory per bucket, one file per object (plus s3s-fs's
    /// metadata files at the top).
    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), TempDir::path)
    }

    /// The configuration [`client`](Self::client) uses — path-style, static credentials, region
    /// set — for callers that want to change timeouts or retries before building a client.
    pub fn client_config(&self) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.clone(),
                None,
                None,
                "phasecheck-embedded",
            ))
    }

    /// An S3 client for this store with the SDK's default timeouts and retries.
    pub fn client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.client_config().build())
    }

    /// Creates a bucket through the S3 API.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|source| Error::CreateBucket {
                bucket: bucket.to_owned(),
                source: Box::new(source),
            })?;
        Ok(())
    }

    /// Its change feed: the count goes up each time a request other than `GET` or `HEAD` has
    /// ended (see the [module docs](super)).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writes.subscribe()
    }

    /// Whether it is serving (not [`down`](Self::down)).
    pub fn is_up(&self) -> bool {
        self.listener.is_up()
    }

    /// Simulates an outage: closes the listener and resets every open connection before
    /// returning. New connections are refused until [`up`](Self::up). Stored objects are kept.
    /// Idempotent.
    pub fn down(&self) {
        self.listener.down();
    }

    /// Like [`down`](Self::down), when the wall clock reaches `at`, timed by a thread of its own
    /// (a busy async runtime cannot make the outage late). Resolves to the moment it went down.
    ///
    /// # Errors
    ///
    /// [`Error::OutageThread`] if the timing thread cannot be started.
    pub fn down_at(
        &self,
        at: std::time::SystemTime,
    ) -> Result<impl std::future::Future<Output = std::time::SystemTime> + use<>> {
        self.listener.down_at(at)
    }

    /// Ends an outage: listens on the same address again before returning. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be listened on again.
    pub fn up(&self) -> Result<()> {
        self.listener.up()
    }

    /// Slows the service down (see [`super::throttle`]) from now on; `None`: full speed again.
    pub fn slow_down(&self, slowness: Option<super::Slowness>) {
        self.listener.throttle().set(slowness);
    }

    /// Bytes the service has sent to its clients since it started.
    pub fn bytes_sent(&self) -> u64 {
        self.listener.throttle().bytes_sent()
    }
}

impl Drop for EmbeddedObjectStore {
    fn drop(&mut self) {
        self.listener.down();
        if let Some(dir) = self.dir.take() {
            remove_dir_patiently(&dir.keep());
        }
    }
}

//! The harness's S3 client: list, get, put and delete objects of one bucket.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};

use super::S3Location;

/// Connect timeout: an unreachable store is reported quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Limit on one attempt of one request.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per request (the first plus retries).
const MAX_ATTEMPTS: u32 = 3;
/// Requests in flight at once for bulk operations.
pub const CONCURRENCY: usize = 8;

/// A boxed transport or service error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the S3 client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed (store unreachable, refused, or answered with an error).
    #[error("{op}: {}", super::chain(.source.as_ref()))]
    Request {
        /// What was being done, with the bucket and key.
        op: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, as the store says.
    pub last_modified: Option<DateTime<Utc>>,
}

/// A client for one bucket.
#[derive(Clone, Debug)]
pub struct S3Client {
    client: Client,
    bucket: String,
}

/// Whether an SDK error is the service saying 404.
fn is_not_found<E>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(_))
        && err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 404)
}

impl S3Client {
    /// A client for `location`'s bucket: path-style, static credentials, short connect timeout,
    /// few retries, checksums only where required (so any S3-compatible store works).
    pub fn new(location: &S3Location) -> Self {
        let credentials = Credentials::new(
            &location.access_key_id,
            &location.secret_access_key,
            None,
            None,
            "phasecheck",
        );
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&location.endpoint)
            .region(Region::new(location.region.clone()))
            .force_path_style(true)
            .credentials_provider(credentials)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        S3Client {
            client: Client::from_conf(config),
            bucket: location.bucket.clone(),
        }
    }

    fn failed(&self, op: &str, key: &str) -> impl FnOnce(BoxError) -> Error {
        let op = format!("{op} s3://{}/{key}", self.bucket);
        move |source| Error::Request { op, source }
    }

    /// Creates the bucket.
    pub async fn create_bucket(&self) -> Result<()> {
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.failed("create bucket", "")(e.into()))?;
        Ok(())
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("list", prefix)(e.into()))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                objects.push(ObjectInfo {
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    last_modified: object
                        .last_modified()
                        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                });
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The "directories" right under `prefix` (common prefixes with delimiter `/`), each with
    /// the prefix and its trailing `/` removed, in key order.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("list", prefix)(e.into()))?;
            names.extend(page.common_prefixes().iter().filter_map(|p| {
                p.prefix()?
                    .strip_prefix(prefix)?
                    .strip_suffix('/')
                    .map(str::to_owned)
            }));
        }
        names.sort();
        Ok(names)
    }

    /// The object at `key`, or `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let response = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(self.failed("get", key)(e.into())),
        };
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| self.failed("get", key)(e.into()))?;
        Ok(Some(body.into_bytes()))
    }

    /// Writes `body` at `key`.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.failed("put", key)(e.into()))?;
        Ok(())
    }

    /// Writes every `(key, body)`, [`CONCURRENCY`] at a time.
    pub async fn put_all(&self, objects: Vec<(String, Bytes)>) -> Result<()> {
        futures::stream::iter(objects)
            .map(|(key, body)| async move { self.put(&key, body).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Deletes the object at `key` (no error if there is none).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed("delete", key)(e.into()))?;
        Ok(())
    }

    /// Deletes every object under `prefix`; returns how many there were.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize> {
        let objects = self.list(prefix).await?;
        let count = objects.len();
        futures::stream::iter(objects)
            .map(|o| async move { self.delete(&o.key).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(count)
    }
}

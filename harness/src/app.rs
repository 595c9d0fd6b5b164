//! A plain HTTP client for a subject's app: `GET` and `PUT` of paths the subject profile names
//! (`app.read: {httpGet: "/{path}"}`), nothing of any one app's API.
//!
//! One short-lived HTTP/1.1 connection per request keeps failures attributable: a refused
//! connection is the app being down, not a stale keep-alive.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Errors talking to the app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path is not a valid HTTP request target (percent-encode it).
    #[error("`{path}` is not a valid request path: {problem}")]
    BadPath {
        /// The path.
        path: String,
        /// What the HTTP library said.
        problem: String,
    },
    /// No connection could be made.
    #[error("cannot connect to the app at {addr}: {source}")]
    Connect {
        /// The app's address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("{method} {path} on {addr}: {source}")]
    Http {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The app's address.
        addr: SocketAddr,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// The app did not answer in time.
    #[error("{method} {path} on {addr}: no answer within {timeout:?}")]
    Timeout {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The app's address.
        addr: SocketAddr,
        /// The limit.
        timeout: Duration,
    },
    /// The app answered with an unexpected status.
    #[error("{method} {path} on {addr}: status {status}: {body}")]
    Status {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The app's address.
        addr: SocketAddr,
        /// What it answered.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
}

impl Error {
    fn bad_path(path: &str, problem: impl std::fmt::Display) -> Self {
        Error::BadPath {
            path: path.to_owned(),
            problem: problem.to_string(),
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The app's HTTP API at one address.
#[derive(Clone, Debug)]
pub struct AppClient {
    addr: SocketAddr,
    timeout: Duration,
}

impl AppClient {
    /// A client for the app at `addr`, with a 10 s limit per request.
    pub fn new(addr: SocketAddr) -> Self {
        AppClient {
            addr,
            timeout: Duration::from_secs(10),
        }
    }

    /// Sets the per-request limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The address requests go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` (an HTTP path, already percent-encoded); the body of a 2xx answer.
    pub async fn get(&self, path: &str) -> Result<Bytes> {
        self.expect_ok(Method::GET, path, Bytes::new()).await
    }

    /// `PUT path` with `content`; a 2xx answer is success.
    pub async fn put(&self, path: &str, content: impl Into<Bytes>) -> Result<()> {
        self.expect_ok(Method::PUT, path, content.into())
            .await
            .map(drop)
    }

    /// WebDAV: `MKCOL` every parent collection of `path` (a `405 Method Not Allowed` means it
    /// exists), then `PUT` the content.
    pub async fn webdav_put(&self, path: &str, content: impl Into<Bytes>) -> Result<()> {
        let mkcol = Method::from_bytes(b"MKCOL").expect("MKCOL is a valid method token");
        let mut parent = String::new();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            parent.push('/');
            parent.push_str(segment);
            match self
                .expect_ok(mkcol.clone(), &format!("{parent}/"), Bytes::new())
                .await
            {
                Ok(_) => {}
                Err(Error::Status { status, .. }) if status == StatusCode::METHOD_NOT_ALLOWED => {}
                Err(e) => return Err(e),
            }
        }
        self.put(path, content).await
    }

    /// `DELETE path`; a 2xx answer is success.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.expect_ok(Method::DELETE, path, Bytes::new())
            .await
            .map(drop)
    }

    /// One request; a 2xx status is success.
    async fn expect_ok(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes> {
        let exchange = self.exchange(method.clone(), path, body);
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                method: method.clone(),
                path: path.to_owned(),
                addr: self.addr,
                timeout: self.timeout,
            })??;
        if status.is_success() {
            Ok(body)
        } else {
            Err(Error::Status {
                method,
                path: path.to_owned(),
                addr: self.addr,
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            })
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        let http_error = |source| Error::Http {
            method: method.clone(),
            path: path.to_owned(),
            addr: self.addr,
            source,
        };
        let uri: http::Uri = path.parse().map_err(|e| Error::bad_path(path, e))?;
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|source| Error::Connect {
                addr: self.addr,
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        let driver = tokio::spawn(connection);
        let request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(http::header::HOST, self.addr.to_string())
            .body(Full::new(body))
            .map_err(|e| Error::bad_path(path, e))?;
        let response = sender.send_request(request).await.map_err(http_error)?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(http_error)?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }
}

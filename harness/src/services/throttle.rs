//! A slow store: bandwidth and latency on every connection of an embedded service, switched on
//! and off while it runs (`Fault::SlowStore` in the scenarios).
//!
//! Every accepted connection is a [`ThrottledStream`] sharing its service's [`Throttle`]:
//!
//! - **bandwidth** is one link for all connections together: each write the server makes reserves
//!   `bytes / bytes_per_sec` on the link, and the next write waits until the link is free again
//!   (writes are cut to a twentieth of a second's worth, so many connections share it fairly);
//! - **latency** is a pause before the server reads a request: at a connection's start, and each
//!   time the client speaks again after the server has written (the next request on a keep-alive
//!   connection).
//!
//! Only what the server sends is throttled (downloads: restores, listings); what it receives is
//! not. [`Throttle::bytes_sent`] counts what the server sent, throttled or not, so a scenario can
//! tell how far a download has got.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// How slow a store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slowness {
    /// The bandwidth of everything the store sends, over all connections together.
    pub bytes_per_sec: u64,
    /// The pause before each request is read.
    pub latency: Duration,
}

/// The smallest slice a write is cut to, however low the bandwidth.
const MIN_SLICE: usize = 512;

/// A service's throttle, shared by all its connections.
#[derive(Default)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slowness: Option<Slowness>,
    /// When the link is free for the next write.
    link_free_at: Option<Instant>,
    /// Bytes sent since the service started.
    sent: u64,
}

impl Throttle {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Slows every connection down from now on (`None`: full speed again). Writes already
    /// waiting for the link keep their turn.
    pub fn set(&self, slowness: Option<Slowness>) {
        let mut state = self.lock();
        state.slowness = slowness;
        state.link_free_at = None;
    }

    /// The slowness in force.
    pub fn slowness(&self) -> Option<Slowness> {
        self.lock().slowness
    }

    /// Bytes the service has sent since it started.
    pub fn bytes_sent(&self) -> u64 {
        self.lock().sent
    }
}

/// An accepted connection under its service's [`Throttle`].
pub struct ThrottledStream {
    inner: TcpStream,
    throttle: Arc<Throttle>,
    /// The server wrote since it last read: the next read is a new request.
    wrote_since_read: bool,
    /// The pending latency before a read.
    read_pause: Option<Pin<Box<Sleep>>>,
    /// The pending wait for the link before a write.
    write_pause: Option<Pin<Box<Sleep>>>,
    /// The latency before the current request has been waited out.
    latency_served: bool,
}

impl ThrottledStream {
    /// Wraps an accepted connection.
    pub fn new(inner: TcpStream, throttle: Arc<Throttle>) -> Self {
        ThrottledStream {
            inner,
            throttle,
            wrote_since_read: true,
            read_pause: None,
            write_pause: None,
            latency_served: false,
        }
    }
}

/// Waits out `slot`'s pause, if any.
fn poll_pause(slot: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> Poll<()> {
    if let Some(pause) = slot {
        ready!(pause.as_mut().poll(cx));
        *slot = None;
    }
    Poll::Ready(())
}

/// Pauses until `at`, keeping the pause in `slot` while it is pending.
fn pause_until(slot: &mut Option<Pin<Box<Sleep>>>, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
    *slot = Some(Box::pin(tokio::time::sleep_until(at)));
    poll_pause(slot, cx)
}

impl AsyncRead for ThrottledStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(poll_pause(&mut this.read_pause, cx));
        if this.wrote_since_read && !this.latency_served {
            let latency = this
                .throttle
                .slowness()
                .map_or(Duration::ZERO, |s| s.latency);
            this.latency_served = true;
            if !latency.is_zero() {
                ready!(pause_until(
                    &mut this.read_pause,
                    Instant::now() + latency,
                    cx
                ));
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.wrote_since_read = false;
            this.latency_served = false;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ThrottledStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(poll_pause(&mut this.write_pause, cx));
        let (slowness, free_at) = {
            let state = this.throttle.lock();
            (state.slowness, state.link_free_at)
        };
        let slice = match slowness {
            Some(slow) => {
                if let Some(free_at) = free_at.filter(|at| *at > Instant::now()) {
                    ready!(pause_until(&mut this.write_pause, free_at, cx));
                }
                let per_tick = usize::try_from(slow.bytes_per_sec / 20).unwrap_or(usize::MAX);
                buf.len().min(per_tick.max(MIN_SLICE))
            }
            None => buf.len(),
        };
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..slice]))?;
        this.wrote_since_read = true;
        let mut state = this.throttle.lock();
        state.sent += written as u64;
        if let Some(slow) = state.slowness {
            let now = Instant::now();
            let start = state.link_free_at.filter(|at| *at > now).unwrap_or(now);
            let busy = Duration::from_secs_f64(written as f64 / slow.bytes_per_sec.max(1) as f64);
            state.link_free_at = Some(start + busy);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers each 1-byte request with `reply` bytes, under `throttle`.
    async fn server(throttle: Arc<Throttle>, reply: usize) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let mut stream = ThrottledStream::new(stream, throttle.clone());
                tokio::spawn(async move {
                    let mut request = [0u8; 1];
                    while stream.read_exact(&mut request).await.is_ok() {
                        if stream.write_all(&vec![7u8; reply]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn fetch(addr: std::net::SocketAddr, requests: usize, reply: usize) -> Duration {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let mut body = vec![0u8; reply];
        for _ in 0..requests {
            client.write_all(b"?").await.unwrap();
            client.read_exact(&mut body).await.unwrap();
        }
        started.elapsed()
    }

    #[tokio::test]
    async fn bandwidth_is_shared_by_all_connections_and_lifted_at_once() {
        let throttle = Arc::new(Throttle::default());
        let addr = server(throttle.clone(), 50_000).await;
        throttle.set(Some(Slowness {
            bytes_per_sec: 200_000,
            latency: Duration::ZERO,
        }));
        // Four connections fetch 200 kB together: a second at 200 kB/s, whoever asks.
        let together = futures::future::join_all((0..4).map(|_| fetch(addr, 1, 50_000))).await;
        let slowest = together.iter().max().unwrap();
        assert!(*slowest >= Duration::from_millis(900), "{together:?}");
        assert!(throttle.bytes_sent() >= 200_000);
        throttle.set(None);
        let fast = fetch(addr, 1, 50_000).await;
        assert!(fast < Duration::from_millis(200), "{fast:?}");
    }

    #[tokio::test]
    async fn latency_delays_every_request_on_a_kept_connection() {
        let throttle = Arc::new(Throttle::default());
        let addr = server(throttle.clone(), 10).await;
        throttle.set(Some(Slowness {
            bytes_per_sec: u64::MAX,
            latency: Duration::from_millis(100),
        }));
        let took = fetch(addr, 5, 10).await;
        assert!(took >= Duration::from_millis(500), "{took:?}");
        throttle.set(None);
        let took = fetch(addr, 5, 10).await;
        assert!(took < Duration::from_millis(100), "{took:?}");
    }
}

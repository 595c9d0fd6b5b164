//! The outage switch both services share: a TCP listener that can be closed and reopened on the
//! same address, and that resets its open connections when it is closed.
//!
//! The port is held by a *reservation*: a socket bound (with `SO_REUSEPORT`) to the address but
//! never listening. While the service is up, a second socket bound the same way listens and a
//! tokio task accepts on it. `down()` shuts the listening socket down on the spot (Linux turns a
//! listening socket that is shut down for reading back into a closed one, so new connections are
//! refused from then on), sets a zero linger on every open connection, shuts it down and aborts
//! its task — the peer sees the connection end at once, then a reset. `up()` binds and listens
//! anew before it returns. Both are synchronous, so a test that flips the switch and then connects
//! observes the new state.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::throttle::{Throttle, ThrottledStream};
use super::{Error, Result};

/// Serves one accepted connection until it ends.
pub(crate) type ServeFn =
    Arc<dyn Fn(ThrottledStream, SocketAddr) -> BoxFuture<'static, ()> + Send + Sync + 'static>;

/// How many connections may wait in the kernel to be accepted.
const BACKLOG: i32 = 1024;

/// A listener with an outage switch. Dropping it takes the service down for good and frees the
/// port (once the runtime has dropped the aborted tasks, which it does promptly).
pub(crate) struct SwitchedListener {
    addr: SocketAddr,
    runtime: Handle,
    shared: Arc<Shared>,
    /// Bound, never listening: keeps the port ours while the service is down.
    _reservation: Socket,
}

struct Shared {
    serve: ServeFn,
    throttle: Arc<Throttle>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Incremented by every `up()`; an accept loop only adopts connections for its own.
    generation: u64,
    live: Option<Live>,
    next_conn: u64,
    conns: HashMap<u64, Conn>,
}

/// The listening half while the service is up.
struct Live {
    generation: u64,
    /// A duplicate of the listening socket's descriptor, to shut it down synchronously.
    listener: Socket,
    accept: AbortHandle,
}

/// An open connection.
struct Conn {
    /// A duplicate of the connection's descriptor, to reset it synchronously.
    socket: Socket,
    task: AbortHandle,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SwitchedListener {
    /// Reserves `addr` (port 0: a free port), starts listening on it and serves every connection
    /// with `serve` on the current tokio runtime.
    pub(crate) fn start(addr: SocketAddr, serve: ServeFn) -> Result<Self> {
        let runtime = Handle::try_current().map_err(|source| Error::NoRuntime { source })?;
        let bind_error = |source| Error::Bind { addr, source };
        let reservation = bound_socket(addr).map_err(bind_error)?;
        let addr = reservation
            .local_addr()
            .map_err(bind_error)?
            .as_socket()
            .ok_or_else(|| bind_error(std::io::Error::other("not an inet address")))?;
        let listener = SwitchedListener {
            addr,
            runtime,
            shared: Arc::new(Shared {
                serve,
                throttle: Arc::default(),
                state: Mutex::new(State::default()),
            }),
            _reservation: reservation,
        };
        listener.up()?;
        Ok(listener)
    }

    /// The bound address, port resolved.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The throttle every connection goes through (see [`super::throttle`]).
    pub(crate) fn throttle(&self) -> &Throttle {
        &self.shared.throttle
    }

    /// Whether the service is listening.
    pub(crate) fn is_up(&self) -> bool {
        self.shared.lock().live.is_some()
    }

    /// Listens again (no-op when up).
    pub(crate) fn up(&self) -> Result<()> {
        let mut state = self.shared.lock();
        if state.live.is_some() {
            return Ok(());
        }
        let addr = self.addr;
        let bind_error = |source| Error::Bind { addr, source };
        let socket = bound_socket(addr).map_err(bind_error)?;
        socket.listen(BACKLOG).map_err(bind_error)?;
        let dup = socket.try_clone().map_err(bind_error)?;
        let listener = {
            let _entered = self.runtime.enter();
            TcpListener::from_std(socket.into()).map_err(bind_error)?
        };
        state.generation += 1;
        let generation = state.generation;
        let accept = self.runtime.spawn(accept_loop(
            Arc::downgrade(&self.shared),
            listener,
            generation,
        ));
        state.live = Some(Live {
            generation,
            listener: dup,
            accept: accept.abort_handle(),
        });
        tracing::debug!(%addr, "service up");
        Ok(())
    }

    /// Stops listening and resets every open connection (no-op when down).
    pub(crate) fn down(&self) {
        self.shared.down(self.addr);
    }

    /// Takes the service down when the wall clock reaches `at` (at once if it has), on a thread
    /// of its own: an outage that must begin before a scheduled time is not made late by a busy
    /// async runtime. The future resolves to the moment the service went down; dropping it
    /// does not cancel the outage.
    pub(crate) fn down_at(
        &self,
        at: SystemTime,
    ) -> Result<impl std::future::Future<Output = SystemTime> + use<>> {
        let (sent, received) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let addr = self.addr;
        std::thread::Builder::new()
            .name("outage-switch".into())
            .spawn(move || {
                if let Ok(wait) = at.duration_since(SystemTime::now()) {
                    // NB: the condition is the clock itself: the outage begins at `at`.
                    std::thread::sleep(wait);
                }
                shared.down(addr);
                let _ = sent.send(SystemTime::now());
            })
            .map_err(|source| Error::OutageThread { addr, source })?;
        // NB: the thread sends once the service is down; it cannot end without sending.
        Ok(async move { received.await.unwrap_or_else(|_| SystemTime::now()) })
    }
}

impl Shared {
    /// See [`SwitchedListener::down`].
    fn down(&self, addr: SocketAddr) {
        let (live, conns) = {
            let mut state = self.lock();
            let Some(live) = state.live.take() else {
                return;
            };
            let conns: Vec<Conn> = state.conns.drain().map(|(_, conn)| conn).collect();
            (live, conns)
        };
        // NB: shutdown(2) on a listening socket stops it listening right away (and resets the
        // connections waiting in its backlog); closing our descriptor would not, the accept task
        // still holds one until the runtime drops it.
        let _ = live.listener.shutdown(Shutdown::Both);
        live.accept.abort();
        for conn in conns {
            // Zero linger: the last close (the aborted task's) sends a reset, not a FIN.
            let _ = conn.socket.set_linger(Some(Duration::ZERO));
            let _ = conn.socket.shutdown(Shutdown::Both);
            conn.task.abort();
        }
        tracing::debug!(%addr, "service down");
    }
}

impl Drop for SwitchedListener {
    fn drop(&mut self) {
        self.down();
    }
}

/// A TCP socket bound to `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`, non-blocking.
fn bound_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    // NB: lets the listener share the port with the reservation; only sockets of this user
    // that also ask for the exact port with SO_REUSEPORT could join them.
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

async fn accept_loop(shared: Weak<Shared>, listener: TcpListener, generation: u64) {
    loop {
        let accepted = listener.accept().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match accepted {
            Ok((stream, peer)) => shared.adopt(stream, peer, generation),
            Err(error) => {
                if shared.lock().live.as_ref().map(|live| live.generation) != Some(generation) {
                    return;
                }
                if error.kind() != std::io::ErrorKind::ConnectionAborted {
                    // NB: a back-off, not a wait for a condition: EMFILE and friends clear when
                    // other connections close, and retrying at once would spin.
                    tracing::warn!(%error, "accept failed");
                    drop(shared);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl Shared {
    /// Starts serving an accepted connection, unless the service went down meanwhile.
    fn adopt(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr, generation: u64) {
        let _ = stream.set_nodelay(true);
        let socket = match SockRef::from(&stream).try_clone() {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(%error, %peer, "cannot track connection, dropping it");
                return;
            }
        };
        let mut state = self.lock();
        if state.live.as_ref().map(|live| live.generation) != Some(generation) {
            let _ = socket.set_linger(Some(Duration::ZERO));
            return;
        }
        let id = state.next_conn;
        state.next_conn += 1;
        let guard = ConnGuard {
            shared: Arc::downgrade(self),
            id,
        };
        let stream = ThrottledStream::new(stream, Arc::clone(&self.throttle));
        let serve = (self.serve)(stream, peer);
        let task = tokio::spawn(async move {
            let _guard = guard;
            serve.await;
        });
        state.conns.insert(
            id,
            Conn {
                socket,
                task: task.abort_handle(),
            },
        );
    }
}

/// Forgets a connection when its task ends, however it ends.
struct ConnGuard {
    shared: Weak<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.lock().conns.remove(&self.id);
        }
    }
}

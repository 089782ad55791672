//! Serving HTTP/1 connections from clients that may be hostile: a cap on open
//! connections, timeouts on what a client owes us, and an accept loop that never spins.
//!
//! Both listeners of `grove server` (the router and the API) share the process's file
//! descriptors, so a flood of idle connections on either one must neither exhaust them
//! nor starve legitimate clients. Every connection is in one of two states:
//!
//! - *idle*: waiting for a request head (a new connection, or a keep-alive one between
//!   requests). It owes us bytes, so it is timed: the complete head within
//!   `header_read_timeout`; between requests, the first byte of the next one within
//!   `idle_timeout`. Idle connections are also the ones shed at the cap.
//! - *busy*: a request is being served. Its length is up to the app (a log can stream
//!   for hours), so only a client that stops reading what we send is timed
//!   (`send_timeout`).
//!
//! hyper's own `header_read_timeout` is not used: it starts whenever hyper waits for a
//! head, including right after a response, so it cannot tell a keep-alive pause from a
//! slow head and would cut keep-alive connections at the header timeout.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxError = Box<dyn StdError + Send + Sync>;

/// How long the accept loop pauses after an error that is not about one connection
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...): retrying at once would fail the same way,
/// in a loop, while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Accept errors are logged at most once per interval, with a count of the others.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// At the cap, how often the accept loop looks again for an idle connection to shed
/// while every connection is busy.
const SHED_RETRY: Duration = Duration::from_millis(100);

/// Limits of one listener. The defaults follow nginx (`client_header_timeout 60s`,
/// `keepalive_timeout 75s`, `send_timeout 60s`) and size the cap from the process's
/// open-files limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once. At the cap, the idle connection that has been idle
    /// longest is closed to make room; when every connection is busy, new ones wait in
    /// the kernel's accept queue.
    pub max_connections: usize,
    /// How long a client may take to send a complete request head: from the connection
    /// being accepted for its first request, from the first byte for later ones.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait between a response and the first byte
    /// of the next request.
    pub idle_timeout: Duration,
    /// How long a write to the client may stay blocked because it does not read.
    pub send_timeout: Duration,
}

impl ConnectionLimits {
    /// The defaults, with a cap derived from a soft `RLIMIT_NOFILE` of `open_files`
    /// (`None`: unlimited).
    pub fn for_open_files(open_files: Option<u64>) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max_connections_for(open_files),
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for ConnectionLimits {
    /// [`ConnectionLimits::for_open_files`] with the process's current soft limit, so
    /// build it after raising that limit.
    fn default() -> ConnectionLimits {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        ConnectionLimits::for_open_files(limit.current)
    }
}

/// A quarter of the descriptors per listener: a proxied request holds two (the
/// client's and the upstream's), so the router at its cap uses half of them and the
/// API a quarter, which leaves a quarter for the store, git, logs, builds and pooled
/// upstream connections. Never below 64 (a usable server even under a 256 limit), and
/// never above 16384: past that, memory rather than descriptors runs out first
/// (each connection holds buffers of several KiB).
fn max_connections_for(open_files: Option<u64>) -> usize {
    let quarter = open_files.map_or(u64::MAX, |n| n / 4);
    usize::try_from(quarter.clamp(64, 16_384)).unwrap_or(16_384)
}

/// Counters of one listener, for logs and tests. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct ConnectionStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    open: AtomicUsize,
    peak_open: AtomicUsize,
    accepted: AtomicU64,
    accept_errors: AtomicU64,
    shed: AtomicU64,
    timed_out: AtomicU64,
}

impl ConnectionStats {
    /// Connections open now (accepted and not yet closed, upgraded ones included).
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// The most connections that were open at once.
    pub fn peak_open(&self) -> usize {
        self.inner.peak_open.load(Ordering::Relaxed)
    }

    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Failed `accept` calls.
    pub fn accept_errors(&self) -> u64 {
        self.inner.accept_errors.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for a new one at the cap.
    pub fn shed(&self) -> u64 {
        self.inner.shed.load(Ordering::Relaxed)
    }

    /// Connections closed by one of the timeouts.
    pub fn timed_out(&self) -> u64 {
        self.inner.timed_out.load(Ordering::Relaxed)
    }

    fn opened(&self) {
        let open = self.inner.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.inner.peak_open.fetch_max(open, Ordering::Relaxed);
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.inner.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves HTTP/1 on `listener` within `limits` until `shutdown` is cancelled, with
/// the service `make_service` returns for each connection's peer. On shutdown it
/// stops accepting, lets each connection finish the request it is serving (idle ones
/// close at once) and returns when all are closed; the timeouts still apply then, so
/// callers that cannot wait that long bound the wait themselves.
///
/// A tower service (an axum `Router`) is served with
/// [`TowerToHyperService`](crate::TowerToHyperService).
pub async fn serve_connections<M, S, B>(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: ConnectionStats,
    mut make_service: M,
    shutdown: CancellationToken,
) where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let tasks = TaskTracker::new();
    let mut errors = AcceptErrors::default();
    let next_id = AtomicU64::new(0);
    let local = listener
        .local_addr()
        .map_or_else(|_| "an unknown address".to_string(), |a| a.to_string());
    tracing::info!(
        listen = %local,
        max_connections = limits.max_connections,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        send_timeout = ?limits.send_timeout,
        "Serving HTTP connections."
    );
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                if let Some(suppressed) = errors.recovered() {
                    tracing::info!(listen = %local, suppressed, "Accepting connections again.");
                }
                accepted
            }
            Err(error) => {
                stats.inner.accept_errors.fetch_add(1, Ordering::Relaxed);
                let verdict = errors.failed(&error, Instant::now());
                if let Some(suppressed) = verdict.log {
                    tracing::warn!(
                        listen = %local,
                        %error,
                        suppressed,
                        "Cannot accept a connection."
                    );
                }
                if !verdict.pause.is_zero() {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(verdict.pause) => {}
                    }
                }
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match make_room(&permits, &registry, &stats, &shutdown).await {
                Some(permit) => permit,
                None => break,
            },
        };
        // Responses are written whole by hyper; Nagle would only delay the last
        // segment of each. Failing to set it changes nothing else.
        let _ = stream.set_nodelay(true);
        let connection =
            Connection::open(next_id.fetch_add(1, Ordering::Relaxed), registry.clone());
        stats.opened();
        let io = WatchedStream {
            stream,
            connection: connection.clone(),
            stats: stats.clone(),
            _permit: permit,
        };
        let service = Tracked {
            inner: make_service(peer),
            connection: connection.clone(),
        };
        tasks.spawn(drive(
            io,
            service,
            connection,
            limits.clone(),
            stats.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

/// At the cap: closes the connection idle the longest and waits for a free slot.
///
/// Idle connections are the ones to shed because they cost their client least: one
/// that never sent a byte loses nothing, one between requests is reopened by any
/// HTTP client, and one in the middle of a head has not been served yet either (a
/// real client's head arrives at once, a slow one is most likely an attack). Oldest
/// first, like nginx's reuse of keep-alive connections, because a connection that
/// has waited longest is the least likely to be about to send a request. A busy
/// connection is never shed: that would fail a request in progress. When every
/// connection is busy, the new one waits here (and further ones in the kernel's
/// accept queue) until a request ends.
async fn make_room(
    permits: &Arc<Semaphore>,
    registry: &Registry,
    stats: &ConnectionStats,
    shutdown: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    loop {
        if registry.shed_oldest_idle() {
            stats.inner.shed.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            permit = permits.clone().acquire_owned() => return permit.ok(),
            () = tokio::time::sleep(SHED_RETRY) => {}
        }
    }
}

/// Drives one connection: hyper's state machine, the deadlines of its current state,
/// being shed, and shutdown.
async fn drive<S, B>(
    io: WatchedStream,
    service: Tracked<S>,
    connection: Arc<Connection>,
    limits: ConnectionLimits,
    stats: ConnectionStats,
    shutdown: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        // Enforced by `deadline` instead; see the module's documentation.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let deadline = connection.deadline(&limits);
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "Connection ended with an error.");
                }
                break;
            }
            () = expired => {
                // The state may have changed since the deadline was computed.
                if connection.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    stats.inner.timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("Connection timed out; closing it.");
                    break;
                }
            }
            () = connection.changed.notified() => {
                if !closing && connection.shed.load(Ordering::Relaxed) {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    // An upgraded connection lives on in its new owner, which has its own rules.
    connection.detach();
}

/// The idle connections of one listener, oldest first, for shedding.
#[derive(Default)]
struct Registry {
    idle: Mutex<BTreeMap<(Instant, u64), Weak<Connection>>>,
}

impl Registry {
    /// Asks the connection idle the longest to close; false when none is idle.
    fn shed_oldest_idle(&self) -> bool {
        loop {
            let Some((_, oldest)) = lock(&self.idle).pop_first() else {
                return false;
            };
            if let Some(connection) = oldest.upgrade() {
                connection.shed.store(true, Ordering::Relaxed);
                connection.changed.notify_one();
                return true;
            }
        }
    }
}

/// What one connection is doing, shared by its stream, its service and its task.
struct Connection {
    id: u64,
    state: Mutex<ConnectionState>,
    /// Wakes the connection's task: its deadline may have moved, or it was shed.
    changed: Notify,
    shed: AtomicBool,
    /// Whether a read should record the first byte of a request (saves a lock on the
    /// other reads).
    awaiting_first_byte: AtomicBool,
    /// Whether the last write was blocked (saves a lock on the other writes).
    write_blocked: AtomicBool,
    registry: Arc<Registry>,
}

struct ConnectionState {
    activity: Activity,
    write_blocked_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Waiting for a request head since `since`; `first_byte` is when its first byte
    /// came, `served` whether a request was served before on this connection.
    Idle {
        since: Instant,
        first_byte: Option<Instant>,
        served: bool,
    },
    /// Serving `requests` requests (hyper serves one at a time; counted anyway).
    Busy { requests: usize },
    /// hyper is done with it (closed, or upgraded and handed over).
    Detached,
}

impl Connection {
    fn open(id: u64, registry: Arc<Registry>) -> Arc<Connection> {
        let now = Instant::now();
        let connection = Arc::new(Connection {
            id,
            state: Mutex::new(ConnectionState {
                activity: Activity::Idle {
                    since: now,
                    first_byte: None,
                    served: false,
                },
                write_blocked_since: None,
            }),
            changed: Notify::new(),
            shed: AtomicBool::new(false),
            awaiting_first_byte: AtomicBool::new(true),
            write_blocked: AtomicBool::new(false),
            registry,
        });
        lock(&connection.registry.idle).insert((now, id), Arc::downgrade(&connection));
        connection
    }

    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let state = lock(&self.state);
        deadline(state.activity, state.write_blocked_since, limits)
    }

    fn bytes_read(&self) {
        if !self.awaiting_first_byte.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut state = lock(&self.state);
        if let Activity::Idle {
            first_byte: first_byte @ None,
            ..
        } = &mut state.activity
        {
            *first_byte = Some(Instant::now());
            self.changed.notify_one();
        }
    }

    fn write_blocked(&self) {
        if self.write_blocked.swap(true, Ordering::Relaxed) {
            return;
        }
        lock(&self.state).write_blocked_since = Some(Instant::now());
        self.changed.notify_one();
    }

    fn write_unblocked(&self) {
        // The deadline only moves later: the task finds that out when the old one
        // expires, no need to wake it.
        if self.write_blocked.swap(false, Ordering::Relaxed) {
            lock(&self.state).write_blocked_since = None;
        }
    }

    fn request_started(self: &Arc<Self>) -> BusyGuard {
        let mut state = lock(&self.state);
        state.activity = match state.activity {
            Activity::Idle { since, .. } => {
                lock(&self.registry.idle).remove(&(since, self.id));
                Activity::Busy { requests: 1 }
            }
            Activity::Busy { requests } => Activity::Busy {
                requests: requests + 1,
            },
            Activity::Detached => Activity::Detached,
        };
        self.changed.notify_one();
        BusyGuard {
            connection: self.clone(),
        }
    }

    fn request_finished(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        if let Activity::Busy { requests } = state.activity {
            state.activity = if requests > 1 {
                Activity::Busy {
                    requests: requests - 1,
                }
            } else {
                let now = Instant::now();
                self.awaiting_first_byte.store(true, Ordering::Relaxed);
                if !self.shed.load(Ordering::Relaxed) {
                    lock(&self.registry.idle).insert((now, self.id), Arc::downgrade(self));
                }
                Activity::Idle {
                    since: now,
                    first_byte: None,
                    served: true,
                }
            };
            self.changed.notify_one();
        }
    }

    fn detach(&self) {
        let mut state = lock(&self.state);
        if let Activity::Idle { since, .. } = state.activity {
            lock(&self.registry.idle).remove(&(since, self.id));
        }
        state.activity = Activity::Detached;
        state.write_blocked_since = None;
    }
}

/// When a connection in `activity`, with writes blocked since `write_blocked_since`,
/// is closed; `None`: not while it stays so. A timeout too large to add is no timeout.
fn deadline(
    activity: Activity,
    write_blocked_since: Option<Instant>,
    limits: &ConnectionLimits,
) -> Option<Instant> {
    let reading = match activity {
        Activity::Idle {
            since,
            served: false,
            ..
        } => since.checked_add(limits.header_read_timeout),
        Activity::Idle {
            first_byte: Some(first_byte),
            served: true,
            ..
        } => first_byte.checked_add(limits.header_read_timeout),
        Activity::Idle {
            since,
            first_byte: None,
            served: true,
        } => since.checked_add(limits.idle_timeout),
        Activity::Busy { .. } | Activity::Detached => None,
    };
    let writing = write_blocked_since.and_then(|t| t.checked_add(limits.send_timeout));
    match (reading, writing) {
        (Some(r), Some(w)) => Some(r.min(w)),
        (r, w) => r.or(w),
    }
}

/// Marks its connection busy while a request is served: created when hyper calls the
/// service with a complete head, dropped with the response body once it is written
/// (or with the service's future when the client went away first).
struct BusyGuard {
    connection: Arc<Connection>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.connection.request_finished();
    }
}

/// A service that marks its connection busy while it serves a request.
struct Tracked<S> {
    inner: S,
    connection: Arc<Connection>,
}

type TrackedFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<GuardedBody<B>>, E>> + Send>>;

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
{
    type Response = Response<GuardedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<B, S::Error>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let busy = self.connection.request_started();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| GuardedBody {
                inner: Box::pin(body),
                _busy: busy,
            }))
        })
    }
}

/// A response body that keeps its connection busy until it is dropped.
struct GuardedBody<B> {
    inner: Pin<Box<B>>,
    _busy: BusyGuard,
}

impl<B: Body> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.get_mut().inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's socket, reporting reads and blocked writes to its connection. It
/// holds the connection's slot under the cap, so an upgraded connection keeps
/// counting until its socket is closed.
struct WatchedStream {
    stream: TcpStream,
    connection: Arc<Connection>,
    stats: ConnectionStats,
    _permit: OwnedSemaphorePermit,
}

impl Drop for WatchedStream {
    fn drop(&mut self) {
        self.connection.detach();
        self.stats.closed();
    }
}

impl WatchedStream {
    fn written<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &polled {
            Poll::Pending => self.connection.write_blocked(),
            Poll::Ready(_) => self.connection.write_unblocked(),
        }
        polled
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.connection.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.written(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.written(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.written(polled)
    }
}

/// What to do about one failed `accept`.
#[derive(Debug, PartialEq, Eq)]
struct AcceptVerdict {
    /// Log it, with how many errors were not logged since the last line.
    log: Option<u64>,
    /// Wait this long before accepting again.
    pause: Duration,
}

/// Rate-limits the logging of accept errors and decides the pause after each.
#[derive(Debug, Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn failed(&mut self, error: &io::Error, now: Instant) -> AcceptVerdict {
        let log = match self.last_logged {
            Some(last) if now.saturating_duration_since(last) < ACCEPT_ERROR_LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        };
        // An error about one connection (it was reset or aborted while queued) used
        // that connection up: the next accept is a different one, so it may follow at
        // once, and pausing would let a client slow the listener down with resets.
        let pause = if is_about_one_connection(error) {
            Duration::ZERO
        } else {
            ACCEPT_ERROR_PAUSE
        };
        AcceptVerdict { log, pause }
    }

    /// After a successful accept: how many errors went unlogged since the last line,
    /// when some did.
    fn recovered(&mut self) -> Option<u64> {
        self.last_logged = None;
        Some(std::mem::take(&mut self.suppressed)).filter(|&n| n > 0)
    }
}

fn is_about_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_a_quarter_of_the_open_files_limit_within_bounds() {
        for (open_files, expected) in [
            (Some(0), 64),
            (Some(256), 64),
            (Some(1024), 256),
            (Some(20_000), 5_000),
            (Some(524_288), 16_384),
            (None, 16_384),
        ] {
            assert_eq!(max_connections_for(open_files), expected, "{open_files:?}");
        }
    }

    #[test]
    fn deadlines_per_state() {
        let limits = ConnectionLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(10),
        };
        let t = Instant::now();
        let s = Duration::from_secs;
        let idle = |first_byte: Option<Instant>, served| Activity::Idle {
            since: t,
            first_byte,
            served,
        };
        let check = |activity, blocked: Option<Instant>, expected: Option<Instant>| {
            assert_eq!(
                deadline(activity, blocked, &limits),
                expected,
                "{activity:?}, writes blocked since {blocked:?}"
            );
        };
        // The first head is due from the accept, whether bytes came or not.
        check(idle(None, false), None, Some(t + s(60)));
        check(idle(Some(t + s(5)), false), None, Some(t + s(60)));
        // Between requests: the idle timeout, then the head is due from its first byte.
        check(idle(None, true), None, Some(t + s(75)));
        check(idle(Some(t + s(70)), true), None, Some(t + s(130)));
        // A request in progress is only timed while the client does not read.
        check(Activity::Busy { requests: 1 }, None, None);
        check(Activity::Busy { requests: 1 }, Some(t), Some(t + s(10)));
        check(idle(None, true), Some(t), Some(t + s(10)));
        check(Activity::Detached, None, None);

        let unlimited = ConnectionLimits {
            header_read_timeout: Duration::MAX,
            ..limits.clone()
        };
        assert_eq!(deadline(idle(None, false), None, &unlimited), None);
    }

    #[test]
    fn accept_errors_pause_and_are_logged_once_per_interval() {
        let mut errors = AcceptErrors::default();
        let emfile = io::Error::from_raw_os_error(24);
        let t = Instant::now();
        let paused = |log| AcceptVerdict {
            log,
            pause: ACCEPT_ERROR_PAUSE,
        };
        assert_eq!(errors.failed(&emfile, t), paused(Some(0)));
        for i in 1..=50 {
            let at = t + ACCEPT_ERROR_PAUSE * i;
            assert_eq!(errors.failed(&emfile, at), paused(None), "error {i}");
        }
        let later = t + ACCEPT_ERROR_LOG_INTERVAL + ACCEPT_ERROR_PAUSE;
        assert_eq!(errors.failed(&emfile, later), paused(Some(50)));
        assert_eq!(errors.failed(&emfile, later), paused(None));
        assert_eq!(errors.recovered(), Some(1));
        assert_eq!(errors.recovered(), None);
        // The first error after a recovery is logged at once.
        assert_eq!(errors.failed(&emfile, later), paused(Some(0)));

        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(errors.failed(&reset, later).pause, Duration::ZERO);
    }
}

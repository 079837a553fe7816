//! The transport: hyper's HTTP/1 server in an accept loop, with the limits and timeouts that
//! `axum::serve` does not let one set (it runs hyper without a timer, so a client that never
//! finishes its headers, or an idle keep-alive connection, is held forever).
//!
//! The timeouts are kept by one watchdog per connection rather than by hyper's header timer and
//! a timer per request: hyper drops its header timer after every head and boxes and registers a
//! new one for the next, and a per-request deadline registers another, which together cost about
//! a microsecond a request. The watchdog is a single sleep that wakes at most once per timeout;
//! the router's timing layer notes when each request reached it and when its response was ready,
//! with the clock reads it makes for Server-Timing anyway.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
// tokio's clock, which is std's unless a test pauses it: the watchdog's sleep runs on it.
use tokio::time::Instant;

/// The transport's limits. The defaults are what the servers use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request's head (request line and headers) must arrive within this time of the
    /// connection being ready for it: a new connection, or an idle keep-alive one. So this is
    /// also the idle keep-alive timeout.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); more is a 431.
    pub max_header_bytes: usize,
    /// Most header lines in a request; more is a 431.
    pub max_headers: usize,
    /// Largest read buffer of a connection (hyper's default is about 400 KB).
    pub max_buf_bytes: usize,
    /// On shutdown, how long open connections get to finish before they are dropped.
    pub shutdown_grace: Duration,
    /// How long a request may take once its head has arrived; then it is answered 408.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_headers: HYPER_MAX_HEADERS,
            max_buf_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(3),
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// How long a request may take once its head has arrived, so that a body that trickles in is
/// cut off (hyper has no body timeout): [`Limits::request_timeout`], and the router's own
/// deadline when it is driven without [`serve`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's own limit on header lines, `http1::Builder::max_headers`'s default.
const HYPER_MAX_HEADERS: usize = 100;

/// `idle_since` while a request is being served.
const BUSY: u64 = u64::MAX;

/// One connection's clock, read by its watchdog: when it began to wait for a request head, or
/// when the request being served began.
struct Watch {
    origin: Instant,
    /// Nanoseconds since `origin` at which the connection began to wait for a head (a new
    /// connection, or the last response ready), or [`BUSY`].
    idle_since: AtomicU64,
    /// Nanoseconds since `origin` at which the request being served reached the router.
    busy_since: AtomicU64,
    /// The request being served is past [`Limits::request_timeout`]: the router answers it with
    /// a 408.
    expired: AtomicBool,
}

impl Watch {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            idle_since: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            expired: AtomicBool::new(false),
        }
    }

    /// Whole nanoseconds, without the 128-bit division of `as_micros`: 584 years fit.
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(BUSY - 1)
    }

    fn request_started(&self, at: Instant) {
        self.busy_since.store(self.nanos(at), Ordering::Relaxed);
        self.expired.store(false, Ordering::Relaxed);
        self.idle_since.store(BUSY, Ordering::Relaxed);
    }

    fn response_ready(&self, at: Instant) {
        self.idle_since.store(self.nanos(at), Ordering::Relaxed);
    }

    /// What the watchdog does at `now`: close the connection, or look again at the instant
    /// returned. A request past its deadline is marked expired on the way.
    fn check(&self, now: Instant, limits: &Limits) -> Option<Instant> {
        let at = |nanos: u64| self.origin + Duration::from_nanos(nanos);
        let idle = self.idle_since.load(Ordering::Relaxed);
        if idle != BUSY {
            let deadline = at(idle) + limits.header_read_timeout;
            return (now < deadline).then_some(deadline);
        }
        let deadline = at(self.busy_since.load(Ordering::Relaxed)) + limits.request_timeout;
        if now < deadline {
            return Some(deadline);
        }
        self.expired.store(true, Ordering::Relaxed);
        // The request answers 408 and the connection goes back to waiting for a head; should
        // it not, look again after another head timeout.
        Some(now + limits.header_read_timeout)
    }
}

tokio::task_local! {
    static CONNECTION: Arc<Watch>;
}

/// Whether the request being served on this task's connection is past its deadline; `None` off
/// a connection of [`serve`] (the router driven directly, as in tests), where the router keeps
/// the deadline with a timer of its own.
pub(crate) fn request_expired() -> Option<bool> {
    CONNECTION
        .try_with(|watch| watch.expired.load(Ordering::Relaxed))
        .ok()
}

/// A request reached the router at `at`: the connection's clock goes from the head timeout to
/// the request's. Called by the router's timing layer in the poll in which hyper hands it the
/// request, so the watchdog, which runs in the same task, never sees the time between. Off a
/// connection of [`serve`], nothing.
pub(crate) fn request_started(at: std::time::Instant) {
    let _ = CONNECTION.try_with(|watch| watch.request_started(Instant::from_std(at)));
}

/// The router's response to the request was ready at `at`: the connection's head timeout starts
/// again. hyper then writes it, so the timeout also bounds a client that does not read its
/// answer.
pub(crate) fn response_ready(at: std::time::Instant) {
    let _ = CONNECTION.try_with(|watch| watch.response_ready(Instant::from_std(at)));
}

/// Serve `router` on `listener` until `shutdown` completes, then give open connections
/// `limits.shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    // No timer: hyper's header timeout is the watchdog's (see the module's notes).
    http.max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_buf_bytes);
    // Set, hyper parses every head into a header array on the heap, allocated per request (its
    // documentation: about 5% slower); left alone, into one of this size on the stack.
    if limits.max_headers != HYPER_MAX_HEADERS {
        http.max_headers(limits.max_headers);
    }
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses should leave at once rather than wait on Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(Watch::new());
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let limits = limits.clone();
        // A connection that ends in an error (a client that hangs up mid-request, a timeout,
        // a malformed request hyper has already answered) is the client's business: no log.
        tokio::spawn(CONNECTION.scope(watch.clone(), async move {
            watchdog(connection, &watch, &limits).await;
        }));
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await;
}

/// Drive `connection` until it ends, or until it has waited for a request head longer than the
/// head timeout (then it is dropped, which closes it, as hyper's own header timeout does). A
/// request past [`Limits::request_timeout`] is marked expired, and the connection polled again at once so
/// that the router answers it.
async fn watchdog(connection: impl Future, watch: &Watch, limits: &Limits) {
    let mut connection = std::pin::pin!(connection);
    let sleep = tokio::time::sleep(limits.header_read_timeout);
    let mut sleep = std::pin::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            _ = &mut connection => return,
            () = &mut sleep => match watch.check(Instant::now(), limits) {
                Some(next) => sleep.as_mut().reset(next),
                None => return,
            },
        }
    }
}

/// Errors about one connection are skipped; others (out of file descriptors, say) would fail
/// again at once, so wait a little before the next accept.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    eprintln!("accept failed: {e}; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

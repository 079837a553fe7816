//! The transport: hyper's HTTP/1 server in an accept loop, with the limits and timeouts that
//! `axum::serve` does not let one set (it runs hyper without a timer, so a client that never
//! finishes its headers, or an idle keep-alive connection, is held forever).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_buf_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// How long a request may take once its head has arrived, so that a body that trickles in is
/// cut off (hyper has no body timeout). Applied by the router.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `router` on `listener` until `shutdown` completes, then give open connections
/// `limits.shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_buf_bytes);
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
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        // A connection that ends in an error (a client that hangs up mid-request, a timeout,
        // a malformed request hyper has already answered) is the client's business: no log.
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await;
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

//! One accept loop for every listener the daemon has (the API's Unix socket, the
//! webhook port), with limits that keep a slow or hostile peer from freezing it: at most
//! `max_connections` open at once (beyond that, new ones wait in the kernel's backlog and
//! cost no file descriptor), the request head read within `header_timeout`, and each
//! connection closed after `lifetime` whatever it is doing. Each listener has its own
//! limits, so a flood on the webhook port leaves the local socket answering.
//!
//! axum's own `serve` has none of these knobs; this is its loop with them, over hyper's
//! HTTP/1 connection.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub lifetime: Duration,
}

/// The API on the Unix socket: only this user can connect; a claim may run `setup`
/// (up to its own time limit) before it answers.
pub(super) const API: Limits = Limits {
    max_connections: 256,
    header_timeout: Duration::from_secs(10),
    lifetime: Duration::from_secs(60 * 60),
};

/// The webhook port faces the internet; GitHub sends a whole delivery at once and the
/// handler only nudges the GitHub loop.
pub(super) const WEBHOOK: Limits = Limits {
    max_connections: 64,
    header_timeout: Duration::from_secs(5),
    lifetime: Duration::from_secs(30),
};

/// MCP over HTTP on a loopback port: agents' sessions, where `wait` holds a request
/// open until a verdict (ten minutes by default).
pub(super) const MCP: Limits = Limits {
    max_connections: 64,
    header_timeout: Duration::from_secs(10),
    lifetime: Duration::from_secs(60 * 60),
};

/// Serves `router` on `listener` until `stop` is cancelled, then lets the requests in
/// flight finish (the caller bounds how long it waits for that).
pub(super) async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = stop.cancelled() => break,
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|req: http::Request<Incoming>| req.map(axum::body::Body::new)),
        );
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(io), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = tokio::time::sleep(limits.lifetime) => {
                    debug!("closing a connection that outlived its limit");
                    return;
                }
                () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            // Stopping: the request in flight may finish; the daemon's drain deadline
            // bounds the wait.
            let _ = connection.await;
        });
        // Finished connections are forgotten as we go, so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

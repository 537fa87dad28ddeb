//! One accept loop for every listener the daemon has (the API's Unix socket, its TCP
//! listener with or without TLS, the webhook port), with limits that keep a slow or hostile peer from freezing it: at most
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
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
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

/// The API on TCP (`[api] listen`): other machines, each request authenticated; a claim
/// may run `setup` and a wait is held for up to 25 s, as on the socket. The TLS
/// handshake must finish within `header_timeout` too.
pub(super) const REMOTE_API: Limits = Limits {
    max_connections: 128,
    header_timeout: Duration::from_secs(10),
    lifetime: Duration::from_secs(60 * 60),
};

/// A connection's byte stream, plain or TLS: one type for the code that serves it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Serves `router` on `listener` until `stop` is cancelled, then lets the requests in
/// flight finish (the caller bounds how long it waits for that). With `tls`, each
/// connection is a TLS session first. Every request carries its peer's address as
/// axum's `ConnectInfo<L::Addr>` (the TCP guard limits failures per address).
pub(super) async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) where
    L: Listener,
    L::Addr: Clone + Send + Sync + std::fmt::Debug + 'static,
{
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
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let info = ConnectInfo(peer.clone());
        let service = TowerToHyperService::new(router.clone().map_request(
            move |req: http::Request<Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(info.clone());
                req
            },
        ));
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            // The handshake runs here, not in the accept loop: a slow peer holds only
            // its own connection, and only until the header timeout.
            let io: Box<dyn Stream> = match tls {
                None => Box::new(io),
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(io));
                    tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => Box::new(stream),
                            Ok(Err(e)) => {
                                debug!(?peer, error = %e, "a TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!(?peer, "a TLS handshake did not finish in time");
                                return;
                            }
                        },
                        () = stop.cancelled() => return,
                    }
                }
            };
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

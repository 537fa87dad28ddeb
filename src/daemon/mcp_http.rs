//! `[mcp] listen`: the MCP tools of `switchyard mcp`, served by the daemon over streamable
//! HTTP on a loopback port, for agent clients that prefer a URL to starting a process.
//!
//! The tools are the same code (`crate::mcp::Server`), a client of this daemon's own
//! Unix socket like the stdio server, so both speak for the API and neither decides
//! anything. What the socket's file mode does for the API (only this user gets in), a
//! bearer token does here: a loopback port is open to every user of the machine. The
//! token lives in the state directory (`mcp-token`, 0600), so reading it takes what
//! reading the ledger takes. rmcp checks the `Host` header (loopback names only, against
//! DNS rebinding) and we make it refuse any request that carries an `Origin`: no web
//! page has business here.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::auth::TokenHash;
use crate::client::Client;
use crate::mcp::{self, Defaults, Server};

/// The MCP endpoint's router: [`mcp::HTTP_PATH`] behind the token check.
pub(super) fn router(
    common_dir: PathBuf,
    repo: PathBuf,
    token: String,
    stop: CancellationToken,
) -> Router {
    let config = StreamableHttpServerConfig::default()
        .enforce_origin_validation()
        .with_max_request_body_bytes(mcp::MAX_PLAN_ARGUMENTS_BYTES + 64 * 1024)
        .with_cancellation_token(stop);
    let service = StreamableHttpService::new(
        move || {
            Ok(Server::new(
                Client::new(&common_dir, &repo),
                Defaults::http(),
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let expected = Arc::new(TokenHash::of(&token));
    Router::new()
        .nest_service(mcp::HTTP_PATH, service)
        .layer(middleware::from_fn_with_state(expected, check_token))
}

/// Lets a request through only with `Authorization: Bearer <the token>`.
async fn check_token(
    State(expected): State<Arc<TokenHash>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if given
        .strip_prefix("Bearer ")
        .is_some_and(|token| expected.matches(token))
    {
        return next.run(request).await;
    }
    // Never the header itself: a wrong token may be a right one for something else.
    warn!(
        path = %request.uri().path(),
        given = if given.is_empty() { "none" } else { "a wrong one" },
        "refused an MCP request: the token does not match"
    );
    let body = serde_json::json!({"error": {
        "code": "unauthorized",
        "message": "this MCP endpoint needs `Authorization: Bearer <token>`; `switchyard mcp --http-config` prints a client config with it",
    }});
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

//! The optional webhook endpoint (`[github] webhook_listen`): checks each delivery's
//! HMAC-SHA256 signature and nudges the GitHub loop to read the PR it names now. It
//! never acts on a payload itself, so a delivery can do nothing a poll would not.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tracing::{debug, warn};

use super::github::Hub;
use crate::github::webhook;

#[derive(Clone)]
struct Hook {
    hub: Arc<Hub>,
    secret: Arc<Vec<u8>>,
}

pub const PATH: &str = "/github/webhook";

pub fn router(hub: Arc<Hub>, secret: Vec<u8>) -> Router {
    // A delivery only nudges the GitHub loop, which reads the PR itself; one cut short
    // by the limit costs a poll's delay, nothing else.
    Router::new()
        .route(PATH, post(deliver))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(Hook {
            hub,
            secret: Arc::new(secret),
        })
}

async fn deliver(
    State(hook): State<Hook>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !webhook::signature_ok(&hook.secret, &body, header("x-hub-signature-256")) {
        warn!(
            delivery = header("x-github-delivery").unwrap_or("?"),
            "a webhook delivery with a missing or wrong signature was refused"
        );
        return (
            StatusCode::UNAUTHORIZED,
            "the X-Hub-Signature-256 signature does not match the configured secret\n".into(),
        );
    }
    let event = header("x-github-event").unwrap_or("");
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let number = webhook::pull_number(event, &payload);
    debug!(event, pr = ?number, "webhook delivery");
    hook.hub.nudge(number);
    (StatusCode::ACCEPTED, "ok\n".into())
}

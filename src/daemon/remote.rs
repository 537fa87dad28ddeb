//! The API on TCP (`[api] listen`), for clients on other machines: the same router as
//! the Unix socket, behind a guard that the socket does not have.
//!
//! For every request the guard, in order: refuses a peer that failed too often
//! (`auth::limit`, 429); finds the bearer token in the tokens file, re-read whenever it
//! changed, so a revoked token stops working with the next request (401, logged with
//! the peer's address, never the token); finds the route (`api::Endpoint::of`) and
//! checks the token's roles against `auth::permit` (403); and makes the body's `agent`
//! or `by` the token's owner, refusing a body that names someone else (`auth::Acts`,
//! 403). Only then does the request reach the handlers, so a refused one changes
//! nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::http::{MAX_BODY_BYTES, MAX_PLAN_BODY_BYTES};
use super::service::ApiError;
use crate::api::{self, Endpoint, ErrorCode, NoRoute};
use crate::auth::file::{self, FileError, Stamp};
use crate::auth::limit::{self, Limiter};
use crate::auth::{self, Acts, Call, Entry, Tokens};

/// A presented token longer than this is not one of ours and is not even hashed.
const MAX_TOKEN_BYTES: usize = 512;

/// What the guard keeps between requests.
pub(super) struct Guard {
    tokens: TokenSource,
    limiter: Mutex<Limiter>,
}

impl Guard {
    /// Reads the tokens file once, so that a missing, exposed or malformed one stops
    /// the daemon at its start.
    pub(super) fn open(tokens: &Path) -> Result<Guard, FileError> {
        let (stamp, read) = file::read(tokens)?;
        info!(file = %tokens.display(), tokens = read.entries().len(), "read the API tokens");
        Ok(Guard {
            tokens: TokenSource {
                path: tokens.to_owned(),
                current: Mutex::new(Current {
                    stamp,
                    tokens: Arc::new(read),
                    error: None,
                }),
            },
            limiter: Mutex::new(Limiter::new(limit::POLICY)),
        })
    }
}

/// The tokens file as last read, and the version of it that was.
struct TokenSource {
    path: PathBuf,
    current: Mutex<Current>,
}

struct Current {
    stamp: Stamp,
    tokens: Arc<Tokens>,
    /// The last reading's problem, logged once rather than at every request.
    error: Option<String>,
}

impl TokenSource {
    /// The tokens as the file holds them now: one `stat` per request, and a new read
    /// when the file is another one or changed (a rename, a write, a chmod). A file
    /// that cannot be used now (gone, open to others, malformed) accepts no token.
    fn now(&self) -> Result<Arc<Tokens>, ()> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Stamp::now(&self.path).and_then(|stamp| {
            if stamp == current.stamp && current.error.is_none() {
                return Ok(None);
            }
            file::read(&self.path).map(Some)
        });
        match fresh {
            Ok(None) => Ok(Arc::clone(&current.tokens)),
            Ok(Some((stamp, tokens))) => {
                info!(file = %self.path.display(), tokens = tokens.entries().len(), "the tokens file changed; read it again");
                *current = Current {
                    stamp,
                    tokens: Arc::new(tokens),
                    error: None,
                };
                Ok(Arc::clone(&current.tokens))
            }
            Err(e) => {
                let message = e.to_string();
                if current.error.as_deref() != Some(message.as_str()) {
                    warn!(error = %message, "the tokens file cannot be used; refusing every remote request until it can");
                }
                current.error = Some(message);
                Err(())
            }
        }
    }
}

/// The TCP listener's router: the socket's, with the guard in front.
pub(super) fn router(api: Router, guard: Arc<Guard>) -> Router {
    api.layer(middleware::from_fn_with_state(guard, guard_request))
}

/// Loads the certificate chain and key for HTTPS; every error names its file.
pub(super) fn tls_acceptor(tls: &crate::config::Tls) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (tls.cert.display(), tls.key.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read the certificate {cert} ([api] tls_cert): {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "the certificate file {cert} ([api] tls_cert) holds no PEM certificate (BEGIN CERTIFICATE)"
        ));
    }
    let private = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        format!(
            "cannot read a private key from {key} ([api] tls_key): {e} (a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            format!("cannot serve HTTPS with the certificate {cert} and the key {key}: {e}")
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Response {
    ApiError::new(code, message).into_response()
}

async fn guard_request(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    // The accept loop adds the peer to every request; without one, nothing is let in.
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return refusal(ErrorCode::Internal, "no peer address on a TCP request");
    };
    let blocked = lock(&guard.limiter).check(peer.ip(), Instant::now());
    if let Err(wait) = blocked {
        return rate_limited(wait);
    }
    let presented = bearer(request.headers());
    let source = Arc::clone(&guard);
    let looked_up = tokio::task::spawn_blocking(move || {
        let Ok(tokens) = source.tokens.now() else {
            return Lookup::FileUnusable;
        };
        match presented.map(|token| tokens.find(&token).cloned()) {
            Ok(Some(entry)) => Lookup::Found(entry),
            Ok(None) => Lookup::Failed(Failure::Unknown),
            Err(why) => Lookup::Failed(why),
        }
    })
    .await;
    let entry = match looked_up {
        Ok(Lookup::Found(entry)) => entry,
        Ok(Lookup::Failed(why)) => return unauthorized(&guard, peer, why),
        Ok(Lookup::FileUnusable) => {
            return refusal(
                ErrorCode::Unavailable,
                "the daemon cannot use its tokens file now (see its log); no remote request is accepted until it can",
            );
        }
        Err(e) => return refusal(ErrorCode::Internal, format!("authentication failed: {e}")),
    };
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let endpoint = match Endpoint::of(&method, &path) {
        Ok(e) => e,
        Err(NoRoute::Path) => {
            return refusal(
                ErrorCode::NotFound,
                format!(
                    "no such route: {method} {} (see docs/api.md)",
                    api::one_line(&path)
                ),
            );
        }
        Err(NoRoute::Method) => {
            return refusal(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{} does not take {method} (see docs/api.md)",
                    api::one_line(&path)
                ),
            );
        }
    };
    if let Err(message) = auth::allowed(&entry, Call::Route(endpoint)) {
        info!(%peer, token = %entry.name, ?endpoint, "refused: the token's roles do not allow it");
        return refusal(ErrorCode::NotAllowed, message);
    }
    let request = match as_owner(endpoint, &entry, request).await {
        Ok(r) => r,
        Err(e) => {
            info!(%peer, token = %entry.name, ?endpoint, error = %e.message, "refused");
            return e.into_response();
        }
    };
    debug!(%peer, token = %entry.name, ?endpoint, "remote request");
    next.run(request).await
}

/// What the tokens file says of a request's token.
enum Lookup {
    Found(Entry),
    Failed(Failure),
    /// The file cannot be used now: nobody is let in.
    FileUnusable,
}

/// Why a request authenticates nobody; never the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NoToken,
    /// The header is there but is no bearer token (what is wrong with it).
    Malformed(&'static str),
    /// A token the file does not hold: unknown, or revoked.
    Unknown,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::NoToken => "no token",
            Failure::Malformed(what) => what,
            Failure::Unknown => "an unknown or revoked token",
        }
    }
}

fn lock(limiter: &Mutex<Limiter>) -> std::sync::MutexGuard<'_, Limiter> {
    limiter.lock().unwrap_or_else(|p| p.into_inner())
}

/// The token of `Authorization: Bearer TOKEN`, or why there is none.
fn bearer(headers: &http::HeaderMap) -> Result<String, Failure> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(Failure::NoToken);
    };
    let malformed = Failure::Malformed("a malformed Authorization header");
    let text = value.to_str().map_err(|_| malformed)?;
    let (scheme, token) = text.trim().split_once(' ').ok_or(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Failure::Malformed(
            "an Authorization header that is not a bearer token",
        ));
    }
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        return Err(Failure::Malformed("a malformed bearer token"));
    }
    Ok(token.to_owned())
}

/// A failed authentication: counted against the peer, logged without the token.
fn unauthorized(guard: &Guard, peer: SocketAddr, why: Failure) -> Response {
    let blocked = lock(&guard.limiter).failed(peer.ip(), Instant::now());
    warn!(%peer, reason = why.as_str(), "refused a remote request: authentication failed");
    if let Some(wait) = blocked {
        warn!(%peer, seconds = wait.as_secs(), "too many failed authentications; refusing this address for a while");
    }
    let message = match why {
        Failure::NoToken => {
            "this request carries no token: send `Authorization: Bearer TOKEN` (the CLI sends \
             SWITCHYARD_TOKEN)"
                .to_owned()
        }
        Failure::Malformed(_) | Failure::Unknown => format!(
            "authentication failed: {} (ask the daemon's owner for a token: `switchyard token add NAME`)",
            why.as_str()
        ),
    };
    let mut response = refusal(ErrorCode::Unauthorized, message);
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"switchyard\""),
    );
    response
}

fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = refusal(
        ErrorCode::RateLimited,
        format!("too many failed authentications from this address; try again in {seconds} s"),
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    response
}

/// The request with its body's `agent`/`by` made the token's owner, or the refusal.
/// Every route with a body that names who acts is listed, so a new one cannot be
/// forgotten: the match is exhaustive.
async fn as_owner(
    endpoint: Endpoint,
    entry: &Entry,
    request: Request,
) -> Result<Request, ApiError> {
    match endpoint {
        Endpoint::Status
        | Endpoint::ListTasks
        | Endpoint::ShowTask
        | Endpoint::TaskEvents
        | Endpoint::Wait
        | Endpoint::Conflicts
        | Endpoint::Queue
        | Endpoint::QueueEvents => Ok(request),
        Endpoint::AddTask => rewrite::<api::AddTask>(entry, request, MAX_BODY_BYTES, none).await,
        Endpoint::Plan => rewrite::<api::Plan>(entry, request, MAX_PLAN_BODY_BYTES, none).await,
        Endpoint::Claim => rewrite::<api::Claim>(entry, request, MAX_BODY_BYTES, none).await,
        Endpoint::Heartbeat => rewrite::<api::ByAgent>(entry, request, MAX_BODY_BYTES, none).await,
        // Its `commit` must survive the rewrite: a remote claim's submission names it.
        Endpoint::Submit => rewrite::<api::Submit>(entry, request, MAX_BODY_BYTES, none).await,
        // A person's release takes a task from its executor: a decision of its own.
        Endpoint::Release => {
            rewrite::<api::ByAgent>(entry, request, MAX_BODY_BYTES, |r, e| match r.by {
                Some(_) => auth::allowed(e, Call::TakeBack)
                    .map_err(|m| ApiError::new(ErrorCode::NotAllowed, m)),
                None => Ok(()),
            })
            .await
        }
        Endpoint::Cancel => rewrite::<api::Cancel>(entry, request, MAX_BODY_BYTES, none).await,
        Endpoint::Approve | Endpoint::Reject => {
            rewrite::<api::Decision>(entry, request, MAX_BODY_BYTES, none).await
        }
        Endpoint::Resume => rewrite::<api::Resume>(entry, request, MAX_BODY_BYTES, none).await,
        Endpoint::Pause => rewrite::<api::PauseRequest>(entry, request, MAX_BODY_BYTES, none).await,
        Endpoint::ReviewNext => {
            rewrite::<api::ReviewNext>(entry, request, MAX_BODY_BYTES, none).await
        }
        Endpoint::ReviewApprove | Endpoint::ReviewChanges => {
            rewrite::<api::ReviewVerdict>(entry, request, MAX_BODY_BYTES, none).await
        }
    }
}

fn none<T>(_: &T, _: &Entry) -> Result<(), ApiError> {
    Ok(())
}

/// Decodes the body as the handler will, checks it with `also`, makes it act as the
/// token's owner, and puts it back encoded.
async fn rewrite<T: Acts + Serialize + DeserializeOwned>(
    entry: &Entry,
    request: Request,
    limit: usize,
    also: impl FnOnce(&T, &Entry) -> Result<(), ApiError>,
) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("the request body is over {limit} bytes, or was cut short"),
        )
    })?;
    let mut value: T = api::decode(&bytes).map_err(ApiError::bad)?;
    also(&value, entry)?;
    value
        .act_as(&entry.name)
        .map_err(|e| ApiError::new(e.code(), e.message()))?;
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let headers = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert_eq!(bearer(&headers("Bearer sy_abc")), Ok("sy_abc".into()));
        assert_eq!(bearer(&headers("bearer  sy_abc ")), Ok("sy_abc".into()));
        assert!(bearer(&headers("Basic dXNlcg==")).is_err());
        assert!(bearer(&headers("Bearer")).is_err());
        assert!(bearer(&headers("Bearer a b")).is_err());
        assert!(bearer(&headers(&format!("Bearer {}", "x".repeat(600)))).is_err());
        assert_eq!(bearer(&http::HeaderMap::new()), Err(Failure::NoToken));
    }
}

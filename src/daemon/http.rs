//! The HTTP/JSON API (routes in docs/api.md), the same on the Unix socket and on the TCP
//! listener (which puts `daemon::remote`'s guard in front of it). Handlers only parse,
//! hand the request to the [`Service`] on a blocking thread, and render its answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::service::{ApiError, Service};
use crate::api::{self, ErrorBody, ErrorCode, ErrorDetail, VERSION, VERSION_HEADER};
use crate::model::TaskId;

#[derive(Clone)]
pub(super) struct AppState {
    pub service: Arc<Service>,
}

pub(super) fn router(state: AppState) -> Router {
    use api::Endpoint as E;
    // Paths from `api::Endpoint`: the TCP listener's guard finds routes by the same table.
    Router::new()
        .route(E::Status.path(), get(status))
        .route(E::ListTasks.path(), get(list).post(add))
        .route(E::ShowTask.path(), get(show))
        .route(E::TaskEvents.path(), get(events))
        .route(E::Wait.path(), get(wait))
        .route(E::Conflicts.path(), get(conflicts))
        .route(E::Heartbeat.path(), post(heartbeat))
        .route(E::Release.path(), post(release))
        .route(E::Cancel.path(), post(cancel))
        .route(E::Submit.path(), post(submit))
        .route(E::Approve.path(), post(approve))
        .route(E::Reject.path(), post(reject))
        .route(E::Claim.path(), post(claim))
        .route(E::Queue.path(), get(queue))
        .route(E::QueueEvents.path(), get(queue_events))
        .route(E::Resume.path(), post(resume))
        .route(E::Pause.path(), post(pause))
        .route(
            E::Plan.path(),
            post(plan).layer(DefaultBodyLimit::max(MAX_PLAN_BODY_BYTES)),
        )
        .route(E::ReviewNext.path(), post(review_next))
        .route(E::ReviewApprove.path(), post(review_approve))
        .route(E::ReviewChanges.path(), post(review_changes))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(check_version))
        .layer(middleware::from_fn(error_envelope))
        .with_state(state)
}

/// Request bodies larger than this are refused with 413: a task's text is at most
/// 64 kB of body and 50 kB of acceptance criteria.
pub(super) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A plan's request: a plan file of up to 1 MB (`plan::MAX_PLAN_BYTES`), as a JSON
/// string, where escapes can double it and more.
pub(super) const MAX_PLAN_BODY_BYTES: usize = 4 * 1024 * 1024;

async fn no_route(request: Request) -> ApiError {
    ApiError {
        code: ErrorCode::NotFound,
        message: format!(
            "no such route: {} {} (see docs/api.md)",
            request.method(),
            request.uri().path()
        ),
    }
}

async fn wrong_method(request: Request) -> ApiError {
    ApiError {
        code: ErrorCode::MethodNotAllowed,
        message: format!(
            "{} does not take {} (see docs/api.md)",
            request.uri().path(),
            request.method()
        ),
    }
}

/// Every error leaves as `{"error": {code, message}}`, also those the framework makes
/// itself (a bad query string, a body over the limit, a path it cannot parse), so a
/// client never has to guess the shape of a failure.
async fn error_envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status.as_u16() {
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::TooLarge,
        400..=499 => ErrorCode::BadRequest,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| api::one_line(String::from_utf8_lossy(&b).trim()))
        .unwrap_or_default();
    let message = match (code, text.is_empty()) {
        (ErrorCode::TooLarge, _) => format!("the request body is over {MAX_BODY_BYTES} bytes"),
        (_, true) => status.canonical_reason().unwrap_or("error").to_lowercase(),
        (_, false) => text,
    };
    let mut reply = ApiError { code, message }.into_response();
    *reply.status_mut() = status;
    reply
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (status, Json(body)).into_response()
    }
}

type Reply<T> = Result<Json<T>, ApiError>;

/// Runs a service call on a blocking thread: it does SQLite and git work.
async fn blocking<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Reply<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map(Json),
        Err(e) => Err(ApiError::internal(format!("request failed: {e}"))),
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    api::decode(bytes).map_err(ApiError::bad)
}

fn task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse().map_err(ApiError::bad)
}

/// A client of another version gets one clear refusal instead of confusing failures.
async fn check_version(request: Request, next: Next) -> Response {
    if let Some(theirs) = request.headers().get(VERSION_HEADER) {
        let theirs = theirs.to_str().unwrap_or("?");
        if theirs != VERSION {
            return ApiError {
                code: ErrorCode::VersionMismatch,
                message: format!(
                    "the daemon runs switchyard {VERSION} and this client is {theirs}; restart the daemon with the same binary"
                ),
            }
            .into_response();
        }
    }
    next.run(request).await
}

async fn status(State(s): State<AppState>) -> Reply<api::Status> {
    blocking(move || s.service.status()).await
}

async fn list(
    State(s): State<AppState>,
    Query(filter): Query<api::TaskFilter>,
) -> Reply<Vec<Task>> {
    blocking(move || s.service.tasks(filter)).await
}

async fn add(State(s): State<AppState>, bytes: Bytes) -> Reply<Task> {
    let req: api::AddTask = body(&bytes)?;
    blocking(move || s.service.add_task(req)).await
}

async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Reply<api::TaskDetail> {
    let id = task_id(&id)?;
    blocking(move || s.service.task(id)).await
}

async fn events(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Reply<Vec<crate::model::Event>> {
    let id = task_id(&id)?;
    blocking(move || s.service.events(id)).await
}

/// What a call may have changed, so the background loop that cares looks again.
#[derive(Clone, Copy)]
enum Wake {
    Nothing,
    Pool,
}

/// A POST on one task: parse the id and the body, run the service call on a blocking
/// thread, wake what it may have changed.
async fn on_task<B, R>(
    s: AppState,
    id: String,
    bytes: Bytes,
    wake: Wake,
    call: fn(&Service, TaskId, B) -> Result<R, ApiError>,
) -> Reply<R>
where
    B: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    let id = task_id(&id)?;
    let req: B = body(&bytes)?;
    let service = Arc::clone(&s.service);
    let reply = blocking(move || call(&service, id, req)).await;
    match wake {
        Wake::Nothing => {}
        Wake::Pool => s.service.wake.pool.notify_one(),
    }
    reply
}

type Task = crate::model::Task;

async fn heartbeat(
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: Bytes,
) -> Reply<api::Heartbeat> {
    on_task(s, id, b, Wake::Nothing, Service::heartbeat).await
}

async fn release(State(s): State<AppState>, Path(id): Path<String>, b: Bytes) -> Reply<Task> {
    on_task(s, id, b, Wake::Pool, Service::release).await
}

async fn cancel(State(s): State<AppState>, Path(id): Path<String>, b: Bytes) -> Reply<Task> {
    on_task(s, id, b, Wake::Pool, Service::cancel).await
}

async fn submit(
    State(s): State<AppState>,
    Path(id): Path<String>,
    b: Bytes,
) -> Reply<api::Submitted> {
    on_task(s, id, b, Wake::Nothing, Service::submit).await
}

async fn approve(State(s): State<AppState>, Path(id): Path<String>, b: Bytes) -> Reply<Task> {
    on_task(s, id, b, Wake::Nothing, Service::approve).await
}

async fn reject(State(s): State<AppState>, Path(id): Path<String>, b: Bytes) -> Reply<Task> {
    on_task(s, id, b, Wake::Nothing, Service::reject).await
}

async fn claim(State(s): State<AppState>, bytes: Bytes) -> Reply<api::Claimed> {
    let req: api::Claim = body(&bytes)?;
    let service = Arc::clone(&s.service);
    let reply = blocking(move || service.claim(req)).await;
    s.service.wake.pool.notify_one();
    reply
}

async fn queue(State(s): State<AppState>) -> Reply<Vec<api::QueueEntry>> {
    blocking(move || s.service.queue()).await
}

async fn queue_events(State(s): State<AppState>) -> Reply<api::QueueEvents> {
    blocking(move || s.service.queue_events()).await
}

async fn review_next(State(s): State<AppState>, bytes: Bytes) -> Reply<api::ReviewHandOut> {
    let req: api::ReviewNext = body(&bytes)?;
    let service = Arc::clone(&s.service);
    let reply = blocking(move || service.review_next(req)).await;
    s.service.wake.pool.notify_one();
    reply
}

async fn review_approve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply<Task> {
    review_verdict(s, id, bytes, true).await
}

async fn review_changes(
    State(s): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply<Task> {
    review_verdict(s, id, bytes, false).await
}

async fn review_verdict(s: AppState, id: String, bytes: Bytes, approve: bool) -> Reply<Task> {
    let id = task_id(&id)?;
    let req: api::ReviewVerdict = body(&bytes)?;
    let service = Arc::clone(&s.service);
    blocking(move || service.review_verdict(id, req, approve)).await
}

async fn conflicts(
    State(s): State<AppState>,
    Query(q): Query<api::ConflictsQuery>,
) -> Reply<Vec<api::ConflictView>> {
    blocking(move || s.service.conflicts_of(q.task)).await
}

async fn wait(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<api::WaitQuery>,
) -> Reply<api::WaitOutcome> {
    let id = task_id(&id)?;
    let limit = std::time::Duration::from_millis(q.timeout_ms.unwrap_or(u64::MAX));
    Arc::clone(&s.service).wait_for(id, limit).await.map(Json)
}

async fn plan(State(s): State<AppState>, bytes: Bytes) -> Reply<api::Planned> {
    let req: api::Plan = body(&bytes)?;
    let service = Arc::clone(&s.service);
    blocking(move || service.plan(req)).await
}

async fn pause(State(s): State<AppState>, bytes: Bytes) -> Reply<crate::model::Stop> {
    let req: api::PauseRequest = body(&bytes)?;
    let service = Arc::clone(&s.service);
    blocking(move || service.pause(req)).await
}

async fn resume(State(s): State<AppState>, bytes: Bytes) -> Reply<api::Resumed> {
    let req: api::Resume = body(&bytes)?;
    let service = Arc::clone(&s.service);
    blocking(move || service.resume(req)).await
}

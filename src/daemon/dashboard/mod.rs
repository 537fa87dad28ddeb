//! The dashboard (`[dashboard] listen`): a web page of the queue, a page per task, and
//! `/metrics`, on a TCP port of their own, served by the daemon.
//!
//! The page is rendered on the server ([`view`], from the same `Service` reads the API
//! answers with) and kept live over server-sent events: each page's `…/live` stream
//! sends the page's live part again whenever the daemon commits a ledger event
//! (`Service::subscribe`), and every few seconds for what changes without one (a
//! heartbeat renewing a lease). The browser swaps it in; nothing reloads. Assets are
//! compiled into the binary; the page loads nothing from anywhere else.
//!
//! Actions (approve, reject, pause, resume) go through the very `Service` calls the API
//! makes, and exist only when a token guards the page ([`auth`]).

mod auth;
mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::metrics::Metrics;
use super::serve::Limits;
use super::service::Service;
use super::{ApiError, DaemonError};
use crate::api;
use crate::config::{Dashboard, VerifyOn};
use crate::model::evidence::Evidence;
use crate::model::{EventKind, TaskId, TaskState, Timestamp};

/// The dashboard's connections: a browser holds one per open page for its live
/// updates, which reconnect by themselves when the connection's lifetime ends.
pub(super) const LIMITS: Limits = Limits {
    max_connections: 64,
    header_timeout: Duration::from_secs(10),
    lifetime: Duration::from_secs(10 * 60),
};

/// A live page is sent again at least this often, for what changes without a ledger
/// event (a heartbeat renews a lease; a verify's log grows).
const REFRESH: Duration = Duration::from_secs(5);
/// A burst of events (a landing writes several) becomes one update.
const COALESCE: Duration = Duration::from_millis(100);
/// A wrong token is answered this much later: guessing one is slow.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(300);
/// How many lines of a running verify's log the task page shows.
const LIVE_LOG_LINES: usize = 40;
/// Who actions are recorded as when nobody gave a name (and for `Bearer` requests).
const DEFAULT_PERSON: &str = "dashboard";

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");
const ICON: &str = include_str!("icon.svg");

/// The dashboard's port, bound, and its token, read: both at start, before anything
/// else changes, so a port in use or a missing token stops the daemon with one line.
pub(super) struct Bound {
    listener: tokio::net::TcpListener,
    /// The page's address, for the log.
    pub url: String,
    guard: Option<auth::Guard>,
}

pub(super) async fn bind(
    settings: &Dashboard,
    secrets: &[(String, String)],
) -> Result<Bound, DaemonError> {
    let guard = match &settings.token_env {
        None => None,
        Some(name) => {
            let token = super::env_value(secrets, name).ok_or_else(|| {
                DaemonError::Setup(format!(
                    "the dashboard's token is missing: set the environment variable {name} ([dashboard] token_env)"
                ))
            })?;
            if token.chars().count() < auth::MIN_TOKEN_CHARS {
                return Err(DaemonError::Setup(format!(
                    "the dashboard's token in {name} is shorter than {} characters; use a long random one (openssl rand -hex 32)",
                    auth::MIN_TOKEN_CHARS
                )));
            }
            Some(auth::Guard::new(&token, settings.listen.port()).map_err(DaemonError::Setup)?)
        }
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            DaemonError::Setup(format!(
                "cannot serve the dashboard on {} ([dashboard] listen): {e}",
                settings.listen
            ))
        })?;
    Ok(Bound {
        listener,
        url: settings.url(),
        guard,
    })
}

#[derive(Clone)]
struct App {
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    guard: Option<Arc<auth::Guard>>,
    stop: CancellationToken,
    /// The repository's directory name, for titles.
    repo: String,
    /// What the header says: the repository and its base branch.
    place: String,
}

/// Who is asking, as the gate found out.
#[derive(Clone)]
enum Who {
    /// No token is configured: anyone who reaches the port may look.
    Open,
    /// The token came in an `Authorization: Bearer` header.
    Bearer,
    /// A signed-in browser.
    Session { id: String, session: auth::Session },
}

impl Who {
    fn viewer(&self) -> view::Viewer {
        match self {
            Who::Open => view::Viewer::ReadOnly,
            Who::Bearer => view::Viewer::Acting {
                name: DEFAULT_PERSON.to_owned(),
                csrf: String::new(),
            },
            Who::Session { session, .. } => view::Viewer::Acting {
                name: session.name.clone(),
                csrf: session.csrf.clone(),
            },
        }
    }
}

impl Bound {
    /// The listener, and the routes to serve on it.
    pub fn into_parts(
        self,
        service: Arc<Service>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> (tokio::net::TcpListener, Router) {
        (self.listener, router(self.guard, service, metrics, stop))
    }
}

fn router(
    guard: Option<auth::Guard>,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Router {
    let repo = service
        .repo
        .main_root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let place = format!("{repo} → {}", service.config.base);
    let app = App {
        service,
        metrics,
        guard: guard.map(Arc::new),
        stop,
        repo,
        place,
    };
    Router::new()
        .route("/", get(overview_page))
        .route("/live", get(overview_live))
        .route("/tasks/{id}", get(task_page))
        .route("/tasks/{id}/live", get(task_live))
        .route("/tasks/{id}/approve", post(approve))
        .route("/tasks/{id}/reject", post(reject))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/metrics", get(scrape))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .route("/assets/icon.svg", get(icon))
        .fallback(no_page)
        .layer(middleware::from_fn_with_state(app.clone(), gate))
        .layer(middleware::from_fn(headers))
        .with_state(app)
}

// ---- the gate -----------------------------------------------------------------------

/// Lets a request in, and says who it is; refuses (401) one without the token where a
/// token is configured. The sign-in form and the assets are open to all.
async fn gate(State(app): State<App>, mut request: Request, next: Next) -> Response {
    // Without a token the page is open to whoever reaches the loopback port, so it must
    // be reached by a loopback name: a web page whose name was re-pointed at 127.0.0.1
    // (DNS rebinding) would otherwise read it from the user's browser.
    if app.guard.is_none() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !loopback_host(host) {
            warn!(
                host,
                "a dashboard request for a host that is not this machine was refused"
            );
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this dashboard answers only to localhost, 127.0.0.1 or [::1]\n",
            )
                .into_response();
        }
    }
    let path = request.uri().path();
    let open = path == "/login" || path.starts_with("/assets/");
    let who = match &app.guard {
        None => Some(Who::Open),
        Some(guard) => {
            let headers = request.headers();
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::bearer);
            match bearer {
                Some(token) if guard.is_token(token) => Some(Who::Bearer),
                Some(_) => {
                    warn!(path, "a dashboard request with a wrong token was refused");
                    tokio::time::sleep(WRONG_TOKEN_DELAY).await;
                    return unauthorized("the token is wrong");
                }
                None => headers
                    .get(header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|c| guard.cookie_in(c))
                    .and_then(|id| guard.session(id).map(|s| (id.to_owned(), s)))
                    .map(|(id, session)| Who::Session { id, session }),
            }
        }
    };
    match who {
        Some(who) => {
            request.extensions_mut().insert(who);
            next.run(request).await
        }
        None if open => next.run(request).await,
        None => {
            let wants_page = request.method() == http::Method::GET
                && !path.ends_with("/live")
                && path != "/metrics";
            if wants_page {
                let page = view::page(
                    "Sign in",
                    &app.place,
                    None,
                    &view::Viewer::ReadOnly,
                    &view::login(None),
                );
                (StatusCode::UNAUTHORIZED, html(page)).into_response()
            } else {
                unauthorized(
                    "a token is needed: sign in at /login, or send Authorization: Bearer <token>",
                )
            }
        }
    }
}

/// Whether a `Host` header names this machine's loopback (any port).
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"switchyard\"")],
        format!("{message}\n"),
    )
        .into_response()
}

/// What every answer carries: no script or style but the page's own, no framing, no
/// referrer, nothing cached (the page shows work in progress).
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn html(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body)
}

// ---- pages ------------------------------------------------------------------------

/// Which page a live stream is for.
#[derive(Clone, Copy)]
enum Live {
    Overview,
    Task(TaskId),
}

impl Live {
    fn url(self) -> String {
        match self {
            Live::Overview => "/live".to_owned(),
            Live::Task(id) => format!("/tasks/{id}/live"),
        }
    }
}

/// The live part of a page, read now. Blocks (SQLite).
fn render(app: &App, live: Live, viewer: &view::Viewer) -> Result<String, ApiError> {
    Ok(match live {
        Live::Overview => view::overview(&gather_overview(app)?, viewer),
        Live::Task(id) => view::task(&gather_task(app, id)?, viewer),
    })
}

async fn render_off_runtime(
    app: &App,
    live: Live,
    viewer: view::Viewer,
) -> Result<String, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || render(&app, live, &viewer))
        .await
        .map_err(|e| ApiError::internal(format!("rendering failed: {e}")))?
}

async fn whole_page(app: App, who: Who, live: Live, title: String) -> Response {
    let viewer = who.viewer();
    match render_off_runtime(&app, live, viewer.clone()).await {
        Ok(body) => {
            let url = live.url();
            html(view::page(&title, &app.place, Some(&url), &viewer, &body)).into_response()
        }
        Err(e) => problem(&app, &viewer, &e, "/"),
    }
}

async fn overview_page(State(app): State<App>, Extension(who): Extension<Who>) -> Response {
    let title = format!("{} queue", app.repo);
    whole_page(app, who, Live::Overview, title).await
}

async fn task_page(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Response {
    match id.parse::<TaskId>() {
        Ok(id) => whole_page(app, who, Live::Task(id), id.to_string()).await,
        Err(_) => not_found(&app, &who.viewer(), &format!("There is no task {id:?}.")),
    }
}

async fn no_page(State(app): State<App>, request: Request) -> Response {
    let viewer = request
        .extensions()
        .get::<Who>()
        .map_or(view::Viewer::ReadOnly, Who::viewer);
    not_found(
        &app,
        &viewer,
        &format!("There is no page {}.", request.uri().path()),
    )
}

fn not_found(app: &App, viewer: &view::Viewer, message: &str) -> Response {
    let body = view::problem("Not found", message, "/");
    (
        StatusCode::NOT_FOUND,
        html(view::page("Not found", &app.place, None, viewer, &body)),
    )
        .into_response()
}

/// A refusal or failure as a page, with the status the API would answer.
fn problem(app: &App, viewer: &view::Viewer, e: &ApiError, back: &str) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NOT_FOUND {
        return not_found(app, viewer, &e.message);
    }
    let heading = if status.is_server_error() {
        "Something failed"
    } else {
        "Refused"
    };
    let body = view::problem(heading, &e.message, back);
    (
        status,
        html(view::page(heading, &app.place, None, viewer, &body)),
    )
        .into_response()
}

// ---- live updates -------------------------------------------------------------------

async fn overview_live(State(app): State<App>, Extension(who): Extension<Who>) -> Response {
    stream(app, who, Live::Overview).into_response()
}

async fn task_live(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<TaskId>() else {
        return (StatusCode::NOT_FOUND, "no such task\n").into_response();
    };
    let service = Arc::clone(&app.service);
    let known = tokio::task::spawn_blocking(move || service.read(|l| l.task(id))).await;
    match known {
        Ok(Ok(_)) => stream(app, who, Live::Task(id)).into_response(),
        Ok(Err(e)) if e.code == api::ErrorCode::NotFound => {
            (StatusCode::NOT_FOUND, format!("{}\n", e.message)).into_response()
        }
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}\n", e.message),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// What a live stream remembers between updates.
struct Stream {
    app: App,
    viewer: view::Viewer,
    live: Live,
    events: tokio::sync::broadcast::Receiver<super::service::Committed>,
    last: Option<String>,
    first: bool,
}

/// The page's live part now, then again after every change, until the daemon stops.
fn stream(
    app: App,
    who: Who,
    live: Live,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    // Subscribed before the first read, so no change between the two is missed.
    let state = Stream {
        events: app.service.subscribe(),
        viewer: who.viewer(),
        app,
        live,
        last: None,
        first: true,
    };
    let updates = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if !std::mem::take(&mut s.first) {
                tokio::select! {
                    next = s.events.recv() => {
                        if let Err(tokio::sync::broadcast::error::RecvError::Closed) = next {
                            return None;
                        }
                    }
                    _ = tokio::time::sleep(REFRESH) => {}
                    () = s.app.stop.cancelled() => return None,
                }
                tokio::select! {
                    _ = tokio::time::sleep(COALESCE) => {}
                    () = s.app.stop.cancelled() => return None,
                }
                while matches!(s.events.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {}
            }
            let body = match render_off_runtime(&s.app, s.live, s.viewer.clone()).await {
                Ok(body) => body,
                // A task that does not exist has no page to keep live.
                Err(e) if e.code == api::ErrorCode::NotFound => return None,
                Err(e) => {
                    warn!(error = %e.message, "cannot render the dashboard");
                    continue;
                }
            };
            if s.last.as_deref().map(view::without_stamp) == Some(view::without_stamp(&body)) {
                continue;
            }
            // An event's data cannot hold a carriage return; the page has none that
            // matter (text is escaped, and control characters with it).
            let event = SseEvent::default()
                .event("page")
                .retry(Duration::from_secs(2))
                .data(body.replace('\r', ""));
            s.last = Some(body);
            return Some((Ok(event), s));
        }
    });
    Sse::new(updates).keep_alive(KeepAlive::default())
}

// ---- what the pages show ------------------------------------------------------------

fn gather_overview(app: &App) -> Result<view::Overview, ApiError> {
    let service = &app.service;
    let status = service.status()?;
    let queue = service.queue()?;
    let now = Timestamp::now();
    let counts = TaskState::ALL
        .into_iter()
        .map(|s| (s, status.tasks.get(s.as_str()).copied().unwrap_or(0)))
        .collect();
    let mut verifying = Vec::new();
    for e in queue.iter().filter(|e| e.stage == api::Stage::Verifying) {
        let commands = verify_commands(service, e.id)?;
        verifying.push(view::VerifyNow {
            id: e.id,
            title: e.title.clone(),
            lane: e.lane,
            started: Timestamp(now.0 - i64::try_from(e.elapsed_ms).unwrap_or(0)),
            expected: app.metrics.expected(&commands),
            commands,
        });
    }
    let lease = service.config.claims.lease;
    let (holders, came_back) = service.read(|l| {
        let slot_states: Vec<TaskState> = TaskState::ALL
            .into_iter()
            .filter(|s| s.holds_slot())
            .collect();
        let mut holders = Vec::new();
        for t in l.tasks_in(&slot_states)? {
            let claimed_at = l.last_event(t.id, EventKind::Claimed)?.map(|e| e.at);
            let lease_held = t.state.holds_lease();
            // The lease was given by the claim, or by the task's coming back, whichever
            // is later.
            let leased = match lease_held {
                false => None,
                true => {
                    let back = l
                        .events(t.id)?
                        .into_iter()
                        .rev()
                        .find(|e| e.state == Some(TaskState::Returned));
                    match (back.map(|e| e.at), claimed_at) {
                        (Some(b), Some(c)) if b > c => Some((b, true)),
                        (_, Some(c)) => Some((c, false)),
                        (Some(b), None) => Some((b, true)),
                        (None, None) => None,
                    }
                }
            };
            holders.push((
                t.subsystems.clone(),
                view::Holder {
                    id: t.id,
                    title: t.title.clone(),
                    state: t.state,
                    agent: t.agent.clone(),
                    claimed_at,
                    leased,
                    renewed_at: t
                        .lease_expires_at
                        .filter(|_| lease_held)
                        .map(|until| Timestamp(until.0 - lease.as_millis() as i64)),
                    lease_expires_at: t.lease_expires_at.filter(|_| lease_held),
                },
            ));
        }
        let mut came_back = Vec::new();
        for t in l.tasks_in(&[TaskState::Returned, TaskState::AwaitingApproval])? {
            let events = l.events(t.id)?;
            let back = events.iter().rev().find(|e| e.state.is_some()).filter(|e| {
                (e.state == Some(TaskState::Returned) && e.kind() != EventKind::Approved)
                    || matches!(e.what, Evidence::AttemptLimit(_))
            });
            if let Some(e) = back {
                came_back.push(view::CameBack {
                    id: t.id,
                    title: t.title.clone(),
                    state: t.state,
                    agent: t.agent.clone(),
                    event: e.clone(),
                });
            }
        }
        came_back.sort_by_key(|b| std::cmp::Reverse(b.event.at));
        Ok((holders, came_back))
    })?;
    let mut slots: Vec<view::Slots> = service
        .config
        .subsystems
        .iter()
        .map(|s| view::Slots {
            subsystem: Some(s.name.as_str().to_owned()),
            cap: s.max_parallel.map(|m| m.get()),
            holders: Vec::new(),
        })
        .collect();
    let global = service.config.claims.max_parallel.map(|m| m.get());
    let mut all = (global.is_some() || slots.is_empty()).then(|| view::Slots {
        subsystem: None,
        cap: global,
        holders: Vec::new(),
    });
    for (subsystems, holder) in holders {
        for s in &mut slots {
            if subsystems
                .iter()
                .any(|name| Some(name.as_str()) == s.subsystem.as_deref())
            {
                s.holders.push(holder.clone());
            }
        }
        if let Some(all) = &mut all {
            all.holders.push(holder);
        }
    }
    slots.extend(all);
    Ok(view::Overview {
        now,
        counts,
        stop: status.stop,
        paused: status.paused,
        queue,
        verifying,
        slots,
        came_back,
    })
}

/// The commands a task's candidate is verified with (with GitHub's checks: their
/// names), from what its last build touched: what its expected time is looked up by.
fn verify_commands(service: &Service, id: TaskId) -> Result<Vec<String>, ApiError> {
    if let VerifyOn::GithubChecks { required } = &service.config.queue.verify_on {
        let mut names = required.clone();
        names.sort();
        return Ok(names);
    }
    let touched = service.read(|l| l.last_event(id, EventKind::Rebased))?;
    let touched = match touched.map(|e| e.what) {
        Some(Evidence::Rebased(r)) => r.subsystems.into_iter().collect(),
        _ => Default::default(),
    };
    Ok(crate::queue::verify_commands(&service.config, &touched))
}

fn gather_task(app: &App, id: TaskId) -> Result<view::TaskPage, ApiError> {
    let service = &app.service;
    let detail = service.task(id)?;
    let in_queue = matches!(
        detail.task.state,
        TaskState::Queued
            | TaskState::Verifying
            | TaskState::AwaitingApproval
            | TaskState::AwaitingReview
    );
    let entry = match in_queue {
        true => service.queue()?.into_iter().find(|e| e.id == id),
        false => None,
    };
    let live_log = match &entry {
        Some(e) if e.stage == api::Stage::Verifying => {
            let dir = service
                .logs
                .join(id.to_string())
                .join(format!("attempt-{}", detail.task.attempt));
            newest_log(&dir)
        }
        _ => None,
    };
    Ok(view::TaskPage {
        now: Timestamp::now(),
        detail,
        entry,
        live_log,
    })
}

/// The last lines of the newest log in `dir`: the verify command running now.
fn newest_log(dir: &std::path::Path) -> Option<view::LiveLog> {
    use std::io::{Read, Seek, SeekFrom};
    let newest = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()?
        .1;
    let mut file = std::fs::File::open(&newest).ok()?;
    let len = file.metadata().ok()?.len();
    // The tail only: a log may be megabytes.
    let from = len.saturating_sub(16 * 1024);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if from > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(LIVE_LOG_LINES);
    Some(view::LiveLog {
        name: newest.file_name()?.to_string_lossy().into_owned(),
        tail: lines.split_off(skip),
    })
}

// ---- actions ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    only: String,
}

/// Runs an action for whoever is asking: refused without a token configured, or from
/// a form of another session; otherwise the `Service` call, recorded as the person
/// signed in (`dashboard` for a `Bearer` request), then back to `back`.
async fn act(
    app: App,
    who: Who,
    form: &ActionForm,
    back: String,
    call: impl FnOnce(&Service, String) -> Result<(), ApiError> + Send + 'static,
) -> Response {
    let viewer = who.viewer();
    let person = match &who {
        Who::Open => {
            let e = ApiError::new(
                api::ErrorCode::NotAllowed,
                "this dashboard is read-only: actions need a token ([dashboard] token_env)",
            );
            return problem(&app, &viewer, &e, &back);
        }
        Who::Bearer => DEFAULT_PERSON.to_owned(),
        Who::Session { session, .. } => {
            if form.csrf != session.csrf {
                let e = ApiError::new(
                    api::ErrorCode::NotAllowed,
                    "this form is not from your page (or from before you signed in again); reload the page and try again",
                );
                return problem(&app, &viewer, &e, &back);
            }
            session.name.clone()
        }
    };
    let service = Arc::clone(&app.service);
    let done = tokio::task::spawn_blocking(move || call(&service, person))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("the action failed: {e}"))));
    match done {
        Ok(()) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, back)],
            String::new(),
        )
            .into_response(),
        Err(e) => problem(&app, &viewer, &e, &back),
    }
}

async fn approve(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let Ok(id) = id.parse::<TaskId>() else {
        return not_found(&app, &who.viewer(), &format!("There is no task {id:?}."));
    };
    info!(task = %id, "approval from the dashboard");
    act(app, who, &form, format!("/tasks/{id}"), move |s, by| {
        s.approve(
            id,
            api::Decision {
                by,
                reason: String::new(),
            },
        )
        .map(drop)
    })
    .await
}

async fn reject(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let Ok(id) = id.parse::<TaskId>() else {
        return not_found(&app, &who.viewer(), &format!("There is no task {id:?}."));
    };
    let reason = form.reason.clone();
    act(app, who, &form, format!("/tasks/{id}"), move |s, by| {
        s.reject(id, api::Decision { by, reason }).map(drop)
    })
    .await
}

async fn pause(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    Form(form): Form<ActionForm>,
) -> Response {
    let reason = form.reason.clone();
    let only = match form.only.as_str() {
        "" => Ok(None),
        other => other.parse().map(Some),
    };
    act(app, who, &form, "/".to_owned(), move |s, by| {
        let only = only.map_err(ApiError::bad)?;
        s.pause(api::PauseRequest { by, reason, only }).map(drop)
    })
    .await
}

async fn resume(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    Form(form): Form<ActionForm>,
) -> Response {
    act(app, who, &form, "/".to_owned(), move |s, by| {
        s.resume(api::Resume { by }).map(drop)
    })
    .await
}

// ---- signing in ---------------------------------------------------------------------

async fn login_page(State(app): State<App>) -> Response {
    if app.guard.is_none() {
        return not_found(
            &app,
            &view::Viewer::ReadOnly,
            "This dashboard has no token ([dashboard] token_env), so there is nothing to sign in to: it is read-only.",
        );
    }
    html(view::page(
        "Sign in",
        &app.place,
        None,
        &view::Viewer::ReadOnly,
        &view::login(None),
    ))
    .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
}

async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    let Some(guard) = &app.guard else {
        return login_page(State(app.clone())).await;
    };
    let again = |status: StatusCode, problem: &str| {
        let page = view::page(
            "Sign in",
            &app.place,
            None,
            &view::Viewer::ReadOnly,
            &view::login(Some(problem)),
        );
        (status, html(page)).into_response()
    };
    if !guard.is_token(&form.token) {
        warn!("a dashboard sign-in with a wrong token was refused");
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return again(StatusCode::UNAUTHORIZED, "That is not the token.");
    }
    let name = match form.name.trim() {
        "" => DEFAULT_PERSON.to_owned(),
        given => match crate::model::normalize_name(given) {
            Ok(name) => name,
            Err(e) => return again(StatusCode::BAD_REQUEST, &format!("The name {e}.")),
        },
    };
    match guard.open(name) {
        Ok((id, session)) => {
            info!(name = %session.name, "signed in to the dashboard");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/".to_owned()),
                    (header::SET_COOKIE, guard.set_cookie(&id)),
                ],
                String::new(),
            )
                .into_response()
        }
        Err(e) => problem(
            &app,
            &view::Viewer::ReadOnly,
            &ApiError::internal(e),
            "/login",
        ),
    }
}

async fn logout(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    Form(form): Form<ActionForm>,
) -> Response {
    let Some(guard) = &app.guard else {
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/")],
            String::new(),
        )
            .into_response();
    };
    if let Who::Session { id, session } = &who
        && session.csrf == form.csrf
    {
        guard.close(id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_owned()),
            (header::SET_COOKIE, guard.clear_cookie()),
        ],
        String::new(),
    )
        .into_response()
}

// ---- metrics and assets ---------------------------------------------------------

async fn scrape(State(app): State<App>) -> Response {
    let (metrics, service) = (Arc::clone(&app.metrics), Arc::clone(&app.service));
    match tokio::task::spawn_blocking(move || metrics.scrape(&service)).await {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response()
        }
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}\n", e.message),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    (headers, body).into_response()
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_names_are_this_machine() {
        for host in [
            "localhost",
            "localhost:8790",
            "LOCALHOST:1",
            "127.0.0.1",
            "127.0.0.1:8790",
            "[::1]",
            "[::1]:8790",
        ] {
            assert!(super::loopback_host(host), "{host}");
        }
        for host in [
            "",
            "rebound.attacker.example:8790",
            "localhost.attacker.example",
            "10.0.0.1:8790",
            "[::2]:8790",
            "127.0.0.1.nip.io:8790",
        ] {
            assert!(!super::loopback_host(host), "{host}");
        }
    }
}

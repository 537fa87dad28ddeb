//! Talking to GitHub's REST API: octocrab's HTTP stack (auth, base URL, timeouts)
//! with switchyard's own small response types, because octocrab's models are strict
//! about fields switchyard never reads. Every call goes through [`Client::send`], which
//! waits out rate limits and retries 5xx answers and timeouts with backoff.
//!
//! The token lives inside octocrab and is never formatted into a message or a log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, IF_NONE_MATCH};
use http::{Method, StatusCode};
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::config::Github as Settings;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the token is wrong, expired or revoked. Names the variable, never the value.
    #[error(
        "GitHub refused the token in ${token_env} ({status}); check that it is valid and not expired"
    )]
    BadToken { token_env: String, status: u16 },
    #[error("{what} was not found on GitHub (or the token cannot see it)")]
    NotFound { what: String },
    #[error("GitHub refused {method} {path} ({status}): {message}")]
    Refused {
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    /// 5xx, timeouts, rate limits longer than we wait: try again later.
    #[error("GitHub is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected answer from GitHub to {path}: {detail}")]
    Decode { path: String, detail: String },
    #[error("cannot set up the GitHub client: {0}")]
    Setup(String),
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How hard to try before giving up on one call.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub tries: u32,
    /// The first backoff; doubled after each failure.
    pub backoff: Duration,
    /// Rate limits that end later than this are not waited out inside one call.
    pub max_wait: Duration,
}

impl Retry {
    pub const DEFAULT: Retry = Retry {
        tries: 5,
        backoff: Duration::from_millis(250),
        max_wait: Duration::from_secs(120),
    };
}

/// How a request to GitHub failed, for the daemon's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer: the connection failed or timed out.
    Transport,
    /// 403 or 429 with a rate limit's headers.
    RateLimited,
    /// 5xx.
    ServerError,
    /// Any other 4xx (401, 404, 422, ...).
    ClientError,
}

impl Failure {
    pub const ALL: [Failure; 4] = [
        Failure::Transport,
        Failure::RateLimited,
        Failure::ServerError,
        Failure::ClientError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Transport => "transport",
            Failure::RateLimited => "rate_limited",
            Failure::ServerError => "server_error",
            Failure::ClientError => "client_error",
        }
    }
}

/// What the client asked of GitHub since the daemon started: every HTTP request (a
/// retry is another request), and those that did not get a 2xx or 304, by kind. Shared
/// by every copy of the client; `/metrics` reads it.
#[derive(Debug, Default)]
pub struct Usage {
    calls: AtomicU64,
    failures: [AtomicU64; 4],
}

impl Usage {
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn failures(&self, kind: Failure) -> u64 {
        self.failures[kind as usize].load(Ordering::Relaxed)
    }

    fn failed(&self, kind: Failure) {
        self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// One answer: status, ETag and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
pub struct Client {
    gh: Octocrab,
    /// `owner/name`.
    pub repo: String,
    token_env: String,
    retry: Retry,
    usage: Arc<Usage>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("repo", &self.repo).finish()
    }
}

/// A pull request, as much of it as switchyard reads.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub state: String,
    pub html_url: String,
    pub body: Option<String>,
    pub title: String,
    pub head: GitRef,
    pub base: GitRef,
    pub merged_at: Option<String>,
    pub updated_at: String,
    pub user: Option<User>,
}

impl PullRequest {
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }
    pub fn is_merged(&self) -> bool {
        self.merged_at.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitRef {
    #[serde(rename = "ref")]
    pub name: String,
    pub sha: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Review {
    pub id: u64,
    pub user: Option<User>,
    pub state: String,
    pub commit_id: Option<String>,
    pub html_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub user: Option<User>,
    pub body: Option<String>,
    pub html_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub html_url: Option<String>,
    pub details_url: Option<String>,
    pub output: Option<CheckOutput>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckOutput {
    pub title: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckRuns {
    pub check_runs: Vec<CheckRun>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CombinedStatus {
    pub statuses: Vec<Status>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub context: String,
    pub state: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
}

/// What a check run shows: status, conclusion once completed, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckView {
    /// `queued`, `in_progress` or `completed`.
    pub status: &'static str,
    pub conclusion: Option<&'static str>,
    pub title: String,
    pub summary: String,
}

impl Client {
    /// A client for `settings.repo` authenticated with `token`. Makes no request.
    pub fn new(settings: &Settings, token: &str, retry: Retry) -> Result<Client> {
        let gh = Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| Error::Setup(format!("`api_url` {:?}: {e}", settings.api_url)))?
            .personal_token(token.to_owned())
            .add_header(
                HeaderName::from_static("x-github-api-version"),
                "2022-11-28".to_owned(),
            )
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json".to_owned(),
            )
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .set_write_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| Error::Setup(e.to_string()))?;
        Ok(Client {
            gh,
            repo: settings.repo.clone(),
            token_env: settings.token_env.clone(),
            retry,
            usage: Arc::default(),
        })
    }

    /// The counts of requests made and failed, shared with every copy of this client.
    pub fn usage(&self) -> Arc<Usage> {
        Arc::clone(&self.usage)
    }

    /// The same client with another retry policy.
    pub fn with_retry(&self, retry: Retry) -> Client {
        Client {
            retry,
            ..self.clone()
        }
    }

    pub fn owner(&self) -> &str {
        self.repo.split_once('/').map_or("", |(o, _)| o)
    }

    /// One API call with the retry policy. `path` is relative to the API root and may
    /// carry a query; `etag` makes a conditional GET (a 304 costs no rate limit).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
    ) -> Result<Reply> {
        let mut backoff = self.retry.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            let last = tries >= self.retry.tries;
            let outcome = self.send_once(&method, path, body, etag).await;
            self.usage.calls.fetch_add(1, Ordering::Relaxed);
            let judged = outcome.map(|reply| {
                let status = reply.0;
                let judged = self.judge(&method, path, reply);
                if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
                    self.usage.failed(match &judged {
                        Ok(Judged::Wait(..)) => Failure::RateLimited,
                        _ if status.is_server_error() => Failure::ServerError,
                        _ => Failure::ClientError,
                    });
                }
                judged
            });
            if judged.is_err() {
                self.usage.failed(Failure::Transport);
            }
            let wait = match judged {
                Ok(judged) => match judged? {
                    Judged::Done(reply) => return Ok(reply),
                    Judged::Wait(wait, why) => {
                        if wait > self.retry.max_wait || last {
                            return Err(Error::Unavailable(format!(
                                "{why}; it ends in {}s",
                                wait.as_secs()
                            )));
                        }
                        warn!(path, wait_s = wait.as_secs_f32(), "{why}; waiting");
                        wait
                    }
                    Judged::Retry(why) => {
                        if last {
                            return Err(Error::Unavailable(format!(
                                "{method} {path}: {why} ({tries} tries)"
                            )));
                        }
                        warn!(path, %why, backoff_ms = backoff.as_millis() as u64, "GitHub failed; retrying");
                        backoff
                    }
                },
                Err(why) => {
                    if last {
                        return Err(Error::Unavailable(format!(
                            "{method} {path}: {why} ({tries} tries)"
                        )));
                    }
                    warn!(path, %why, backoff_ms = backoff.as_millis() as u64, "cannot reach GitHub; retrying");
                    backoff
                }
            };
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
    ) -> std::result::Result<(StatusCode, HeaderMap, Vec<u8>), String> {
        use http_body_util::BodyExt;
        debug!(%method, path, "GitHub request");
        let response = match *method {
            Method::GET => {
                let mut headers = HeaderMap::new();
                if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
                    headers.insert(IF_NONE_MATCH, tag);
                }
                self.gh._get_with_headers(path, Some(headers)).await
            }
            Method::POST => self.gh._post(path, body).await,
            Method::PATCH => self.gh._patch(path, body).await,
            Method::PUT => self.gh._put(path, body).await,
            Method::DELETE => self.gh._delete(path, body).await,
            _ => return Err(format!("unsupported method {method}")),
        }
        .map_err(|e| transport_message(&e))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| transport_message(&e))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes.to_vec()))
    }

    fn judge(
        &self,
        method: &Method,
        path: &str,
        (status, headers, bytes): (StatusCode, HeaderMap, Vec<u8>),
    ) -> Result<Judged> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            if status.is_success() && !bytes.is_empty() && json.is_null() {
                return Err(Error::Decode {
                    path: path.to_owned(),
                    detail: "the body is not JSON".to_owned(),
                });
            }
            return Ok(Judged::Done(Reply {
                status,
                etag: header("etag").map(str::to_owned),
                body: json,
            }));
        }
        let limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (header("retry-after").is_some()
                    || header("x-ratelimit-remaining") == Some("0")));
        if limited {
            let wait = rate_limit_wait(header("retry-after"), header("x-ratelimit-reset"));
            return Ok(Judged::Wait(wait, format!("rate limited ({status})")));
        }
        if status.is_server_error() {
            return Ok(Judged::Retry(format!("{status}")));
        }
        match status {
            StatusCode::UNAUTHORIZED => Err(Error::BadToken {
                token_env: self.token_env.clone(),
                status: status.as_u16(),
            }),
            StatusCode::NOT_FOUND => Err(Error::NotFound {
                what: path.split('?').next().unwrap_or(path).to_owned(),
            }),
            _ => Err(Error::Refused {
                method: method.clone(),
                path: path.to_owned(),
                status: status.as_u16(),
                message: refusal_message(&message, &json),
            }),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.repo)
    }

    async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let reply = self.send(Method::GET, path, None, None).await?;
        decode(path, reply.body)
    }

    async fn post_as<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> Result<T> {
        let reply = self.send(method, path, Some(&body), None).await?;
        decode(path, reply.body)
    }

    // ---- the operations switchyard uses (tests/github/cut-spec.js lists them) -----

    /// The repository: checks at start that it exists and the token works.
    pub async fn check_repository(&self) -> Result<()> {
        let path = self.path("");
        match self.send(Method::GET, &path, None, None).await {
            Err(Error::NotFound { .. }) => Err(Error::NotFound {
                what: format!("the repository {}", self.repo),
            }),
            other => other.map(|_| ()),
        }
    }

    /// The PR (open or closed) whose head is `branch` in this repository, newest first.
    pub async fn find_pull(&self, branch: &str) -> Result<Option<PullRequest>> {
        let path = self.path(&format!(
            "/pulls?state=all&head={}:{}&per_page=10",
            encode(self.owner()),
            encode(branch)
        ));
        let pulls: Vec<PullRequest> = self.get_as(&path).await?;
        Ok(pulls
            .into_iter()
            .filter(|p| p.head.name == branch)
            .max_by_key(|p| p.number))
    }

    pub async fn create_pull(
        &self,
        branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullRequest> {
        let payload = json!({"title": title, "head": branch, "base": base, "body": body, "maintainer_can_modify": false});
        self.post_as(Method::POST, &self.path("/pulls"), payload)
            .await
    }

    pub async fn pull(&self, number: u64) -> Result<PullRequest> {
        self.get_as(&self.path(&format!("/pulls/{number}"))).await
    }

    /// Changes what is given: any of title, body, state (`open`/`closed`), base.
    pub async fn update_pull(&self, number: u64, changes: Value) -> Result<PullRequest> {
        self.post_as(
            Method::PATCH,
            &self.path(&format!("/pulls/{number}")),
            changes,
        )
        .await
    }

    /// The PRs updated most recently; `None` when nothing changed since `etag`.
    pub async fn recent_pulls(
        &self,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<PullRequest>, Option<String>)>> {
        let path = self.path("/pulls?state=all&sort=updated&direction=desc&per_page=50");
        let reply = self.send(Method::GET, &path, None, etag).await?;
        if reply.status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        Ok(Some((decode(&path, reply.body)?, reply.etag)))
    }

    /// Every review, oldest first.
    pub async fn reviews(&self, number: u64) -> Result<Vec<Review>> {
        self.all_pages(&self.path(&format!("/pulls/{number}/reviews")))
            .await
    }

    /// Every comment, oldest first.
    pub async fn comments(&self, number: u64) -> Result<Vec<Comment>> {
        self.all_pages(&self.path(&format!("/issues/{number}/comments")))
            .await
    }

    /// Follows pages of 100 until a short one (at most `MAX_PAGES`).
    async fn all_pages<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let items: Vec<T> = self
                .get_as(&format!("{path}?per_page={PER_PAGE}&page={page}"))
                .await?;
            let last = items.len() < PER_PAGE;
            all.extend(items);
            if last {
                break;
            }
        }
        Ok(all)
    }

    pub async fn comment(&self, number: u64, body: &str) -> Result<Comment> {
        self.post_as(
            Method::POST,
            &self.path(&format!("/issues/{number}/comments")),
            json!({ "body": body }),
        )
        .await
    }

    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<()> {
        let path = self.path(&format!("/issues/{number}/labels"));
        self.send(
            Method::POST,
            &path,
            Some(&json!({ "labels": labels })),
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn create_check(&self, sha: &str, view: &CheckView, url: &str) -> Result<u64> {
        let run: CheckRun = self
            .post_as(
                Method::POST,
                &self.path("/check-runs"),
                check_payload(Some(sha), view, url),
            )
            .await?;
        Ok(run.id)
    }

    pub async fn update_check(&self, id: u64, view: &CheckView, url: &str) -> Result<()> {
        let path = self.path(&format!("/check-runs/{id}"));
        self.send(
            Method::PATCH,
            &path,
            Some(&check_payload(None, view, url)),
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn check_runs(&self, sha: &str) -> Result<Vec<CheckRun>> {
        let runs: CheckRuns = self
            .get_as(&self.path(&format!("/commits/{sha}/check-runs?per_page=100")))
            .await?;
        Ok(runs.check_runs)
    }

    pub async fn statuses(&self, sha: &str) -> Result<Vec<Status>> {
        match self
            .get_as::<CombinedStatus>(&self.path(&format!("/commits/{sha}/status?per_page=100")))
            .await
        {
            Ok(combined) => Ok(combined.statuses),
            Err(Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Whether `login` is an active member of `@org/slug`.
    pub async fn is_team_member(&self, org: &str, slug: &str, login: &str) -> Result<bool> {
        let path = format!(
            "/orgs/{}/teams/{}/memberships/{}",
            encode(org),
            encode(slug),
            encode(login)
        );
        match self.send(Method::GET, &path, None, None).await {
            Ok(reply) => Ok(reply.body.get("state").and_then(Value::as_str) == Some("active")),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

const PER_PAGE: usize = 100;
/// 5000 comments or reviews on one PR is far beyond what a task's PR sees.
const MAX_PAGES: usize = 50;

enum Judged {
    Done(Reply),
    Wait(Duration, String),
    Retry(String),
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: Value) -> Result<T> {
    serde_json::from_value(body).map_err(|e| Error::Decode {
        path: path.split('?').next().unwrap_or(path).to_owned(),
        detail: e.to_string(),
    })
}

fn check_payload(sha: Option<&str>, view: &CheckView, url: &str) -> Value {
    let mut payload = json!({
        "name": super::CHECK_NAME,
        "status": view.status,
        "output": {"title": view.title, "summary": view.summary},
    });
    if !url.is_empty() {
        payload["details_url"] = json!(url);
    }
    if let Some(sha) = sha {
        payload["head_sha"] = json!(sha);
    }
    if let Some(conclusion) = view.conclusion {
        payload["conclusion"] = json!(conclusion);
    }
    payload
}

/// How long a rate limit lasts: `Retry-After` seconds, else until `X-RateLimit-Reset`
/// (epoch seconds), else a minute, as GitHub's documentation advises.
fn rate_limit_wait(retry_after: Option<&str>, reset: Option<&str>) -> Duration {
    if let Some(secs) = retry_after.and_then(|s| s.trim().parse::<u64>().ok()) {
        return Duration::from_secs(secs);
    }
    if let Some(reset) = reset.and_then(|s| s.trim().parse::<u64>().ok()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        return Duration::from_secs(reset.saturating_sub(now) + 1);
    }
    Duration::from_secs(60)
}

/// GitHub's message plus the first validation error's detail, when there is one.
fn refusal_message(message: &str, json: &Value) -> String {
    let detail = json
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .and_then(|e| e.get("message").and_then(Value::as_str));
    // Proxies and gateways in front of GitHub answer with RFC 7807 problem documents.
    let problem = json
        .get("detail")
        .or_else(|| json.get("title"))
        .and_then(Value::as_str);
    match (detail, problem) {
        (Some(d), _) => format!("{message}: {d}"),
        (None, Some(p)) if message.is_empty() => p.to_owned(),
        (None, _) if message.is_empty() => "no message".to_owned(),
        (None, _) => message.to_owned(),
    }
}

/// A transport error's message, cut to one line (octocrab appends backtraces).
fn transport_message(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or("").to_owned()
}

/// Percent-encodes a path or query component.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_waits_follow_the_headers() {
        assert_eq!(rate_limit_wait(Some("3"), None), Duration::from_secs(3));
        let soon = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 5;
        let w = rate_limit_wait(None, Some(&soon.to_string()));
        assert!(
            w >= Duration::from_secs(5) && w <= Duration::from_secs(6),
            "{w:?}"
        );
        assert_eq!(rate_limit_wait(None, None), Duration::from_secs(60));
    }

    #[test]
    fn refusals_say_what_github_said() {
        let v = serde_json::json!({"message": "Validation Failed", "errors": [{"message": "No commits between main and x"}]});
        assert_eq!(
            refusal_message("Validation Failed", &v),
            "Validation Failed: No commits between main and x"
        );
        let problem =
            serde_json::json!({"title": "Invalid request", "detail": "body must have head"});
        assert_eq!(refusal_message("", &problem), "body must have head");
        assert_eq!(refusal_message("", &Value::Null), "no message");
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode("switchyard/t1-a b"), "switchyard%2Ft1-a%20b");
    }
}

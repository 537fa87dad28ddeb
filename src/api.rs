//! The daemon's HTTP/JSON API, on its Unix socket and (`[api] listen`) on TCP: routes
//! ([`Endpoint`]), request and response bodies, error codes, shared by the server
//! (`daemon`) and the client (`client`). Documented in docs/api.md.
//!
//! The names in a request (`agent`, `by`) may be left empty over TCP: the daemon then
//! records the name of the caller's token (see `auth`); on the Unix socket they are
//! required, as the service's checks say.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::{
    Event, Pause, QueueEvent, Roles, Stop, StopPart, Task, TaskId, TaskState, Timestamp,
};

/// Every request carries the client's version; the daemon refuses another version's.
pub const VERSION_HEADER: &str = "x-switchyard-version";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Decodes a request body the way the daemon does: JSON into one of the request types
/// below. The error is one line, for the `bad_request` reply.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    // serde quotes an unknown variant or field as it was sent, so a `\n` (or any
    // control character) in a JSON string would break the one line; escape them.
    serde_json::from_slice(body).map_err(|e| one_line(&format!("invalid request body: {e}")))
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): an error message that
/// quotes what a client sent stays one line, and no escape sequence reaches a terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `POST /v1/tasks`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddTask {
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub accept: Vec<String>,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub priority: i64,
    /// Who asks: a person or a planning agent (over TCP, empty: the token's name).
    #[serde(default)]
    pub by: String,
    /// The client's id for this request (up to 100 printable characters): a retry with
    /// the same id returns the task the first request made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Tasks that must merge before this one may be claimed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<TaskId>,
}

/// `POST /v1/plan`: a plan file's text, created whole or not at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The file's name as the planner gave it: in every location, and `.json` selects
    /// JSON.
    pub file: String,
    pub text: String,
    /// Who plans (over TCP, empty: the token's name).
    #[serde(default)]
    pub by: String,
    /// The client's id for this request: a retry with the same id returns the tasks the
    /// first request made instead of making them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The reply to a plan: each task's local name and its id, in file order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Planned {
    pub tasks: Vec<PlannedTask>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedTask {
    pub name: String,
    pub id: TaskId,
}

/// `POST /v1/claim`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    /// A given task, or `None` for the next one that fits the caps.
    pub id: Option<TaskId>,
    /// Who claims (over TCP, empty: the token's name).
    #[serde(default)]
    pub agent: String,
    /// `claim --remote`: no worktree here; the executor works in a clone of its own and
    /// pushes the task's branch to the configured remote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
}

/// `POST /v1/tasks/{id}/submit`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submit {
    #[serde(default)]
    pub agent: String,
    /// The commit the executor means (`submit --commit`), as a full SHA: required for a
    /// remote claim (the pushed branch must point at it, so nobody else's push is taken
    /// for the holder's), and checked against the branch's tip otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// `POST /v1/tasks/{id}/heartbeat`, `POST /v1/tasks/{id}/release`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ByAgent {
    #[serde(default)]
    pub agent: String,
    /// A person instead (release only): takes a task from its executor, say at the
    /// attempt limit, to give it to someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `POST /v1/tasks/{id}/cancel`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cancel {
    /// Who cancels (over TCP, empty: the token's name).
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/tasks/{id}/approve`, `POST /v1/tasks/{id}/reject`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// The person deciding (over TCP, empty: the token's name).
    #[serde(default)]
    pub by: String,
    /// Why; required for a rejection.
    #[serde(default)]
    pub reason: String,
}

/// The reply to a submit: the task (queued or awaiting approval) and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submitted {
    #[serde(flatten)]
    pub task: Task,
    /// The checkpoints that apply, one line each; empty when it went straight to the queue.
    pub checkpoints: Vec<String>,
    pub warnings: Vec<String>,
}

/// `GET /v1/tasks?state=...&role=...&agent=...`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    /// Only tasks where `agent` (an agent's or a person's name) took this role.
    pub role: Option<Role>,
    pub agent: Option<String>,
}

impl TaskFilter {
    /// `GET /v1/tasks` with this filter as its query.
    pub fn path(&self) -> String {
        let mut query = Vec::new();
        if let Some(s) = self.state {
            query.push(format!("state={s}"));
        }
        if let Some(role) = self.role {
            query.push(format!("role={}", role.as_str()));
        }
        if let Some(agent) = &self.agent {
            query.push(format!("agent={}", query_escape(agent)));
        }
        match query.is_empty() {
            true => "/v1/tasks".to_owned(),
            false => format!("/v1/tasks?{}", query.join("&")),
        }
    }
}

/// `text` for a URL's query: everything but unreserved characters percent-encoded.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A role someone takes for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created it (`task add`, `plan`).
    Planner,
    /// Claimed it.
    Executor,
    /// Took its review or gave a verdict on it.
    Reviewer,
    /// Approved it at a checkpoint.
    Approver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Planner => "planner",
            Role::Executor => "executor",
            Role::Reviewer => "reviewer",
            Role::Approver => "approver",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "planner" => Ok(Role::Planner),
            "executor" => Ok(Role::Executor),
            "reviewer" => Ok(Role::Reviewer),
            "approver" => Ok(Role::Approver),
            _ => Err(format!(
                "unknown role {s:?} (roles: planner, executor, reviewer, approver)"
            )),
        }
    }
}

/// The reply to a claim: the task, where to work, and the task's environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claimed {
    #[serde(flatten)]
    pub task: Task,
    /// The base branch the task integrates into.
    pub base: String,
    /// `SWITCHYARD_TASK`, `SWITCHYARD_WORKTREE`, `SWITCHYARD_PORT_BASE`.
    pub env: BTreeMap<String, String>,
    /// The file in the worktree holding `env` (none for a remote claim).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub env_file: String,
    /// A remote claim: the URL of the remote to push `branch` to, as the daemon knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// A remote claim: where `branch` stands on the remote now, when it exists there (an
    /// earlier executor's pushed work to continue from); absent, start at `base_sha`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// The agent already held this claim; its lease was renewed.
    pub renewed: bool,
    /// Things that went wrong without failing the claim (a setup command, a missing
    /// file to copy), one line each.
    pub warnings: Vec<String>,
}

/// `GET /v1/tasks/{id}`: the task and its timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    /// The task's pull request on GitHub, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestLink>,
    /// At a checkpoint (`awaiting_approval`): what a person decides, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<String>,
    /// Who planned it, executed each attempt, reviewed and approved.
    #[serde(default)]
    pub roles: Roles,
    /// Conflict warnings in force for its branch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictView>,
    pub timeline: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullRequestLink {
    pub number: u64,
    pub url: String,
}

/// One entry of `GET /v1/queue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: TaskId,
    pub title: String,
    pub state: TaskState,
    /// 1 is integrated next.
    pub position: usize,
    pub waiting_for: String,
    /// For a candidate in flight, what it is built onto: `"base"`, or the id of the
    /// task whose candidate is below it in the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_on: Option<String>,
    /// Its lane (1, 2, …; with `[queue] lanes` off, everything is lane 1) and its
    /// position in the lane (1 lands first); absent while it waits for several lanes,
    /// or for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane_position: Option<usize>,
    /// The lanes it waits for: it depends on changes in each (or touches everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits_for_lanes: Vec<usize>,
    #[serde(default)]
    pub stage: Stage,
    /// How long it has been at this stage, in milliseconds.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// Verify commands that flaked on its candidate (failed, then passed when run
    /// again, `[queue] retries`), with how many times.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flakes: BTreeMap<String, u32>,
}

/// Where a queue entry is, as `switchyard queue` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// At a checkpoint, for a person.
    AwaitingApproval,
    /// Before the queue, for a reviewer's verdict.
    AwaitingReview,
    /// For its turn: no candidate yet.
    #[default]
    Waiting,
    /// Its candidate is being built.
    Building,
    /// Its candidate is being verified.
    Verifying,
    /// Verified; waiting for the candidates below it to land, then landing.
    Passed,
    /// It failed on top of another candidate: decided once that one is resolved.
    Failed,
    /// The base holds it; the landing is being recorded.
    Landing,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::AwaitingApproval => "awaiting approval",
            Stage::AwaitingReview => "awaiting review",
            Stage::Waiting => "waiting",
            Stage::Building => "building",
            Stage::Verifying => "verifying",
            Stage::Passed => "passed",
            Stage::Failed => "failed",
            Stage::Landing => "landing",
        }
    }
}

/// Who reviews: an agent (`--agent`) or a person (`--by`), exactly one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reviewer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `POST /v1/review/next`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewNext {
    #[serde(flatten)]
    pub reviewer: Reviewer,
}

/// The reply to `review next`: what a reviewer needs, and where to read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewHandOut {
    pub id: TaskId,
    pub title: String,
    /// Why the task exists and what is asked.
    pub request: String,
    pub accept: Vec<String>,
    pub scope: Vec<String>,
    pub subsystems: Vec<String>,
    /// Exactly the commit under review (the task's submitted commit).
    pub commit: String,
    /// Its merge base with the base branch: the diff to read is `merge_base..commit`.
    pub merge_base: String,
    /// `merge_base..commit`, for `git diff` / `git log`.
    pub range: String,
    /// A detached checkout of `commit`, read-only by convention: what is changed there
    /// is never used, and it is recycled after the verdict.
    pub worktree: String,
    pub branch: String,
    pub attempt: i64,
    /// Who executed it (cannot review it).
    pub executor: Option<String>,
    pub lease_expires_at: Timestamp,
    /// The reviewer already held this review; its lease was renewed.
    pub renewed: bool,
}

/// `POST /v1/tasks/{id}/review/approve`, `POST /v1/tasks/{id}/review/changes`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewVerdict {
    #[serde(flatten)]
    pub reviewer: Reviewer,
    /// What the reviewer says; required when asking for changes.
    #[serde(default)]
    pub notes: String,
    /// The commit the reviewer read, when it says so: refused unless it is still the
    /// submitted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The reply to a heartbeat: the task, and the conflicts its branch has now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    #[serde(flatten)]
    pub task: Task,
    #[serde(default)]
    pub conflicts: Vec<ConflictView>,
}

/// A conflict warning in force: a dry-run merge of `task`'s branch with `with` (another
/// task's id, or `"base"`) conflicts in `paths`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictView {
    pub task: TaskId,
    pub with: String,
    /// The other task's executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub paths: Vec<String>,
}

/// `GET /v1/conflicts?task=tN`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConflictsQuery {
    #[serde(default)]
    pub task: Option<TaskId>,
}

/// `GET /v1/tasks/{id}/wait?timeout_ms=N`: waits (at most `timeout_ms`, capped by the
/// daemon) until the task leaves the queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It landed: `commit` is on the base.
    Merged,
    /// It came back to its executor: `reason` is the event that sent it back.
    Returned,
    /// It waits for a person at a checkpoint (`checkpoints` say why).
    Checkpoint,
    Cancelled,
    /// It is not in the queue (open or claimed, never submitted since).
    NotInQueue,
    /// Still in the queue when the time was up.
    Timeout,
}

/// The reply to a wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitOutcome {
    pub id: TaskId,
    pub outcome: Outcome,
    pub state: TaskState,
    pub attempt: i64,
    /// The commit that landed (merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The event that ended the wait, with its typed evidence: the conflicting paths,
    /// the failed command and its log's tail, the review notes, the rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Event>,
    /// At a checkpoint: what a person decides, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<String>,
}

/// `POST /v1/resume`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resume {
    /// The person resuming the queue (over TCP, empty: the token's name).
    #[serde(default)]
    pub by: String,
}

/// The reply to a resume: the base the queue goes on from, and the pauses it ended (a
/// pause by a move of the base, `was`; a person's pause, `stop`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resumed {
    pub base: String,
    pub was: Option<Pause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// `POST /v1/pause`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PauseRequest {
    /// The person (or agent) pulling the switch (over TCP, empty: the token's name).
    #[serde(default)]
    pub by: String,
    pub reason: String,
    /// Only the queue, or only the hand-outs; everything when absent.
    #[serde(default)]
    pub only: Option<StopPart>,
}

/// `GET /v1/events`: the queue's own events, oldest first.
pub type QueueEvents = Vec<QueueEvent>;

/// `GET /v1/status`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub repo: String,
    pub base: String,
    pub started_at: Timestamp,
    pub tasks: BTreeMap<String, usize>,
    pub pool_ready: usize,
    /// Why the queue integrates nothing now, when it is paused by a move of the base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    /// A person's pause in force (`switchyard pause`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// Every route of the API: its method and path (axum's template, `{id}` for a task
/// id). The daemon's router is built from these paths and the TCP listener's guard
/// finds a request's route with [`Endpoint::of`], so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Status,
    ListTasks,
    AddTask,
    ShowTask,
    TaskEvents,
    Wait,
    Conflicts,
    Heartbeat,
    Release,
    Cancel,
    Submit,
    Approve,
    Reject,
    Claim,
    Queue,
    QueueEvents,
    Resume,
    Pause,
    Plan,
    ReviewNext,
    ReviewApprove,
    ReviewChanges,
}

/// Why a request matches no [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No route has this path.
    Path,
    /// A route has this path, with another method.
    Method,
}

impl Endpoint {
    pub const ALL: [Endpoint; 22] = [
        Endpoint::Status,
        Endpoint::ListTasks,
        Endpoint::AddTask,
        Endpoint::ShowTask,
        Endpoint::TaskEvents,
        Endpoint::Wait,
        Endpoint::Conflicts,
        Endpoint::Heartbeat,
        Endpoint::Release,
        Endpoint::Cancel,
        Endpoint::Submit,
        Endpoint::Approve,
        Endpoint::Reject,
        Endpoint::Claim,
        Endpoint::Queue,
        Endpoint::QueueEvents,
        Endpoint::Resume,
        Endpoint::Pause,
        Endpoint::Plan,
        Endpoint::ReviewNext,
        Endpoint::ReviewApprove,
        Endpoint::ReviewChanges,
    ];

    /// `"GET"` or `"POST"`.
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::Status
            | Endpoint::ListTasks
            | Endpoint::ShowTask
            | Endpoint::TaskEvents
            | Endpoint::Wait
            | Endpoint::Conflicts
            | Endpoint::Queue
            | Endpoint::QueueEvents => "GET",
            Endpoint::AddTask
            | Endpoint::Heartbeat
            | Endpoint::Release
            | Endpoint::Cancel
            | Endpoint::Submit
            | Endpoint::Approve
            | Endpoint::Reject
            | Endpoint::Claim
            | Endpoint::Resume
            | Endpoint::Pause
            | Endpoint::Plan
            | Endpoint::ReviewNext
            | Endpoint::ReviewApprove
            | Endpoint::ReviewChanges => "POST",
        }
    }

    /// The path, as axum's router takes it.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Status => "/v1/status",
            Endpoint::ListTasks | Endpoint::AddTask => "/v1/tasks",
            Endpoint::ShowTask => "/v1/tasks/{id}",
            Endpoint::TaskEvents => "/v1/tasks/{id}/events",
            Endpoint::Wait => "/v1/tasks/{id}/wait",
            Endpoint::Conflicts => "/v1/conflicts",
            Endpoint::Heartbeat => "/v1/tasks/{id}/heartbeat",
            Endpoint::Release => "/v1/tasks/{id}/release",
            Endpoint::Cancel => "/v1/tasks/{id}/cancel",
            Endpoint::Submit => "/v1/tasks/{id}/submit",
            Endpoint::Approve => "/v1/tasks/{id}/approve",
            Endpoint::Reject => "/v1/tasks/{id}/reject",
            Endpoint::Claim => "/v1/claim",
            Endpoint::Queue => "/v1/queue",
            Endpoint::QueueEvents => "/v1/events",
            Endpoint::Resume => "/v1/resume",
            Endpoint::Pause => "/v1/pause",
            Endpoint::Plan => "/v1/plan",
            Endpoint::ReviewNext => "/v1/review/next",
            Endpoint::ReviewApprove => "/v1/tasks/{id}/review/approve",
            Endpoint::ReviewChanges => "/v1/tasks/{id}/review/changes",
        }
    }

    /// The route a request's method and path (without the query) go to, matched as
    /// axum matches them: segment by segment, `{id}` standing for any one non-empty
    /// segment.
    pub fn of(method: &str, path: &str) -> Result<Endpoint, NoRoute> {
        let fits = |template: &str| {
            let mut want = template.split('/');
            let mut have = path.split('/');
            loop {
                match (want.next(), have.next()) {
                    (None, None) => return true,
                    (Some("{id}"), Some(seg)) if !seg.is_empty() => {}
                    (Some(w), Some(h)) if w == h => {}
                    _ => return false,
                }
            }
        };
        let mut path_known = false;
        for e in Endpoint::ALL {
            if fits(e.path()) {
                if e.method() == method {
                    return Ok(e);
                }
                path_known = true;
            }
        }
        Err(if path_known {
            NoRoute::Method
        } else {
            NoRoute::Path
        })
    }
}

/// Every error reply: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// What went wrong, for a program to branch on: stable names (`code` in every error
/// reply), documented in the README and docs/api.md. The message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or its input invalid (HTTP 400).
    BadRequest,
    /// No such task (404).
    NotFound,
    /// Refused for a reason no other code names (409).
    Refused,
    /// The task's state does not allow it: not claimed, not awaiting approval or
    /// review, being integrated right now, already merged or cancelled (409).
    WrongState,
    /// The task is claimed by another executor (409).
    NotClaimHolder,
    /// Nothing can be claimed: every open task's subsystems are at their caps (409).
    CapFull,
    /// Nothing can be claimed: no task is open (409).
    NothingToClaim,
    /// The task waits for tasks it comes after to merge (409).
    Blocked,
    /// The branch has no commits beyond the base, or does not exist (409).
    NothingToSubmit,
    /// No change waits for this reviewer (409).
    NothingToReview,
    /// A person paused what was asked for (`switchyard pause`): nothing is handed out,
    /// or the queue starts nothing new (409).
    Paused,
    /// The request collides with what is recorded: a request id used for something
    /// else, a review another reviewer holds, a branch that rewrote the base (409).
    Conflict,
    /// A verdict on a commit that is no longer the submitted one (409).
    StaleCommit,
    /// The one asking may not do this: an executor approving or reviewing its own
    /// change, a reviewer `[review] reviewers` does not list; over TCP, a token whose
    /// roles do not cover the route, or a request naming someone other than the
    /// token's owner (403).
    NotAllowed,
    /// The client is another version of switchyard (400).
    VersionMismatch,
    /// A failure inside the daemon (500).
    Internal,
    /// Something the daemon depends on (GitHub) cannot be reached now; try again (503).
    Unavailable,
    /// No such route (404 is `not_found` too; this is a known route, wrong method: 405).
    MethodNotAllowed,
    /// The request body is over the limit (413).
    TooLarge,
    /// Over TCP (`[api] listen`): no bearer token, or one the tokens file does not hold
    /// (unknown or revoked) (401).
    Unauthorized,
    /// Over TCP: too many failed authentications from this address; wait and try again
    /// (429).
    RateLimited,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::VersionMismatch => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::NotAllowed => 403,
            ErrorCode::Refused
            | ErrorCode::WrongState
            | ErrorCode::NotClaimHolder
            | ErrorCode::CapFull
            | ErrorCode::NothingToClaim
            | ErrorCode::Blocked
            | ErrorCode::NothingToSubmit
            | ErrorCode::NothingToReview
            | ErrorCode::Paused
            | ErrorCode::Conflict
            | ErrorCode::StaleCommit => 409,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
        }
    }
}

/// A refusal or failure as the API answers it: its code decides the HTTP status and the
/// CLI's exit status; the message is one line for people. The daemon's service and the
/// read functions (`crate::view`) both answer with it, so the CLI reports a refusal the
/// same whether a daemon or the ledger answered.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }
    pub fn refused(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Refused, message)
    }
    /// A refusal with the code that names it.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unavailable, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_by_its_method_and_path() {
        for e in Endpoint::ALL {
            let path = e.path().replace("{id}", "t12");
            assert_eq!(Endpoint::of(e.method(), &path), Ok(e), "{path}");
        }
        let cases = [
            ("GET", "/v1/tasks", Ok(Endpoint::ListTasks)),
            ("POST", "/v1/tasks", Ok(Endpoint::AddTask)),
            (
                "POST",
                "/v1/tasks/t1/review/approve",
                Ok(Endpoint::ReviewApprove),
            ),
            ("POST", "/v1/tasks/t1/approve", Ok(Endpoint::Approve)),
            ("DELETE", "/v1/tasks/t1", Err(NoRoute::Method)),
            ("GET", "/v1/claim", Err(NoRoute::Method)),
            ("GET", "/v1/status/", Err(NoRoute::Path)),
            ("GET", "/v1/tasks//events", Err(NoRoute::Path)),
            ("GET", "/v1/tasks/t1/events/x", Err(NoRoute::Path)),
            ("GET", "/v1", Err(NoRoute::Path)),
            ("GET", "", Err(NoRoute::Path)),
        ];
        for (method, path, want) in cases {
            assert_eq!(Endpoint::of(method, path), want, "{method} {path}");
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/api_request.rs): serde quoted the unknown
    /// state raw, so the error held a newline.
    #[test]
    fn decode_errors_are_one_line() {
        let e = decode::<TaskFilter>(br#"{"state":"\n\u001b[2J"}"#).unwrap_err();
        assert!(!e.contains(char::is_control), "{e:?}");
        assert!(
            e.starts_with("invalid request body: unknown variant `\\n\\u{1b}[2J`"),
            "{e}"
        );
        assert_eq!(
            decode::<TaskFilter>(br#"{"state":"merged"}"#).map(|f| f.state),
            Ok(Some(TaskState::Merged))
        );
    }
}

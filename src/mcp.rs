//! `switchyard mcp`: the daemon's API as MCP tools, for coding agents, served over
//! stdio with the official SDK (`rmcp`). A thin client of the running daemon, like the
//! CLI: each tool is one or a few requests on its Unix socket (the blocking [`Client`],
//! run on `spawn_blocking`), and the daemon enforces who may do what.
//!
//! Results are JSON objects (lists are wrapped: `{"tasks": [...]}`), as `structuredContent`
//! and as text. A refusal is a tool result with `isError: true` whose text is the CLI's
//! `{"error": {"code", "message"}}`, with the daemon's code (`not_claim_holder`, ...) or
//! one of the client's own: `usage` (unknown or wrongly typed arguments, a bad task id),
//! `too_large` (arguments over [`MAX_ARGUMENTS_BYTES`]), `no_daemon`, `timeout`, `failed`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{
    AddTask, ByAgent, Claim, Claimed, ConflictView, Heartbeat, Plan, Planned, QueueEntry,
    ReviewHandOut, ReviewNext, ReviewVerdict, Reviewer, Role, Submit, Submitted, TaskDetail,
};
use crate::client::{Client, ClientError};
use crate::model::{Event, Task, TaskId, TaskState};

/// The most a call's arguments may hold, as JSON: 1 MiB (the daemon's own body limit).
/// `plan` may send up to [`MAX_PLAN_ARGUMENTS_BYTES`].
pub const MAX_ARGUMENTS_BYTES: usize = 1024 * 1024;
/// `plan`'s limit: the daemon takes plan bodies up to 4 MB (the plan text itself is
/// limited to `plan::MAX_PLAN_BYTES`, checked by the daemon).
pub const MAX_PLAN_ARGUMENTS_BYTES: usize = 4 * 1024 * 1024;

/// How long `wait` waits when the call does not say.
pub const DEFAULT_WAIT_SECONDS: u64 = 600;

const ARGUMENT_ERROR_PREFIX: &str = "failed to deserialize parameters:";

/// Who the server acts for when a tool is not given an `agent`. Over stdio:
/// `SWITCHYARD_AGENT`, else the MCP client's name (its `clientInfo.name` at initialize),
/// else the user name. Over HTTP ([`Defaults::http`]): the [`AGENT_HEADER`] the client
/// was configured with, and nothing else. With a daemon elsewhere (`token_names`), the
/// token says who: `SWITCHYARD_AGENT` if set, else nobody, and the daemon records the
/// token's name.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub agent: Option<String>,
    pub user: Option<String>,
    /// Whether the client's `clientInfo.name` names the agent. Not over HTTP: a
    /// stateless request (protocol 2026-07-28) carries no client name at all (rmcp then
    /// reports its own), and every session of one client reports the same name, so it
    /// would let agents act as each other.
    pub client_name: bool,
    /// The client talks to a daemon elsewhere, whose token names the caller.
    pub token_names: bool,
}

impl Defaults {
    /// The rule for the daemon's HTTP endpoint: the `agent` argument or the header.
    pub fn http() -> Defaults {
        Defaults {
            agent: None,
            user: None,
            client_name: false,
            token_names: false,
        }
    }
}

/// Where the daemon serves MCP over streamable HTTP (`[mcp] listen`).
pub const HTTP_PATH: &str = "/mcp";

/// The header an HTTP MCP client sends to say which agent it is, when a tool call does
/// not pass `agent` (set once in the client's MCP config).
pub const AGENT_HEADER: &str = "x-switchyard-agent";

/// The file in the daemon's state directory that holds the HTTP endpoint's token.
pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("mcp-token")
}

/// The HTTP endpoint's bearer token: read from [`token_path`], or made (as the networked
/// API's tokens are: 256 random bits) and written there, private to this user, when there is none. The daemon
/// and `switchyard mcp --http-config` both call it, so whichever comes first makes it and
/// it survives restarts (an agent's config keeps working).
pub fn token(state_dir: &Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = token_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => return Ok(t.trim().to_owned()),
        Ok(_) => std::fs::remove_file(&path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = crate::auth::Token::generate()
        .map_err(std::io::Error::other)?
        .expose()
        .to_owned();
    // Written whole under a temporary name and linked into place: a reader never sees
    // half a token, and two writers racing keep the first one's.
    let tmp = state_dir.join(format!("mcp-token.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(e) => Err(e),
    }
}

/// A refusal or failure, as the CLI reports it with `--json`.
#[derive(Debug)]
struct ToolError {
    code: String,
    message: String,
}

impl ToolError {
    fn usage(message: impl Into<String>) -> ToolError {
        ToolError {
            code: "usage".into(),
            message: message.into(),
        }
    }

    fn result(&self) -> CallToolResult {
        CallToolResult::structured_error(
            json!({"error": {"code": self.code, "message": self.message}}),
        )
    }
}

impl From<ClientError> for ToolError {
    fn from(e: ClientError) -> ToolError {
        let code = match &e {
            ClientError::Api { code, .. } => serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "refused".to_owned()),
            ClientError::NoDaemon(_) | ClientError::Unreachable(_) => "no_daemon".to_owned(),
            ClientError::TimedOut(_) => "timeout".to_owned(),
            ClientError::Io(_) | ClientError::Tls(_) | ClientError::Protocol(_) => {
                "failed".to_owned()
            }
        };
        ToolError {
            code,
            message: e.to_string(),
        }
    }
}

fn parse_id(id: &str) -> Result<TaskId, ToolError> {
    id.trim().parse().map_err(ToolError::usage)
}

/// What an executor does to its claim: `{agent}` posted to `/v1/tasks/{id}/{verb}`.
fn as_executor<R: serde::de::DeserializeOwned + Serialize>(
    c: &Client,
    id: &str,
    verb: &str,
    agent: String,
) -> Result<Value, ToolError> {
    let id = parse_id(id)?;
    let reply: R = c.post(
        &format!("/v1/tasks/{id}/{verb}"),
        &ByAgent { agent, by: None },
    )?;
    to_value(reply)
}

fn object(key: &str, value: impl Serialize) -> Result<Value, ToolError> {
    Ok(json!({ key: to_value(value)? }))
}

fn to_value(value: impl Serialize) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|e| ToolError {
        code: "internal".into(),
        message: e.to_string(),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasksArgs {
    /// Only tasks in this state: open, claimed, queued, awaiting_review, verifying,
    /// awaiting_approval, returned, merged or cancelled.
    #[serde(default)]
    pub state: Option<String>,
    /// With `agent`: only tasks where that agent took this role (planner, executor,
    /// reviewer or approver). `role: "executor"` with your own name finds your work.
    #[serde(default)]
    pub role: Option<String>,
    /// With `role`: whose tasks (an agent's or a person's name).
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdArgs {
    /// The task's id, like "t3".
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionalIdArgs {
    /// A task's id, like "t3" (optional).
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActArgs {
    /// The task's id, like "t3".
    pub id: String,
    /// Who acts (default: SWITCHYARD_AGENT, else this MCP client's name, else the user
    /// name). Must be the agent holding the claim.
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimArgs {
    /// The task to claim, like "t3" (default: the highest-priority, oldest open task
    /// that fits the caps; if you already hold a task, that one again).
    #[serde(default)]
    pub id: Option<String>,
    /// Who claims (default: SWITCHYARD_AGENT, else this MCP client's name, else the user
    /// name).
    #[serde(default)]
    pub agent: Option<String>,
    /// true when you work in a clone of your own (another machine, a sandbox): no
    /// worktree is made; the reply names `branch`, `base_sha`, the `remote` URL to push
    /// the branch to, and `pushed` (earlier work on that branch to continue from). Then
    /// submit with `commit`, the commit you pushed.
    #[serde(default)]
    pub remote: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitArgs {
    /// The task's id, like "t3".
    pub id: String,
    /// Who submits (default: SWITCHYARD_AGENT, else this MCP client's name, else the user
    /// name). Must be the agent holding the claim.
    #[serde(default)]
    pub agent: Option<String>,
    /// The full commit id you submit. Required after a remote claim: the branch you
    /// pushed must point at exactly it. Otherwise it must be the branch's tip.
    #[serde(default)]
    pub commit: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTaskArgs {
    /// One line saying what is to be done.
    pub title: String,
    /// The request: why, and what is asked.
    #[serde(default)]
    pub body: Option<String>,
    /// Acceptance criteria, one per entry.
    #[serde(default)]
    pub accept: Option<Vec<String>>,
    /// Subsystem names and/or path globs the task may touch.
    #[serde(default)]
    pub scope: Option<Vec<String>>,
    /// Higher runs first, -1000 to 1000 (default 0).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Task ids that must merge before this one may be claimed.
    #[serde(default)]
    pub after: Option<Vec<String>>,
    /// Who asks (default: SWITCHYARD_AGENT, else this MCP client's name, else the user
    /// name).
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// The task's id, like "t3".
    pub id: String,
    /// Give up after this many seconds (default 600); the outcome is then "timeout".
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewNextArgs {
    /// Who reviews (default: SWITCHYARD_AGENT, else this MCP client's name, else the
    /// user name). An executor cannot review its own change.
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewApproveArgs {
    /// The task under review, like "t3".
    pub id: String,
    /// What the reviewer says (optional).
    #[serde(default)]
    pub notes: Option<String>,
    /// The commit you read (from review_next): refused unless it is still the submitted
    /// one.
    #[serde(default)]
    pub commit: Option<String>,
    /// Who reviews (default: SWITCHYARD_AGENT, else this MCP client's name, else the
    /// user name).
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewChangesArgs {
    /// The task under review, like "t3".
    pub id: String,
    /// What must change: the executor reads this when the task comes back.
    pub notes: String,
    /// The commit you read (from review_next): refused unless it is still the submitted
    /// one.
    #[serde(default)]
    pub commit: Option<String>,
    /// Who reviews (default: SWITCHYARD_AGENT, else this MCP client's name, else the
    /// user name).
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanArgs {
    /// The plan: TOML `[[task]]` tables (title, body, accept, scope, priority, name,
    /// after), or JSON `{"task": [...]}` with file_name ending in .json.
    pub text: String,
    /// The plan's file name, for locations in problems and to select the format
    /// (default "plan.toml").
    #[serde(default)]
    pub file_name: Option<String>,
    /// Who plans (default: SWITCHYARD_AGENT, else this MCP client's name, else the user
    /// name).
    #[serde(default)]
    pub agent: Option<String>,
}

/// The MCP server: a client of one repository's daemon.
#[derive(Clone)]
pub struct Server {
    client: Arc<Client>,
    defaults: Defaults,
    tool_router: ToolRouter<Server>,
}

impl Server {
    pub fn new(client: Client, defaults: Defaults) -> Server {
        Server {
            client: Arc::new(client),
            defaults,
            tool_router: Self::tool_router(),
        }
    }

    /// The agent a call acts for: the `agent` argument, else [`Defaults`]'s rule.
    fn who(
        &self,
        given: Option<String>,
        context: &RequestContext<RoleServer>,
    ) -> Result<String, ToolError> {
        let nonempty = |n: &String| !n.trim().is_empty();
        let header = || {
            let parts = context.extensions.get::<http::request::Parts>()?;
            let value = parts.headers.get(AGENT_HEADER)?.to_str().ok()?;
            Some(value.to_owned()).filter(nonempty)
        };
        let given = given
            .filter(nonempty)
            .or_else(|| self.defaults.agent.clone())
            .or_else(header);
        if self.defaults.token_names {
            // Empty: the daemon fills in the token's name.
            return Ok(given.unwrap_or_default());
        }
        given
            .or_else(|| {
                context
                    .peer
                    .peer_info()
                    .filter(|_| self.defaults.client_name)
                    .map(|i| i.client_info.name.clone())
                    .filter(nonempty)
            })
            .or_else(|| self.defaults.user.clone())
            .ok_or_else(|| match self.defaults.client_name {
                true => ToolError::usage("who is this? pass `agent` or set SWITCHYARD_AGENT"),
                false => ToolError::usage(format!(
                    "who is this? pass `agent`, or configure the {AGENT_HEADER} header in your MCP client"
                )),
            })
    }

    /// Runs `f` with the client on the blocking pool and makes its outcome a tool result.
    async fn run<F>(&self, f: F) -> CallToolResult
    where
        F: FnOnce(&Client) -> Result<Value, ToolError> + Send + 'static,
    {
        let client = self.client.clone();
        match tokio::task::spawn_blocking(move || f(&client)).await {
            Ok(Ok(value)) => CallToolResult::structured(value),
            Ok(Err(e)) => e.result(),
            Err(e) => ToolError {
                code: "internal".into(),
                message: format!("the request failed: {e}"),
            }
            .result(),
        }
    }

    async fn acting<F>(&self, agent: Result<String, ToolError>, f: F) -> CallToolResult
    where
        F: FnOnce(&Client, String) -> Result<Value, ToolError> + Send + 'static,
    {
        match agent {
            Ok(agent) => self.run(move |c| f(c, agent)).await,
            Err(e) => e.result(),
        }
    }
}

#[tool_router]
impl Server {
    /// List the repository's tasks, by id. Call it to see what work exists and in what
    /// state; filter by `state`, or by `role` with `agent` to find one agent's tasks (for
    /// example your own claims: role "executor"). Returns {"tasks": [Task]}; each Task has
    /// id, title, body, accept, scope, state, branch, worktree, agent, attempt, ...
    #[tool]
    async fn list_tasks(&self, Parameters(a): Parameters<ListTasksArgs>) -> CallToolResult {
        self.run(move |c| {
            let state = a
                .state
                .map(|s| s.parse::<TaskState>())
                .transpose()
                .map_err(ToolError::usage)?;
            let role = a
                .role
                .map(|r| r.parse::<Role>())
                .transpose()
                .map_err(ToolError::usage)?;
            if role.is_some() != a.agent.is_some() {
                return Err(ToolError::usage("`role` and `agent` go together"));
            }
            let path = crate::api::TaskFilter {
                state,
                role,
                agent: a.agent,
            }
            .path();
            let tasks: Vec<Task> = c.get(&path)?;
            object("tasks", tasks)
        })
        .await
    }

    /// Show one task in full: its request (body, accept criteria, scope), state, branch,
    /// worktree, the conflicts its branch has now, who took which role, and its timeline
    /// of events (why it came back, what failed). Returns the Task plus timeline, roles,
    /// conflicts, checkpoints.
    #[tool]
    async fn show_task(&self, Parameters(a): Parameters<IdArgs>) -> CallToolResult {
        self.run(move |c| {
            let id = parse_id(&a.id)?;
            let detail: TaskDetail = c.get(&format!("/v1/tasks/{id}"))?;
            to_value(detail)
        })
        .await
    }

    /// Create one task for an executor to claim. Its scope (subsystem names and/or path
    /// globs) is resolved now to the subsystems it may touch. For several related tasks
    /// at once, with dependencies, use `plan`. Returns the new Task (id, branch, ...).
    #[tool]
    async fn add_task(
        &self,
        Parameters(a): Parameters<AddTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let by = self.who(a.agent.clone(), &context);
        self.acting(by, move |c, by| {
            let after = a
                .after
                .unwrap_or_default()
                .iter()
                .map(|i| parse_id(i))
                .collect::<Result<Vec<_>, _>>()?;
            let req = AddTask {
                title: a.title,
                body: a.body.unwrap_or_default(),
                accept: a.accept.unwrap_or_default(),
                scope: a.scope.unwrap_or_default(),
                priority: a.priority.unwrap_or(0),
                by,
                request_id: Some(crate::client::request_id("mcp")),
                after,
            };
            let task: Task = c.post("/v1/tasks", &req)?;
            to_value(task)
        })
        .await
    }

    /// Claim a task to work on: the given one, or the next that fits. Call it before you
    /// start any work. Returns the Task plus where to work: `worktree` (a checkout of its
    /// own, on `branch`; do all edits and commits there), `base` (the branch it lands
    /// on), `env` (SWITCHYARD_TASK, SWITCHYARD_PORT_BASE, ...: use these ports for any
    /// servers you start), `renewed` and `warnings`. Refused with nothing_to_claim,
    /// cap_full, blocked or paused when there is nothing for you.
    #[tool]
    async fn claim(
        &self,
        Parameters(a): Parameters<ClaimArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let agent = self.who(a.agent.clone(), &context);
        self.acting(agent, move |c, agent| {
            let id = a.id.as_deref().map(parse_id).transpose()?;
            let claimed: Claimed = c.post(
                "/v1/claim",
                &Claim {
                    id,
                    agent,
                    remote: a.remote.unwrap_or(false),
                },
            )?;
            to_value(claimed)
        })
        .await
    }

    /// Renew your lease on a claimed task: call it every few minutes during long work,
    /// or the claim expires and the task goes back to open. Returns the Task (with
    /// lease_expires_at) and `conflicts`: other live branches (or the base) your branch
    /// would conflict with, with the paths; coordinate or rebase early when it is not
    /// empty.
    #[tool]
    async fn heartbeat(
        &self,
        Parameters(a): Parameters<ActArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let agent = self.who(a.agent.clone(), &context);
        self.acting(agent, move |c, agent| {
            as_executor::<Heartbeat>(c, &a.id, "heartbeat", agent)
        })
        .await
    }

    /// Give a claimed task back, unfinished: it becomes open again for someone else; its
    /// branch keeps its commits. Call it when you cannot or should not finish it.
    /// Returns the Task.
    #[tool]
    async fn release(
        &self,
        Parameters(a): Parameters<ActArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let agent = self.who(a.agent.clone(), &context);
        self.acting(agent, move |c, agent| {
            as_executor::<Task>(c, &a.id, "release", agent)
        })
        .await
    }

    /// Submit your claimed task's branch for integration, once its work is committed in
    /// the worktree (uncommitted changes are not submitted). It is checked against the
    /// task's scope, then queued (or held for a person's approval, see `checkpoints`).
    /// Returns the Task with `checkpoints` and `warnings`; then call `wait` to learn
    /// whether it merged.
    #[tool]
    async fn submit(
        &self,
        Parameters(a): Parameters<SubmitArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let agent = self.who(a.agent.clone(), &context);
        self.acting(agent, move |c, agent| {
            let id = parse_id(&a.id)?;
            let body = Submit {
                agent,
                commit: a.commit,
            };
            let submitted: Submitted = c.post(&format!("/v1/tasks/{id}/submit"), &body)?;
            to_value(submitted)
        })
        .await
    }

    /// Block until a submitted task leaves the queue, or timeout_seconds (default 600)
    /// pass. Call it after `submit`. Returns {id, outcome, state, attempt, commit?,
    /// reason?, checkpoints?}: outcome "merged" (done; `commit` is on the base),
    /// "returned" (it came back to you: `reason` is the event saying why, with the
    /// conflicting paths, the failed command and its log tail, or review notes; fix it in
    /// the same worktree, commit, submit again), "checkpoint" (a person must approve),
    /// "cancelled", "not_in_queue" (never submitted) or "timeout" (call wait again).
    #[tool]
    async fn wait(&self, Parameters(a): Parameters<WaitArgs>) -> CallToolResult {
        self.run(move |c| {
            let id = parse_id(&a.id)?;
            let secs = a.timeout_seconds.unwrap_or(DEFAULT_WAIT_SECONDS);
            let outcome = c.wait_for(id, Some(Duration::from_secs(secs)))?;
            to_value(outcome)
        })
        .await
    }

    /// The conflict warnings in force: dry-run merges of live tasks' branches with each
    /// other and with the base that conflict, with the paths. Give `id` for one task's
    /// only. Returns {"conflicts": [{task, with ("tN" or "base"), agent?, paths}]}.
    #[tool]
    async fn conflicts(&self, Parameters(a): Parameters<OptionalIdArgs>) -> CallToolResult {
        self.run(move |c| {
            let path = match a.id {
                Some(id) => format!("/v1/conflicts?task={}", parse_id(&id)?),
                None => "/v1/conflicts".to_owned(),
            };
            let found: Vec<ConflictView> = c.get(&path)?;
            object("conflicts", found)
        })
        .await
    }

    /// The merge queue in integration order, with what each entry waits for and its
    /// stage (waiting, building, verifying, passed, landing, awaiting_approval, ...).
    /// Returns {"queue": [{id, title, state, position, waiting_for, stage, elapsed_ms,
    /// ...}]}.
    #[tool]
    async fn queue(&self) -> CallToolResult {
        self.run(move |c| {
            let entries: Vec<QueueEntry> = c.get("/v1/queue")?;
            object("queue", entries)
        })
        .await
    }

    /// A task's ledger events, oldest first: claims, submits, conflicts, verify
    /// failures (with the command's log tail), reviews, merges. Returns {"events":
    /// [Event]}, each {at, event, task, by, state, evidence}.
    #[tool]
    async fn log(&self, Parameters(a): Parameters<IdArgs>) -> CallToolResult {
        self.run(move |c| {
            let id = parse_id(&a.id)?;
            let events: Vec<Event> = c.get(&format!("/v1/tasks/{id}/events"))?;
            object("events", events)
        })
        .await
    }

    /// As a reviewer: take the next change waiting for review (not your own). Returns
    /// what to read: {id, title, request, accept, scope, commit, merge_base, range (for
    /// git diff), worktree (a read-only checkout of the commit), ...}. Then call
    /// review_approve or review_changes with the same commit. Refused with
    /// nothing_to_review when nothing waits.
    #[tool]
    async fn review_next(
        &self,
        Parameters(a): Parameters<ReviewNextArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let agent = self.who(a.agent.clone(), &context);
        self.acting(agent, move |c, agent| {
            let reviewer = Reviewer {
                agent: Some(agent),
                by: None,
            };
            let r: ReviewHandOut = c.post("/v1/review/next", &ReviewNext { reviewer })?;
            to_value(r)
        })
        .await
    }

    /// As the reviewer holding a review: approve the change; it goes on to the queue.
    /// Returns the Task.
    #[tool]
    async fn review_approve(
        &self,
        Parameters(a): Parameters<ReviewApproveArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let agent = self.who(a.agent.clone(), &context);
        self.acting(agent, move |c, agent| {
            let id = parse_id(&a.id)?;
            let verdict = ReviewVerdict {
                reviewer: Reviewer {
                    agent: Some(agent),
                    by: None,
                },
                notes: a.notes.unwrap_or_default(),
                commit: a.commit,
            };
            let task: Task = c.post(&format!("/v1/tasks/{id}/review/approve"), &verdict)?;
            to_value(task)
        })
        .await
    }

    /// As the reviewer holding a review: ask for changes, with notes saying what must
    /// change; the task goes back to its executor. Returns the Task.
    #[tool]
    async fn review_changes(
        &self,
        Parameters(a): Parameters<ReviewChangesArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let agent = self.who(a.agent.clone(), &context);
        self.acting(agent, move |c, agent| {
            let id = parse_id(&a.id)?;
            let verdict = ReviewVerdict {
                reviewer: Reviewer {
                    agent: Some(agent),
                    by: None,
                },
                notes: a.notes,
                commit: a.commit,
            };
            let task: Task = c.post(&format!("/v1/tasks/{id}/review/changes"), &verdict)?;
            to_value(task)
        })
        .await
    }

    /// As a planner: create a whole batch of tasks with their dependencies, all or none.
    /// `text` is a plan file's content (TOML [[task]] tables with title, body, accept,
    /// scope, priority, name and after = local names or task ids). Every problem is
    /// reported first (code bad_request, one FILE:LINE:COL line each) and nothing is
    /// created. Returns {"tasks": [{name, id}]} in file order.
    #[tool]
    async fn plan(
        &self,
        Parameters(a): Parameters<PlanArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let by = self.who(a.agent.clone(), &context);
        self.acting(by, move |c, by| {
            let planned: Planned = c.post(
                "/v1/plan",
                &Plan {
                    file: a.file_name.unwrap_or_else(|| "plan.toml".to_owned()),
                    text: a.text,
                    by,
                    request_id: Some(crate::client::request_id("mcp")),
                },
            )?;
            to_value(planned)
        })
        .await
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("switchyard", crate::api::VERSION))
            .with_instructions(
                "switchyard is this repository's merge queue. Work loop: claim (get a task and \
                 its worktree) -> edit and commit in that worktree only -> submit -> wait. \
                 When wait says \"returned\", read `reason`, fix in the same worktree, commit, \
                 submit again. Heartbeat during long work. Errors are \
                 {\"error\":{\"code\",\"message\"}}.",
            )
    }

    /// The router's call, with the argument size limit first, and argument errors made
    /// the CLI's `usage` refusals.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let limit = match request.name.as_ref() {
            "plan" => MAX_PLAN_ARGUMENTS_BYTES,
            _ => MAX_ARGUMENTS_BYTES,
        };
        let size = request
            .arguments
            .as_ref()
            .map_or(0, |a| serde_json::to_vec(a).map_or(usize::MAX, |v| v.len()));
        if size > limit {
            let e = ToolError {
                code: "too_large".into(),
                message: format!(
                    "the arguments are {size} bytes; the limit for {} is {limit}",
                    request.name
                ),
            };
            return Ok(e.result().into());
        }
        let tcc = ToolCallContext::new(self, request, context);
        let response = self.tool_router.call(tcc).await?;
        Ok(match response {
            CallToolResponse::Complete(r) if r.is_error == Some(true) => match argument_error(&r) {
                Some(message) => ToolError::usage(message).result().into(),
                None => r.into(),
            },
            other => other,
        })
    }
}

/// The message of rmcp's own "failed to deserialize parameters" result.
fn argument_error(r: &CallToolResult) -> Option<String> {
    if r.structured_content.is_some() {
        return None;
    }
    r.content.iter().find_map(|c| match c {
        ContentBlock::Text(t) if t.text.starts_with(ARGUMENT_ERROR_PREFIX) => Some(format!(
            "invalid arguments: {}",
            t.text[ARGUMENT_ERROR_PREFIX.len()..].trim()
        )),
        _ => None,
    })
}

/// Serves MCP on stdin/stdout until the client closes it. Nothing else is written to
/// stdout: it is the protocol channel.
pub fn serve_stdio(client: Client, defaults: Defaults) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async {
        let service = Server::new(client, defaults)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| format!("MCP session failed to start: {e}"))?;
        service
            .waiting()
            .await
            .map_err(|e| format!("MCP session failed: {e}"))?;
        Ok(())
    });
    // A `wait` still blocked on the daemon when the client went away must not keep the
    // process alive until its timeout: dropping the runtime would wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

//! The daemon's service: every request's decision and its record in the ledger, then the
//! git work that carries it out. All methods block (SQLite, git); the HTTP layer calls
//! them on blocking threads.
//!
//! Order of operations is what makes a crash harmless: a decision is committed to the
//! ledger before anything is done about it (a claim is recorded before its worktree is
//! made, a worktree is marked "not ready" before it is moved), and the outcome is
//! recorded after. On restart, [`Service::reconcile`] finds every half-done step from
//! the ledger and finishes it.

use std::collections::BTreeMap;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, broadcast};
use tracing::{info, info_span, warn};

use crate::api::{self, ErrorCode};
use crate::command;
use crate::config::Config;
use crate::git::{self, RepoLocation};
use crate::model::evidence::{
    After, RecycledTo, WorktreeKept, WorktreeReady, WorktreeRecycled, WorktreeRestored,
    WorktreeSource as Source,
};
use crate::model::{Actor, Event, Evidence, QueueEvent, Task, TaskId, TaskState, Timestamp};
use crate::plan;
use crate::scheduler::Caps;
use crate::scope;
use crate::store::{
    Back, ClaimRequest, EventMarks, Ledger, LedgerError, NewTask, PORT_BLOCK, PlanDep, Release,
};
use crate::view::{self, QueueNow};
use crate::worktree::{self, ENV_FILE, Worktrees};

/// Limits on what a task may hold; beyond them a request is refused, not truncated.
/// How many tasks a claim without an id tries when worktrees fail.
const MAX_CLAIM_TRIES: usize = 3;

pub use crate::api::ApiError;

impl From<git::GitError> for ApiError {
    fn from(e: git::GitError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl From<crate::gitcli::GitCliError> for ApiError {
    fn from(e: crate::gitcli::GitCliError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl From<worktree::WorktreeError> for ApiError {
    fn from(e: worktree::WorktreeError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

pub(super) type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Read-only ledger connections, one per read in flight, up to [`MAX_READERS`]: reads
/// never queue behind the writer's lock (SQLite's WAL lets them run beside it).
struct Readers {
    path: PathBuf,
    idle: Mutex<(Vec<Ledger>, usize)>,
    freed: std::sync::Condvar,
}

/// More readers than cores buys nothing; each holds a small page cache.
const MAX_READERS: usize = 8;

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Ledger) -> T) -> Result<T> {
        let taken = {
            let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(reader) = guard.0.pop() {
                    break Some(reader);
                }
                if guard.1 < MAX_READERS {
                    guard.1 += 1;
                    break None;
                }
                guard = self.freed.wait(guard).unwrap_or_else(|p| p.into_inner());
            }
        };
        let reader = match taken {
            Some(r) => r,
            None => Ledger::open_reader(&self.path).map_err(|e| {
                let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                guard.1 -= 1;
                self.freed.notify_one();
                ApiError::internal(format!("cannot open the ledger to read: {e}"))
            })?,
        };
        let out = f(&reader);
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .push(reader);
        self.freed.notify_one();
        Ok(out)
    }
}

pub struct Service {
    ledger: Mutex<Ledger>,
    readers: Readers,
    pub config: Config,
    pub repo: RepoLocation,
    pub worktrees: Worktrees,
    /// The environment for setup and verify commands: an allowlist of the daemon's
    /// (`command::base_env`), never the whole of it.
    pub(super) env: Vec<(String, String)>,
    /// `[commands] run_as`, looked up at start.
    pub(super) run_as: Option<command::RunAs>,
    caps: Caps,
    pub(super) logs: PathBuf,
    pub started_at: Timestamp,
    /// Set when the daemon is stopping: long commands stop at their next check.
    pub stopping: AtomicBool,
    /// One pool refill at a time.
    refilling: Mutex<()>,
    /// Per-task locks for worktree work (see `task_lock`).
    task_locks: Mutex<HashMap<TaskId, Arc<Mutex<()>>>>,
    /// Integration steps recorded since start, and the test-only hook that aborts the
    /// process after the Nth (crash tests).
    pub(super) steps: std::sync::atomic::AtomicU32,
    pub(super) abort_after_steps: Option<u32>,
    /// Who wants to hear about what: the service wakes the background loops.
    pub(super) wake: Wake,
    /// Every committed ledger event to whoever subscribes: per write, its task events in
    /// order, then its queue events.
    committed: broadcast::Sender<Committed>,
    /// Where the last broadcast left off in the ledger's event logs.
    broadcast_marks: Mutex<EventMarks>,
    /// Per integration worktree: whether it may still hold what its last verify made
    /// (see `clean_integration_worktree_later`); shared with the thread that cleans it.
    integration_scratch: Mutex<HashMap<PathBuf, Arc<Mutex<Scratch>>>>,
    /// Keeps the checkout follower (`daemon::checkout`) to one at a time.
    pub(super) following: Mutex<()>,
    /// What earlier conflict checks learned, by commit.
    pub(super) conflict_memo: Mutex<crate::conflicts::Memo>,
    /// Remote claims whose pushed branch a heartbeat asked to follow: the conflict
    /// checker fetches them first, off the heartbeat's path (the remote may be slow).
    pub(super) to_follow: Mutex<BTreeSet<TaskId>>,
}

/// The background loops' wake-ups; the service owns them, so that a change made through
/// any door (the API, the GitHub loop, a restart) wakes the same loops.
#[derive(Debug, Default)]
pub(super) struct Wake {
    /// The worktree job (`daemon::pool_filler`): a claim took a worktree, a task let go
    /// of one or landed.
    pub pool: Arc<Notify>,
    /// The GitHub loop: the ledger changed, or a webhook named a PR.
    pub github: Arc<Notify>,
    /// The checkout follower (`daemon::checkout`): the base moved.
    pub checkout: Arc<Notify>,
    /// The conflict checker (`daemon::conflicts`): a branch or the base moved.
    pub conflicts: Arc<Notify>,
}

/// A ledger event, once committed.
#[derive(Debug, Clone)]
pub enum Committed {
    Task(Event),
    Queue(QueueEvent),
}

/// How many tasks one task may come after.
const MAX_AFTER: usize = 100;

/// How many committed events a slow subscriber may fall behind before it is told it
/// lagged (it then reads the ledger itself).
const BROADCAST_BACKLOG: usize = 1024;

impl Service {
    pub fn new(
        ledger: Ledger,
        config: Config,
        repo: RepoLocation,
        worktrees: Worktrees,
        env: Vec<(String, String)>,
        logs: PathBuf,
        abort_after_steps: Option<u32>,
    ) -> Service {
        let env = command::base_env(&env, &config.commands.env);
        let caps = Caps::from_config(&config);
        let ledger_path = ledger.path().to_owned();
        let marks = ledger.event_marks().unwrap_or_default();
        Service {
            ledger: Mutex::new(ledger),
            readers: Readers {
                path: ledger_path,
                idle: Mutex::new((Vec::new(), 0)),
                freed: std::sync::Condvar::new(),
            },
            config,
            repo,
            worktrees,
            env,
            caps,
            logs,
            started_at: Timestamp::now(),
            stopping: AtomicBool::new(false),
            refilling: Mutex::new(()),
            task_locks: Mutex::new(HashMap::new()),
            steps: std::sync::atomic::AtomicU32::new(0),
            abort_after_steps,
            run_as: None,
            wake: Wake::default(),
            committed: broadcast::channel(BROADCAST_BACKLOG).0,
            broadcast_marks: Mutex::new(marks),
            following: Mutex::new(()),
            conflict_memo: Mutex::default(),
            to_follow: Mutex::default(),
            integration_scratch: Mutex::new(HashMap::new()),
        }
    }

    /// Every ledger event committed from now on: writes in commit order; within one, its
    /// task events, then its queue events.
    pub fn subscribe(&self) -> broadcast::Receiver<Committed> {
        self.committed.subscribe()
    }

    /// Commands run as this user (`[commands] run_as`).
    pub(super) fn with_run_as(mut self, run_as: Option<command::RunAs>) -> Service {
        self.run_as = run_as;
        self
    }

    /// Runs `f` with the ledger locked. The lock is held only inside `f`: a guard kept in
    /// a temporary (a `match` or `for` head) while the body locks again would deadlock.
    pub(super) fn ledger<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> T {
        // A panic while holding the lock cannot leave the database half-written (every
        // change is one transaction), so a poisoned lock is still usable.
        let mut guard = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let before = guard.changes();
        let out = f(&mut guard);
        if guard.changes() != before {
            // Still under the lock, so subscribers see events in commit order.
            self.broadcast(&guard);
        }
        out
    }

    /// Runs `f` on a read-only connection of its own: for requests that only read, so
    /// they never wait for a write in progress.
    /// Sends the events committed since the last broadcast. Nobody listening is fine;
    /// a read that fails leaves them for the next write's broadcast.
    fn broadcast(&self, ledger: &Ledger) {
        let mut marks = self
            .broadcast_marks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match ledger.events_after(*marks) {
            Ok((events, queue_events, now)) => {
                *marks = now;
                // A branch or the base moved (a submit, a landing, a task coming back or
                // leaving): the conflict checker looks again.
                if events.iter().any(|e| e.state.is_some()) {
                    self.wake.conflicts.notify_one();
                }
                for e in events {
                    let _ = self.committed.send(Committed::Task(e));
                }
                for e in queue_events {
                    let _ = self.committed.send(Committed::Queue(e));
                }
            }
            Err(e) => warn!(error = %e, "could not read the events just committed"),
        }
    }

    /// Wakes the GitHub loop.
    pub(super) fn github_wanted(&self) {
        self.wake.github.notify_one();
    }

    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Ledger) -> Result<T, crate::store::LedgerError>,
    ) -> Result<T> {
        Ok(self.readers.with(|l| l.snapshot(f))??)
    }

    /// Answers a read request through `crate::view` (the code the CLI also answers with
    /// when no daemon runs), on a read-only connection, in one read transaction.
    pub(super) fn view<T>(&self, f: impl FnOnce(&Ledger) -> Result<T>) -> Result<T> {
        self.readers.with(|l| l.snapshot(f))?
    }

    pub(super) fn base_tip(&self) -> Result<String> {
        view::base_tip(&self.repo.main_root, &self.config.base)
    }

    // ---- tasks ----------------------------------------------------------------------

    pub fn add_task(&self, req: api::AddTask) -> Result<Task> {
        let title = req.title.trim();
        crate::model::check_task_text(title, &req.body, &req.accept).map_err(ApiError::bad)?;
        crate::model::check_priority(req.priority).map_err(ApiError::bad)?;
        let by = name(&req.by, "--by")?;
        if let Some(request) = &req.request_id {
            check_request_id(request)?;
        }
        let tracked = self.files_at_base()?;
        let subsystems =
            scope::resolve(&req.scope, &self.config, &tracked.files).map_err(ApiError::bad)?;
        let new = NewTask {
            title: title.to_owned(),
            body: req.body,
            accept: req.accept,
            scope: req.scope,
            subsystems,
            priority: req.priority,
            by: Actor::Person(by),
            request_id: req.request_id,
            after: self.existing_tasks(req.after)?,
        };
        let taken = self.task_numbers_in_git()?;
        let task =
            self.ledger(|l| l.add_task(&new, Timestamp::now(), &|id| taken.contains(&id)))?;
        info!(task = %task.id, title = %task.title, "task created");
        Ok(task)
    }

    /// The files tracked at the base branch's tip, which scopes resolve against.
    fn files_at_base(&self) -> Result<git::Tracked> {
        git::files_at_branch(&self.repo.main_root, &self.config.base).map_err(|e| {
            ApiError::refused(format!(
                "cannot read the base branch {:?}: {e}",
                self.config.base
            ))
        })
    }

    /// Creates a whole plan (`switchyard plan FILE`): every task or, when anything in
    /// the file is wrong, none, with every problem located.
    pub fn plan(&self, req: api::Plan) -> Result<api::Planned> {
        let by = Actor::Person(name(&req.by, "--by")?);
        if let Some(request) = &req.request_id {
            check_request_id(request)?;
        }
        let tracked = self.files_at_base()?;
        let scope = |entry: &str| {
            scope::resolve(&[entry.to_owned()], &self.config, &tracked.files).map(|_| ())
        };
        let exists = |id: TaskId| self.read(|l| l.task(id)).is_ok();
        let known = plan::Known {
            scope: &scope,
            task: &exists,
        };
        let planned = plan::parse(&req.file, &req.text, &known).map_err(|problems| {
            ApiError::bad(
                problems
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        let mut tasks = Vec::with_capacity(planned.len());
        for p in planned {
            let entries: Vec<String> = p.scope.iter().map(|s| s.value.clone()).collect();
            let subsystems =
                scope::resolve(&entries, &self.config, &tracked.files).map_err(ApiError::bad)?;
            let deps = p
                .after
                .iter()
                .map(|d| match d.value {
                    plan::Dep::Local(i) => PlanDep::Local(i),
                    plan::Dep::Task(id) => PlanDep::Task(id),
                })
                .collect();
            let new = NewTask {
                title: p.title,
                body: p.request,
                accept: p.accept,
                scope: entries,
                subsystems,
                priority: p.priority,
                by: by.clone(),
                request_id: req.request_id.as_ref().map(|r| format!("{r}/{}", p.name)),
                after: Vec::new(),
            };
            tasks.push((new, p.name, deps));
        }
        let taken = self.task_numbers_in_git()?;
        let created =
            self.ledger(|l| l.add_plan(&tasks, Timestamp::now(), &|id| taken.contains(&id)))?;
        info!(tasks = created.len(), by = %by, "plan created");
        Ok(api::Planned {
            tasks: created
                .iter()
                .zip(&tasks)
                .map(|(t, (_, name, _))| api::PlannedTask {
                    name: name.clone(),
                    id: t.id,
                })
                .collect(),
        })
    }

    /// `after`, sorted and each once, when every one of them is a task (tasks are never
    /// deleted, so what exists now exists when the new task is recorded).
    fn existing_tasks(&self, mut after: Vec<TaskId>) -> Result<Vec<TaskId>> {
        after.sort();
        after.dedup();
        if after.len() > MAX_AFTER {
            return Err(ApiError::bad(format!(
                "a task may come after at most {MAX_AFTER} others"
            )));
        }
        for id in &after {
            match self.read(|l| l.task(*id)) {
                Ok(_) => {}
                Err(ApiError {
                    code: ErrorCode::NotFound,
                    ..
                }) => return Err(ApiError::bad(format!("--after {id}: no task {id}"))),
                Err(e) => return Err(e),
            }
        }
        Ok(after)
    }

    /// Tasks that git remembers: switchyard's branches and refs, and task worktrees
    /// under the root. A new task's id skips these, so it never inherits an old task's
    /// branch and commits (a ledger restored from a backup, or started anew).
    pub(super) fn task_numbers_in_git(&self) -> Result<std::collections::BTreeSet<TaskId>> {
        traces_of_tasks(
            &self.repo.main_root,
            &self.worktrees.root,
            Traces::Everywhere,
        )
    }

    pub fn tasks(&self, filter: api::TaskFilter) -> Result<Vec<Task>> {
        self.view(|l| view::tasks(l, &filter))
    }

    pub fn task(&self, id: TaskId) -> Result<api::TaskDetail> {
        self.view(|l| view::task(l, id))
    }

    pub fn events(&self, id: TaskId) -> Result<Vec<Event>> {
        self.view(|l| view::events(l, id))
    }

    /// The queue's own events (pauses, resumes), oldest first.
    pub fn queue_events(&self) -> Result<api::QueueEvents> {
        self.view(view::queue_events)
    }

    /// Submitted tasks in the order they will be integrated.
    pub fn queue(&self) -> Result<Vec<api::QueueEntry>> {
        self.view(|l| view::queue(l, &self.config, &|| self.base_tip(), Timestamp::now()))
    }

    /// The queue in the order it is integrated (`planner::order`), from one read of the
    /// ledger: with the candidates in flight, the base tip the lander expects, the pause.
    pub(super) fn queue_order(&self) -> Result<QueueNow> {
        self.view(|l| view::queue_now(l, &self.config, &|| self.base_tip()))
    }

    pub fn status(&self) -> Result<api::Status> {
        let (counts, pool, paused, stop) =
            self.read(|l| Ok((l.state_counts()?, l.pool()?, l.paused()?, l.stopped()?)))?;
        let counts: BTreeMap<String, usize> = counts
            .into_iter()
            .map(|(state, n)| (state.as_str().to_owned(), n))
            .collect();
        Ok(api::Status {
            version: api::VERSION.to_owned(),
            pid: std::process::id(),
            repo: self.repo.main_root.display().to_string(),
            base: self.config.base.clone(),
            started_at: self.started_at,
            tasks: counts,
            pool_ready: pool.iter().filter(|m| m.ready).count(),
            paused,
            stop,
        })
    }

    pub fn cancel(&self, id: TaskId, req: api::Cancel) -> Result<Task> {
        let by = Actor::Person(name(&req.by, "--by")?);
        let lock = self.task_lock(id);
        let held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let was = self.ledger(|l| l.task(id))?;
        let task = self.ledger(|l| l.cancel(id, &by, &req.reason, Timestamp::now()))?;
        if was.state == TaskState::Cancelled {
            // A retry of a cancel that went through.
            return Ok(task);
        }
        let _span = info_span!("task", task = %id).entered();
        info!(by = %by, "cancelled");
        self.github_wanted();
        let task = self.let_go_of_worktree(task);
        drop(held);
        // A review under way ends with the task; its checkout goes back.
        self.let_go_of_review_checkout(id);
        Ok(task)
    }

    // ---- claims ---------------------------------------------------------------------

    pub fn claim(&self, req: api::Claim) -> Result<api::Claimed> {
        let agent = name(&req.agent, "--agent")?;
        // Known before anything is recorded: a remote claim without a remote to push to
        // is refused whole.
        let remote = match req.remote {
            true => Some(self.remote_for_claims()?),
            false => None,
        };
        let base_sha = self.base_tip()?;
        // Without an id, a task whose worktree cannot be made must not block the others:
        // the next one that fits is tried.
        let mut failed = Vec::new();
        loop {
            let claimed = self.ledger(|l| {
                l.claim(&ClaimRequest {
                    task: req.id,
                    exclude: &failed,
                    agent: &agent,
                    caps: &self.caps,
                    now: Timestamp::now(),
                    lease: self.config.claims.lease,
                    base_sha: &base_sha,
                    port_is_free: &port_is_free,
                    remote: req.remote,
                })
            });
            let claimed = match claimed {
                Ok(c) => c,
                Err(e) if !failed.is_empty() => {
                    let e = ApiError::from(e);
                    return Err(ApiError::new(
                        e.code,
                        format!(
                            "{}; and no worktree could be made for {}",
                            e.message,
                            failed
                                .iter()
                                .map(|t| t.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let id = claimed.task.id;
            let _span = info_span!("task", task = %id).entered();
            info!(agent = %agent, renewed = claimed.renewed, "claimed");
            // Wait for whatever is letting go of this task's worktree (a release racing
            // this claim), then work from the task as it is now.
            let lock = self.task_lock(id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            let task = self.ledger(|l| l.task(id))?;
            if let Some(remote) = &remote {
                // Nothing to make here: the branch exists locally (the conflict checker and
                // the submission read it), and the executor pushes its work to the remote.
                let ready = git::ensure_branch(
                    &self.repo.main_root,
                    &task.branch,
                    task.base_sha.as_deref().unwrap_or(&base_sha),
                )
                .map_err(ApiError::from)
                .and_then(|_| self.pushed_tip(remote, &task));
                let pushed = match ready {
                    Ok(pushed) => pushed,
                    Err(e) => {
                        // No answer, no claim: the slot goes back, with the reason on
                        // record, as when a worktree cannot be made.
                        warn!(error = %e.message, "the remote claim is given back");
                        let why = Release::WorktreeFailed {
                            error: e.message.clone(),
                            after: None,
                        };
                        let _ =
                            self.ledger(|l| l.release(id, &Actor::Daemon, why, Timestamp::now()));
                        return Err(e);
                    }
                };
                let env = self
                    .task_env(&task)
                    .into_iter()
                    .filter(|(k, _)| k != "SWITCHYARD_WORKTREE")
                    .collect();
                return Ok(api::Claimed {
                    env,
                    env_file: String::new(),
                    base: self.config.base.clone(),
                    renewed: claimed.renewed,
                    warnings: Vec::new(),
                    remote: Some(remote.url.clone()),
                    pushed,
                    task,
                });
            }
            match self.provide_worktree(&task) {
                Ok((task, warnings)) => {
                    let env = self.task_env(&task);
                    let worktree = task.worktree.clone().unwrap_or_default();
                    return Ok(api::Claimed {
                        env: env.into_iter().collect(),
                        env_file: Path::new(&worktree).join(ENV_FILE).display().to_string(),
                        base: self.config.base.clone(),
                        renewed: claimed.renewed,
                        warnings,
                        remote: None,
                        pushed: None,
                        task,
                    });
                }
                Err(e) => {
                    // No worktree, no claim: give the slot back, with the reason on record.
                    warn!(error = %e.message, "no worktree; the claim is given back");
                    let why = Release::WorktreeFailed {
                        error: e.message.clone(),
                        after: None,
                    };
                    let _ = self.ledger(|l| l.release(id, &Actor::Daemon, why, Timestamp::now()));
                    if req.id.is_some() || failed.len() >= MAX_CLAIM_TRIES {
                        return Err(ApiError {
                            code: e.code,
                            message: format!("cannot make a worktree for {id}: {}", e.message),
                        });
                    }
                    failed.push(id);
                }
            }
        }
    }

    pub fn heartbeat(&self, id: TaskId, req: api::ByAgent) -> Result<api::Heartbeat> {
        let agent = name(&req.agent, "--agent")?;
        let task =
            self.ledger(|l| l.heartbeat(id, &agent, Timestamp::now(), self.config.claims.lease))?;
        if task.remote_claim {
            self.to_follow
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
        }
        // The executor may have committed since: look again (this reply says what the
        // last round found).
        self.conflicts_wanted();
        Ok(api::Heartbeat {
            conflicts: self.conflicts_of(Some(id))?,
            task,
        })
    }

    /// The conflict warnings in force, for one task or all.
    pub fn conflicts_of(&self, task: Option<TaskId>) -> Result<Vec<api::ConflictView>> {
        self.view(|l| view::conflicts(l, task))
    }

    pub fn release(&self, id: TaskId, req: api::ByAgent) -> Result<Task> {
        let who = match &req.by {
            Some(by) => Actor::Person(name(by, "--by")?),
            None => Actor::Agent(name(&req.agent, "--agent")?),
        };
        let lock = self.task_lock(id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let was = self.ledger(|l| l.task(id))?;
        let task = self.ledger(|l| l.release(id, &who, Release::Released, Timestamp::now()))?;
        let _span = info_span!("task", task = %id).entered();
        if was.state == TaskState::Open {
            // A retry of a release that went through: its worktree was let go of then.
            return Ok(task);
        }
        info!(by = %who, "released");
        Ok(self.let_go_of_worktree(task))
    }

    /// Returns tasks whose lease ran out to `open`. A task whose worktree is being made
    /// or let go of right now is looked at next time.
    pub fn expire_leases(&self) -> Result<Vec<TaskId>> {
        let candidates = self.ledger(|l| l.expired(Timestamp::now()))?;
        let mut expired = Vec::new();
        for id in candidates {
            let lock = self.task_lock(id);
            let Ok(_held) = lock.try_lock() else { continue };
            let _span = info_span!("task", task = %id).entered();
            let now = Timestamp::now();
            match self.ledger(|l| l.release(id, &Actor::Daemon, Release::LeaseExpired, now)) {
                Ok(task) => {
                    info!("lease expired; the task is open again");
                    self.let_go_of_worktree(task);
                    expired.push(id);
                }
                // Renewed or released in the meantime: nothing to do.
                Err(LedgerError::Refused(..)) => {}
                Err(e) => warn!(error = %e, "could not expire the lease"),
            }
        }
        Ok(expired)
    }

    /// How a task goes back to its executor: with a fresh lease, or to a person at the
    /// attempt limit.
    pub(super) fn back(&self) -> Back {
        Back {
            lease: self.config.claims.lease,
            limit: self.config.queue.max_attempts,
        }
    }

    /// The lock that serializes worktree work for one task: making its worktree, and
    /// letting go of it. Taken before the ledger lock, never after.
    pub(super) fn task_lock(&self, id: TaskId) -> Arc<Mutex<()>> {
        let mut locks = self.task_locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(id).or_default())
    }

    /// The environment of a task's commands and of its env file.
    pub(super) fn task_env(&self, task: &Task) -> Vec<(String, String)> {
        let mut env = vec![
            ("SWITCHYARD_TASK".to_owned(), task.id.to_string()),
            (
                "SWITCHYARD_WORKTREE".to_owned(),
                task.worktree.clone().unwrap_or_default(),
            ),
            ("SWITCHYARD_BRANCH".to_owned(), task.branch.clone()),
            ("SWITCHYARD_BASE".to_owned(), self.config.base.clone()),
        ];
        if let Some(port) = task.port_base {
            env.push(("SWITCHYARD_PORT_BASE".to_owned(), port.to_string()));
            env.push(("SWITCHYARD_PORT_COUNT".to_owned(), PORT_BLOCK.to_string()));
        }
        env
    }

    // ---- worktrees ------------------------------------------------------------------

    /// Gives a claimed task its worktree on its branch: the one it already has, else a
    /// pooled one moved into place, else a fresh `git worktree add`.
    fn provide_worktree(&self, task: &Task) -> Result<(Task, Vec<String>)> {
        let started = Instant::now();
        let target = self.worktrees.task_path(&task.id.to_string());
        let target_str = target.display().to_string();
        let mut warnings = Vec::new();

        if let Some(existing) = &task.worktree
            && Path::new(existing).is_dir()
            && self.is_registered(Path::new(existing))?
            && self.ledger(|l| l.worktree_ready(task.id))?
        {
            // The task's own worktree, kept since an earlier claim: it may hold work, so
            // the branch is checked out only if it is not already, and never forced.
            let dir = Path::new(existing);
            if worktree::current_branch(dir)?.as_deref() != Some(task.branch.as_str()) {
                worktree::switch(dir, &task.branch, false)?;
            }
            worktree::write_env(dir, &self.task_env(task))?;
            return Ok((self.ledger(|l| l.task(task.id))?, warnings));
        }

        let base_sha = match &task.base_sha {
            Some(sha) => sha.clone(),
            None => self.base_tip()?,
        };
        let head = git::ensure_branch(&self.repo.main_root, &task.branch, &base_sha)?;
        let member = self.ledger(|l| l.take_from_pool(task.id, &target_str, Timestamp::now()))?;
        let source = self.prepare(task, &target, member.as_deref(), &head, false)?;
        let mut task = self.ledger(|l| l.task(task.id))?;
        worktree::write_env(&target, &self.task_env(&task))?;
        let skipped =
            worktree::copy_files(&self.repo.main_root, &target, &self.config.worktrees.copy)?;
        for (file, why) in skipped {
            warnings.push(format!("{file} (in [worktrees] copy) {why}; not copied"));
        }
        if source == Source::Fresh
            && let Some(setup) = &self.config.worktrees.setup
        {
            let finished =
                self.run_setup(setup, &target, &self.task_env(&task), &task.id.to_string())?;
            if !finished.succeeded() {
                warnings.push(format!(
                    "setup {:?} failed ({:?}); its log: {}",
                    setup,
                    finished.outcome,
                    finished.log.display()
                ));
                self.ledger(|l| {
                    l.note(
                        task.id,
                        &Actor::Daemon,
                        Evidence::SetupFailed(finished),
                        Timestamp::now(),
                    )
                })?;
            }
        }
        let ms = started.elapsed().as_millis() as u64;
        let evidence = Evidence::WorktreeReady(WorktreeReady {
            path: target_str.clone(),
            branch: task.branch.clone(),
            head: Some(head),
            source,
            ms: Some(ms),
            after: None,
        });
        task = self.ledger(|l| {
            l.set_worktree(
                task.id,
                Some(&target_str),
                true,
                Some(evidence),
                Timestamp::now(),
            )
        })?;
        info!(path = %target_str, source = source.as_str(), ms, "worktree ready");
        Ok((task, warnings))
    }

    pub(super) fn is_registered(&self, dir: &Path) -> Result<bool> {
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        Ok(self
            .worktrees
            .list()?
            .iter()
            .any(|l| l.path == dir || l.path.canonicalize().is_ok_and(|p| p == canonical)))
    }

    /// Puts a worktree on the task's branch at `target`, from a pool member or fresh.
    /// Nobody has worked in it yet, so a forced checkout loses nothing. `resuming` is a
    /// restart finishing an interrupted preparation: the target may already exist.
    fn prepare(
        &self,
        task: &Task,
        target: &Path,
        member: Option<&str>,
        branch_tip: &str,
        resuming: bool,
    ) -> Result<Source> {
        if target.exists() {
            if self.is_registered(target)? {
                if !resuming && task.worktree.as_deref() != Some(&target.display().to_string()) {
                    return Err(ApiError::internal(format!(
                        "{} is another worktree; not touching it",
                        target.display()
                    )));
                }
                worktree::switch(target, &task.branch, true)?;
                if let Some(member) = member {
                    // The member was taken for this task but is not needed: back to the pool.
                    self.ledger(|l| l.pool_add_ready(member, Timestamp::now()))?;
                }
                return Ok(Source::Existing);
            }
            // Not a worktree: someone's directory. Keep it, out of the way.
            let aside = target.with_file_name(format!(
                "{}.stale-{}",
                target
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                Timestamp::now().0
            ));
            warn!(from = %target.display(), to = %aside.display(), "moving a stray directory aside");
            std::fs::rename(target, &aside).map_err(|e| {
                ApiError::internal(format!("cannot move {} aside: {e}", target.display()))
            })?;
        }
        match member {
            Some(member) => {
                self.worktrees.move_to(Path::new(member), target)?;
                worktree::attach(target, &task.branch, branch_tip)?;
                Ok(Source::Pool)
            }
            None => {
                self.worktrees.add_on_branch(target, &task.branch)?;
                Ok(Source::Fresh)
            }
        }
    }

    /// After a release, an expiry or a cancel (right away: the answer says where the
    /// worktree went), and in the background after a landing
    /// (`let_go_of_finished_worktrees`): a clean worktree goes back to the pool; one with
    /// uncommitted work stays with the task.
    pub(super) fn let_go_of_worktree(&self, task: Task) -> Task {
        let Some(path) = task.worktree.clone() else {
            return task;
        };
        let dir = PathBuf::from(&path);
        let clean = match worktree::is_clean(&dir, &self.config.worktrees.copy) {
            Ok(clean) => clean,
            Err(e) => {
                warn!(path = %path, error = %e, "cannot tell whether the worktree is clean; keeping it");
                false
            }
        };
        if !clean {
            let evidence = Evidence::WorktreeKept(WorktreeKept {
                path: path.clone(),
                reason: "uncommitted changes".to_owned(),
            });
            info!(path = %path, "worktree has uncommitted changes; it stays with the task");
            return self
                .ledger(|l| l.note(task.id, &Actor::Daemon, evidence, Timestamp::now()))
                .and_then(|_| self.ledger(|l| l.task(task.id)))
                .unwrap_or(task);
        }
        let _ = std::fs::remove_file(dir.join(ENV_FILE));
        let outcome = self.recycle(&dir);
        let evidence = Evidence::WorktreeRecycled(WorktreeRecycled { path, to: outcome });
        match self
            .ledger(|l| l.set_worktree(task.id, None, false, Some(evidence), Timestamp::now()))
        {
            Ok(task) => task,
            Err(e) => {
                warn!(error = %e, "could not record the recycled worktree");
                task
            }
        }
    }

    /// Detaches a clean worktree and moves it into the pool, or removes it when there is
    /// no pool. Returns where it went, for the event. It joins the pool even when the
    /// pool is full: deleting a large checkout is slow (seconds for 20k files on a busy
    /// disk) and would compete with the queue, and a claim coming meanwhile takes it
    /// instead of a new one. Members beyond the pool's size are deleted once the queue
    /// is idle (`trim_pool`); but a busy queue never lets the pool grow past its size
    /// plus one worktree per candidate in flight: beyond that, it is removed now.
    pub(super) fn recycle(&self, dir: &Path) -> RecycledTo {
        let pool = self.config.worktrees.pool as usize;
        let cap = pool + self.config.queue.max_parallel.get() as usize;
        let pooled = self
            .ledger(|l| l.pool())
            .map(|p| p.len())
            .unwrap_or(usize::MAX);
        if pool > 0 && pooled < cap {
            let to = self.next_pool_path();
            // A pool worktree must carry nothing of its last task into the next one: its
            // ignored files (build output, local data) go too.
            let result = worktree::detach(dir)
                .and_then(|_| worktree::git(dir, &["clean", "-ffdxq"]).map(|_| ()))
                .and_then(|_| self.worktrees.move_to(dir, &to));
            match result {
                Ok(()) => {
                    let to_str = to.display().to_string();
                    if self
                        .ledger(|l| l.pool_add_ready(&to_str, Timestamp::now()))
                        .is_ok()
                    {
                        return RecycledTo::Pool;
                    }
                }
                Err(e) => warn!(error = %e, "could not return the worktree to the pool"),
            }
        }
        match self.worktrees.remove(dir, false) {
            Ok(()) => RecycledTo::Removed,
            Err(e) => {
                warn!(path = %dir.display(), error = %e, "could not remove the worktree");
                RecycledTo::LeftInPlace
            }
        }
    }

    /// The background job's first part, run whenever it is woken (after every landing)
    /// and at its first round after a start: every finished task's worktree that is
    /// still held is let go of, as `let_go_of_worktree` does (a clean one to the pool,
    /// one with uncommitted work kept with the task, said once). The ledger says which
    /// (`worktrees_to_let_go`), so a landing's worktree is never lost to a crash between
    /// `merged` and this. `recheck` (the first round) also looks again at worktrees kept
    /// before: their changes may have been committed or removed since.
    pub fn let_go_of_finished_worktrees(&self, recheck: bool) -> Result<()> {
        for (task, kept) in self.ledger(|l| l.worktrees_to_let_go())? {
            if self.stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
            if kept && !recheck {
                continue;
            }
            let lock = self.task_lock(task.id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            // As it is now that nobody else works on its worktree.
            let task = self.ledger(|l| l.task(task.id))?;
            let Some(path) = task.worktree.clone().filter(|_| task.state.is_final()) else {
                continue;
            };
            let _span = info_span!("task", task = %task.id).entered();
            if kept
                && !worktree::is_clean(Path::new(&path), &self.config.worktrees.copy)
                    .unwrap_or(false)
            {
                // The ledger says so already.
                info!(path = %path, "still has uncommitted changes; it stays with the task");
                continue;
            }
            self.let_go_of_worktree(task);
        }
        Ok(())
    }

    /// The background job's last part: pool members beyond the configured size (clean
    /// worktrees given back while the pool was full), oldest first, and what a crash left
    /// in the trash, are deleted while no task waits to be integrated; otherwise at a
    /// later round.
    pub fn trim_pool(&self) -> Result<()> {
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
            let busy = self.ledger(|l| l.state_counts())?.iter().any(|(state, n)| {
                *n > 0 && matches!(state, TaskState::Queued | TaskState::Verifying)
            });
            if busy {
                return Ok(());
            }
            // What a crash left half deleted goes first.
            if let Err(e) = self.worktrees.empty_trash() {
                warn!(error = %e, "could not empty the trash of deleted worktrees");
            }
            let pool = self.ledger(|l| l.pool())?;
            if pool.len() <= self.config.worktrees.pool as usize {
                return Ok(());
            }
            let Some(member) = pool.into_iter().find(|m| m.ready) else {
                return Ok(());
            };
            // Out of the pool first, so no claim takes it; unless a claim just did.
            if !self.ledger(|l| l.pool_remove(&member.path))? {
                continue;
            }
            let started = Instant::now();
            match self.worktrees.discard(Path::new(&member.path)) {
                Ok(()) => {
                    info!(path = %member.path, ms = started.elapsed().as_millis() as u64, "deleted a pool worktree beyond the pool's size")
                }
                Err(e) => {
                    warn!(path = %member.path, error = %e, "could not delete a pool worktree")
                }
            }
        }
    }

    /// Where running commands note their process groups.
    pub(super) fn running_dir(&self) -> PathBuf {
        self.logs.with_file_name("running")
    }

    /// The daemon's own worktrees, where verify runs: one per candidate that may be
    /// verified at once (`[queue] max_parallel`), each used by one candidate at a time.
    pub(super) fn integration_dir(&self, slot: usize) -> PathBuf {
        match slot {
            0 => self.worktrees.root.join(".integration"),
            n => self.worktrees.root.join(format!(".integration-{n}")),
        }
    }

    fn is_integration_dir(&self, path: &Path) -> bool {
        path.parent() == Some(self.worktrees.root.as_path())
            && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n == ".integration"
                    || n.strip_prefix(".integration-")
                        .is_some_and(|k| k.parse::<u32>().is_ok())
            })
    }

    /// The cleanliness of the integration worktree `dir`; unknown after a start (a
    /// verify may have been cut short), so it is cleaned first.
    fn scratch_of(&self, dir: &Path) -> Arc<Mutex<Scratch>> {
        let mut all = self
            .integration_scratch
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            all.entry(dir.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(Scratch::Used))),
        )
    }

    /// Before a verify: the untracked files the last verify made are gone, cleaned now
    /// if the background has not done it yet (or is doing it: then it is waited for),
    /// and after a start or a verify cut short.
    pub(super) fn integration_worktree_cleaned(&self, dir: &Path) {
        let scratch = self.scratch_of(dir);
        let mut scratch = scratch.lock().unwrap_or_else(|p| p.into_inner());
        if *scratch != Scratch::Clean && dir.is_dir() {
            clean_scratch(dir);
        }
        *scratch = Scratch::Verifying;
    }

    /// After a verify: its untracked files are removed (ignored ones, such as build
    /// caches, stay), so the next verify starts from exactly its commit. `git clean` walks
    /// the whole worktree (about 20 ms for 20k files), so it runs on a thread of its own
    /// while the queue moves the base; the next verify waits for it, or does it itself if
    /// the thread has not started. With `[commands] run_as` it runs now, before the
    /// worktree is taken back from that user.
    pub(super) fn clean_integration_worktree_later(&self, dir: &Path) {
        if self.run_as.is_some() {
            clean_scratch(dir);
            return;
        }
        let scratch = self.scratch_of(dir);
        *scratch.lock().unwrap_or_else(|p| p.into_inner()) = Scratch::Used;
        let dir = dir.to_owned();
        let cleaning = move || {
            let mut scratch = scratch.lock().unwrap_or_else(|p| p.into_inner());
            // Unless the next verify has already taken the worktree (and cleaned it).
            if *scratch == Scratch::Used {
                clean_scratch(&dir);
                *scratch = Scratch::Clean;
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("clean-integration".into())
            .spawn(cleaning)
        {
            warn!(error = %e, "cannot start a thread to clean the integration worktree; the next verify does it");
        }
    }

    fn next_pool_path(&self) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.worktrees
            .pool_dir()
            .join(format!("p{}-{n}", Timestamp::now().0))
    }

    fn run_setup(
        &self,
        setup: &str,
        dir: &Path,
        task_env: &[(String, String)],
        who: &str,
    ) -> Result<command::Finished> {
        let mut env = self.env.clone();
        env.extend(task_env.iter().cloned());
        let log = self
            .logs
            .join(who)
            .join(format!("setup-{}.log", Timestamp::now().0));
        info!(command = setup, log = %log.display(), "running setup");
        let _handed = self.hand_over(dir)?;
        command::run(
            &command::Spec {
                command: setup,
                dir,
                env: &env,
                timeout: self.config.worktrees.setup_timeout,
                log: &log,
                groups: Some(&self.running_dir()),
                run_as: self.run_as.as_ref(),
                supervised: true,
            },
            &self.stopping,
        )
        .map_err(|e| ApiError::internal(format!("cannot run setup: {e}")))
    }

    /// With `[commands] run_as`, the worktree a command runs in becomes that user's, so
    /// the command can build and write in it; it goes back to the daemon's user when the
    /// guard is dropped, so that an executor (or the daemon's next step) finds it as it
    /// was.
    pub(super) fn hand_over<'d>(&self, dir: &'d Path) -> Result<HandedOver<'d>> {
        match &self.run_as {
            Some(user) => {
                let kept = worktree::give_to(dir, user.uid, user.gid)?;
                if kept > 0 {
                    warn!(path = %dir.display(), kept, "some files of the worktree keep their owner (hard links, devices, other filesystems, too deep)");
                }
                Ok(HandedOver(Some(dir)))
            }
            None => Ok(HandedOver(None)),
        }
    }

    /// Tops the pool up to its configured size, one worktree at a time, until full or
    /// stopping. Runs beside claims: only ready members are ever handed out.
    pub fn refill_pool(&self) -> Result<()> {
        let Ok(_one_at_a_time) = self.refilling.try_lock() else {
            return Ok(());
        };
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.ledger(|l| l.pool())?.len() >= self.config.worktrees.pool as usize {
                return Ok(());
            }
            let base = self.base_tip()?;
            let path = self.next_pool_path();
            let path_str = path.display().to_string();
            self.ledger(|l| l.pool_creating(&path_str, Timestamp::now()))?;
            let started = Instant::now();
            let made = self
                .worktrees
                .add_detached(&path, &base)
                .and_then(|_| {
                    let skipped = worktree::copy_files(
                        &self.repo.main_root,
                        &path,
                        &self.config.worktrees.copy,
                    )?;
                    for (file, why) in skipped {
                        warn!(file, %why, "not copied into a pool worktree");
                    }
                    Ok(())
                })
                .map_err(ApiError::from)
                .and_then(|_| match &self.config.worktrees.setup {
                    Some(setup) => {
                        let env = [("SWITCHYARD_WORKTREE".to_owned(), path_str.clone())];
                        let finished = self.run_setup(setup, &path, &env, "pool")?;
                        if finished.succeeded() {
                            Ok(())
                        } else {
                            Err(ApiError::internal(format!(
                                "setup failed ({:?}); its log: {}",
                                finished.outcome,
                                finished.log.display()
                            )))
                        }
                    }
                    None => Ok(()),
                });
            match made {
                Ok(()) => {
                    self.ledger(|l| l.pool_ready(&path_str))?;
                    info!(path = %path_str, ms = started.elapsed().as_millis() as u64, "pool worktree ready");
                }
                Err(e) => {
                    warn!(path = %path_str, error = %e.message, "could not make a pool worktree");
                    let _ = self.worktrees.remove(&path, true);
                    self.ledger(|l| l.pool_remove(&path_str))?;
                    return Err(e);
                }
            }
        }
    }

    // ---- recovery -------------------------------------------------------------------

    /// Brings the worktrees in line with the ledger after a start, whatever state a
    /// crash left: half-made pool members go, interrupted claims get their worktree,
    /// missing task worktrees are made again from their branches, strays under the root
    /// are pooled or removed when clean and reported when not, and expired leases end.
    pub fn reconcile(&self) -> Result<()> {
        for pid in command::kill_leftovers(&self.running_dir()) {
            warn!(
                pid,
                "stopped a process a command of the last daemon left running"
            );
        }
        if self.run_as.is_some() && self.worktrees.root.is_dir() {
            // A crash while a worktree was handed to `[commands] run_as` left it that
            // user's: every worktree comes back to the daemon's user first.
            take_back(&self.worktrees.root);
        }
        for admin in self.worktrees.repair(&self.repo.common_dir) {
            warn!(path = %admin.display(), "removed the entry of a worktree add that was cut short");
        }
        // (What a crash left in `<root>/.trash` is deleted by the worktree job, not here:
        // the socket would wait for it.)
        self.worktrees.prune()?;
        self.clear_stale_locks();
        // Candidates are built again after a restart; their scratch branches go.
        crate::gitcli::remove_scratch_branches(&self.repo.main_root)?;

        // Pool members: only ready ones that exist survive.
        let listed = self.worktrees.list()?;
        for member in self.ledger(|l| l.pool())? {
            let path = PathBuf::from(&member.path);
            let registered = listed.iter().any(|l| l.path == path);
            if !member.ready || !registered {
                self.discard(&path);
                info!(path = %member.path, "dropping a pool worktree that was not finished");
                self.ledger(|l| l.pool_remove(&member.path))?;
            }
        }

        // Each task on its own: one that cannot be repaired is reported and left for the
        // next start, and does not keep the daemon from starting.
        for task in self.ledger(|l| l.unready_worktrees())? {
            let _span = info_span!("task", task = %task.id).entered();
            if let Err(e) = self.finish_interrupted_worktree(&task) {
                warn!(error = %e.message, "could not finish the worktree of an interrupted claim");
                self.give_up_claim(&task, &e.message);
            }
        }
        // Tasks that landed or were cancelled just before a crash, still holding their
        // worktree, are the background job's first round (`let_go_of_finished_worktrees`).
        for task in self.ledger(|l| l.tasks(None))? {
            if task.state.holds_lease() && task.worktree.is_none() && !task.remote_claim {
                // Claimed just before a crash, before any worktree was chosen.
                let _span = info_span!("task", task = %task.id).entered();
                info!("giving an interrupted claim its worktree");
                if let Err(e) = self.provide_worktree(&task) {
                    warn!(error = %e.message, "could not make the worktree");
                    self.give_up_claim(&task, &e.message);
                }
            }
        }
        let listed = self.worktrees.list()?;
        for task in self.ledger(|l| l.tasks(None))? {
            let Some(path) = task.worktree.clone() else {
                continue;
            };
            let dir = PathBuf::from(&path);
            if listed.iter().any(|l| l.path == dir) && dir.is_dir() {
                continue;
            }
            let _span = info_span!("task", task = %task.id).entered();
            if let Err(e) = self.restore_worktree(&task, &dir) {
                warn!(error = %e.message, "could not restore the worktree");
            }
        }
        if let Err(e) = self.adopt_or_remove_strays() {
            warn!(error = %e.message, "could not look at the worktrees under the root");
        }
        self.expire_leases()?;
        // Landings the user's checkout has yet to follow are the checkout loop's first
        // round; before the queue runs, the ledger says where that starts.
        self.ledger(|l| l.init_checkout_followed())?;
        // A local base is judged from the first start on; with a remote, its tip is
        // adopted when the queue first fetches it.
        if self.config.remote.is_none() && self.ledger(|l| l.base_expected())?.is_none() {
            let tip = self.base_tip()?;
            self.ledger(|l| l.adopt_base(&tip, Timestamp::now()))?;
        }
        Ok(())
    }

    /// Git locks that only a process killed mid-write leaves behind: ref locks on the
    /// refs only the daemon writes and on the base, and index and HEAD locks of the worktrees that
    /// nobody works in (pool, integration, unready). We hold the daemon's
    /// lock, and git processes we started died with the daemon, so none of these is ours
    /// and live; a person's git holding the base's lock at this very millisecond is the
    /// one case this could step on.
    fn clear_stale_locks(&self) {
        let base_lock = self
            .repo
            .common_dir
            .join(format!("refs/heads/{}.lock", self.config.base));
        if base_lock.exists() {
            warn!(path = %base_lock.display(), "removing a stale lock on the base");
            let _ = std::fs::remove_file(&base_lock);
        }
        // The queue's scratch branches: only the daemon writes them.
        let scratch = self
            .repo
            .common_dir
            .join(crate::gitcli::SCRATCH_PREFIX.trim_end_matches('/'));
        for lock in std::fs::read_dir(&scratch).into_iter().flatten().flatten() {
            if lock.path().extension().is_some_and(|e| e == "lock") {
                warn!(path = %lock.path().display(), "removing a stale lock on a scratch branch");
                let _ = std::fs::remove_file(lock.path());
            }
        }
        // And the branches of
        // claims whose worktree was not handed out yet (the daemon was creating them).
        let tasks = self.ledger(|l| l.tasks(None)).unwrap_or_default();
        let unready_ids: Vec<TaskId> = self
            .ledger(|l| l.unready_worktrees())
            .map(|ts| ts.into_iter().map(|t| t.id).collect())
            .unwrap_or_default();
        let daemon_only = tasks
            .iter()
            .filter(|t| t.worktree.is_none() || unready_ids.contains(&t.id))
            .map(|t| t.branch.clone());
        for branch in daemon_only {
            let lock = self
                .repo
                .common_dir
                .join(format!("refs/heads/{branch}.lock"));
            if lock.exists() {
                warn!(path = %lock.display(), "removing a stale ref lock");
                let _ = std::fs::remove_file(&lock);
            }
        }
        let unready: Vec<String> = self
            .ledger(|l| l.unready_worktrees())
            .map(|ts| ts.into_iter().filter_map(|t| t.worktree).collect())
            .unwrap_or_default();
        for entry in self.worktrees.list().unwrap_or_default() {
            let ours = self.worktrees.is_pool_path(&entry.path)
                || self.is_integration_dir(&entry.path)
                || unready.iter().any(|u| Path::new(u) == entry.path);
            if !ours {
                continue;
            }
            let admin = std::fs::read_to_string(entry.path.join(".git"))
                .ok()
                .and_then(|t| t.strip_prefix("gitdir:").map(|d| PathBuf::from(d.trim())));
            // A checkout killed mid-way leaves the index's lock, or the lock on the
            // worktree's own HEAD (a detached checkout writes it last).
            for name in ["index.lock", "HEAD.lock"] {
                if let Some(admin) = &admin
                    && admin.join(name).exists()
                {
                    warn!(path = %entry.path.display(), lock = name, "removing a stale lock in a worktree");
                    let _ = std::fs::remove_file(admin.join(name));
                }
            }
        }
    }

    /// A claim interrupted between "decided" and "worktree ready": finish it, or, for a
    /// task no longer claimed, forget the half-made worktree.
    fn finish_interrupted_worktree(&self, task: &Task) -> Result<()> {
        let target = PathBuf::from(task.worktree.as_deref().unwrap_or_default());
        if !task.state.holds_slot() {
            self.ledger(|l| l.set_worktree(task.id, None, false, None, Timestamp::now()))?;
            return Ok(());
        }
        info!("finishing the worktree of an interrupted claim");
        let base = task.base_sha.clone().map_or_else(|| self.base_tip(), Ok)?;
        let tip = git::ensure_branch(&self.repo.main_root, &task.branch, &base)?;
        let source = match self.prepare(task, &target, None, &tip, true) {
            Ok(source) => source,
            Err(e) => {
                // Half made when the daemon died (a worktree add or move cut short). Nobody
                // has worked in it, so it is made again from scratch.
                warn!(error = %e.message, "discarding the half-made worktree and making it again");
                self.discard(&target);
                self.prepare(task, &target, None, &tip, true)?
            }
        };
        worktree::write_env(&target, &self.task_env(task))?;
        let evidence = Evidence::WorktreeReady(WorktreeReady {
            path: target.display().to_string(),
            branch: task.branch.clone(),
            head: None,
            source,
            ms: None,
            after: Some(After::Restart),
        });
        self.ledger(|l| {
            l.set_worktree(
                task.id,
                task.worktree.as_deref(),
                true,
                Some(evidence),
                Timestamp::now(),
            )
        })?;
        Ok(())
    }

    /// Removes a worktree nobody has worked in, whatever state a crash left it in.
    fn discard(&self, dir: &Path) {
        let _ = self.worktrees.remove(dir, true);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
        // A `worktree add` cut short leaves its entry locked ("initializing"), which prune
        // skips: such entries pointing at `dir` are removed by hand.
        let admin = self.repo.common_dir.join("worktrees");
        for entry in std::fs::read_dir(&admin).into_iter().flatten().flatten() {
            let points_here = std::fs::read_to_string(entry.path().join("gitdir"))
                .is_ok_and(|g| Path::new(g.trim()).starts_with(dir));
            if points_here {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let _ = self.worktrees.prune();
    }

    /// A claim that cannot get a worktree is given back, so it does not hold its slots.
    fn give_up_claim(&self, task: &Task, error: &str) {
        if !task.state.holds_lease() {
            return;
        }
        let why = Release::WorktreeFailed {
            error: error.to_owned(),
            after: Some(After::Restart),
        };
        let _ = self.ledger(|l| l.set_worktree(task.id, None, false, None, Timestamp::now()));
        if let Err(e) = self.ledger(|l| l.release(task.id, &Actor::Daemon, why, Timestamp::now())) {
            warn!(error = %e, "could not give the claim back");
        }
    }

    /// A task's worktree that vanished is made again from its branch; an open or
    /// finished task just forgets it.
    fn restore_worktree(&self, task: &Task, dir: &Path) -> Result<()> {
        if task.state.is_final() || task.state == TaskState::Open {
            self.ledger(|l| l.set_worktree(task.id, None, false, None, Timestamp::now()))?;
            return Ok(());
        }
        let base = task.base_sha.clone().map_or_else(|| self.base_tip(), Ok)?;
        let head = git::ensure_branch(&self.repo.main_root, &task.branch, &base)?;
        self.worktrees.add_on_branch(dir, &task.branch)?;
        worktree::write_env(dir, &self.task_env(task))?;
        let path = dir.display().to_string();
        info!(path = %path, "worktree restored from the branch");
        let evidence = Evidence::WorktreeRestored(WorktreeRestored {
            path,
            branch: task.branch.clone(),
            head,
        });
        self.ledger(|l| l.note(task.id, &Actor::Daemon, evidence, Timestamp::now()))?;
        Ok(())
    }

    /// Worktrees under our root that the ledger does not know: clean ones are pooled or
    /// removed, ones with changes are reported and never touched.
    fn adopt_or_remove_strays(&self) -> Result<()> {
        let tasks = self.ledger(|l| l.tasks(None))?;
        let pool: Vec<String> = self
            .ledger(|l| l.pool())?
            .into_iter()
            .map(|m| m.path)
            .collect();
        let reviews = self.ledger(|l| l.review_worktrees())?;
        for entry in self.worktrees.list()? {
            if !entry.path.starts_with(&self.worktrees.root)
                || entry.path.starts_with(self.worktrees.archive_dir())
                || entry.path.starts_with(self.worktrees.kept_dir())
            {
                continue;
            }
            let path = entry.path.display().to_string();
            let known = pool.contains(&path)
                || reviews.contains(&path)
                || self.is_integration_dir(&entry.path)
                || tasks
                    .iter()
                    .any(|t| t.worktree.as_deref() == Some(path.as_str()));
            if known {
                continue;
            }
            let clean =
                worktree::is_clean(&entry.path, &self.config.worktrees.copy).unwrap_or(false);
            if !clean {
                warn!(path = %path, "a worktree under the root that no task owns has uncommitted changes; leaving it alone");
                continue;
            }
            let room = self.ledger(|l| l.pool())?.len() < self.config.worktrees.pool as usize;
            if room && self.worktrees.is_pool_path(&entry.path) && entry.branch.is_none() {
                info!(path = %path, "adopting a stray worktree into the pool");
                self.ledger(|l| l.pool_add_ready(&path, Timestamp::now()))?;
            } else {
                info!(path = %path, "removing a stray clean worktree");
                if let Err(e) = self.worktrees.remove(&entry.path, false) {
                    warn!(path = %path, error = %e, "could not remove it");
                }
            }
        }
        Ok(())
    }
}

/// The integration worktree between verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scratch {
    /// Nothing a verify made is left in it.
    Clean,
    /// A verify ran in it (or the daemon just started): to be cleaned before the next.
    Used,
    /// Taken for a verify (cleaned first); still so if that verify was cut short, so the
    /// next one cleans it too.
    Verifying,
}

fn clean_scratch(dir: &Path) {
    if let Err(e) = worktree::git(dir, &["clean", "-ffdq"]) {
        warn!(error = %e, "could not clean the integration worktree");
    }
}

/// A worktree handed to `[commands] run_as` for a command; given back on drop.
pub(super) struct HandedOver<'d>(Option<&'d Path>);

impl Drop for HandedOver<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            take_back(dir);
        }
    }
}

/// Gives the tree at `dir` back to the daemon's user, from `[commands] run_as`.
fn take_back(dir: &Path) {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if let Err(e) = worktree::give_to(dir, uid, gid) {
        warn!(path = %dir.display(), error = %e, "could not take the worktree back from [commands] run_as");
    }
}

/// Agent and person names, normalized (see [`crate::model::normalize_name`]) so that
/// every comparison and record sees one spelling.
pub(super) fn name(raw: &str, flag: &str) -> Result<String> {
    crate::model::normalize_name(raw).map_err(|e| ApiError::bad(format!("{flag} {e}")))
}

/// Which refs count as a task's traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Traces {
    /// This clone's own: local branches, switchyard's refs, task worktrees. What a lost
    /// ledger leaves behind.
    Local,
    /// Those, and the remotes' branches too: a new task's id must not name a branch that
    /// exists anywhere switchyard pushes.
    Everywhere,
}

/// The tasks that left traces in git: their branches, submitted refs and worktrees.
/// A failure to look is an error, never "no traces": the callers would otherwise hand
/// out ids that exist, or start on a lost ledger.
pub(super) fn traces_of_tasks(
    main_root: &Path,
    worktree_root: &Path,
    which: Traces,
) -> Result<std::collections::BTreeSet<TaskId>> {
    let mut ids = std::collections::BTreeSet::new();
    let mut globs = vec!["refs/heads/switchyard/*", "refs/switchyard/*"];
    if which == Traces::Everywhere {
        globs.push("refs/remotes/*");
    }
    let names = git::ref_names(main_root, &globs)?;
    ids.extend(names.iter().filter_map(|n| TaskId::owning(n)));
    match std::fs::read_dir(worktree_root) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if let Some(id) = entry.file_name().to_str().and_then(TaskId::owning) {
                    ids.insert(id);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ApiError::internal(format!(
                "cannot read {}: {e}",
                worktree_root.display()
            )));
        }
    }
    Ok(ids)
}

/// Whether nothing listens on a port block's first port right now.
/// A client's request id: 1 to 100 printable characters.
fn check_request_id(request: &str) -> Result<()> {
    if request.is_empty()
        || request.chars().count() > crate::model::MAX_NAME_CHARS
        || request.chars().any(char::is_control)
    {
        return Err(ApiError::bad(
            "--request-id must be 1 to 100 printable characters",
        ));
    }
    Ok(())
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

//! The ledger: tasks, their append-only events, and the worktree pool, in SQLite.
//!
//! The database lives in the repository's git directory (`.git/switchyard/ledger.db`),
//! never in the working tree. WAL with `synchronous = FULL`: a committed transaction
//! survives `kill -9` and power loss. Every state change writes the new state and its
//! event in one transaction, and the `events` table refuses updates and deletes.
//!
//! This module knows the schema and nothing else: which task a claim gets is the
//! scheduler's decision, made here inside the claim's transaction so that checking the
//! caps and taking the slot cannot be separated.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde_json::{Value, json};

use crate::api::ErrorCode;
use crate::conflicts::{Found, Side};
pub use crate::model::Step;
use crate::model::evidence::{
    self, After, Attempt, AttemptLimit, Cancelled, ConflictCleared, ConflictWarning, Created,
    IntegrationStarted, LeftBase, LetGo, Merged, NeedsApproval, Paused, PrOpened, PriorityChanged,
    Resumed, ReviewExpired, ReviewStarted, Submitted, Verdict, WorktreeFailed,
};
use crate::model::short_sha as short;
use crate::model::{
    Actor, Blocker, Event, EventKind, Evidence, Pause, QueueEvent, QueueEvidence, ReviewLease,
    Stop, SubsystemName, Task, TaskId, TaskState, Timestamp, task_branch,
};
use crate::queue::planner::Landed;
use crate::scheduler::{self, Blocked, Caps, Load};

fn save_pr(tx: &rusqlite::Transaction<'_>, pr: &PrRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO github_prs (task, number, url, pushed_head, body_digest, check_run, check_head,
             check_digest, last_comment, last_review, seen_updated, merged_noted, closed, reopen,
             check_done)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (task) DO UPDATE SET number = ?2, url = ?3,
             body_digest = ?5, check_run = ?6, check_head = ?7, check_digest = ?8,
             last_comment = ?9, last_review = ?10, seen_updated = ?11, merged_noted = ?12,
             closed = ?13, check_done = ?15",
        // `pushed_head` and `reopen` are written by both the GitHub loop and the queue:
        // only through their own setters, so a stale copy never overwrites them.
        params![
            pr.task.0,
            pr.number as i64,
            pr.url,
            pr.pushed_head,
            pr.body_digest,
            pr.check_run.map(|n| n as i64),
            pr.check_head,
            pr.check_digest,
            pr.last_comment as i64,
            pr.last_review as i64,
            pr.seen_updated,
            pr.merged_noted,
            pr.closed,
            pr.reopen,
            pr.check_done
        ],
    )?;
    Ok(())
}

/// Schema migrations, in order; `PRAGMA user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    title            TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    accept           TEXT    NOT NULL,  -- JSON array of strings
    scope            TEXT    NOT NULL,  -- JSON array of strings, as given
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    branch           TEXT    NOT NULL UNIQUE,
    worktree         TEXT,
    worktree_ready   INTEGER NOT NULL DEFAULT 0,
    agent            TEXT,
    lease_expires_at INTEGER,
    attempt          INTEGER NOT NULL DEFAULT 0,
    port_base        INTEGER UNIQUE,
    base_sha         TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE TABLE task_subsystems (
    task      INTEGER NOT NULL REFERENCES tasks(seq),
    subsystem TEXT    NOT NULL,
    PRIMARY KEY (task, subsystem)
);
CREATE INDEX tasks_by_state ON tasks(state, priority DESC, seq);
CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    task     INTEGER NOT NULL REFERENCES tasks(seq),
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    actor    TEXT    NOT NULL,  -- JSON: {"kind": "agent"|"person"|"daemon", "name"}
    state    TEXT,
    evidence TEXT    NOT NULL   -- JSON object
);
CREATE INDEX events_by_task ON events(task, id);
CREATE TRIGGER events_are_append_only_u BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
CREATE TRIGGER events_are_append_only_d BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
-- Worktrees kept ready for claims. `creating` ones may be half-made after a crash.
CREATE TABLE pool (
    path       TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL,  -- 'creating' | 'ready'
    created_at INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE tasks ADD COLUMN queued_at INTEGER;
ALTER TABLE tasks ADD COLUMN approved_attempt INTEGER;
-- The integration in progress for a task: which step it reached, onto which base tip,
-- and the rebased commit. Steps are recorded before the next one starts, so a restart
-- knows what to finish or redo.
CREATE TABLE integrations (
    task       INTEGER PRIMARY KEY REFERENCES tasks(seq),
    attempt    INTEGER NOT NULL,
    step       TEXT    NOT NULL,  -- started | rebased | verified | base_moved | branch_updated
    onto       TEXT    NOT NULL,
    branch_tip TEXT    NOT NULL,
    head       TEXT,
    updated_at INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE tasks ADD COLUMN submitted_head TEXT;
"#,
    r#"
-- A task's pull request and what switchyard last wrote to GitHub for it, so that work is
-- not redone after a restart and a crash between "created" and "recorded" is detected by
-- looking the PR up by its branch.
CREATE TABLE github_prs (
    task         INTEGER PRIMARY KEY REFERENCES tasks(seq),
    number       INTEGER NOT NULL,
    url          TEXT    NOT NULL,
    pushed_head  TEXT,              -- the branch tip switchyard last pushed
    body_digest  TEXT,              -- of the body last written
    check_run    INTEGER,
    check_head   TEXT,
    check_digest TEXT,
    check_done   INTEGER NOT NULL DEFAULT 0,  -- the run was last written as completed
    last_comment INTEGER NOT NULL DEFAULT 0,  -- the newest comment handled
    last_review  INTEGER NOT NULL DEFAULT 0,  -- the newest review handled
    seen_updated TEXT,              -- GitHub's updated_at when last read
    merged_noted INTEGER NOT NULL DEFAULT 0,
    closed       INTEGER NOT NULL DEFAULT 0,  -- closed by switchyard (task cancelled)
    reopen       INTEGER NOT NULL DEFAULT 0   -- a person closed or retargeted it
);
"#,
    r#"
-- The client's id for the request that created a task: a retry of `task add` with the
-- same id returns that task instead of making a second one.
ALTER TABLE tasks ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX tasks_by_request ON tasks(request_id) WHERE request_id IS NOT NULL;
"#,
    r#"
-- Facts about the ledger itself: `new_ledger` says it was begun on purpose (with
-- `--new-ledger`) in a repository where switchyard had run before.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL  -- JSON
);
-- The queue's own events (a base moved by someone else, a pause, a resume): they
-- belong to no task.
CREATE TABLE queue_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    actor    TEXT    NOT NULL,  -- JSON, as in events
    evidence TEXT    NOT NULL   -- JSON object
);
CREATE TRIGGER queue_events_are_append_only_u BEFORE UPDATE ON queue_events
    BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
CREATE TRIGGER queue_events_are_append_only_d BEFORE DELETE ON queue_events
    BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
"#,
    r#"
-- How many times in a row a step of the task's integration (its start included) failed
-- for a reason that is not the task's (git or the disk); it decides when the task goes
-- back, so it outlives a restart. Any step that succeeds sets it back to 0.
ALTER TABLE tasks ADD COLUMN integration_failures INTEGER NOT NULL DEFAULT 0;
-- A candidate built onto another candidate that failed (step 'failed'): why, kept until
-- it is first in line (then it goes back with this) or built again.
ALTER TABLE integrations ADD COLUMN failure_kind TEXT;
ALTER TABLE integrations ADD COLUMN failure TEXT;  -- JSON
"#,
    r#"
-- Ownership lanes: what a candidate's verified content holds (the base commit `lineage`
-- plus the candidates in `stack` it was built on, a JSON array of task ids, lowest
-- first), and the commit as built and verified (`head` moves on when a candidate is
-- carried onto a newer base without verifying again).
ALTER TABLE integrations ADD COLUMN lineage TEXT;
ALTER TABLE integrations ADD COLUMN stack TEXT;
ALTER TABLE integrations ADD COLUMN built TEXT;
"#,
    r#"
-- Plans: a task may be claimed only once every task it comes after has merged.
CREATE TABLE task_deps (
    task  INTEGER NOT NULL REFERENCES tasks(seq),
    after INTEGER NOT NULL REFERENCES tasks(seq),
    PRIMARY KEY (task, after)
);
CREATE INDEX task_deps_by_after ON task_deps(after);
-- The review stage: who holds a task's review (JSON actor, as in events), until when,
-- its checkout, when the task began waiting for review (the oldest is handed out
-- first), and the commit a reviewer last approved.
ALTER TABLE tasks ADD COLUMN reviewer TEXT;
ALTER TABLE tasks ADD COLUMN review_lease_expires_at INTEGER;
ALTER TABLE tasks ADD COLUMN review_worktree TEXT;
ALTER TABLE tasks ADD COLUMN review_since INTEGER;
ALTER TABLE tasks ADD COLUMN reviewed_head TEXT;
"#,
    r#"
-- Early conflict warnings in force: a task's branch collides with another live task's
-- (`other`, the lower id as `task`) or with the base (`other` = 0), in `paths`.
CREATE TABLE conflicts (
    task  INTEGER NOT NULL REFERENCES tasks(seq),
    other INTEGER NOT NULL,
    paths TEXT    NOT NULL,  -- JSON array
    since INTEGER NOT NULL,
    PRIMARY KEY (task, other)
);
"#,
    r#"
-- `claim --remote`: the executor works in its own clone and pushes the task's branch;
-- no worktree is made for the claim (and none is looked for after a restart).
ALTER TABLE tasks ADD COLUMN remote_claim INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Ports are handed out in blocks of this size, from `PORT_START` up.
pub const PORT_BLOCK: u16 = 10;
const PORT_START: u16 = 20000;
const PORT_BLOCKS: u16 = 4000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no task {0}")]
    NotFound(TaskId),
    /// The request is understood but refused, with the code a program branches on and
    /// the message a person reads.
    #[error("{1}")]
    Refused(ErrorCode, String),
    #[error(
        "the ledger schema is version {found}, newer than this switchyard knows ({known}); upgrade switchyard"
    )]
    TooNew { found: i64, known: i64 },
    #[error(
        "the ledger schema is version {found}, older than this switchyard ({known}); start `switchyard daemon` once to upgrade it"
    )]
    TooOld { found: i64, known: i64 },
    /// No ledger at this path (or an empty file): switchyard never ran here.
    #[error("no ledger at {}", .0.display())]
    Missing(std::path::PathBuf),
    #[error("ledger: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// A ledger error as the API answers it: a missing task is `not_found`, a refusal keeps
/// its code, anything else is the daemon's failure.
impl From<LedgerError> for crate::api::ApiError {
    fn from(e: LedgerError) -> crate::api::ApiError {
        let code = match &e {
            LedgerError::NotFound(_) => ErrorCode::NotFound,
            LedgerError::Refused(code, _) => *code,
            LedgerError::TooNew { .. }
            | LedgerError::TooOld { .. }
            | LedgerError::Missing(_)
            | LedgerError::Sqlite(_) => ErrorCode::Internal,
        };
        crate::api::ApiError::new(code, e.to_string())
    }
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: String,
    pub body: String,
    pub accept: Vec<String>,
    pub scope: Vec<String>,
    pub subsystems: Vec<SubsystemName>,
    pub priority: i64,
    pub by: Actor,
    /// The client's id for this request, if it gave one: a retry returns the same task.
    pub request_id: Option<String>,
    /// Tasks that must merge before this one may be claimed; they exist.
    pub after: Vec<TaskId>,
}

/// What a claim needs besides the task: who, the caps, the clock, and how to tell a
/// port that is taken by something outside switchyard.
pub struct ClaimRequest<'a> {
    pub task: Option<TaskId>,
    /// Tasks not to pick when choosing the next one (their worktree just failed).
    pub exclude: &'a [TaskId],
    pub agent: &'a str,
    pub caps: &'a Caps,
    pub now: Timestamp,
    pub lease: Duration,
    pub base_sha: &'a str,
    pub port_is_free: &'a dyn Fn(u16) -> bool,
    /// `claim --remote`: no worktree here; the executor pushes the branch.
    pub remote: bool,
}

/// A successful claim: the task, and whether it is a renewal of the agent's own claim.
#[derive(Debug)]
pub struct Claimed {
    pub task: Task,
    pub renewed: bool,
}

/// The ids of the newest task event and queue event: where a reader of the event logs
/// left off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventMarks {
    pub task: i64,
    pub queue: i64,
}

/// Why a claim ends without a submission: the event [`Ledger::release`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Its agent let go of it (`released`).
    Released,
    /// Its lease ran out (`lease_expired`).
    LeaseExpired,
    /// No worktree could be made for it (`worktree_failed`).
    WorktreeFailed { error: String, after: Option<After> },
}

impl Release {
    fn kind(&self) -> EventKind {
        match self {
            Release::Released => EventKind::Released,
            Release::LeaseExpired => EventKind::LeaseExpired,
            Release::WorktreeFailed { .. } => EventKind::WorktreeFailed,
        }
    }
}

/// The integration in progress for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub task: TaskId,
    pub attempt: i64,
    pub step: Step,
    /// The base tip it integrates onto.
    pub onto: String,
    /// The task branch's tip when it started.
    pub branch_tip: String,
    /// The rebased commit, once there is one.
    pub head: Option<String>,
    /// At `Step::Failed`: why, as the event the task goes back with.
    pub failure: Option<Evidence>,
    /// What its verified content holds: this base commit, then the changes of `stack`
    /// (the candidates it was built on, lowest first). See `queue::planner::Candidate`.
    pub lineage: String,
    pub stack: Vec<TaskId>,
    /// The commit as built and verified (`head` differs once carried).
    pub built: Option<String>,
    /// When it reached its step.
    pub since: Timestamp,
}

/// What a candidate's content holds as it is built: the base commit `lineage` and the
/// candidates below it (see `Integration::lineage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub lineage: String,
    pub stack: Vec<TaskId>,
}

/// A task's pull request, and what switchyard last wrote for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrRecord {
    pub task: TaskId,
    pub number: u64,
    pub url: String,
    pub pushed_head: Option<String>,
    pub body_digest: Option<String>,
    pub check_run: Option<u64>,
    pub check_head: Option<String>,
    pub check_digest: Option<String>,
    /// The check run was last written as completed.
    pub check_done: bool,
    pub last_comment: u64,
    pub last_review: u64,
    pub seen_updated: Option<String>,
    pub merged_noted: bool,
    /// Closed by switchyard (the task was cancelled).
    pub closed: bool,
    /// A person closed it or changed its base: the next submission reopens it on the base.
    pub reopen: bool,
}

/// A move of the base by the lander, as its `base_moved` event records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    /// The event's id: landings are followed in this order.
    pub event: i64,
    pub task: TaskId,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    pub path: String,
    pub ready: bool,
}

pub struct Ledger {
    conn: Connection,
    /// Where it lives, for read-only connections of its own.
    path: std::path::PathBuf,
}

impl Ledger {
    /// Opens (creating if needed) and migrates the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut ledger = Ledger {
            conn,
            path: path.to_owned(),
        };
        ledger.migrate()?;
        ledger.normalize_agents()?;
        Ok(ledger)
    }

    /// A read-only connection to the ledger at `path`, for requests that only read. In
    /// WAL mode it sees the last committed state and never waits for a writer, nor a
    /// writer for it. (Write methods take `&mut self`; a reader is only lent as `&`.)
    pub fn open_reader(path: &Path) -> Result<Ledger> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // A small page cache each: readers are many, the ledger is small.
        conn.pragma_update(None, "cache_size", -512)?;
        // Read-only twice over: the connection cannot write, and SQLite refuses any
        // statement that would, even one a later change slips in.
        conn.pragma_update(None, "query_only", true)?;
        Ok(Ledger {
            conn,
            path: path.to_owned(),
        })
    }

    /// The ledger at `path` for a reader without a daemon (the CLI's reads when none
    /// runs): a read-only connection ([`Ledger::open_reader`]) to a ledger that must
    /// already exist at exactly the schema this version knows. Never creates, migrates
    /// or writes it: a missing or empty file is [`LedgerError::Missing`], an older
    /// schema [`LedgerError::TooOld`] (a daemon migrates it when it starts), a newer one
    /// [`LedgerError::TooNew`]. A daemon may start meanwhile: WAL lets it write while
    /// this reads.
    pub fn open_offline(path: &Path) -> Result<Ledger> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() > 0 => {}
            Ok(_) => return Err(LedgerError::Missing(path.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LedgerError::Missing(path.to_owned()));
            }
            Err(e) => {
                return Err(LedgerError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot read {}: {e}", path.display())),
                )));
            }
        }
        let ledger = Ledger::open_reader(path)?;
        let found: i64 = ledger
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if found == 0 {
            // A database no daemon ever set up.
            return Err(LedgerError::Missing(path.to_owned()));
        }
        match found.cmp(&known) {
            std::cmp::Ordering::Greater => Err(LedgerError::TooNew { found, known }),
            std::cmp::Ordering::Less => Err(LedgerError::TooOld { found, known }),
            std::cmp::Ordering::Equal => Ok(ledger),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside one read transaction, so that everything it reads comes from the
    /// same commit (a task and its timeline, say), whatever is written meanwhile.
    pub fn snapshot<T, E: From<LedgerError>>(
        &self,
        f: impl FnOnce(&Ledger) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(LedgerError::from)?;
        let out = f(self);
        tx.finish().map_err(LedgerError::from)?;
        out
    }

    /// Whether the ledger at `path` holds nothing: no file, an empty file, or a database
    /// with no task that was not begun on purpose with `--new-ledger`. Read-only: a blank
    /// ledger must not be made into a real one before the daemon decides it may start.
    pub fn is_blank(path: &Path) -> Result<bool> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => {
                return Err(LedgerError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot read {}: {e}", path.display())),
                )));
            }
            Ok(meta) if meta.len() == 0 => return Ok(true),
            Ok(_) => {}
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let has = |table: &str| -> Result<bool> {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )? > 0)
        };
        let tasks = if has("tasks")? {
            conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get::<_, i64>(0))?
        } else {
            0
        };
        let begun_on_purpose = has("meta")?
            && conn.query_row(
                "SELECT COUNT(*) FROM meta WHERE key = 'new_ledger'",
                [],
                |r| r.get::<_, i64>(0),
            )? > 0;
        Ok(tasks == 0 && !begun_on_purpose)
    }

    /// Records a fact about the ledger itself (see the `meta` table).
    pub fn set_meta(&mut self, key: &str, value: &Value) -> Result<()> {
        set_meta(&self.conn, key, Some(value))
    }

    pub fn meta(&self, key: &str) -> Result<Option<Value>> {
        meta(&self.conn, key)
    }

    // ---- the user's checkout, following the landings ---------------------------------

    /// Sets where the checkout follower starts, on a ledger that has never said: after
    /// every landing but one the daemon was still following when it stopped (an
    /// integration recorded at `base_moved`, from a daemon that followed inline).
    pub fn init_checkout_followed(&mut self) -> Result<()> {
        let tx = self.write()?;
        if meta(&tx, META_CHECKOUT)?.is_none() {
            let done: i64 = tx.query_row(
                "SELECT COALESCE(MAX(id), 0) FROM events WHERE kind = ?1
                 AND task NOT IN (SELECT task FROM integrations WHERE step = ?2)",
                params![EventKind::BaseMoved.as_str(), Step::BaseMoved.as_str()],
                |r| r.get(0),
            )?;
            set_meta(&tx, META_CHECKOUT, Some(&json!({"followed": done})))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The landings (`base_moved` events) the user's checkout has not followed yet,
    /// oldest first.
    pub fn landings_to_follow(&self) -> Result<Vec<Landing>> {
        let followed = meta(&self.conn, META_CHECKOUT)?
            .and_then(|v| v["followed"].as_i64())
            .unwrap_or(0);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, task, evidence FROM events WHERE kind = ?1 AND id > ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![EventKind::BaseMoved.as_str(), followed], |r| {
            let raw: Value = json_column(r, 2)?;
            Ok((r.get::<_, i64>(0)?, TaskId(r.get(1)?), raw))
        })?;
        let mut landings = Vec::new();
        for row in rows {
            let (event, task, raw) = row?;
            // A landing an older version wrote in another shape cannot be followed: the
            // checkout catches up at the next one.
            if let Evidence::BaseMoved(moved) = Evidence::from_payload(EventKind::BaseMoved, raw) {
                landings.push(Landing {
                    event,
                    task,
                    from: moved.from,
                    to: moved.to,
                });
            }
        }
        Ok(landings)
    }

    /// The checkout followed `landing`, or had nothing to do: recorded with what it did
    /// (an event on the landing's task), in one transaction.
    pub fn followed(
        &mut self,
        landing: &Landing,
        event: Option<Evidence>,
        now: Timestamp,
    ) -> Result<()> {
        let tx = self.write()?;
        if let Some(evidence) = event {
            append(&tx, landing.task, now, &Actor::Daemon, None, &evidence)?;
        }
        set_meta(
            &tx,
            META_CHECKOUT,
            Some(&json!({"followed": landing.event})),
        )?;
        tx.commit()?;
        Ok(())
    }

    // ---- the base and the queue's pause ---------------------------------------------

    /// The base tip as the lander last left it (or first found it): any other tip is a
    /// move the daemon did not make.
    pub fn base_expected(&self) -> Result<Option<String>> {
        expected_tip(&self.conn)
    }

    /// The speculation window the queue last adapted to (`queue::planner::adapt`), if
    /// it ever did.
    pub fn window(&self) -> Result<Option<u32>> {
        Ok(meta(&self.conn, META_WINDOW)?.and_then(|v| v["window"].as_u64().map(|w| w as u32)))
    }

    /// The failure rate the window was adapted from (`queue::planner::adapt`).
    pub fn failure_rate(&self) -> Result<Option<f64>> {
        Ok(meta(&self.conn, META_WINDOW)?.and_then(|v| v["failure_rate"].as_f64()))
    }

    pub fn set_window(&mut self, window: u32, failure_rate: f64) -> Result<()> {
        let value = json!({"window": window, "failure_rate": failure_rate});
        set_meta(&self.conn, META_WINDOW, Some(&value))
    }

    /// Takes `tip` as the base the daemon found, the first time it looks.
    pub fn adopt_base(&mut self, tip: &str, now: Timestamp) -> Result<()> {
        set_meta(
            &self.conn,
            META_BASE,
            Some(&json!({"tip": tip, "since": now, "adopted": true})),
        )
    }

    pub fn paused(&self) -> Result<Option<Pause>> {
        Ok(meta(&self.conn, META_PAUSED)?.and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Pauses the queue, with its event, and notes on each of `affected` (merged tasks
    /// whose commit left the base) why.
    pub fn pause(&mut self, pause: &Pause, affected: &[(TaskId, LeftBase)]) -> Result<()> {
        let tx = self.write()?;
        append_queue_event(&tx, pause.since, &pause.by, &pause.what)?;
        set_meta(&tx, META_PAUSED, Some(&json!(pause)))?;
        for (id, evidence) in affected {
            append(
                &tx,
                *id,
                pause.since,
                &Actor::Daemon,
                None,
                &Evidence::LeftBase(evidence.clone()),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The person's pause in force, if any (`switchyard pause`).
    pub fn stopped(&self) -> Result<Option<Stop>> {
        stopped(&self.conn)
    }

    /// A person pulls the stop switch; a pause already in force is replaced (a new
    /// reason, or another part), and the same pause again records nothing.
    pub fn stop(&mut self, stop: &Stop) -> Result<Stop> {
        let tx = self.write()?;
        if let Some(now) = stopped(&tx)?
            && now.by == stop.by
            && now.reason == stop.reason
            && now.only == stop.only
        {
            return Ok(now);
        }
        let evidence = QueueEvidence::Paused(Paused {
            reason: stop.reason.clone(),
            only: stop.only,
        });
        append_queue_event(&tx, stop.since, &stop.by, &evidence)?;
        set_meta(&tx, META_STOP, Some(&json!(stop)))?;
        tx.commit()?;
        Ok(stop.clone())
    }

    /// A person resumes: their pause ends, and a queue paused by a move of the base
    /// accepts `tip` as the base. Refused when nothing is paused.
    pub fn resume(&mut self, by: &Actor, tip: &str, now: Timestamp) -> Result<Resumed> {
        let tx = self.write()?;
        let paused = meta(&tx, META_PAUSED)?.and_then(|v| serde_json::from_value::<Pause>(v).ok());
        let stop = stopped(&tx)?;
        if paused.is_none() && stop.is_none() {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                "the queue is not paused".into(),
            ));
        }
        let was = expected_tip(&tx)?;
        let resumed = Resumed {
            base: paused.is_some().then(|| tip.to_owned()),
            was: paused.is_some().then_some(was).flatten(),
            paused: paused.clone().map(Box::new),
            stop: stop.map(Box::new),
        };
        append_queue_event(&tx, now, by, &QueueEvidence::Resumed(resumed.clone()))?;
        if paused.is_some() {
            set_meta(
                &tx,
                META_BASE,
                Some(&json!({"tip": tip, "since": now, "accepted_by": by})),
            )?;
            set_meta(&tx, META_PAUSED, None)?;
        }
        set_meta(&tx, META_STOP, None)?;
        tx.commit()?;
        Ok(resumed)
    }

    /// The queue's own events, oldest first.
    pub fn queue_events(&self) -> Result<Vec<QueueEvent>> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, kind, actor, evidence FROM queue_events ORDER BY id")?;
        let rows = stmt.query_map([], queue_event_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Rows this connection changed since it was opened: a write since the last look
    /// changes it, a read does not.
    pub fn changes(&self) -> u64 {
        self.conn.total_changes()
    }

    /// Where the event logs end now.
    pub fn event_marks(&self) -> Result<EventMarks> {
        let newest = |table: &str| -> Result<i64> {
            Ok(self.conn.query_row(
                &format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )?)
        };
        Ok(EventMarks {
            task: newest("events")?,
            queue: newest("queue_events")?,
        })
    }

    /// The events committed after `marks`, oldest first, and where the logs end now.
    pub fn events_after(
        &self,
        marks: EventMarks,
    ) -> Result<(Vec<Event>, Vec<QueueEvent>, EventMarks)> {
        // Cached: this runs after every write.
        let mut stmt = self.conn.prepare_cached(
            "SELECT task, at, kind, actor, state, evidence, id FROM events WHERE id > ?1 ORDER BY id",
        )?;
        let mut task = marks.task;
        let events = stmt
            .query_map([marks.task], |r| {
                task = task.max(r.get(6)?);
                event_from_row(r)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, kind, actor, evidence, id FROM queue_events WHERE id > ?1 ORDER BY id",
        )?;
        let mut queue = marks.queue;
        let queue_events = stmt
            .query_map([marks.queue], |r| {
                queue = queue.max(r.get(4)?);
                queue_event_from_row(r)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((events, queue_events, EventMarks { task, queue }))
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(LedgerError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Ledgers written before names were normalized may hold `Alice` where the daemon
    /// now compares `alice`: rewritten once, so a claim survives the upgrade.
    fn normalize_agents(&mut self) -> Result<()> {
        let tx = self.write()?;
        let held: Vec<(i64, String)> = {
            let mut stmt = tx.prepare("SELECT seq, agent FROM tasks WHERE agent IS NOT NULL")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        for (seq, agent) in held {
            if let Ok(normal) = crate::model::normalize_name(&agent)
                && normal != agent
            {
                tx.execute(
                    "UPDATE tasks SET agent = ?1 WHERE seq = ?2",
                    params![normal, seq],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn write(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Creates a task. Its id is the next one that `id_taken` does not refuse: ids are
    /// never reused for a branch that exists already (a ledger restored from a backup, or
    /// started anew, must not hand an old task's branch and commits to a new task).
    pub fn add_task(
        &mut self,
        new: &NewTask,
        now: Timestamp,
        id_taken: &dyn Fn(TaskId) -> bool,
    ) -> Result<Task> {
        let tx = self.write()?;
        if let Some(request) = &new.request_id {
            let earlier: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM tasks WHERE request_id = ?1",
                    [request],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(seq) = earlier {
                let task = load_task(&tx, TaskId(seq))?;
                let same = task.title == new.title
                    && task.body == new.body
                    && task.accept == new.accept
                    && task.scope == new.scope
                    && task.priority == new.priority
                    && task.after == new.after;
                if !same {
                    return Err(LedgerError::Refused(
                        ErrorCode::Conflict,
                        format!(
                            "request id {request:?} already made {} ({:?}); use a new id for a new task",
                            task.id, task.title
                        ),
                    ));
                }
                return Ok(task);
            }
        }
        let id = insert_task(&tx, new, None, now, id_taken)?;
        insert_deps(&tx, id, &new.after)?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// Creates a whole plan in one transaction: every task or none. `after` of each
    /// may name existing tasks and, through [`PlanDep::Local`], tasks of the plan (by
    /// their index); `names` are the plan's local names, recorded with each task.
    pub fn add_plan(
        &mut self,
        tasks: &[(NewTask, String, Vec<PlanDep>)],
        now: Timestamp,
        id_taken: &dyn Fn(TaskId) -> bool,
    ) -> Result<Vec<Task>> {
        let tx = self.write()?;
        // A retry of a plan that was made (its reply lost): the same tasks, by the
        // request ids the first run gave them.
        if let Some((first, _, _)) = tasks.first()
            && let Some(request) = &first.request_id
            && let Some(seq) = tx
                .query_row(
                    "SELECT seq FROM tasks WHERE request_id = ?1",
                    [request],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
        {
            let mut made = Vec::with_capacity(tasks.len());
            for (new, _, _) in tasks {
                let earlier: Option<i64> = tx
                    .query_row(
                        "SELECT seq FROM tasks WHERE request_id = ?1",
                        [&new.request_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                match earlier.map(|seq| load_task(&tx, TaskId(seq))).transpose()? {
                    Some(task) if task.title == new.title => made.push(task),
                    _ => {
                        return Err(LedgerError::Refused(
                            ErrorCode::Conflict,
                            format!(
                                "this plan's request id already made another plan (its first task is {}); use a new id for a new plan",
                                TaskId(seq)
                            ),
                        ));
                    }
                }
            }
            return Ok(made);
        }
        let mut ids: Vec<TaskId> = Vec::with_capacity(tasks.len());
        // Ids first, in file order, so that a task may come after one written below it.
        for _ in tasks {
            let after = ids.last().copied();
            ids.push(next_id(&tx, after, id_taken)?);
        }
        let mut all_after = Vec::with_capacity(tasks.len());
        for (i, (new, name, deps)) in tasks.iter().enumerate() {
            let mut new = new.clone();
            for dep in deps {
                let after = match dep {
                    PlanDep::Local(j) => ids[*j],
                    PlanDep::Task(id) => {
                        load_task(&tx, *id)?;
                        *id
                    }
                };
                if !new.after.contains(&after) {
                    new.after.push(after);
                }
            }
            new.after.sort();
            let id = ids[i];
            insert_task(&tx, &new, Some((id, name)), now, &|_| false)?;
            all_after.push((id, new.after));
        }
        // Once every task of the plan exists: a task may come after one below it.
        for (id, after) in &all_after {
            insert_deps(&tx, *id, after)?;
        }
        let created = ids
            .iter()
            .map(|id| load_task(&tx, *id))
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(created)
    }

    pub fn task(&self, id: TaskId) -> Result<Task> {
        load_task(&self.conn, id)
    }

    /// Tasks, optionally in one state, by id.
    pub fn tasks(&self, state: Option<TaskState>) -> Result<Vec<Task>> {
        load_tasks(&self.conn, state.map(|s| vec![s]).as_deref())
    }

    /// The tasks where `name` (an agent or a person) took a role, by the events that
    /// record it: created (planner), claimed (executor), a review taken or given
    /// (reviewer), approved (approver).
    pub fn tasks_with_role(&self, kinds: &[EventKind], name: &str) -> Result<Vec<TaskId>> {
        let kinds = json!(kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>()).to_string();
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT task FROM events
             WHERE kind IN (SELECT value FROM json_each(?1)) AND json_extract(actor, '$.name') = ?2
             ORDER BY task",
        )?;
        let rows = stmt.query_map(params![kinds, name], |r| r.get::<_, i64>(0).map(TaskId))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Tasks in any of `states`, by id.
    pub fn tasks_in(&self, states: &[TaskState]) -> Result<Vec<Task>> {
        load_tasks(&self.conn, Some(states))
    }

    /// How many tasks are in each state.
    pub fn state_counts(&self) -> Result<Vec<(TaskState, usize)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state")?;
        let rows = stmt.query_map([], |r| {
            Ok((state_column(r, 0)?, r.get::<_, i64>(1)? as usize))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A task's events, oldest first.
    pub fn events(&self, id: TaskId) -> Result<Vec<Event>> {
        load_task(&self.conn, id)?;
        let mut stmt = self.conn.prepare(
            "SELECT task, at, kind, actor, state, evidence FROM events WHERE task = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id.0], event_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest event of `kind` for a task.
    pub fn last_event(&self, id: TaskId, kind: EventKind) -> Result<Option<Event>> {
        last_event(&self.conn, id, Newest::Of(kind))
    }

    /// Claims the given task, or the next one that fits the caps. Checking the caps and
    /// taking the slot happen in one write transaction.
    pub fn claim(&mut self, req: &ClaimRequest<'_>) -> Result<Claimed> {
        let tx = self.write()?;
        let holding = load_tasks(&tx, Some(&slot_states()))?;
        let load = Load::of(&holding);
        // The agent's own claim, asked for again: a retry (its reply may have been lost
        // to a crash), so the lease is renewed and the same claim handed back. Without an
        // id, any task the agent holds counts: a retry of an id-less claim must not take
        // a second task and strand the first for its lease.
        let own = match req.task {
            Some(id) => Some(load_task(&tx, id)?),
            None => holding
                .iter()
                .find(|t| t.state.holds_lease() && t.agent.as_deref() == Some(req.agent))
                .cloned(),
        }
        .filter(|t| t.state.holds_lease() && t.agent.as_deref() == Some(req.agent));
        if let Some(own) = own {
            // Renewed only as it was made: a claim with a worktree here is not handed
            // back as a remote one, nor the other way (and its lease is left alone).
            if own.remote_claim != req.remote {
                let (id, agent) = (own.id, req.agent);
                return Err(LedgerError::Refused(
                    ErrorCode::WrongState,
                    match own.remote_claim {
                        true => format!(
                            "{agent} holds {id} as a remote claim (no worktree here); claim it with --remote, or release it first"
                        ),
                        false => format!(
                            "{agent} holds {id} with a worktree here ({}); release it first to claim it with --remote",
                            own.worktree.as_deref().unwrap_or("-")
                        ),
                    },
                ));
            }
            let expires = req.now.plus(req.lease);
            tx.execute(
                "UPDATE tasks SET lease_expires_at = ?1, updated_at = ?2 WHERE seq = ?3",
                params![expires.0, req.now.0, own.id.0],
            )?;
            let task = load_task(&tx, own.id)?;
            tx.commit()?;
            return Ok(Claimed {
                task,
                renewed: true,
            });
        }
        if let Some(stop) = stopped(&tx)?
            && stop.stops_claims()
        {
            return Err(LedgerError::Refused(
                ErrorCode::Paused,
                format!("nothing is handed out: {}", stop.line()),
            ));
        }
        let task = match req.task {
            Some(id) => {
                let task = load_task(&tx, id)?;
                if task.state != TaskState::Open {
                    return Err(LedgerError::Refused(
                        ErrorCode::WrongState,
                        not_claimable(&task),
                    ));
                }
                if !task.blocked_by.is_empty() {
                    return Err(LedgerError::Refused(
                        ErrorCode::Blocked,
                        format!(
                            "cannot claim {id}: it {}",
                            Blocker::describe(&task.blocked_by)
                        ),
                    ));
                }
                scheduler::fits(&task.subsystems, &load, req.caps).map_err(|why| {
                    LedgerError::Refused(ErrorCode::CapFull, format!("cannot claim {id}: {why}"))
                })?;
                task
            }
            None => {
                let mut open = load_tasks(&tx, Some(&[TaskState::Open]))?;
                open.retain(|t| !req.exclude.contains(&t.id));
                let (ready, blocked): (Vec<Task>, Vec<Task>) =
                    open.into_iter().partition(|t| t.blocked_by.is_empty());
                let open = ready;
                if open.is_empty() && !blocked.is_empty() {
                    let parts: Vec<String> = blocked
                        .iter()
                        .take(5)
                        .map(|t| format!("{} {}", t.id, Blocker::describe(&t.blocked_by)))
                        .collect();
                    return Err(LedgerError::Refused(
                        ErrorCode::Blocked,
                        format!(
                            "nothing can be claimed: {} open task(s), all waiting for others ({}{})",
                            blocked.len(),
                            parts.join("; "),
                            if blocked.len() > 5 { "; …" } else { "" }
                        ),
                    ));
                }
                if open.is_empty() {
                    return Err(LedgerError::Refused(
                        ErrorCode::NothingToClaim,
                        "no open tasks to claim".into(),
                    ));
                }
                match scheduler::pick(&open, &load, req.caps) {
                    Ok(task) => task.clone(),
                    Err(blocked) => {
                        return Err(LedgerError::Refused(
                            ErrorCode::CapFull,
                            describe_blocked(&blocked),
                        ));
                    }
                }
            }
        };
        let port = match task.port_base {
            Some(p) => p,
            None => free_port_block(&tx, req.port_is_free)?,
        };
        let expires = req.now.plus(req.lease);
        tx.execute(
            "UPDATE tasks SET state = 'claimed', agent = ?1, lease_expires_at = ?2, port_base = ?3,
                 base_sha = COALESCE(base_sha, ?4), updated_at = ?5, remote_claim = ?7
             WHERE seq = ?6",
            params![
                req.agent,
                expires.0,
                port,
                req.base_sha,
                req.now.0,
                task.id.0,
                req.remote,
            ],
        )?;
        let evidence = Evidence::Claimed(evidence::Claimed {
            agent: req.agent.to_owned(),
            lease_expires_at: expires,
            branch: task.branch.clone(),
            base_sha: task.base_sha.as_deref().unwrap_or(req.base_sha).to_owned(),
            port_base: port,
            remote: req.remote,
        });
        let by = Actor::Agent(req.agent.to_owned());
        append(
            &tx,
            task.id,
            req.now,
            &by,
            Some(TaskState::Claimed),
            &evidence,
        )?;
        let task = load_task(&tx, task.id)?;
        tx.commit()?;
        Ok(Claimed {
            task,
            renewed: false,
        })
    }

    /// Renews the lease of the agent's claim.
    pub fn heartbeat(
        &mut self,
        id: TaskId,
        agent: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        check_holder(&task, agent)?;
        tx.execute(
            "UPDATE tasks SET lease_expires_at = ?1, updated_at = ?2 WHERE seq = ?3",
            params![now.plus(lease).0, now.0, id.0],
        )?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// Gives a claimed task back, to `open`: on purpose (`released`, by its agent),
    /// because its lease ran out (`lease_expired`), or because no worktree could be made
    /// for it (`worktree_failed`), both by the daemon. Branch, commits and worktree stay.
    pub fn release(
        &mut self,
        id: TaskId,
        by: &Actor,
        why: Release,
        now: Timestamp,
    ) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        let kind = why.kind();
        if kind == EventKind::Released && !task.state.holds_lease() && is_replay(&tx, id, kind, by)?
        {
            return Ok(task);
        }
        // A task at the attempt limit waits for a person, who may give it to someone
        // else by releasing it.
        let at_limit = task.state == TaskState::AwaitingApproval
            && last_event(&tx, id, Newest::Change)?
                .is_some_and(|e| e.kind() == EventKind::AttemptLimit);
        match by {
            Actor::Agent(agent) => check_holder(&task, agent)?,
            Actor::Person(_) if at_limit => {}
            Actor::Daemon | Actor::Person(_) if !task.state.holds_lease() => {
                return Err(LedgerError::Refused(
                    ErrorCode::WrongState,
                    format!("{id} is {}, not claimed", task.state),
                ));
            }
            Actor::Daemon | Actor::Person(_) => {}
        }
        // Checked again here, inside the write transaction: between the daemon's look at
        // the clock and now, the holder may have renewed, or released and someone else
        // claimed. Only a lease that is still out may expire.
        if kind == EventKind::LeaseExpired && task.lease_expires_at.is_none_or(|t| t > now) {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id}'s lease was renewed"),
            ));
        }
        tx.execute(
            "UPDATE tasks SET state = 'open', agent = NULL, lease_expires_at = NULL, port_base = NULL,
                 updated_at = ?1 WHERE seq = ?2",
            params![now.0, id.0],
        )?;
        // Who held the claim, and until when: the claim is gone from the task after this.
        let (agent, lease_expires_at) = (task.agent.clone(), task.lease_expires_at);
        let evidence = match why {
            Release::Released => Evidence::Released(LetGo {
                agent,
                lease_expires_at,
            }),
            Release::LeaseExpired => Evidence::LeaseExpired(LetGo {
                agent,
                lease_expires_at,
            }),
            Release::WorktreeFailed { error, after } => Evidence::WorktreeFailed(WorktreeFailed {
                error,
                after,
                agent,
                lease_expires_at,
            }),
        };
        append(&tx, id, now, by, Some(TaskState::Open), &evidence)?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// The executor asks for integration: the task goes to `to` (queued, or awaiting a
    /// person's approval) as attempt n+1.
    pub fn submit(
        &mut self,
        id: TaskId,
        agent: &str,
        head: &str,
        to: TaskState,
        evidence: Submitted,
        now: Timestamp,
    ) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        check_holder(&task, agent)?;
        let queued_at = (to == TaskState::Queued).then_some(now.0);
        let review_since = (to == TaskState::AwaitingReview).then_some(now.0);
        tx.execute(
            "UPDATE tasks SET state = ?1, attempt = attempt + 1, queued_at = ?2, submitted_head = ?3,
                 review_since = ?4, updated_at = ?5 WHERE seq = ?6",
            params![to.as_str(), queued_at, head, review_since, now.0, id.0],
        )?;
        // The ledger counts attempts, inside this transaction.
        let evidence = Evidence::Submitted(Submitted {
            attempt: task.attempt + 1,
            ..evidence
        });
        append(
            &tx,
            id,
            now,
            &Actor::Agent(agent.to_owned()),
            Some(to),
            &evidence,
        )?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// A person's yes at a checkpoint: on to `to` (the queue, or the review stage when
    /// the change needs a review of its commit). At the attempt limit, the yes is for
    /// another round: back to the executor, lease renewed.
    pub fn approve(
        &mut self,
        id: TaskId,
        by: &Actor,
        to: TaskState,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        if task.state != TaskState::AwaitingApproval {
            let approved_this_attempt = last_event(&tx, id, Newest::Of(EventKind::Approved))?
                .is_some_and(|e| {
                    let attempt = match e.what {
                        Evidence::Approved(a) => Some(a.attempt),
                        _ => None,
                    };
                    e.by == *by && attempt == Some(task.attempt)
                });
            // The same approval again (its reply lost): the answer it got the first time,
            // with the task as it is now, landed perhaps.
            if approved_this_attempt
                && (task.approved_attempt == Some(task.attempt)
                    || task.state == TaskState::Returned)
            {
                return Ok(task);
            }
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} is {}, not awaiting approval", task.state),
            ));
        }
        if let (Actor::Person(who), Some(agent)) = (by, &task.agent)
            && who == agent
        {
            return Err(LedgerError::Refused(
                ErrorCode::NotAllowed,
                format!("{who} is {id}'s executor and cannot approve its own change"),
            ));
        }
        let another_round = last_event(&tx, id, Newest::Change)?
            .is_some_and(|e| e.kind() == EventKind::AttemptLimit);
        let evidence = Evidence::Approved(Attempt {
            attempt: task.attempt,
        });
        if another_round {
            tx.execute(
                "UPDATE tasks SET state = 'returned', lease_expires_at = ?1, updated_at = ?2
                 WHERE seq = ?3",
                params![now.plus(lease).0, now.0, id.0],
            )?;
            append(&tx, id, now, by, Some(TaskState::Returned), &evidence)?;
        } else {
            let review_since = (to == TaskState::AwaitingReview).then_some(now.0);
            let queued_at = (to == TaskState::Queued).then_some(now.0);
            tx.execute(
                "UPDATE tasks SET state = ?1, approved_attempt = attempt, queued_at = ?2,
                     review_since = COALESCE(?3, review_since), updated_at = ?4 WHERE seq = ?5",
                params![to.as_str(), queued_at, review_since, now.0, id.0],
            )?;
            append(&tx, id, now, by, Some(to), &evidence)?;
        }
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    // ---- the review stage ------------------------------------------------------------

    /// Hands `reviewer` the oldest task awaiting review that nobody holds and that it did
    /// not execute, under a lease; or, when it holds one already, that one again with
    /// its lease renewed (a retry never takes a second review). `worktree` names the
    /// checkout for a task, recorded before it is made.
    pub fn review_next(
        &mut self,
        reviewer: &Actor,
        lease: Duration,
        worktree: &dyn Fn(TaskId) -> String,
        now: Timestamp,
    ) -> Result<(Task, bool)> {
        let tx = self.write()?;
        let waiting = load_tasks(&tx, Some(&[TaskState::AwaitingReview]))?;
        let expires = now.plus(lease);
        if let Some(own) = waiting
            .iter()
            .find(|t| t.review.as_ref().is_some_and(|r| r.reviewer == *reviewer))
        {
            tx.execute(
                "UPDATE tasks SET review_lease_expires_at = ?1, updated_at = ?2 WHERE seq = ?3",
                params![expires.0, now.0, own.id.0],
            )?;
            let task = load_task(&tx, own.id)?;
            tx.commit()?;
            return Ok((task, true));
        }
        if let Some(stop) = stopped(&tx)?
            && stop.stops_claims()
        {
            return Err(LedgerError::Refused(
                ErrorCode::Paused,
                format!("no review is handed out: {}", stop.line()),
            ));
        }
        let name = actor_name(reviewer);
        let mut free = Vec::new();
        let mut own_work = Vec::new();
        for t in waiting.iter().filter(|t| t.review.is_none()) {
            if executors(&tx, t.id)?
                .iter()
                .any(|e| Some(e.as_str()) == name)
            {
                own_work.push(t.id);
                continue;
            }
            // The oldest first: by when it began waiting for a review.
            let since: i64 = tx.query_row(
                "SELECT COALESCE(review_since, updated_at) FROM tasks WHERE seq = ?1",
                [t.id.0],
                |r| r.get(0),
            )?;
            free.push((since, t));
        }
        free.sort_by_key(|(since, t)| (*since, t.id));
        let free: Vec<&Task> = free.into_iter().map(|(_, t)| t).collect();
        let Some(task) = free.first() else {
            let why = match (waiting.len(), own_work.len()) {
                (0, _) => "no task is awaiting review".to_owned(),
                (_, 0) => format!(
                    "nothing to review: the {} task(s) awaiting review are being reviewed",
                    waiting.len()
                ),
                (_, n) => format!(
                    "nothing to review: {n} task(s) awaiting review are your own work ({}), \
                     the others are being reviewed",
                    own_work
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(LedgerError::Refused(ErrorCode::NothingToReview, why));
        };
        let id = task.id;
        let (commit, merge_base) = submission(&tx, task)?;
        let path = worktree(id);
        tx.execute(
            "UPDATE tasks SET reviewer = ?1, review_lease_expires_at = ?2, review_worktree = ?3,
                 updated_at = ?4 WHERE seq = ?5",
            params![json!(reviewer).to_string(), expires.0, path, now.0, id.0],
        )?;
        let evidence = Evidence::ReviewStarted(ReviewStarted {
            attempt: task.attempt,
            commit,
            merge_base,
            worktree: path,
            lease_expires_at: expires,
        });
        append(&tx, id, now, reviewer, None, &evidence)?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok((task, false))
    }

    /// The commit under review and its merge base with the base, from the submission.
    pub fn submission_of(&self, task: &Task) -> Result<(String, String)> {
        submission(&self.conn, task)
    }

    /// The commit `reviewer` was handed for the task's current attempt (its newest
    /// `review_started`), if any: what a verdict without `--commit` is about.
    pub fn handed_commit(&self, id: TaskId, reviewer: &Actor) -> Result<Option<String>> {
        let task = load_task(&self.conn, id)?;
        let mut stmt = self.conn.prepare(
            "SELECT task, at, kind, actor, state, evidence FROM events
             WHERE task = ?1 AND kind = 'review_started' ORDER BY id DESC",
        )?;
        let events = stmt
            .query_map([id.0], event_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(events.into_iter().find_map(|e| match e.what {
            Evidence::ReviewStarted(r) if e.by == *reviewer && r.attempt == task.attempt => {
                Some(r.commit)
            }
            _ => None,
        }))
    }

    /// Who executed a task: every agent that held a claim on it.
    pub fn executors(&self, id: TaskId) -> Result<Vec<String>> {
        executors(&self.conn, id)
    }

    /// A reviewer's verdict on exactly the submitted commit (`commit`, when the
    /// reviewer names the one it saw): approved, on to `approved_to` (the queue, or a
    /// person's checkpoint), or changes requested, back to the executor with the notes
    /// (counted against the attempt limit). Another reviewer's unexpired lease, an
    /// executor of the task, or a commit that is no longer the submitted one refuse it.
    #[allow(clippy::too_many_arguments)]
    pub fn review_verdict(
        &mut self,
        id: TaskId,
        by: &Actor,
        approve: bool,
        verdict: Verdict,
        approved_to: TaskState,
        back: Back,
        now: Timestamp,
    ) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        let kind = match approve {
            true => EventKind::ReviewApproved,
            false => EventKind::ChangesRequested,
        };
        if task.state != TaskState::AwaitingReview {
            // The same verdict again (its reply lost): the first answer, as the task is now.
            let same = last_event(&tx, id, Newest::Of(kind))?.is_some_and(|e| {
                e.by == *by
                    && matches!(&e.what, Evidence::ReviewApproved(v) | Evidence::ChangesRequested(v)
                        if v.commit == verdict.commit && v.notes == verdict.notes && v.attempt == task.attempt)
            });
            if same {
                return Ok(task);
            }
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} is {}, not awaiting review", task.state),
            ));
        }
        let submitted = task.submitted_head.clone().unwrap_or_default();
        if verdict.commit != submitted {
            return Err(LedgerError::Refused(
                ErrorCode::StaleCommit,
                format!(
                    "{id}'s submitted commit is {}, not {}: a review covers exactly the commit it saw; review the new one",
                    short(&submitted),
                    short(&verdict.commit)
                ),
            ));
        }
        let name = actor_name(by);
        if executors(&tx, id)?.iter().any(|e| Some(e.as_str()) == name) {
            return Err(LedgerError::Refused(
                ErrorCode::NotAllowed,
                format!(
                    "{} executed {id} and cannot review its own change",
                    name.unwrap_or_default()
                ),
            ));
        }
        if let Some(r) = &task.review
            && r.reviewer != *by
            && r.lease_expires_at > now
        {
            return Err(LedgerError::Refused(
                ErrorCode::Conflict,
                format!(
                    "{id} is being reviewed by {} (lease until {})",
                    r.reviewer, r.lease_expires_at
                ),
            ));
        }
        tx.execute(
            "UPDATE tasks SET reviewer = NULL, review_lease_expires_at = NULL, updated_at = ?1
             WHERE seq = ?2",
            params![now.0, id.0],
        )?;
        if approve {
            let queued_at = (approved_to == TaskState::Queued).then_some(now.0);
            tx.execute(
                "UPDATE tasks SET state = ?1, reviewed_head = ?2, queued_at = ?3 WHERE seq = ?4",
                params![approved_to.as_str(), submitted, queued_at, id.0],
            )?;
            append(
                &tx,
                id,
                now,
                by,
                Some(approved_to),
                &Evidence::ReviewApproved(verdict),
            )?;
            let task = load_task(&tx, id)?;
            tx.commit()?;
            return Ok(task);
        }
        let to = send_back(&tx, id, by, Evidence::ChangesRequested(verdict), back, now)?;
        let task = load_task(&tx, id)?;
        debug_assert_eq!(task.state, to);
        tx.commit()?;
        Ok(task)
    }

    /// Tasks whose reviewer's lease ran out.
    pub fn expired_reviews(&self, now: Timestamp) -> Result<Vec<TaskId>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq FROM tasks WHERE reviewer IS NOT NULL AND review_lease_expires_at <= ?1
             AND state = 'awaiting_review' ORDER BY seq",
        )?;
        let rows = stmt.query_map([now.0], |r| r.get::<_, i64>(0).map(TaskId))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The reviewer's lease ran out: the review is handed out again (its checkout is let
    /// go of by the service). Refused when it was renewed meanwhile.
    pub fn expire_review(&mut self, id: TaskId, now: Timestamp) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        let Some(r) = task.review.clone().filter(|r| r.lease_expires_at <= now) else {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id}'s review lease is not out"),
            ));
        };
        tx.execute(
            "UPDATE tasks SET reviewer = NULL, review_lease_expires_at = NULL, updated_at = ?1
             WHERE seq = ?2",
            params![now.0, id.0],
        )?;
        let evidence = Evidence::ReviewExpired(ReviewExpired {
            reviewer: r.reviewer,
            lease_expires_at: r.lease_expires_at,
        });
        append(&tx, id, now, &Actor::Daemon, None, &evidence)?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// A ready pool member for another use than a task's own worktree (a review's
    /// checkout): out of the pool, or `None`.
    pub fn take_pool_member(&mut self) -> Result<Option<String>> {
        let tx = self.write()?;
        let member = take_pool_member(&tx)?;
        tx.commit()?;
        Ok(member)
    }

    /// The conflict warnings in force.
    pub fn conflicts(&self) -> Result<Found> {
        let mut stmt = self
            .conn
            .prepare("SELECT task, other, paths FROM conflicts ORDER BY task, other")?;
        let rows = stmt.query_map([], |r| {
            let other: i64 = r.get(1)?;
            let side = match other {
                0 => Side::Base,
                n => Side::Task(TaskId(n)),
            };
            Ok(((TaskId(r.get(0)?), side), json_column::<Vec<String>>(r, 2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a round of conflict checks: new collisions (a `conflict_warning` on each
    /// task concerned, naming the other and its executor) and cleared ones (a
    /// `conflict_cleared` on each), with the warnings in force, in one transaction.
    pub fn record_conflicts(
        &mut self,
        new: &Found,
        gone: &[(TaskId, Side)],
        now: Timestamp,
    ) -> Result<()> {
        if new.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let tx = self.write()?;
        let other_id = |side: &Side| match side {
            Side::Task(t) => t.0,
            Side::Base => 0,
        };
        for ((task, side), paths) in new {
            tx.execute(
                "INSERT OR REPLACE INTO conflicts (task, other, paths, since) VALUES (?1, ?2, ?3, ?4)",
                params![task.0, other_id(side), json!(paths).to_string(), now.0],
            )?;
            let agent_of = |id: TaskId| -> Result<Option<String>> { Ok(load_task(&tx, id)?.agent) };
            let warn = |on: TaskId, with: Option<TaskId>, agent: Option<String>| {
                let evidence = Evidence::ConflictWarning(ConflictWarning {
                    with,
                    agent,
                    paths: paths.clone(),
                });
                append(&tx, on, now, &Actor::Daemon, None, &evidence)
            };
            match side {
                Side::Base => warn(*task, None, None)?,
                Side::Task(other) => {
                    warn(*task, Some(*other), agent_of(*other)?)?;
                    warn(*other, Some(*task), agent_of(*task)?)?;
                }
            }
        }
        for (task, side) in gone {
            tx.execute(
                "DELETE FROM conflicts WHERE task = ?1 AND other = ?2",
                params![task.0, other_id(side)],
            )?;
            let clear = |on: TaskId, with: Option<TaskId>| {
                append(
                    &tx,
                    on,
                    now,
                    &Actor::Daemon,
                    None,
                    &Evidence::ConflictCleared(ConflictCleared { with }),
                )
            };
            match side {
                Side::Base => clear(*task, None)?,
                Side::Task(other) => {
                    clear(*task, Some(*other))?;
                    clear(*other, Some(*task))?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Review checkouts nobody reviews in any more (a verdict, an expiry, a cancel):
    /// `(task, path)`, to be given back to the pool.
    pub fn review_worktrees_to_let_go(&self) -> Result<Vec<(TaskId, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, review_worktree FROM tasks WHERE review_worktree IS NOT NULL
             AND reviewer IS NULL ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| Ok((TaskId(r.get(0)?), r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every review checkout the ledger knows, held or not.
    pub fn review_worktrees(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT review_worktree FROM tasks WHERE review_worktree IS NOT NULL")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The review checkout at `path` was given back: forgotten, unless a new review
    /// took it meanwhile.
    pub fn review_worktree_gone(&mut self, id: TaskId, path: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE tasks SET review_worktree = NULL WHERE seq = ?1 AND review_worktree = ?2
             AND reviewer IS NULL",
            params![id.0, path],
        )?;
        Ok(())
    }

    /// Sends a task back to its executor (state `returned`, lease renewed so there is
    /// time to react): a person's rejection, a conflict, a failed verify. Ends any
    /// integration in progress.
    pub fn give_back(
        &mut self,
        id: TaskId,
        by: &Actor,
        evidence: Evidence,
        back: Back,
        now: Timestamp,
    ) -> Result<Task> {
        self.leave_queue(id, by, TaskState::Returned, evidence, Some(back), now)
    }

    /// The rebased change needs an approval it does not have: back to the checkpoint.
    pub fn hold_for_approval(
        &mut self,
        id: TaskId,
        evidence: NeedsApproval,
        now: Timestamp,
    ) -> Result<Task> {
        self.leave_queue(
            id,
            &Actor::Daemon,
            TaskState::AwaitingApproval,
            Evidence::NeedsApproval(evidence),
            None,
            now,
        )
    }

    /// The change needs a review of its commit it does not have: to the review stage.
    pub fn hold_for_review(
        &mut self,
        id: TaskId,
        evidence: NeedsApproval,
        now: Timestamp,
    ) -> Result<Task> {
        self.leave_queue(
            id,
            &Actor::Daemon,
            TaskState::AwaitingReview,
            Evidence::NeedsReview(evidence),
            None,
            now,
        )
    }

    fn leave_queue(
        &mut self,
        id: TaskId,
        by: &Actor,
        to: TaskState,
        evidence: Evidence,
        back: Option<Back>,
        now: Timestamp,
    ) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        if matches!(evidence, Evidence::Rejected(_))
            && last_event(&tx, id, Newest::Change)?.is_some_and(|e| match &e.what {
                // The same rejection again, its reply lost: it sent the task back, or,
                // at the attempt limit, to a person.
                Evidence::AttemptLimit(limit) => limit
                    .returns
                    .last()
                    .is_some_and(|r| r.by == *by && r.what == evidence),
                _ => task.state == to && e.by == *by && e.what == evidence,
            })
        {
            return Ok(task);
        }
        // A person may not pull a task out while it is being integrated: the daemon may
        // be moving the base to it right now. The daemon itself may (a failed verify).
        let allowed = match (task.state, by) {
            (TaskState::Verifying, Actor::Daemon) => true,
            (TaskState::Verifying, Actor::Agent(_) | Actor::Person(_)) => {
                return Err(LedgerError::Refused(
                    ErrorCode::WrongState,
                    format!(
                        "{id} is being integrated right now; reject it once it lands or comes back"
                    ),
                ));
            }
            (state, _) => matches!(
                state,
                TaskState::Queued | TaskState::AwaitingApproval | TaskState::AwaitingReview
            ),
        };
        if !allowed {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!(
                    "{id} is {}, not in the queue or at a checkpoint",
                    task.state
                ),
            ));
        }
        tx.execute(
            "UPDATE tasks SET queued_at = NULL, integration_failures = 0, reviewer = NULL,
                 review_lease_expires_at = NULL, updated_at = ?1 WHERE seq = ?2",
            params![now.0, id.0],
        )?;
        tx.execute("DELETE FROM integrations WHERE task = ?1", [id.0])?;
        // What was built on this attempt of it holds changes that will never land: its
        // lineage is forgotten, so the planner builds it again. (A later attempt of the
        // same task landing must not pass for this one.)
        tx.execute(
            "UPDATE integrations SET lineage = '' WHERE stack LIKE ?1",
            [format!("%\"{id}\"%")],
        )?;
        match back {
            Some(back) => {
                send_back(&tx, id, by, evidence, back, now)?;
            }
            None => {
                tx.execute(
                    "UPDATE tasks SET state = ?1, review_since = ?2 WHERE seq = ?3",
                    params![
                        to.as_str(),
                        (to == TaskState::AwaitingReview).then_some(now.0),
                        id.0
                    ],
                )?;
                append(&tx, id, now, by, Some(to), &evidence)?;
            }
        }
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// Starts integrating a queued task onto `onto`: a base tip, or the commit of the
    /// candidate below it (`built`: what its content holds, lineage and stack).
    pub fn start_integration(
        &mut self,
        id: TaskId,
        onto: &str,
        built: &Built,
        branch_tip: &str,
        now: Timestamp,
    ) -> Result<Integration> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        if task.state != TaskState::Queued {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} is {}, not queued", task.state),
            ));
        }
        tx.execute(
            "UPDATE tasks SET state = 'verifying', integration_failures = 0, updated_at = ?1
             WHERE seq = ?2",
            params![now.0, id.0],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO integrations
                 (task, attempt, step, onto, branch_tip, head, updated_at, lineage, stack)
             VALUES (?1, ?2, 'started', ?3, ?4, NULL, ?5, ?6, ?7)",
            params![
                id.0,
                task.attempt,
                onto,
                branch_tip,
                now.0,
                built.lineage,
                stack_text(&built.stack)
            ],
        )?;
        let evidence = Evidence::IntegrationStarted(IntegrationStarted {
            attempt: task.attempt,
            onto: onto.to_owned(),
            branch_tip: branch_tip.to_owned(),
        });
        append(
            &tx,
            id,
            now,
            &Actor::Daemon,
            Some(TaskState::Verifying),
            &evidence,
        )?;
        let integration = load_integration(&tx, id)?.expect("just written");
        tx.commit()?;
        Ok(integration)
    }

    pub fn integration(&self, id: TaskId) -> Result<Option<Integration>> {
        load_integration(&self.conn, id)
    }

    /// Every integration in progress.
    pub fn integrations(&self) -> Result<Vec<Integration>> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT task FROM integrations ORDER BY task")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        ids.into_iter()
            .filter_map(|id| load_integration(&self.conn, TaskId(id)).transpose())
            .collect()
    }

    /// Records that an integration reached `step`, with its event.
    pub fn advance(
        &mut self,
        id: TaskId,
        step: Step,
        head: Option<&str>,
        evidence: Evidence,
        now: Timestamp,
    ) -> Result<Integration> {
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE integrations SET step = ?1, head = COALESCE(?2, head),
                 built = CASE WHEN ?1 = 'rebased' THEN COALESCE(?2, head) ELSE built END,
                 updated_at = ?3
             WHERE task = ?4",
            params![step.as_str(), head, now.0, id.0],
        )?;
        if changed == 0 {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} has no integration in progress"),
            ));
        }
        append(&tx, id, now, &Actor::Daemon, None, &evidence)?;
        step_succeeded(&tx, id)?;
        let integration = load_integration(&tx, id)?.expect("just updated");
        if step == Step::BaseMoved
            && let Some(head) = &integration.head
        {
            // The lander moved the base: this is the tip it expects from now on.
            set_meta(
                &tx,
                META_BASE,
                Some(&json!({"tip": head, "since": now, "landed": id})),
            )?;
        }
        tx.commit()?;
        Ok(integration)
    }

    /// A verified candidate replayed onto the base tip `onto` as `head`, its verdict kept
    /// (lanes: the base moved only by changes independent of it). Its content now holds
    /// `onto` and nothing below it in flight.
    pub fn carry(
        &mut self,
        id: TaskId,
        onto: &str,
        head: &str,
        evidence: Evidence,
        now: Timestamp,
    ) -> Result<Integration> {
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE integrations SET onto = ?1, head = ?2, lineage = ?1, stack = '[]',
                 updated_at = ?3 WHERE task = ?4 AND step = 'verified'",
            params![onto, head, now.0, id.0],
        )?;
        if changed == 0 {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} has no verified candidate"),
            ));
        }
        append(&tx, id, now, &Actor::Daemon, None, &evidence)?;
        step_succeeded(&tx, id)?;
        let integration = load_integration(&tx, id)?.expect("just updated");
        tx.commit()?;
        Ok(integration)
    }

    /// The lander's last `limit` moves of the base, oldest first (from `base_moved`
    /// events).
    pub fn base_moves(&self, limit: u32) -> Result<Vec<Landed>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT task, at, kind, actor, state, evidence FROM events
             WHERE kind = 'base_moved' ORDER BY id DESC LIMIT ?1",
        )?;
        let events = stmt
            .query_map([limit], event_from_row)?
            .collect::<rusqlite::Result<Vec<Event>>>()?;
        Ok(events
            .into_iter()
            .rev()
            .filter_map(|e| match e.what {
                Evidence::BaseMoved(m) => Some(Landed {
                    task: e.task,
                    from: m.from,
                    to: m.to,
                }),
                _ => None,
            })
            .collect())
    }

    /// The candidate failed (a conflict, a failed verify) while built onto another
    /// candidate: recorded, not yet given back, since the one below may be the cause.
    pub fn candidate_failed(
        &mut self,
        id: TaskId,
        evidence: Evidence,
        now: Timestamp,
    ) -> Result<Integration> {
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE integrations SET step = 'failed', failure_kind = ?1, failure = ?2,
                 updated_at = ?3 WHERE task = ?4",
            params![
                evidence.kind().as_str(),
                payload_text(&evidence)?,
                now.0,
                id.0
            ],
        )?;
        if changed == 0 {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} has no integration in progress"),
            ));
        }
        let integration = load_integration(&tx, id)?.expect("just updated");
        let recorded = Evidence::CandidateFailed(evidence::CandidateFailed {
            onto: integration.onto.clone(),
            failure: Box::new(evidence),
        });
        append(&tx, id, now, &Actor::Daemon, None, &recorded)?;
        step_succeeded(&tx, id)?;
        tx.commit()?;
        Ok(integration)
    }

    /// A step of `id`'s integration (or its start) failed, not for the task's own
    /// reasons: how many times in a row it has now.
    pub fn integration_failed(&mut self, id: TaskId) -> Result<u32> {
        let tx = self.write()?;
        tx.execute(
            "UPDATE tasks SET integration_failures = integration_failures + 1 WHERE seq = ?1",
            [id.0],
        )?;
        let n: u32 = tx.query_row(
            "SELECT integration_failures FROM tasks WHERE seq = ?1",
            [id.0],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// The candidate must be built again onto `onto`: the base moved under it, or the
    /// candidate it was built onto is no longer ahead of it.
    pub fn restart_integration(
        &mut self,
        id: TaskId,
        onto: &str,
        built: &Built,
        evidence: evidence::BaseRaced,
        now: Timestamp,
    ) -> Result<Integration> {
        let tx = self.write()?;
        tx.execute(
            "UPDATE integrations SET step = 'started', onto = ?1, head = NULL, built = NULL,
                 failure_kind = NULL, failure = NULL, updated_at = ?2, lineage = ?3, stack = ?4
             WHERE task = ?5",
            params![onto, now.0, built.lineage, stack_text(&built.stack), id.0],
        )?;
        append(
            &tx,
            id,
            now,
            &Actor::Daemon,
            None,
            &Evidence::BaseRaced(evidence),
        )?;
        step_succeeded(&tx, id)?;
        let integration = load_integration(&tx, id)?.ok_or_else(|| {
            LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} has no integration in progress"),
            )
        })?;
        tx.commit()?;
        Ok(integration)
    }

    /// The task landed: merged, its claim and ports freed, its integration done.
    pub fn merged(&mut self, id: TaskId, evidence: Merged, now: Timestamp) -> Result<Task> {
        let tx = self.write()?;
        tx.execute(
            "UPDATE tasks SET state = 'merged', agent = NULL, lease_expires_at = NULL, port_base = NULL,
                 queued_at = NULL, integration_failures = 0, updated_at = ?1 WHERE seq = ?2",
            params![now.0, id.0],
        )?;
        tx.execute("DELETE FROM integrations WHERE task = ?1", [id.0])?;
        append(
            &tx,
            id,
            now,
            &Actor::Daemon,
            Some(TaskState::Merged),
            &Evidence::Merged(evidence),
        )?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// Tasks whose lease has run out by `now`.
    pub fn expired(&self, now: Timestamp) -> Result<Vec<TaskId>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq FROM tasks WHERE lease_expires_at IS NOT NULL AND lease_expires_at <= ?1
             AND state IN ('claimed', 'returned')
             AND (remote_claim = 1 OR (worktree IS NOT NULL AND worktree_ready = 1))
             ORDER BY seq",
        )?;
        let rows = stmt.query_map([now.0], |r| r.get::<_, i64>(0).map(TaskId))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A person changes a task's priority (higher runs first).
    pub fn set_priority(
        &mut self,
        id: TaskId,
        by: &Actor,
        priority: i64,
        now: Timestamp,
    ) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        if task.state.is_final() {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} is already {}", task.state),
            ));
        }
        tx.execute(
            "UPDATE tasks SET priority = ?1, updated_at = ?2 WHERE seq = ?3",
            params![priority, now.0, id.0],
        )?;
        let evidence = Evidence::PriorityChanged(PriorityChanged {
            from: task.priority,
            to: priority,
        });
        append(&tx, id, now, by, None, &evidence)?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    // ---- GitHub ---------------------------------------------------------------------

    pub fn pr(&self, id: TaskId) -> Result<Option<PrRecord>> {
        Ok(self.prs_where("task = ?1", &[&id.0])?.pop())
    }

    pub fn prs(&self) -> Result<Vec<PrRecord>> {
        self.prs_where("1", &[])
    }

    fn prs_where(&self, filter: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<PrRecord>> {
        let sql = format!(
            "SELECT task, number, url, pushed_head, body_digest, check_run, check_head, check_digest,
                    last_comment, last_review, seen_updated, merged_noted, closed, reopen, check_done
             FROM github_prs WHERE {filter} ORDER BY task"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(args, |r| {
            Ok(PrRecord {
                task: TaskId(r.get(0)?),
                number: r.get::<_, i64>(1)? as u64,
                url: r.get(2)?,
                pushed_head: r.get(3)?,
                body_digest: r.get(4)?,
                check_run: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                check_head: r.get(6)?,
                check_digest: r.get(7)?,
                last_comment: r.get::<_, i64>(8)? as u64,
                last_review: r.get::<_, i64>(9)? as u64,
                seen_updated: r.get(10)?,
                merged_noted: r.get(11)?,
                closed: r.get(12)?,
                reopen: r.get(13)?,
                check_done: r.get(14)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records a task's PR for the first time, with its `pr_opened` event.
    pub fn record_pr(&mut self, pr: &PrRecord, found: bool, now: Timestamp) -> Result<()> {
        let tx = self.write()?;
        load_task(&tx, pr.task)?;
        save_pr(&tx, pr)?;
        let evidence = Evidence::PrOpened(PrOpened {
            number: pr.number,
            url: pr.url.clone(),
            found_existing: Some(found),
            head: None,
            replaces: None,
        });
        append(&tx, pr.task, now, &Actor::Daemon, None, &evidence)?;
        tx.commit()?;
        Ok(())
    }

    /// Saves what switchyard last wrote or read for a PR already recorded (all but
    /// `pushed_head` and `reopen`: see their setters).
    pub fn save_pr(&mut self, pr: &PrRecord) -> Result<()> {
        let tx = self.write()?;
        save_pr(&tx, pr)?;
        tx.commit()?;
        Ok(())
    }

    /// The commit switchyard last pushed to the task's branch on the remote.
    pub fn set_pushed_head(&mut self, id: TaskId, head: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE github_prs SET pushed_head = ?1 WHERE task = ?2",
            params![head, id.0],
        )?;
        Ok(())
    }

    /// Whether the next submission must reopen or retarget the PR.
    pub fn set_reopen(&mut self, id: TaskId, reopen: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE github_prs SET reopen = ?1 WHERE task = ?2",
            params![reopen, id.0],
        )?;
        Ok(())
    }

    /// Cancels a task that has not landed. Its branch stays.
    pub fn cancel(&mut self, id: TaskId, by: &Actor, reason: &str, now: Timestamp) -> Result<Task> {
        let tx = self.write()?;
        let task = load_task(&tx, id)?;
        let same_cancel = last_event(&tx, id, Newest::Change)?.is_some_and(|e| {
            e.by == *by && matches!(&e.what, Evidence::Cancelled(c) if c.reason == reason)
        });
        if task.state == TaskState::Cancelled && same_cancel {
            return Ok(task);
        }
        if task.state.is_final() {
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!("{id} is already {}", task.state),
            ));
        }
        if task.state == TaskState::Verifying {
            // The integration does git work without the ledger lock; a cancel now could
            // land between its verify and its move of the base.
            return Err(LedgerError::Refused(
                ErrorCode::WrongState,
                format!(
                    "{id} is being integrated right now; cancel it once it lands or comes back"
                ),
            ));
        }
        tx.execute(
            "UPDATE tasks SET state = 'cancelled', agent = NULL, lease_expires_at = NULL,
                 port_base = NULL, reviewer = NULL, review_lease_expires_at = NULL,
                 updated_at = ?1 WHERE seq = ?2",
            params![now.0, id.0],
        )?;
        let evidence = Evidence::Cancelled(Cancelled {
            reason: reason.to_owned(),
            was: task.state,
            branch: task.branch.clone(),
        });
        append(&tx, id, now, by, Some(TaskState::Cancelled), &evidence)?;
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// Records where a task's worktree is and whether it is ready, with an event.
    pub fn set_worktree(
        &mut self,
        id: TaskId,
        path: Option<&str>,
        ready: bool,
        event: Option<Evidence>,
        now: Timestamp,
    ) -> Result<Task> {
        let tx = self.write()?;
        tx.execute(
            "UPDATE tasks SET worktree = ?1, worktree_ready = ?2, updated_at = ?3 WHERE seq = ?4",
            params![path, ready, now.0, id.0],
        )?;
        if let Some(evidence) = event {
            append(&tx, id, now, &Actor::Daemon, None, &evidence)?;
        }
        let task = load_task(&tx, id)?;
        tx.commit()?;
        Ok(task)
    }

    /// Appends an event that does not change the task's state.
    pub fn note(
        &mut self,
        id: TaskId,
        by: &Actor,
        evidence: Evidence,
        now: Timestamp,
    ) -> Result<()> {
        let tx = self.write()?;
        load_task(&tx, id)?;
        append(&tx, id, now, by, None, &evidence)?;
        tx.commit()?;
        Ok(())
    }

    /// Whether the task's worktree is in place (not halfway through being made).
    pub fn worktree_ready(&self, id: TaskId) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT worktree_ready FROM tasks WHERE seq = ?1",
                [id.0],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(LedgerError::NotFound(id))
    }

    /// Tasks whose worktree is assigned but not yet ready (a claim interrupted by a crash).
    pub fn unready_worktrees(&self) -> Result<Vec<Task>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq FROM tasks WHERE worktree IS NOT NULL AND worktree_ready = 0 ORDER BY seq",
        )?;
        let ids: Vec<i64> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter()
            .map(|i| load_task(&self.conn, TaskId(i)))
            .collect()
    }

    /// Tasks that are done (landed or cancelled) but still hold a worktree in place:
    /// the worktrees the daemon lets go of in the background, after a landing and after
    /// a restart. `true` beside a task whose worktree was already kept, since it ended,
    /// for the uncommitted changes in it.
    pub fn worktrees_to_let_go(&self) -> Result<Vec<(Task, bool)>> {
        let finished: Vec<String> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = format!(
            "SELECT t.seq, EXISTS (
                 SELECT 1 FROM events k WHERE k.task = t.seq AND k.kind = '{kept}'
                 AND k.id > (SELECT MAX(c.id) FROM events c WHERE c.task = t.seq AND c.state IS NOT NULL))
             FROM tasks t
             WHERE t.state IN ({states}) AND t.worktree IS NOT NULL AND t.worktree_ready = 1
             ORDER BY t.seq",
            kept = EventKind::WorktreeKept.as_str(),
            states = finished.join(", "),
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let found: Vec<(i64, bool)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        found
            .into_iter()
            .map(|(id, kept)| Ok((load_task(&self.conn, TaskId(id))?, kept)))
            .collect()
    }

    pub fn pool(&self) -> Result<Vec<PoolMember>> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, state FROM pool ORDER BY created_at, path")?;
        let rows = stmt.query_map([], |r| {
            Ok(PoolMember {
                path: r.get(0)?,
                ready: r.get::<_, String>(1)? == "ready",
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Notes a pool worktree about to be made, so a crash midway is found on restart.
    pub fn pool_creating(&mut self, path: &str, now: Timestamp) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO pool (path, state, created_at) VALUES (?1, 'creating', ?2)",
            params![path, now.0],
        )?;
        Ok(())
    }

    /// Adds a worktree that is ready now (one handed back by a task, or adopted).
    pub fn pool_add_ready(&mut self, path: &str, now: Timestamp) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO pool (path, state, created_at) VALUES (?1, 'ready', ?2)",
            params![path, now.0],
        )?;
        Ok(())
    }

    pub fn pool_ready(&mut self, path: &str) -> Result<()> {
        self.conn
            .execute("UPDATE pool SET state = 'ready' WHERE path = ?1", [path])?;
        Ok(())
    }

    /// Takes a worktree out of the pool; `false` when it was not there (a claim took it).
    pub fn pool_remove(&mut self, path: &str) -> Result<bool> {
        let removed = self
            .conn
            .execute("DELETE FROM pool WHERE path = ?1", [path])?;
        Ok(removed > 0)
    }

    /// Takes a ready pool worktree for task `id`, recording in the same transaction that
    /// the task's worktree is on its way to `target`.
    pub fn take_from_pool(
        &mut self,
        id: TaskId,
        target: &str,
        now: Timestamp,
    ) -> Result<Option<String>> {
        let tx = self.write()?;
        let member = take_pool_member(&tx)?;
        tx.execute(
            "UPDATE tasks SET worktree = ?1, worktree_ready = 0, updated_at = ?2 WHERE seq = ?3",
            params![target, now.0, id.0],
        )?;
        tx.commit()?;
        Ok(member)
    }
}

/// What a task of a plan comes after: another task of the plan (its index), or a task
/// that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanDep {
    Local(usize),
    Task(TaskId),
}

/// The next task id, never reused: past every id the ledger ever gave (and past
/// `after`, an id just chosen in this transaction), skipping those `id_taken` refuses.
fn next_id(
    tx: &Transaction<'_>,
    after: Option<TaskId>,
    id_taken: &dyn Fn(TaskId) -> bool,
) -> Result<TaskId> {
    let last: i64 = tx.query_row(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'tasks'), 0),
                    COALESCE((SELECT MAX(seq) FROM tasks), 0))",
        [],
        |r| r.get(0),
    )?;
    let mut id = TaskId(last.max(after.map_or(0, |a| a.0)) + 1);
    while id_taken(id) {
        id = TaskId(id.0 + 1);
    }
    Ok(id)
}

/// Records that `id` comes after each of `after` (which exist by now).
fn insert_deps(tx: &Transaction<'_>, id: TaskId, after: &[TaskId]) -> Result<()> {
    for a in after {
        tx.execute(
            "INSERT OR IGNORE INTO task_deps (task, after) VALUES (?1, ?2)",
            params![id.0, a.0],
        )?;
    }
    Ok(())
}

/// Inserts a new task with its subsystems and `created` event (its dependencies are
/// [`insert_deps`]'s): as the next free id, or as `given` (a plan's, with its local
/// name).
fn insert_task(
    tx: &Transaction<'_>,
    new: &NewTask,
    given: Option<(TaskId, &str)>,
    now: Timestamp,
    id_taken: &dyn Fn(TaskId) -> bool,
) -> Result<TaskId> {
    let id = match given {
        Some((id, _)) => id,
        None => next_id(tx, None, id_taken)?,
    };
    tx.execute(
        "INSERT INTO tasks (seq, title, body, accept, scope, priority, state, branch, created_at,
             updated_at, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?8, ?9)",
        params![
            id.0,
            new.title,
            new.body,
            json!(new.accept).to_string(),
            json!(new.scope).to_string(),
            new.priority,
            task_branch(id, &new.title),
            now.0,
            new.request_id
        ],
    )?;
    for s in &new.subsystems {
        tx.execute(
            "INSERT INTO task_subsystems (task, subsystem) VALUES (?1, ?2)",
            params![id.0, s.as_str()],
        )?;
    }
    let evidence = Evidence::Created(Created {
        title: new.title.clone(),
        scope: new.scope.clone(),
        subsystems: new.subsystems.clone(),
        priority: new.priority,
        request_id: new.request_id.clone(),
        after: new.after.clone(),
        plan_name: given.map(|(_, name)| name.to_owned()),
    });
    append(tx, id, now, &new.by, Some(TaskState::Open), &evidence)?;
    Ok(id)
}

/// The oldest ready pool member, taken out of the pool.
fn take_pool_member(tx: &Transaction<'_>) -> Result<Option<String>> {
    let member: Option<String> = tx
        .query_row(
            "SELECT path FROM pool WHERE state = 'ready' ORDER BY created_at, path LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(path) = &member {
        tx.execute("DELETE FROM pool WHERE path = ?1", [path])?;
    }
    Ok(member)
}

fn slot_states() -> Vec<TaskState> {
    TaskState::ALL
        .into_iter()
        .filter(|s| s.holds_slot())
        .collect()
}

const META_BASE: &str = "base";
/// The newest landing the user's checkout followed (an event id).
const META_CHECKOUT: &str = "checkout";
const META_PAUSED: &str = "paused";

fn stopped(conn: &Connection) -> Result<Option<Stop>> {
    Ok(meta(conn, META_STOP)?.and_then(|v| serde_json::from_value(v).ok()))
}
/// A person's pause (`Stop`).
const META_STOP: &str = "stop";
const META_WINDOW: &str = "window";

fn meta(conn: &Connection, key: &str) -> Result<Option<Value>> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

fn expected_tip(conn: &Connection) -> Result<Option<String>> {
    Ok(meta(conn, META_BASE)?.and_then(|v| v["tip"].as_str().map(str::to_owned)))
}

/// Sets (or, with `None`, removes) a `meta` entry.
fn set_meta(conn: &Connection, key: &str, value: Option<&Value>) -> Result<()> {
    match value {
        Some(v) => conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, v.to_string()],
        )?,
        None => conn.execute("DELETE FROM meta WHERE key = ?1", [key])?,
    };
    Ok(())
}

fn append_queue_event(
    conn: &Connection,
    at: Timestamp,
    by: &Actor,
    evidence: &QueueEvidence,
) -> Result<()> {
    let payload = evidence
        .payload()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT INTO queue_events (at, kind, actor, evidence) VALUES (?1, ?2, ?3, ?4)",
        params![
            at.0,
            evidence.kind().as_str(),
            json!(by).to_string(),
            payload.to_string()
        ],
    )?;
    Ok(())
}

/// Which of a task's events [`last_event`] looks for.
#[derive(Clone, Copy)]
enum Newest {
    /// The newest of this kind.
    Of(EventKind),
    /// The newest that changed the task's state (worktree and GitHub notes do not).
    Change,
}

fn last_event(conn: &Connection, id: TaskId, which: Newest) -> Result<Option<Event>> {
    let (kind, changes_only) = match which {
        Newest::Of(kind) => (Some(kind.as_str()), false),
        Newest::Change => (None, true),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT task, at, kind, actor, state, evidence FROM events
         WHERE task = ?1 AND (?2 IS NULL OR kind = ?2) AND (NOT ?3 OR state IS NOT NULL)
         ORDER BY id DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row(params![id.0, kind, changes_only], event_from_row)
        .optional()?)
}

/// How a task goes back to its executor: its lease renewed for `lease`, unless this is
/// its `limit`-th return; then it waits for a person instead (`attempt_limit`).
#[derive(Debug, Clone, Copy)]
pub struct Back {
    pub lease: Duration,
    pub limit: u32,
}

/// Records a return to the executor (`evidence`, into `returned`), or, at the attempt
/// limit, the same evidence followed by `attempt_limit` into `awaiting_approval` with
/// every return's event. Returns the state it went to.
fn send_back(
    tx: &Transaction<'_>,
    id: TaskId,
    by: &Actor,
    evidence: Evidence,
    back: Back,
    now: Timestamp,
) -> Result<TaskState> {
    // Every return since a person last released the task (a new executor starts with a
    // whole budget): the events that sent it back (into `returned`, but a person's yes
    // at the limit, "another round", which is recorded so too), and those that hit the
    // limit (recorded without a state, right before their `attempt_limit`).
    let mut returns: Vec<Event> = {
        let mut stmt = tx.prepare_cached(
            "SELECT task, at, kind, actor, state, evidence FROM events
             WHERE task = ?1
               AND id > COALESCE((SELECT MAX(id) FROM events WHERE task = ?1 AND kind = 'released'
                                  AND json_extract(actor, '$.kind') = 'person'), 0)
               AND ((state = 'returned' AND kind != 'approved')
                    OR id IN (SELECT id - 1 FROM events WHERE task = ?1 AND kind = 'attempt_limit'))
             ORDER BY id",
        )?;
        stmt.query_map([id.0], event_from_row)?
            .collect::<rusqlite::Result<_>>()?
    };
    if (returns.len() as u64) + 1 < u64::from(back.limit) {
        tx.execute(
            "UPDATE tasks SET state = 'returned', lease_expires_at = ?1 WHERE seq = ?2",
            params![now.plus(back.lease).0, id.0],
        )?;
        append(tx, id, now, by, Some(TaskState::Returned), &evidence)?;
        return Ok(TaskState::Returned);
    }
    returns.push(Event {
        at: now,
        task: id,
        by: by.clone(),
        state: Some(TaskState::Returned),
        what: evidence.clone(),
    });
    tx.execute(
        "UPDATE tasks SET state = 'awaiting_approval', lease_expires_at = NULL WHERE seq = ?1",
        [id.0],
    )?;
    append(tx, id, now, by, None, &evidence)?;
    let limit = Evidence::AttemptLimit(AttemptLimit {
        limit: back.limit,
        returns,
    });
    append(
        tx,
        id,
        now,
        &Actor::Daemon,
        Some(TaskState::AwaitingApproval),
        &limit,
    )?;
    Ok(TaskState::AwaitingApproval)
}

/// The submitted commit of a task and its merge base, from its last `submitted` event.
fn submission(conn: &Connection, task: &Task) -> Result<(String, String)> {
    let head = task.submitted_head.clone().unwrap_or_default();
    let merge_base = match last_event(conn, task.id, Newest::Of(EventKind::Submitted))? {
        Some(Event {
            what: Evidence::Submitted(s),
            ..
        }) if s.head == head => s.merge_base,
        _ => String::new(),
    };
    Ok((head, merge_base))
}

/// The agents that ever held a claim on the task.
fn executors(conn: &Connection, id: TaskId) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT json_extract(actor, '$.name') FROM events
         WHERE task = ?1 AND kind = 'claimed' AND json_extract(actor, '$.kind') = 'agent'",
    )?;
    let rows = stmt.query_map([id.0], |r| r.get::<_, Option<String>>(0))?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}

/// An agent's or a person's name.
fn actor_name(actor: &Actor) -> Option<&str> {
    match actor {
        Actor::Agent(n) | Actor::Person(n) => Some(n),
        Actor::Daemon => None,
    }
}

/// Whether the task's newest change of state is `kind` by `by`: the request being
/// refused now is a retry of one that succeeded (its reply lost), and gets the same
/// answer.
fn is_replay(conn: &Connection, id: TaskId, kind: EventKind, by: &Actor) -> Result<bool> {
    Ok(last_event(conn, id, Newest::Change)?.is_some_and(|e| e.kind() == kind && e.by == *by))
}

fn check_holder(task: &Task, agent: &str) -> Result<()> {
    if !task.state.holds_lease() {
        return Err(LedgerError::Refused(
            ErrorCode::WrongState,
            format!("{} is {}, not claimed", task.id, task.state),
        ));
    }
    if task.agent.as_deref() != Some(agent) {
        return Err(LedgerError::Refused(
            ErrorCode::NotClaimHolder,
            format!(
                "{} is claimed by {}, not by {agent}",
                task.id,
                task.agent.as_deref().unwrap_or("nobody")
            ),
        ));
    }
    Ok(())
}

fn not_claimable(task: &Task) -> String {
    match (task.state, &task.agent, task.lease_expires_at) {
        (s, Some(agent), Some(until)) if s.holds_lease() => {
            format!("{} is claimed by {agent} (lease until {until})", task.id)
        }
        (s, _, _) => format!("{} is {s}, not open", task.id),
    }
}

fn describe_blocked(blocked: &[(TaskId, Blocked)]) -> String {
    let parts: Vec<String> = blocked
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    format!(
        "nothing can be claimed: {} open task(s), all held back by caps ({})",
        blocked.len(),
        parts.join("; ")
    )
}

/// The lowest block of ports no live task holds and nothing else listens on.
fn free_port_block(tx: &Transaction<'_>, port_is_free: &dyn Fn(u16) -> bool) -> Result<u16> {
    let mut stmt = tx.prepare("SELECT port_base FROM tasks WHERE port_base IS NOT NULL")?;
    let taken: std::collections::HashSet<u16> = stmt
        .query_map([], |r| r.get::<_, u16>(0))?
        .collect::<rusqlite::Result<_>>()?;
    (0..PORT_BLOCKS)
        .map(|i| PORT_START + i * PORT_BLOCK)
        .find(|p| !taken.contains(p) && (*p..*p + PORT_BLOCK).all(port_is_free))
        .ok_or_else(|| {
            LedgerError::Refused(ErrorCode::Refused, "no free block of ports left".into())
        })
}

fn append(
    tx: &Transaction<'_>,
    id: TaskId,
    at: Timestamp,
    by: &Actor,
    state: Option<TaskState>,
    evidence: &Evidence,
) -> Result<()> {
    tx.execute(
        "INSERT INTO events (task, at, kind, actor, state, evidence) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id.0,
            at.0,
            evidence.kind().as_str(),
            json!(by).to_string(),
            state.map(TaskState::as_str),
            payload_text(evidence)?
        ],
    )?;
    Ok(())
}

/// An event's payload as the `evidence` column holds it: a JSON object.
fn payload_text(evidence: &Evidence) -> Result<String> {
    // Only a payload that JSON cannot hold fails (a log path that is not UTF-8).
    let payload = evidence
        .payload()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(payload.to_string())
}

const TASK_COLUMNS: &str =
    "seq, title, body, accept, scope, priority, state, branch, worktree, agent,
     lease_expires_at, attempt, port_base, base_sha, created_at, updated_at, queued_at,
     approved_attempt, submitted_head, reviewer, review_lease_expires_at, review_worktree,
     reviewed_head, remote_claim,
     (SELECT json_extract(e.evidence, '$.agent') FROM events e
      WHERE e.task = tasks.seq AND e.kind = 'claimed' ORDER BY e.id DESC LIMIT 1)";

fn load_integration(conn: &Connection, id: TaskId) -> Result<Option<Integration>> {
    Ok(conn
        .query_row(
            "SELECT task, attempt, step, onto, branch_tip, head, failure_kind, failure,
                    lineage, stack, built, updated_at
             FROM integrations WHERE task = ?1",
            [id.0],
            |r| {
                let step: String = r.get(2)?;
                Ok(Integration {
                    task: TaskId(r.get(0)?),
                    attempt: r.get(1)?,
                    step: Step::parse(&step).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            2,
                            rusqlite::types::Type::Text,
                            step.into(),
                        )
                    })?,
                    onto: r.get(3)?,
                    branch_tip: r.get(4)?,
                    head: r.get(5)?,
                    failure: match r.get::<_, Option<String>>(6)? {
                        Some(_) => Some(Evidence::from_payload(
                            name_column(r, 6)?,
                            json_column(r, 7)?,
                        )),
                        None => None,
                    },
                    // Before lanes: built onto `onto`, verified as `head`.
                    lineage: r.get::<_, Option<String>>(8)?.unwrap_or(r.get(3)?),
                    stack: match r.get::<_, Option<String>>(9)? {
                        Some(_) => json_column(r, 9)?,
                        None => Vec::new(),
                    },
                    built: r.get::<_, Option<String>>(10)?.or(r.get(5)?),
                    since: Timestamp(r.get(11)?),
                })
            },
        )
        .optional()?)
}

fn stack_text(stack: &[TaskId]) -> String {
    serde_json::to_string(stack).expect("task ids serialize")
}

fn load_task(conn: &Connection, id: TaskId) -> Result<Task> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE seq = ?1");
    let task = conn
        .prepare_cached(&sql)?
        .query_row([id.0], task_from_row)
        .optional()?
        .ok_or(LedgerError::NotFound(id))?;
    with_subsystems(conn, vec![task]).map(|mut v| v.remove(0))
}

fn load_tasks(conn: &Connection, states: Option<&[TaskState]>) -> Result<Vec<Task>> {
    let filter = match states {
        Some(states) => {
            let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
            format!("WHERE state IN ({})", names.join(", "))
        }
        None => String::new(),
    };
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks {filter} ORDER BY seq");
    let mut stmt = conn.prepare(&sql)?;
    let tasks = stmt
        .query_map([], task_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    with_subsystems(conn, tasks)
}

/// Fills in the tasks' subsystems, in one query however many tasks there are.
fn with_subsystems(conn: &Connection, mut tasks: Vec<Task>) -> Result<Vec<Task>> {
    if tasks.is_empty() {
        return Ok(tasks);
    }
    let ids = json!(tasks.iter().map(|t| t.id.0).collect::<Vec<_>>()).to_string();
    let mut stmt = conn.prepare_cached(
        "SELECT task, subsystem FROM task_subsystems
         WHERE task IN (SELECT value FROM json_each(?1)) ORDER BY task, subsystem",
    )?;
    let mut by_task: std::collections::HashMap<i64, Vec<SubsystemName>> =
        std::collections::HashMap::new();
    for row in stmt.query_map([ids], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
        let (task, name) = row?;
        if let Ok(name) = SubsystemName::new(&name) {
            by_task.entry(task).or_default().push(name);
        }
    }
    for task in &mut tasks {
        task.subsystems = by_task.remove(&task.id.0).unwrap_or_default();
    }
    with_deps(conn, tasks)
}

/// Fills in the tasks' dependencies and which of them have not merged, in one query.
fn with_deps(conn: &Connection, mut tasks: Vec<Task>) -> Result<Vec<Task>> {
    let ids = json!(tasks.iter().map(|t| t.id.0).collect::<Vec<_>>()).to_string();
    let mut stmt = conn.prepare_cached(
        "SELECT d.task, d.after, t.state FROM task_deps d JOIN tasks t ON t.seq = d.after
         WHERE d.task IN (SELECT value FROM json_each(?1)) ORDER BY d.task, d.after",
    )?;
    let mut by_task: std::collections::HashMap<i64, Vec<Blocker>> =
        std::collections::HashMap::new();
    for row in stmt.query_map([ids], |r| {
        Ok((r.get::<_, i64>(0)?, TaskId(r.get(1)?), state_column(r, 2)?))
    })? {
        let (task, id, state) = row?;
        by_task.entry(task).or_default().push(Blocker { id, state });
    }
    for task in &mut tasks {
        let deps = by_task.remove(&task.id.0).unwrap_or_default();
        task.after = deps.iter().map(|d| d.id).collect();
        task.blocked_by = deps
            .into_iter()
            .filter(|d| d.state != TaskState::Merged)
            .collect();
    }
    Ok(tasks)
}

fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn state_column(row: &Row<'_>, i: usize) -> rusqlite::Result<TaskState> {
    let text: String = row.get(i)?;
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: TaskId(row.get(0)?),
        title: row.get(1)?,
        body: row.get(2)?,
        accept: json_column(row, 3)?,
        scope: json_column(row, 4)?,
        subsystems: Vec::new(),
        priority: row.get(5)?,
        state: state_column(row, 6)?,
        branch: row.get(7)?,
        worktree: row.get(8)?,
        agent: row.get(9)?,
        lease_expires_at: row.get::<_, Option<i64>>(10)?.map(Timestamp),
        attempt: row.get(11)?,
        port_base: row.get(12)?,
        base_sha: row.get(13)?,
        created_at: Timestamp(row.get(14)?),
        updated_at: Timestamp(row.get(15)?),
        queued_at: row.get::<_, Option<i64>>(16)?.map(Timestamp),
        approved_attempt: row.get(17)?,
        submitted_head: row.get(18)?,
        after: Vec::new(),
        blocked_by: Vec::new(),
        review: match row.get::<_, Option<String>>(19)? {
            Some(text) => Some(ReviewLease {
                reviewer: serde_json::from_str(&text).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        19,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
                lease_expires_at: Timestamp(row.get::<_, Option<i64>>(20)?.unwrap_or(0)),
                worktree: row.get(21)?,
            }),
            None => None,
        },
        reviewed_head: row.get(22)?,
        remote_claim: row.get(23)?,
        // Read from the events rather than kept in a column: the last claim is on record
        // in every ledger, old ones included, and nothing can let it drift.
        executor: row.get(24)?,
    })
}

/// An enum stored by its serde name (an event's kind).
fn name_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let name: String = row.get(i)?;
    serde_json::from_value(Value::String(name)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A step of the task's integration was recorded: failures in a row start again at 0.
fn step_succeeded(tx: &Connection, id: TaskId) -> Result<()> {
    tx.execute(
        "UPDATE tasks SET integration_failures = 0 WHERE seq = ?1",
        [id.0],
    )?;
    Ok(())
}

fn queue_event_from_row(r: &Row<'_>) -> rusqlite::Result<QueueEvent> {
    Ok(QueueEvent {
        at: Timestamp(r.get(0)?),
        by: json_column(r, 2)?,
        what: QueueEvidence::from_payload(name_column(r, 1)?, json_column(r, 3)?),
    })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        task: TaskId(row.get(0)?),
        at: Timestamp(row.get(1)?),
        by: json_column(row, 3)?,
        state: row
            .get::<_, Option<String>>(4)?
            .map(|s| s.parse())
            .transpose()
            .map_err(|e: String| {
                rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
            })?,
        // A payload that does not fit its kind's type reads as `Evidence::Unknown`: one
        // old event of an odd shape must not make a task's whole timeline unreadable.
        what: Evidence::from_payload(name_column(row, 2)?, json_column(row, 5)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::TempDir::new().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        (dir, ledger)
    }

    fn new_task(title: &str, subs: &[&str], priority: i64) -> NewTask {
        NewTask {
            title: title.into(),
            body: String::new(),
            accept: vec!["it works".into()],
            scope: subs.iter().map(|s| s.to_string()).collect(),
            subsystems: subs
                .iter()
                .map(|s| SubsystemName::new(s).unwrap())
                .collect(),
            priority,
            by: Actor::Person("planner".into()),
            request_id: None,
            after: Vec::new(),
        }
    }

    fn claim(
        l: &mut Ledger,
        task: Option<TaskId>,
        agent: &str,
        caps: &Caps,
        now: i64,
    ) -> Result<Claimed> {
        l.claim(&ClaimRequest {
            task,
            exclude: &[],
            agent,
            caps,
            now: Timestamp(now),
            lease: Duration::from_secs(60),
            base_sha: "abc",
            port_is_free: &|_| true,
            remote: false,
        })
    }

    #[test]
    fn pull_request_records_round_trip_and_priorities_change_with_an_event() {
        let (_d, mut l) = ledger();
        let t = l
            .add_task(&new_task("Fix login", &["auth"], 0), Timestamp(1), &|_| {
                false
            })
            .unwrap();
        assert_eq!(l.pr(t.id).unwrap(), None);
        let mut rec = PrRecord {
            task: t.id,
            number: 7,
            url: "https://github.com/o/r/pull/7".into(),
            pushed_head: Some("abc".into()),
            body_digest: None,
            check_run: Some(99),
            check_head: Some("abc".into()),
            check_digest: Some("d".into()),
            check_done: true,
            last_comment: 5,
            last_review: 6,
            seen_updated: Some("2026-11-24T00:00:00Z".into()),
            merged_noted: false,
            closed: false,
            reopen: true,
        };
        l.record_pr(&rec, true, Timestamp(2)).unwrap();
        assert_eq!(l.pr(t.id).unwrap().as_ref(), Some(&rec));
        rec.last_comment = 8;
        rec.reopen = false;
        rec.pushed_head = Some("stale".into());
        l.save_pr(&rec).unwrap();
        let saved = l.pr(t.id).unwrap().unwrap();
        assert_eq!(saved.last_comment, 8);
        assert!(saved.reopen, "only set_reopen changes it");
        assert_eq!(
            saved.pushed_head.as_deref(),
            Some("abc"),
            "only set_pushed_head changes it"
        );
        l.set_reopen(t.id, false).unwrap();
        l.set_pushed_head(t.id, "def").unwrap();
        rec.pushed_head = Some("def".into());
        assert_eq!(l.prs().unwrap(), vec![rec]);
        let opened = l.events(t.id).unwrap().pop().unwrap();
        match opened.what {
            Evidence::PrOpened(pr) => assert_eq!(pr.found_existing, Some(true)),
            other => panic!("{other:?}"),
        }

        let by = Actor::Person("alice".into());
        let t = l.set_priority(t.id, &by, 5, Timestamp(3)).unwrap();
        assert_eq!(t.priority, 5);
        let e = l.events(t.id).unwrap().pop().unwrap();
        assert_eq!(
            e.what,
            Evidence::PriorityChanged(PriorityChanged { from: 0, to: 5 })
        );
        l.cancel(t.id, &by, "no", Timestamp(4)).unwrap();
        assert!(matches!(
            l.set_priority(t.id, &by, 1, Timestamp(5)),
            Err(LedgerError::Refused(..))
        ));
    }

    #[test]
    fn new_ids_skip_tasks_git_remembers_and_request_ids_make_adds_safe_to_retry() {
        let (_d, mut l) = ledger();
        let taken = |id: TaskId| id.0 == 1 || id.0 == 2;
        let a = l
            .add_task(&new_task("a", &[], 0), Timestamp(1), &taken)
            .unwrap();
        assert_eq!(a.id, TaskId(3));
        let b = l
            .add_task(&new_task("b", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        assert_eq!(b.id, TaskId(4));
        let mut req = new_task("c", &[], 0);
        req.request_id = Some("r1".into());
        let c = l.add_task(&req, Timestamp(2), &|_| false).unwrap();
        let again = l.add_task(&req, Timestamp(3), &|_| false).unwrap();
        assert_eq!((c.id, again.id), (TaskId(5), TaskId(5)));
        req.title = "d".into();
        assert!(matches!(
            l.add_task(&req, Timestamp(4), &|_| false),
            Err(LedgerError::Refused(..))
        ));
        assert_eq!(l.tasks(None).unwrap().len(), 3);
    }

    #[test]
    fn blank_ledgers_are_told_apart_from_real_ones() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("l.db");
        assert!(Ledger::is_blank(&path).unwrap(), "missing");
        std::fs::write(&path, b"").unwrap();
        assert!(Ledger::is_blank(&path).unwrap(), "empty file");
        std::fs::remove_file(&path).unwrap();
        let mut l = Ledger::open(&path).unwrap();
        assert!(Ledger::is_blank(&path).unwrap(), "no tasks");
        l.set_meta("new_ledger", &json!({"archive": "x"})).unwrap();
        assert!(!Ledger::is_blank(&path).unwrap(), "begun on purpose");
        assert_eq!(l.meta("new_ledger").unwrap().unwrap()["archive"], "x");
        let other = dir.path().join("o.db");
        Ledger::open(&other)
            .unwrap()
            .add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        assert!(!Ledger::is_blank(&other).unwrap(), "has a task");
    }

    #[test]
    fn tasks_get_short_stable_ids_and_branches() {
        let (_d, mut l) = ledger();
        let a = l
            .add_task(&new_task("Fix login", &["auth"], 0), Timestamp(1), &|_| {
                false
            })
            .unwrap();
        let b = l
            .add_task(&new_task("Add docs", &[], 0), Timestamp(2), &|_| false)
            .unwrap();
        assert_eq!(
            (a.id.to_string(), b.id.to_string()),
            ("t1".into(), "t2".into())
        );
        assert_eq!(a.branch, "switchyard/t1-fix-login");
        assert_eq!(a.subsystems[0].as_str(), "auth");
        assert_eq!(a.state, TaskState::Open);
        let events = l.events(a.id).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind(), EventKind::Created);
        assert_eq!(events[0].by, Actor::Person("planner".into()));
    }

    #[test]
    fn claims_respect_caps_and_explain_refusals() {
        let (_d, mut l) = ledger();
        for i in 0..3 {
            l.add_task(
                &new_task(&format!("t{i}"), &["auth"], 0),
                Timestamp(1),
                &|_| false,
            )
            .unwrap();
        }
        let caps = Caps {
            per_subsystem: [(SubsystemName::new("auth").unwrap(), 2)].into(),
            global: None,
        };
        let c1 = claim(&mut l, None, "a", &caps, 10).unwrap();
        let c2 = claim(&mut l, None, "b", &caps, 10).unwrap();
        assert_eq!((c1.task.id, c2.task.id), (TaskId(1), TaskId(2)));
        assert_ne!(c1.task.port_base, c2.task.port_base);
        let err = claim(&mut l, None, "c", &caps, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nothing can be claimed: 1 open task(s), all held back by caps (t3: subsystem auth is at its cap of 2: t1, t2 hold its slots)"
        );
        let err = claim(&mut l, Some(TaskId(3)), "c", &caps, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot claim t3: subsystem auth is at its cap of 2: t1, t2 hold its slots"
        );
        let err = claim(&mut l, Some(TaskId(1)), "c", &caps, 10).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t1 is claimed by a (lease until "),
            "{err}"
        );
        // The holder claiming again renews instead of failing.
        let again = claim(&mut l, Some(TaskId(1)), "a", &caps, 20).unwrap();
        assert!(again.renewed);
        // Releasing frees the slot for t3. The claim ends; who executed it last stays.
        let released = l
            .release(
                TaskId(1),
                &Actor::Agent("a".into()),
                Release::Released,
                Timestamp(30),
            )
            .unwrap();
        assert_eq!(
            (released.agent, released.executor.as_deref()),
            (None, Some("a"))
        );
        assert_eq!(
            claim(&mut l, None, "c", &caps, 40).unwrap().task.id,
            TaskId(1)
        );
        let executors: Vec<Option<String>> = l
            .tasks(None)
            .unwrap()
            .into_iter()
            .map(|t| t.executor)
            .collect();
        assert_eq!(executors, vec![Some("c".into()), Some("b".into()), None]);
    }

    #[test]
    fn only_the_holder_heartbeats_or_releases() {
        let (_d, mut l) = ledger();
        l.add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        claim(&mut l, None, "a", &Caps::default(), 10).unwrap();
        let err = l
            .heartbeat(TaskId(1), "b", Timestamp(20), Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(err.to_string(), "t1 is claimed by a, not by b");
        let err = l
            .release(
                TaskId(1),
                &Actor::Agent("b".into()),
                Release::Released,
                Timestamp(20),
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "t1 is claimed by a, not by b");
        let t = l
            .heartbeat(TaskId(1), "a", Timestamp(20), Duration::from_secs(60))
            .unwrap();
        assert_eq!(t.lease_expires_at, Some(Timestamp(60_020)));
        assert!(matches!(l.task(TaskId(9)), Err(LedgerError::NotFound(_))));
    }

    #[test]
    fn leases_expire_into_open_keeping_the_branch() {
        let (_d, mut l) = ledger();
        l.add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        claim(&mut l, None, "a", &Caps::default(), 0).unwrap();
        // Not while its worktree is being made.
        assert!(l.expired(Timestamp(60_000)).unwrap().is_empty());
        l.set_worktree(TaskId(1), Some("/wt/t1"), true, None, Timestamp(5))
            .unwrap();
        assert!(l.expired(Timestamp(59_999)).unwrap().is_empty());
        assert_eq!(l.expired(Timestamp(60_000)).unwrap(), vec![TaskId(1)]);
        let t = l
            .release(
                TaskId(1),
                &Actor::Daemon,
                Release::LeaseExpired,
                Timestamp(60_000),
            )
            .unwrap();
        assert_eq!(t.state, TaskState::Open);
        assert_eq!(t.branch, "switchyard/t1-x");
        let kinds: Vec<EventKind> = l
            .events(TaskId(1))
            .unwrap()
            .iter()
            .map(|e| e.kind())
            .collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Created,
                EventKind::Claimed,
                EventKind::LeaseExpired
            ]
        );
    }

    /// The background job's list: finished tasks that still hold a worktree in place,
    /// each marked once its worktree was kept for uncommitted changes.
    #[test]
    fn finished_tasks_holding_a_worktree_are_listed_to_let_go() {
        let (_d, mut l) = ledger();
        let daemon = Actor::Daemon;
        for title in ["landed", "cancelled", "open", "unready"] {
            l.add_task(&new_task(title, &[], 0), Timestamp(1), &|_| false)
                .unwrap();
        }
        for n in 1..=4 {
            claim(&mut l, Some(TaskId(n)), "a", &Caps::default(), 2).unwrap();
            let path = format!("/wt/t{n}");
            l.set_worktree(TaskId(n), Some(&path), n != 4, None, Timestamp(3))
                .unwrap();
        }
        let listed = |l: &Ledger| -> Vec<(i64, bool)> {
            l.worktrees_to_let_go()
                .unwrap()
                .into_iter()
                .map(|(t, kept)| (t.id.0, kept))
                .collect()
        };
        assert_eq!(listed(&l), vec![]);
        let landed = |commit: &str| Merged {
            base: "main".into(),
            commit: commit.into(),
        };
        l.merged(TaskId(1), landed("c1"), Timestamp(4)).unwrap();
        l.cancel(TaskId(2), &daemon, "no", Timestamp(4)).unwrap();
        l.release(TaskId(3), &daemon, Release::Released, Timestamp(4))
            .unwrap();
        l.merged(TaskId(4), landed("c4"), Timestamp(4)).unwrap();
        assert_eq!(listed(&l), vec![(1, false), (2, false)]);
        // Kept for its uncommitted changes: still listed, but marked, so the job does not
        // record that again at every round.
        let kept = Evidence::WorktreeKept(evidence::WorktreeKept {
            path: "/wt/t2".into(),
            reason: "uncommitted changes".into(),
        });
        l.note(TaskId(2), &daemon, kept, Timestamp(5)).unwrap();
        assert_eq!(listed(&l), vec![(1, false), (2, true)]);
        l.set_worktree(TaskId(1), None, false, None, Timestamp(6))
            .unwrap();
        assert_eq!(listed(&l), vec![(2, true)]);
    }

    /// The checkout follower's list: landings after the newest one followed; on a ledger
    /// that never said, the one an older daemon was still following when it stopped.
    /// Adds, claims and submits task `id`, and starts integrating it onto `onto`, built
    /// on `stack`.
    fn integrating(l: &mut Ledger, id: TaskId, onto: &str, stack: Vec<TaskId>) {
        l.add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        claim(l, Some(id), "a", &Caps::default(), 2).unwrap();
        let submitted = Submitted {
            head: "tip".into(),
            merge_base: "mb".into(),
            paths: 1,
            subsystems: vec![],
            checkpoints: vec![],
            out_of_scope: vec![],
            attempt: 0,
            touches_everything: None,
        };
        l.submit(id, "a", "tip", TaskState::Queued, submitted, Timestamp(3))
            .unwrap();
        let built = Built {
            lineage: onto.into(),
            stack,
        };
        l.start_integration(id, onto, &built, "tip", Timestamp(4))
            .unwrap();
    }

    #[test]
    fn landings_are_followed_in_order_from_where_the_ledger_says() {
        let (_d, mut l) = ledger();
        let land = |l: &mut Ledger, id: i64, from: &str, to: &str, step: Step| {
            let id = TaskId(id);
            integrating(l, id, from, vec![]);
            let moved = Evidence::BaseMoved(evidence::BaseMoved {
                from: from.into(),
                to: to.into(),
                base: "main".into(),
            });
            l.advance(id, Step::BaseMoved, Some(to), moved, Timestamp(5))
                .unwrap();
            if step == Step::BranchUpdated {
                let updated = Evidence::BranchUpdated(evidence::BranchUpdated::Moved {
                    branch: "b".into(),
                    from: None,
                    to: to.into(),
                });
                l.advance(id, step, None, updated, Timestamp(6)).unwrap();
            }
        };
        let pending = |l: &Ledger| -> Vec<(i64, String, String)> {
            l.landings_to_follow()
                .unwrap()
                .into_iter()
                .map(|g| (g.task.0, g.from, g.to))
                .collect()
        };
        land(&mut l, 1, "a", "b", Step::BranchUpdated);
        land(&mut l, 2, "b", "c", Step::BaseMoved);
        l.init_checkout_followed().unwrap();
        assert_eq!(pending(&l), vec![(2, "b".into(), "c".into())]);
        // Said once: a later start changes nothing.
        l.init_checkout_followed().unwrap();
        land(&mut l, 3, "c", "d", Step::BranchUpdated);
        let next = l.landings_to_follow().unwrap().remove(0);
        let updated = Evidence::CheckoutUpdated(evidence::CheckoutUpdated {
            path: "/repo".into(),
            to: "c".into(),
            already: false,
        });
        l.followed(&next, Some(updated.clone()), Timestamp(7))
            .unwrap();
        assert_eq!(pending(&l), vec![(3, "c".into(), "d".into())]);
        let last = l.last_event(TaskId(2), EventKind::CheckoutUpdated).unwrap();
        assert_eq!(last.unwrap().what, updated);
        let next = l.landings_to_follow().unwrap().remove(0);
        l.followed(&next, None, Timestamp(8)).unwrap();
        assert_eq!(pending(&l), vec![]);
    }

    #[test]
    fn a_candidate_built_on_a_task_that_went_back_forgets_its_lineage() {
        let (_d, mut l) = ledger();
        for n in 1..=2 {
            let id = TaskId(n);
            integrating(&mut l, id, "B", (1..n).map(TaskId).collect());
        }
        assert_eq!(
            l.integration(TaskId(2)).unwrap().unwrap().stack,
            vec![TaskId(1)]
        );
        let back = Evidence::Rejected(evidence::Rejected {
            reason: "failed".into(),
        });
        l.give_back(
            TaskId(1),
            &Actor::Daemon,
            back,
            Back {
                lease: Duration::from_secs(60),
                limit: 5,
            },
            Timestamp(5),
        )
        .unwrap();
        // A later attempt of t1 that lands must not pass for the one t2 was built on.
        assert_eq!(l.integration(TaskId(2)).unwrap().unwrap().lineage, "");
    }

    #[test]
    fn events_are_append_only() {
        let (_d, mut l) = ledger();
        l.add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        let err = l
            .conn
            .execute("UPDATE events SET kind = 'x'", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"));
        let err = l.conn.execute("DELETE FROM events", []).unwrap_err();
        assert!(err.to_string().contains("append-only"));
    }

    #[test]
    fn events_after_a_mark_are_what_was_committed_since_in_order() {
        let (_d, mut l) = ledger();
        let start = l.event_marks().unwrap();
        let before = l.changes();
        l.add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        l.add_task(&new_task("y", &[], 0), Timestamp(2), &|_| false)
            .unwrap();
        assert_ne!(l.changes(), before, "a write is seen as a change");
        let unchanged = l.changes();
        l.tasks(None).unwrap();
        assert_eq!(l.changes(), unchanged, "a read is not");
        let (events, queue, marks) = l.events_after(start).unwrap();
        let titles: Vec<(TaskId, EventKind)> =
            events.iter().map(|e| (e.task, e.what.kind())).collect();
        assert_eq!(
            titles,
            [
                (TaskId(1), EventKind::Created),
                (TaskId(2), EventKind::Created)
            ]
        );
        assert!(queue.is_empty());
        assert_eq!(marks, l.event_marks().unwrap());
        let (events, _, again) = l.events_after(marks).unwrap();
        assert!(events.is_empty());
        assert_eq!(again, marks);
    }

    #[test]
    fn ports_skip_blocks_in_use_elsewhere() {
        let (_d, mut l) = ledger();
        l.add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        let c = l
            .claim(&ClaimRequest {
                task: None,
                exclude: &[],
                agent: "a",
                caps: &Caps::default(),
                now: Timestamp(0),
                lease: Duration::from_secs(1),
                base_sha: "abc",
                port_is_free: &|p| p != PORT_START + 3,
                remote: false,
            })
            .unwrap();
        assert_eq!(c.task.port_base, Some(PORT_START + PORT_BLOCK));
    }

    /// A database with the schema the release before this one left (four migrations).
    fn schema_of_the_last_release(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn
    }

    #[test]
    fn a_ledger_of_the_last_release_opens_and_keeps_its_tasks() {
        // The schema as the release before this one left it (four migrations), with a
        // claim by a name written before names were normalized.
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = schema_of_the_last_release(&path);
            conn.execute(
                "INSERT INTO tasks (seq, title, body, accept, scope, priority, state, branch,
                     agent, created_at, updated_at)
                 VALUES (7, 'Old', '', '[]', '[]', 0, 'claimed', 'switchyard/t7-old', ' Alice ', 1, 1)",
                [],
            )
            .unwrap();
        }
        let mut l = Ledger::open(&path).unwrap();
        let t = l.task(TaskId(7)).unwrap();
        assert_eq!(t.agent.as_deref(), Some("alice"));
        assert!(!Ledger::is_blank(&path).unwrap());
        assert_eq!(l.base_expected().unwrap(), None);
        assert_eq!(l.paused().unwrap(), None);
        let next = l
            .add_task(&new_task("New", &[], 0), Timestamp(2), &|_| false)
            .unwrap();
        assert_eq!(next.id, TaskId(8));
        assert!(l.queue_events().unwrap().is_empty());
    }

    #[test]
    fn events_an_older_version_wrote_still_read_whatever_their_shape() {
        // Payloads as earlier versions wrote them: a `created` before request ids, a
        // release that also noted the branch, a verify before attempts were noted, and
        // two shapes no type of this version has (a `what` since renamed, a PR replaced
        // under another field name).
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = schema_of_the_last_release(&path);
            conn.execute(
                "INSERT INTO tasks (seq, title, body, accept, scope, priority, state, branch,
                     created_at, updated_at)
                 VALUES (7, 'Old', '', '[]', '[]', 0, 'open', 'switchyard/t7-old', 1, 1)",
                [],
            )
            .unwrap();
            for (kind, evidence) in [
                (
                    "created",
                    r#"{"title":"Old","scope":[],"subsystems":[],"priority":0}"#,
                ),
                (
                    "released",
                    r#"{"agent":"alice","lease_expires_at":null,"branch":"switchyard/t7-old"}"#,
                ),
                ("verify_passed", r#"{"head":"h","onto":"o","commands":[]}"#),
                (
                    "changed_on_github",
                    r#"{"what":"changed","reason":"r","head":"h"}"#,
                ),
                (
                    "pr_opened",
                    r#"{"number":2,"url":"u","head":"h","replaces_closed_pr":true}"#,
                ),
            ] {
                conn.execute(
                    "INSERT INTO events (task, at, kind, actor, state, evidence)
                     VALUES (7, 1, ?1, '{\"kind\":\"daemon\"}', NULL, ?2)",
                    params![kind, evidence],
                )
                .unwrap();
            }
        }
        let l = Ledger::open(&path).unwrap();
        let events = l.events(TaskId(7)).unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind().as_str()).collect();
        assert_eq!(
            kinds,
            [
                "created",
                "released",
                "verify_passed",
                "changed_on_github",
                "pr_opened"
            ]
        );
        assert!(matches!(&events[0].what, Evidence::Created(c) if c.request_id.is_none()));
        assert!(
            matches!(&events[1].what, Evidence::Released(r) if r.agent.as_deref() == Some("alice"))
        );
        assert!(matches!(&events[2].what, Evidence::VerifyPassed(v) if v.attempt.is_none()));
        // No shape fits: kept as it was written, and shown so.
        assert_eq!(
            events[3].what,
            Evidence::Unknown {
                kind: EventKind::ChangedOnGithub,
                raw: json!({"what": "changed", "reason": "r", "head": "h"})
            }
        );
        assert!(matches!(&events[4].what, Evidence::PrOpened(p) if p.replaces.is_none()));
        let changed = l
            .last_event(TaskId(7), EventKind::ChangedOnGithub)
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&changed).unwrap()["evidence"]["what"],
            "changed"
        );
    }

    #[test]
    fn reopening_migrates_nothing_twice() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("l.db");
        Ledger::open(&path)
            .unwrap()
            .add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.tasks(None).unwrap().len(), 1);
        l.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(l);
        assert!(matches!(
            Ledger::open(&path),
            Err(LedgerError::TooNew { found: 99, .. })
        ));
    }

    /// The CLI's reads without a daemon: the ledger must be there, at this version's
    /// schema, and is only ever read.
    #[test]
    fn an_offline_reader_reads_what_is_there_and_nothing_else() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("l.db");
        assert!(matches!(
            Ledger::open_offline(&path),
            Err(LedgerError::Missing(_))
        ));
        assert!(!path.exists(), "a missing ledger is not created");
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            Ledger::open_offline(&path),
            Err(LedgerError::Missing(_))
        ));
        std::fs::remove_file(&path).unwrap();

        let mut l = Ledger::open(&path).unwrap();
        l.add_task(&new_task("x", &[], 0), Timestamp(1), &|_| false)
            .unwrap();
        let reader = Ledger::open_offline(&path).unwrap();
        assert_eq!(reader.tasks(None).unwrap().len(), 1);
        // A writer goes on beside it, and the reader sees its commits.
        l.add_task(&new_task("y", &[], 0), Timestamp(2), &|_| false)
            .unwrap();
        assert_eq!(reader.tasks(None).unwrap().len(), 2);
        // No statement that writes gets through, whatever it is.
        assert!(
            reader
                .conn
                .execute("UPDATE tasks SET title = 'z'", [])
                .is_err()
        );
        assert!(reader.conn.execute_batch("CREATE TABLE t (x)").is_err());
        drop(reader);

        let known = MIGRATIONS.len() as i64;
        for (version, old) in [(known - 1, true), (known + 1, false)] {
            l.conn.pragma_update(None, "user_version", version).unwrap();
            match (Ledger::open_offline(&path), old) {
                (Err(LedgerError::TooOld { found, .. }), true)
                | (Err(LedgerError::TooNew { found, .. }), false) => assert_eq!(found, version),
                (other, _) => panic!("version {version}: {:?}", other.map(|_| ())),
            }
        }
    }
}

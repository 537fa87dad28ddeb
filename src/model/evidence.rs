//! What each ledger event says happened: one payload type per [`EventKind`].
//!
//! This is the contract every reader of the ledger shares (the CLI, the GitHub card,
//! `GET /v1/tasks/{id}/events`, and the dashboard, metrics and agent interface to
//! come). An event is stored as its kind (the `kind` column) and its payload as a JSON
//! object (the `evidence` column); on the API it is `{"event": kind, "evidence":
//! payload}` inside the [`Event`](super::Event). Field names and shapes are those the
//! ledger has always written, so old ledgers and old clients read the same JSON.
//!
//! Reading is lenient, because ledgers outlive the code that wrote them: fields an
//! older version did not write are `Option` (and `null` when written back); fields a
//! payload no longer has are ignored; and a payload that does not fit its type at all
//! is kept as it was, as [`Evidence::Unknown`], instead of failing the whole read.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    EventKind, Pause, QueueEventKind, Stop, StopPart, SubsystemName, TaskId, TaskState, Timestamp,
};

/// An event's kind and its payload. Serialized as `{"event": kind, "evidence": payload}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "evidence", rename_all = "snake_case")]
pub enum Evidence {
    Created(Created),
    Claimed(Claimed),
    WorktreeReady(WorktreeReady),
    WorktreeFailed(WorktreeFailed),
    WorktreeRestored(WorktreeRestored),
    WorktreeRecycled(WorktreeRecycled),
    WorktreeKept(WorktreeKept),
    /// The setup command (`[worktrees] setup`) of a fresh worktree did not succeed; the
    /// claim stands.
    SetupFailed(Finished),
    Released(LetGo),
    LeaseExpired(LetGo),
    Cancelled(Cancelled),
    Submitted(Submitted),
    Approved(Attempt),
    Rejected(Rejected),
    IntegrationStarted(IntegrationStarted),
    Rebased(Rebased),
    Conflict(Conflict),
    VerifyPassed(VerifyPassed),
    VerifyFailed(VerifyFailed),
    NeedsApproval(NeedsApproval),
    BaseRaced(BaseRaced),
    CandidateFailed(CandidateFailed),
    Flaked(Flaked),
    Carried(Carried),
    BaseMoved(BaseMoved),
    Pushed(Pushed),
    BranchUpdated(BranchUpdated),
    Merged(Merged),
    CheckoutUpdated(CheckoutUpdated),
    CheckoutLeftBehind(CheckoutLeftBehind),
    IntegrationFailed(IntegrationFailed),
    PrOpened(PrOpened),
    ChangedOnGithub(ChangedOnGithub),
    Retried(Attempt),
    PriorityChanged(PriorityChanged),
    LeftBase(LeftBase),
    ReviewStarted(ReviewStarted),
    ReviewApproved(Verdict),
    ChangesRequested(Verdict),
    ReviewExpired(ReviewExpired),
    NeedsReview(NeedsApproval),
    AttemptLimit(AttemptLimit),
    ConflictWarning(ConflictWarning),
    ConflictCleared(ConflictCleared),
    /// A payload that does not fit its kind's type: written by a version whose shape
    /// for that kind differed. Only ever made by reading (never write one); kept as
    /// written, so it reads back and shows exactly as stored. Readers treat it as "this
    /// happened, details unknown". An event of a kind this version does not know at all
    /// still fails to read, as it did before payloads were typed.
    #[serde(untagged)]
    Unknown {
        #[serde(rename = "event")]
        kind: EventKind,
        #[serde(rename = "evidence")]
        raw: Value,
    },
}

impl Evidence {
    /// The event's kind (the ledger's `kind` column).
    pub fn kind(&self) -> EventKind {
        match self {
            Evidence::Created(_) => EventKind::Created,
            Evidence::Claimed(_) => EventKind::Claimed,
            Evidence::WorktreeReady(_) => EventKind::WorktreeReady,
            Evidence::WorktreeFailed(_) => EventKind::WorktreeFailed,
            Evidence::WorktreeRestored(_) => EventKind::WorktreeRestored,
            Evidence::WorktreeRecycled(_) => EventKind::WorktreeRecycled,
            Evidence::WorktreeKept(_) => EventKind::WorktreeKept,
            Evidence::SetupFailed(_) => EventKind::SetupFailed,
            Evidence::Released(_) => EventKind::Released,
            Evidence::LeaseExpired(_) => EventKind::LeaseExpired,
            Evidence::Cancelled(_) => EventKind::Cancelled,
            Evidence::Submitted(_) => EventKind::Submitted,
            Evidence::Approved(_) => EventKind::Approved,
            Evidence::Rejected(_) => EventKind::Rejected,
            Evidence::IntegrationStarted(_) => EventKind::IntegrationStarted,
            Evidence::Rebased(_) => EventKind::Rebased,
            Evidence::Conflict(_) => EventKind::Conflict,
            Evidence::VerifyPassed(_) => EventKind::VerifyPassed,
            Evidence::VerifyFailed(_) => EventKind::VerifyFailed,
            Evidence::NeedsApproval(_) => EventKind::NeedsApproval,
            Evidence::BaseRaced(_) => EventKind::BaseRaced,
            Evidence::CandidateFailed(_) => EventKind::CandidateFailed,
            Evidence::Flaked(_) => EventKind::Flaked,
            Evidence::Carried(_) => EventKind::Carried,
            Evidence::BaseMoved(_) => EventKind::BaseMoved,
            Evidence::Pushed(_) => EventKind::Pushed,
            Evidence::BranchUpdated(_) => EventKind::BranchUpdated,
            Evidence::Merged(_) => EventKind::Merged,
            Evidence::CheckoutUpdated(_) => EventKind::CheckoutUpdated,
            Evidence::CheckoutLeftBehind(_) => EventKind::CheckoutLeftBehind,
            Evidence::IntegrationFailed(_) => EventKind::IntegrationFailed,
            Evidence::PrOpened(_) => EventKind::PrOpened,
            Evidence::ChangedOnGithub(_) => EventKind::ChangedOnGithub,
            Evidence::Retried(_) => EventKind::Retried,
            Evidence::PriorityChanged(_) => EventKind::PriorityChanged,
            Evidence::LeftBase(_) => EventKind::LeftBase,
            Evidence::ReviewStarted(_) => EventKind::ReviewStarted,
            Evidence::ReviewApproved(_) => EventKind::ReviewApproved,
            Evidence::ChangesRequested(_) => EventKind::ChangesRequested,
            Evidence::ReviewExpired(_) => EventKind::ReviewExpired,
            Evidence::NeedsReview(_) => EventKind::NeedsReview,
            Evidence::AttemptLimit(_) => EventKind::AttemptLimit,
            Evidence::ConflictWarning(_) => EventKind::ConflictWarning,
            Evidence::ConflictCleared(_) => EventKind::ConflictCleared,
            Evidence::Unknown { kind, .. } => *kind,
        }
    }

    /// The payload alone, as the ledger's `evidence` column holds it.
    pub fn payload(&self) -> serde_json::Result<Value> {
        match self {
            Evidence::Unknown { raw, .. } => Ok(raw.clone()),
            typed => Ok(serde_json::to_value(typed)?["evidence"].take()),
        }
    }

    /// A stored payload of `kind`, typed; [`Evidence::Unknown`] when it does not fit.
    pub fn from_payload(kind: EventKind, raw: Value) -> Evidence {
        let mut tagged = serde_json::json!({"event": kind, "evidence": raw});
        // Only the untagged fallback can fail to match, and it takes any payload; the
        // error arm is there so no input can make a read fail.
        Evidence::deserialize(&tagged).unwrap_or_else(|_| Evidence::Unknown {
            kind,
            raw: tagged["evidence"].take(),
        })
    }

    /// The one-line reason a person or the daemon gave, for the events that carry one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Evidence::Cancelled(e) => Some(&e.reason),
            Evidence::Rejected(e) => Some(&e.reason),
            Evidence::ChangesRequested(e) => Some(&e.notes),
            Evidence::WorktreeKept(e) => Some(&e.reason),
            Evidence::Conflict(Conflict::Unreplayable { reason, .. }) => Some(reason),
            Evidence::VerifyFailed(VerifyFailed {
                failure: VerifyFailure::TimedOut { reason, .. },
                ..
            }) => Some(reason),
            Evidence::ChangedOnGithub(e) => Some(e.reason()),
            _ => None,
        }
    }
}

/// A queue event's kind and its payload (the queue's own log, `GET /v1/events`, and a
/// [`Pause`]). Serialized as `{"event": kind, "evidence": payload}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "evidence", rename_all = "snake_case")]
pub enum QueueEvidence {
    BaseMovedOutside(BaseNotOurs),
    BaseRewound(BaseNotOurs),
    Resumed(Resumed),
    Paused(Paused),
    /// A payload that does not fit its kind's type, kept as written: as
    /// [`Evidence::Unknown`]. A pause must read whatever its payload, or the queue would
    /// seem not paused.
    #[serde(untagged)]
    Unknown {
        #[serde(rename = "event")]
        kind: QueueEventKind,
        #[serde(rename = "evidence")]
        raw: Value,
    },
}

impl QueueEvidence {
    /// The event's kind (the `queue_events` table's `kind` column).
    pub fn kind(&self) -> QueueEventKind {
        match self {
            QueueEvidence::BaseMovedOutside(_) => QueueEventKind::BaseMovedOutside,
            QueueEvidence::BaseRewound(_) => QueueEventKind::BaseRewound,
            QueueEvidence::Resumed(_) => QueueEventKind::Resumed,
            QueueEvidence::Paused(_) => QueueEventKind::Paused,
            QueueEvidence::Unknown { kind, .. } => *kind,
        }
    }

    /// The payload alone, as the ledger's `evidence` column holds it.
    pub fn payload(&self) -> serde_json::Result<Value> {
        match self {
            QueueEvidence::Unknown { raw, .. } => Ok(raw.clone()),
            typed => Ok(serde_json::to_value(typed)?["evidence"].take()),
        }
    }

    /// A stored payload of `kind`, typed; [`QueueEvidence::Unknown`] when it does not fit.
    pub fn from_payload(kind: QueueEventKind, raw: Value) -> QueueEvidence {
        let mut tagged = serde_json::json!({"event": kind, "evidence": raw});
        QueueEvidence::deserialize(&tagged).unwrap_or_else(|_| QueueEvidence::Unknown {
            kind,
            raw: tagged["evidence"].take(),
        })
    }
}

/// `base_moved_outside`, `base_rewound`: the base is not where the lander left it, so
/// the queue paused until a person resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseNotOurs {
    /// The base branch's name.
    pub base: String,
    /// The tip the lander expected.
    pub expected: String,
    /// The tip found.
    pub found: String,
    /// The commits in between, newest first, at most 50: the ones added (moved outside)
    /// or lost (rewound).
    pub commits: Vec<CommitLine>,
    /// How many commits are in between, all of them.
    pub count: u64,
    /// Merged tasks whose landed commit is no longer in the base (rewound only; each
    /// also gets a `left_base` event).
    pub tasks: Vec<TaskId>,
    /// What a person can do about it.
    pub hint: String,
}

/// One commit, as `git log` shows it in a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitLine {
    pub commit: String,
    pub subject: String,
}

/// `resumed`: a person ended their pause (`stop`), and/or accepted the base as it is
/// after it moved outside the queue (`base`, `was`, `paused`); the queue goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    /// The base tip accepted: what the lander expects from now on. Absent when the
    /// queue was not paused by a move of the base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The tip the lander expected before (`null`: it had none yet).
    #[serde(default)]
    pub was: Option<String>,
    /// The pause by a move of the base this ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Box<Pause>>,
    /// The person's pause this ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Box<Stop>>,
}

/// `paused`: a person pulled the stop switch (`switchyard pause`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    pub reason: String,
    /// What it stops: everything when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<StopPart>,
}

/// `review_started`: a reviewer took the review of exactly `commit` (its diff is
/// `merge_base..commit`), with a read-only checkout of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewStarted {
    pub attempt: i64,
    pub commit: String,
    pub merge_base: String,
    pub worktree: String,
    pub lease_expires_at: Timestamp,
}

/// `review_approved`, `changes_requested`: a reviewer's verdict on exactly `commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub attempt: i64,
    pub commit: String,
    /// What the reviewer says; required when asking for changes.
    pub notes: String,
    /// Where the verdict came from when not the CLI (a GitHub PR review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `review_expired`: the reviewer went silent; the review is handed out again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewExpired {
    pub reviewer: super::Actor,
    pub lease_expires_at: Timestamp,
}

/// `attempt_limit`: the task came back `limit` times; it waits for a person (approve
/// another round, cancel, or release it for someone else), with every return's event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLimit {
    pub limit: u32,
    /// Each time it came back, oldest first: the event that sent it back.
    pub returns: Vec<super::Event>,
}

/// `conflict_warning`: a dry-run merge (`git merge-tree`) of the task's branch with
/// another live task's (`with`), or with the base (`with` absent), conflicts in `paths`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictWarning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<TaskId>,
    /// The other task's executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub paths: Vec<String>,
}

/// `conflict_cleared`: the collision with `with` (the base when absent) is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictCleared {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<TaskId>,
}

/// `created`: a task was added, as the planner wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub title: String,
    /// The scope as given: subsystem names and path globs.
    pub scope: Vec<String>,
    /// What the scope resolved to through the ownership config.
    pub subsystems: Vec<SubsystemName>,
    /// Higher runs first.
    pub priority: i64,
    /// The client's id for the request that made the task, if it gave one. Absent from
    /// ledgers older than request ids.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The tasks it comes after (`--after`, a plan's `after`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<TaskId>,
    /// Its local name in the plan file that created it (`switchyard plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_name: Option<String>,
}

/// `claimed`: an agent took the task under a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claimed {
    /// The agent's normalized name.
    pub agent: String,
    pub lease_expires_at: Timestamp,
    pub branch: String,
    /// The base commit the task's branch starts from (kept from an earlier claim).
    pub base_sha: String,
    /// The first of the task's block of ports (`SWITCHYARD_PORT_BASE`).
    pub port_base: u16,
    /// `claim --remote`: the executor works elsewhere and pushes the branch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
}

/// Where a task's worktree came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeSource {
    /// A ready worktree of the pool, moved into place.
    Pool,
    /// A new `git worktree add`.
    Fresh,
    /// The worktree already there (a restart finishing an interrupted claim).
    Existing,
}

impl WorktreeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            WorktreeSource::Pool => "pool",
            WorktreeSource::Fresh => "fresh",
            WorktreeSource::Existing => "existing",
        }
    }
}

/// When the daemon did something on its own initiative rather than for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum After {
    /// While recovering, after a restart, what a crash left half done.
    Restart,
}

/// `worktree_ready`: the task's worktree is in place at `path`, on its branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeReady {
    pub path: String,
    pub branch: String,
    /// The branch's tip it was checked out at (absent after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    pub source: WorktreeSource,
    /// How long providing it took, in milliseconds (absent after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// `restart`: a claim interrupted by a crash got its worktree when the daemon came
    /// back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
}

/// `worktree_failed`: no worktree could be made, so the claim was given back (the task
/// is open again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeFailed {
    pub error: String,
    /// `restart`: found while finishing an interrupted claim after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
    /// The agent whose claim was given back.
    #[serde(default)]
    pub agent: Option<String>,
    /// When that claim's lease would have run out.
    #[serde(default)]
    pub lease_expires_at: Option<Timestamp>,
}

/// `worktree_restored`: the worktree was missing after a restart and was made again
/// from the branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeRestored {
    pub path: String,
    pub branch: String,
    /// The branch's tip it was made at.
    pub head: String,
}

/// `worktree_recycled`: the task let go of a clean worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeRecycled {
    /// Where the worktree was.
    pub path: String,
    pub to: RecycledTo,
}

/// Where a let-go worktree went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecycledTo {
    /// Detached, cleaned and kept for the next claim.
    #[serde(rename = "pool")]
    Pool,
    #[serde(rename = "removed")]
    Removed,
    /// It could be neither pooled nor removed.
    #[serde(rename = "left in place")]
    LeftInPlace,
}

/// `worktree_kept`: the task let go of its worktree, but it had uncommitted changes, so
/// it stays with the task (and comes back with its next claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeKept {
    pub path: String,
    /// Why it was kept (`uncommitted changes`).
    pub reason: String,
}

/// `released`, `lease_expired`: the claim ended without a submission; the task is open
/// again. Branch, commits and worktree stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetGo {
    /// The agent that held the claim.
    #[serde(default)]
    pub agent: Option<String>,
    /// When its lease ran out, or would have.
    #[serde(default)]
    pub lease_expires_at: Option<Timestamp>,
}

/// `cancelled`: a person gave the task up. Its branch stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    pub reason: String,
    /// The state it was cancelled in.
    pub was: TaskState,
    pub branch: String,
}

/// `submitted`: the executor asked for integration of the commit `head`; the task went
/// to the queue, or to a checkpoint when `checkpoints` is not empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The commit submitted: exactly what the queue integrates and an approval covers.
    pub head: String,
    /// Its merge base with the base, what the change is measured against.
    pub merge_base: String,
    /// How many paths the change touches (renames count on both sides).
    pub paths: u64,
    /// Subsystems owning at least one changed path.
    pub subsystems: Vec<SubsystemName>,
    /// One line for each reason a person must approve; empty when none applies.
    pub checkpoints: Vec<String>,
    /// Changed paths outside the task's scope.
    pub out_of_scope: Vec<OutOfScope>,
    /// Which submission of the task this is (1, 2, ...); the ledger counts it.
    pub attempt: i64,
    /// Why the change touches every subsystem (a path no subsystem owns, or the config):
    /// with `[queue] lanes`, it waits for every lane. Absent: only `subsystems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touches_everything: Option<String>,
}

/// A changed path outside the task's scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutOfScope {
    pub path: String,
    /// The subsystem that owns it; `None`: unowned.
    pub owner: Option<SubsystemName>,
}

/// `approved`, `retried`: the attempt a person approved at a checkpoint, or asked to
/// integrate again (`/switchyard retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: i64,
}

/// `rejected`: a person sent the task back to its executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// What the executor should change.
    pub reason: String,
}

/// `integration_started`: the queue began integrating the task's submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationStarted {
    pub attempt: i64,
    /// The commit it is built onto: the base's tip, or the candidate ahead of it.
    pub onto: String,
    /// The submitted commit.
    pub branch_tip: String,
}

/// `rebased`: the candidate commit was built onto `onto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebased {
    pub onto: String,
    /// The candidate: what is verified and, if it passes, lands.
    pub head: String,
    /// How many commits it adds on top of `onto` (1 with `land = "squash"`).
    pub commits: u64,
    /// Subsystems owning at least one path it changes.
    pub subsystems: Vec<SubsystemName>,
}

/// `conflict`: the change could not be built onto `onto`; back to the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Conflict {
    /// Paths changed on both sides conflict.
    Paths {
        onto: String,
        /// With `land = "rebase"`, the first commit that does not apply; `null` for a
        /// squash (absent from older ledgers).
        #[serde(default)]
        commit: Option<String>,
        paths: Vec<String>,
        /// What the executor can do about it.
        hint: String,
    },
    /// Nothing to land, or the branch cannot be replayed faithfully.
    Unreplayable {
        onto: String,
        /// Always empty: no path is to blame.
        paths: Vec<String>,
        reason: String,
    },
}

impl Conflict {
    pub fn onto(&self) -> &str {
        match self {
            Conflict::Paths { onto, .. } | Conflict::Unreplayable { onto, .. } => onto,
        }
    }
}

/// `verify_passed`: the candidate `head` passed verify on exactly `onto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyPassed {
    pub head: String,
    pub onto: String,
    /// The submission verified (absent from older ledgers).
    #[serde(default)]
    pub attempt: Option<i64>,
    #[serde(flatten)]
    pub by: Verification,
}

/// How a candidate passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Verification {
    /// `verify = "local"`: every verify command, in order.
    Commands { commands: Vec<Finished> },
    /// `verify = "github-checks"`: every required check.
    Checks { checks: Vec<CheckResult> },
}

/// `verify_failed`: the candidate `head` failed verify on `onto`; back to the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyFailed {
    pub head: String,
    pub onto: String,
    /// The submission verified (absent from older ledgers).
    #[serde(default)]
    pub attempt: Option<i64>,
    #[serde(flatten)]
    pub failure: VerifyFailure,
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VerifyFailure {
    /// `verify = "local"`: the command that failed, after those that passed.
    Command {
        failed: Finished,
        passed: Vec<Finished>,
        /// The same command's earlier failed runs (`[queue] retries`), oldest first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        retried: Vec<Finished>,
    },
    /// `verify = "github-checks"`: the required check that did not succeed.
    Check { check: CheckResult },
    /// `verify = "github-checks"`: the checks did not finish within `verify_timeout`.
    TimedOut {
        reason: String,
        /// The checks still pending.
        pending: Vec<String>,
    },
}

/// `needs_approval`: built onto the base, the change needs an approval it does not have
/// (what it touches changed); back to the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedsApproval {
    /// The candidate commit.
    pub head: String,
    /// One line for each reason a person must approve.
    pub checkpoints: Vec<String>,
}

/// `base_raced`: what the candidate was built onto is no longer what it lands on (the
/// base moved, or the candidate ahead went); it is built again onto `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRaced {
    /// What it was built onto.
    pub was: String,
    /// What it is built onto next.
    pub now: String,
    /// The remote whose base moved (written by older versions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// `candidate_failed`: the candidate, built onto another candidate's commit, conflicted
/// or failed verify. Not yet the task's verdict: the one below may be the cause. Once it
/// is first in line the task goes back with `failure` (as its own event); if the one
/// below goes first, it is built again (`base_raced`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateFailed {
    /// The commit it was built onto: the head of the candidate ahead.
    pub onto: String,
    /// What failed, as the event the task goes back with if the failure is its own.
    pub failure: Box<Evidence>,
}

/// `flaked`: a verify command failed on the candidate `head`, then passed when run
/// again on it: a flaky command, not the task's failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flaked {
    pub head: String,
    /// The command, as configured.
    pub command: String,
    /// Its failed runs, before the one that passed.
    pub failed: Vec<Finished>,
}

/// `carried` (`[queue] lanes`): the verified candidate was replayed onto the base's
/// tip as `head`, without verifying again: the base moved since it was built only by
/// changes that ownership declares independent of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// The base tip it now sits on, and the commit that will land.
    pub onto: String,
    pub head: String,
    /// The commit that passed verify.
    pub verified: String,
    /// How many commits landed in other lanes since it was built.
    pub past: u64,
}

/// `base_moved`: the base branch now points at the verified commit: the task landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseMoved {
    /// The tip it was verified on, and moved from.
    pub from: String,
    /// The commit that landed.
    pub to: String,
    /// The base branch's name.
    pub base: String,
}

/// `pushed`: the verified commit was pushed to the remote's base branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    pub remote: String,
    pub commit: String,
}

/// `branch_updated`: what became of the task's branch after it landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BranchUpdated {
    /// The branch points at the commit that landed.
    Moved {
        branch: String,
        /// Where it pointed before (absent when it was already there).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        to: String,
    },
    /// The branch had commits after the submitted ones: left as it was.
    LeftAlone {
        branch: String,
        /// Where it points (`null`: the branch is gone).
        left_at: Option<String>,
        /// The commit that landed.
        landed: String,
    },
}

/// `merged`: the task landed and is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merged {
    /// The base branch's name.
    pub base: String,
    /// The commit that landed.
    pub commit: String,
}

/// `checkout_updated`: the user's checkout of the base was fast-forwarded to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutUpdated {
    pub path: String,
    pub to: String,
    /// It was there already (followed just before a crash, or by hand).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already: bool,
}

/// `checkout_left_behind`: the user's checkout of the base has local changes, so it was
/// left at `at` while the base moved to `base_now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutLeftBehind {
    pub path: String,
    pub at: String,
    pub base_now: String,
    /// What the user can do about it.
    pub hint: String,
}

/// `integration_failed`: a step kept failing for a reason that is not a conflict or a
/// failed verify; back to the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationFailed {
    /// The last failure.
    pub error: String,
    /// How many times in a row it failed.
    pub tries: u32,
}

/// `pr_opened`: the task's pull request on GitHub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrOpened {
    pub number: u64,
    pub url: String,
    /// On the task's first PR: whether it existed already (a crash came between
    /// creating it and recording it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_existing: Option<bool>,
    /// On a PR that replaces one a person closed (GitHub would not reopen it): the
    /// commit submitted...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// ...and the number of the PR it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<u64>,
}

/// What a person did to a task's PR on GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrChange {
    Closed,
    BranchDeleted,
    BaseChanged,
    /// Commits the submission does not contain were pushed to its branch.
    Pushed,
}

/// `changed_on_github`: a person changed the task's PR on GitHub, so it left the queue
/// and went back to its executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChangedOnGithub {
    /// Seen by the GitHub loop on the PR.
    OnPr {
        what: PrChange,
        reason: String,
        /// The PR's number.
        pr: u64,
        /// The PR's head commit as GitHub shows it.
        head: String,
    },
    /// Seen by the queue just before merging.
    BeforeMerge {
        what: PrChange,
        reason: String,
        /// The verified commit that did not land.
        head: String,
    },
    /// Found when pushing the task's branch: it holds commits the submission does not.
    OnRemoteBranch {
        what: PrChange,
        reason: String,
        /// The remote branch's tip.
        remote_tip: Option<String>,
    },
}

impl ChangedOnGithub {
    pub fn what(&self) -> PrChange {
        match self {
            ChangedOnGithub::OnPr { what, .. }
            | ChangedOnGithub::BeforeMerge { what, .. }
            | ChangedOnGithub::OnRemoteBranch { what, .. } => *what,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            ChangedOnGithub::OnPr { reason, .. }
            | ChangedOnGithub::BeforeMerge { reason, .. }
            | ChangedOnGithub::OnRemoteBranch { reason, .. } => reason,
        }
    }
}

/// `priority_changed`: a person changed the task's priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityChanged {
    pub from: i64,
    pub to: i64,
}

/// `left_base`: the task's landed commit is no longer in the base (someone rewound
/// it). The task stays merged; the queue paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftBase {
    /// The commit that landed.
    pub commit: String,
    /// The base branch's name.
    pub base: String,
    /// The base's tip now.
    pub now: String,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Exited {
        code: i32,
    },
    /// Ended by a signal it did not get from us.
    Signaled {
        signal: i32,
    },
    TimedOut,
    /// Stopped because the daemon is shutting down.
    Cancelled,
}

/// What a finished command leaves as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The command as configured (run with `sh -c`).
    pub command: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// Its whole output (stdout and stderr, capped).
    pub log: PathBuf,
    /// The last lines of its output.
    pub tail: Vec<String>,
}

impl Finished {
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Exited { code: 0 }
    }
}

/// One required GitHub check, as judged for a candidate commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check run's name or the status's context.
    pub name: String,
    pub kind: CheckKind,
    /// GitHub's conclusion of a check run (`success`, `failure`, ...) or state of a
    /// status (`success`, `failure`, `error`).
    pub conclusion: String,
    /// The check's own summary (or title), or the status's description.
    pub summary: String,
    /// Where its details are.
    pub url: String,
}

/// Whether a required check was found as a check run or as a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    CheckRun,
    Status,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn finished(command: &str, outcome: Outcome) -> Finished {
        Finished {
            command: command.into(),
            outcome,
            duration_ms: 12,
            log: "/logs/t1/verify-1.log".into(),
            tail: vec!["ok".into()],
        }
    }

    fn check(name: &str, conclusion: &str) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: CheckKind::CheckRun,
            conclusion: conclusion.into(),
            summary: "3 tests".into(),
            url: "https://ci/1".into(),
        }
    }

    /// One payload of every shape each kind is written in, with the JSON the ledger
    /// stores for it.
    pub(crate) fn samples() -> Vec<(Evidence, Value)> {
        let cart = SubsystemName::new("cart").unwrap();
        let at = Timestamp(1_795_499_546_123);
        let at_text = "2026-11-24T05:52:26.123Z";
        let log = "/logs/t1/verify-1.log";
        vec![
            (
                Evidence::Created(Created {
                    title: "Fix".into(),
                    scope: vec!["cart".into()],
                    subsystems: vec![cart.clone()],
                    priority: 2,
                    request_id: None,
                    after: Vec::new(),
                    plan_name: None,
                }),
                json!({"title": "Fix", "scope": ["cart"], "subsystems": ["cart"], "priority": 2, "request_id": null}),
            ),
            (
                Evidence::Created(Created {
                    title: "Fix".into(),
                    scope: vec![],
                    subsystems: vec![],
                    priority: 0,
                    request_id: None,
                    after: vec![TaskId(3)],
                    plan_name: Some("schema".into()),
                }),
                json!({"title": "Fix", "scope": [], "subsystems": [], "priority": 0, "request_id": null,
                       "after": ["t3"], "plan_name": "schema"}),
            ),
            (
                Evidence::Claimed(Claimed {
                    agent: "ada".into(),
                    lease_expires_at: at,
                    branch: "switchyard/t1-fix".into(),
                    base_sha: "b0".into(),
                    port_base: 20000,
                    remote: false,
                }),
                json!({"agent": "ada", "lease_expires_at": at_text, "branch": "switchyard/t1-fix", "base_sha": "b0", "port_base": 20000}),
            ),
            (
                Evidence::WorktreeReady(WorktreeReady {
                    path: "/w/t1".into(),
                    branch: "b".into(),
                    head: Some("h".into()),
                    source: WorktreeSource::Pool,
                    ms: Some(19),
                    after: None,
                }),
                json!({"path": "/w/t1", "branch": "b", "head": "h", "source": "pool", "ms": 19}),
            ),
            (
                Evidence::WorktreeReady(WorktreeReady {
                    path: "/w/t1".into(),
                    branch: "b".into(),
                    head: None,
                    source: WorktreeSource::Existing,
                    ms: None,
                    after: Some(After::Restart),
                }),
                json!({"path": "/w/t1", "branch": "b", "source": "existing", "after": "restart"}),
            ),
            (
                Evidence::WorktreeFailed(WorktreeFailed {
                    error: "disk full".into(),
                    after: None,
                    agent: Some("ada".into()),
                    lease_expires_at: Some(at),
                }),
                json!({"error": "disk full", "agent": "ada", "lease_expires_at": at_text}),
            ),
            (
                Evidence::WorktreeFailed(WorktreeFailed {
                    error: "gone".into(),
                    after: Some(After::Restart),
                    agent: None,
                    lease_expires_at: None,
                }),
                json!({"error": "gone", "after": "restart", "agent": null, "lease_expires_at": null}),
            ),
            (
                Evidence::WorktreeRestored(WorktreeRestored {
                    path: "/w/t1".into(),
                    branch: "b".into(),
                    head: "h".into(),
                }),
                json!({"path": "/w/t1", "branch": "b", "head": "h"}),
            ),
            (
                Evidence::WorktreeRecycled(WorktreeRecycled {
                    path: "/w/t1".into(),
                    to: RecycledTo::Pool,
                }),
                json!({"path": "/w/t1", "to": "pool"}),
            ),
            (
                Evidence::WorktreeKept(WorktreeKept {
                    path: "/w/t1".into(),
                    reason: "uncommitted changes".into(),
                }),
                json!({"path": "/w/t1", "reason": "uncommitted changes"}),
            ),
            (
                Evidence::SetupFailed(finished("make deps", Outcome::Exited { code: 7 })),
                json!({"command": "make deps", "outcome": "exited", "code": 7, "duration_ms": 12, "log": log, "tail": ["ok"]}),
            ),
            (
                Evidence::Released(LetGo {
                    agent: Some("ada".into()),
                    lease_expires_at: Some(at),
                }),
                json!({"agent": "ada", "lease_expires_at": at_text}),
            ),
            (
                Evidence::LeaseExpired(LetGo {
                    agent: Some("ada".into()),
                    lease_expires_at: Some(at),
                }),
                json!({"agent": "ada", "lease_expires_at": at_text}),
            ),
            (
                Evidence::Cancelled(Cancelled {
                    reason: "obsolete".into(),
                    was: TaskState::Queued,
                    branch: "b".into(),
                }),
                json!({"reason": "obsolete", "was": "queued", "branch": "b"}),
            ),
            (
                Evidence::Submitted(Submitted {
                    head: "h".into(),
                    merge_base: "m".into(),
                    paths: 2,
                    subsystems: vec![cart.clone()],
                    checkpoints: vec!["scope change: docs/x.md (docs)".into()],
                    out_of_scope: vec![
                        OutOfScope {
                            path: "docs/x.md".into(),
                            owner: Some(SubsystemName::new("docs").unwrap()),
                        },
                        OutOfScope {
                            path: "x".into(),
                            owner: None,
                        },
                    ],
                    attempt: 1,
                    touches_everything: None,
                }),
                json!({"head": "h", "merge_base": "m", "paths": 2, "subsystems": ["cart"],
                       "checkpoints": ["scope change: docs/x.md (docs)"],
                       "out_of_scope": [{"path": "docs/x.md", "owner": "docs"}, {"path": "x", "owner": null}],
                       "attempt": 1}),
            ),
            (
                Evidence::Approved(Attempt { attempt: 2 }),
                json!({"attempt": 2}),
            ),
            (
                Evidence::Rejected(Rejected {
                    reason: "needs a test".into(),
                }),
                json!({"reason": "needs a test"}),
            ),
            (
                Evidence::IntegrationStarted(IntegrationStarted {
                    attempt: 1,
                    onto: "o".into(),
                    branch_tip: "t".into(),
                }),
                json!({"attempt": 1, "onto": "o", "branch_tip": "t"}),
            ),
            (
                Evidence::Rebased(Rebased {
                    onto: "o".into(),
                    head: "h".into(),
                    commits: 1,
                    subsystems: vec![cart],
                }),
                json!({"onto": "o", "head": "h", "commits": 1, "subsystems": ["cart"]}),
            ),
            (
                Evidence::Conflict(Conflict::Paths {
                    onto: "o".into(),
                    commit: None,
                    paths: vec!["a.txt".into()],
                    hint: "rebase".into(),
                }),
                json!({"onto": "o", "commit": null, "paths": ["a.txt"], "hint": "rebase"}),
            ),
            (
                Evidence::Conflict(Conflict::Paths {
                    onto: "o".into(),
                    commit: Some("c".into()),
                    paths: vec!["a.txt".into()],
                    hint: "rebase".into(),
                }),
                json!({"onto": "o", "commit": "c", "paths": ["a.txt"], "hint": "rebase"}),
            ),
            (
                Evidence::Conflict(Conflict::Unreplayable {
                    onto: "o".into(),
                    paths: vec![],
                    reason: "already there".into(),
                }),
                json!({"onto": "o", "paths": [], "reason": "already there"}),
            ),
            (
                Evidence::VerifyPassed(VerifyPassed {
                    head: "h".into(),
                    onto: "o".into(),
                    attempt: Some(1),
                    by: Verification::Commands {
                        commands: vec![finished("make test", Outcome::Exited { code: 0 })],
                    },
                }),
                json!({"head": "h", "onto": "o", "attempt": 1, "commands": [
                    {"command": "make test", "outcome": "exited", "code": 0, "duration_ms": 12, "log": log, "tail": ["ok"]}]}),
            ),
            (
                Evidence::VerifyPassed(VerifyPassed {
                    head: "h".into(),
                    onto: "o".into(),
                    attempt: Some(1),
                    by: Verification::Checks {
                        checks: vec![check("build", "success")],
                    },
                }),
                json!({"head": "h", "onto": "o", "attempt": 1, "checks": [
                    {"name": "build", "kind": "check_run", "conclusion": "success", "summary": "3 tests", "url": "https://ci/1"}]}),
            ),
            (
                Evidence::VerifyFailed(VerifyFailed {
                    head: "h".into(),
                    onto: "o".into(),
                    attempt: Some(2),
                    failure: VerifyFailure::Command {
                        failed: finished("make test", Outcome::TimedOut),
                        passed: vec![finished("make lint", Outcome::Exited { code: 0 })],
                        retried: vec![],
                    },
                }),
                json!({"head": "h", "onto": "o", "attempt": 2,
                       "failed": {"command": "make test", "outcome": "timed_out", "duration_ms": 12, "log": log, "tail": ["ok"]},
                       "passed": [{"command": "make lint", "outcome": "exited", "code": 0, "duration_ms": 12, "log": log, "tail": ["ok"]}]}),
            ),
            (
                Evidence::VerifyFailed(VerifyFailed {
                    head: "h".into(),
                    onto: "o".into(),
                    attempt: Some(2),
                    failure: VerifyFailure::Check {
                        check: CheckResult {
                            kind: CheckKind::Status,
                            ..check("build", "failure")
                        },
                    },
                }),
                json!({"head": "h", "onto": "o", "attempt": 2,
                       "check": {"name": "build", "kind": "status", "conclusion": "failure", "summary": "3 tests", "url": "https://ci/1"}}),
            ),
            (
                Evidence::VerifyFailed(VerifyFailed {
                    head: "h".into(),
                    onto: "o".into(),
                    attempt: Some(2),
                    failure: VerifyFailure::TimedOut {
                        reason: "timed out after 60s waiting for build".into(),
                        pending: vec!["build".into()],
                    },
                }),
                json!({"head": "h", "onto": "o", "attempt": 2,
                       "reason": "timed out after 60s waiting for build", "pending": ["build"]}),
            ),
            (
                Evidence::NeedsApproval(NeedsApproval {
                    head: "h".into(),
                    checkpoints: vec!["subsystem cart requires approval".into()],
                }),
                json!({"head": "h", "checkpoints": ["subsystem cart requires approval"]}),
            ),
            (
                Evidence::BaseRaced(BaseRaced {
                    was: "a".into(),
                    now: "b".into(),
                    remote: None,
                }),
                json!({"was": "a", "now": "b"}),
            ),
            (
                Evidence::Flaked(Flaked {
                    head: "h".into(),
                    command: "make test".into(),
                    failed: vec![finished("make test", Outcome::Exited { code: 1 })],
                }),
                json!({"head": "h", "command": "make test", "failed": [
                    {"command": "make test", "outcome": "exited", "code": 1, "duration_ms": 12, "log": "/logs/t1/verify-1.log", "tail": ["ok"]}]}),
            ),
            (
                Evidence::Carried(Carried {
                    onto: "b2".into(),
                    head: "h2".into(),
                    verified: "h1".into(),
                    past: 1,
                }),
                json!({"onto": "b2", "head": "h2", "verified": "h1", "past": 1}),
            ),
            (
                Evidence::CandidateFailed(CandidateFailed {
                    onto: "h1".into(),
                    failure: Box::new(Evidence::BaseRaced(BaseRaced {
                        was: "a".into(),
                        now: "b".into(),
                        remote: None,
                    })),
                }),
                json!({"onto": "h1", "failure": {"event": "base_raced", "evidence": {"was": "a", "now": "b"}}}),
            ),
            (
                Evidence::BaseMoved(BaseMoved {
                    from: "a".into(),
                    to: "b".into(),
                    base: "main".into(),
                }),
                json!({"from": "a", "to": "b", "base": "main"}),
            ),
            (
                Evidence::Pushed(Pushed {
                    remote: "origin".into(),
                    commit: "c".into(),
                }),
                json!({"remote": "origin", "commit": "c"}),
            ),
            (
                Evidence::BranchUpdated(BranchUpdated::Moved {
                    branch: "b".into(),
                    from: Some("a".into()),
                    to: "c".into(),
                }),
                json!({"branch": "b", "from": "a", "to": "c"}),
            ),
            (
                Evidence::BranchUpdated(BranchUpdated::Moved {
                    branch: "b".into(),
                    from: None,
                    to: "c".into(),
                }),
                json!({"branch": "b", "to": "c"}),
            ),
            (
                Evidence::BranchUpdated(BranchUpdated::LeftAlone {
                    branch: "b".into(),
                    left_at: None,
                    landed: "c".into(),
                }),
                json!({"branch": "b", "left_at": null, "landed": "c"}),
            ),
            (
                Evidence::Merged(Merged {
                    base: "main".into(),
                    commit: "c".into(),
                }),
                json!({"base": "main", "commit": "c"}),
            ),
            (
                Evidence::CheckoutUpdated(CheckoutUpdated {
                    path: "/repo".into(),
                    to: "c".into(),
                    already: false,
                }),
                json!({"path": "/repo", "to": "c"}),
            ),
            (
                Evidence::CheckoutLeftBehind(CheckoutLeftBehind {
                    path: "/repo".into(),
                    at: "a".into(),
                    base_now: "c".into(),
                    hint: "stash".into(),
                }),
                json!({"path": "/repo", "at": "a", "base_now": "c", "hint": "stash"}),
            ),
            (
                Evidence::IntegrationFailed(IntegrationFailed {
                    error: "disk full".into(),
                    tries: 3,
                }),
                json!({"error": "disk full", "tries": 3}),
            ),
            (
                Evidence::PrOpened(PrOpened {
                    number: 7,
                    url: "https://github.com/o/r/pull/7".into(),
                    found_existing: Some(false),
                    head: None,
                    replaces: None,
                }),
                json!({"number": 7, "url": "https://github.com/o/r/pull/7", "found_existing": false}),
            ),
            (
                Evidence::PrOpened(PrOpened {
                    number: 8,
                    url: "https://github.com/o/r/pull/8".into(),
                    found_existing: None,
                    head: Some("h".into()),
                    replaces: Some(7),
                }),
                json!({"number": 8, "url": "https://github.com/o/r/pull/8", "head": "h", "replaces": 7}),
            ),
            (
                Evidence::ChangedOnGithub(ChangedOnGithub::OnPr {
                    what: PrChange::Closed,
                    reason: "closed".into(),
                    pr: 7,
                    head: "h".into(),
                }),
                json!({"what": "closed", "reason": "closed", "pr": 7, "head": "h"}),
            ),
            (
                Evidence::ChangedOnGithub(ChangedOnGithub::BeforeMerge {
                    what: PrChange::BaseChanged,
                    reason: "retargeted".into(),
                    head: "h".into(),
                }),
                json!({"what": "base_changed", "reason": "retargeted", "head": "h"}),
            ),
            (
                Evidence::ChangedOnGithub(ChangedOnGithub::OnRemoteBranch {
                    what: PrChange::Pushed,
                    reason: "pushed".into(),
                    remote_tip: None,
                }),
                json!({"what": "pushed", "reason": "pushed", "remote_tip": null}),
            ),
            (
                Evidence::ChangedOnGithub(ChangedOnGithub::OnRemoteBranch {
                    what: PrChange::Pushed,
                    reason: "pushed".into(),
                    remote_tip: Some("r".into()),
                }),
                json!({"what": "pushed", "reason": "pushed", "remote_tip": "r"}),
            ),
            (
                Evidence::Retried(Attempt { attempt: 3 }),
                json!({"attempt": 3}),
            ),
            (
                Evidence::PriorityChanged(PriorityChanged { from: 0, to: 5 }),
                json!({"from": 0, "to": 5}),
            ),
            (
                Evidence::LeftBase(LeftBase {
                    commit: "c".into(),
                    base: "main".into(),
                    now: "a".into(),
                }),
                json!({"commit": "c", "base": "main", "now": "a"}),
            ),
            (
                Evidence::ReviewStarted(ReviewStarted {
                    attempt: 2,
                    commit: "c".into(),
                    merge_base: "m".into(),
                    worktree: "/w/review-t1".into(),
                    lease_expires_at: Timestamp(5),
                }),
                json!({"attempt": 2, "commit": "c", "merge_base": "m", "worktree": "/w/review-t1",
                       "lease_expires_at": "1970-01-01T00:00:00.005Z"}),
            ),
            (
                Evidence::ReviewApproved(Verdict {
                    attempt: 2,
                    commit: "c".into(),
                    notes: String::new(),
                    source: Some("github review 9".into()),
                }),
                json!({"attempt": 2, "commit": "c", "notes": "", "source": "github review 9"}),
            ),
            (
                Evidence::ChangesRequested(Verdict {
                    attempt: 1,
                    commit: "c".into(),
                    notes: "add a test".into(),
                    source: None,
                }),
                json!({"attempt": 1, "commit": "c", "notes": "add a test"}),
            ),
            (
                Evidence::ReviewExpired(ReviewExpired {
                    reviewer: super::super::Actor::Agent("rita".into()),
                    lease_expires_at: Timestamp(5),
                }),
                json!({"reviewer": {"kind": "agent", "name": "rita"}, "lease_expires_at": "1970-01-01T00:00:00.005Z"}),
            ),
            (
                Evidence::NeedsReview(NeedsApproval {
                    head: "h".into(),
                    checkpoints: vec!["review required".into()],
                }),
                json!({"head": "h", "checkpoints": ["review required"]}),
            ),
            (
                Evidence::AttemptLimit(AttemptLimit {
                    limit: 1,
                    returns: vec![super::super::Event {
                        at: Timestamp(5),
                        task: TaskId(1),
                        by: super::super::Actor::Person("lead".into()),
                        state: Some(TaskState::Returned),
                        what: Evidence::Rejected(Rejected {
                            reason: "no".into(),
                        }),
                    }],
                }),
                json!({"limit": 1, "returns": [{"at": "1970-01-01T00:00:00.005Z", "task": "t1",
                       "by": {"kind": "person", "name": "lead"}, "state": "returned", "event": "rejected",
                       "evidence": {"reason": "no"}}]}),
            ),
            (
                Evidence::ConflictWarning(ConflictWarning {
                    with: Some(TaskId(2)),
                    agent: Some("bob".into()),
                    paths: vec!["api/a.rs".into()],
                }),
                json!({"with": "t2", "agent": "bob", "paths": ["api/a.rs"]}),
            ),
            (
                Evidence::ConflictCleared(ConflictCleared { with: None }),
                json!({}),
            ),
        ]
    }

    #[test]
    fn every_kind_is_stored_as_its_json_and_reads_back_equal() {
        let samples = samples();
        for (evidence, stored) in &samples {
            let kind = evidence.kind();
            assert_eq!(&evidence.payload().unwrap(), stored, "{kind:?}");
            let read = Evidence::from_payload(kind, stored.clone());
            assert_eq!(&read, evidence, "{kind:?} read back as another shape");
            // On the API, inside an event: the kind's name and the same payload.
            let tagged = serde_json::to_value(evidence).unwrap();
            assert_eq!(tagged, json!({"event": kind.as_str(), "evidence": stored}));
            assert_eq!(
                serde_json::from_value::<Evidence>(tagged).unwrap(),
                *evidence
            );
        }
        let mut kinds: Vec<&str> = samples.iter().map(|(e, _)| e.kind().as_str()).collect();
        kinds.dedup();
        assert_eq!(kinds.len(), 44, "every kind has a sample: {kinds:?}");
    }

    #[test]
    fn every_queue_kind_is_stored_as_its_json_and_reads_back_equal() {
        let moved = BaseNotOurs {
            base: "main".into(),
            expected: "a".into(),
            found: "b".into(),
            commits: vec![CommitLine {
                commit: "b".into(),
                subject: "Hotfix".into(),
            }],
            count: 1,
            tasks: vec![TaskId(3)],
            hint: "resume".into(),
        };
        let moved_json = json!({"base": "main", "expected": "a", "found": "b",
            "commits": [{"commit": "b", "subject": "Hotfix"}], "count": 1, "tasks": ["t3"],
            "hint": "resume"});
        let pause = Pause {
            since: Timestamp(0),
            by: crate::model::Actor::Daemon,
            reason: "main moved".into(),
            what: QueueEvidence::BaseMovedOutside(moved.clone()),
        };
        let pause_json = json!({"since": "1970-01-01T00:00:00.000Z", "by": {"kind": "daemon"},
            "reason": "main moved", "event": "base_moved_outside", "evidence": moved_json});
        assert_eq!(serde_json::to_value(&pause).unwrap(), pause_json);
        assert_eq!(
            serde_json::from_value::<Pause>(pause_json.clone()).unwrap(),
            pause
        );
        for (evidence, stored) in [
            (
                QueueEvidence::BaseMovedOutside(moved.clone()),
                moved_json.clone(),
            ),
            (QueueEvidence::BaseRewound(moved), moved_json),
            (
                QueueEvidence::Resumed(Resumed {
                    base: Some("b".into()),
                    was: Some("a".into()),
                    paused: Some(Box::new(pause)),
                    stop: None,
                }),
                json!({"base": "b", "was": "a", "paused": pause_json}),
            ),
            (
                QueueEvidence::Paused(Paused {
                    reason: "over budget".into(),
                    only: Some(StopPart::Claims),
                }),
                json!({"reason": "over budget", "only": "claims"}),
            ),
        ] {
            let kind = evidence.kind();
            assert_eq!(evidence.payload().unwrap(), stored, "{kind:?}");
            assert_eq!(QueueEvidence::from_payload(kind, stored), evidence);
        }
        // A pause whose payload fits no shape still reads as a pause.
        let odd = json!({"since": "1970-01-01T00:00:00.000Z", "by": {"kind": "daemon"},
            "reason": "r", "event": "base_rewound", "evidence": {"tip": "x"}});
        let read: Pause = serde_json::from_value(odd).unwrap();
        assert_eq!(read.what.kind(), QueueEventKind::BaseRewound);
        assert!(matches!(read.what, QueueEvidence::Unknown { .. }));
    }

    #[test]
    fn old_payloads_still_read() {
        // Before request ids; before the attempt was noted on a verify.
        let created = json!({"title": "Fix", "scope": [], "subsystems": [], "priority": 0});
        match Evidence::from_payload(EventKind::Created, created) {
            Evidence::Created(c) => assert_eq!(c.request_id, None),
            other => panic!("{other:?}"),
        }
        let passed = json!({"head": "h", "onto": "o", "commands": []});
        match Evidence::from_payload(EventKind::VerifyPassed, passed) {
            Evidence::VerifyPassed(v) => {
                assert_eq!(v.attempt, None);
                assert_eq!(v.by, Verification::Commands { commands: vec![] });
            }
            other => panic!("{other:?}"),
        }
        // A release that noted the branch too: the extra field is ignored.
        let released = json!({"agent": "ada", "lease_expires_at": null, "branch": "b"});
        assert_eq!(
            Evidence::from_payload(EventKind::Released, released),
            Evidence::Released(LetGo {
                agent: Some("ada".into()),
                lease_expires_at: None
            })
        );
        // A shape this version has no type for is kept as written, not refused.
        let odd = json!({"what": "changed", "reason": "r", "head": "h"});
        let read = Evidence::from_payload(EventKind::ChangedOnGithub, odd.clone());
        assert_eq!(
            read,
            Evidence::Unknown {
                kind: EventKind::ChangedOnGithub,
                raw: odd.clone()
            }
        );
        assert_eq!(read.kind(), EventKind::ChangedOnGithub);
        assert_eq!(read.payload().unwrap(), odd);
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            json!({"event": "changed_on_github", "evidence": odd})
        );
        let odd = json!("not even an object");
        assert!(matches!(
            Evidence::from_payload(EventKind::Merged, odd),
            Evidence::Unknown { .. }
        ));
    }
}

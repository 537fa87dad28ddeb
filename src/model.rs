//! Names and ids shared across the domain, as types rather than bare strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod evidence;

pub use evidence::{Evidence, QueueEvidence};

/// The name of a subsystem: ASCII letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit, so that it can never be mistaken for a path glob on the command line
/// and is safe inside a branch name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SubsystemName(String);

impl<'de> Deserialize<'de> for SubsystemName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SubsystemName, D::Error> {
        SubsystemName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl SubsystemName {
    pub fn new(name: &str) -> Result<SubsystemName, String> {
        let mut chars = name.chars();
        let valid_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid_first && valid_rest && name.len() <= 64 {
            Ok(SubsystemName(name.to_owned()))
        } else {
            Err(format!(
                "invalid subsystem name {name:?}: use 1 to 64 ASCII letters, digits, '-', '_' \
                 or '.', starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A valid name made from `base` (any text), not yet in `taken`, which it joins:
    /// lowercase letters, digits and `-`/`_`/`.`, a numeric suffix on a clash, at most
    /// 64 characters with the suffix.
    pub fn unique(
        base: &str,
        fallback: &str,
        taken: &mut std::collections::BTreeSet<String>,
    ) -> SubsystemName {
        let mut slug = String::new();
        for c in base.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
                slug.push(c);
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let slug = if slug.is_empty() { fallback } else { slug };
        let fit = |s: &str, room: usize| -> String {
            let cut: String = s.chars().take(room).collect();
            cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        };
        let mut name = fit(slug, 64);
        let mut n = 2;
        while taken.contains(&name) {
            let suffix = format!("-{n}");
            name = format!("{}{suffix}", fit(slug, 64 - suffix.len()));
            n += 1;
        }
        taken.insert(name.clone());
        SubsystemName::new(&name).expect("built from valid characters only")
    }
}

impl fmt::Display for SubsystemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Task priorities: higher runs first, within these bounds everywhere (the CLI, the
/// API, GitHub's `/switchyard priority`).
pub const PRIORITY: std::ops::RangeInclusive<i64> = -1000..=1000;

/// Limits on what a planner writes into a task: the title is one line of at most this
/// many characters, the request (body) at most this many bytes, at most this many
/// acceptance criteria of at most `MAX_ACCEPT_BYTES` each.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_ACCEPT: usize = 50;
pub const MAX_ACCEPT_BYTES: usize = 1024;

/// What is wrong with a task's text (`title` already trimmed), if anything: the same
/// rules for `task add` and for a plan file.
pub fn check_task_text(title: &str, body: &str, accept: &[String]) -> Result<(), String> {
    if title.is_empty() {
        return Err("the title is empty".into());
    }
    if title.contains(['\n', '\r']) {
        return Err("the title must be one line (put details in --body)".into());
    }
    // Text is printed to terminals: no escape sequences or other control characters.
    let controls = |t: &str| {
        t.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    };
    if controls(title) || controls(body) || accept.iter().any(|a| controls(a)) {
        return Err(
            "the title, body and acceptance criteria must not contain control characters".into(),
        );
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(format!(
            "the title is {chars} characters; the limit is {MAX_TITLE_CHARS} (put details in --body)"
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(format!(
            "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
            body.len()
        ));
    }
    if accept.len() > MAX_ACCEPT
        || accept
            .iter()
            .any(|a| a.trim().is_empty() || a.len() > MAX_ACCEPT_BYTES)
    {
        return Err(format!(
            "acceptance criteria must be 1 to {MAX_ACCEPT} non-empty lines of at most {MAX_ACCEPT_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Whether `priority` is within [`PRIORITY`], with the message when it is not.
pub fn check_priority(priority: i64) -> Result<(), String> {
    if PRIORITY.contains(&priority) {
        return Ok(());
    }
    Err(format!(
        "the priority is {priority}; it must be from {} to {}",
        PRIORITY.start(),
        PRIORITY.end()
    ))
}

/// A task's id: `t` and a number, short and stable (`t1`, `t2`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub i64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl FromStr for TaskId {
    type Err = String;
    fn from_str(s: &str) -> Result<TaskId, String> {
        s.strip_prefix('t')
            // Digits only: `i64::from_str` also takes a leading `+`, which would make
            // `t+5` a second spelling of `t5`.
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n > 0 && !s[1..].starts_with('0'))
            .map(TaskId)
            .ok_or_else(|| format!("invalid task id {s:?}: task ids look like t1, t2, ..."))
    }
}

impl TaskId {
    /// The task a ref or a directory name belongs to, if it is one of switchyard's:
    /// `refs/heads/switchyard/t12-fix-login`, `refs/switchyard/submitted/t12`, `t12`.
    pub fn owning(name: &str) -> Option<TaskId> {
        // A remote's branch counts as the branch: refs/remotes/<remote>/switchyard/...
        let local;
        let name = match name.strip_prefix("refs/remotes/") {
            Some(rest) => match rest.split_once('/') {
                Some((_, branch)) => {
                    local = format!("refs/heads/{branch}");
                    local.as_str()
                }
                None => return None,
            },
            None => name,
        };
        let rest = name
            .strip_prefix("refs/heads/switchyard/verify/")
            .or_else(|| name.strip_prefix("refs/heads/switchyard/"))
            .or_else(|| name.strip_prefix("refs/switchyard/submitted/"))
            .unwrap_or(name);
        let id = rest.split_once('-').map_or(rest, |(id, _)| id);
        id.parse().ok()
    }
}

impl Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TaskId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a task is in its life. The names are SPEC.md's and keep their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for an executor.
    Open,
    /// An executor holds it under a lease and works in its worktree.
    Claimed,
    /// Submitted; waiting in the merge queue.
    Queued,
    /// Submitted; waiting for a reviewer's verdict (`[review] required`) before the queue.
    AwaitingReview,
    /// Being rebased and verified.
    Verifying,
    /// Waiting for a person's decision at a checkpoint.
    AwaitingApproval,
    /// Back with its executor, with the evidence of what failed.
    Returned,
    Merged,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 9] = [
        TaskState::Open,
        TaskState::Claimed,
        TaskState::Queued,
        TaskState::AwaitingReview,
        TaskState::Verifying,
        TaskState::AwaitingApproval,
        TaskState::Returned,
        TaskState::Merged,
        TaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "open",
            TaskState::Claimed => "claimed",
            TaskState::Queued => "queued",
            TaskState::AwaitingReview => "awaiting_review",
            TaskState::Verifying => "verifying",
            TaskState::AwaitingApproval => "awaiting_approval",
            TaskState::Returned => "returned",
            TaskState::Merged => "merged",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// States in which an executor holds the task under a lease: it may heartbeat,
    /// release or submit it, and the lease can run out.
    pub fn holds_lease(self) -> bool {
        match self {
            TaskState::Claimed | TaskState::Returned => true,
            TaskState::Open
            | TaskState::Queued
            | TaskState::AwaitingReview
            | TaskState::Verifying
            | TaskState::AwaitingApproval
            | TaskState::Merged
            | TaskState::Cancelled => false,
        }
    }

    /// States that count against the caps: from the claim until the work lands or is
    /// given up. A submitted task keeps its slot, so a task that comes back from the
    /// queue can never push its subsystem over the cap.
    pub fn holds_slot(self) -> bool {
        match self {
            TaskState::Claimed
            | TaskState::Returned
            | TaskState::Queued
            | TaskState::AwaitingReview
            | TaskState::Verifying
            | TaskState::AwaitingApproval => true,
            TaskState::Open | TaskState::Merged | TaskState::Cancelled => false,
        }
    }

    /// Merged and cancelled tasks are done; nothing moves them again.
    pub fn is_final(self) -> bool {
        match self {
            TaskState::Merged | TaskState::Cancelled => true,
            TaskState::Open
            | TaskState::Claimed
            | TaskState::Queued
            | TaskState::AwaitingReview
            | TaskState::Verifying
            | TaskState::AwaitingApproval
            | TaskState::Returned => false,
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<TaskState, String> {
        TaskState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TaskState::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown state {s:?} (states: {})", names.join(", "))
            })
    }
}

/// Who did something: an executor, a person, or the daemon itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Actor {
    Agent(String),
    Person(String),
    Daemon,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Agent(n) => write!(f, "agent {n}"),
            Actor::Person(n) => write!(f, "{n}"),
            Actor::Daemon => f.write_str("the daemon"),
        }
    }
}

/// The longest agent or person name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// An agent's or a person's name as switchyard records and compares it: Unicode
/// compatibility form (NFKC, so a fullwidth `Ｃａｒｏｌ` is `carol`), lowercase, without
/// surrounding space, inner runs of space as one. `Carol`, ` carol ` and `CAROL` are one
/// person, so nobody approves their own change by spelling their name differently.
/// Control characters and invisible ones (zero-width, bidi overrides) are refused: they
/// would make two names that print alike compare unlike.
pub fn normalize_name(raw: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = raw.nfkc().collect::<String>().to_lowercase();
    let name = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    // Control characters, every format character (Unicode's category Cf) and the other
    // default-ignorable code points: all print as nothing, or as something else.
    let invisible = |c: char| {
        c.is_control()
            || matches!(c,
                '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}'
                | '\u{070F}' | '\u{0890}'..='\u{0891}' | '\u{08E2}' | '\u{115F}' | '\u{1160}'
                | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
                | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}')
    };
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || raw.trim().chars().any(invisible)
    {
        return Err(format!(
            "must be 1 to {MAX_NAME_CHARS} printable characters (no control or invisible ones)"
        ));
    }
    Ok(name)
}

/// Milliseconds since the Unix epoch, UTC. Serialized as RFC 3339 (`2026-11-24T05:52:26.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            // Fields written directly: a task list prints thousands of these, and
            // strftime's general machinery costs several times more.
            Ok(t) => {
                let d = jiff::tz::Offset::UTC.to_datetime(t);
                write!(
                    f,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                    d.year(),
                    d.month(),
                    d.day(),
                    d.hour(),
                    d.minute(),
                    d.second(),
                    d.subsec_nanosecond() / 1_000_000
                )
            }
            // Out of jiff's range (years -9999 to 9999): no timestamp switchyard makes,
            // since durations are bounded; printed as what it is rather than a lie.
            Err(_) => write!(f, "@{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s)
            .map(Timestamp)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {s:?}")))
    }
}

/// Parses an RFC 3339 timestamp (as [`Timestamp`] prints it, or any other offset and
/// precision) into milliseconds since the epoch.
fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// One task as the ledger holds it and the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub title: String,
    /// The request: why the task exists and what is asked.
    pub body: String,
    /// Acceptance criteria: what "done" means.
    pub accept: Vec<String>,
    /// The scope as given: subsystem names and path globs.
    pub scope: Vec<String>,
    /// The scope resolved through the ownership config when the task was created.
    pub subsystems: Vec<SubsystemName>,
    /// Higher runs first.
    pub priority: i64,
    pub state: TaskState,
    pub branch: String,
    pub worktree: Option<String>,
    /// The executor holding the claim now; `None` once the claim ends.
    pub agent: Option<String>,
    /// The executor who held the task last (the agent of its last claim), also after the
    /// claim ended and after it merged: who did the work. `None`: never claimed.
    #[serde(default)]
    pub executor: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    /// How many times the task has been submitted.
    pub attempt: i64,
    /// The first of the task's block of ports (`SWITCHYARD_PORT_BASE`).
    pub port_base: Option<u16>,
    /// The base commit the task's branch started from.
    pub base_sha: Option<String>,
    /// When it entered the queue (last submit or approval).
    pub queued_at: Option<Timestamp>,
    /// The attempt a person approved at a checkpoint, if any.
    pub approved_attempt: Option<i64>,
    /// The commit of the last submission: exactly what the queue integrates (and what an
    /// approval approved), whatever happens to the branch afterwards.
    pub submitted_head: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Tasks that must merge before this one may be claimed (`--after`, a plan's
    /// `after`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<TaskId>,
    /// Those of `after` that have not merged, with their state: what keeps it from
    /// being claimed. A cancelled one blocks it for good, until a person cancels it too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<Blocker>,
    /// The review under way (`awaiting_review`): who holds it, until when, and where
    /// its checkout is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewLease>,
    /// The commit a reviewer last approved: a review covers exactly the commit it saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_head: Option<String>,
    /// The current (or last) claim was `claim --remote`: its executor works in a clone
    /// of its own and pushes the branch, so it has no worktree here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote_claim: bool,
}

/// A commit id as messages show it: its first ten characters.
pub fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

/// A dependency that has not merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub id: TaskId,
    pub state: TaskState,
}

impl Blocker {
    /// What keeps a task from being claimed, for people: "waits for t3 (claimed) to
    /// merge", "t4 was cancelled".
    pub fn describe(blockers: &[Blocker]) -> String {
        let (cancelled, waiting): (Vec<&Blocker>, Vec<&Blocker>) = blockers
            .iter()
            .partition(|b| b.state == TaskState::Cancelled);
        let mut parts = Vec::new();
        if !waiting.is_empty() {
            let list: Vec<String> = waiting
                .iter()
                .map(|b| format!("{} ({})", b.id, b.state))
                .collect();
            parts.push(format!("waits for {} to merge", list.join(", ")));
        }
        if !cancelled.is_empty() {
            let list: Vec<String> = cancelled.iter().map(|b| b.id.to_string()).collect();
            parts.push(format!(
                "{} was cancelled, so it stays blocked (cancel it, or plan it again)",
                list.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// Who did what for a task, from its timeline: who planned it, who executed each
/// attempt, who reviewed which commit with what verdict, who approved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub planner: Option<Actor>,
    pub executors: Vec<RoleAt>,
    pub reviewers: Vec<RoleAt>,
    pub approvers: Vec<RoleAt>,
}

/// One role taken: by whom, on which attempt, and (reviews) the verdict on which commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAt {
    pub by: Actor,
    pub attempt: i64,
    /// `approved` or `changes_requested` (reviews only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl fmt::Display for RoleAt {
    /// "agent rita (attempt 2, approved)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict.as_deref() {
            Some("approved") => ", approved",
            Some(_) => ", changes requested",
            None => "",
        };
        write!(f, "{} (attempt {}{verdict})", self.by, self.attempt)
    }
}

impl Roles {
    /// One line per role taken, for people: ("executed by", "agent ann (attempt 1);
    /// agent ann (attempt 2)"), and so on.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(p) = &self.planner {
            out.push(("planned by", p.to_string()));
        }
        for (label, of) in [
            ("executed by", &self.executors),
            ("reviewed by", &self.reviewers),
            ("approved by", &self.approvers),
        ] {
            if !of.is_empty() {
                let list: Vec<String> = of.iter().map(|r| r.to_string()).collect();
                out.push((label, list.join("; ")));
            }
        }
        out
    }

    /// Reads the roles off a task's events, oldest first.
    pub fn of(events: &[Event]) -> Roles {
        let mut roles = Roles::default();
        for e in events {
            let at = |attempt: i64| RoleAt {
                by: e.by.clone(),
                attempt,
                verdict: None,
                commit: None,
            };
            match &e.what {
                Evidence::Created(_) => roles.planner = Some(e.by.clone()),
                Evidence::Submitted(s) => roles.executors.push(at(s.attempt)),
                Evidence::ReviewApproved(v) | Evidence::ChangesRequested(v) => {
                    roles.reviewers.push(RoleAt {
                        verdict: Some(
                            match e.kind() {
                                EventKind::ReviewApproved => "approved",
                                _ => "changes_requested",
                            }
                            .to_owned(),
                        ),
                        commit: Some(v.commit.clone()),
                        ..at(v.attempt)
                    })
                }
                Evidence::Approved(a) => roles.approvers.push(at(a.attempt)),
                _ => {}
            }
        }
        roles
    }
}

/// A reviewer's hold on a task's review, like a claim's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewLease {
    pub reviewer: Actor,
    pub lease_expires_at: Timestamp,
    /// The detached, read-only checkout of the submitted commit.
    pub worktree: Option<String>,
}

/// What happened to a task. Events are append-only: the ledger never changes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Claimed,
    /// The task's worktree is ready at the path in the evidence.
    WorktreeReady,
    WorktreeFailed,
    /// The worktree was missing after a restart and was made again from the branch.
    WorktreeRestored,
    /// The worktree went back to the pool or was removed after the task let go of it.
    WorktreeRecycled,
    /// The worktree had uncommitted changes, so it stays with the task.
    WorktreeKept,
    SetupFailed,
    Released,
    LeaseExpired,
    Cancelled,
    /// The executor asked for integration; the evidence says which checkpoints apply.
    Submitted,
    Approved,
    /// A person sent it back to its executor.
    Rejected,
    IntegrationStarted,
    /// The commits were replayed onto the base tip.
    Rebased,
    /// The rebased commits conflict with the base: back to the executor.
    Conflict,
    VerifyPassed,
    /// Back to the executor with the failing command's evidence.
    VerifyFailed,
    /// The rebased change needs a person's approval it does not have.
    NeedsApproval,
    /// The base moved while integrating: start again from the rebase.
    BaseRaced,
    /// Built onto another candidate, it conflicted or failed verify; decided once it is
    /// first in line (the one below may be the cause).
    CandidateFailed,
    /// A verify command failed, then passed when run again on the same candidate
    /// (`[queue] retries`).
    Flaked,
    /// Lanes: a verified candidate replayed onto a base that moved only by independent
    /// changes, without verifying again.
    Carried,
    /// The base now points at the verified commit.
    BaseMoved,
    Pushed,
    /// The task's branch now points at the commit that landed.
    BranchUpdated,
    Merged,
    /// The user's checkout of the base was fast-forwarded, or left alone.
    CheckoutUpdated,
    CheckoutLeftBehind,
    /// The integration kept failing for reasons of the task's own (a commit that cannot
    /// be replayed, say): back to the executor with the error.
    IntegrationFailed,
    /// The task's pull request was opened (or found) on GitHub.
    PrOpened,
    /// A person closed the PR, pushed to its branch, changed its base or deleted its
    /// branch on GitHub: the task left the queue.
    ChangedOnGithub,
    /// A person asked for another integration of the same submitted commit.
    Retried,
    PriorityChanged,
    /// The task's landed commit is no longer in the base: someone rewound it. The task
    /// stays merged (it did land); the queue paused.
    LeftBase,
    /// A reviewer took the task's review (`switchyard review next`), under a lease.
    ReviewStarted,
    /// A reviewer approved exactly the submitted commit: on to the queue.
    ReviewApproved,
    /// A reviewer asked for changes: back to the executor with the notes.
    ChangesRequested,
    /// The reviewer's lease ran out: the review is handed out again.
    ReviewExpired,
    /// The change needs a review it does not have (found when it was integrated).
    NeedsReview,
    /// The task came back `[queue] max_attempts` times: a person decides now.
    AttemptLimit,
    /// Its branch collides with another live task's, or with the base (a dry-run merge).
    ConflictWarning,
    /// A collision warned about is gone (a side landed, rebased away, or left).
    ConflictCleared,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Claimed => "claimed",
            EventKind::WorktreeReady => "worktree_ready",
            EventKind::WorktreeFailed => "worktree_failed",
            EventKind::WorktreeRestored => "worktree_restored",
            EventKind::WorktreeRecycled => "worktree_recycled",
            EventKind::WorktreeKept => "worktree_kept",
            EventKind::SetupFailed => "setup_failed",
            EventKind::Released => "released",
            EventKind::LeaseExpired => "lease_expired",
            EventKind::Cancelled => "cancelled",
            EventKind::Submitted => "submitted",
            EventKind::Approved => "approved",
            EventKind::Rejected => "rejected",
            EventKind::IntegrationStarted => "integration_started",
            EventKind::Rebased => "rebased",
            EventKind::Conflict => "conflict",
            EventKind::VerifyPassed => "verify_passed",
            EventKind::VerifyFailed => "verify_failed",
            EventKind::NeedsApproval => "needs_approval",
            EventKind::BaseRaced => "base_raced",
            EventKind::CandidateFailed => "candidate_failed",
            EventKind::Flaked => "flaked",
            EventKind::Carried => "carried",
            EventKind::BaseMoved => "base_moved",
            EventKind::Pushed => "pushed",
            EventKind::BranchUpdated => "branch_updated",
            EventKind::Merged => "merged",
            EventKind::CheckoutUpdated => "checkout_updated",
            EventKind::CheckoutLeftBehind => "checkout_left_behind",
            EventKind::IntegrationFailed => "integration_failed",
            EventKind::PrOpened => "pr_opened",
            EventKind::ChangedOnGithub => "changed_on_github",
            EventKind::Retried => "retried",
            EventKind::PriorityChanged => "priority_changed",
            EventKind::LeftBase => "left_base",
            EventKind::ReviewStarted => "review_started",
            EventKind::ReviewApproved => "review_approved",
            EventKind::ChangesRequested => "changes_requested",
            EventKind::ReviewExpired => "review_expired",
            EventKind::NeedsReview => "needs_review",
            EventKind::AttemptLimit => "attempt_limit",
            EventKind::ConflictWarning => "conflict_warning",
            EventKind::ConflictCleared => "conflict_cleared",
        }
    }
}

/// One ledger event: who did what to which task, when, into which state, and the
/// evidence (paths, commits, command output; see [`evidence`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub task: TaskId,
    pub by: Actor,
    /// The task's state after the event, when the event changed it.
    pub state: Option<TaskState>,
    /// What happened: its kind (`event` in JSON) and its payload (`evidence`).
    #[serde(flatten)]
    pub what: Evidence,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.what.kind()
    }
}

/// Something that happened to the queue as a whole rather than to one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueEventKind {
    /// The base moved forward to commits the daemon did not verify: the queue paused.
    BaseMovedOutside,
    /// The base lost commits (rewound or reset by someone else): the queue paused.
    BaseRewound,
    /// A person resumed: ended their pause, and/or accepted the base as it is now.
    Resumed,
    /// A person paused hand-outs and/or the queue (`switchyard pause`).
    Paused,
}

impl QueueEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueEventKind::BaseMovedOutside => "base_moved_outside",
            QueueEventKind::BaseRewound => "base_rewound",
            QueueEventKind::Resumed => "resumed",
            QueueEventKind::Paused => "paused",
        }
    }
}

/// One event of the queue's own log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEvent {
    pub at: Timestamp,
    pub by: Actor,
    /// What happened: its kind (`event` in JSON) and its payload (`evidence`).
    #[serde(flatten)]
    pub what: QueueEvidence,
}

impl QueueEvent {
    pub fn kind(&self) -> QueueEventKind {
        self.what.kind()
    }
}

/// Why the queue integrates nothing now, until a person resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub since: Timestamp,
    pub by: Actor,
    /// One line, for people.
    pub reason: String,
    /// The event that paused it: its kind (`event` in JSON) and payload (`evidence`).
    #[serde(flatten)]
    pub what: QueueEvidence,
}

/// A person's pause, the stop switch (`switchyard pause`): no claim or review is handed
/// out, and/or the queue starts nothing new, until someone resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    pub since: Timestamp,
    pub by: Actor,
    pub reason: String,
    /// What it stops: everything when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<StopPart>,
}

/// The half of the work a pause may be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopPart {
    /// The queue starts nothing new; claims and submits go on.
    Queue,
    /// Nothing is handed out (claims, reviews); the queue goes on.
    Claims,
}

impl StopPart {
    pub fn as_str(self) -> &'static str {
        match self {
            StopPart::Queue => "queue",
            StopPart::Claims => "claims",
        }
    }
}

impl FromStr for StopPart {
    type Err = String;
    fn from_str(s: &str) -> Result<StopPart, String> {
        match s {
            "queue" => Ok(StopPart::Queue),
            "claims" => Ok(StopPart::Claims),
            _ => Err(format!("{s:?} is neither \"queue\" nor \"claims\"")),
        }
    }
}

impl Stop {
    /// Whether claims and reviews are handed out.
    pub fn stops_claims(&self) -> bool {
        self.only != Some(StopPart::Queue)
    }

    /// Whether the queue may start anything.
    pub fn stops_queue(&self) -> bool {
        self.only != Some(StopPart::Claims)
    }

    /// "paused by lead at 2026-12-01T14:02:03.000Z: over budget", for a refusal.
    pub fn line(&self) -> String {
        let what = match self.only {
            None => "paused",
            Some(StopPart::Queue) => "the queue is paused",
            Some(StopPart::Claims) => "claims are paused",
        };
        format!("{what} by {} at {}: {}", self.by, self.since, self.reason)
    }
}

/// A git branch name for a task: `switchyard/<id>-<slug>`, where the slug keeps only
/// lowercase ASCII letters and digits of the title. Valid whatever the title holds.
pub fn task_branch(id: TaskId, title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        format!("switchyard/{id}")
    } else {
        format!("switchyard/{id}-{slug}")
    }
}

/// Whether `name` is acceptable to git as a branch name (`git check-ref-format --branch`).
pub fn is_valid_branch_name(name: &str) -> bool {
    let bad_char = |c: char| c.is_ascii_control() || " ~^:?*[\\".contains(c);
    !name.is_empty()
        && name != "@"
        && name != "HEAD"
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.contains(bad_char)
        && name
            .split('/')
            .all(|c| !c.starts_with('.') && !c.ends_with(".lock"))
}

/// How far an integration got. Each step is recorded before the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Decided; the rebase has not been recorded.
    Started,
    /// `head` is the branch replayed onto `onto`; verify has not passed yet.
    Rebased,
    /// `head` passed verify on exactly `onto`; the base may now move to it.
    Verified,
    /// The base points at `head`.
    BaseMoved,
    /// The task's branch points at `head`; only "merged" is left.
    BranchUpdated,
    /// Built onto another candidate, it conflicted or failed verify: it goes back once
    /// it is first in line, or is built again if the one below it goes.
    Failed,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Rebased => "rebased",
            Step::Verified => "verified",
            Step::BaseMoved => "base_moved",
            Step::BranchUpdated => "branch_updated",
            Step::Failed => "failed",
        }
    }

    /// The base moved to the candidate: only bookkeeping is left.
    pub fn landed(self) -> bool {
        matches!(self, Step::BaseMoved | Step::BranchUpdated)
    }

    pub fn parse(s: &str) -> Option<Step> {
        [
            Step::Started,
            Step::Rebased,
            Step::Verified,
            Step::BaseMoved,
            Step::BranchUpdated,
            Step::Failed,
        ]
        .into_iter()
        .find(|step| step.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_stay_valid() {
        let mut taken = std::collections::BTreeSet::new();
        assert_eq!(
            SubsystemName::unique("@Org/Team", "x", &mut taken).as_str(),
            "org-team"
        );
        assert_eq!(
            SubsystemName::unique("org team", "x", &mut taken).as_str(),
            "org-team-2"
        );
        assert_eq!(
            SubsystemName::unique(" .github", "x", &mut taken).as_str(),
            "github"
        );
        assert_eq!(
            SubsystemName::unique("éé", "dir", &mut taken).as_str(),
            "dir"
        );
        let long = "a".repeat(80);
        for _ in 0..1200 {
            let name = SubsystemName::unique(&long, "x", &mut taken);
            assert!(name.as_str().len() <= 64);
        }
    }

    #[test]
    fn names_compare_as_people_mean_them() {
        for (raw, want) in [
            ("Carol", "carol"),
            ("  carol\t", "carol"),
            ("CAROL", "carol"),
            ("\u{FF23}\u{FF41}\u{FF52}\u{FF4F}\u{FF4C}", "carol"),
            ("Ca\u{0301}rol", "c\u{00E1}rol"),
            ("Mary   Ann", "mary ann"),
            ("ﬁona", "fiona"),
        ] {
            assert_eq!(normalize_name(raw).as_deref(), Ok(want), "{raw:?}");
        }
        for bad in [
            "",
            "   ",
            "car\u{200B}ol",
            "carol\u{202E}",
            "a\u{1b}[31m",
            &"x".repeat(101),
        ] {
            assert!(normalize_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn task_ids_round_trip() {
        for (name, id) in [
            ("refs/heads/switchyard/t12-fix-login", Some(12)),
            ("refs/heads/switchyard/t3", Some(3)),
            ("refs/switchyard/submitted/t7", Some(7)),
            ("refs/heads/switchyard/verify/t8", Some(8)),
            ("refs/remotes/origin/switchyard/t11-x", Some(11)),
            ("refs/remotes/origin/main", None),
            ("refs/remotes/up/switchyard/integration", None),
            ("t9", Some(9)),
            ("refs/heads/switchyard/integration", None),
            ("refs/heads/main", None),
            (".pool", None),
        ] {
            assert_eq!(TaskId::owning(name), id.map(TaskId), "{name}");
        }
        assert_eq!("t12".parse::<TaskId>(), Ok(TaskId(12)));
        assert_eq!(TaskId(7).to_string(), "t7");
        for bad in ["12", "t", "t0", "t01", "tx", "t-1", "T1", ""] {
            assert!(bad.parse::<TaskId>().is_err(), "{bad}");
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/api_request.rs): `t+24` parsed as `t24`.
    #[test]
    fn task_ids_have_one_spelling() {
        for bad in ["t+24", "t+1", "t 1", "t1 ", "t٣"] {
            assert!(bad.parse::<TaskId>().is_err(), "{bad}");
        }
        for id in [1, 24, i64::MAX] {
            let text = TaskId(id).to_string();
            assert_eq!(text.parse::<TaskId>(), Ok(TaskId(id)));
        }
    }

    #[test]
    fn timestamps_print_and_parse_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        let t = Timestamp(1_795_499_546_123);
        assert_eq!(t.to_string(), "2026-11-24T05:52:26.123Z");
        assert_eq!(parse_rfc3339(&t.to_string()), Some(t.0));
        assert_eq!(
            parse_rfc3339("2000-02-29T23:59:59.999Z")
                .map(Timestamp)
                .unwrap()
                .to_string(),
            "2000-02-29T23:59:59.999Z"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(
            parse_rfc3339("2026-11-24T06:52:26.123+01:00"),
            Some(1_795_499_546_123)
        );
        // The far end of what a bounded lease can reach still prints and parses.
        let far = Timestamp::now().plus(crate::config::MAX_DURATION);
        assert_eq!(parse_rfc3339(&far.to_string()), Some(far.0));
    }

    #[test]
    fn task_branches_are_always_valid() {
        assert_eq!(
            task_branch(TaskId(3), "Fix the login bug!"),
            "switchyard/t3-fix-the-login-bug"
        );
        for title in [
            "",
            "../../etc/passwd",
            "a@{1}.lock",
            "$(rm -rf /); `x` | y & z",
            "émoji 🚂 only",
            "--force",
            "~^:?*[\\",
            &"x".repeat(10_000),
            "trailing.",
            "x.lock",
        ] {
            let b = task_branch(TaskId(1), title);
            assert!(is_valid_branch_name(&b), "{title:?} -> {b:?}");
            assert!(b.len() <= 64, "{b}");
        }
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "release/1.2", "switchyard/t1-fix-login", "a@b"] {
            assert!(is_valid_branch_name(ok), "{ok}");
        }
        for bad in [
            "", "@", "HEAD", "-x", "a..b", "a//b", "/a", "a/", "a.", "x.lock", "a/.b", "a b",
            "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a@{1}", "tab\t",
        ] {
            assert!(!is_valid_branch_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn subsystem_names() {
        for ok in ["auth", "org-team", "a.b_c", "9lives"] {
            assert!(SubsystemName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "src/**", "a b", "é", &"x".repeat(65)] {
            assert!(SubsystemName::new(bad).is_err(), "{bad}");
        }
    }
}

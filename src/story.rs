//! A task's story in text: one readable line per ledger event, for people (`switchyard
//! log`, `task show`, and the dashboard to come), where `--json` keeps the whole payload.
//!
//! Each line says what happened, who did it (the daemon's own steps name nobody), the
//! evidence that matters (the failed command, its exit and the end of its log; the
//! conflicting paths; the reviewer's notes) and, when the event moved the task, where it
//! went ("back to bob"). The matches below are exhaustive on purpose, with no catch-all
//! arm: a new event kind or payload shape does not compile until it has its line.
//!
//! Times are UTC: jiff is built without time-zone data here, and a ledger read on
//! another machine must tell the same story. [`time`] is the clock part of a line and
//! [`day`] the date a reader prints whenever it changes; [`told`] does both.
//!
//! Pure text from data: no I/O, no clock.

use crate::model::evidence::{
    After, BranchUpdated, ChangedOnGithub, CheckKind, CheckResult, Conflict, Finished, Outcome,
    PrChange, RecycledTo, Verification, VerifyFailure, WorktreeSource,
};
use crate::model::{
    Actor, Event, EventKind, Evidence, QueueEvent, QueueEvidence, StopPart, TaskState, Timestamp,
};

/// The clock part of a line, UTC: `14:02:03`.
pub fn time(at: &Timestamp) -> String {
    match civil(at) {
        Some(d) => format!("{:02}:{:02}:{:02}", d.hour(), d.minute(), d.second()),
        None => at.to_string(),
    }
}

/// The date of an event, UTC: `2026-11-24`.
pub fn day(at: &Timestamp) -> String {
    match civil(at) {
        Some(d) => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        None => at.to_string(),
    }
}

fn civil(at: &Timestamp) -> Option<jiff::civil::DateTime> {
    jiff::Timestamp::from_millisecond(at.0)
        .ok()
        .map(|t| jiff::tz::Offset::UTC.to_datetime(t))
}

/// A task's timeline told whole, oldest first: a `2026-11-24 (UTC)` line whenever the
/// day changes (first of all before the first event), then `14:02:03  what happened`
/// per event.
pub fn told(events: &[Event]) -> Vec<String> {
    let mut story = Story::new();
    dated(events.iter().map(|e| (e.at, story.line(e))))
}

/// The queue's own events told as [`told`] tells a task's.
pub fn told_queue(events: &[QueueEvent]) -> Vec<String> {
    dated(events.iter().map(|e| (e.at, queue_line(e))))
}

/// Lines with their times, and the date whenever it changes.
fn dated(lines: impl Iterator<Item = (Timestamp, String)>) -> Vec<String> {
    let mut out = Vec::new();
    let mut today = None;
    for (at, line) in lines {
        let d = day(&at);
        if today.as_ref() != Some(&d) {
            out.push(format!("{d} (UTC)"));
            today = Some(d);
        }
        out.push(format!("{}  {line}", time(&at)));
    }
    out
}

/// The line of one event, read on its own: without the timeline, a task that goes back
/// goes "back to its executor". [`Story`] names the executor.
pub fn line(e: &Event) -> String {
    Story::new().line(e)
}

/// Reads a task's events in order and remembers what later lines need: who executes
/// the task (the agent of its last claim), so a line can say whom the work went back to.
#[derive(Debug, Clone, Default)]
pub struct Story {
    executor: Option<String>,
}

impl Story {
    pub fn new() -> Story {
        Story::default()
    }

    /// The event's line, without its time.
    pub fn line(&mut self, e: &Event) -> String {
        if let Evidence::Claimed(c) = &e.what {
            self.executor = Some(c.agent.clone());
        }
        let mut text = what(&e.what, &e.by, e.at);
        if let Some(state) = e.state
            && implied(e.kind()) != Some(state)
        {
            text.push_str("; ");
            text.push_str(&self.went(state));
        }
        text
    }

    /// Where a task went, for the end of a line: "back to bob", "queued".
    fn went(&self, state: TaskState) -> String {
        match state {
            TaskState::Open => "open again".to_owned(),
            TaskState::Claimed => match &self.executor {
                Some(a) => format!("with {a} again"),
                None => "claimed".to_owned(),
            },
            TaskState::Queued => "queued".to_owned(),
            TaskState::AwaitingReview => "waits for a reviewer".to_owned(),
            TaskState::Verifying => "verifying".to_owned(),
            TaskState::AwaitingApproval => "waits for a person's decision".to_owned(),
            TaskState::Returned => match &self.executor {
                Some(a) => format!("back to {a}"),
                None => "back to its executor".to_owned(),
            },
            TaskState::Merged => "merged".to_owned(),
            TaskState::Cancelled => "cancelled".to_owned(),
        }
    }
}

/// The state an event of `kind` puts a task in that its line already says, so the line
/// does not say it twice ("cancelled by lead: ...; cancelled").
fn implied(kind: EventKind) -> Option<TaskState> {
    match kind {
        EventKind::Created => Some(TaskState::Open),
        EventKind::Claimed => Some(TaskState::Claimed),
        EventKind::Cancelled => Some(TaskState::Cancelled),
        EventKind::Merged => Some(TaskState::Merged),
        EventKind::IntegrationStarted => Some(TaskState::Verifying),
        EventKind::WorktreeReady
        | EventKind::WorktreeFailed
        | EventKind::WorktreeRestored
        | EventKind::WorktreeRecycled
        | EventKind::WorktreeKept
        | EventKind::SetupFailed
        | EventKind::Released
        | EventKind::LeaseExpired
        | EventKind::Submitted
        | EventKind::Approved
        | EventKind::Rejected
        | EventKind::Rebased
        | EventKind::Conflict
        | EventKind::VerifyPassed
        | EventKind::VerifyFailed
        | EventKind::NeedsApproval
        | EventKind::BaseRaced
        | EventKind::CandidateFailed
        | EventKind::Flaked
        | EventKind::Carried
        | EventKind::BaseMoved
        | EventKind::Pushed
        | EventKind::BranchUpdated
        | EventKind::CheckoutUpdated
        | EventKind::CheckoutLeftBehind
        | EventKind::IntegrationFailed
        | EventKind::PrOpened
        | EventKind::ChangedOnGithub
        | EventKind::Retried
        | EventKind::PriorityChanged
        | EventKind::LeftBase
        | EventKind::ReviewStarted
        | EventKind::ReviewApproved
        | EventKind::ChangesRequested
        | EventKind::ReviewExpired
        | EventKind::NeedsReview
        | EventKind::AttemptLimit
        | EventKind::ConflictWarning
        | EventKind::ConflictCleared => None,
    }
}

/// What happened, by whom, with its evidence: the line without where the task went.
fn what(evidence: &Evidence, by: &Actor, at: Timestamp) -> String {
    let who = who(by);
    match evidence {
        Evidence::Created(c) => {
            let mut s = format!(
                "created by {who}: \"{}\"; scope {} ({}); priority {}",
                flat(&c.title),
                list_or(&c.scope, "none"),
                match c.subsystems.as_slice() {
                    [] => "no subsystem".to_owned(),
                    [one] => format!("subsystem {one}"),
                    many => format!("subsystems {}", join(many)),
                },
                c.priority
            );
            if !c.after.is_empty() {
                s.push_str(&format!("; after {}", join(&c.after)));
            }
            if let Some(name) = &c.plan_name {
                s.push_str(&format!("; \"{}\" in its plan", flat(name)));
            }
            s
        }
        Evidence::Claimed(c) => format!(
            "claimed by {} on branch {} (a {} lease){}",
            c.agent,
            c.branch,
            until(at, c.lease_expires_at),
            match c.remote {
                true => ", to work in a clone elsewhere and push the branch",
                false => "",
            }
        ),
        Evidence::WorktreeReady(w) => {
            let how = match w.source {
                WorktreeSource::Pool => "from the pool",
                WorktreeSource::Fresh => "made fresh",
                WorktreeSource::Existing => "already there",
            };
            let took =
                w.ms.map(|ms| format!(" in {}", span(ms)))
                    .unwrap_or_default();
            format!(
                "worktree ready at {} ({how}{took}){}",
                w.path,
                restart(w.after)
            )
        }
        Evidence::WorktreeFailed(w) => format!(
            "no worktree could be made: {}; the claim{} was given back{}",
            flat(&w.error),
            w.agent
                .as_deref()
                .map(|a| format!(" of {a}"))
                .unwrap_or_default(),
            restart(w.after)
        ),
        Evidence::WorktreeRestored(w) => format!(
            "worktree made again at {} from {} at {} (it was missing after a restart)",
            w.path,
            w.branch,
            short(&w.head)
        ),
        Evidence::WorktreeRecycled(w) => {
            let to = match w.to {
                RecycledTo::Pool => "back to the pool",
                RecycledTo::Removed => "removed",
                RecycledTo::LeftInPlace => "left in place (it could be neither pooled nor removed)",
            };
            format!("worktree {} let go of: {to}", w.path)
        }
        Evidence::WorktreeKept(w) => format!(
            "worktree {} stays with the task: {}",
            w.path,
            flat(&w.reason)
        ),
        Evidence::SetupFailed(f) => format!("setup failed: {}; the claim stands", ran(f)),
        Evidence::Released(l) => {
            // A person taking a task from its executor: whose claim it was.
            let of = match (by, &l.agent) {
                (Actor::Person(_), Some(agent)) => format!(" (it was {agent}'s)"),
                (Actor::Person(_), None) | (Actor::Agent(_) | Actor::Daemon, _) => String::new(),
            };
            format!("released by {who}{of}; branch and commits kept")
        }
        Evidence::LeaseExpired(l) => format!(
            "{}'s lease ran out; branch and commits kept",
            l.agent.as_deref().unwrap_or("the executor")
        ),
        Evidence::Cancelled(c) => format!(
            "cancelled by {who} while {}{}; its branch {} stays",
            c.was,
            reason(&c.reason),
            c.branch
        ),
        Evidence::Submitted(s) => {
            let mut line = format!(
                "submitted by {who}: attempt {}, commit {}, {} in {}",
                s.attempt,
                short(&s.head),
                count(s.paths, "path", "paths"),
                match s.subsystems.as_slice() {
                    [] => "no subsystem".to_owned(),
                    many => join(many),
                }
            );
            // A change outside the scope is a checkpoint, which names the paths; the
            // list is for a ledger that recorded none.
            if s.checkpoints.is_empty() && !s.out_of_scope.is_empty() {
                let paths: Vec<String> = s
                    .out_of_scope
                    .iter()
                    .map(|o| match &o.owner {
                        Some(owner) => format!("{} ({owner})", o.path),
                        None => format!("{} (unowned)", o.path),
                    })
                    .collect();
                line.push_str(&format!("; outside its scope: {}", few(&paths)));
            }
            if !s.checkpoints.is_empty() {
                line.push_str(&format!("; waits for: {}", flat(&s.checkpoints.join("; "))));
            }
            line
        }
        Evidence::Approved(a) => format!("approved by {who} (attempt {})", a.attempt),
        Evidence::Rejected(r) => format!("rejected by {who}{}", reason(&r.reason)),
        Evidence::IntegrationStarted(i) => format!(
            "integration of attempt {} started: {} onto {}",
            i.attempt,
            short(&i.branch_tip),
            short(&i.onto)
        ),
        Evidence::Rebased(r) => format!(
            "built onto {}: {} ({}{})",
            short(&r.onto),
            short(&r.head),
            count(r.commits, "commit", "commits"),
            match r.subsystems.as_slice() {
                [] => String::new(),
                many => format!(" in {}", join(many)),
            }
        ),
        Evidence::Conflict(Conflict::Paths {
            onto,
            commit,
            paths,
            hint: _,
        }) => format!(
            "conflict onto {}{} in {}",
            short(onto),
            commit
                .as_deref()
                .map(|c| format!(" at commit {}", short(c)))
                .unwrap_or_default(),
            few(paths)
        ),
        Evidence::Conflict(Conflict::Unreplayable {
            onto,
            paths: _,
            reason,
        }) => format!("cannot be built onto {}: {}", short(onto), flat(reason)),
        Evidence::VerifyPassed(v) => {
            let on = attempt_of(v.attempt);
            match &v.by {
                Verification::Commands { commands } if commands.is_empty() => {
                    format!(
                        "verify passed{on} (no command to run) on {}",
                        short(&v.onto)
                    )
                }
                Verification::Commands { commands } => {
                    let each: Vec<String> = commands
                        .iter()
                        .map(|c| format!("`{}` in {}", flat(&c.command), span(c.duration_ms)))
                        .collect();
                    format!("verify passed{on}: {}", each.join(", "))
                }
                Verification::Checks { checks } => {
                    let each: Vec<String> = checks.iter().map(check).collect();
                    format!("verify passed{on}: {}", each.join(", "))
                }
            }
        }
        Evidence::VerifyFailed(v) => {
            let on = attempt_of(v.attempt);
            match &v.failure {
                VerifyFailure::Command {
                    failed,
                    passed: _,
                    retried,
                } => {
                    let again = match retried.len() {
                        0 => String::new(),
                        n => format!(" (run {} times)", n + 1),
                    };
                    format!("verify failed{on}: {}{again}", ran(failed))
                }
                VerifyFailure::Check { check: c } => format!(
                    "verify failed{on}: {}{}",
                    check(c),
                    match c.url.is_empty() {
                        true => String::new(),
                        false => format!(", {}", c.url),
                    }
                ),
                VerifyFailure::TimedOut { reason, pending } => format!(
                    "verify failed{on}: {}; still pending: {}",
                    flat(reason),
                    list_or(pending, "none")
                ),
            }
        }
        Evidence::NeedsApproval(n) => format!(
            "built as {}, it needs a person's approval: {}",
            short(&n.head),
            flat(&n.checkpoints.join("; "))
        ),
        Evidence::BaseRaced(b) => format!(
            "built again: what it was built on moved ({} -> {})",
            short(&b.was),
            short(&b.now)
        ),
        Evidence::CandidateFailed(c) => format!(
            "failed on top of the candidate at {} ({}); decided once it is first in line",
            short(&c.onto),
            what(&c.failure, &Actor::Daemon, at)
        ),
        Evidence::Flaked(f) => {
            let code = f
                .failed
                .last()
                .map(|r| ended(r.outcome))
                .unwrap_or_default();
            format!(
                "`{}` flaked on {}: failed {} ({code}), then passed",
                flat(&f.command),
                short(&f.head),
                count(f.failed.len() as u64, "time", "times"),
            )
        }
        Evidence::Carried(c) => format!(
            "carried onto {} past {} in other lanes: {} lands as {}, not verified again",
            short(&c.onto),
            count(c.past, "landing", "landings"),
            short(&c.verified),
            short(&c.head)
        ),
        Evidence::BaseMoved(m) => format!(
            "landed: {} moved {} -> {}",
            m.base,
            short(&m.from),
            short(&m.to)
        ),
        Evidence::Pushed(p) => format!("pushed {} to {}", short(&p.commit), p.remote),
        Evidence::BranchUpdated(BranchUpdated::Moved { branch, from, to }) => format!(
            "branch {branch} now points at what landed ({}{})",
            from.as_deref()
                .map(|f| format!("{} -> ", short(f)))
                .unwrap_or_default(),
            short(to)
        ),
        Evidence::BranchUpdated(BranchUpdated::LeftAlone {
            branch,
            left_at,
            landed,
        }) => format!(
            "branch {branch} left {}: it has commits after the submitted ones ({} landed)",
            match left_at {
                Some(at) => format!("at {}", short(at)),
                None => "alone (it is gone)".to_owned(),
            },
            short(landed)
        ),
        Evidence::Merged(m) => format!("merged into {} as {}", m.base, short(&m.commit)),
        Evidence::CheckoutUpdated(c) => match c.already {
            true => format!("the checkout at {} was already at {}", c.path, short(&c.to)),
            false => format!(
                "the checkout at {} fast-forwarded to {}",
                c.path,
                short(&c.to)
            ),
        },
        Evidence::CheckoutLeftBehind(c) => format!(
            "the checkout at {} has local changes, so it stays at {} while the base is at {}: {}",
            c.path,
            short(&c.at),
            short(&c.base_now),
            flat(&c.hint)
        ),
        Evidence::IntegrationFailed(i) => format!(
            "integration failed {} in a row: {}",
            count(u64::from(i.tries), "time", "times"),
            flat(&i.error)
        ),
        Evidence::PrOpened(p) => {
            let how = match (p.found_existing, p.replaces) {
                (_, Some(old)) => format!("opened, replacing #{old}"),
                (Some(true), None) => "found (it existed already)".to_owned(),
                (Some(false) | None, None) => "opened".to_owned(),
            };
            format!("pull request #{} {how}: {}", p.number, p.url)
        }
        Evidence::ChangedOnGithub(c) => {
            let what = match c.what() {
                PrChange::Closed => "its pull request was closed",
                PrChange::BranchDeleted => "its branch was deleted",
                PrChange::BaseChanged => "its pull request was retargeted",
                PrChange::Pushed => "commits were pushed to its branch",
            };
            let seen = match c {
                ChangedOnGithub::OnPr { pr, .. } => format!(" (#{pr})"),
                ChangedOnGithub::BeforeMerge { head, .. } => {
                    format!(" just before {} would have landed", short(head))
                }
                ChangedOnGithub::OnRemoteBranch { .. } => String::new(),
            };
            format!("on GitHub, {what}{seen}: {}", flat(c.reason()))
        }
        Evidence::Retried(a) => format!("retried by {who}: attempt {} again", a.attempt),
        Evidence::PriorityChanged(p) => {
            format!("priority {} -> {} by {who}", p.from, p.to)
        }
        Evidence::LeftBase(l) => format!(
            "its landed commit {} left {} (now at {}): someone rewound it; the queue paused",
            short(&l.commit),
            l.base,
            short(&l.now)
        ),
        Evidence::ReviewStarted(r) => format!(
            "review taken by {who}: commit {} (diff {}..{}), a {} lease, checkout {}",
            short(&r.commit),
            short(&r.merge_base),
            short(&r.commit),
            until(at, r.lease_expires_at),
            r.worktree
        ),
        Evidence::ReviewApproved(v) => format!(
            "review approved by {who}: commit {}{}{}",
            short(&v.commit),
            via(v.source.as_deref()),
            reason(&v.notes)
        ),
        Evidence::ChangesRequested(v) => format!(
            "changes requested by {who} on commit {}{}{}",
            short(&v.commit),
            via(v.source.as_deref()),
            reason(&v.notes)
        ),
        Evidence::ReviewExpired(r) => format!(
            "{}'s review lease ran out; the review is handed out again",
            self::who(&r.reviewer)
        ),
        Evidence::NeedsReview(n) => format!(
            "built as {}, it needs a review first: {}",
            short(&n.head),
            flat(&n.checkpoints.join("; "))
        ),
        Evidence::AttemptLimit(a) => {
            let why: Vec<String> = a.returns.iter().map(|e| words(e.kind())).collect();
            format!(
                "attempt limit: it came back {} (limit {}: {}); a person decides (approve another round, cancel, or release --by)",
                count(a.returns.len() as u64, "time", "times"),
                a.limit,
                few(&why)
            )
        }
        Evidence::ConflictWarning(c) => format!(
            "conflict warning: its branch collides with {} in {}",
            match (c.with, &c.agent) {
                (Some(t), Some(a)) => format!("{t} ({a})"),
                (Some(t), None) => t.to_string(),
                (None, _) => "the base".to_owned(),
            },
            few(&c.paths)
        ),
        Evidence::ConflictCleared(c) => format!(
            "the conflict with {} is gone",
            c.with
                .map_or_else(|| "the base".to_owned(), |t| t.to_string())
        ),
        Evidence::Unknown { kind, raw } => format!(
            "{} (recorded in a shape this version does not know: {})",
            words(*kind),
            cut(&raw.to_string(), 200)
        ),
    }
}

/// The line of one of the queue's own events (`switchyard log --queue`), without its time.
pub fn queue_line(e: &QueueEvent) -> String {
    let who = who(&e.by);
    match &e.what {
        QueueEvidence::BaseMovedOutside(b) => format!(
            "{} moved outside the queue ({} -> {}): {} it never verified{}; the queue paused: {}",
            b.base,
            short(&b.expected),
            short(&b.found),
            count(b.count, "commit", "commits"),
            subjects(&b.commits),
            flat(&b.hint)
        ),
        QueueEvidence::BaseRewound(b) => format!(
            "{} was rewound ({} -> {}): {} left it{}{}; the queue paused: {}",
            b.base,
            short(&b.expected),
            short(&b.found),
            count(b.count, "commit", "commits"),
            subjects(&b.commits),
            match b.tasks.as_slice() {
                [] => String::new(),
                tasks => format!("; landed work of {} went with them", join(tasks)),
            },
            flat(&b.hint)
        ),
        QueueEvidence::Resumed(r) => {
            let mut line = format!("resumed by {who}");
            if let Some(stop) = &r.stop {
                line.push_str(&format!(
                    "; it ends the pause by {}{}",
                    self::who(&stop.by),
                    reason(&stop.reason)
                ));
            }
            if let Some(base) = &r.base {
                line.push_str(&format!(
                    "; the base is accepted at {}{}",
                    short(base),
                    r.was
                        .as_deref()
                        .map(|w| format!(" (the queue expected {})", short(w)))
                        .unwrap_or_default()
                ));
            }
            line
        }
        QueueEvidence::Paused(p) => format!(
            "{} by {who}{}",
            match p.only {
                None => "claims, reviews and the queue paused",
                Some(StopPart::Queue) => "the queue paused",
                Some(StopPart::Claims) => "claims and reviews paused",
            },
            reason(&p.reason)
        ),
        QueueEvidence::Unknown { kind, raw } => format!(
            "{} (recorded in a shape this version does not know: {})",
            kind.as_str().replace('_', " "),
            cut(&raw.to_string(), 200)
        ),
    }
}

/// A name for who did something: the agent's or person's name; the daemon's own steps
/// are switchyard's.
fn who(by: &Actor) -> String {
    match by {
        Actor::Agent(name) | Actor::Person(name) => name.clone(),
        Actor::Daemon => "switchyard".to_owned(),
    }
}

/// "`./check.sh` exited 1 after 11 ms; the log ends: "the files above say BROKEN"".
fn ran(f: &Finished) -> String {
    let ends = last_lines(&f.tail);
    format!(
        "`{}` {} after {}{}",
        flat(&f.command),
        ended(f.outcome),
        span(f.duration_ms),
        match ends.is_empty() {
            true => "; its log is empty".to_owned(),
            false => format!("; the log ends: {ends}"),
        }
    )
}

/// How a command ended.
fn ended(outcome: Outcome) -> String {
    match outcome {
        Outcome::Exited { code } => format!("exited {code}"),
        Outcome::Signaled { signal } => format!("was killed by signal {signal}"),
        Outcome::TimedOut => "timed out".to_owned(),
        Outcome::Cancelled => "was stopped (the daemon was shutting down)".to_owned(),
    }
}

/// "build: failure (3 tests failed)".
fn check(c: &CheckResult) -> String {
    let kind = match c.kind {
        CheckKind::CheckRun => "check",
        CheckKind::Status => "status",
    };
    format!(
        "{kind} {} {}{}",
        flat(&c.name),
        c.conclusion,
        match c.summary.trim().is_empty() {
            true => String::new(),
            false => format!(" ({})", cut(&flat(&c.summary), 120)),
        }
    )
}

/// The last two lines of a log's tail that say something, quoted, one line.
fn last_lines(tail: &[String]) -> String {
    let said: Vec<&String> = tail.iter().filter(|l| !l.trim().is_empty()).collect();
    let from = said.len().saturating_sub(2);
    said[from..]
        .iter()
        .map(|l| format!("\"{}\"", cut(&flat(l.trim()), 120)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// ` after a restart` for what a restart finished.
fn restart(after: Option<After>) -> &'static str {
    match after {
        Some(After::Restart) => " after a restart",
        None => "",
    }
}

/// ": the reason" when there is one.
fn reason(text: &str) -> String {
    match text.trim().is_empty() {
        true => String::new(),
        false => format!(": {}", cut(&flat(text.trim()), 300)),
    }
}

fn via(source: Option<&str>) -> String {
    source
        .map(|s| format!(" (from {})", flat(s)))
        .unwrap_or_default()
}

fn attempt_of(attempt: Option<i64>) -> String {
    attempt
        .map(|a| format!(" on attempt {a}"))
        .unwrap_or_default()
}

/// ": "Hotfix", "Typo" and 3 more" for the commits of a move of the base.
fn subjects(commits: &[crate::model::evidence::CommitLine]) -> String {
    let quoted: Vec<String> = commits
        .iter()
        .map(|c| format!("\"{}\"", cut(&flat(&c.subject), 60)))
        .collect();
    match quoted.is_empty() {
        true => String::new(),
        false => format!(" ({})", few(&quoted)),
    }
}

/// An event kind in words: `verify_failed` -> "verify failed".
fn words(kind: EventKind) -> String {
    kind.as_str().replace('_', " ")
}

/// The first commit id characters a person compares.
fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

/// How long from `at` to `then` (a lease's end), for people.
fn until(at: Timestamp, then: Timestamp) -> String {
    span(u64::try_from(then.0.saturating_sub(at.0)).unwrap_or(0))
}

/// "1 path", "3 paths".
fn count(n: u64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// A duration for people: `11 ms`, `2.3 s`, `4m05s`, `2h10m`, `30m`.
fn span(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => match ms % 1000 {
            0 => format!("{s} s"),
            _ => format!("{:.1} s", ms as f64 / 1000.0),
        },
        60_000..3_600_000 => match s % 60 {
            0 => format!("{}m", s / 60),
            rest => format!("{}m{rest:02}s", s / 60),
        },
        _ => match s % 3600 / 60 {
            0 => format!("{}h", s / 3600),
            rest => format!("{}h{rest:02}m", s / 3600),
        },
    }
}

fn join(items: &[impl std::fmt::Display]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_or(items: &[String], none: &str) -> String {
    match items.is_empty() {
        true => none.to_owned(),
        false => flat(&items.join(", ")),
    }
}

/// At most five of `items`, then how many more: a line stays a line.
fn few(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = items
        .iter()
        .take(SHOWN)
        .map(|i| flat(i))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        out.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    out
}

/// Text from the ledger made one safe line: line breaks become " / ", and every other
/// control character is escaped, so nothing recorded can break a line or send a
/// terminal an escape sequence.
fn flat(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    crate::api::one_line(&joined)
}

/// At most `max` characters, with `…` where it was cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;

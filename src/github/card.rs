//! What a task looks like on GitHub: the PR body (the task's card) and the `switchyard`
//! check run. Pure functions of the ledger's view of a task, so they are rendered the
//! same way every time and a changed card means the task changed.

use std::fmt::Write;

use super::client::CheckView;
use crate::model::evidence::{Conflict, Outcome, Verification, VerifyFailure};
use crate::model::{Event, EventKind, Evidence, Task, TaskState};
use crate::queue;

/// Marks the start of a card, so a body can be told apart from one a person wrote.
pub const MARKER: &str = "<!-- switchyard:card";

/// At most this many log lines of a failed verify go on the card.
const TAIL_LINES: usize = 30;
/// GitHub refuses bodies over 65536 characters; the timeline is cut to fit.
const MAX_BODY: usize = 60_000;

/// What the card and check run show besides the task and its events.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    pub base: &'a str,
    /// Position in the queue and its length, when queued. Only the check run shows it:
    /// in the body, every step of the queue would rewrite every queued PR.
    pub position: Option<(usize, usize)>,
    /// Its lane and its position in the lane, when it has one.
    pub lane: Option<(usize, usize)>,
}

/// The PR's title.
pub fn title(task: &Task) -> String {
    format!("{}: {}", task.id, task.title)
}

/// The PR body: request, acceptance criteria, scope, executor, attempt, checkpoints,
/// last verify and the timeline.
pub fn body(task: &Task, events: &[Event], cx: &Context<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{MARKER} {} — written by switchyard and rewritten as the task moves; comment below instead of editing -->",
        task.id
    );
    let _ = writeln!(out, "## {}: {}\n", task.id, one_line(&task.title));
    let _ = writeln!(
        out,
        "**State:** {} · **Attempt:** {} · **Executor:** {} · **Priority:** {} · **Branch:** `{}` → `{}`\n",
        task.state.as_str().replace('_', " "),
        task.attempt,
        task.agent
            .as_deref()
            .map_or("nobody".to_owned(), |a| format!("`{a}`")),
        task.priority,
        task.branch,
        cx.base,
    );
    let _ = writeln!(out, "### Request\n");
    let request = task.body.trim();
    let _ = writeln!(
        out,
        "{}\n",
        if request.is_empty() {
            "_(no description)_"
        } else {
            request
        }
    );
    let _ = writeln!(out, "### Acceptance criteria\n");
    if task.accept.is_empty() {
        let _ = writeln!(out, "_(none given)_\n");
    } else {
        let done = task.state == TaskState::Merged;
        for a in &task.accept {
            let _ = writeln!(out, "- [{}] {}", if done { "x" } else { " " }, one_line(a));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "### Scope\n");
    let scope = if task.scope.is_empty() {
        "_(none: every change needs approval)_".to_owned()
    } else {
        task.scope
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let subsystems = task
        .subsystems
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "{scope} · owning subsystems: {}\n",
        if subsystems.is_empty() {
            "none"
        } else {
            &subsystems
        }
    );
    let _ = writeln!(out, "### Roles\n");
    for (label, who) in crate::model::Roles::of(events).lines() {
        let _ = writeln!(out, "- {label}: {}", one_line(&who));
    }
    out.push('\n');
    let _ = writeln!(out, "### Checkpoints\n");
    let waits = queue::checkpoints(task, events);
    if waits.is_empty() {
        let _ = writeln!(out, "None: it lands once verified.\n");
    } else {
        for w in &waits {
            let _ = writeln!(out, "- {}", one_line(w));
        }
        if task.state == TaskState::AwaitingApproval {
            let _ = writeln!(
                out,
                "\nAn approver approves with an approving review or a `/switchyard approve` comment.\n"
            );
        } else {
            out.push('\n');
        }
    }
    let _ = writeln!(out, "### Last verify\n");
    let _ = writeln!(out, "{}\n", last_verify(events));
    let _ = writeln!(out, "### Timeline\n");
    let _ = writeln!(
        out,
        "| when (UTC) | event | by | state |\n|---|---|---|---|"
    );
    let mut rows: Vec<String> = events.iter().map(timeline_row).collect();
    let budget = MAX_BODY.saturating_sub(out.len() + 200);
    while rows.iter().map(|r| r.len() + 1).sum::<usize>() > budget && rows.len() > 1 {
        rows.remove(0);
    }
    if rows.len() < events.len() {
        let _ = writeln!(
            out,
            "| … | {} earlier events: `switchyard log {}` | | |",
            events.len() - rows.len(),
            task.id
        );
    }
    for r in rows {
        let _ = writeln!(out, "{r}");
    }
    out
}

/// The `switchyard` check run for the task's current state.
pub fn check(task: &Task, events: &[Event], cx: &Context<'_>) -> CheckView {
    let view = |status, conclusion, title: String, summary: String| CheckView {
        status,
        conclusion,
        title,
        summary,
    };
    match task.state {
        TaskState::Queued => {
            let title = match (cx.position, cx.lane) {
                (Some((n, of)), Some((lane, at))) => {
                    format!("Queued: position {n} of {of}, lane {lane} position {at}")
                }
                (Some((n, of)), None) => format!("Queued: position {n} of {of}, waiting for lanes"),
                (None, _) => "Queued".to_owned(),
            };
            view(
                "queued",
                None,
                title,
                "Waiting for its turn in the merge queue.".into(),
            )
        }
        TaskState::AwaitingApproval => view(
            "queued",
            None,
            "Waiting for approval".into(),
            queue::checkpoints(task, events).join("\n"),
        ),
        TaskState::AwaitingReview => view(
            "queued",
            None,
            match &task.review {
                Some(r) => format!("In review by {}", r.reviewer),
                None => "Waiting for a review".into(),
            },
            "A reviewer reads the change before it enters the merge queue.".into(),
        ),
        TaskState::Verifying => view(
            "in_progress",
            None,
            match cx.lane {
                Some((lane, at)) => format!("Verifying: lane {lane} position {at}"),
                None => "Verifying".into(),
            },
            format!("Rebased onto `{}` and verifying.", cx.base),
        ),
        TaskState::Merged => view(
            "completed",
            Some("success"),
            "Passed and merged".into(),
            format!("Verified and merged into `{}`.", cx.base),
        ),
        TaskState::Returned => {
            let why = events
                .iter()
                .rev()
                .find(|e| e.state == Some(TaskState::Returned))
                .map(returned_summary)
                .unwrap_or_else(|| "Back with its executor.".to_owned());
            view("completed", Some("failure"), "Failed".into(), why)
        }
        TaskState::Cancelled => view(
            "completed",
            Some("cancelled"),
            "Cancelled".into(),
            "The task was cancelled.".into(),
        ),
        TaskState::Open | TaskState::Claimed => view(
            "completed",
            Some("neutral"),
            "Not in the queue".into(),
            "Its executor is working on it; it enters the queue when submitted again.".into(),
        ),
    }
}

/// What the current attempt waits for, from its last submission or hold.
fn last_verify(events: &[Event]) -> String {
    let Some(e) = events
        .iter()
        .rev()
        .find(|e| matches!(e.kind(), EventKind::VerifyPassed | EventKind::VerifyFailed))
    else {
        return "Not verified yet.".to_owned();
    };
    let on = |onto: &str| format!(" on `{}`", short(onto));
    match &e.what {
        Evidence::VerifyPassed(passed) => {
            let what = match &passed.by {
                Verification::Checks { checks } => {
                    format!("{} required check(s) succeeded", checks.len())
                }
                Verification::Commands { commands } => {
                    format!("{} command(s) succeeded", commands.len())
                }
            };
            format!(
                "✅ Passed{} ({}): {what}.",
                on(&passed.onto),
                when(passed.attempt, e)
            )
        }
        Evidence::VerifyFailed(failed) => {
            let mut out = format!(
                "❌ Failed{} ({}): ",
                on(&failed.onto),
                when(failed.attempt, e)
            );
            match &failed.failure {
                VerifyFailure::Command { failed, .. } => {
                    let _ = write!(
                        out,
                        "`{}` {}",
                        one_line(&failed.command),
                        outcome(failed.outcome)
                    );
                    let lines = &failed.tail;
                    let start = lines.len().saturating_sub(TAIL_LINES);
                    let _ = write!(
                        out,
                        "\n\n<details open><summary>last {} log lines</summary>\n\n```text\n{}\n```\n</details>",
                        lines.len() - start,
                        fence_safe(&lines[start..].join("\n"))
                    );
                }
                VerifyFailure::Check { check } => {
                    let _ = write!(
                        out,
                        "check `{}` did not succeed. {}",
                        check.name,
                        one_line(&check.summary)
                    );
                    if !check.url.is_empty() {
                        let _ = write!(out, " [details]({})", check.url);
                    }
                }
                VerifyFailure::TimedOut { reason, .. } => out.push_str(&one_line(reason)),
            }
            out
        }
        // Written in a shape this version cannot read: what happened, not the details.
        other if other.kind() == EventKind::VerifyPassed => format!("✅ Passed ({}).", e.at),
        _ => format!("❌ Failed ({}).", e.at),
    }
}

/// "attempt 2, <when>"; older ledgers did not note the attempt on a verify.
fn when(attempt: Option<i64>, e: &Event) -> String {
    match attempt {
        Some(n) => format!("attempt {n}, {}", e.at),
        None => e.at.to_string(),
    }
}

fn returned_summary(e: &Event) -> String {
    match &e.what {
        Evidence::VerifyFailed(failed) => match &failed.failure {
            VerifyFailure::Command { failed, .. } => format!(
                "Verify failed: `{}` {}",
                one_line(&failed.command),
                outcome(failed.outcome)
            ),
            VerifyFailure::Check { check } => format!(
                "Required check `{}` failed: {} {}",
                check.name, check.summary, check.url
            ),
            VerifyFailure::TimedOut { reason, .. } => {
                format!("Verify failed: {}", one_line(reason))
            }
        },
        Evidence::Conflict(Conflict::Paths { paths, .. }) if !paths.is_empty() => {
            format!("Conflicts with `{}` in: {}", "the base", paths.join(", "))
        }
        Evidence::Conflict(Conflict::Paths { .. }) => "Conflicts with the base.".to_owned(),
        Evidence::Conflict(Conflict::Unreplayable { reason, .. }) => one_line(reason),
        Evidence::Rejected(rejected) => {
            format!("Rejected by {}: {}", e.by, one_line(&rejected.reason))
        }
        Evidence::IntegrationFailed(failed) => {
            format!("integration failed: {}", one_line(&failed.error))
        }
        Evidence::ChangedOnGithub(changed) => {
            format!("changed on github: {}", one_line(changed.reason()))
        }
        other => other.kind().as_str().replace('_', " "),
    }
}

fn outcome(outcome: Outcome) -> String {
    match outcome {
        Outcome::Exited { code } => format!("exited with {code}"),
        Outcome::TimedOut => "timed out".to_owned(),
        Outcome::Signaled { signal } => format!("was killed by signal {signal}"),
        Outcome::Cancelled => "cancelled".to_owned(),
    }
}

fn timeline_row(e: &Event) -> String {
    let mut what = e.kind().as_str().replace('_', " ");
    if let Evidence::Submitted(submitted) = &e.what {
        let _ = write!(what, " (attempt {})", submitted.attempt);
    }
    if let Some(reason) = e.what.reason() {
        let _ = write!(what, ": {}", cell(reason));
    }
    if let Evidence::Merged(merged) = &e.what {
        let _ = write!(what, " `{}`", short(&merged.commit));
    }
    format!(
        "| {} | {} | {} | {} |",
        e.at.to_string().replace('T', " ").trim_end_matches('Z'),
        what,
        cell(&e.by.to_string()),
        e.state.map_or("", |s| s.as_str())
    )
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if out.len() < line.len() || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

/// A table cell: one line, no pipes.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

/// Log text inside a fence cannot close it.
fn fence_safe(text: &str) -> String {
    text.replace("```", "`\u{200b}``")
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::evidence::{Finished, Rejected, Submitted, VerifyFailed};
    use crate::model::{Actor, SubsystemName, TaskId, Timestamp};

    fn task(state: TaskState) -> Task {
        Task {
            id: TaskId(4),
            title: "Fix | the cart".into(),
            body: "The total is wrong.\nSee #12.".into(),
            accept: vec!["totals add up".into()],
            scope: vec!["cart".into()],
            subsystems: vec![SubsystemName::new("cart").unwrap()],
            priority: 2,
            state,
            branch: "switchyard/t4-fix-the-cart".into(),
            worktree: None,
            agent: Some("bot-1".into()),
            executor: Some("bot-1".into()),
            lease_expires_at: None,
            attempt: 2,
            port_base: None,
            base_sha: None,
            queued_at: None,
            approved_attempt: None,
            submitted_head: Some("abc".into()),
            after: vec![],
            blocked_by: vec![],
            review: None,
            reviewed_head: None,
            remote_claim: false,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn event(state: Option<TaskState>, what: Evidence) -> Event {
        Event {
            at: Timestamp(1_700_000_000_000),
            task: TaskId(4),
            by: Actor::Daemon,
            state,
            what,
        }
    }

    #[test]
    fn the_card_tells_the_story() {
        let events = vec![
            event(
                Some(TaskState::AwaitingApproval),
                Evidence::Submitted(Submitted {
                    head: "abc".into(),
                    merge_base: "0123".into(),
                    paths: 2,
                    subsystems: vec![SubsystemName::new("cart").unwrap()],
                    checkpoints: vec!["out of scope: docs/x.md (docs)".into()],
                    out_of_scope: vec![],
                    attempt: 2,
                    touches_everything: None,
                }),
            ),
            event(
                Some(TaskState::Returned),
                Evidence::VerifyFailed(VerifyFailed {
                    head: "abc".into(),
                    onto: "0123456789abcdef".into(),
                    attempt: Some(1),
                    failure: VerifyFailure::Command {
                        failed: Finished {
                            command: "make test".into(),
                            outcome: Outcome::Exited { code: 2 },
                            duration_ms: 5,
                            log: "/logs/verify-1.log".into(),
                            tail: vec!["ok 1".into(), "not ok 2 | cart".into()],
                        },
                        passed: vec![],
                        retried: vec![],
                    },
                }),
            ),
        ];
        let cx = Context {
            base: "main",
            position: None,
            lane: None,
        };
        let body = body(&task(TaskState::AwaitingApproval), &events, &cx);
        for part in [
            "<!-- switchyard:card t4",
            "## t4: Fix | the cart",
            "**State:** awaiting approval · **Attempt:** 2 · **Executor:** `bot-1`",
            "The total is wrong.\nSee #12.",
            "- [ ] totals add up",
            "`cart` · owning subsystems: cart",
            "- out of scope: docs/x.md (docs)",
            "`/switchyard approve`",
            "❌ Failed on `0123456789` (attempt 1",
            "`make test` exited with 2",
            "not ok 2 | cart",
            "| submitted (attempt 2) | the daemon | awaiting_approval |",
        ] {
            assert!(body.contains(part), "missing {part:?} in:\n{body}");
        }
        // A pipe in a table cell would break the timeline's table.
        assert!(
            !body
                .lines()
                .any(|l| l.starts_with("| ") && l.contains("Fix | the"))
        );
    }

    #[test]
    fn the_check_run_follows_the_state() {
        let queued = Context {
            base: "main",
            position: Some((2, 3)),
            lane: Some((1, 2)),
        };
        let c = check(&task(TaskState::Queued), &[], &queued);
        assert_eq!((c.status, c.conclusion), ("queued", None));
        assert_eq!(c.title, "Queued: position 2 of 3, lane 1 position 2");
        let c = check(&task(TaskState::Verifying), &[], &queued);
        assert_eq!(c.status, "in_progress");
        assert_eq!(c.title, "Verifying: lane 1 position 2");
        let c = check(&task(TaskState::Merged), &[], &queued);
        assert_eq!((c.status, c.conclusion), ("completed", Some("success")));
        let rejected = event(
            Some(TaskState::Returned),
            Evidence::Rejected(Rejected {
                reason: "needs a test".into(),
            }),
        );
        let c = check(&task(TaskState::Returned), &[rejected], &queued);
        assert_eq!((c.status, c.conclusion), ("completed", Some("failure")));
        assert_eq!(c.summary, "Rejected by the daemon: needs a test");
    }

    #[test]
    fn long_timelines_are_cut_to_fit_github() {
        let many: Vec<Event> = (0..5000)
            .map(|i| {
                event(
                    None,
                    Evidence::Rejected(Rejected {
                        reason: format!("try {i}"),
                    }),
                )
            })
            .collect();
        let cx = Context::default();
        let body = body(&task(TaskState::Open), &many, &cx);
        assert!(body.len() < 65_536, "{}", body.len());
        assert!(body.contains("earlier events: `switchyard log t4`"));
        assert!(body.contains("try 4999"));
    }
}

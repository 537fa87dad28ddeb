//! What a task looks like on GitHub: the PR body (the task's card) and the `switchyard`
//! check run. Pure functions of the ledger's view of a task, so they are rendered the
//! same way every time and a changed card means the task changed.

use std::fmt::Write;

use serde_json::Value;

use super::client::CheckView;
use crate::model::{Event, EventKind, Task, TaskState};

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
    let _ = writeln!(out, "### Checkpoints\n");
    let waits = checkpoints(task, events);
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
            let title = match cx.position {
                Some((n, of)) => format!("Queued: position {n} of {of}"),
                None => "Queued".to_owned(),
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
            checkpoints(task, events).join("\n"),
        ),
        TaskState::Verifying => view(
            "in_progress",
            None,
            "Verifying".into(),
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
fn checkpoints(task: &Task, events: &[Event]) -> Vec<String> {
    if task.approved_attempt == Some(task.attempt) {
        return Vec::new();
    }
    events
        .iter()
        .rev()
        .find(|e| matches!(e.event, EventKind::Submitted | EventKind::NeedsApproval))
        .and_then(|e| e.evidence.get("checkpoints"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| match c.as_str() {
                    Some(s) => s.to_owned(),
                    None => c.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn last_verify(events: &[Event]) -> String {
    let Some(e) = events
        .iter()
        .rev()
        .find(|e| matches!(e.event, EventKind::VerifyPassed | EventKind::VerifyFailed))
    else {
        return "Not verified yet.".to_owned();
    };
    let onto = e
        .evidence
        .get("onto")
        .and_then(Value::as_str)
        .map_or(String::new(), |o| format!(" on `{}`", short(o)));
    if e.event == EventKind::VerifyPassed {
        let checks = e
            .evidence
            .get("checks")
            .and_then(Value::as_array)
            .map(|c| c.len());
        let commands = e
            .evidence
            .get("commands")
            .and_then(Value::as_array)
            .map(|c| c.len());
        let what = match (checks, commands) {
            (Some(n), _) => format!("{n} required check(s) succeeded"),
            (_, Some(n)) => format!("{n} command(s) succeeded"),
            _ => "passed".to_owned(),
        };
        return format!(
            "✅ Passed{onto} (attempt {}, {}): {what}.",
            attempt(e),
            e.at
        );
    }
    let mut out = format!("❌ Failed{onto} (attempt {}, {}): ", attempt(e), e.at);
    if let Some(failed) = e.evidence.get("failed") {
        let command = failed.get("command").and_then(Value::as_str).unwrap_or("?");
        let _ = write!(out, "`{}` {}", one_line(command), outcome(failed));
        if let Some(tail) = failed.get("tail").and_then(Value::as_array) {
            let lines: Vec<&str> = tail.iter().filter_map(Value::as_str).collect();
            let start = lines.len().saturating_sub(TAIL_LINES);
            let _ = write!(
                out,
                "\n\n<details open><summary>last {} log lines</summary>\n\n```text\n{}\n```\n</details>",
                lines.len() - start,
                fence_safe(&lines[start..].join("\n"))
            );
        }
    } else if let Some(check) = e.evidence.get("check") {
        let name = check.get("name").and_then(Value::as_str).unwrap_or("?");
        let summary = check.get("summary").and_then(Value::as_str).unwrap_or("");
        let url = check.get("url").and_then(Value::as_str).unwrap_or("");
        let _ = write!(out, "check `{name}` did not succeed. {}", one_line(summary));
        if !url.is_empty() {
            let _ = write!(out, " [details]({url})");
        }
    } else if let Some(reason) = e.evidence.get("reason").and_then(Value::as_str) {
        out.push_str(&one_line(reason));
    }
    out
}

fn returned_summary(e: &Event) -> String {
    let ev = &e.evidence;
    let text = |k: &str| ev.get(k).and_then(Value::as_str).map(one_line);
    match e.event {
        EventKind::VerifyFailed => {
            if let Some(failed) = ev.get("failed") {
                let command = failed.get("command").and_then(Value::as_str).unwrap_or("?");
                format!("Verify failed: `{}` {}", one_line(command), outcome(failed))
            } else if let Some(check) = ev.get("check") {
                format!(
                    "Required check `{}` failed: {} {}",
                    check.get("name").and_then(Value::as_str).unwrap_or("?"),
                    check.get("summary").and_then(Value::as_str).unwrap_or(""),
                    check.get("url").and_then(Value::as_str).unwrap_or("")
                )
            } else {
                format!("Verify failed: {}", text("reason").unwrap_or_default())
            }
        }
        EventKind::Conflict => match ev.get("paths").and_then(Value::as_array) {
            Some(paths) if !paths.is_empty() => format!(
                "Conflicts with `{}` in: {}",
                "the base",
                paths
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => text("reason").unwrap_or_else(|| "Conflicts with the base.".to_owned()),
        },
        EventKind::Rejected => format!(
            "Rejected by {}: {}",
            e.by,
            text("reason").unwrap_or_default()
        ),
        _ => format!(
            "{}: {}",
            e.event.as_str().replace('_', " "),
            text("reason")
                .or_else(|| text("error"))
                .or_else(|| text("what"))
                .unwrap_or_default()
        ),
    }
}

fn outcome(failed: &Value) -> String {
    match failed.get("outcome").and_then(Value::as_str) {
        Some("exited") => format!(
            "exited with {}",
            failed.get("code").and_then(Value::as_i64).unwrap_or(-1)
        ),
        Some("timed_out") => "timed out".to_owned(),
        Some("signaled") => format!(
            "was killed by signal {}",
            failed.get("signal").and_then(Value::as_i64).unwrap_or(0)
        ),
        Some(other) => other.replace('_', " "),
        None => "failed".to_owned(),
    }
}

fn timeline_row(e: &Event) -> String {
    let mut what = e.event.as_str().replace('_', " ");
    let ev = &e.evidence;
    if let Some(n) = ev.get("attempt").and_then(Value::as_i64)
        && e.event == EventKind::Submitted
    {
        let _ = write!(what, " (attempt {n})");
    }
    if let Some(reason) = ev.get("reason").and_then(Value::as_str) {
        let _ = write!(what, ": {}", cell(reason));
    }
    if let Some(commit) = ev.get("commit").and_then(Value::as_str)
        && e.event == EventKind::Merged
    {
        let _ = write!(what, " `{}`", short(commit));
    }
    format!(
        "| {} | {} | {} | {} |",
        e.at.to_string().replace('T', " ").trim_end_matches('Z'),
        what,
        cell(&e.by.to_string()),
        e.state.map_or("", |s| s.as_str())
    )
}

fn attempt(e: &Event) -> i64 {
    e.evidence
        .get("attempt")
        .and_then(Value::as_i64)
        .unwrap_or(0)
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
    use crate::model::{Actor, SubsystemName, TaskId, Timestamp};
    use serde_json::json;

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
            lease_expires_at: None,
            attempt: 2,
            port_base: None,
            base_sha: None,
            queued_at: None,
            approved_attempt: None,
            submitted_head: Some("abc".into()),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn event(kind: EventKind, state: Option<TaskState>, evidence: serde_json::Value) -> Event {
        Event {
            at: Timestamp(1_700_000_000_000),
            event: kind,
            task: TaskId(4),
            by: Actor::Daemon,
            state,
            evidence,
        }
    }

    #[test]
    fn the_card_tells_the_story() {
        let events = vec![
            event(
                EventKind::Submitted,
                Some(TaskState::AwaitingApproval),
                json!({"attempt": 2, "checkpoints": ["out of scope: docs/x.md (docs)"]}),
            ),
            event(
                EventKind::VerifyFailed,
                Some(TaskState::Returned),
                json!({"attempt": 1, "onto": "0123456789abcdef", "failed": {"command": "make test", "outcome": "exited", "code": 2, "tail": ["ok 1", "not ok 2 | cart"]}}),
            ),
        ];
        let cx = Context {
            base: "main",
            position: None,
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
        };
        let c = check(&task(TaskState::Queued), &[], &queued);
        assert_eq!((c.status, c.conclusion), ("queued", None));
        assert_eq!(c.title, "Queued: position 2 of 3");
        let c = check(&task(TaskState::Verifying), &[], &queued);
        assert_eq!(c.status, "in_progress");
        let c = check(&task(TaskState::Merged), &[], &queued);
        assert_eq!((c.status, c.conclusion), ("completed", Some("success")));
        let rejected = event(
            EventKind::Rejected,
            Some(TaskState::Returned),
            json!({"reason": "needs a test"}),
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
                    EventKind::Retried,
                    None,
                    json!({"reason": format!("try {i}")}),
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

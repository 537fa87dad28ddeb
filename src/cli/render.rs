//! Human-readable text for tasks, claims and the queue; events are told by
//! `crate::story`.

use crate::api::{Claimed, ConflictView, QueueEntry, TaskDetail};
use crate::model::{Blocker, Pause, Task};
use crate::story;

pub fn task_line(t: &Task) -> String {
    let subsystems: Vec<&str> = t.subsystems.iter().map(|s| s.as_str()).collect();
    let subsystems = if subsystems.is_empty() {
        "-".to_owned()
    } else {
        subsystems.join(",")
    };
    let blocked = match t.blocked_by.is_empty() || t.state.is_final() {
        true => String::new(),
        false => format!("  [blocked: {}]", Blocker::describe(&t.blocked_by)),
    };
    format!(
        "{:<5} {:<17} {:>4}  {:<16} {:<12} {}{blocked}",
        t.id.to_string(),
        t.state.as_str(),
        t.priority,
        subsystems,
        t.executor.as_deref().unwrap_or("-"),
        t.title
    )
}

pub fn task_table(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "no tasks\n".to_owned();
    }
    let mut out = format!(
        "{:<5} {:<17} {:>4}  {:<16} {:<12} {}\n",
        "ID", "STATE", "PRIO", "SUBSYSTEMS", "EXECUTOR", "TITLE"
    );
    for t in tasks {
        out.push_str(&task_line(t));
        out.push('\n');
    }
    out
}

pub fn task_detail(d: &TaskDetail) -> String {
    let t = &d.task;
    let mut out = format!("{} {}: {}\n", t.id, t.state, t.title);
    if !t.body.is_empty() {
        out.push_str(&format!(
            "  request:     {}\n",
            t.body.replace('\n', "\n               ")
        ));
    }
    for a in &t.accept {
        out.push_str(&format!("  accept:      {a}\n"));
    }
    let scope = if t.scope.is_empty() {
        "-".to_owned()
    } else {
        t.scope.join(", ")
    };
    let subsystems: Vec<&str> = t.subsystems.iter().map(|s| s.as_str()).collect();
    out.push_str(&format!(
        "  scope:       {scope} (subsystems: {})\n",
        if subsystems.is_empty() {
            "-".to_owned()
        } else {
            subsystems.join(", ")
        }
    ));
    out.push_str(&format!("  priority:    {}\n", t.priority));
    if !t.after.is_empty() {
        let after: Vec<String> = t.after.iter().map(|a| a.to_string()).collect();
        out.push_str(&format!("  after:       {}\n", after.join(", ")));
    }
    for c in &d.checkpoints {
        out.push_str(&format!("  waits for:   {c}\n"));
    }
    for c in &d.conflicts {
        out.push_str(&format!("  conflict:    {}\n", conflict_line(c)));
    }
    for (label, who) in d.roles.lines() {
        out.push_str(&format!("  {:<12} {who}\n", format!("{label}:")));
    }
    if !t.blocked_by.is_empty() && !t.state.is_final() {
        out.push_str(&format!(
            "  blocked:     it {}\n",
            Blocker::describe(&t.blocked_by)
        ));
    }
    out.push_str(&format!("  branch:      {}\n", t.branch));
    if let Some(pr) = &d.pull_request {
        out.push_str(&format!("  pull req.:   #{} {}\n", pr.number, pr.url));
    }
    if let Some(w) = &t.worktree {
        out.push_str(&format!("  worktree:    {w}\n"));
    }
    if let Some(a) = &t.agent {
        let until = t
            .lease_expires_at
            .map(|l| format!(" (lease until {l})"))
            .unwrap_or_default();
        out.push_str(&format!("  agent:       {a}{until}\n"));
    }
    out.push_str("  timeline:\n");
    for line in story::told(&d.timeline) {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

/// "t3 conflicts with t5 (bob) in api/a.rs, api/b.rs".
pub fn conflict_line(c: &ConflictView) -> String {
    let who = c
        .agent
        .as_deref()
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    format!(
        "{} conflicts with {}{who} in {}",
        c.task,
        c.with,
        c.paths.join(", ")
    )
}

/// The line `switchyard queue` starts with while the queue is paused.
pub fn pause(p: &Pause) -> String {
    format!(
        "the queue is paused since {} ({}): {}\n  `switchyard resume --by NAME` accepts the base as it is and goes on; `switchyard log --queue` has the details",
        p.since,
        p.what.kind().as_str(),
        p.reason
    )
}

pub fn claimed(c: &Claimed) -> String {
    let t = &c.task;
    let mut out = format!(
        "{} {} {}: {}\n",
        if c.renewed { "renewed" } else { "claimed" },
        t.id,
        t.agent.as_deref().unwrap_or("?"),
        t.title
    );
    match &c.remote {
        Some(url) => {
            out.push_str(&format!("  remote:    {url} (push your work there)\n"));
        }
        None => out.push_str(&format!(
            "  worktree:  {}\n",
            t.worktree.as_deref().unwrap_or("-")
        )),
    }
    out.push_str(&format!("  branch:    {}\n", t.branch));
    out.push_str(&format!(
        "  base:      {} ({})\n",
        c.base,
        t.base_sha
            .as_deref()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or("-")
    ));
    if let Some(until) = t.lease_expires_at {
        out.push_str(&format!(
            "  lease:     until {until} (renew with `switchyard heartbeat {}`)\n",
            t.id
        ));
    }
    if let Some(url) = &c.remote {
        let base = t.base_sha.as_deref().unwrap_or("-");
        match &c.pushed {
            Some(tip) => out.push_str(&format!(
                "  pushed:    {} (continue from it: git fetch {url} {} && git switch -C {} FETCH_HEAD)\n",
                &tip[..tip.len().min(12)],
                t.branch,
                t.branch
            )),
            None => out.push_str(&format!(
                "  start:     git fetch {url} {} && git switch -C {} {base}\n",
                c.base, t.branch
            )),
        }
        out.push_str(&format!(
            "  submit:    git push {url} HEAD:refs/heads/{} && switchyard submit {} --commit HEAD\n",
            t.branch, t.id
        ));
    } else {
        out.push_str(&format!("  env:       {}\n", c.env_file));
    }
    for w in &c.warnings {
        out.push_str(&format!("  warning:   {w}\n"));
    }
    out
}

pub fn queue(entries: &[QueueEntry]) -> String {
    if entries.is_empty() {
        return "the queue is empty\n".to_owned();
    }
    let mut out: String = entries
        .iter()
        .map(|e| {
            let on = match e.built_on.as_deref() {
                Some(on) if on != "base" => format!(" (built on {on})"),
                _ => String::new(),
            };
            let lane = match (e.lane, e.lane_position) {
                (Some(l), Some(n)) => format!("lane {l}.{n}"),
                _ => "-".to_owned(),
            };
            format!(
                "{:>3}. {:<5} {:<9} {:<17} {:>6}  waiting for {}{on}  {}\n",
                e.position,
                e.id.to_string(),
                lane,
                e.stage.as_str(),
                elapsed(e.elapsed_ms),
                e.waiting_for,
                e.title
            )
        })
        .collect();
    let mut flaky: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
    for e in entries {
        for (command, n) in &e.flakes {
            *flaky.entry(command).or_insert(0) += n;
        }
    }
    for (command, n) in flaky {
        let times = if n == 1 { "once" } else { "times" };
        let n = if n == 1 {
            String::new()
        } else {
            format!("{n} ")
        };
        out.push_str(&format!(
            "flaky: `{command}` failed then passed {n}{times}\n"
        ));
    }
    out
}

/// `850ms`, `12s`, `4m05s`, `2h10m`: how long an entry has been at its stage.
fn elapsed(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

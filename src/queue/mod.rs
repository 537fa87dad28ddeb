//! The merge queue's decisions, as pure functions of the ledger's state and the
//! repository's facts: what to integrate next, which checkpoints a change must pass, and
//! which commands verify it. The git work that carries them out is in
//! `daemon::integrate`; later lanes, speculation and batching change this module, not
//! that machinery.

pub mod lanes;
pub mod planner;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{Approval, Config};
use crate::git::Change;
use crate::model::{Event, EventKind, Evidence, SubsystemName, Task, TaskId, TaskState};
use crate::ownership::Pattern;

/// The tasks to integrate, in order. One at a time for now: the head of the list is the
/// one to work on. A task already being integrated (after a restart) comes first; then
/// queued tasks by priority (higher first), then by when they entered the queue.
pub fn plan(tasks: &[Task]) -> Vec<TaskId> {
    let mut order: Vec<&Task> = tasks
        .iter()
        .filter(|t| matches!(t.state, TaskState::Queued | TaskState::Verifying))
        .collect();
    order.sort_by(|a, b| {
        (b.state == TaskState::Verifying)
            .cmp(&(a.state == TaskState::Verifying))
            .then(b.priority.cmp(&a.priority))
            .then(a.queued_at.cmp(&b.queued_at))
            .then(a.id.cmp(&b.id))
    });
    order.into_iter().map(|t| t.id).collect()
}

/// What a change touches, and what a person must look at before it lands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Review {
    /// Subsystems owning at least one changed path.
    pub touched: BTreeSet<SubsystemName>,
    /// Changed paths outside the task's scope, with their owner (`None`: unowned).
    pub out_of_scope: Vec<OutOfScope>,
    /// Touched subsystems whose changes always need a person's approval.
    pub approval_required: Vec<SubsystemName>,
    /// Symlinks added or changed that point outside the repository.
    pub unsafe_symlinks: Vec<String>,
    /// Paths that are not UTF-8, which ownership rules cannot be trusted to match.
    pub unreadable_paths: Vec<String>,
    /// Every changed path, renames counted on both sides.
    pub paths: usize,
    /// Why the change touches every subsystem, for ownership lanes: the first changed
    /// path no subsystem owns, or the config. `None`: only `touched`.
    pub touches_everything: Option<String>,
}

/// Recorded in `submitted` events, so its type lives with the other event payloads.
pub use crate::model::evidence::OutOfScope;

impl Review {
    /// Whether a person must approve before the change may land.
    pub fn needs_person(&self) -> bool {
        !self.out_of_scope.is_empty()
            || !self.approval_required.is_empty()
            || !self.unsafe_symlinks.is_empty()
            || !self.unreadable_paths.is_empty()
    }

    /// One line per checkpoint that applies.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.out_of_scope.is_empty() {
            let list: Vec<String> = self
                .out_of_scope
                .iter()
                .map(|o| match &o.owner {
                    Some(owner) => format!("{} ({owner})", o.path),
                    None => format!("{} (unowned)", o.path),
                })
                .collect();
            out.push(format!("scope change: {}", list.join(", ")));
        }
        for s in &self.approval_required {
            out.push(format!("subsystem {s} requires approval"));
        }
        if !self.unsafe_symlinks.is_empty() {
            out.push(format!(
                "symlinks pointing outside the repository: {}",
                self.unsafe_symlinks.join(", ")
            ));
        }
        if !self.unreadable_paths.is_empty() {
            out.push(format!(
                "paths that are not UTF-8: {}",
                self.unreadable_paths.join(", ")
            ));
        }
        out
    }
}

/// Checks a change against the task's scope and the config's checkpoints.
pub fn review(changes: &[Change], task: &Task, config: &Config) -> Review {
    let scope_globs: Vec<Pattern> = task
        .scope
        .iter()
        .filter(|entry| {
            !config
                .subsystems
                .iter()
                .any(|s| s.name.as_str() == entry.as_str())
        })
        .filter_map(|entry| Pattern::parse(entry).ok())
        .collect();
    let mut resolver = config.ownership.resolver();
    let mut review = Review::default();
    let mut seen = BTreeSet::new();
    for change in changes {
        if change.non_utf8 {
            review.unreadable_paths.push(change.path.clone());
        }
        if let Some(target) = &change.symlink_target
            && escapes(&change.path, target)
        {
            review
                .unsafe_symlinks
                .push(format!("{} -> {target}", change.path));
        }
        for path in std::iter::once(&change.path).chain(change.old_path.as_ref()) {
            if !seen.insert(path.clone()) {
                continue;
            }
            let owner = resolver.owner(path).map(|r| r.subsystem.clone());
            if let Some(owner) = &owner {
                review.touched.insert(owner.clone());
            }
            if review.touches_everything.is_none() {
                if path == crate::config::FILE_NAME {
                    review.touches_everything = Some(format!("it changes the config, {path}"));
                } else if owner.is_none() {
                    review.touches_everything =
                        Some(format!("it changes {path}, which no subsystem owns"));
                }
            }
            let in_scope = owner.as_ref().is_some_and(|o| task.subsystems.contains(o))
                || scope_globs.iter().any(|g| g.is_match(path));
            if !in_scope {
                review.out_of_scope.push(OutOfScope {
                    path: path.clone(),
                    owner,
                });
            }
        }
    }
    review.paths = seen.len();
    review.approval_required = config
        .subsystems
        .iter()
        .filter(|s| s.approval == Approval::Required && review.touched.contains(&s.name))
        .map(|s| s.name.clone())
        .collect();
    review
}

/// What a task waits for at its checkpoint, one line each: the scope and approval
/// checkpoints of its submission (or of its rebased change), or the attempt limit.
pub fn checkpoints(task: &Task, events: &[Event]) -> Vec<String> {
    if task.state == TaskState::AwaitingApproval
        && let Some(Event {
            what: Evidence::AttemptLimit(limit),
            ..
        }) = events.iter().rev().find(|e| e.state.is_some())
    {
        return vec![format!(
            "attempt limit reached: it came back {} times ([queue] max_attempts = {}); approve another round, cancel it, or release it for someone else",
            limit.returns.len(),
            limit.limit
        )];
    }
    if task.approved_attempt == Some(task.attempt) {
        return Vec::new();
    }
    events
        .iter()
        .rev()
        .find(|e| matches!(e.kind(), EventKind::Submitted | EventKind::NeedsApproval))
        .map(|e| match &e.what {
            Evidence::Submitted(s) => s.checkpoints.clone(),
            Evidence::NeedsApproval(n) => n.checkpoints.clone(),
            // Written in a shape this version cannot read: nothing to list.
            _ => Vec::new(),
        })
        .unwrap_or_default()
}

/// Whether a change touching `touched` needs a reviewer's verdict before the queue:
/// `[review] required`, or a touched subsystem with `review = "required"`.
pub fn needs_review(config: &Config, touched: &BTreeSet<SubsystemName>) -> bool {
    config.review.required
        || config
            .subsystems
            .iter()
            .any(|s| s.review == Approval::Required && touched.contains(&s.name))
}

/// Where a submitted change goes next: a person's checkpoint first (unless approved
/// for this attempt), then a reviewer (unless this very commit was approved by one),
/// then the queue.
pub fn next_stage(
    needs_person: bool,
    needs_review: bool,
    approved: bool,
    reviewed: bool,
) -> TaskState {
    if needs_person && !approved {
        TaskState::AwaitingApproval
    } else if needs_review && !reviewed {
        TaskState::AwaitingReview
    } else {
        TaskState::Queued
    }
}

/// Whether a symlink at `path` pointing at `target` leads outside the repository.
fn escapes(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth: i64 = path.matches('/').count() as i64;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// The commands that verify a change: the queue's, then those of every touched
/// subsystem and of every subsystem that depends on a touched one, in config order,
/// each once.
pub fn verify_commands(config: &Config, touched: &BTreeSet<SubsystemName>) -> Vec<String> {
    let mut commands: Vec<String> = config.queue.verify.clone();
    for s in &config.subsystems {
        let relevant =
            touched.contains(&s.name) || s.depends_on.iter().any(|d| touched.contains(d));
        if relevant {
            for c in &s.verify {
                if !commands.contains(c) {
                    commands.push(c.clone());
                }
            }
        }
    }
    commands
}

/// The message of the one commit a task lands as (`[queue] land = "squash"`): the title,
/// the request, the acceptance criteria, then trailers: the task, each check that
/// `verified` it (it lands only once they passed) and the other authors of its commits.
pub fn squash_message(task: &Task, verified: &[String], co_authors: &[(String, String)]) -> String {
    // A trailer is one line; a command may span several.
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut message = task.title.trim().to_owned();
    if !task.body.trim().is_empty() {
        message.push_str("\n\n");
        message.push_str(task.body.trim());
    }
    if !task.accept.is_empty() {
        message.push_str("\n\nAcceptance criteria:");
        for a in &task.accept {
            message.push_str("\n- ");
            message.push_str(&one_line(a));
        }
    }
    message.push_str(&format!("\n\nSwitchyard-Task: {}", task.id));
    for v in verified {
        message.push_str(&format!("\nSwitchyard-Verified: {}", one_line(v)));
    }
    for (name, email) in co_authors {
        message.push_str(&format!("\nCo-authored-by: {name} <{email}>"));
    }
    message.push('\n');
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Context, parse};
    use crate::model::Timestamp;

    fn config() -> Config {
        parse(
            "[queue]\nverify = [\"make lint\"]\n\
             [[subsystem]]\nname = \"auth\"\npaths = [\"auth/\"]\nverify = [\"test auth\"]\n\
             [[subsystem]]\nname = \"billing\"\npaths = [\"billing/\"]\nverify = [\"test billing\"]\ndepends_on = [\"auth\"]\n\
             [[subsystem]]\nname = \"ci\"\npaths = [\".github/\"]\napproval = \"required\"\n",
            "t.toml",
            &Context::default(),
        )
        .unwrap()
        .config
    }

    fn task(id: i64, state: TaskState, priority: i64, queued_at: i64, scope: &[&str]) -> Task {
        Task {
            id: TaskId(id),
            title: String::new(),
            body: String::new(),
            accept: vec![],
            scope: scope.iter().map(|s| s.to_string()).collect(),
            subsystems: scope
                .iter()
                .filter_map(|s| SubsystemName::new(s).ok())
                .filter(|s| ["auth", "billing", "ci"].contains(&s.as_str()))
                .collect(),
            priority,
            state,
            branch: String::new(),
            worktree: None,
            agent: None,
            executor: None,
            lease_expires_at: None,
            attempt: 1,
            port_base: None,
            base_sha: None,
            queued_at: Some(Timestamp(queued_at)),
            approved_attempt: None,
            submitted_head: None,
            after: vec![],
            blocked_by: vec![],
            review: None,
            reviewed_head: None,
            remote_claim: false,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn change(path: &str) -> Change {
        Change {
            path: path.into(),
            old_path: None,
            symlink_target: None,
            non_utf8: false,
        }
    }

    #[test]
    fn plan_resumes_then_priority_then_arrival() {
        let tasks = [
            task(1, TaskState::Queued, 0, 10, &[]),
            task(2, TaskState::Queued, 5, 30, &[]),
            task(3, TaskState::Claimed, 9, 0, &[]),
            task(4, TaskState::Verifying, 0, 40, &[]),
            task(5, TaskState::Queued, 0, 5, &[]),
        ];
        assert_eq!(
            plan(&tasks),
            vec![TaskId(4), TaskId(2), TaskId(5), TaskId(1)]
        );
    }

    #[test]
    fn a_squashed_commit_says_what_the_task_was_and_what_verified_it() {
        let mut t = task(7, TaskState::Verifying, 0, 0, &[]);
        t.title = "Fix the login redirect".into();
        t.body = "Users land on /home after login.\n".into();
        t.accept = vec![
            "login goes back\nto where it came from".into(),
            "tests".into(),
        ];
        let co = [("Bo Builder".to_owned(), "bo@example.com".to_owned())];
        assert_eq!(
            squash_message(&t, &["make lint".into(), "cargo\ntest".into()], &co),
            "Fix the login redirect\n\n\
             Users land on /home after login.\n\n\
             Acceptance criteria:\n\
             - login goes back to where it came from\n\
             - tests\n\n\
             Switchyard-Task: t7\n\
             Switchyard-Verified: make lint\n\
             Switchyard-Verified: cargo test\n\
             Co-authored-by: Bo Builder <bo@example.com>\n"
        );
        t.body.clear();
        t.accept.clear();
        assert_eq!(
            squash_message(&t, &[], &[]),
            "Fix the login redirect\n\nSwitchyard-Task: t7\n"
        );
    }

    #[test]
    fn review_checkpoints() {
        let c = config();
        let t = task(1, TaskState::Claimed, 0, 0, &["auth", "docs/**"]);
        let r = review(&[change("auth/a.rs"), change("docs/x.md")], &t, &c);
        assert!(!r.needs_person(), "{r:?}");
        let renamed = Change {
            path: "billing/a.rs".into(),
            old_path: Some("auth/a.rs".into()),
            ..change("")
        };
        let r = review(
            &[renamed, change(".github/ci.yml"), change("README.md")],
            &t,
            &c,
        );
        assert_eq!(
            r.reasons(),
            vec![
                "scope change: billing/a.rs (billing), .github/ci.yml (ci), README.md (unowned)",
                "subsystem ci requires approval"
            ]
        );
        assert_eq!(r.paths, 4);
        let link = |target: &str| Change {
            symlink_target: Some(target.into()),
            ..change("auth/link")
        };
        assert!(review(&[link("../../etc/passwd")], &t, &c).needs_person());
        assert!(review(&[link("/etc/passwd")], &t, &c).needs_person());
        assert!(!review(&[link("../auth/a.rs")], &t, &c).needs_person());
    }

    #[test]
    fn verify_commands_follow_touched_subsystems_and_dependents() {
        let c = config();
        let touched: BTreeSet<SubsystemName> = [SubsystemName::new("auth").unwrap()].into();
        assert_eq!(
            verify_commands(&c, &touched),
            vec!["make lint", "test auth", "test billing"]
        );
        let touched: BTreeSet<SubsystemName> = [SubsystemName::new("billing").unwrap()].into();
        assert_eq!(
            verify_commands(&c, &touched),
            vec!["make lint", "test billing"]
        );
        assert_eq!(verify_commands(&c, &BTreeSet::new()), vec!["make lint"]);
    }
}

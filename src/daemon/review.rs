//! The review stage: a reviewer (an agent or a person, never one of the task's
//! executors) takes the oldest change awaiting review under a lease, reads exactly the
//! submitted commit in a detached checkout of its own, and approves it on to the queue
//! or asks for changes, back to the executor. The decisions are the ledger's
//! (`store::Ledger::review_next`, `review_verdict`); this file makes and recycles the
//! checkouts and checks who may review.

use std::path::{Path, PathBuf};

use tracing::{info, info_span, warn};

use super::service::{ApiError, Result, Service, name};
use crate::api::{self, ErrorCode};
use crate::model::evidence::Verdict;
use crate::model::{Actor, Evidence, Task, TaskId, TaskState, Timestamp};
use crate::queue;
use crate::store::LedgerError;
use crate::worktree;

/// The most a reviewer's notes may hold.
const MAX_NOTES_BYTES: usize = 64 * 1024;

impl Service {
    /// Hands the reviewer the oldest change awaiting review, with a checkout of it.
    pub fn review_next(&self, req: api::ReviewNext) -> Result<api::ReviewHandOut> {
        let who = self.reviewer(&req.reviewer)?;
        let root = self.worktrees.root.clone();
        let path = move |id: TaskId| review_path(&root, id).display().to_string();
        let lease = self.config.review.lease;
        let (task, renewed) =
            self.ledger(|l| l.review_next(&who, lease, &path, Timestamp::now()))?;
        let _span = info_span!("task", task = %task.id).entered();
        info!(reviewer = %who, renewed, "review handed out");
        let (commit, merge_base) = self.ledger(|l| l.submission_of(&task))?;
        let dir = review_path(&self.worktrees.root, task.id);
        {
            // Not while the background job gives this task's old checkout back.
            let lock = self.task_lock(task.id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            self.ensure_review_checkout(&dir, &commit)?;
        }
        self.github_wanted();
        let review = task.review.clone();
        Ok(api::ReviewHandOut {
            id: task.id,
            request: task.body.clone(),
            accept: task.accept.clone(),
            scope: task.scope.clone(),
            subsystems: task.subsystems.iter().map(|s| s.to_string()).collect(),
            range: format!("{merge_base}..{commit}"),
            commit,
            merge_base,
            worktree: dir.display().to_string(),
            branch: task.branch.clone(),
            attempt: task.attempt,
            executor: task.agent.clone(),
            lease_expires_at: review.map(|r| r.lease_expires_at).unwrap_or(Timestamp(0)),
            renewed,
            title: task.title,
        })
    }

    /// A reviewer's verdict: approved on to the queue, or changes requested, back to
    /// the executor with the notes. Its checkout is given back right after.
    pub fn review_verdict(
        &self,
        id: TaskId,
        req: api::ReviewVerdict,
        approve: bool,
    ) -> Result<Task> {
        let who = self.reviewer(&req.reviewer)?;
        let notes = req.notes.trim().to_owned();
        if !approve && notes.is_empty() {
            return Err(ApiError::bad(
                "asking for changes needs --notes: what the executor should change",
            ));
        }
        if notes.len() > MAX_NOTES_BYTES
            || notes
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            return Err(ApiError::bad(format!(
                "--notes must be text of at most {MAX_NOTES_BYTES} bytes, without control characters"
            )));
        }
        let task = self.ledger(|l| l.task(id))?;
        let submitted = task.submitted_head.clone().unwrap_or_default();
        // A verdict is about the commit the reviewer read: the one named (an
        // abbreviation of the submitted one will do), else the one `review next`
        // handed it for this attempt. Without either, it would be a verdict on a commit
        // it may never have seen.
        let commit = match req.commit.as_deref().map(|c| c.trim().to_ascii_lowercase()) {
            Some(c) if c.len() >= 7 && submitted.starts_with(&c) => submitted.clone(),
            Some(c) => c,
            None => match self.ledger(|l| l.handed_commit(id, &who))? {
                Some(handed) => handed,
                None if task.state != TaskState::AwaitingReview => submitted.clone(),
                None if task.review.as_ref().is_some_and(|r| {
                    r.reviewer != who && r.lease_expires_at > Timestamp::now()
                }) =>
                {
                    // The ledger says who holds it.
                    submitted.clone()
                }
                None => {
                    return Err(ApiError::new(
                        ErrorCode::StaleCommit,
                        format!(
                            "{who} was not handed {id}'s submitted commit ({}); take the review with \
                         `switchyard review next`, or name the commit you read with --commit",
                            &submitted[..submitted.len().min(10)]
                        ),
                    ));
                }
            },
        };
        self.record_verdict(&task, &who, approve, commit, notes, None)
    }

    /// Records a verdict (from the CLI, or an approving GitHub review from `source`) and
    /// gives the review's checkout back.
    pub(super) fn record_verdict(
        &self,
        task: &Task,
        who: &Actor,
        approve: bool,
        commit: String,
        notes: String,
        source: Option<String>,
    ) -> Result<Task> {
        let id = task.id;
        let approved = task.approved_attempt == Some(task.attempt);
        let needs_person =
            match self.ledger(|l| l.last_event(id, crate::model::EventKind::Submitted))? {
                Some(crate::model::Event {
                    what: Evidence::Submitted(s),
                    ..
                }) => !s.checkpoints.is_empty(),
                _ => false,
            };
        let approved_to = queue::next_stage(needs_person, false, approved, true);
        let verdict = Verdict {
            attempt: task.attempt,
            commit,
            notes,
            source,
        };
        let back = self.back();
        let task = self.ledger(|l| {
            l.review_verdict(
                id,
                who,
                approve,
                verdict,
                approved_to,
                back,
                Timestamp::now(),
            )
        })?;
        let _span = info_span!("task", task = %id).entered();
        match approve {
            true => info!(reviewer = %who, state = %task.state, "review approved"),
            false => info!(reviewer = %who, state = %task.state, "changes requested"),
        }
        self.github_wanted();
        self.let_go_of_review_checkout(id);
        Ok(task)
    }

    /// Ends the reviews whose reviewer's lease ran out; their checkouts go back.
    pub fn expire_reviews(&self) -> Result<Vec<TaskId>> {
        let mut expired = Vec::new();
        for id in self.ledger(|l| l.expired_reviews(Timestamp::now()))? {
            let _span = info_span!("task", task = %id).entered();
            match self.ledger(|l| l.expire_review(id, Timestamp::now())) {
                Ok(_) => {
                    info!("review lease expired; the review is handed out again");
                    self.let_go_of_review_checkout(id);
                    expired.push(id);
                }
                Err(LedgerError::Refused(..)) => {}
                Err(e) => warn!(error = %e, "could not expire the review"),
            }
        }
        Ok(expired)
    }

    /// Gives back every review checkout nobody reviews in any more (after a verdict, an
    /// expiry, a cancel; also what a crash left). The ledger says which.
    pub fn let_go_of_review_checkouts(&self) -> Result<()> {
        for (id, _) in self.ledger(|l| l.review_worktrees_to_let_go())? {
            self.let_go_of_review_checkout(id);
        }
        Ok(())
    }

    /// A clean review checkout goes back to the pool (or is removed); one with changes
    /// stays where it is, said once in the log (its changes are never used).
    pub(super) fn let_go_of_review_checkout(&self, id: TaskId) {
        let lock = self.task_lock(id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.ledger(|l| {
            let task = l.task(id)?;
            let known = l.review_worktrees_to_let_go()?;
            Ok::<_, LedgerError>((task, known))
        });
        let Ok((task, known)) = held else { return };
        let Some((_, path)) = known.into_iter().find(|(t, _)| *t == id) else {
            return;
        };
        if task.review.is_some() && task.state == TaskState::AwaitingReview {
            return;
        }
        let dir = PathBuf::from(&path);
        if dir.exists() {
            match worktree::is_clean(&dir, &[]) {
                Ok(true) => {
                    let to = self.recycle(&dir);
                    info!(path = %path, to = ?to, "review checkout given back");
                }
                _ => self.set_aside(&dir),
            }
        }
        if let Err(e) = self.ledger(|l| l.review_worktree_gone(id, &path)) {
            warn!(error = %e, "could not record the review checkout as given back");
        }
        self.wake.pool.notify_one();
    }

    /// A detached checkout of `commit` at `dir`: the one there, moved to the commit if
    /// needed (nobody works in a review checkout), else a pool member, else a new one.
    fn ensure_review_checkout(&self, dir: &Path, commit: &str) -> Result<()> {
        if dir.exists() && self.is_registered(dir)? {
            // Someone wrote in it: that is never handed out as the commit.
            if !worktree::is_clean(dir, &[]).unwrap_or(false) {
                self.set_aside(dir);
            }
        }
        if dir.exists() {
            if self.is_registered(dir)? {
                let head = worktree::git(dir, &["rev-parse", "HEAD"])?;
                if head.trim() != commit {
                    // Clean: a forced checkout loses nothing.
                    worktree::git(dir, &["checkout", "-q", "--detach", "--force", commit])?;
                }
                return Ok(());
            }
            // Ours by its name, and half made (a crash while it was being made).
            std::fs::remove_dir_all(dir)
                .map_err(|e| ApiError::internal(format!("cannot clear {}: {e}", dir.display())))?;
            self.worktrees.prune()?;
        }
        match self.ledger(|l| l.take_pool_member())? {
            Some(member) => {
                self.worktrees.move_to(Path::new(&member), dir)?;
                worktree::git(dir, &["checkout", "-q", "--detach", "--force", commit])?;
                self.wake.pool.notify_one();
            }
            None => self.worktrees.add_detached(dir, commit)?,
        }
        Ok(())
    }

    /// A review checkout someone changed files in: moved out of the way, under
    /// `<root>/.kept/`, and never touched again (the changes are someone's, though
    /// never used); the log says where.
    fn set_aside(&self, dir: &Path) {
        let kept = self.worktrees.kept_dir();
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let to = kept.join(format!("{name}-{}", Timestamp::now().0));
        let moved = std::fs::create_dir_all(&kept)
            .map_err(|e| ApiError::internal(e.to_string()))
            .and_then(|()| Ok(self.worktrees.move_to(dir, &to)?));
        match moved {
            Ok(()) => warn!(
                path = %dir.display(),
                kept = %to.display(),
                "a review checkout had changes; they are not used, and it was set aside"
            ),
            Err(e) => {
                warn!(path = %dir.display(), error = %e.message, "could not set aside a review checkout with changes")
            }
        }
    }

    /// Who reviews, as the ledger records them: an agent or a person, one of
    /// `[review] reviewers` when that list is set.
    fn reviewer(&self, r: &api::Reviewer) -> Result<Actor> {
        let who = match (&r.agent, &r.by) {
            (Some(agent), None) => Actor::Agent(name(agent, "--agent")?),
            (None, Some(by)) => Actor::Person(name(by, "--by")?),
            _ => {
                return Err(ApiError::bad(
                    "say who reviews: --agent NAME (an agent) or --by NAME (a person), not both",
                ));
            }
        };
        let (Actor::Agent(n) | Actor::Person(n)) = &who else {
            unreachable!("a reviewer is an agent or a person")
        };
        if !self.config.review.allows(n) {
            return Err(ApiError::new(
                ErrorCode::NotAllowed,
                format!(
                    "{n} may not review: [review] reviewers lists {}",
                    self.config.review.reviewers.join(", ")
                ),
            ));
        }
        Ok(who)
    }
}

/// Where a task's review checkout lives: beside the task worktrees, never one of them.
pub(super) fn review_path(root: &Path, id: TaskId) -> PathBuf {
    root.join(format!("review-{id}"))
}

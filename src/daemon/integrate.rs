//! The merge queue's side of the service: submit and the checkpoints, then integrating
//! the head of the queue one step at a time, each step recorded before the next begins.
//!
//! Steps (see `store::Step`): started -> rebased (the branch replayed onto the base tip)
//! -> verified (commands passed in the integration worktree at exactly that commit) ->
//! base moved (compare-and-swap from the tip verified against; with a remote, a plain
//! push first) -> branch updated -> merged. A restart resumes from the recorded step:
//! a rebase or a verify is redone, a base move is recognized as done when the base
//! already points at the verified commit, and the base never moves to a commit that did
//! not pass verify on exactly the base it replaces.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{info, info_span, warn};

use super::github::Hub;
use super::service::{ApiError, Result, Service, name};
use crate::api::{self, ErrorCode};
use crate::command;
use crate::config::{Land, VerifyOn};
use crate::git;
use crate::gitcli::{self, Replayed};
use crate::model::evidence::{
    self, BaseNotOurs, BranchUpdated, ChangedOnGithub, CommitLine, Conflict, Flaked,
    IntegrationFailed, LeftBase, Merged, NeedsApproval, Submitted, Verification, VerifyFailed,
    VerifyFailure, VerifyPassed,
};
use crate::model::short_sha as short;
use crate::model::{
    Actor, Event, EventKind, Evidence, Pause, QueueEvidence, Stop, Task, TaskId, TaskState,
    Timestamp,
};
use crate::queue;
use crate::queue::planner::{self, Action, Onto, Outcome};
use crate::store::{Built, Integration, Step};
use crate::worktree;

impl Service {
    // ---- submit and checkpoints -----------------------------------------------------

    /// The executor holding the claim asks for integration. The change (its branch
    /// against the merge base with the base) is checked against the task's scope and the
    /// config's checkpoints: `queued` when nothing needs a person, else
    /// `awaiting_approval` with the reasons in the event.
    ///
    /// With `commit`, exactly that commit: for a remote claim (`claim --remote`) it is
    /// required, and the task's branch on the remote must point at it (`take_pushed`);
    /// otherwise it must be the branch's tip.
    pub fn submit(&self, id: TaskId, req: api::Submit) -> Result<api::Submitted> {
        let agent = name(&req.agent, "--agent")?;
        let commit = req.commit.as_deref().map(full_sha).transpose()?;
        let commit = commit.as_deref();
        let task = self.ledger(|l| l.task(id))?;
        let holder = task.state.holds_lease() && task.agent.as_deref() == Some(agent.as_str());
        if !holder {
            // Not (or no longer) the holder's to submit: a retry of a submission, or a
            // refusal, which `submit_commit` words.
            return self.submit_commit(id, &agent, commit);
        }
        if task.remote_claim {
            let commit = commit.ok_or_else(|| {
                ApiError::bad(format!(
                    "{id} was claimed with --remote: name the commit you pushed to {}, e.g. \
                     `switchyard submit {id} --commit HEAD` in your clone",
                    task.branch
                ))
            })?;
            self.take_pushed(&task, commit)?;
            let submitted = self.submit_commit(id, &agent, Some(commit))?;
            self.point_branch_at(&task, commit);
            return Ok(submitted);
        }
        if let Some(commit) = commit {
            let tip = git::branch_tip(&self.repo.main_root, &task.branch)?;
            if tip.as_deref() != Some(commit) {
                return Err(ApiError::new(
                    ErrorCode::StaleCommit,
                    format!(
                        "{id}'s branch {} is at {}, not at {}: commit in the worktree, or name its tip",
                        task.branch,
                        tip.as_deref().map_or("nothing", short),
                        short(commit)
                    ),
                ));
            }
        }
        self.submit_commit(id, &agent, commit)
    }

    /// `submit`, of `commit` instead of the branch's tip when given (a retry of the
    /// commit submitted before, or a remote claim's pushed commit).
    pub(super) fn submit_commit(
        &self,
        id: TaskId,
        agent: &str,
        commit: Option<&str>,
    ) -> Result<api::Submitted> {
        let agent = name(agent, "--agent")?;
        let task = self.ledger(|l| l.task(id))?;
        if let Some(replayed) = self.submit_replay(&task, &agent, commit)? {
            return Ok(replayed);
        }
        if !task.state.holds_lease() {
            return Err(ApiError::new(
                ErrorCode::WrongState,
                format!("{id} is {}, not claimed", task.state),
            ));
        }
        if task.agent.as_deref() != Some(agent.as_str()) {
            return Err(ApiError::new(
                ErrorCode::NotClaimHolder,
                format!(
                    "{id} is claimed by {}, not by {agent}",
                    task.agent.as_deref().unwrap_or("nobody")
                ),
            ));
        }
        let root = &self.repo.main_root;
        let base = self.base_tip()?;
        let tip = match commit {
            Some(c) => c.to_owned(),
            None => git::branch_tip(root, &task.branch)?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NothingToSubmit,
                    format!("{id}'s branch {} does not exist", task.branch),
                )
            })?,
        };
        if let Some(start) = &task.base_sha
            && !git::is_ancestor(root, start, &tip)?
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "{id}'s branch no longer contains the base commit it started from ({}): it rewrote or \
                 dropped commits of {}; rebase your commits onto {} and submit again",
                    short(start),
                    self.config.base,
                    self.config.base
                ),
            ));
        }
        let merge_base = git::merge_base(root, &tip, &base)?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::Conflict,
                format!("{id}'s branch shares no history with {}", self.config.base),
            )
        })?;
        if merge_base == tip {
            return Err(ApiError::new(
                ErrorCode::NothingToSubmit,
                format!(
                    "{id} has no commits beyond {}; commit your work on {} first",
                    self.config.base, task.branch
                ),
            ));
        }
        let changes = git::changes(root, &merge_base, &tip)?;
        let review = queue::review(&changes, &task, &self.config);
        let mut warnings = Vec::new();
        if let Some(wt) = &task.worktree
            && !worktree::is_clean(Path::new(wt), &self.config.worktrees.copy).unwrap_or(true)
        {
            warnings.push(
                "the worktree has uncommitted changes; they are not part of this submission"
                    .to_owned(),
            );
        }
        let to = queue::next_stage(
            review.needs_person(),
            queue::needs_review(&self.config, &review.touched),
            false,
            task.reviewed_head.as_deref() == Some(tip.as_str()),
        );
        let evidence = Submitted {
            head: tip.clone(),
            merge_base,
            paths: review.paths as u64,
            subsystems: review.touched.iter().cloned().collect(),
            checkpoints: review.reasons(),
            out_of_scope: review.out_of_scope.clone(),
            // The ledger counts attempts; this is what it will count.
            attempt: task.attempt + 1,
            touches_everything: review.touches_everything.clone(),
        };
        // What was submitted is what gets integrated (and what an approval approves),
        // whatever happens to the branch afterwards; a ref keeps it reachable.
        gitcli::git(root, &["update-ref", &submitted_ref(id), &tip])?;
        let task = self.ledger(|l| l.submit(id, &agent, &tip, to, evidence, Timestamp::now()))?;
        let _span = info_span!("task", task = %id).entered();
        info!(attempt = task.attempt, state = %task.state, "submitted");
        self.github_wanted();
        Ok(api::Submitted {
            task,
            checkpoints: review.reasons(),
            warnings,
        })
    }

    /// A submit that already happened, asked for again (its reply lost to a crash or a
    /// timeout): the same answer, nothing recorded twice. Only for that very submission,
    /// of the same commit, by the same executor, while it waits in the queue or once it
    /// landed (a task that came back takes a new submission).
    fn submit_replay(
        &self,
        task: &Task,
        agent: &str,
        commit: Option<&str>,
    ) -> Result<Option<api::Submitted>> {
        let Some(event) = self.ledger(|l| l.last_event(task.id, EventKind::Submitted))? else {
            return Ok(None);
        };
        // A submission the ledger cannot read is not one to answer for again.
        let Evidence::Submitted(submission) = event.what else {
            return Ok(None);
        };
        let submitted = Some(submission.head.as_str());
        if event.by != Actor::Agent(agent.to_owned()) || submitted != task.submitted_head.as_deref()
        {
            return Ok(None);
        }
        let tip = match commit {
            Some(c) => Some(c.to_owned()),
            None => git::branch_tip(&self.repo.main_root, &task.branch)?,
        };
        let same = match task.state {
            TaskState::Queued
            | TaskState::Verifying
            | TaskState::AwaitingApproval
            | TaskState::AwaitingReview => tip.as_deref() == submitted,
            // Landed since: the branch now points at what landed (or still at what was
            // submitted, if its executor had moved on).
            TaskState::Merged => {
                let landed = self.ledger(|l| l.last_event(task.id, EventKind::Merged))?;
                let landed = match landed.map(|e| e.what) {
                    Some(Evidence::Merged(m)) => Some(m.commit),
                    _ => None,
                };
                tip.as_deref() == submitted || (tip.is_some() && tip == landed)
            }
            TaskState::Open | TaskState::Claimed | TaskState::Returned | TaskState::Cancelled => {
                false
            }
        };
        if !same {
            return Ok(None);
        }
        Ok(Some(api::Submitted {
            task: task.clone(),
            checkpoints: submission.checkpoints,
            warnings: vec![format!(
                "{} was already submitted (attempt {}); nothing changed",
                task.id, task.attempt
            )],
        }))
    }

    pub fn approve(&self, id: TaskId, req: api::Decision) -> Result<Task> {
        let by = Actor::Person(name(&req.by, "--by")?);
        let task = self.ledger(|l| l.task(id))?;
        let to = queue::next_stage(
            false,
            self.needs_review(&task)?,
            true,
            task.reviewed_head.is_some() && task.reviewed_head == task.submitted_head,
        );
        let lease = self.config.claims.lease;
        let task = self.ledger(|l| l.approve(id, &by, to, lease, Timestamp::now()))?;
        let _span = info_span!("task", task = %id).entered();
        info!(by = %by, "approved");
        self.github_wanted();
        Ok(task)
    }

    /// Whether the task's submitted change needs a reviewer: from the subsystems its
    /// submission touched.
    pub(super) fn needs_review(&self, task: &Task) -> Result<bool> {
        let submitted = self.ledger(|l| l.last_event(task.id, EventKind::Submitted))?;
        let touched = match submitted.map(|e| e.what) {
            Some(Evidence::Submitted(s)) => s.subsystems.into_iter().collect(),
            _ => BTreeSet::new(),
        };
        Ok(queue::needs_review(&self.config, &touched))
    }

    pub fn reject(&self, id: TaskId, req: api::Decision) -> Result<Task> {
        let by = Actor::Person(name(&req.by, "--by")?);
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(ApiError::bad(
                "a rejection needs a --reason for the executor",
            ));
        }
        let evidence = Evidence::Rejected(evidence::Rejected {
            reason: reason.to_owned(),
        });
        let task =
            self.ledger(|l| l.give_back(id, &by, evidence, self.back(), Timestamp::now()))?;
        let _span = info_span!("task", task = %id).entered();
        info!(by = %by, reason, "rejected; back to its executor");
        self.github_wanted();
        self.let_go_of_review_checkout(id);
        Ok(task)
    }

    // ---- integration ----------------------------------------------------------------

    /// What the queue does next (`queue::planner`), from the ledger as it is now. `busy`:
    /// tasks with an action under way. Idle, a local base is looked at: a move made
    /// behind the lander's back is caught now, not at the next landing.
    pub(super) fn plan_queue(&self, busy: &BTreeSet<TaskId>) -> Result<Vec<Action>> {
        let queue = self.queue_order()?;
        if queue.order.is_empty() && busy.is_empty() {
            if self.config.remote.is_none() && queue.paused.is_none() {
                self.base_is_ours(&self.base_tip()?)?;
            }
            return Ok(Vec::new());
        }
        Ok(queue.plan(busy).actions)
    }

    /// Carries out one of the planner's actions, recording each step before the next
    /// begins. `dir`: the integration worktree a verify runs in.
    pub(super) fn act(
        &self,
        action: &Action,
        dir: Option<&Path>,
        gh: Option<&Hub>,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let id = action.task();
        let _span = info_span!("task", task = %id).entered();
        let recorded = |i: Option<Integration>| -> Option<Integration> {
            if i.is_some() {
                self.count_step();
            }
            i
        };
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Read once: the engine runs one action per task at a time, so this is the
        // candidate the action works on.
        let current = self.ledger(|l| l.integration(id))?;
        let step = current.as_ref().map(|i| i.step);
        let integration = || -> Result<Integration> {
            current
                .clone()
                .ok_or_else(|| ApiError::internal(format!("{id} has no integration in progress")))
        };
        if !action.fits(step) {
            info!(
                ?action,
                ?step,
                "the candidate changed since this was planned; planning again"
            );
            return Ok(());
        }
        let outcome = match action {
            Action::Start { onto, .. } => {
                if let Some(hub) = gh {
                    hub.publish_before_integrating(self, id)?;
                }
                let Some((onto, built)) = self.resolve(onto)? else {
                    return Ok(());
                };
                let task = self.ledger(|l| l.task(id))?;
                let tip =
                    match &task.submitted_head {
                        Some(head) => head.clone(),
                        None => git::branch_tip(&self.repo.main_root, &task.branch)?.ok_or_else(
                            || ApiError::internal(format!("the branch {} is gone", task.branch)),
                        )?,
                    };
                info!(onto = %short(&onto), "integrating");
                self.ledger(|l| l.start_integration(id, &onto, &built, &tip, Timestamp::now()))?;
                Ok(())
            }
            Action::Rebuild { onto, .. } => {
                let i = integration()?;
                let Some((onto, built)) = self.resolve(onto)? else {
                    return Ok(());
                };
                info!(was = %short(&i.onto), now = %short(&onto), "building the candidate again");
                recorded(self.start_over(&i, &onto, &built)?);
                Ok(())
            }
            Action::Carry { .. } => self.carry(&integration()?).map(|i| {
                recorded(i);
            }),
            Action::Build { .. } => self.rebase(&integration()?).map(|i| {
                recorded(i);
            }),
            Action::Verify { .. } => {
                let dir = dir.ok_or_else(|| ApiError::internal("verify without a worktree"))?;
                self.verify(&integration()?, dir, gh, cancel).map(|i| {
                    recorded(i);
                })
            }
            Action::Land { .. } => match recorded(self.move_base(&integration()?, gh)?) {
                Some(i) if i.step == Step::BaseMoved => self.finish_landing(i),
                _ => Ok(()),
            },
            Action::Finish { .. } => self.finish_landing(integration()?),
            // The engine's own: it cuts a running action short.
            Action::Abandon { .. } => Ok(()),
            Action::Return { .. } => {
                let i = integration()?;
                let evidence = i.failure.ok_or_else(|| {
                    ApiError::internal(format!("{id} failed without a recorded reason"))
                })?;
                info!(
                    kind = evidence.kind().as_str(),
                    "first in line, its failure is its own; back to the executor"
                );
                self.give_back_failed(id, evidence)
            }
        };
        self.github_wanted();
        outcome
    }

    /// After the base moved: the task's branch, then merged.
    fn finish_landing(&self, mut i: Integration) -> Result<()> {
        if i.step == Step::BaseMoved {
            match self.update_branch(&i)? {
                Some(next) => {
                    self.count_step();
                    i = next;
                }
                None => return Ok(()),
            }
        }
        self.finish(&i)
    }

    /// The commit a candidate is built onto, with what its content will hold: the
    /// base's tip, fetched with a remote and judged (`None` when it is not the lander's:
    /// the queue pauses), or the commit of the candidate below it (`None` when that one
    /// is gone since this was planned).
    fn resolve(&self, onto: &Onto) -> Result<Option<(String, Built)>> {
        match onto {
            Onto::Candidate { task, head } => {
                // Its lineage and stack describe `head` only while that is still its
                // commit (not carried or built again since this was planned).
                let below = self.ledger(|l| l.integration(*task))?;
                let Some(below) = below.filter(|b| b.head.as_ref() == Some(head)) else {
                    info!(below = %task, "the candidate below changed since this was planned");
                    return Ok(None);
                };
                let built = Built {
                    lineage: below.lineage,
                    stack: [below.stack, vec![below.task]].concat(),
                };
                Ok(Some((head.clone(), built)))
            }
            Onto::Base => {
                let tip = self.current_base()?;
                if !self.base_is_ours(&tip)? {
                    return Ok(None);
                }
                self.follow_remote(&tip)?;
                let built = Built {
                    lineage: tip.clone(),
                    stack: Vec::new(),
                };
                Ok(Some((tip, built)))
            }
        }
    }

    /// Lanes: the verified candidate replayed onto the base's tip, which moved since it
    /// was built only by changes the planner found independent of it; its verdict is
    /// kept. Should the replay conflict after all, it is built and verified again.
    fn carry(&self, i: &Integration) -> Result<Option<Integration>> {
        let root = &self.repo.main_root;
        let head = i
            .head
            .clone()
            .ok_or_else(|| ApiError::internal("verified without a head"))?;
        let tip = self.current_base()?;
        if !self.base_is_ours(&tip)? {
            return Ok(None);
        }
        self.follow_remote(&tip)?;
        if tip == i.onto {
            return Ok(None);
        }
        let past = gitcli::git(
            root,
            &["rev-list", "--count", &format!("{}..{tip}", i.onto)],
        )
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
        match gitcli::replay_in_memory(root, &tip, &i.onto, &head)? {
            Replayed::Done { head: carried } => {
                info!(onto = %short(&tip), head = %short(&carried), past, "carried onto the base without verifying again");
                let evidence = Evidence::Carried(evidence::Carried {
                    onto: tip.clone(),
                    head: carried.clone(),
                    verified: i.built.clone().unwrap_or(head),
                    past,
                });
                Ok(Some(self.ledger(|l| {
                    l.carry(i.task, &tip, &carried, evidence, Timestamp::now())
                })?))
            }
            Replayed::Conflict { .. } | Replayed::Refused { .. } => {
                info!("cannot be carried onto the base; building and verifying it again");
                let built = Built {
                    lineage: tip.clone(),
                    stack: Vec::new(),
                };
                self.start_over(i, &tip, &built)
            }
        }
    }

    /// A step failed for a reason that is not the task's (git, the disk; not a conflict
    /// or a failed verify): the step stays recorded and is tried again later; a task
    /// that keeps failing goes back to its executor instead of blocking the queue. The
    /// count lives in the ledger, so a restart does not reset it.
    pub(super) fn step_failed(&self, id: TaskId, e: &ApiError) -> Result<()> {
        let _span = info_span!("task", task = %id).entered();
        if e.code == api::ErrorCode::Unavailable {
            // GitHub is down, or the base cannot be judged: not the task's fault.
            warn!(error = %e.message, "integration waits for GitHub or for the base to be judged");
            return Ok(());
        }
        let landed = self
            .ledger(|l| l.integration(id))?
            .is_some_and(|i| i.step.landed());
        if landed {
            // Its commit is on the base: it can only be finished, never given back.
            warn!(error = %e.message, "finishing a landing failed; trying again");
            return Ok(());
        }
        let n = self.ledger(|l| l.integration_failed(id))?;
        warn!(error = %e.message, attempt = n, "integration failed");
        if n >= MAX_INTEGRATION_FAILURES {
            let evidence = Evidence::IntegrationFailed(IntegrationFailed {
                error: e.message.clone(),
                tries: n,
            });
            self.give_back(id, evidence)?;
            self.github_wanted();
        }
        Ok(())
    }

    /// The base tip to integrate onto: with a remote, the remote's, fetched now.
    fn current_base(&self) -> Result<String> {
        match &self.config.remote {
            None => self.base_tip(),
            Some(remote) => self.fetch_remote(remote),
        }
    }

    /// With a remote, the local base follows the remote's tip `theirs` when it can
    /// fast-forward; only once that tip is judged the lander's (`base_is_ours`), so a
    /// push by someone else is never copied into the local base or the user's checkout.
    fn follow_remote(&self, theirs: &str) -> Result<()> {
        let Some(remote) = &self.config.remote else {
            return Ok(());
        };
        let root = &self.repo.main_root;
        let local = self.base_tip()?;
        if theirs == local {
            return Ok(());
        }
        if git::is_ancestor(root, &local, theirs)? {
            let base_ref = format!("refs/heads/{}", self.config.base);
            if gitcli::compare_and_swap(root, &base_ref, theirs, &local)? {
                self.follow_checkout(&local, theirs);
                info!(to = %short(theirs), "the base followed {remote}");
            }
        } else {
            warn!(
                remote,
                "the local base has commits the remote lacks; integrating onto the remote's tip"
            );
        }
        Ok(())
    }

    /// Step 1: replay the task's commits onto the base tip, check the scope again on the
    /// result, record it.
    fn rebase(&self, i: &Integration) -> Result<Option<Integration>> {
        let root = &self.repo.main_root;
        let task = self.ledger(|l| l.task(i.task))?;
        let upstream =
            git::merge_base(root, &i.branch_tip, &i.onto)?.unwrap_or_else(|| i.onto.clone());
        let nothing = |reason: String| {
            Evidence::Conflict(Conflict::Unreplayable {
                onto: i.onto.clone(),
                paths: Vec::new(),
                reason,
            })
        };
        if upstream == i.branch_tip {
            info!("nothing to land: the submitted commit is already in the base");
            let reason = format!(
                "the submitted commit is already part of {}",
                self.config.base
            );
            self.fail_candidate(i, nothing(reason))?;
            return Ok(None);
        }
        // A squash has judged its tree already: its changes are reused below.
        let (replayed, judged) = match self.config.queue.land {
            Land::Squash => self.squash(i, &task, &upstream)?,
            Land::Rebase => (
                gitcli::replay(root, &i.onto, &upstream, &i.branch_tip, &i.task.to_string())?,
                None,
            ),
        };
        let head = match replayed {
            Replayed::Done { head } => head,
            Replayed::Conflict { commit, paths } => {
                info!(?paths, "conflict; back to the executor");
                let evidence = Evidence::Conflict(Conflict::Paths {
                    onto: i.onto.clone(),
                    commit,
                    paths,
                    hint: format!(
                        "rebase {} onto {} in the task's worktree, resolve, and submit again",
                        task.branch, self.config.base
                    ),
                });
                self.fail_candidate(i, evidence)?;
                return Ok(None);
            }
            Replayed::Refused { reason } => {
                info!(%reason, "cannot be replayed faithfully; back to the executor");
                self.fail_candidate(i, nothing(reason))?;
                return Ok(None);
            }
        };
        let unchanged = match &judged {
            Some(changes) => changes.is_empty(),
            None => git::tree_of(root, &head)? == git::tree_of(root, &i.onto)?,
        };
        if unchanged {
            info!("its commits change nothing on top of the base any more; back to the executor");
            let reason = format!(
                "replayed onto {}, its commits change nothing: their changes are already there",
                self.config.base
            );
            self.fail_candidate(i, nothing(reason))?;
            return Ok(None);
        }
        // The cheap invariant: what lands is what was checked.
        let changes = match judged {
            Some(changes) => changes,
            None => git::changes(root, &i.onto, &head)?,
        };
        let review = queue::review(&changes, &task, &self.config);
        match queue::next_stage(
            review.needs_person(),
            queue::needs_review(&self.config, &review.touched),
            task.approved_attempt == Some(task.attempt),
            task.reviewed_head.is_some() && task.reviewed_head == task.submitted_head,
        ) {
            TaskState::AwaitingApproval => {
                info!("the rebased change needs an approval it does not have");
                let evidence = NeedsApproval {
                    head: head.clone(),
                    checkpoints: review.reasons(),
                };
                self.ledger(|l| l.hold_for_approval(i.task, evidence, Timestamp::now()))?;
                return Ok(None);
            }
            TaskState::AwaitingReview => {
                info!("the rebased change needs a review it does not have");
                let evidence = NeedsApproval {
                    head: head.clone(),
                    checkpoints: vec!["a reviewer's verdict on the submitted commit".into()],
                };
                self.ledger(|l| l.hold_for_review(i.task, evidence, Timestamp::now()))?;
                return Ok(None);
            }
            _ => {}
        }
        let commits = match self.config.queue.land {
            Land::Squash => 1,
            Land::Rebase => gitcli::git(
                root,
                &["rev-list", "--count", &format!("{}..{head}", i.onto)],
            )
            .map(|c| c.trim().parse::<u64>().unwrap_or(0))
            .unwrap_or(0),
        };
        let evidence = Evidence::Rebased(evidence::Rebased {
            onto: i.onto.clone(),
            head: head.clone(),
            commits,
            subsystems: review.touched.iter().cloned().collect(),
        });
        info!(head = %short(&head), commits, "rebased");
        Ok(Some(self.ledger(|l| {
            l.advance(
                i.task,
                Step::Rebased,
                Some(&head),
                evidence,
                Timestamp::now(),
            )
        })?))
    }

    /// The task's change as one commit on `i.onto` (`land = "squash"`): the three-way
    /// merge of its branch, authored by the author of its first commit, the others
    /// credited as co-authors, and a message naming the task and the checks that must
    /// pass before it lands.
    /// Also returns the change's paths against `i.onto` (none on a conflict).
    fn squash(
        &self,
        i: &Integration,
        task: &Task,
        upstream: &str,
    ) -> Result<(Replayed, Option<Vec<git::Change>>)> {
        let root = &self.repo.main_root;
        let tree = match gitcli::merge_trees(root, upstream, &i.onto, &i.branch_tip)? {
            Ok(tree) => tree,
            Err(paths) => {
                let conflict = Replayed::Conflict {
                    commit: None,
                    paths,
                };
                return Ok((conflict, None));
            }
        };
        let changes = git::changes(root, &i.onto, &tree)?;
        let touched = queue::review(&changes, task, &self.config).touched;
        let checks = match &self.config.queue.verify_on {
            VerifyOn::Local => queue::verify_commands(&self.config, &touched),
            VerifyOn::GithubChecks { required } => required
                .iter()
                .map(|c| format!("the GitHub check {c}"))
                .collect(),
        };
        let authors = gitcli::authors(root, upstream, &i.branch_tip)?;
        let Some(first) = authors.first() else {
            let refused = Replayed::Refused {
                reason: "the branch has no commits of its own beyond its merges".to_owned(),
            };
            return Ok((refused, None));
        };
        let mut co_authors: Vec<(String, String)> = Vec::new();
        for a in &authors {
            let who = (a.name.clone(), a.email.clone());
            if (a.name != first.name || a.email != first.email) && !co_authors.contains(&who) {
                co_authors.push(who);
            }
        }
        let message = queue::squash_message(task, &checks, &co_authors);
        let head = gitcli::commit_tree(root, &tree, &i.onto, first, &message)?;
        Ok((Replayed::Done { head }, Some(changes)))
    }

    /// Step 2: run the verify commands in the integration worktree `dir` at the rebased
    /// commit.
    fn verify(
        &self,
        i: &Integration,
        dir: &Path,
        gh: Option<&Hub>,
        cancel: &AtomicBool,
    ) -> Result<Option<Integration>> {
        let root = &self.repo.main_root;
        let head = i
            .head
            .clone()
            .ok_or_else(|| ApiError::internal("rebased without a head"))?;
        let task = self.ledger(|l| l.task(i.task))?;
        if let VerifyOn::GithubChecks { required } = &self.config.queue.verify_on {
            let hub = gh
                .ok_or_else(|| ApiError::internal("verify = \"github-checks\" without [github]"))?;
            let Some(verdict) = hub.verify_on_github(self, i, &head, required)? else {
                return Ok(None); // Stopping: verify again after restart.
            };
            return match verdict {
                Ok(checks) => {
                    info!("the required checks passed");
                    self.verified(
                        i,
                        VerifyPassed {
                            head,
                            onto: i.onto.clone(),
                            attempt: Some(i.attempt),
                            by: Verification::Checks { checks },
                        },
                    )
                }
                Err(failure) => {
                    info!(failure = ?failure, "a required check failed; back to the executor");
                    let evidence = Evidence::VerifyFailed(VerifyFailed {
                        head,
                        onto: i.onto.clone(),
                        attempt: Some(i.attempt),
                        failure,
                    });
                    self.fail_candidate(i, evidence)?;
                    Ok(None)
                }
            };
        }
        let dir = self.integration_worktree(dir, &head)?;
        let _handed = self.hand_over(&dir)?;
        // What the build step judged, when its record is of this very commit.
        let judged = match self.ledger(|l| l.last_event(i.task, EventKind::Rebased))? {
            Some(Event {
                what: Evidence::Rebased(r),
                ..
            }) if r.head == head && r.onto == i.onto => Some(r.subsystems.into_iter().collect()),
            _ => None,
        };
        let touched = match judged {
            Some(touched) => touched,
            None => git::changes(root, &i.onto, &head)
                .map(|c| queue::review(&c, &task, &self.config).touched)?,
        };
        let commands = queue::verify_commands(&self.config, &touched);
        let mut env = self.env.clone();
        env.extend(self.task_env(&task));
        env.retain(|(k, _)| k != "SWITCHYARD_WORKTREE");
        env.push(("SWITCHYARD_WORKTREE".to_owned(), dir.display().to_string()));
        let logs = self
            .logs
            .join(i.task.to_string())
            .join(format!("attempt-{}", i.attempt));
        let mut results = Vec::new();
        for (k, cmd) in commands.iter().enumerate() {
            // A failed command runs again, up to `[queue] retries` times, on the same
            // candidate: a pass then is a flake, recorded as such, not the task's failure.
            let mut failed_runs: Vec<command::Finished> = Vec::new();
            let finished = loop {
                info!(command = %cmd, run = failed_runs.len() + 1, "verifying");
                let log = logs.join(format!("verify-{}-{}.log", k + 1, Timestamp::now().0));
                let finished = command::run(
                    &command::Spec {
                        command: cmd,
                        dir: &dir,
                        env: &env,
                        timeout: self.config.queue.verify_timeout,
                        log: &log,
                        groups: Some(&self.running_dir()),
                        run_as: self.run_as.as_ref(),
                        supervised: true,
                    },
                    cancel,
                )
                .map_err(|e| ApiError::internal(format!("cannot run {cmd:?}: {e}")))?;
                if finished.outcome == command::Outcome::Cancelled {
                    // Stopping, or the candidate went stale: the step stays at
                    // "rebased", so verify runs again (after the restart, or once it is
                    // built again).
                    return Ok(None);
                }
                if finished.succeeded() || failed_runs.len() >= self.config.queue.retries as usize {
                    break finished;
                }
                info!(command = %cmd, outcome = ?finished.outcome, "verify command failed; running it again");
                failed_runs.push(finished);
            };
            if finished.succeeded() {
                if !failed_runs.is_empty() {
                    warn!(command = %cmd, failures = failed_runs.len(), "a flaky verify command: it passed when run again");
                    let flaked = Evidence::Flaked(Flaked {
                        head: head.clone(),
                        command: cmd.clone(),
                        failed: failed_runs,
                    });
                    self.ledger(|l| l.note(i.task, &Actor::Daemon, flaked, Timestamp::now()))?;
                }
                results.push(finished);
                continue;
            }
            info!(command = %cmd, outcome = ?finished.outcome, log = %finished.log.display(), "verify failed; back to the executor");
            let evidence = Evidence::VerifyFailed(VerifyFailed {
                head,
                onto: i.onto.clone(),
                attempt: Some(i.attempt),
                failure: VerifyFailure::Command {
                    failed: finished,
                    passed: results,
                    retried: failed_runs,
                },
            });
            self.clean_integration_worktree(&dir);
            self.fail_candidate(i, evidence)?;
            return Ok(None);
        }
        self.clean_integration_worktree(&dir);
        info!(commands = results.len(), "verify passed");
        let evidence = VerifyPassed {
            head,
            onto: i.onto.clone(),
            attempt: Some(i.attempt),
            by: Verification::Commands { commands: results },
        };
        self.verified(i, evidence)
    }

    fn verified(&self, i: &Integration, evidence: VerifyPassed) -> Result<Option<Integration>> {
        Ok(Some(self.ledger(|l| {
            l.advance(
                i.task,
                Step::Verified,
                None,
                Evidence::VerifyPassed(evidence),
                Timestamp::now(),
            )
        })?))
    }

    /// Step 3: the base moves from exactly the tip verified against to the verified
    /// commit, by compare-and-swap (and, with a remote, a plain push the server accepts
    /// only as a fast-forward). If the base moved meanwhile, the planner decides again;
    /// if it already holds the verified commit (a move made before a crash, perhaps with
    /// more on top since), the move is recorded as done and never made twice.
    fn move_base(&self, i: &Integration, gh: Option<&Hub>) -> Result<Option<Integration>> {
        let root = &self.repo.main_root;
        let head = i
            .head
            .clone()
            .ok_or_else(|| ApiError::internal("verified without a head"))?;
        let base_ref = format!("refs/heads/{}", self.config.base);
        let landed =
            |tip: &str| -> Result<bool> { Ok(tip == head || git::is_ancestor(root, &head, tip)?) };
        if let Some(remote) = &self.config.remote {
            // Checked just before the push: a plain push accepts any fast-forward, also
            // one from a tip other than the one verified against.
            let mut theirs = self.fetch_remote(remote)?;
            if !landed(&theirs)? {
                if theirs != i.onto {
                    if !self.base_is_ours(&theirs)? {
                        return Ok(None);
                    }
                    return self.base_moved_since(&theirs, gh);
                }
                // The PR's branch first, so GitHub shows the PR merged once the base
                // reaches it; and nothing lands from a PR a person closed or changed.
                let changed = match gh {
                    Some(hub) => hub.prepare_pr_for_merge(self, i, &head)?,
                    None => None,
                };
                if let Some((what, reason)) = changed {
                    info!(?what, %reason, "the PR changed on GitHub; not merging");
                    let evidence = Evidence::ChangedOnGithub(ChangedOnGithub::BeforeMerge {
                        what,
                        reason,
                        head,
                    });
                    self.give_back(i.task, evidence)?;
                    return Ok(None);
                }
                let pushed = gitcli::push(root, remote, &head, &self.config.base)
                    .map_err(|e| ApiError::internal(format!("pushing to {remote}: {e}")))?;
                if !pushed {
                    theirs = self.fetch_remote(remote)?;
                    if !landed(&theirs)? {
                        if !self.base_is_ours(&theirs)? {
                            return Ok(None);
                        }
                        return self.base_moved_since(&theirs, gh);
                    }
                }
                self.count_step();
                let evidence = Evidence::Pushed(evidence::Pushed {
                    remote: remote.clone(),
                    commit: head.clone(),
                });
                self.ledger(|l| l.note(i.task, &Actor::Daemon, evidence, Timestamp::now()))?;
            }
            // The remote holds the truth; the local base follows when it can.
            let local = self.base_tip()?;
            if !landed(&local)? && git::is_ancestor(root, &local, &head)? {
                gitcli::compare_and_swap(root, &base_ref, &head, &local)?;
            }
        } else if gitcli::compare_and_swap(root, &base_ref, &head, &i.onto)? {
            // Moved, not yet recorded: the window a crash test must reach.
            self.count_step();
        } else {
            let now = self.base_tip()?;
            if !landed(&now)? {
                // Not the lander's doing: the queue pauses. Once a person accepted the
                // base as it is, the integration starts again onto it.
                if !self.base_is_ours(&now)? {
                    return Ok(None);
                }
                return self.base_moved_since(&now, gh);
            }
        }
        info!(from = %short(&i.onto), to = %short(&head), "base moved");
        let evidence = Evidence::BaseMoved(evidence::BaseMoved {
            from: i.onto.clone(),
            to: head,
            base: self.config.base.clone(),
        });
        Ok(Some(self.ledger(|l| {
            l.advance(i.task, Step::BaseMoved, None, evidence, Timestamp::now())
        })?))
    }

    /// Whether the base is where the lander left it (or where a person accepted it).
    /// Any other tip is a move the daemon did not make: a rewind, or commits it never
    /// verified. That pauses the queue with an event naming the commits, and is never
    /// taken for a landing. `actual` is the base's tip now (the remote's, with a remote).
    /// The base moved (the lander's own move for another candidate, or one a person
    /// accepted) since a landing was planned: nothing is recorded, and the planner decides
    /// again: carry the candidate onto the new tip (lanes) or build it again.
    ///
    /// When the move was another candidate's landing that a crash (or a failed write)
    /// left unrecorded, it is recorded now: otherwise the planner, which only knows the
    /// recorded base, could plan this landing again and again.
    fn base_moved_since(&self, now: &str, gh: Option<&Hub>) -> Result<Option<Integration>> {
        info!(now = %short(now), "the base moved since this landing was planned; planning again");
        let root = &self.repo.main_root;
        let expected = self.ledger(|l| l.base_expected())?;
        let unrecorded = self.ledger(|l| l.integrations())?.into_iter().find(|i| {
            i.step == Step::Verified
                && Some(&i.onto) == expected.as_ref()
                && i.head
                    .as_deref()
                    .is_some_and(|h| h == now || git::is_ancestor(root, h, now).unwrap_or(false))
        });
        if let Some(other) = unrecorded {
            info!(landed = %other.task, "recording the landing the base already holds");
            self.move_base(&other, gh)?;
        }
        Ok(None)
    }

    pub(super) fn base_is_ours(&self, actual: &str) -> Result<bool> {
        // Whatever goes wrong judging the base is not the task's fault: the queue waits
        // and tries again, without counting it against the task at its head.
        self.judge_base(actual)
            .map_err(|e| ApiError::unavailable(format!("cannot judge the base: {}", e.message)))
    }

    fn judge_base(&self, actual: &str) -> Result<bool> {
        // Landings run beside this action (lanes): what the ledger says of the base is
        // read in one go, after `actual`. The lander records a move only after making
        // it, so that read sees either the move recorded, or the candidate that made
        // it still "verified" onto the expected tip.
        if let Some(verdict) = self.base_verdict(actual)? {
            return Ok(verdict);
        }
        // Or `actual` was read before a landing that is now recorded: read it again.
        let now = self.current_base()?;
        if now != actual
            && let Some(verdict) = self.base_verdict(&now)?
        {
            info!(read = %short(actual), now = %short(&now), "the base moved by a landing since it was read");
            return Ok(verdict);
        }
        let expected = self
            .ledger(|l| l.base_expected())?
            .unwrap_or_else(|| now.clone());
        self.pause_for_base(&expected, &now)?;
        Ok(false)
    }

    /// What the ledger, read in one go, says of the base at `actual`: the lander's
    /// (`true`), paused (`false`), or not known to be the lander's (`None`).
    fn base_verdict(&self, actual: &str) -> Result<Option<bool>> {
        let (paused, expected, integrations) = self.ledger(|l| {
            let expected = l.base_expected()?;
            // The candidates only matter when the tip is not the expected one.
            let integrations = match expected.as_deref() == Some(actual) {
                true => Vec::new(),
                false => l.integrations()?,
            };
            Ok::<_, crate::store::LedgerError>((l.paused()?, expected, integrations))
        })?;
        if paused.is_some() {
            return Ok(Some(false));
        }
        let Some(expected) = expected else {
            self.ledger(|l| l.adopt_base(actual, Timestamp::now()))?;
            return Ok(Some(true));
        };
        if actual == expected {
            return Ok(Some(true));
        }
        // The lander's own move, made and not recorded yet (just now beside this action,
        // or before a crash): the integration still at "verified" onto the expected tip
        // records it, and what lies beyond its commit is judged right after.
        let root = &self.repo.main_root;
        let ours = integrations.into_iter().any(|i| {
            i.step == Step::Verified
                && i.onto == expected
                && i.head.as_deref().is_some_and(|h| {
                    h == actual || git::is_ancestor(root, h, actual).unwrap_or(false)
                })
        });
        Ok(ours.then_some(true))
    }

    /// Pauses the queue because the base is at `actual`, not `expected`, naming the
    /// commits in between; merged tasks whose commits left the base get an event each.
    fn pause_for_base(&self, expected: &str, actual: &str) -> Result<()> {
        let root = &self.repo.main_root;
        let base = &self.config.base;
        // The description is best effort (the expected commit may be gone after a
        // force-push); the pause is recorded whatever it can say.
        let forward = git::is_ancestor(root, expected, actual).unwrap_or(false);
        let (event, range, reason): (fn(BaseNotOurs) -> QueueEvidence, _, _) = if forward {
            (
                QueueEvidence::BaseMovedOutside,
                format!("{expected}..{actual}"),
                format!(
                    "{base} moved from {} to {}, to commits switchyard did not verify",
                    short(expected),
                    short(actual)
                ),
            )
        } else {
            (
                QueueEvidence::BaseRewound,
                format!("{actual}..{expected}"),
                format!(
                    "{base} was moved back from {} to {}: commits that landed are no longer on it",
                    short(expected),
                    short(actual)
                ),
            )
        };
        let listed = gitcli::git(
            root,
            &["log", "--format=%H%x09%s", "--max-count=50", &range],
        )
        .unwrap_or_default();
        let commits: Vec<CommitLine> = listed
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(sha, subject)| CommitLine {
                commit: sha.to_owned(),
                subject: subject.to_owned(),
            })
            .collect();
        let count = gitcli::git(root, &["rev-list", "--count", &range])
            .ok()
            .and_then(|c| c.trim().parse::<u64>().ok())
            .unwrap_or(commits.len() as u64);
        let mut affected = Vec::new();
        if !forward {
            let lost: std::collections::HashSet<String> =
                gitcli::git(root, &["rev-list", "--max-count=10000", &range])
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect();
            for task in self.ledger(|l| l.tasks(Some(TaskState::Merged)))? {
                let merged = self.ledger(|l| l.last_event(task.id, EventKind::Merged))?;
                if let Some(Evidence::Merged(Merged { commit, .. })) = merged.map(|e| e.what)
                    && lost.contains(&commit)
                {
                    affected.push((
                        task.id,
                        LeftBase {
                            commit,
                            base: base.clone(),
                            now: actual.to_owned(),
                        },
                    ));
                }
            }
        }
        let evidence = BaseNotOurs {
            base: base.clone(),
            expected: expected.to_owned(),
            found: actual.to_owned(),
            commits,
            count,
            tasks: affected.iter().map(|(id, _)| *id).collect(),
            hint: format!(
                "find out who moved {base} and why; `switchyard resume --by NAME` accepts {base} as it is now and the queue goes on"
            ),
        };
        tracing::error!(%reason, count, "the queue is paused: the base moved, and not by switchyard");
        let pause = Pause {
            since: Timestamp::now(),
            by: Actor::Daemon,
            reason,
            what: event(evidence),
        };
        self.ledger(|l| l.pause(&pause, &affected))?;
        self.github_wanted();
        Ok(())
    }

    /// A person resumes: their pause ends, and a queue paused by a move of the base
    /// accepts the base as it is now.
    pub fn resume(&self, req: api::Resume) -> Result<api::Resumed> {
        let by = Actor::Person(name(&req.by, "--by")?);
        let base = self.current_base()?;
        let resumed = self.ledger(|l| l.resume(&by, &base, Timestamp::now()))?;
        // The engine is woken by the `resumed` event's broadcast.
        info!(by = %by, base = %short(&base), "resumed");
        Ok(api::Resumed {
            base,
            was: resumed.paused.map(|p| *p),
            stop: resumed.stop.map(|s| *s),
        })
    }

    /// A person pulls the stop switch: nothing is handed out and/or the queue starts
    /// nothing new (what runs finishes), until someone resumes.
    pub fn pause(&self, req: api::PauseRequest) -> Result<Stop> {
        let by = Actor::Person(name(&req.by, "--by")?);
        let reason = req.reason.trim();
        if reason.is_empty() || reason.contains(char::is_control) || reason.len() > 1024 {
            return Err(ApiError::bad(
                "a pause needs a --reason: one line of at most 1024 bytes",
            ));
        }
        let stop = Stop {
            since: Timestamp::now(),
            by,
            reason: reason.to_owned(),
            only: req.only,
        };
        let stop = self.ledger(|l| l.stop(&stop))?;
        warn!(by = %stop.by, reason = %stop.reason, only = ?stop.only, "paused by a person");
        Ok(stop)
    }

    fn start_over(&self, i: &Integration, now: &str, built: &Built) -> Result<Option<Integration>> {
        let evidence = evidence::BaseRaced {
            was: i.onto.clone(),
            now: now.to_owned(),
            remote: None,
        };
        Ok(Some(self.ledger(|l| {
            l.restart_integration(i.task, now, built, evidence, Timestamp::now())
        })?))
    }

    fn fetch_remote(&self, remote: &str) -> Result<String> {
        gitcli::fetch(&self.repo.main_root, remote, &self.config.base)
            .map_err(|e| ApiError::internal(format!("fetching {remote}: {e}")))
    }

    /// Step 4: the task's branch points at what landed, unless its executor added
    /// commits after submitting (then it is left alone: nothing is lost).
    fn update_branch(&self, i: &Integration) -> Result<Option<Integration>> {
        let root = &self.repo.main_root;
        let head = i
            .head
            .clone()
            .ok_or_else(|| ApiError::internal("base moved without a head"))?;
        let task = self.ledger(|l| l.task(i.task))?;
        let branch_ref = format!("refs/heads/{}", task.branch);
        // The user's checkout follows the base in the background (`daemon::checkout`),
        // from the ledger's record of this landing, also after a crash.
        self.wake.checkout.notify_one();
        // Free the branch from the task's worktree first, so moving it does not leave
        // that checkout behind its HEAD.
        if let Some(wt) = &task.worktree
            && Path::new(wt).is_dir()
            && worktree::current_branch(Path::new(wt))
                .ok()
                .flatten()
                .as_deref()
                == Some(task.branch.as_str())
        {
            worktree::detach(Path::new(wt))?;
        }
        let current = git::branch_tip(root, &task.branch)?;
        let branch = task.branch.clone();
        let evidence = match current {
            Some(c) if c == head => BranchUpdated::Moved {
                branch,
                from: None,
                to: head,
            },
            Some(c)
                if c == i.branch_tip && gitcli::compare_and_swap(root, &branch_ref, &head, &c)? =>
            {
                BranchUpdated::Moved {
                    branch,
                    from: Some(c),
                    to: head,
                }
            }
            left_at => {
                warn!(branch = %task.branch, "the branch has commits after the submitted ones; left as it is");
                BranchUpdated::LeftAlone {
                    branch,
                    left_at,
                    landed: head,
                }
            }
        };
        Ok(Some(self.ledger(|l| {
            l.advance(
                i.task,
                Step::BranchUpdated,
                None,
                Evidence::BranchUpdated(evidence),
                Timestamp::now(),
            )
        })?))
    }

    /// Step 5: merged. The worktree goes back to the pool in the background job (which
    /// finds it from the ledger, also after a crash right now): recycling a large
    /// checkout must not hold up the next integration.
    fn finish(&self, i: &Integration) -> Result<()> {
        let lock = self.task_lock(i.task);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = i.head.clone().unwrap_or_default();
        let evidence = Merged {
            base: self.config.base.clone(),
            commit: head.clone(),
        };
        self.ledger(|l| l.merged(i.task, evidence, Timestamp::now()))?;
        self.adapt_window(Outcome::Landed)?;
        info!(commit = %short(&head), "merged");
        self.count_step(); // The window before the recycling, for the crash tests.
        self.wake.pool.notify_one();
        Ok(())
    }

    /// A candidate conflicted or failed verify. On exactly the base the failure is the
    /// task's own: back to its executor. Built onto another candidate, that one may be
    /// the cause: recorded, and decided once it is first in line (`Action::Return`) or
    /// built again.
    fn fail_candidate(&self, i: &Integration, evidence: Evidence) -> Result<()> {
        let base = match self.ledger(|l| l.base_expected())? {
            Some(tip) => tip,
            None => self.base_tip()?,
        };
        if i.onto == base {
            return self.give_back_failed(i.task, evidence);
        }
        info!(kind = evidence.kind().as_str(), onto = %short(&i.onto), "failed on top of another candidate; decided once it is first in line");
        self.ledger(|l| l.candidate_failed(i.task, evidence, Timestamp::now()))?;
        Ok(())
    }

    /// A candidate's own failure sends its task back; a failed verify narrows the
    /// speculation window (`planner::adapt`).
    fn give_back_failed(&self, id: TaskId, evidence: Evidence) -> Result<()> {
        let verify_failed = evidence.kind() == EventKind::VerifyFailed;
        self.give_back(id, evidence)?;
        if verify_failed {
            self.adapt_window(Outcome::Failed)?;
        }
        Ok(())
    }

    /// The speculation window after `outcome`, kept in the ledger so a restart goes on
    /// from it.
    fn adapt_window(&self, outcome: Outcome) -> Result<()> {
        let max = self.config.queue.max_parallel.get() as usize;
        if max == 1 {
            return Ok(()); // Nothing to adapt.
        }
        let (window, failure_rate) = self.ledger(|l| {
            let rate = planner::adapt(l.failure_rate()?.unwrap_or(0.0), outcome);
            let window = planner::window(rate, max);
            l.set_window(window as u32, rate)?;
            Ok::<_, crate::store::LedgerError>((window, rate))
        })?;
        info!(
            window,
            failure_rate,
            ?outcome,
            "the speculation window adapted"
        );
        Ok(())
    }

    fn give_back(&self, id: TaskId, evidence: Evidence) -> Result<()> {
        self.ledger(|l| l.give_back(id, &Actor::Daemon, evidence, self.back(), Timestamp::now()))?;
        Ok(())
    }

    /// The daemon's worktree `dir` for verifying, detached at `head`.
    fn integration_worktree(&self, dir: &Path, head: &str) -> Result<PathBuf> {
        let dir = dir.to_path_buf();
        self.integration_worktree_cleaned(&dir);
        // The usual case, without listing every worktree first: it is there and checks
        // out. Anything else (gone, half made, not registered) is made again.
        if dir.join(".git").is_file()
            && worktree::git(&dir, &["checkout", "-q", "--detach", "-f", head]).is_ok()
        {
            return Ok(dir);
        }
        let registered = self.worktrees.list()?.iter().any(|l| l.path == dir);
        if registered && dir.is_dir() {
            worktree::git(&dir, &["checkout", "-q", "--detach", "-f", head])?;
        } else {
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            self.worktrees.prune()?;
            self.worktrees.add_detached(&dir, head)?;
        }
        Ok(dir)
    }

    /// After verify: untracked files it made are removed (ignored ones, such as build
    /// caches, stay), so the next verify starts from exactly its commit; off the queue's
    /// path (`clean_integration_worktree_later`).
    fn clean_integration_worktree(&self, dir: &Path) {
        self.clean_integration_worktree_later(dir);
    }

    /// Counts recorded steps, and the git actions between them, for the test-only hook
    /// that aborts the process after the Nth.
    pub(super) fn count_step(&self) {
        let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        if self.abort_after_steps == Some(n) {
            warn!(steps = n, "test hook: aborting the process now");
            std::process::abort();
        }
    }
}

/// How many times in a row the queue tries to integrate a task whose integration fails
/// for a reason other than a conflict or a failed verify.
const MAX_INTEGRATION_FAILURES: u32 = 3;

/// Keeps a submitted commit reachable, whatever happens to the task's branch.
fn submitted_ref(id: TaskId) -> String {
    format!("refs/switchyard/submitted/{id}")
}

/// A commit id as the API takes it: the full hexadecimal SHA (40 characters, or 64 in a
/// SHA-256 repository), so it names one commit whatever the repository holds.
fn full_sha(given: &str) -> Result<String> {
    let given = given.trim();
    if matches!(given.len(), 40 | 64) && given.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(given.to_ascii_lowercase())
    } else {
        Err(ApiError::bad(format!(
            "commit {given:?} is not a full commit id (40 hexadecimal characters); \
             `switchyard submit --commit REV` resolves one in your clone"
        )))
    }
}

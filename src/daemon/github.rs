//! The daemon's GitHub side. One background loop, woken every `poll_interval` and by
//! webhook deliveries, first reads GitHub (PRs changed since the last conditional
//! listing, their reviews and comment commands) and then makes GitHub match the ledger
//! (branch pushed, PR open with the card as body, the `switchyard` check run, merged or
//! cancelled notes). The ledger is the truth: a round that fails because GitHub is down
//! is simply done again later, so PRs, bodies and check runs converge.
//!
//! The queue calls in at three points: before integrating a task (its PR should exist
//! first), before the base moves (the PR must still be open and unchanged, and its
//! branch is force-updated to the verified commit), and to verify on CI.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Notify;
use tracing::{debug, info, info_span, warn};

use super::service::{ApiError, Result, Service};
use crate::api;
use crate::config::{self, Approver};
use crate::git;
use crate::gitcli;
use crate::github::checks::{self, Verdict};
use crate::github::client::PullRequest;
use crate::github::command::{self, Command};
use crate::github::{Client, Error as GhError, card};
use crate::model::evidence::{
    self, ChangedOnGithub, CheckResult, PrChange, PrOpened, VerifyFailure,
};
use crate::model::short_sha as short;
use crate::model::{Actor, EventKind, Evidence, Task, TaskId, TaskState, Timestamp};
use crate::store::{Integration, PrRecord};

/// What the daemon holds for GitHub.
pub struct Hub {
    pub client: Client,
    /// The same client trying once: for calls the queue makes on its way, which must
    /// not hold the queue up while GitHub is down.
    pub quick: Client,
    pub settings: config::Github,
    pub remote: String,
    pub rt: tokio::runtime::Handle,
    /// Wakes the loop: a webhook delivery, a submit, a step of the queue.
    pub wanted: std::sync::Arc<Notify>,
    /// The ETag of the last listing of recent PRs.
    etag: Mutex<Option<String>>,
    /// PRs a webhook delivery named, to read on the next round.
    nudged: Mutex<BTreeSet<u64>>,
    /// One writer to GitHub at a time: the loop and the queue must not both open a
    /// task's PR.
    writing: Mutex<()>,
    /// Rounds of the loop so far (see `SWEEP_EVERY`).
    rounds: std::sync::atomic::AtomicU64,
}

/// Every this many rounds, the PRs of all live tasks are read whether or not the listing
/// says they changed: `updated_at` has one-second resolution, so a review in the same
/// second as switchyard's own update leaves the listing unchanged.
const SWEEP_EVERY: u64 = 10;

impl Hub {
    pub fn new(
        client: Client,
        settings: config::Github,
        remote: String,
        rt: tokio::runtime::Handle,
        wanted: std::sync::Arc<Notify>,
    ) -> Hub {
        let quick = client.with_retry(crate::github::Retry {
            tries: 1,
            ..crate::github::Retry::DEFAULT
        });
        Hub {
            client,
            quick,
            settings,
            remote,
            rt,
            wanted,
            etag: Mutex::new(None),
            nudged: Mutex::new(BTreeSet::new()),
            writing: Mutex::new(()),
            rounds: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A webhook said PR `number` changed.
    pub fn nudge(&self, number: Option<u64>) {
        if let Some(n) = number {
            self.nudged
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(n);
        }
        self.wanted.notify_one();
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl PrChange {
    /// Whether the next submission must reopen or retarget the PR.
    fn needs_reopen(self) -> bool {
        self != PrChange::Pushed
    }
}

fn gh_err(e: GhError) -> ApiError {
    if e.is_transient() {
        ApiError::unavailable(format!("GitHub: {e}"))
    } else {
        ApiError::internal(format!("GitHub: {e}"))
    }
}

impl Hub {
    /// One round of the GitHub loop: read, then publish.
    pub fn sync_github(&self, svc: &Service) -> Result<()> {
        self.read_github(svc)?;
        let tasks = svc.ledger(|l| l.tasks(None))?;
        let prs = svc.ledger(|l| l.prs())?;
        for task in tasks.iter().filter(|t| t.submitted_head.is_some()) {
            if svc.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let rec = prs.iter().find(|p| p.task == task.id);
            let settled = rec.is_none_or(|r| r.merged_noted || r.closed) && task.state.is_final();
            if settled {
                continue;
            }
            let _span = info_span!("task", task = %task.id).entered();
            if let Err(e) = self.publish(svc, &self.client, task.id) {
                warn!(error = %e.message, "could not bring GitHub up to date");
                if e.code == crate::api::ErrorCode::Unavailable {
                    return Err(e); // Down: the next round tries everything again.
                }
            }
        }
        Ok(())
    }

    /// Before the queue integrates a task: its PR should exist, so that reviewers see
    /// it and GitHub shows it merged. Best effort: GitHub being down, or the GitHub loop
    /// being busy (it publishes the task itself then), holds nothing up. But a PR a
    /// person closed or retargeted is reopened first, or the task could never land (the
    /// check before the base moves would send it back every time). A PR that exists is
    /// left to the GitHub loop (woken by every step of the queue): updating its card
    /// here would put GitHub's round trips on the queue's path before every integration.
    pub(super) fn publish_before_integrating(&self, svc: &Service, id: TaskId) -> Result<()> {
        let rec = svc.ledger(|l| l.pr(id))?;
        if rec.as_ref().is_some_and(|r| !r.reopen) {
            return Ok(());
        }
        if rec.is_some_and(|r| r.reopen) {
            // Never wait for the loop here: if it is busy, try again next round.
            let Ok(_writing) = self.writing.try_lock() else {
                return Err(ApiError::unavailable(
                    "the PR must be reopened first and the GitHub loop is busy",
                ));
            };
            return self.publish_locked(svc, &self.client, id);
        }
        let Ok(_writing) = self.writing.try_lock() else {
            return Ok(());
        };
        if let Err(e) = self.publish_locked(svc, &self.quick, id) {
            warn!(error = %e.message, "could not update the PR before integrating; going on");
        }
        Ok(())
    }

    // ---- reading GitHub ---------------------------------------------------------------

    fn read_github(&self, svc: &Service) -> Result<()> {
        // Reading also writes the PR records; the queue's calls must not interleave.
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let prs = svc.ledger(|l| l.prs())?;
        if prs.is_empty() {
            return Ok(());
        }
        let etag = self.etag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let listed = self
            .block_on(self.client.recent_pulls(etag.as_deref()))
            .map_err(gh_err)?;
        let mut changed: Vec<PullRequest> = Vec::new();
        let mut new_etag = None;
        if let Some((pulls, tag)) = listed {
            new_etag = Some(tag);
            for pr in pulls {
                let known = prs.iter().find(|r| r.number == pr.number);
                // A change in the same second as the last one seen looks unchanged; the
                // sweep below catches it.
                if known.is_some_and(|r| {
                    r.seen_updated
                        .as_deref()
                        .is_none_or(|seen| pr.updated_at.as_str() > seen)
                }) {
                    changed.push(pr);
                }
            }
        }
        let mut nudged: Vec<u64> =
            std::mem::take(&mut *self.nudged.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        let round = self
            .rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if round.is_multiple_of(SWEEP_EVERY) {
            let tasks = svc.ledger(|l| l.tasks(None))?;
            let live = |id: TaskId| tasks.iter().any(|t| t.id == id && !t.state.is_final());
            nudged.extend(prs.iter().filter(|r| live(r.task)).map(|r| r.number));
        }
        for n in nudged {
            if changed.iter().any(|p| p.number == n) || !prs.iter().any(|r| r.number == n) {
                continue;
            }
            match self.block_on(self.client.pull(n)) {
                Ok(pr) => changed.push(pr),
                Err(e) => warn!(pr = n, error = %e, "cannot read a PR a webhook named"),
            }
        }
        for pr in changed {
            let Some(rec) = prs.iter().find(|r| r.number == pr.number) else {
                continue;
            };
            let _span = info_span!("task", task = %rec.task).entered();
            self.read_pull(svc, rec.task, &pr)?;
        }
        // Only now: a round that failed halfway lists the same changes again.
        if let Some(tag) = new_etag {
            *self.etag.lock().unwrap_or_else(|p| p.into_inner()) = tag;
        }
        Ok(())
    }

    /// A PR changed on GitHub: decisions in its reviews and comments, and what a person
    /// did to the PR itself.
    fn read_pull(&self, svc: &Service, id: TaskId, pr: &PullRequest) -> Result<()> {
        let reviews = self
            .block_on(self.client.reviews(pr.number))
            .map_err(gh_err)?;
        let comments = self
            .block_on(self.client.comments(pr.number))
            .map_err(gh_err)?;
        let Some(mut rec) = svc.ledger(|l| l.pr(id))? else {
            return Ok(());
        };
        let shown = digest(&[&pr.title, pr.body.as_deref().unwrap_or("")]);
        if pr.is_open() && rec.body_digest.as_deref().is_some_and(|d| d != shown) {
            // The card is switchyard's; a person's edit is replaced on this round's publish.
            info!("the PR's title or description was edited on GitHub; restoring the card");
            rec.body_digest = None;
            self.reply(pr.number,
                "The title and description of this PR are switchyard's card for the task and are rewritten as it moves, so the edit was replaced. Please comment instead; nothing else changed.",
            );
        }
        let seen_review = rec.last_review;
        for review in reviews.iter().filter(|r| r.id > seen_review) {
            let login = review.user.as_ref().map_or("", |u| u.login.as_str());
            if review.state == "APPROVED" {
                let task = svc.ledger(|l| l.task(id))?;
                // Only a review of exactly the submitted commit, while the PR shows it,
                // approves it: never one of an earlier push.
                let current = self.pr_shows_submission(svc, id)?
                    && review.commit_id.is_some()
                    && review.commit_id == task.submitted_head;
                if !current {
                    debug!(login, "an approving review of another commit; ignored");
                } else if task.state == TaskState::AwaitingReview {
                    self.review_from_github(svc, &task, login, &review.html_url, pr.number)?;
                } else if task.state != TaskState::AwaitingApproval {
                    debug!(login, "an approving review while nothing waits for one");
                } else if self.may_decide(login)? {
                    match svc.approve(
                        id,
                        api::Decision {
                            by: login.to_owned(),
                            reason: format!("approving review {}", review.html_url),
                        },
                    ) {
                        Ok(_) => info!(login, "approved by a review on GitHub"),
                        Err(e) => {
                            warn!(login, error = %e.message, "a review's approval was refused")
                        }
                    }
                } else {
                    self.reply(pr.number,
                        &format!(
                            "@{login} thanks for the review. Only {} can approve switchyard's checkpoints, so {id} still waits for an approval.",
                            approvers_text(&self.settings.approvers)
                        ),
                    );
                }
            }
            rec.last_review = rec.last_review.max(review.id);
            svc.ledger(|l| l.save_pr(&rec))?;
        }
        let seen_comment = rec.last_comment;
        for comment in comments.iter().filter(|c| c.id > seen_comment) {
            let login = comment.user.as_ref().map_or("", |u| u.login.as_str());
            let parsed = command::parse(comment.body.as_deref().unwrap_or(""));
            // Asked once, before anything is carried out: a failure here leaves the whole
            // comment for the next round instead of half of it done.
            let allowed = parsed.iter().any(|p| p.is_ok()) && self.may_decide(login)?;
            let mut answers = Vec::new();
            for parsed in parsed {
                answers.push(match parsed {
                    Err(command::BadCommand(why)) => format!("@{login} {why}. Nothing changed."),
                    Ok(cmd) if !allowed => format!(
                        "@{login} sorry, only {} may give switchyard commands here; `{}` was not carried out and nothing changed.",
                        approvers_text(&self.settings.approvers),
                        cmd.verb()
                    ),
                    Ok(cmd) => self.carry_out(svc, id, login, &cmd),
                });
            }
            // Recorded before answering: a command is carried out once, even if its
            // answer cannot be posted.
            rec.last_comment = rec.last_comment.max(comment.id);
            svc.ledger(|l| l.save_pr(&rec))?;
            for answer in answers {
                self.reply(pr.number, &answer);
            }
        }
        if self.notice_changes(svc, id, pr, &rec)? {
            rec.reopen = true;
            svc.ledger(|l| l.set_reopen(id, true))?;
        }
        rec.seen_updated = Some(pr.updated_at.clone());
        svc.ledger(|l| l.save_pr(&rec))?;
        Ok(())
    }

    /// A person closed the PR, pushed to its branch or changed its base on GitHub: a
    /// task waiting in the queue leaves it, back to its executor. (During integration
    /// the queue checks for itself just before the base moves.)
    fn notice_changes(
        &self,
        svc: &Service,
        id: TaskId,
        pr: &PullRequest,
        rec: &PrRecord,
    ) -> Result<bool> {
        debug!(
            pr = pr.number,
            open = pr.is_open(),
            merged = pr.is_merged(),
            head = %short(&pr.head.sha),
            base = %pr.base.name,
            closed_by_us = rec.closed,
            reopen = rec.reopen,
            "reading the PR's state"
        );
        // `reopen`: already noticed; the next submission reopens and retargets it.
        let what = if !pr.is_open() && !pr.is_merged() && !rec.closed && !rec.reopen {
            Some(self.why_closed(svc, pr))
        } else if pr.is_open() && self.pushed_by_someone_else(svc, id, pr, rec)? {
            Some((
                PrChange::Pushed,
                format!(
                    "new commits were pushed to {} on GitHub (now at {}); fetch them into the task's branch and submit again",
                    pr.head.name,
                    short(&pr.head.sha)
                ),
            ))
        } else if pr.is_open() && pr.base.name != svc.config.base && !rec.reopen {
            Some((
                PrChange::BaseChanged,
                format!(
                    "the PR's base was changed to {} on GitHub; switchyard integrates into {} only, and puts the base back on the next submit",
                    pr.base.name, svc.config.base
                ),
            ))
        } else {
            None
        };
        let Some((what, reason)) = what else {
            return Ok(false);
        };
        let evidence = Evidence::ChangedOnGithub(ChangedOnGithub::OnPr {
            what,
            reason: reason.clone(),
            pr: pr.number,
            head: pr.head.sha.clone(),
        });
        let back = svc.back();
        let returned = svc.ledger(|l| {
            let task = l.task(id)?;
            if !matches!(
                task.state,
                TaskState::Queued | TaskState::AwaitingApproval | TaskState::AwaitingReview
            ) {
                return Ok(None);
            }
            l.give_back(id, &Actor::Daemon, evidence, back, Timestamp::now())
                .map(Some)
        })?;
        if returned.is_some() {
            info!(?what, "changed on GitHub; back to its executor");
            self.reply(
                pr.number,
                &format!("{id} left the merge queue and went back to its executor: {reason}."),
            );
        }
        Ok(what.needs_reopen())
    }

    /// The PR's head is neither what switchyard pushed nor part of the task's latest
    /// submission (which may have taken the person's commits in already).
    fn pushed_by_someone_else(
        &self,
        svc: &Service,
        id: TaskId,
        pr: &PullRequest,
        rec: &PrRecord,
    ) -> Result<bool> {
        if rec.pushed_head.as_deref().is_none_or(|h| h == pr.head.sha) {
            return Ok(false);
        }
        let submitted = svc.ledger(|l| l.task(id))?.submitted_head;
        let root = &svc.repo.main_root;
        Ok(!submitted.is_some_and(|s| {
            s == pr.head.sha || git::is_ancestor(root, &pr.head.sha, &s).unwrap_or(false)
        }))
    }

    fn why_closed(&self, svc: &Service, pr: &PullRequest) -> (PrChange, String) {
        let tip = gitcli::remote_tip(&svc.repo.main_root, &self.remote, &pr.head.name);
        debug!(branch = %pr.head.name, ?tip, "the PR is closed; is its branch there?");
        let gone = tip.map(|t| t.is_none()).unwrap_or(false);
        if gone {
            (
                PrChange::BranchDeleted,
                format!(
                    "its branch {} was deleted on GitHub, which closed the PR; submitting again pushes it and reopens the PR",
                    pr.head.name
                ),
            )
        } else {
            (
                PrChange::Closed,
                "the PR was closed on GitHub; submitting again reopens it".to_owned(),
            )
        }
    }

    /// Whether the PR shows exactly the task's current submission, so that a person on
    /// GitHub deciding about the PR decides about what would land.
    fn pr_shows_submission(&self, svc: &Service, id: TaskId) -> Result<bool> {
        let task = svc.ledger(|l| l.task(id))?;
        let rec = svc.ledger(|l| l.pr(id))?;
        Ok(task.submitted_head.is_some()
            && rec.is_some_and(|r| r.pushed_head == task.submitted_head))
    }

    /// An approving review of exactly the submitted commit, while the task waits for a
    /// reviewer: it counts as the review when `login` may review (one of `[review]
    /// reviewers`, or of `[github] approvers` when that list is empty).
    fn review_from_github(
        &self,
        svc: &Service,
        task: &crate::model::Task,
        login: &str,
        url: &str,
        pr: u64,
    ) -> Result<()> {
        let reviewers = &svc.config.review.reviewers;
        let allowed = match reviewers.is_empty() {
            true => self.may_decide(login)?,
            false => reviewers.iter().any(|r| r.eq_ignore_ascii_case(login)),
        };
        if !allowed {
            self.reply(
                pr,
                &format!(
                    "@{login} thanks for the review. It does not count as {}'s review: reviewers are {}.",
                    task.id,
                    match reviewers.is_empty() {
                        true => approvers_text(&self.settings.approvers),
                        false => reviewers.join(", "),
                    }
                ),
            );
            return Ok(());
        }
        let Ok(name) = crate::model::normalize_name(login) else {
            return Ok(());
        };
        let who = Actor::Person(name);
        let commit = task.submitted_head.clone().unwrap_or_default();
        let source = Some(format!("approving review {url}"));
        match svc.record_verdict(task, &who, true, commit, String::new(), source) {
            Ok(t) => info!(login, state = %t.state, "reviewed by an approving review on GitHub"),
            Err(e) => {
                warn!(login, error = %e.message, "a review's approval was refused");
                self.reply(
                    pr,
                    &format!(
                        "@{login} thanks for the review. It does not count as {}'s review: {}",
                        task.id, e.message
                    ),
                );
            }
        }
        Ok(())
    }

    /// Whether `login` is one of the configured approvers.
    fn may_decide(&self, login: &str) -> Result<bool> {
        for a in &self.settings.approvers {
            match a {
                Approver::User(u) if u.eq_ignore_ascii_case(login) => return Ok(true),
                Approver::User(_) => {}
                Approver::Team { org, slug } => {
                    if self
                        .block_on(self.client.is_team_member(org, slug, login))
                        .map_err(gh_err)?
                    {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Carries out a permitted command; the answer to post.
    fn carry_out(&self, svc: &Service, id: TaskId, login: &str, cmd: &Command) -> String {
        // GitHub logins are case-insensitive ASCII: recorded like every other name.
        let person = || crate::model::normalize_name(login).unwrap_or_else(|_| login.to_owned());
        let done = match cmd {
            Command::Approve if !self.pr_shows_submission(svc, id).unwrap_or(false) => {
                Err(ApiError::refused(format!(
                    "this PR does not show {id}'s latest submission yet; look at it again in a moment and approve then"
                )))
            }
            Command::Approve => svc
                .approve(
                    id,
                    api::Decision {
                        by: person(),
                        reason: String::new(),
                    },
                )
                .map(|t| format!("approved; {id} is {} now", t.state)),
            Command::Reject { reason } => svc
                .reject(
                    id,
                    api::Decision {
                        by: person(),
                        reason: reason.clone(),
                    },
                )
                .map(|_| format!("rejected; {id} went back to its executor with your reason")),
            Command::Cancel => svc
                .cancel(
                    id,
                    api::Cancel {
                        by: person(),
                        reason: "cancelled with /switchyard cancel on GitHub".to_owned(),
                    },
                )
                .map(|_| format!("cancelled {id}; its branch stays")),
            Command::Retry => self.retry(svc, id, login),
            Command::Priority(n) => svc
                .ledger(|l| l.set_priority(id, &Actor::Person(person()), *n, Timestamp::now()))
                .map_err(ApiError::from)
                .map(|t| format!("{id}'s priority is {} now", t.priority)),
        };
        info!(
            login,
            command = cmd.verb(),
            ok = done.is_ok(),
            "comment command"
        );
        match done {
            Ok(text) => format!("@{login} {text}."),
            Err(e) => format!(
                "@{login} `{}` was refused: {}. Nothing changed.",
                cmd.verb(),
                e.message
            ),
        }
    }

    /// `/switchyard retry`: a task that came back (a flaky verify, say) is submitted
    /// again: the very commit submitted before, not whatever its branch holds now.
    fn retry(&self, svc: &Service, id: TaskId, login: &str) -> Result<String> {
        let task = svc.ledger(|l| l.task(id))?;
        if task.state != TaskState::Returned {
            return Err(ApiError::new(
                crate::api::ErrorCode::WrongState,
                format!(
                    "{id} is {}; only a task that came back from the queue can be retried",
                    task.state
                ),
            ));
        }
        let (Some(agent), Some(commit)) = (task.agent.clone(), task.submitted_head.clone()) else {
            return Err(ApiError::new(
                crate::api::ErrorCode::WrongState,
                format!("{id} has no executor or no earlier submission"),
            ));
        };
        svc.ledger(|l| {
            l.note(
                id,
                &Actor::Person(
                    crate::model::normalize_name(login).unwrap_or_else(|_| login.to_owned()),
                ),
                Evidence::Retried(evidence::Attempt {
                    attempt: task.attempt,
                }),
                Timestamp::now(),
            )
        })?;
        let submitted = svc.submit_commit(id, &agent, Some(&commit))?;
        Ok(format!(
            "submitted {id} again ({}) as attempt {}; it is {} now",
            short(&commit),
            submitted.task.attempt,
            submitted.task.state
        ))
    }

    fn reply(&self, number: u64, text: &str) {
        if let Err(e) = self.block_on(self.client.comment(number, text)) {
            warn!(pr = number, error = %e, "could not answer on GitHub");
        }
    }

    // ---- making GitHub match the ledger -----------------------------------------------

    /// Brings one task's PR up to date: branch, PR, body, check run, closing notes.
    fn publish(&self, svc: &Service, client: &Client, id: TaskId) -> Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        self.publish_locked(svc, client, id)
    }

    /// `publish`, with `self.writing` held by the caller.
    fn publish_locked(&self, svc: &Service, client: &Client, id: TaskId) -> Result<()> {
        let task = svc.ledger(|l| l.task(id))?;
        let Some(head) = task.submitted_head.clone() else {
            return Ok(());
        };
        let mut rec = svc.ledger(|l| l.pr(id))?;
        let waiting = matches!(
            task.state,
            TaskState::Queued | TaskState::AwaitingApproval | TaskState::AwaitingReview
        );
        if rec.is_none() && task.state.is_final() {
            return Ok(()); // Landed or cancelled before GitHub heard of it.
        }
        // A new submission is pushed; so is one whose branch a person deleted, and the
        // first of a task that came back (or is being integrated) before its PR existed.
        let stale = rec.as_ref().and_then(|r| r.pushed_head.as_deref()) != Some(head.as_str())
            || rec.as_ref().is_some_and(|r| r.reopen);
        if (waiting || (rec.is_none() && !task.state.is_final())) && stale {
            if !self.push_branch(svc, &task, &head, rec.as_ref())? {
                return Ok(());
            }
            if let Some(r) = &mut rec {
                r.pushed_head = Some(head.clone());
                svc.ledger(|l| l.set_pushed_head(id, &head))?;
            }
        }
        let events = svc.ledger(|l| l.events(id))?;
        let (position, lane) = self.position(svc, id)?;
        let cx = card::Context {
            base: &svc.config.base,
            position,
            lane,
        };
        let body = card::body(&task, &events, &cx);
        let mut rec = match rec {
            Some(r) => r,
            None => {
                let Some(r) = self.open_pull(svc, client, &task, &head, &body)? else {
                    return Ok(());
                };
                r
            }
        };
        let digest = digest(&[&card::title(&task), &body]);
        // Submitted again after a person closed or retargeted the PR: open it on the base.
        // (Only then: reopening on every write would undo a close not yet noticed.)
        let reopen = waiting && (rec.reopen || rec.closed);
        if rec.body_digest.as_deref() != Some(digest.as_str()) || reopen {
            let mut changes = json!({"title": card::title(&task), "body": body});
            if reopen {
                changes["state"] = json!("open");
                changes["base"] = json!(svc.config.base);
            }
            let pr = match self.block_on(client.update_pull(rec.number, changes)) {
                Ok(pr) => pr,
                Err(GhError::Refused { status: 422, .. }) if reopen => {
                    // GitHub will not reopen a PR whose branch was recreated: open anew,
                    // or take the one a crash left unrecorded.
                    info!(
                        old = rec.number,
                        "the closed PR cannot be reopened; opening a new one"
                    );
                    let found = self
                        .block_on(client.find_pull(&task.branch))
                        .map_err(gh_err)?
                        .filter(|p| p.is_open() && p.number != rec.number);
                    let new = match found {
                        Some(pr) => pr,
                        None => match self.create_pull(svc, client, &task, &body)? {
                            Some(pr) => pr,
                            None => return Ok(()),
                        },
                    };
                    let evidence = Evidence::PrOpened(PrOpened {
                        number: new.number,
                        url: new.html_url.clone(),
                        found_existing: None,
                        head: Some(head.clone()),
                        replaces: Some(rec.number),
                    });
                    svc.ledger(|l| l.note(id, &Actor::Daemon, evidence, Timestamp::now()))?;
                    new
                }
                Err(e) => return Err(gh_err(e)),
            };
            if pr.number != rec.number {
                rec = PrRecord {
                    number: pr.number,
                    url: pr.html_url.clone(),
                    check_run: None,
                    check_head: None,
                    check_digest: None,
                    last_comment: 0,
                    last_review: 0,
                    ..rec
                };
            }
            rec.body_digest = Some(digest);
            rec.closed = rec.closed && !reopen;
            rec.seen_updated = Some(pr.updated_at);
            // The PR (perhaps a new one) first, then `reopen` cleared: a crash between
            // the two only reopens an open PR once more.
            svc.ledger(|l| l.save_pr(&rec))?;
            if reopen {
                rec.reopen = false;
                svc.ledger(|l| l.set_reopen(id, false))?;
            }
        }
        if task.state == TaskState::Merged && !rec.merged_noted {
            self.point_pr_at_landed(svc, &task, &events, &mut rec)?;
        }
        self.publish_check(svc, client, &task, &events, &cx, &mut rec)?;
        match task.state {
            TaskState::Merged if !rec.merged_noted => {
                let commit = landed_commit(&events).unwrap_or("").to_owned();
                let text = format!(
                    "Merged: `{}` is on `{}` after verify passed on exactly its parent. switchyard pushed the verified commit to this branch and fast-forwarded `{}` to it.",
                    commit, svc.config.base, svc.config.base
                );
                self.block_on(client.comment(rec.number, &text))
                    .map_err(gh_err)?;
                // Only the commit that landed is deleted: a branch someone pushed to since
                // stays.
                if self.settings.delete_branch
                    && let Some(landed) = rec.pushed_head.as_deref()
                    && let Err(e) = gitcli::delete_remote_branch(
                        &svc.repo.main_root,
                        &self.remote,
                        &task.branch,
                        landed,
                    )
                {
                    warn!(error = %e, "could not delete the merged branch on GitHub");
                }
                rec.merged_noted = true;
                svc.ledger(|l| l.save_pr(&rec))?;
            }
            TaskState::Cancelled if !rec.closed => {
                let reason = events
                    .iter()
                    .rev()
                    .find(|e| e.kind() == EventKind::Cancelled)
                    .map(|e| {
                        let why = match &e.what {
                            Evidence::Cancelled(c) if !c.reason.is_empty() => {
                                format!(": {}", c.reason)
                            }
                            _ => String::new(),
                        };
                        format!("{} cancelled it{why}", e.by)
                    })
                    .unwrap_or_default();
                let pr = self
                    .block_on(client.update_pull(rec.number, json!({"state": "closed"})))
                    .map_err(gh_err)?;
                rec.closed = true;
                rec.seen_updated = Some(pr.updated_at);
                svc.ledger(|l| l.save_pr(&rec))?;
                self.reply(
                    rec.number,
                    &format!("{id} was cancelled ({reason}); closed. Its branch stays."),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// A PR opened while its task was being integrated still shows the submitted
    /// commit: its branch is pointed at what landed (only from what switchyard pushed
    /// there), and GitHub shows it merged.
    fn point_pr_at_landed(
        &self,
        svc: &Service,
        task: &Task,
        events: &[crate::model::Event],
        rec: &mut PrRecord,
    ) -> Result<()> {
        let Some(landed) = landed_commit(events) else {
            return Ok(());
        };
        if rec.pushed_head.as_deref() == Some(landed) {
            return Ok(());
        }
        let root = &svc.repo.main_root;
        let theirs = gitcli::remote_tip(root, &self.remote, &task.branch)?;
        if theirs == rec.pushed_head
            && gitcli::push_with_lease(root, &self.remote, landed, &task.branch, theirs.as_deref())?
        {
            svc.ledger(|l| l.set_pushed_head(task.id, landed))?;
            rec.pushed_head = Some(landed.to_owned());
        }
        Ok(())
    }

    /// Pushes the submitted commit to the task's branch on the remote. A branch that
    /// holds commits the submission lacks (a person pushed them) is not overwritten:
    /// the task goes back to its executor. `false` when nothing was pushed.
    fn push_branch(
        &self,
        svc: &Service,
        task: &Task,
        head: &str,
        rec: Option<&PrRecord>,
    ) -> Result<bool> {
        let root = &svc.repo.main_root;
        let theirs = gitcli::remote_tip(root, &self.remote, &task.branch)?;
        if theirs.as_deref() == Some(head) {
            return Ok(true);
        }
        let ours = rec.and_then(|r| r.pushed_head.as_deref());
        let safe = match theirs.as_deref() {
            None => true,
            Some(t) if Some(t) == ours => true,
            Some(t) => git::is_ancestor(root, t, head).unwrap_or(false),
        };
        if safe
            && gitcli::push_with_lease(root, &self.remote, head, &task.branch, theirs.as_deref())?
        {
            info!(branch = %task.branch, head = %short(head), "pushed the task's branch");
            return Ok(true);
        }
        let reason = format!(
            "{} on {} has commits this submission does not contain; fetch them into the task's branch (or delete the remote branch) and submit again",
            task.branch, self.remote
        );
        let evidence = Evidence::ChangedOnGithub(ChangedOnGithub::OnRemoteBranch {
            what: PrChange::Pushed,
            reason,
            remote_tip: theirs,
        });
        let back = svc.back();
        svc.ledger(|l| {
            let t = l.task(task.id)?;
            if matches!(
                t.state,
                TaskState::Queued | TaskState::AwaitingApproval | TaskState::AwaitingReview
            ) {
                l.give_back(task.id, &Actor::Daemon, evidence, back, Timestamp::now())?;
            }
            Ok::<_, crate::store::LedgerError>(())
        })?;
        warn!(branch = %task.branch, "the remote branch has commits of someone else's; back to the executor");
        Ok(false)
    }

    /// Finds the task's PR by its branch (a crash may have come between creating it and
    /// recording it) or opens one, and records it.
    fn open_pull(
        &self,
        svc: &Service,
        client: &Client,
        task: &Task,
        head: &str,
        body: &str,
    ) -> Result<Option<PrRecord>> {
        let found = self
            .block_on(client.find_pull(&task.branch))
            .map_err(gh_err)?;
        let existed = found.is_some();
        let pr = match found {
            Some(pr) => pr,
            None => match self.create_pull(svc, client, task, body)? {
                Some(pr) => pr,
                None => return Ok(None),
            },
        };
        let rec = PrRecord {
            task: task.id,
            number: pr.number,
            url: pr.html_url.clone(),
            pushed_head: Some(head.to_owned()),
            body_digest: None, // Written below, with the title and state.
            check_run: None,
            check_head: None,
            check_digest: None,
            check_done: false,
            last_comment: 0,
            last_review: 0,
            seen_updated: None,
            merged_noted: false,
            closed: false,
            // A PR found closed is reopened below.
            reopen: !pr.is_open(),
        };
        svc.ledger(|l| l.record_pr(&rec, existed, Timestamp::now()))?;
        info!(pr = pr.number, url = %pr.html_url, existed, "PR recorded");
        if !existed && !self.settings.labels.is_empty() {
            self.block_on(client.add_labels(pr.number, &self.settings.labels))
                .map_err(gh_err)?;
        }
        Ok(Some(rec))
    }

    /// Opens a PR for the task; `None` when GitHub says there is nothing to merge (the
    /// task already landed).
    fn create_pull(
        &self,
        svc: &Service,
        client: &Client,
        task: &Task,
        body: &str,
    ) -> Result<Option<PullRequest>> {
        let created = self.block_on(client.create_pull(
            &task.branch,
            &svc.config.base,
            &card::title(task),
            body,
        ));
        let pr = match created {
            Ok(pr) => pr,
            Err(GhError::Refused {
                status: 422,
                message,
                ..
            }) if task.state.is_final() => {
                debug!(%message, "no PR for a task that already landed");
                return Ok(None);
            }
            Err(e) => return Err(gh_err(e)),
        };
        // Created, not yet recorded: the window a crash test must reach.
        svc.count_step();
        Ok(Some(pr))
    }

    fn publish_check(
        &self,
        svc: &Service,
        client: &Client,
        task: &Task,
        events: &[crate::model::Event],
        cx: &card::Context<'_>,
        rec: &mut PrRecord,
    ) -> Result<()> {
        let Some(head) = rec.pushed_head.clone() else {
            return Ok(());
        };
        let view = card::check(task, events, cx);
        let digest = digest(&[
            view.status,
            view.conclusion.unwrap_or(""),
            &view.title,
            &view.summary,
        ]);
        if rec.check_head.as_deref() == Some(head.as_str())
            && rec.check_digest.as_deref() == Some(digest.as_str())
        {
            return Ok(());
        }
        match rec
            .check_run
            .filter(|_| rec.check_head.as_deref() == Some(head.as_str()))
        {
            Some(run) => self
                .block_on(client.update_check(run, &view, &rec.url))
                .map_err(gh_err)?,
            None => {
                let run = self
                    .block_on(client.create_check(&head, &view, &rec.url))
                    .map_err(gh_err)?;
                // The run on the previous head stops claiming to be queued or verifying.
                if let Some(old) = rec.check_run.filter(|_| !rec.check_done) {
                    let superseded = crate::github::client::CheckView {
                        status: "completed",
                        conclusion: Some("neutral"),
                        title: "Superseded".into(),
                        summary: format!("The PR's head moved to `{}`.", short(&head)),
                    };
                    if let Err(e) = self.block_on(client.update_check(old, &superseded, &rec.url)) {
                        warn!(error = %e, "could not close the previous check run");
                    }
                }
                rec.check_run = Some(run);
                rec.check_head = Some(head);
            }
        }
        debug!(status = view.status, title = %view.title, "check run updated");
        rec.check_digest = Some(digest);
        rec.check_done = view.status == "completed";
        svc.ledger(|l| l.save_pr(rec))?;
        Ok(())
    }

    /// 1-based position in the queue and its length, and its lane and position in the
    /// lane, for a task in the queue.
    fn position(&self, svc: &Service, id: TaskId) -> Result<(Spot, Spot)> {
        let queue = svc.queue_order()?;
        let lane = queue
            .plan(&Default::default())
            .places
            .into_iter()
            .find(|p| p.task == id)
            .and_then(|p| p.lane);
        let order = queue.order;
        let position = order
            .iter()
            .position(|t| *t == id)
            .map(|i| (i + 1, order.len()));
        Ok((position, lane))
    }

    // ---- the queue's calls ----------------------------------------------------------

    /// Just before the base moves: the PR must still be open, on the base, at the
    /// commit submitted, and its branch is then force-updated to the verified commit.
    /// `Some(reason)` when a person changed the PR: the task must not land.
    pub(super) fn prepare_pr_for_merge(
        &self,
        svc: &Service,
        i: &Integration,
        head: &str,
    ) -> Result<Option<(PrChange, String)>> {
        // No `self.writing` here: the GitHub loop only pushes a waiting task's branch, and
        // this task is being integrated; the fields written have their own setters.
        let Some(rec) = svc.ledger(|l| l.pr(i.task))? else {
            return Ok(None); // GitHub never heard of it; nothing to keep in step.
        };
        // Nothing lands from a PR that cannot be seen to be open and on the base: if
        // GitHub cannot say, the integration waits (not the task's fault).
        let pr = self
            .block_on(self.client.pull(rec.number))
            .map_err(|e| match e {
                e if e.is_transient() => ApiError::unavailable(format!(
                    "cannot confirm on GitHub that PR #{} is still open: {e}",
                    rec.number
                )),
                e => gh_err(e),
            })?;
        if !pr.is_open() && !pr.is_merged() {
            svc.ledger(|l| l.set_reopen(i.task, true))?;
            return Ok(Some(self.why_closed(svc, &pr)));
        }
        if pr.base.name != svc.config.base {
            svc.ledger(|l| l.set_reopen(i.task, true))?;
            return Ok(Some((
                PrChange::BaseChanged,
                format!("the PR's base was changed to {} on GitHub", pr.base.name),
            )));
        }
        let task = svc.ledger(|l| l.task(i.task))?;
        let root = &svc.repo.main_root;
        let theirs = gitcli::remote_tip(root, &self.remote, &task.branch)?;
        if theirs.as_deref() != Some(head) {
            let expected = rec.pushed_head.clone();
            if theirs.is_none() && expected.is_some() {
                return Ok(Some((
                    PrChange::BranchDeleted,
                    format!("its branch {} was deleted on GitHub", task.branch),
                )));
            }
            // The lease: only from the commit switchyard pushed there itself, or from
            // commits the submission contains (someone else's, taken in by the executor
            // before the GitHub loop pushed the submission).
            let contained = theirs.as_deref().is_some_and(|t| {
                task.submitted_head
                    .as_deref()
                    .is_some_and(|s| git::is_ancestor(root, t, s).unwrap_or(false))
            });
            let expected = if contained { theirs.clone() } else { expected };
            if theirs != expected
                || !gitcli::push_with_lease(
                    root,
                    &self.remote,
                    head,
                    &task.branch,
                    expected.as_deref(),
                )?
            {
                return Ok(Some((
                    PrChange::Pushed,
                    format!("new commits were pushed to {} on GitHub", task.branch),
                )));
            }
            svc.count_step();
            info!(branch = %task.branch, head = %short(head), "force-updated the PR's branch to the verified commit");
        }
        svc.ledger(|l| l.set_pushed_head(i.task, head))?;
        Ok(None)
    }

    /// `verify = "github-checks"`: pushes the rebased commit to `switchyard/verify/<id>`
    /// and waits for the required checks on it. `Ok(None)` when stopping.
    pub(super) fn verify_on_github(
        &self,
        svc: &Service,
        i: &Integration,
        head: &str,
        required: &[String],
    ) -> Result<Option<std::result::Result<Vec<CheckResult>, VerifyFailure>>> {
        let root = &svc.repo.main_root;
        let branch = crate::github::verify_branch(i.task);
        let theirs = gitcli::remote_tip(root, &self.remote, &branch)?;
        if theirs.as_deref() != Some(head)
            && !gitcli::push_with_lease(root, &self.remote, head, &branch, theirs.as_deref())?
        {
            return Err(ApiError::internal(format!("cannot push {branch}")));
        }
        info!(branch, head = %short(head), checks = ?required, "waiting for GitHub's checks");
        let started = Instant::now();
        let every = self
            .settings
            .poll_interval
            .clamp(Duration::from_millis(100), Duration::from_secs(15));
        let timeout = svc.config.queue.verify_timeout;
        let mut last_pending: Vec<String> = Vec::new();
        let verdict = loop {
            if svc.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(None);
            }
            let read = self.block_on(async {
                let runs = self.client.check_runs(head).await?;
                let statuses = self.client.statuses(head).await?;
                Ok::<_, GhError>((runs, statuses))
            });
            match read {
                Ok((runs, statuses)) => match checks::judge(required, &runs, &statuses) {
                    Verdict::Pending(waiting) => {
                        if waiting != last_pending {
                            info!(waiting = ?waiting, "checks pending");
                            last_pending = waiting;
                        }
                    }
                    Verdict::Passed(checks) => break Ok(checks),
                    Verdict::Failed(check) => break Err(VerifyFailure::Check { check }),
                },
                Err(e) if e.is_transient() => warn!(error = %e, "cannot read the checks yet"),
                Err(e) => return Err(gh_err(e)),
            }
            if started.elapsed() >= timeout {
                break Err(VerifyFailure::TimedOut {
                    reason: format!(
                        "timed out after {}s waiting for {}",
                        timeout.as_secs(),
                        last_pending.join(", ")
                    ),
                    pending: last_pending,
                });
            }
            std::thread::sleep(every);
        };
        if let Err(e) = gitcli::delete_remote_branch(root, &self.remote, &branch, head) {
            warn!(error = %e, "could not delete {branch}");
        }
        Ok(Some(verdict))
    }
}

/// The commit a merged task landed as.
fn landed_commit(events: &[crate::model::Event]) -> Option<&str> {
    events.iter().rev().find_map(|e| match &e.what {
        Evidence::BaseMoved(moved) => Some(moved.to.as_str()),
        _ => None,
    })
}

fn approvers_text(approvers: &[Approver]) -> String {
    if approvers.is_empty() {
        return "the approvers listed in [github].approvers (none are listed yet)".to_owned();
    }
    approvers
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn digest(parts: &[&str]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_le_bytes());
        ctx.update(p.as_bytes());
    }
    ctx.finish()
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A 1-based position and the length of what it is a position in.
type Spot = Option<(usize, usize)>;

//! The answers to read requests (`task list`, `task show`, `log`, `log --queue`,
//! `queue`, the conflict warnings), made from the ledger. One code path for both doors:
//! the daemon calls these on its read-only connections, and the CLI, when no daemon
//! runs, on the ledger opened read-only (`Ledger::open_offline`), so both give the same
//! answer to the byte.
//!
//! Each function takes a `&Ledger` that the caller reads inside one transaction
//! (`Ledger::snapshot`): everything an answer holds comes from one commit. Nothing here
//! writes, and nothing depends on a live daemon: the queue's stages are the steps the
//! ledger records, and "now" (for the time at a stage) is a parameter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::api::{self, ApiError};
use crate::config::Config;
use crate::git;
use crate::model::{Event, EventKind, Evidence, Pause, Stop, Task, TaskId, TaskState, Timestamp};
use crate::queue::lanes::{Graph, Lanes, Reach};
use crate::queue::planner::{self, Candidate, Landed, Plan, Snapshot};
use crate::store::{Ledger, Step};

/// Tasks by id, filtered by state and by who took which role (`GET /v1/tasks`).
pub fn tasks(l: &Ledger, filter: &api::TaskFilter) -> Result<Vec<Task>, ApiError> {
    let role = match (filter.role, &filter.agent) {
        (Some(role), Some(agent)) => Some((role, name(agent, "--agent")?)),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::bad(
                "--role and --agent go together: whose work, in which role",
            ));
        }
    };
    let mut tasks = l.tasks(filter.state)?;
    if let Some((role, who)) = &role {
        let kinds: &[EventKind] = match role {
            api::Role::Planner => &[EventKind::Created],
            api::Role::Executor => &[EventKind::Claimed],
            api::Role::Reviewer => &[
                EventKind::ReviewStarted,
                EventKind::ReviewApproved,
                EventKind::ChangesRequested,
            ],
            api::Role::Approver => &[EventKind::Approved],
        };
        let ids = l.tasks_with_role(kinds, who)?;
        tasks.retain(|t| ids.contains(&t.id));
    }
    Ok(tasks)
}

/// One task with its timeline, roles, checkpoints, conflict warnings and pull request
/// (`GET /v1/tasks/{id}`).
pub fn task(l: &Ledger, id: TaskId) -> Result<api::TaskDetail, ApiError> {
    let task = l.task(id)?;
    let timeline = l.events(id)?;
    let checkpoints = match task.state {
        TaskState::AwaitingApproval => crate::queue::checkpoints(&task, &timeline),
        TaskState::Open
        | TaskState::Claimed
        | TaskState::Queued
        | TaskState::AwaitingReview
        | TaskState::Verifying
        | TaskState::Returned
        | TaskState::Merged
        | TaskState::Cancelled => Vec::new(),
    };
    Ok(api::TaskDetail {
        roles: crate::model::Roles::of(&timeline),
        pull_request: l.pr(id)?.map(|p| api::PullRequestLink {
            number: p.number,
            url: p.url,
        }),
        conflicts: conflicts(l, Some(id))?,
        task,
        checkpoints,
        timeline,
    })
}

/// A task's events, oldest first (`GET /v1/tasks/{id}/events`).
pub fn events(l: &Ledger, id: TaskId) -> Result<Vec<Event>, ApiError> {
    Ok(l.events(id)?)
}

/// The queue's own events (pauses, resumes), oldest first (`GET /v1/events`).
pub fn queue_events(l: &Ledger) -> Result<api::QueueEvents, ApiError> {
    Ok(l.queue_events()?)
}

/// What holds the queue or the hand-outs: a pause because the base moved, and a
/// person's pause. The lines `task list` and `queue` begin with.
pub fn held(l: &Ledger) -> Result<(Option<Pause>, Option<Stop>), ApiError> {
    Ok((l.paused()?, l.stopped()?))
}

/// The conflict warnings in force, for one task or all (`GET /v1/conflicts`).
pub fn conflicts(l: &Ledger, task: Option<TaskId>) -> Result<Vec<api::ConflictView>, ApiError> {
    let mut out = Vec::new();
    for ((a, side), paths) in l.conflicts()? {
        let mut push = |on: TaskId, with: Option<TaskId>| -> Result<(), ApiError> {
            if task.is_none_or(|t| t == on) {
                let agent = match with {
                    Some(w) => l.task(w)?.agent,
                    None => None,
                };
                out.push(api::ConflictView {
                    task: on,
                    with: with.map_or_else(|| "base".to_owned(), |w| w.to_string()),
                    agent,
                    paths: paths.clone(),
                });
            }
            Ok(())
        };
        match side {
            crate::conflicts::Side::Base => push(a, None)?,
            crate::conflicts::Side::Task(b) => {
                push(a, Some(b))?;
                push(b, Some(a))?;
            }
        }
    }
    Ok(out)
}

/// The base branch's tip in the repository at `root`: where the queue starts from when
/// the ledger has not recorded one yet.
pub fn base_tip(root: &Path, base: &str) -> Result<String, ApiError> {
    git::branch_tip(root, base)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::refused(format!("the base branch {base:?} does not exist")))
}

/// How many of the lander's last moves of the base the planner looks back over (lanes):
/// a candidate built longer ago than that is built again.
const LANDINGS_LOOKED_BACK: u32 = 256;

/// The queue as the planner sees it, from one read of the ledger.
pub struct QueueNow {
    /// In the order it is integrated (`planner::order`).
    pub order: Vec<TaskId>,
    pub candidates: Vec<Candidate>,
    /// The base tip the lander expects.
    pub base: String,
    pub paused: Option<Pause>,
    /// A person's pause; it holds the queue unless it is for claims only.
    pub stop: Option<Stop>,
    /// How many candidates may be in flight now: the adapted window, at most
    /// `[queue] max_parallel` (which it starts at).
    pub window: usize,
    /// `[queue] max_parallel`: candidates in flight in all lanes together.
    pub slots: usize,
    /// With `[queue] lanes`: the footprints of the tasks queued and recently landed,
    /// and the lander's recent moves of the base.
    pub lanes: Option<Lanes>,
    pub landed: Vec<Landed>,
}

impl QueueNow {
    /// The planner's answer for this queue, `busy` being the tasks with an action under
    /// way.
    pub fn plan(&self, busy: &BTreeSet<TaskId>) -> Plan {
        planner::next(&Snapshot {
            order: &self.order,
            candidates: &self.candidates,
            base: &self.base,
            busy,
            window: self.window,
            slots: self.slots,
            paused: self.paused.is_some() || self.stop.as_ref().is_some_and(Stop::stops_queue),
            lanes: self.lanes.as_ref(),
            landed: &self.landed,
        })
    }
}

/// The queue in the order it is integrated (`planner::order`): with the candidates in
/// flight, the base tip the lander expects (`base_tip` when the ledger has none yet),
/// the pause.
pub fn queue_now(
    l: &Ledger,
    config: &Config,
    base_tip: &dyn Fn() -> Result<String, ApiError>,
) -> Result<QueueNow, ApiError> {
    let lanes = config.queue.lanes;
    let tasks = l.tasks_in(&[TaskState::Queued, TaskState::Verifying])?;
    let landed = match lanes {
        true => l.base_moves(LANDINGS_LOOKED_BACK)?,
        false => Vec::new(),
    };
    let mut reach = Vec::new();
    if lanes {
        let ids = tasks
            .iter()
            .map(|t| t.id)
            .chain(landed.iter().map(|m| m.task));
        for id in ids.collect::<BTreeSet<_>>() {
            reach.push((id, reach_of(l.last_event(id, EventKind::Submitted)?)));
        }
    }
    let max = config.queue.max_parallel.get() as usize;
    let window = l.window()?.map_or(max, |w| (w as usize).clamp(1, max));
    let base = match l.base_expected()? {
        Some(tip) => tip,
        None => base_tip()?,
    };
    let candidates: Vec<Candidate> = l
        .integrations()?
        .into_iter()
        .map(|i| Candidate {
            task: i.task,
            step: i.step,
            onto: i.onto,
            head: i.head,
            built: i.built,
            lineage: i.lineage,
            stack: i.stack,
        })
        .collect();
    let order = planner::order(&tasks, &candidates);
    let lanes = lanes.then(|| Lanes::new(&Graph::new(&config.subsystems), reach));
    Ok(QueueNow {
        order,
        candidates,
        base,
        paused: l.paused()?,
        stop: l.stopped()?,
        window,
        slots: max,
        lanes,
        landed,
    })
}

/// Submitted tasks in the order they will be integrated, each with its stage, how long
/// it has been there (until `now`) and what it waits for (`GET /v1/queue`).
pub fn queue(
    l: &Ledger,
    config: &Config,
    base_tip: &dyn Fn() -> Result<String, ApiError>,
    now: Timestamp,
) -> Result<Vec<api::QueueEntry>, ApiError> {
    let mut waiting = l.tasks_in(&[
        TaskState::Queued,
        TaskState::Verifying,
        TaskState::AwaitingApproval,
        TaskState::AwaitingReview,
    ])?;
    // In the order the queue will take them (`queue::planner`, the one place that
    // decides it); tasks still at a checkpoint after them, by priority.
    let queue = queue_now(l, config, base_tip)?;
    let plan = queue.plan(&BTreeSet::new());
    let QueueNow {
        order,
        paused,
        stop,
        candidates,
        base,
        ..
    } = queue;
    let held = paused
        .map(|p| format!("the queue to resume (paused: {})", p.reason))
        .or_else(|| {
            stop.filter(Stop::stops_queue)
                .map(|s| format!("the queue to resume ({})", s.line()))
        });
    let candidate = |id: TaskId| candidates.iter().find(|c| c.task == id);
    let place = |id: TaskId| plan.places.iter().find(|p| p.task == id);
    let built_on = |id: TaskId| {
        let c = candidate(id)?;
        if c.stack.is_empty() || c.onto == base {
            return Some("base".to_owned());
        }
        let below = candidates.iter().find(|b| {
            b.head.as_deref() == Some(c.onto.as_str())
                || b.built.as_deref() == Some(c.onto.as_str())
        });
        Some(match below {
            Some(b) => b.task.to_string(),
            // Built onto something no longer there: it is built again next.
            None => c.onto.chars().take(10).collect(),
        })
    };
    let rank = |t: &Task| {
        order
            .iter()
            .position(|id| *id == t.id)
            .unwrap_or(usize::MAX)
    };
    waiting.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(b.priority.cmp(&a.priority))
            .then(a.id.cmp(&b.id))
    });
    // When each in flight reached its step, what flaked, and why a task waiting for
    // every lane touches everything.
    let mut since = BTreeMap::new();
    for i in l.integrations()? {
        since.insert(i.task, i.since);
    }
    let mut flakes: BTreeMap<TaskId, BTreeMap<String, u32>> = BTreeMap::new();
    let mut everything = BTreeMap::new();
    for t in &waiting {
        if t.state == TaskState::Verifying {
            flakes.insert(t.id, flakes_of(&l.events(t.id)?));
        }
        if place(t.id).is_some_and(|p| !p.waits_for.is_empty())
            && let Some(Event {
                what: Evidence::Submitted(s),
                ..
            }) = l.last_event(t.id, EventKind::Submitted)?
            && let Some(why) = s.touches_everything
        {
            everything.insert(t.id, why);
        }
    }
    Ok(waiting
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let step = candidate(t.id).map(|c| c.step);
            let place = place(t.id);
            let lanes = place.map(|p| p.waits_for.clone()).unwrap_or_default();
            let stage = match (t.state, step) {
                (TaskState::AwaitingApproval, _) => api::Stage::AwaitingApproval,
                (TaskState::AwaitingReview, _) => api::Stage::AwaitingReview,
                (_, None) => api::Stage::Waiting,
                (_, Some(Step::Started)) => api::Stage::Building,
                (_, Some(Step::Rebased)) => api::Stage::Verifying,
                (_, Some(Step::Verified)) => api::Stage::Passed,
                (_, Some(Step::Failed)) => api::Stage::Failed,
                (_, Some(Step::BaseMoved | Step::BranchUpdated)) => api::Stage::Landing,
            };
            let at = since.get(&t.id).copied().or(t.queued_at).unwrap_or(now);
            let waiting_for = match (&held, stage) {
                (_, api::Stage::AwaitingApproval) => "a person's approval".to_owned(),
                (_, api::Stage::AwaitingReview) => match &t.review {
                    Some(r) => format!(
                        "{}'s review (held until {})",
                        r.reviewer, r.lease_expires_at
                    ),
                    None => "a reviewer (`switchyard review next`)".to_owned(),
                },
                (Some(held), _) => held.clone(),
                (None, api::Stage::Waiting) if !lanes.is_empty() => {
                    let which = lanes_text(&lanes);
                    match everything.get(&t.id) {
                        Some(why) => format!("{which} to land: it touches everything ({why})"),
                        None => format!("{which} to land: it depends on changes in each"),
                    }
                }
                (None, api::Stage::Waiting) => "its turn".to_owned(),
                (None, api::Stage::Building) => "its candidate to be built".to_owned(),
                (None, api::Stage::Verifying) => "verify to finish".to_owned(),
                (None, api::Stage::Passed) => {
                    "the candidates below it to land, then its landing".to_owned()
                }
                (None, api::Stage::Failed) => "the candidate below it (it failed on top of it: its own failure, or that one's)".to_owned(),
                (None, api::Stage::Landing) => "its landing to be recorded".to_owned(),
            };
            api::QueueEntry {
                built_on: built_on(t.id),
                lane: place.and_then(|p| p.lane).map(|(l, _)| l),
                lane_position: place.and_then(|p| p.lane).map(|(_, n)| n),
                waits_for_lanes: lanes,
                stage,
                elapsed_ms: u64::try_from(now.0.saturating_sub(at.0)).unwrap_or(0),
                flakes: flakes.get(&t.id).cloned().unwrap_or_default(),
                id: t.id,
                title: t.title,
                state: t.state,
                position: i + 1,
                waiting_for,
            }
        })
        .collect())
}

/// An agent's or person's name as the ledger records it, or the `bad_request` saying
/// what is wrong with it (`flag` names the option it came from).
fn name(raw: &str, flag: &str) -> Result<String, ApiError> {
    crate::model::normalize_name(raw).map_err(|e| ApiError::bad(format!("{flag} {e}")))
}

/// What a task's change touches, for lanes, from its last `submitted` event: everything
/// when the event says so or cannot be read.
fn reach_of(submitted: Option<Event>) -> Reach {
    match submitted.map(|e| e.what) {
        Some(Evidence::Submitted(s)) if s.touches_everything.is_none() => {
            Reach::Subsystems(s.subsystems.into_iter().collect())
        }
        _ => Reach::Everything,
    }
}

/// "lane 2", "lanes 1 and 3", "lanes 1, 2 and 4".
fn lanes_text(lanes: &[usize]) -> String {
    let names: Vec<String> = lanes.iter().map(usize::to_string).collect();
    match names.as_slice() {
        [one] => format!("lane {one}"),
        [rest @ .., last] => format!("lanes {} and {last}", rest.join(", ")),
        [] => "no lane".to_owned(),
    }
}

/// The verify commands that flaked in the task's current attempt (since its last
/// submission), with how many times each.
fn flakes_of(events: &[Event]) -> BTreeMap<String, u32> {
    let mut flakes = BTreeMap::new();
    for e in events.iter().rev() {
        match &e.what {
            Evidence::Submitted(_) => break,
            Evidence::Flaked(f) => *flakes.entry(f.command.clone()).or_insert(0) += 1,
            _ => {}
        }
    }
    flakes
}

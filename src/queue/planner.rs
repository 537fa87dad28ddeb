//! What the queue does next, as one pure function of a snapshot: the queue in order, the
//! candidates in flight with their steps, the base tip the lander expects, what the
//! executor is busy with, how deep a pipeline may be and how many verify slots there
//! are, and (with lanes) which tasks are independent and how the base moved lately. No
//! I/O: the daemon's engine reads the snapshot from the ledger, carries the actions out,
//! records each outcome, and asks again.
//!
//! The rules, in the words of the tests below:
//! - Each entry depends on the entries ahead of it that ownership does not declare
//!   independent of it (lanes off: on all of them). Depending on none, it starts a lane
//!   built onto the base; otherwise it is built onto the last of what it depends on,
//!   if that one holds the rest (a dependent pipeline); otherwise it waits.
//! - A candidate built onto something that is no longer there (the one below failed or
//!   was built again, or the base moved by a change it depends on) is stale: built
//!   again onto what is there now. One whose base moved only by independent landings is
//!   carried onto the tip without a second verify (lanes).
//! - Only a candidate with nothing left below it lands, once verified, onto exactly the
//!   base it sits on; one landing at a time.
//! - Pipelines are as deep as the window; the verify slots go to the shallowest entries.
//! - A task the executor is busy with gets no new action until that one is done.

use std::collections::{BTreeMap, BTreeSet};

use super::lanes::Lanes;
use crate::model::{Step, Task, TaskId};

/// A candidate in flight: a task's integration as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub task: TaskId,
    pub step: Step,
    /// The commit it is built onto: a base tip, or the head of the candidate below it.
    pub onto: String,
    /// The commit built (or carried: see `Action::Carry`), once there is one.
    pub head: Option<String>,
    /// The commit as built and verified; `head` differs once carried.
    pub built: Option<String>,
    /// What its verified content holds (lanes): this base commit and, on top of it,
    /// the changes of `stack`, the candidates it was built on (lowest first).
    pub lineage: String,
    pub stack: Vec<TaskId>,
}

/// One move of the base by the lander: `task` landed, moving it from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub task: TaskId,
    pub from: String,
    pub to: String,
}

/// What the planner looks at.
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    /// The queue in order (`queue::plan`): tasks in flight, then queued ones.
    pub order: &'a [TaskId],
    /// The candidates in flight, in any order.
    pub candidates: &'a [Candidate],
    /// The base tip the lander expects.
    pub base: &'a str,
    /// Tasks with an action under way.
    pub busy: &'a BTreeSet<TaskId>,
    /// How deep each pipeline may be: the window for the observed failure rate
    /// (`adapt`, `window`), at most `slots`.
    pub window: usize,
    /// How many candidates may be in flight in all lanes together: `[queue]
    /// max_parallel`.
    pub slots: usize,
    /// A person must look at the base first: nothing starts, builds, verifies or lands.
    pub paused: bool,
    /// `[queue] lanes`: which tasks ownership declares independent. `None`: every task
    /// depends on every other (one lane).
    pub lanes: Option<&'a Lanes>,
    /// The lander's recent moves of the base, oldest first, ending at `base` (lanes).
    pub landed: &'a [Landed],
}

/// What a candidate is built onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Onto {
    /// The base's tip, as the executor finds it (fetched, with a remote).
    Base,
    /// The commit of the candidate below it in its lane.
    Candidate { task: TaskId, head: String },
}

/// One thing for the executor to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a candidate of a queued task.
    Start { task: TaskId, onto: Onto },
    /// Build the candidate's commit (the rebase or squash), check its scope again.
    Build { task: TaskId },
    /// Verify the candidate's commit.
    Verify { task: TaskId },
    /// Move the base to the verified commit (compare-and-swap from exactly the tip it
    /// was verified on), then finish: the task's branch, merged.
    Land { task: TaskId },
    /// Lanes: a verified candidate whose verdict still holds on the base, which moved
    /// only by changes independent of it, is replayed onto the base's tip without
    /// verifying again; then it lands.
    Carry { task: TaskId },
    /// The base already moved to the candidate (before a restart): finish the landing.
    Finish { task: TaskId },
    /// The candidate is stale: start it again onto what is there now.
    Rebuild { task: TaskId, onto: Onto },
    /// The candidate failed on a base holding everything it depends on: the task goes
    /// back to its executor with the evidence.
    Return { task: TaskId },
    /// The action under way for this (busy) task is for a stale candidate: cut it short.
    /// The only action for a busy task.
    Abandon { task: TaskId },
}

impl Action {
    pub fn task(&self) -> TaskId {
        match self {
            Action::Start { task, .. }
            | Action::Build { task }
            | Action::Verify { task }
            | Action::Land { task }
            | Action::Carry { task }
            | Action::Finish { task }
            | Action::Rebuild { task, .. }
            | Action::Return { task }
            | Action::Abandon { task } => *task,
        }
    }
}

impl Action {
    /// Whether the action still fits the candidate's step as the ledger has it now
    /// (`None`: no candidate): an action is planned from a snapshot, and is carried out
    /// only if what it was planned on is still there.
    pub fn fits(&self, step: Option<Step>) -> bool {
        match self {
            Action::Start { .. } => step.is_none(),
            Action::Rebuild { .. } => step.is_some_and(|s| !s.landed()),
            Action::Build { .. } => step == Some(Step::Started),
            Action::Verify { .. } => step == Some(Step::Rebased),
            Action::Land { .. } | Action::Carry { .. } => step == Some(Step::Verified),
            Action::Finish { .. } => step.is_some_and(Step::landed),
            Action::Return { .. } => step == Some(Step::Failed),
            Action::Abandon { .. } => true,
        }
    }
}

/// What happened to the candidate at the head of the window, for `adapt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Landed,
    /// Failed verify on exactly the base: its own failure.
    Failed,
}

/// The observed failure rate after `outcome`: an exponentially weighted average of the
/// outcomes at the head of the queue, the newest weighing a fifth.
pub fn adapt(failure_rate: f64, outcome: Outcome) -> f64 {
    let failed = if outcome == Outcome::Failed { 1.0 } else { 0.0 };
    (0.8 * failure_rate.clamp(0.0, 1.0) + 0.2 * failed).clamp(0.0, 1.0)
}

/// The speculation window for a failure rate: as deep as a candidate is still more
/// likely than not to land, that is every candidate below it passing (`(1 - rate)^(k-1)`
/// at least one half), between 1 and `max_parallel`. A failing streak thus stops
/// burning verify runs on candidates built on failures, a passing run opens the window
/// again, and an isolated failure among many landings changes nothing.
pub fn window(failure_rate: f64, max_parallel: usize) -> usize {
    let max = max_parallel.max(1);
    // Below this, every depth up to any `max_parallel` lands more often than not (and
    // the logarithm below would lose the rate to rounding).
    if failure_rate < 1e-3 {
        return max;
    }
    if failure_rate >= 1.0 {
        return 1;
    }
    let deeper = (0.5f64.ln() / (-failure_rate).ln_1p()).floor();
    (1 + deeper as usize).clamp(1, max)
}

/// The planner's answer: what to do now, and where every entry of the queue stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In queue order; at most one per task, and for a busy task only `Abandon`.
    pub actions: Vec<Action>,
    /// Every entry of `Snapshot::order`, in the order the queue takes them.
    pub places: Vec<Place>,
}

/// Where one entry of the queue stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub task: TaskId,
    /// Its lane (1, 2, … in queue order) and its position in it (1: next to land);
    /// `None` while it waits for several lanes.
    pub lane: Option<(usize, usize)>,
    /// The lanes it waits for, when it depends on changes in more than one.
    pub waits_for: Vec<usize>,
}

/// An entry laid out by `next`: what an entry depending on it would be built onto.
struct Laid {
    lane: usize,
    /// Its commit, for an entry built on it; `None`: it has no usable commit yet (being
    /// built, failed, stale), so entries depending on it wait.
    usable: Option<Onto>,
    /// The entries in flight below it (it is built on them), and how deep it sits.
    stack: Vec<TaskId>,
    depth: usize,
}

/// The next actions, and every entry's place.
///
/// Each entry depends on the entries ahead of it that are not independent of it (with
/// lanes off: all of them). An entry depending on none starts a lane of its own, built
/// onto the base. One whose dependencies are all below the last of them (a chain) is
/// built onto that one: a dependent pipeline, speculation, in that one's lane. Any
/// other waits until enough of what it depends on landed.
pub fn next(s: &Snapshot<'_>) -> Plan {
    let candidate = |id: TaskId| s.candidates.iter().find(|c| c.task == id);
    let judge = Judge {
        s,
        since: landed_since(s.base, s.landed),
    };
    let independent = |a: TaskId, b: TaskId| judge.independent(a, b);
    let landing = s
        .candidates
        .iter()
        .any(|c| c.step.landed() || (c.step == Step::Verified && s.busy.contains(&c.task)));
    let mut land_planned = landing;
    let mut plan = Plan::default();
    let mut laid: BTreeMap<TaskId, Laid> = BTreeMap::new();
    let mut lane_sizes: Vec<usize> = Vec::new();
    let mut placed: Vec<TaskId> = Vec::new();
    // Entries holding or wanting a slot: (depth, place in the queue, task).
    let mut wanting: Vec<(usize, usize, TaskId)> = Vec::new();
    for task in in_flight_first(s.order, s.candidates) {
        let free = !s.busy.contains(&task);
        let c = candidate(task);
        if let Some(c) = c.filter(|c| c.step.landed()) {
            // Landed: part of the base now; only the bookkeeping is left.
            if free {
                plan.actions.push(Action::Finish { task: c.task });
            }
            continue;
        }
        let deps: Vec<TaskId> = placed
            .iter()
            .copied()
            .filter(|&t| !independent(t, task))
            .collect();
        placed.push(task);
        // Built onto the last of its dependencies, if that one holds all the others.
        let below = deps.last().and_then(|last| {
            let l = laid.get(last)?;
            deps.iter()
                .all(|d| d == last || l.stack.contains(d))
                .then_some((*last, l))
        });
        let (lane, stack, depth, expected) = match (deps.is_empty(), below) {
            (true, _) => {
                lane_sizes.push(0);
                (lane_sizes.len() - 1, Vec::new(), 1, Some(Onto::Base))
            }
            (false, Some((last, l))) => {
                let stack = [l.stack.clone(), vec![last]].concat();
                (l.lane, stack, l.depth + 1, l.usable.clone())
            }
            (false, None) => {
                let mut lanes: Vec<usize> = deps
                    .iter()
                    .filter_map(|d| laid.get(d).map(|l| l.lane + 1))
                    .collect();
                lanes.sort_unstable();
                lanes.dedup();
                plan.places.push(Place {
                    task,
                    lane: None,
                    waits_for: lanes,
                });
                continue;
            }
        };
        lane_sizes[lane] += 1;
        plan.places.push(Place {
            task,
            lane: Some((lane + 1, lane_sizes[lane])),
            waits_for: Vec::new(),
        });
        let mut entry = Laid {
            lane,
            usable: None,
            stack,
            depth,
        };
        let Some(expected) = expected else {
            // What it is built on has no commit yet: it waits.
            laid.insert(task, entry);
            continue;
        };
        // The window bounds each pipeline's depth (speculation); the slots bound them
        // all, handed out below.
        let in_window = depth <= s.window.max(1);
        // A verified candidate waiting for the ones below it, or a failed one waiting
        // to be judged, holds no verify slot.
        let resting = c.is_some_and(|c| {
            matches!(c.step, Step::Verified | Step::Failed) && judge.holds(c, &expected)
        });
        if !resting {
            wanting.push((depth, wanting.len(), task));
        }
        // A new build onto the candidate below holds what that one holds: lanes must
        // not let it miss a landing this task depends on (the one below is carried
        // past such a landing once verified; this one waits for that).
        let buildable = match &expected {
            Onto::Candidate { task: below, .. } if s.lanes.is_some() => candidate(*below)
                .is_some_and(|b| {
                    let stack = [b.stack.clone(), vec![b.task]].concat();
                    judge.unaffected(task, &b.lineage, &stack)
                }),
            _ => true,
        };
        let may = May {
            go: free && !s.paused,
            free,
            grow: in_window && buildable,
            step: in_window,
        };
        if let Some(action) = judge.act(task, c, &expected, may) {
            let lands = matches!(action, Action::Land { .. } | Action::Carry { .. });
            if !lands || !land_planned {
                // One landing at a time, in queue order: each moves the base the
                // next one is carried onto.
                land_planned |= lands;
                plan.actions.push(action);
            }
        }
        // Usable by what depends on it: a valid candidate with a commit, not failed.
        entry.usable = c
            .filter(|c| c.step != Step::Failed && judge.holds(c, &expected))
            .and_then(|c| c.head.clone())
            .map(|head| Onto::Candidate { task, head });
        laid.insert(task, entry);
    }
    // The slots go to the shallowest entries first, in queue order among equals: what
    // sits directly on the base always counts, while a speculative build is wasted if
    // one below it fails. With lanes off, that is simply queue order.
    wanting.sort_unstable();
    let admitted: BTreeSet<TaskId> = wanting
        .iter()
        .take(s.slots.max(1))
        .map(|&(_, _, t)| t)
        .collect();
    plan.actions.retain(|a| match a {
        Action::Start { task, .. }
        | Action::Rebuild { task, .. }
        | Action::Build { task }
        | Action::Verify { task } => admitted.contains(task),
        _ => true,
    });
    plan
}

/// What an entry may do now.
#[derive(Clone, Copy)]
struct May {
    /// Act at all: not busy, the queue not paused.
    go: bool,
    /// Not busy (a busy one may still be cut short).
    free: bool,
    /// Get a new build: inside the window, and what it would be built on holds all it
    /// depends on.
    grow: bool,
    /// Take its next step (build, verify, land): inside the window.
    step: bool,
}

/// The planner's judgement of candidates against the snapshot: what landed since each
/// base commit, and which tasks are independent.
struct Judge<'a> {
    s: &'a Snapshot<'a>,
    since: BTreeMap<&'a str, Vec<TaskId>>,
}

impl Judge<'_> {
    fn independent(&self, a: TaskId, b: TaskId) -> bool {
        self.s.lanes.is_some_and(|lanes| lanes.independent(a, b))
    }

    /// What to do for one entry built (or to be built) onto `expected`, if anything.
    fn act(
        &self,
        task: TaskId,
        c: Option<&Candidate>,
        expected: &Onto,
        may: May,
    ) -> Option<Action> {
        let Some(c) = c else {
            return (may.go && may.grow).then(|| Action::Start {
                task,
                onto: expected.clone(),
            });
        };
        if !self.holds(c, expected) {
            if !may.free {
                // Whatever it is doing (a verify, most likely) is wasted: stop it, so
                // that it can be built again sooner and its slot goes to live work.
                return Some(Action::Abandon { task });
            }
            return (may.go && may.grow).then(|| Action::Rebuild {
                task,
                onto: expected.clone(),
            });
        }
        let bottom = *expected == Onto::Base;
        let step = may.go && may.step;
        match (c.step, &c.head) {
            // On a base holding all it depends on, the failure is its own; until then
            // the one below may be the cause.
            (Step::Failed, _) => (may.go && bottom).then_some(Action::Return { task }),
            (_, None) => step.then_some(Action::Build { task }),
            (Step::Rebased, _) => step.then_some(Action::Verify { task }),
            (Step::Verified, _) if step && bottom => Some(if c.onto == self.s.base {
                Action::Land { task }
            } else {
                Action::Carry { task }
            }),
            _ => None,
        }
    }

    /// Whether a candidate's verdict still holds, were it built onto `expected` now.
    ///
    /// Onto the candidate below it: it must be built on that one's commit. Onto the
    /// base: everything it was built on must have landed, and the base must be exactly
    /// what it was built onto, or (lanes) have moved since only by changes independent
    /// of it.
    fn holds(&self, c: &Candidate, expected: &Onto) -> bool {
        let s = self.s;
        let unaffected = || self.unaffected(c.task, &c.lineage, &c.stack);
        match expected {
            Onto::Candidate { task, head } => {
                let below = s.candidates.iter().find(|b| b.task == *task);
                let on_it = c.onto == *head
                    || below.is_some_and(|b| b.built.as_deref() == Some(c.onto.as_str()));
                on_it && (s.lanes.is_none() || unaffected())
            }
            Onto::Base => {
                let landed = self.since.get(c.lineage.as_str());
                let stack_landed = c
                    .stack
                    .iter()
                    .all(|t| landed.is_some_and(|l| l.contains(t)));
                c.onto == s.base || (s.lanes.is_some() && stack_landed && unaffected())
            }
        }
    }

    /// Whether content holding the base commit `lineage` and the changes of `stack`
    /// lacks nothing that `task` depends on among what landed since: each landing after
    /// `lineage` is in `stack` or independent of `task`. A lineage the recent moves do
    /// not reach (older, or a base a person accepted) is not known to hold anything.
    fn unaffected(&self, task: TaskId, lineage: &str, stack: &[TaskId]) -> bool {
        self.since.get(lineage).is_some_and(|landed| {
            landed
                .iter()
                .all(|&t| stack.contains(&t) || self.independent(t, task))
        })
    }
}

/// For each base commit the lander's recent moves passed through: the tasks that landed
/// after it, up to `base`.
fn landed_since<'a>(base: &'a str, landed: &'a [Landed]) -> BTreeMap<&'a str, Vec<TaskId>> {
    let mut since = BTreeMap::from([(base, Vec::new())]);
    let mut tip = base;
    let mut after = Vec::new();
    for l in landed.iter().rev() {
        if l.to != tip {
            break;
        }
        after.push(l.task);
        tip = &l.from;
        since.insert(tip, after.clone());
    }
    since
}

/// The queue's order, the one every view shows (`switchyard queue`, the PR card): tasks
/// by `queue::plan`, with the candidates in flight first, each after the ones it is
/// built on.
pub fn order(tasks: &[Task], candidates: &[Candidate]) -> Vec<TaskId> {
    let order = super::plan(tasks);
    in_flight_first(&order, candidates)
}

/// The queue's order, except that the candidates in flight come first, each after the
/// candidates it is built on: a task that arrives later with a higher priority takes
/// the next free place instead of making a pipeline stale.
fn in_flight_first(order: &[TaskId], candidates: &[Candidate]) -> Vec<TaskId> {
    fn visit(t: TaskId, order: &[TaskId], candidates: &[Candidate], out: &mut Vec<TaskId>) {
        if out.contains(&t) || !order.contains(&t) {
            return;
        }
        let Some(c) = candidates.iter().find(|c| c.task == t) else {
            return;
        };
        for &below in &c.stack {
            visit(below, order, candidates, out);
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    let mut ordered: Vec<TaskId> = order
        .iter()
        .copied()
        .filter(|&t| candidates.iter().any(|c| c.task == t && c.step.landed()))
        .collect();
    for &t in order {
        visit(t, order, candidates, &mut ordered);
    }
    for &t in order {
        if !ordered.contains(&t) {
            ordered.push(t);
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: i64) -> TaskId {
        TaskId(n)
    }

    fn c(task: i64, step: Step, onto: &str, head: Option<&str>) -> Candidate {
        Candidate {
            task: t(task),
            step,
            onto: onto.into(),
            head: head.map(str::to_owned),
            built: head.map(str::to_owned),
            lineage: onto.into(),
            stack: Vec::new(),
        }
    }

    /// Each candidate's lineage and stack, from what it is built onto: the candidate
    /// whose head that is, or a base commit.
    fn chained(mut cs: Vec<Candidate>) -> Vec<Candidate> {
        for _ in 0..cs.len() {
            let before = cs.clone();
            for c in &mut cs {
                if let Some(b) = before.iter().find(|b| b.head.as_deref() == Some(&c.onto)) {
                    c.lineage = b.lineage.clone();
                    c.stack = [b.stack.clone(), vec![b.task]].concat();
                }
            }
        }
        cs
    }

    fn after(task: i64, head: &str) -> Onto {
        Onto::Candidate {
            task: t(task),
            head: head.into(),
        }
    }

    struct Case {
        rule: &'static str,
        order: &'static [i64],
        candidates: Vec<Candidate>,
        busy: &'static [i64],
        window: usize,
        paused: bool,
        want: Vec<Action>,
    }

    fn case(rule: &'static str, order: &'static [i64], candidates: Vec<Candidate>) -> Case {
        Case {
            rule,
            order,
            candidates,
            busy: &[],
            window: 1,
            paused: false,
            want: vec![],
        }
    }

    impl Case {
        fn parallel(mut self, n: usize) -> Case {
            self.window = n;
            self
        }
        fn busy(mut self, busy: &'static [i64]) -> Case {
            self.busy = busy;
            self
        }
        fn paused(mut self) -> Case {
            self.paused = true;
            self
        }
        fn want(mut self, want: Vec<Action>) -> Case {
            self.want = want;
            self
        }
    }

    #[test]
    fn the_window_follows_the_observed_failure_rate() {
        use Outcome::*;
        // (outcome, window after it), with max_parallel 4, from a clean start.
        let steps = [
            (Failed, 4),
            (Failed, 2),
            (Landed, 3),
            (Landed, 3),
            (Landed, 4),
            (Failed, 2),
            (Failed, 2),
            (Failed, 1),
            (Landed, 2),
        ];
        let mut rate = 0.0;
        assert_eq!(window(rate, 4), 4, "nothing failed yet: all the way");
        for (i, (outcome, want)) in steps.into_iter().enumerate() {
            rate = adapt(rate, outcome);
            assert_eq!(
                window(rate, 4),
                want,
                "after step {i} ({outcome:?}), rate {rate:.3}"
            );
        }
        // A long run of landings after a failure keeps the window open.
        for _ in 0..400 {
            rate = adapt(rate, Landed);
        }
        assert_eq!(window(rate, 4), 4, "rate {rate:e}");
        assert_eq!(window(0.2, 1), 1);
        assert_eq!(window(0.0, 8), 8);
        assert_eq!(window(1.0, 8), 1);
    }

    /// Lanes over subsystems with no `depends_on`: `touch` gives each task's subsystems
    /// (an empty list: everything).
    fn lanes(touch: &[(i64, &[&str])]) -> Lanes {
        use super::super::lanes::{Graph, Reach};
        use crate::model::SubsystemName;
        let reach = touch.iter().map(|&(id, subs)| {
            let r = match subs {
                [] => Reach::Everything,
                _ => Reach::Subsystems(
                    subs.iter()
                        .map(|s| SubsystemName::new(s).unwrap())
                        .collect(),
                ),
            };
            (t(id), r)
        });
        Lanes::new(&Graph::default(), reach)
    }

    fn moved(task: i64, from: &str, to: &str) -> Landed {
        Landed {
            task: t(task),
            from: from.into(),
            to: to.into(),
        }
    }

    struct LaneCase {
        rule: &'static str,
        order: &'static [i64],
        candidates: Vec<Candidate>,
        landed: Vec<Landed>,
        want: Vec<Action>,
        window: usize,
        slots: usize,
    }

    #[test]
    fn the_rules_of_lanes() {
        use Action::*;
        use Step::*;
        // Subsystems: 1, 3, 5 touch a; 2 and 6 touch b; 4 touches a and b; 7 everything.
        let lanes = lanes(&[
            (1, &["a"]),
            (2, &["b"]),
            (3, &["a"]),
            (4, &["a", "b"]),
            (5, &["a"]),
            (6, &["b"]),
            (7, &[]),
        ]);
        let k = |rule, order, candidates, landed, want| LaneCase {
            rule,
            order,
            candidates,
            landed,
            want,
            window: 4,
            slots: 4,
        };
        let carried_below = Candidate {
            lineage: "B0".into(),
            stack: vec![t(1)],
            ..c(3, Verified, "h1", Some("h3"))
        };
        let cases = [
            k(
                "independent tasks each start a lane onto the base",
                &[1, 2],
                vec![],
                vec![],
                vec![
                    Start {
                        task: t(1),
                        onto: Onto::Base,
                    },
                    Start {
                        task: t(2),
                        onto: Onto::Base,
                    },
                ],
            ),
            k(
                "a task joins the lane of what it depends on, onto its last entry",
                &[1, 2, 3],
                vec![c(1, Rebased, "B", Some("h1"))],
                vec![],
                vec![
                    Verify { task: t(1) },
                    Start {
                        task: t(2),
                        onto: Onto::Base,
                    },
                    Start {
                        task: t(3),
                        onto: after(1, "h1"),
                    },
                ],
            ),
            k(
                "built onto the last of what it depends on, not onto what it does not",
                &[4, 3, 6],
                vec![c(4, Rebased, "B", Some("h4"))],
                vec![],
                vec![
                    Verify { task: t(4) },
                    Start {
                        task: t(3),
                        onto: after(4, "h4"),
                    },
                    Start {
                        task: t(6),
                        onto: after(4, "h4"),
                    },
                ],
            ),
            k(
                "a task depending on two lanes waits for them; so does what depends on it",
                &[1, 2, 4, 5],
                vec![],
                vec![],
                vec![
                    Start {
                        task: t(1),
                        onto: Onto::Base,
                    },
                    Start {
                        task: t(2),
                        onto: Onto::Base,
                    },
                ],
            ),
            k(
                "a change touching everything waits for every lane, and everything waits for it",
                &[1, 2, 7, 6],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Rebased, "B", Some("h2")),
                ],
                vec![],
                vec![Verify { task: t(1) }, Verify { task: t(2) }],
            ),
            k(
                "an independent landing does not make a candidate stale: it is not verified again",
                &[1],
                vec![c(1, Rebased, "B0", Some("h1"))],
                vec![moved(2, "B0", "B")],
                vec![Verify { task: t(1) }],
            ),
            k(
                "once verified, it is carried onto the base past the independent landing",
                &[1],
                vec![c(1, Verified, "B0", Some("h1"))],
                vec![moved(2, "B0", "B")],
                vec![Carry { task: t(1) }],
            ),
            k(
                "a landing it depends on (same subsystem) makes it stale: built again",
                &[3],
                vec![c(3, Verified, "B0", Some("h3"))],
                vec![moved(1, "B0", "B")],
                vec![Rebuild {
                    task: t(3),
                    onto: Onto::Base,
                }],
            ),
            k(
                "a base moved other than by the lander's recorded moves: built again",
                &[1],
                vec![c(1, Rebased, "B0", Some("h1"))],
                vec![moved(2, "Bx", "B")],
                vec![Rebuild {
                    task: t(1),
                    onto: Onto::Base,
                }],
            ),
            k(
                "built on a candidate that landed since (carried), it is carried in turn",
                &[3],
                vec![carried_below],
                vec![moved(1, "B0", "B1"), moved(2, "B1", "B")],
                vec![Carry { task: t(3) }],
            ),
            k(
                "not built onto a candidate lacking a landing it depends on: that one is carried first",
                &[2, 4],
                vec![c(2, Verified, "B0", Some("h2"))],
                vec![moved(1, "B0", "B")],
                vec![Carry { task: t(2) }],
            ),
            k(
                "once it is carried, the next is built onto it",
                &[2, 4],
                vec![c(2, Verified, "B", Some("h2b"))],
                vec![moved(1, "B0", "B")],
                vec![
                    Land { task: t(2) },
                    Start {
                        task: t(4),
                        onto: after(2, "h2b"),
                    },
                ],
            ),
            LaneCase {
                window: 1,
                ..k(
                    "a narrowed window bounds each lane's speculation, not the lanes",
                    &[1, 3, 2],
                    vec![c(1, Rebased, "B", Some("h1"))],
                    vec![],
                    vec![
                        Verify { task: t(1) },
                        Start {
                            task: t(2),
                            onto: Onto::Base,
                        },
                    ],
                )
            },
            LaneCase {
                slots: 3,
                ..k(
                    "slots go to what sits on the base before speculation",
                    &[1, 3, 5, 2, 6, 7],
                    vec![
                        c(1, Rebased, "B", Some("h1")),
                        c(3, Rebased, "h1", Some("h3")),
                        c(5, Rebased, "h3", Some("h5")),
                    ],
                    vec![],
                    vec![
                        Verify { task: t(1) },
                        Verify { task: t(3) },
                        Start {
                            task: t(2),
                            onto: Onto::Base,
                        },
                    ],
                )
            },
            k(
                "one landing at a time across lanes, in queue order",
                &[1, 2],
                vec![
                    c(1, Verified, "B", Some("h1")),
                    c(2, Verified, "B", Some("h2")),
                ],
                vec![],
                vec![Land { task: t(1) }],
            ),
            k(
                "a failure first in its lane goes back while another lane verifies",
                &[1, 2],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Failed, "B", Some("h2")),
                ],
                vec![],
                vec![Verify { task: t(1) }, Return { task: t(2) }],
            ),
        ];
        for k in cases {
            let order: Vec<TaskId> = k.order.iter().map(|&n| t(n)).collect();
            let busy = BTreeSet::new();
            let candidates = chained(k.candidates);
            let got = next(&Snapshot {
                order: &order,
                candidates: &candidates,
                base: "B",
                busy: &busy,
                window: k.window,
                slots: k.slots,
                paused: false,
                lanes: Some(&lanes),
                landed: &k.landed,
            });
            assert_eq!(got.actions, k.want, "{}", k.rule);
        }
    }

    #[test]
    fn every_entry_has_a_lane_and_a_position_or_says_which_lanes_it_waits_for() {
        let lanes = lanes(&[
            (1, &["a"]),
            (2, &["b"]),
            (3, &["a"]),
            (4, &["a", "b"]),
            (7, &[]),
        ]);
        let order = [t(1), t(2), t(3), t(4), t(7)];
        let busy = BTreeSet::new();
        let plan = next(&Snapshot {
            order: &order,
            candidates: &[],
            base: "B",
            busy: &busy,
            window: 4,
            slots: 4,
            paused: false,
            lanes: Some(&lanes),
            landed: &[],
        });
        type Row = (i64, Option<(usize, usize)>, Vec<usize>);
        let places: Vec<Row> = plan
            .places
            .iter()
            .map(|p| (p.task.0, p.lane, p.waits_for.clone()))
            .collect();
        assert_eq!(
            places,
            vec![
                (1, Some((1, 1)), vec![]),
                (2, Some((2, 1)), vec![]),
                (3, Some((1, 2)), vec![]),
                (4, None, vec![1, 2]),
                (7, None, vec![1, 2]),
            ]
        );
    }

    #[test]
    fn the_queues_rules() {
        use Action::*;
        use Step::*;
        let cases = [
            case("an empty queue does nothing", &[], vec![]),
            case(
                "the head of the queue starts onto the base",
                &[1, 2],
                vec![],
            )
            .want(vec![Start {
                task: t(1),
                onto: Onto::Base,
            }]),
            case(
                "one at a time by default: the second waits for the first to land",
                &[1, 2],
                vec![c(1, Rebased, "B", Some("h1"))],
            )
            .want(vec![Verify { task: t(1) }]),
            case(
                "with room for more, the next is built onto the candidate ahead",
                &[1, 2, 3],
                vec![c(1, Rebased, "B", Some("h1"))],
            )
            .parallel(3)
            .want(vec![
                Verify { task: t(1) },
                Start {
                    task: t(2),
                    onto: after(1, "h1"),
                },
            ]),
            case(
                "a candidate still being built holds back the ones behind it",
                &[1, 2],
                vec![c(1, Started, "B", None)],
            )
            .parallel(4)
            .want(vec![Build { task: t(1) }]),
            case(
                "several verify at once, each on the one ahead",
                &[1, 2, 3],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Rebased, "h1", Some("h2")),
                    c(3, Rebased, "h2", Some("h3")),
                ],
            )
            .parallel(3)
            .want(vec![
                Verify { task: t(1) },
                Verify { task: t(2) },
                Verify { task: t(3) },
            ]),
            case(
                "only the first lands; the verified one behind it waits",
                &[1, 2],
                vec![
                    c(1, Verified, "B", Some("h1")),
                    c(2, Verified, "h1", Some("h2")),
                ],
            )
            .parallel(2)
            .want(vec![Land { task: t(1) }]),
            case(
                "once the first landed, the next lands on exactly the base it was verified on",
                &[2],
                vec![c(2, Verified, "B", Some("h2"))],
            )
            .want(vec![Land { task: t(2) }]),
            case(
                "a landing being finished lets the one behind it go on, but not land",
                &[1, 2],
                vec![
                    c(1, BaseMoved, "B0", Some("B")),
                    c(2, Verified, "B", Some("h2")),
                ],
            )
            .parallel(2)
            .want(vec![Finish { task: t(1) }]),
            case(
                "the candidate ahead failed: the next is built again onto the base",
                &[2, 3],
                vec![
                    c(2, Verified, "h1", Some("h2")),
                    c(3, Rebased, "h2", Some("h3")),
                ],
            )
            .parallel(2)
            .want(vec![Rebuild {
                task: t(2),
                onto: Onto::Base,
            }]),
            case(
                "a candidate ahead that was built again makes the next stale",
                &[1, 2],
                vec![
                    c(1, Rebased, "B", Some("h1b")),
                    c(2, Rebased, "h1", Some("h2")),
                ],
            )
            .parallel(2)
            .want(vec![
                Verify { task: t(1) },
                Rebuild {
                    task: t(2),
                    onto: after(1, "h1b"),
                },
            ]),
            case(
                "the base moved under a verified candidate: built again, never landed",
                &[1],
                vec![c(1, Verified, "B0", Some("h1"))],
            )
            .want(vec![Rebuild {
                task: t(1),
                onto: Onto::Base,
            }]),
            case(
                "a busy task gets nothing new; the ones behind it still do",
                &[1, 2],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Rebased, "h1", Some("h2")),
                ],
            )
            .parallel(2)
            .busy(&[1])
            .want(vec![Verify { task: t(2) }]),
            case(
                "a busy candidate made stale by a failure below it is abandoned",
                &[2, 3],
                vec![
                    c(2, Failed, "B", Some("h2")),
                    c(3, Rebased, "h2x", Some("h3")),
                ],
            )
            .parallel(2)
            .busy(&[3])
            .want(vec![Return { task: t(2) }]),
            case(
                "a busy candidate whose base went is abandoned, then built again",
                &[3],
                vec![c(3, Rebased, "h2", Some("h3"))],
            )
            .parallel(2)
            .busy(&[3])
            .want(vec![Abandon { task: t(3) }]),
            case(
                "a busy head being started holds everything back",
                &[1, 2],
                vec![],
            )
            .parallel(2)
            .busy(&[1]),
            case(
                "paused: nothing starts, builds, verifies or lands",
                &[1, 2],
                vec![
                    c(1, Verified, "B", Some("h1")),
                    c(2, Rebased, "h1", Some("h2")),
                ],
            )
            .parallel(2)
            .paused(),
            case(
                "paused: a landing that happened is still finished",
                &[1],
                vec![c(1, BranchUpdated, "B0", Some("B"))],
            )
            .paused()
            .want(vec![Finish { task: t(1) }]),
            case(
                "the pipeline keeps its order when a task with a higher priority arrives",
                &[3, 2, 1],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Rebased, "h1", Some("h2")),
                ],
            )
            .parallel(3)
            .want(vec![
                Verify { task: t(1) },
                Verify { task: t(2) },
                Start {
                    task: t(3),
                    onto: after(2, "h2"),
                },
            ]),
            case(
                "a failure on top of another candidate waits: the one below may be the cause",
                &[1, 2, 3],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Failed, "h1", Some("h2")),
                    c(3, Rebased, "h2", Some("h3")),
                ],
            )
            .parallel(3)
            .want(vec![Verify { task: t(1) }]),
            case(
                "a failure first in line goes back with its evidence",
                &[2, 3],
                vec![
                    c(2, Failed, "B", Some("h2")),
                    c(3, Rebased, "h2", Some("h3")),
                ],
            )
            .parallel(2)
            .want(vec![Return { task: t(2) }]),
            case(
                "a conflict (no commit built) on top of another candidate waits too",
                &[1, 2],
                vec![c(1, Verified, "B", Some("h1")), c(2, Failed, "h1", None)],
            )
            .parallel(2)
            .want(vec![Land { task: t(1) }]),
            case(
                "a failure on top of a candidate that failed too is built again",
                &[2],
                vec![c(2, Failed, "h1", Some("h2"))],
            )
            .parallel(2)
            .want(vec![Rebuild {
                task: t(2),
                onto: Onto::Base,
            }]),
            case(
                "a window narrowed by a failure leaves candidates beyond it waiting",
                &[1, 2],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Verified, "h1", Some("h2")),
                ],
            )
            .want(vec![Verify { task: t(1) }]),
            case(
                "the window is max_parallel entries wide",
                &[1, 2, 3],
                vec![
                    c(1, Rebased, "B", Some("h1")),
                    c(2, Rebased, "h1", Some("h2")),
                ],
            )
            .parallel(2)
            .want(vec![Verify { task: t(1) }, Verify { task: t(2) }]),
        ];
        for k in cases {
            let order: Vec<TaskId> = k.order.iter().map(|&n| t(n)).collect();
            let busy: BTreeSet<TaskId> = k.busy.iter().map(|&n| t(n)).collect();
            let candidates = chained(k.candidates);
            let got = next(&Snapshot {
                order: &order,
                candidates: &candidates,
                base: "B",
                busy: &busy,
                window: k.window,
                slots: k.window,
                paused: k.paused,
                lanes: None,
                landed: &[],
            });
            assert_eq!(got.actions, k.want, "{}", k.rule);
        }
    }
}

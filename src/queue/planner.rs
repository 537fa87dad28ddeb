//! What the queue does next, as one pure function of a snapshot: the queue in order, the
//! candidates in flight with their steps, the base tip the lander expects, what the
//! executor is busy with, and how many candidates may be in flight. No I/O: the daemon's
//! engine reads the snapshot from the ledger, carries the actions out, records each
//! outcome, and asks again.
//!
//! The rules, in the words of the tests below:
//! - The first `max_parallel` entries of the queue each get a candidate: the first one
//!   built onto the base, every later one onto the candidate ahead of it (a dependent
//!   pipeline), so each is verified on exactly the parent it lands on.
//! - A candidate built onto something that is no longer the base or the candidate ahead
//!   (that one failed, landed elsewhere, or the base moved) is stale: built again onto
//!   what is there now.
//! - Only the first candidate lands, once verified, and only onto exactly the base it was
//!   verified on; the next one lands after it.
//! - A task the executor is busy with gets no new action until that one is done.

use std::collections::BTreeSet;

use crate::model::{Step, Task, TaskId};

/// A candidate in flight: a task's integration as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub task: TaskId,
    pub step: Step,
    /// The commit it is built onto: the base tip, or the head of the candidate ahead.
    pub onto: String,
    /// The commit built, once there is one.
    pub head: Option<String>,
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
    /// How many candidates may be in flight: the adapted window (`adapt`), at most
    /// `[queue] max_parallel`.
    pub window: usize,
    /// A person must look at the base first: nothing starts, builds, verifies or lands.
    pub paused: bool,
}

/// What a candidate is built onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Onto {
    /// The base's tip, as the executor finds it (fetched, with a remote).
    Base,
    /// The commit of the candidate ahead in the queue.
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
    /// The base already moved to the candidate (before a restart): finish the landing.
    Finish { task: TaskId },
    /// The candidate is stale: start it again onto what is there now.
    Rebuild { task: TaskId, onto: Onto },
    /// The candidate failed on exactly the base: the task goes back to its executor
    /// with the evidence.
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
            Action::Land { .. } => step == Some(Step::Verified),
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

/// The speculation window after `outcome`: one wider after a landing, half as wide after
/// a failure, always between 1 and `max_parallel`. A failing streak thus stops burning
/// verify runs on candidates built on failures, and a passing run fills the slots again.
pub fn adapt(window: usize, outcome: Outcome, max_parallel: usize) -> usize {
    let max = max_parallel.max(1);
    match outcome {
        Outcome::Landed => window.saturating_add(1),
        Outcome::Failed => window / 2,
    }
    .clamp(1, max)
}

/// The next actions, in queue order; at most one per task, and for a busy task only
/// `Abandon`.
pub fn next(s: &Snapshot<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let candidate = |id: TaskId| s.candidates.iter().find(|c| c.task == id);
    // What the next entry must be built onto: the base, then each candidate's head.
    let mut expected = Onto::Base;
    let mut first = true;
    let order = in_flight_first(s.order, s.candidates, s.base);
    for task in order.into_iter().take(s.window.max(1)) {
        let free = !s.busy.contains(&task);
        let Some(c) = candidate(task) else {
            if free && !s.paused {
                actions.push(Action::Start {
                    task,
                    onto: expected,
                });
            }
            // What follows waits for this one's commit.
            break;
        };
        if c.step.landed() {
            // Landed: only the bookkeeping is left, whatever else happens.
            if free {
                actions.push(Action::Finish { task });
            }
            expected = Onto::Candidate {
                task,
                head: c.head.clone().unwrap_or_default(),
            };
            first = false;
            continue;
        }
        let built_onto = match &expected {
            Onto::Base => s.base,
            Onto::Candidate { head, .. } => head.as_str(),
        };
        if c.onto != built_onto {
            if !free {
                // Whatever it is doing (a verify, most likely) is wasted: stop it, so
                // that it can be built again sooner and its slot goes to live work.
                actions.push(Action::Abandon { task });
            } else if !s.paused {
                actions.push(Action::Rebuild {
                    task,
                    onto: expected,
                });
            }
            break;
        }
        if c.step == Step::Failed {
            // First in line, the failure is its own; until then the one below it may be
            // the cause. Nothing behind it is worth verifying meanwhile.
            if free && !s.paused && first {
                actions.push(Action::Return { task });
            }
            break;
        }
        let Some(head) = c.head.clone() else {
            if free && !s.paused {
                actions.push(Action::Build { task });
            }
            break;
        };
        match c.step {
            Step::Rebased if free && !s.paused => actions.push(Action::Verify { task }),
            Step::Verified if free && !s.paused && first => actions.push(Action::Land { task }),
            _ => {}
        }
        expected = Onto::Candidate { task, head };
        first = false;
    }
    actions
}

/// The queue's order, the one every view shows (`switchyard queue`, the PR card): tasks
/// by `queue::plan`, with the candidates in flight first, in the order of their pipeline.
pub fn order(tasks: &[Task], candidates: &[Candidate], base: &str) -> Vec<TaskId> {
    let order = super::plan(tasks);
    in_flight_first(&order, candidates, base)
}

/// The queue's order, except that the candidates in flight keep the order of their
/// pipeline: landed ones first, then the chain built from the base, each on the one
/// before. A task that arrives later with a higher priority takes the next free place
/// instead of making the whole pipeline stale.
fn in_flight_first(order: &[TaskId], candidates: &[Candidate], base: &str) -> Vec<TaskId> {
    let queued = |c: &&Candidate| order.contains(&c.task);
    let mut ordered: Vec<TaskId> = order
        .iter()
        .copied()
        .filter(|&t| candidates.iter().any(|c| c.task == t && c.step.landed()))
        .collect();
    let mut at = base.to_owned();
    while let Some(c) = candidates
        .iter()
        .filter(queued)
        .find(|c| c.onto == at && !c.step.landed() && !ordered.contains(&c.task))
    {
        ordered.push(c.task);
        match &c.head {
            Some(head) => at = head.clone(),
            None => break,
        }
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
        }
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
    fn the_window_grows_by_one_after_a_landing_and_halves_after_a_failure() {
        use Outcome::*;
        let steps = [
            (4, Failed, 4, 2),
            (2, Failed, 4, 1),
            (1, Failed, 4, 1),
            (1, Landed, 4, 2),
            (3, Landed, 4, 4),
            (4, Landed, 4, 4),
            (7, Landed, 3, 3),
            (1, Landed, 1, 1),
        ];
        for (window, outcome, max, want) in steps {
            assert_eq!(
                adapt(window, outcome, max),
                want,
                "{window} after {outcome:?}, at most {max}"
            );
        }
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
            let got = next(&Snapshot {
                order: &order,
                candidates: &k.candidates,
                base: "B",
                busy: &busy,
                window: k.window,
                paused: k.paused,
            });
            assert_eq!(got, k.want, "{}", k.rule);
        }
    }
}

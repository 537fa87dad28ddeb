//! `GET /metrics` (on the dashboard's listener): the queue's numbers in Prometheus text
//! format, through the `prometheus-client` crate.
//!
//! Two kinds of numbers. **Counters and histograms** (landings, returns by reason,
//! flakes by command, verify durations, queue waits) are what the ledger's history says:
//! at start the daemon folds every event on record into them ([`History::fold`], pure),
//! then every event it commits, from the broadcast (`Service::subscribe`). So they
//! survive restarts and agree with `switchyard log`; a scrape never rereads the
//! history. **Gauges** (tasks by state, queue depth and verifies in flight per lane,
//! slots held per subsystem and its cap, the pause) are read from the ledger at each
//! scrape, on a read-only connection. GitHub's call counts are the exception: they live
//! in the GitHub client's memory ([`crate::github::client::Usage`]) and start from zero
//! at each start.
//!
//! The same history gives the dashboard its expected verify time: the median of the
//! recent passing runs of the same commands.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::service::{Committed, Result, Service};
use crate::api::{self, Stage};
use crate::github::client::{Failure, Usage};
use crate::model::evidence::{Evidence, Verification, VerifyFailure};
use crate::model::{Event, EventKind, TaskId, TaskState, Timestamp};

/// The text format's media type, for the reply's `Content-Type`.
pub(super) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// How many of the newest passing runs of a set of commands the expected time is the
/// median of: recent enough to follow a test suite that grew, enough to shrug off one
/// slow run.
const RECENT_RUNS: usize = 20;

/// Verify durations from a quick check to a long CI run.
const VERIFY_BUCKETS: [f64; 14] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// Queue waits from "next in line" to a day behind a paused queue.
const WAIT_BUCKETS: [f64; 14] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];

/// Something the history says happened, that a counter or histogram counts.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Seen {
    /// A task landed (`merged`).
    Landing,
    /// A task went back to its executor (or, at the attempt limit, to a person): the
    /// kind of the event that sent it.
    Return(EventKind),
    /// A verify command failed, then passed on the same candidate.
    Flake(String),
    /// A verify of a candidate ended.
    Verify { passed: bool, seconds: f64 },
    /// A task waited this long in the queue before its integration started.
    QueueWait(f64),
}

/// What the history needs remembered between events: when each task entered the
/// queue and was last built, which candidate's verify was counted last, and the recent
/// passing verify durations per set of commands.
#[derive(Debug, Default)]
pub(super) struct History {
    queued_since: HashMap<TaskId, Timestamp>,
    built_at: HashMap<TaskId, Timestamp>,
    /// The candidate commit whose verify was last counted, per task: a `verify_failed`
    /// that repeats an earlier `candidate_failed` (the task going back with that
    /// failure once first in line) is the same run, not a second one.
    counted: HashMap<TaskId, String>,
    runs: HashMap<Vec<String>, VecDeque<u64>>,
}

/// The expected length of a verify: the median of `runs` recent passing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expected {
    pub median_ms: u64,
    pub runs: usize,
}

impl History {
    /// Folds one event into the history; returns what it counts.
    pub fn fold(&mut self, e: &Event) -> Vec<Seen> {
        let mut seen = Vec::new();
        match &e.what {
            Evidence::Merged(_) => seen.push(Seen::Landing),
            Evidence::Flaked(f) => seen.push(Seen::Flake(f.command.clone())),
            Evidence::Rebased(_) => {
                self.built_at.insert(e.task, e.at);
            }
            Evidence::IntegrationStarted(_) => {
                if let Some(since) = self.queued_since.remove(&e.task) {
                    seen.push(Seen::QueueWait(seconds(e.at.0 - since.0)));
                }
            }
            Evidence::VerifyPassed(v) if self.first_count(e.task, &v.head) => {
                let (key, ms) = match &v.by {
                    Verification::Commands { commands } => (
                        commands.iter().map(|c| c.command.clone()).collect(),
                        Some(commands.iter().map(|c| c.duration_ms).sum()),
                    ),
                    Verification::Checks { checks } => {
                        let mut names: Vec<String> =
                            checks.iter().map(|c| c.name.clone()).collect();
                        names.sort();
                        (names, None)
                    }
                };
                if let Some(ms) = ms.or_else(|| self.since_built(e)) {
                    let runs = self.runs.entry(key).or_default();
                    if runs.len() == RECENT_RUNS {
                        runs.pop_front();
                    }
                    runs.push_back(ms);
                    seen.push(Seen::Verify {
                        passed: true,
                        seconds: ms as f64 / 1000.0,
                    });
                }
            }
            Evidence::VerifyFailed(v) => {
                if self.first_count(e.task, &v.head)
                    && let Some(ms) = failed_ms(&v.failure).or_else(|| self.since_built(e))
                {
                    seen.push(Seen::Verify {
                        passed: false,
                        seconds: ms as f64 / 1000.0,
                    });
                }
            }
            Evidence::CandidateFailed(c) => {
                if let Evidence::VerifyFailed(v) = c.failure.as_ref()
                    && self.first_count(e.task, &v.head)
                    && let Some(ms) = failed_ms(&v.failure).or_else(|| self.since_built(e))
                {
                    seen.push(Seen::Verify {
                        passed: false,
                        seconds: ms as f64 / 1000.0,
                    });
                }
            }
            // At the limit, the return itself is recorded without a state, right
            // before this event, which holds it as its last return.
            Evidence::AttemptLimit(a) => {
                if let Some(last) = a.returns.last() {
                    seen.push(Seen::Return(last.kind()));
                }
            }
            _ => {}
        }
        // A person's yes at the attempt limit ("another round") is recorded as
        // `returned` too, but nothing came back.
        if e.state == Some(TaskState::Returned) && e.kind() != EventKind::Approved {
            seen.push(Seen::Return(e.kind()));
        }
        match e.state {
            Some(TaskState::Queued) => {
                self.queued_since.entry(e.task).or_insert(e.at);
            }
            Some(TaskState::Verifying) | None => {}
            Some(_) => {
                self.queued_since.remove(&e.task);
            }
        }
        if e.state.is_some_and(TaskState::is_final) {
            self.built_at.remove(&e.task);
            self.counted.remove(&e.task);
        }
        seen
    }

    /// Whether the verify of `head` is counted for the first time.
    fn first_count(&mut self, task: TaskId, head: &str) -> bool {
        self.counted.insert(task, head.to_owned()).as_deref() != Some(head)
    }

    /// For a verify without command durations (GitHub's checks): the time since the
    /// candidate was built.
    fn since_built(&self, e: &Event) -> Option<u64> {
        let built = self.built_at.get(&e.task)?;
        u64::try_from(e.at.0 - built.0).ok()
    }

    /// The median of the recent passing runs of exactly these commands (for GitHub's
    /// checks: these check names), if there were any.
    pub fn expected(&self, commands: &[String]) -> Option<Expected> {
        let runs = self.runs.get(commands)?;
        let mut sorted: Vec<u64> = runs.iter().copied().collect();
        sorted.sort_unstable();
        let n = sorted.len();
        let median_ms = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        };
        Some(Expected { median_ms, runs: n })
    }
}

/// A failed verify's running time: the commands that ran, every retry included.
fn failed_ms(failure: &VerifyFailure) -> Option<u64> {
    match failure {
        VerifyFailure::Command {
            failed,
            passed,
            retried,
        } => Some(
            passed
                .iter()
                .chain(retried)
                .chain(std::iter::once(failed))
                .map(|f| f.duration_ms)
                .sum(),
        ),
        VerifyFailure::Check { .. } | VerifyFailure::TimedOut { .. } => None,
    }
}

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

type Label = [(&'static str, String); 1];

/// The history's counters and histograms, with the history they were folded from.
/// Each handle is shared (an `Arc` inside), so a scrape registers clones.
#[derive(Debug)]
struct Counts {
    history: History,
    landings: Counter,
    returns: Family<Label, Counter>,
    flakes: Family<Label, Counter>,
    verify: Family<Label, Histogram>,
    queue_wait: Histogram,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            history: History::default(),
            landings: Counter::default(),
            returns: Family::default(),
            flakes: Family::default(),
            verify: Family::new_with_constructor(|| Histogram::new(VERIFY_BUCKETS)),
            queue_wait: Histogram::new(WAIT_BUCKETS),
        }
    }

    fn fold(&mut self, e: &Event) {
        for seen in self.history.fold(e) {
            match seen {
                Seen::Landing => {
                    self.landings.inc();
                }
                Seen::Return(reason) => {
                    self.returns
                        .get_or_create(&[("reason", reason.as_str().to_owned())])
                        .inc();
                }
                Seen::Flake(command) => {
                    self.flakes.get_or_create(&[("command", command)]).inc();
                }
                Seen::Verify { passed, seconds } => {
                    let outcome = if passed { "passed" } else { "failed" };
                    self.verify
                        .get_or_create(&[("outcome", outcome.to_owned())])
                        .observe(seconds);
                }
                Seen::QueueWait(s) => self.queue_wait.observe(s),
            }
        }
    }
}

/// The daemon's metrics: the history's counts, kept current by [`Metrics::follow`],
/// and GitHub's call counts.
#[derive(Debug)]
pub(super) struct Metrics {
    counts: Mutex<Counts>,
    github: Option<Arc<Usage>>,
}

impl Metrics {
    pub fn new(github: Option<Arc<Usage>>) -> Metrics {
        Metrics {
            counts: Mutex::new(Counts::new()),
            github,
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The expected length of a verify of exactly these commands.
    pub fn expected(&self, commands: &[String]) -> Option<Expected> {
        self.counts().history.expected(commands)
    }

    /// Counts the whole history on record, and subscribes to what is committed after
    /// it. Both under the ledger's lock, which every broadcast is sent under, so no
    /// event is missed or counted twice: the one read of the history that takes the
    /// writer's lock, at start (and after falling behind). Blocks (SQLite).
    pub fn load(&self, service: &Service) -> Result<broadcast::Receiver<Committed>> {
        let (events, receiver) = service.ledger(|l| {
            let receiver = service.subscribe();
            l.events_after(crate::store::EventMarks::default())
                .map(|(events, _, _)| (events, receiver))
        })?;
        let mut counts = Counts::new();
        for e in &events {
            counts.fold(e);
        }
        // A recount is never lower than what it replaces (events are append-only), so
        // to Prometheus this is no counter reset.
        *self.counts() = counts;
        Ok(receiver)
    }

    /// Keeps the counts current from the broadcast of committed events until `stop`.
    /// Falling behind the broadcast, it counts again from the ledger.
    pub async fn follow(
        self: Arc<Self>,
        service: Arc<Service>,
        mut events: broadcast::Receiver<Committed>,
        stop: CancellationToken,
    ) {
        loop {
            let next = tokio::select! {
                next = events.recv() => next,
                () = stop.cancelled() => return,
            };
            match next {
                Ok(Committed::Task(e)) => self.counts().fold(&e),
                Ok(Committed::Queue(_)) => {}
                Err(RecvError::Closed) => return,
                Err(RecvError::Lagged(n)) => {
                    info!(
                        missed = n,
                        "the metrics fell behind the ledger; counting again"
                    );
                    let (me, s) = (Arc::clone(&self), Arc::clone(&service));
                    match tokio::task::spawn_blocking(move || me.load(&s)).await {
                        Ok(Ok(receiver)) => events = receiver,
                        Ok(Err(e)) => {
                            warn!(error = %e.message, "cannot count the ledger's history again");
                            events = events.resubscribe();
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot count the ledger's history again");
                            events = events.resubscribe();
                        }
                    }
                }
            }
        }
    }

    /// One scrape: the counters, and the gauges read now. Blocks (SQLite).
    pub fn scrape(&self, service: &Service) -> Result<String> {
        let now = Gauges::read(service)?;
        let (landings, returns, flakes, verify, queue_wait) = {
            let c = self.counts();
            (
                c.landings.clone(),
                c.returns.clone(),
                c.flakes.clone(),
                c.verify.clone(),
                c.queue_wait.clone(),
            )
        };
        let mut registry = Registry::with_prefix("switchyard");
        registry.register(
            "landings",
            "Tasks that landed on the base branch (merged), since the ledger began",
            landings,
        );
        registry.register(
            "returns",
            "Times a task came back to its executor (or, at the attempt limit, to a person), by the event that sent it",
            returns,
        );
        registry.register(
            "flakes",
            "Verify commands that failed, then passed when run again on the same candidate ([queue] retries), by command",
            flakes,
        );
        registry.register_with_unit(
            "verify_duration",
            "How long a candidate's verify took (its commands' run times; with GitHub's checks, from the build to the verdict), by outcome",
            Unit::Seconds,
            verify,
        );
        registry.register_with_unit(
            "queue_wait",
            "How long a task waited in the queue before its integration started",
            Unit::Seconds,
            queue_wait,
        );
        now.register(&mut registry);
        let calls = Counter::<u64>::default();
        let failures = Family::<Label, Counter>::default();
        // Without [github] these stay at zero, so a dashboard's queries need no
        // special case.
        calls.inc_by(self.github.as_ref().map_or(0, |u| u.calls()));
        for kind in Failure::ALL {
            failures
                .get_or_create(&[("kind", kind.as_str().to_owned())])
                .inc_by(self.github.as_ref().map_or(0, |u| u.failures(kind)));
        }
        registry.register(
            "github_api_calls",
            "HTTP requests made to GitHub's API since the daemon started (each retry counts)",
            calls,
        );
        registry.register(
            "github_api_failures",
            "GitHub API requests since the daemon started that got no 2xx or 304 answer, by kind",
            failures,
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry)
            .map_err(|e| super::ApiError::internal(format!("cannot encode the metrics: {e}")))?;
        Ok(text)
    }
}

/// The gauges, read from the ledger at one scrape.
struct Gauges {
    states: Vec<(TaskState, usize)>,
    /// Per lane (`"1"`, `"2"`, ...; `"none"` while an entry waits for several): entries
    /// waiting to be integrated or in flight, and those verifying.
    lanes: BTreeMap<String, (i64, i64)>,
    /// Per subsystem: tasks holding one of its slots, and its cap.
    slots: BTreeMap<String, (i64, Option<u32>)>,
    paused: bool,
}

impl Gauges {
    fn read(service: &Service) -> Result<Gauges> {
        let status = service.status()?;
        let queue = service.queue()?;
        let holding = service.read(|l| {
            l.tasks_in(
                &TaskState::ALL
                    .into_iter()
                    .filter(|s| s.holds_slot())
                    .collect::<Vec<_>>(),
            )
        })?;
        let states = TaskState::ALL
            .into_iter()
            .map(|s| (s, status.tasks.get(s.as_str()).copied().unwrap_or(0)))
            .collect();
        let mut lanes: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for entry in queue.iter().filter(|e| in_line(e)) {
            let lane = entry
                .lane
                .map_or_else(|| "none".to_owned(), |l| l.to_string());
            let counts = lanes.entry(lane).or_default();
            counts.0 += 1;
            if entry.stage == Stage::Verifying {
                counts.1 += 1;
            }
        }
        let mut slots: BTreeMap<String, (i64, Option<u32>)> = service
            .config
            .subsystems
            .iter()
            .map(|s| {
                (
                    s.name.as_str().to_owned(),
                    (0, s.max_parallel.map(|m| m.get())),
                )
            })
            .collect();
        for task in &holding {
            for s in &task.subsystems {
                if let Some(held) = slots.get_mut(s.as_str()) {
                    held.0 += 1;
                }
            }
        }
        Ok(Gauges {
            states,
            lanes,
            slots,
            paused: status.paused.is_some() || status.stop.is_some(),
        })
    }

    fn register(self, registry: &mut Registry) {
        let tasks = Family::<Label, Gauge>::default();
        for (state, n) in self.states {
            tasks
                .get_or_create(&[("state", state.as_str().to_owned())])
                .set(n as i64);
        }
        registry.register("tasks", "Tasks by state", tasks);
        let depth = Family::<Label, Gauge>::default();
        let verifying = Family::<Label, Gauge>::default();
        for (lane, (n, v)) in self.lanes {
            depth.get_or_create(&[("lane", lane.clone())]).set(n);
            verifying.get_or_create(&[("lane", lane)]).set(v);
        }
        registry.register(
            "queue_depth",
            "Tasks in the queue waiting to be integrated or in flight, by lane (\"none\": waiting for several lanes)",
            depth,
        );
        registry.register(
            "verifies_in_flight",
            "Candidates being verified now, by lane",
            verifying,
        );
        let held = Family::<Label, Gauge>::default();
        let caps = Family::<Label, Gauge>::default();
        for (name, (n, cap)) in self.slots {
            held.get_or_create(&[("subsystem", name.clone())]).set(n);
            if let Some(cap) = cap {
                caps.get_or_create(&[("subsystem", name)])
                    .set(i64::from(cap));
            }
        }
        registry.register(
            "claims",
            "Tasks holding one of the subsystem's slots (claimed, back with their executor, or submitted and not landed)",
            held,
        );
        registry.register(
            "claims_cap",
            "The subsystem's cap (max_parallel), for the subsystems that have one",
            caps,
        );
        let paused = Gauge::<i64>::default();
        paused.set(i64::from(self.paused));
        registry.register(
            "paused",
            "1 while the queue or the hand-outs are paused (by a person, or because the base moved outside the queue)",
            paused,
        );
    }
}

/// Whether a queue entry is in line for integration (not at a person's or reviewer's
/// checkpoint).
fn in_line(entry: &api::QueueEntry) -> bool {
    matches!(entry.state, TaskState::Queued | TaskState::Verifying)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Actor;
    use crate::model::evidence::{
        Attempt, AttemptLimit, CandidateFailed, Finished, Flaked, IntegrationStarted, Merged,
        Outcome, Rebased, Rejected, VerifyFailed, VerifyPassed,
    };

    fn at(task: i64, ms: i64, state: Option<TaskState>, what: Evidence) -> Event {
        Event {
            at: Timestamp(ms),
            task: TaskId(task),
            by: Actor::Daemon,
            state,
            what,
        }
    }

    fn run(command: &str, code: i32, ms: u64) -> Finished {
        Finished {
            command: command.into(),
            outcome: Outcome::Exited { code },
            duration_ms: ms,
            log: "/l".into(),
            tail: vec![],
        }
    }

    fn queued(task: i64, ms: i64) -> Event {
        at(
            task,
            ms,
            Some(TaskState::Queued),
            Evidence::Approved(Attempt { attempt: 1 }),
        )
    }

    fn started(task: i64, ms: i64) -> Event {
        at(
            task,
            ms,
            Some(TaskState::Verifying),
            Evidence::IntegrationStarted(IntegrationStarted {
                attempt: 1,
                onto: "base".into(),
                branch_tip: "tip".into(),
            }),
        )
    }

    fn rebased(task: i64, ms: i64, head: &str) -> Event {
        at(
            task,
            ms,
            None,
            Evidence::Rebased(Rebased {
                onto: "base".into(),
                head: head.into(),
                commits: 1,
                subsystems: vec![],
            }),
        )
    }

    fn passed(task: i64, ms: i64, head: &str, runs: &[(&str, u64)]) -> Event {
        at(
            task,
            ms,
            None,
            Evidence::VerifyPassed(VerifyPassed {
                head: head.into(),
                onto: "base".into(),
                attempt: Some(1),
                by: Verification::Commands {
                    commands: runs.iter().map(|(c, d)| run(c, 0, *d)).collect(),
                },
            }),
        )
    }

    fn verify_failed(head: &str) -> Evidence {
        Evidence::VerifyFailed(VerifyFailed {
            head: head.into(),
            onto: "base".into(),
            attempt: Some(1),
            failure: VerifyFailure::Command {
                failed: run("test", 1, 300),
                passed: vec![run("build", 0, 1_000)],
                retried: vec![run("test", 1, 200)],
            },
        })
    }

    fn fold(events: &[Event]) -> (History, Vec<Seen>) {
        let mut h = History::default();
        let seen = events.iter().flat_map(|e| h.fold(e)).collect();
        (h, seen)
    }

    #[test]
    fn landings_waits_and_verifies_are_counted_once() {
        let (h, seen) = fold(&[
            queued(1, 1_000),
            started(1, 3_500),
            rebased(1, 3_600, "c1"),
            passed(1, 9_000, "c1", &[("build", 1_000), ("test", 2_000)]),
            at(
                1,
                9_100,
                Some(TaskState::Merged),
                Evidence::Merged(Merged {
                    base: "main".into(),
                    commit: "c1".into(),
                }),
            ),
        ]);
        assert_eq!(
            seen,
            vec![
                Seen::QueueWait(2.5),
                Seen::Verify {
                    passed: true,
                    seconds: 3.0
                },
                Seen::Landing,
            ]
        );
        let key = vec!["build".to_owned(), "test".to_owned()];
        assert_eq!(
            h.expected(&key),
            Some(Expected {
                median_ms: 3_000,
                runs: 1
            })
        );
        assert_eq!(h.expected(&["other".to_owned()]), None);
    }

    #[test]
    fn a_failure_first_seen_below_another_candidate_is_one_run() {
        let failure = verify_failed("c2");
        let (_, seen) = fold(&[
            at(
                2,
                1_000,
                None,
                Evidence::CandidateFailed(CandidateFailed {
                    onto: "c1".into(),
                    failure: Box::new(failure.clone()),
                }),
            ),
            // First in line, the task goes back with that very failure.
            at(2, 2_000, Some(TaskState::Returned), failure),
        ]);
        assert_eq!(
            seen,
            vec![
                Seen::Verify {
                    passed: false,
                    seconds: 1.5
                },
                Seen::Return(EventKind::VerifyFailed),
            ]
        );
    }

    #[test]
    fn returns_flakes_and_the_attempt_limit_by_reason() {
        let rejected = at(
            3,
            1_000,
            Some(TaskState::Returned),
            Evidence::Rejected(Rejected {
                reason: "no".into(),
            }),
        );
        // At the limit: the return without a state, then the limit holding it.
        let last = at(
            3,
            2_000,
            None,
            Evidence::Rejected(Rejected {
                reason: "still no".into(),
            }),
        );
        let (_, seen) = fold(&[
            rejected.clone(),
            last.clone(),
            at(
                3,
                2_000,
                Some(TaskState::AwaitingApproval),
                Evidence::AttemptLimit(AttemptLimit {
                    limit: 2,
                    returns: vec![rejected, last],
                }),
            ),
            // A person's "another round" is recorded as returned, but nothing came back.
            at(
                3,
                3_000,
                Some(TaskState::Returned),
                Evidence::Approved(Attempt { attempt: 2 }),
            ),
            at(
                3,
                4_000,
                None,
                Evidence::Flaked(Flaked {
                    head: "c3".into(),
                    command: "test".into(),
                    failed: vec![run("test", 1, 10)],
                }),
            ),
        ]);
        assert_eq!(
            seen,
            vec![
                Seen::Return(EventKind::Rejected),
                Seen::Return(EventKind::Rejected),
                Seen::Flake("test".into()),
            ]
        );
    }

    #[test]
    fn the_expected_time_is_the_median_of_recent_passing_runs() {
        let mut events = Vec::new();
        for (i, ms) in [5_000u64, 1_000, 3_000, 100_000].into_iter().enumerate() {
            let head = format!("c{i}");
            events.push(passed(i as i64 + 1, 0, &head, &[("test", ms)]));
        }
        let (h, _) = fold(&events);
        assert_eq!(
            h.expected(&["test".to_owned()]),
            Some(Expected {
                median_ms: 4_000,
                runs: 4
            })
        );
        let mut events = Vec::new();
        for i in 0..RECENT_RUNS + 5 {
            // The oldest runs were slow; only the recent ones count.
            let ms = if i < 5 { 1_000_000 } else { 2_000 };
            events.push(passed(1, 0, &format!("c{i}"), &[("test", ms)]));
        }
        let (h, _) = fold(&events);
        assert_eq!(h.expected(&["test".to_owned()]).unwrap().median_ms, 2_000);
        assert_eq!(h.expected(&["test".to_owned()]).unwrap().runs, RECENT_RUNS);
    }
}

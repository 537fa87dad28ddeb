//! The story's lines, data-driven: timelines of events with the line each must read as,
//! and every payload shape the ledger writes told in one safe line.

use serde_json::json;

use super::*;
use crate::model::evidence::{
    self, Attempt, BaseNotOurs, CommitLine, Created, LetGo, Merged, Paused, Rejected, Resumed,
    ReviewStarted, Submitted, Verdict, VerifyFailed,
};
use crate::model::{Pause, QueueEventKind, Stop, SubsystemName, TaskId};

/// 2026-11-24T14:02:03.000Z.
const T0: i64 = 1_795_528_923_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp(T0 + seconds * 1000)
}

fn event(seconds: i64, by: Actor, state: Option<TaskState>, what: Evidence) -> Event {
    Event {
        at: at(seconds),
        task: TaskId(2),
        by,
        state,
        what,
    }
}

fn agent(name: &str) -> Actor {
    Actor::Agent(name.into())
}

fn person(name: &str) -> Actor {
    Actor::Person(name.into())
}

fn finished(command: &str, outcome: Outcome, ms: u64, tail: &[&str]) -> Finished {
    Finished {
        command: command.into(),
        outcome,
        duration_ms: ms,
        log: "/repo/.git/switchyard/logs/t2/attempt-1/verify-1.log".into(),
        tail: tail.iter().map(|l| (*l).to_owned()).collect(),
    }
}

/// Tells `timeline` with one [`Story`] and compares each line with the one expected.
fn check(timeline: Vec<(Event, &str)>) {
    let mut story = Story::new();
    for (e, want) in timeline {
        assert_eq!(story.line(&e), want, "the line of {:?}", e.kind());
    }
}

#[test]
fn a_task_returned_by_a_failed_verify_and_merged() {
    let web = SubsystemName::new("web").unwrap();
    check(vec![
        (
            event(
                0,
                person("planner"),
                Some(TaskState::Open),
                Evidence::Created(Created {
                    title: "Refresh the landing page".into(),
                    scope: vec!["web".into()],
                    subsystems: vec![web.clone()],
                    priority: 0,
                    request_id: None,
                    after: vec![TaskId(1)],
                    plan_name: None,
                }),
            ),
            "created by planner: \"Refresh the landing page\"; scope web (subsystem web); priority 0; after t1",
        ),
        (
            event(
                1,
                agent("bob"),
                Some(TaskState::Claimed),
                Evidence::Claimed(evidence::Claimed {
                    agent: "bob".into(),
                    lease_expires_at: at(1 + 30 * 60),
                    branch: "switchyard/t2-refresh-the-landing-page".into(),
                    base_sha: "0123456789abcdef".into(),
                    port_base: 20010,
                    remote: false,
                }),
            ),
            "claimed by bob on branch switchyard/t2-refresh-the-landing-page (a 30m lease)",
        ),
        (
            event(
                5,
                agent("bob"),
                Some(TaskState::Queued),
                Evidence::Submitted(Submitted {
                    head: "aaaaaaaaaaaaaaaa".into(),
                    merge_base: "0123456789abcdef".into(),
                    paths: 1,
                    subsystems: vec![web.clone()],
                    checkpoints: vec![],
                    out_of_scope: vec![],
                    attempt: 1,
                    touches_everything: None,
                }),
            ),
            "submitted by bob: attempt 1, commit aaaaaaaaaa, 1 path in web; queued",
        ),
        (
            event(
                6,
                Actor::Daemon,
                Some(TaskState::Returned),
                Evidence::VerifyFailed(VerifyFailed {
                    head: "bbbbbbbbbbbbbbbb".into(),
                    onto: "0123456789abcdef".into(),
                    attempt: Some(1),
                    failure: VerifyFailure::Command {
                        failed: finished(
                            "./check.sh",
                            Outcome::Exited { code: 1 },
                            11,
                            &["./web/index.html", "the files above say BROKEN", ""],
                        ),
                        passed: vec![],
                        retried: vec![],
                    },
                }),
            ),
            "verify failed on attempt 1: `./check.sh` exited 1 after 11 ms; the log ends: \"./web/index.html\" \"the files above say BROKEN\"; back to bob",
        ),
        (
            event(
                9,
                agent("bob"),
                Some(TaskState::Queued),
                Evidence::Submitted(Submitted {
                    head: "cccccccccccccccc".into(),
                    merge_base: "0123456789abcdef".into(),
                    paths: 3,
                    subsystems: vec![web, SubsystemName::new("docs").unwrap()],
                    checkpoints: vec![],
                    out_of_scope: vec![],
                    attempt: 2,
                    touches_everything: None,
                }),
            ),
            "submitted by bob: attempt 2, commit cccccccccc, 3 paths in web, docs; queued",
        ),
        (
            event(
                12,
                Actor::Daemon,
                None,
                Evidence::VerifyPassed(evidence::VerifyPassed {
                    head: "dddddddddddddddd".into(),
                    onto: "0123456789abcdef".into(),
                    attempt: Some(2),
                    by: Verification::Commands {
                        commands: vec![
                            finished("./check.sh", Outcome::Exited { code: 0 }, 2300, &[]),
                            finished("./check.sh web", Outcome::Exited { code: 0 }, 65_000, &[]),
                        ],
                    },
                }),
            ),
            "verify passed on attempt 2: `./check.sh` in 2.3 s, `./check.sh web` in 1m05s",
        ),
        (
            event(
                13,
                Actor::Daemon,
                Some(TaskState::Merged),
                Evidence::Merged(Merged {
                    base: "main".into(),
                    commit: "dddddddddddddddd".into(),
                }),
            ),
            "merged into main as dddddddddd",
        ),
    ]);
}

#[test]
fn people_and_reviewers_say_who_and_why() {
    check(vec![
        (
            event(
                0,
                agent("eve"),
                Some(TaskState::Claimed),
                Evidence::Claimed(evidence::Claimed {
                    agent: "eve".into(),
                    lease_expires_at: at(90),
                    branch: "switchyard/t2-notes".into(),
                    base_sha: "b".into(),
                    port_base: 20000,
                    remote: true,
                }),
            ),
            "claimed by eve on branch switchyard/t2-notes (a 1m30s lease), to work in a clone elsewhere and push the branch",
        ),
        (
            event(
                1,
                agent("rex"),
                None,
                Evidence::ReviewStarted(ReviewStarted {
                    attempt: 1,
                    commit: "c1c1c1c1c1c1c1".into(),
                    merge_base: "m0m0m0m0m0m0m0".into(),
                    worktree: "/w/review-t2".into(),
                    lease_expires_at: at(1 + 3600),
                }),
            ),
            "review taken by rex: commit c1c1c1c1c1 (diff m0m0m0m0m0..c1c1c1c1c1), a 1h lease, checkout /w/review-t2",
        ),
        (
            event(
                2,
                agent("rex"),
                Some(TaskState::Returned),
                Evidence::ChangesRequested(Verdict {
                    attempt: 1,
                    commit: "c1c1c1c1c1c1c1".into(),
                    notes: "name the version\nand the limit".into(),
                    source: None,
                }),
            ),
            "changes requested by rex on commit c1c1c1c1c1: name the version / and the limit; back to eve",
        ),
        (
            event(
                3,
                person("lead"),
                Some(TaskState::Returned),
                Evidence::Rejected(Rejected {
                    reason: "needs a test".into(),
                }),
            ),
            "rejected by lead: needs a test; back to eve",
        ),
        (
            event(
                4,
                person("lead"),
                Some(TaskState::Queued),
                Evidence::Approved(Attempt { attempt: 2 }),
            ),
            "approved by lead (attempt 2); queued",
        ),
        (
            event(
                5,
                person("lead"),
                Some(TaskState::Open),
                Evidence::Released(LetGo {
                    agent: Some("eve".into()),
                    lease_expires_at: Some(at(90)),
                }),
            ),
            "released by lead (it was eve's); branch and commits kept; open again",
        ),
        (
            event(
                6,
                Actor::Daemon,
                Some(TaskState::Open),
                Evidence::LeaseExpired(LetGo {
                    agent: Some("eve".into()),
                    lease_expires_at: Some(at(6)),
                }),
            ),
            "eve's lease ran out; branch and commits kept; open again",
        ),
        (
            event(
                7,
                person("lead"),
                Some(TaskState::Cancelled),
                Evidence::Cancelled(evidence::Cancelled {
                    reason: "obsolete".into(),
                    was: TaskState::Open,
                    branch: "switchyard/t2-notes".into(),
                }),
            ),
            "cancelled by lead while open: obsolete; its branch switchyard/t2-notes stays",
        ),
    ]);
}

#[test]
fn a_line_read_alone_sends_work_back_to_its_executor() {
    let e = event(
        0,
        Actor::Daemon,
        Some(TaskState::Returned),
        Evidence::Conflict(Conflict::Paths {
            onto: "0123456789abcdef".into(),
            commit: None,
            paths: vec!["api/config.txt".into()],
            hint: "rebase onto main".into(),
        }),
    );
    assert_eq!(
        line(&e),
        "conflict onto 0123456789 in api/config.txt; back to its executor"
    );
}

#[test]
fn the_time_is_utc_and_a_new_day_gets_its_date() {
    assert_eq!(time(&at(0)), "14:02:03");
    assert_eq!(day(&at(0)), "2026-11-24");
    let merged = |s| {
        event(
            s,
            Actor::Daemon,
            None,
            Evidence::Merged(Merged {
                base: "main".into(),
                commit: "c".into(),
            }),
        )
    };
    // Ten hours later it is the next day in UTC.
    assert_eq!(
        told(&[merged(0), merged(1), merged(36_000)]),
        vec![
            "2026-11-24 (UTC)",
            "14:02:03  merged into main as c",
            "14:02:04  merged into main as c",
            "2026-11-25 (UTC)",
            "00:02:03  merged into main as c",
        ]
    );
    assert!(told(&[]).is_empty());
}

/// Every payload shape the ledger writes (the evidence module's samples) reads as one
/// line of prose: no JSON, no line break, and something to say.
#[test]
fn every_kind_and_shape_is_told_in_one_line() {
    let samples = crate::model::evidence::tests::samples();
    let mut kinds = std::collections::BTreeSet::new();
    for (evidence, _) in samples {
        kinds.insert(evidence.kind().as_str());
        for state in [None, Some(TaskState::Returned)] {
            let e = event(0, person("lead"), state, evidence.clone());
            let text = line(&e);
            assert!(!text.is_empty(), "{:?}", e.kind());
            assert!(!text.contains('\n'), "{:?}: {text}", e.kind());
            assert!(
                !text.contains('{') && !text.contains("\"evidence\""),
                "{:?} reads as JSON: {text}",
                e.kind()
            );
        }
    }
    assert_eq!(kinds.len(), 44, "every kind is told: {kinds:?}");
}

#[test]
fn text_from_the_ledger_cannot_break_a_line_or_reach_the_terminal() {
    let e = event(
        0,
        person("lead"),
        None,
        Evidence::Rejected(Rejected {
            reason: "bad\x1b[31m red\r\nsecond line\n\nthird".into(),
        }),
    );
    assert_eq!(
        line(&e),
        "rejected by lead: bad\\u{1b}[31m red / second line / third"
    );
    let long = "x".repeat(400);
    let e = event(
        0,
        person("lead"),
        None,
        Evidence::Rejected(Rejected { reason: long }),
    );
    assert_eq!(line(&e), format!("rejected by lead: {}…", "x".repeat(300)));
}

#[test]
fn an_unknown_shape_is_told_as_what_it_holds() {
    let e = event(
        0,
        Actor::Daemon,
        None,
        Evidence::Unknown {
            kind: EventKind::ChangedOnGithub,
            raw: json!({"what": "changed"}),
        },
    );
    assert_eq!(
        line(&e),
        "changed on github (recorded in a shape this version does not know: {\"what\":\"changed\"})"
    );
}

#[test]
fn durations_read_as_people_write_them() {
    for (ms, want) in [
        (0, "0 ms"),
        (11, "11 ms"),
        (1000, "1 s"),
        (2300, "2.3 s"),
        (60_000, "1m"),
        (245_000, "4m05s"),
        (3_600_000, "1h"),
        (7_800_000, "2h10m"),
    ] {
        assert_eq!(span(ms), want, "{ms} ms");
    }
}

#[test]
fn the_queue_events_tell_who_paused_and_why() {
    let moved = BaseNotOurs {
        base: "main".into(),
        expected: "aaaaaaaaaaaa".into(),
        found: "bbbbbbbbbbbb".into(),
        commits: vec![CommitLine {
            commit: "bbbbbbbbbbbb".into(),
            subject: "Hotfix".into(),
        }],
        count: 1,
        tasks: vec![TaskId(3)],
        hint: "`switchyard resume` accepts it".into(),
    };
    let q = |by: Actor, what: QueueEvidence| QueueEvent {
        at: at(0),
        by,
        what,
    };
    for (e, want) in [
        (
            q(
                Actor::Daemon,
                QueueEvidence::BaseMovedOutside(moved.clone()),
            ),
            "main moved outside the queue (aaaaaaaaaa -> bbbbbbbbbb): 1 commit it never verified (\"Hotfix\"); the queue paused: `switchyard resume` accepts it",
        ),
        (
            q(Actor::Daemon, QueueEvidence::BaseRewound(moved.clone())),
            "main was rewound (aaaaaaaaaa -> bbbbbbbbbb): 1 commit left it (\"Hotfix\"); landed work of t3 went with them; the queue paused: `switchyard resume` accepts it",
        ),
        (
            q(
                person("lead"),
                QueueEvidence::Paused(Paused {
                    reason: "over budget".into(),
                    only: Some(StopPart::Queue),
                }),
            ),
            "the queue paused by lead: over budget",
        ),
        (
            q(
                person("lead"),
                QueueEvidence::Resumed(Resumed {
                    base: Some("cccccccccccc".into()),
                    was: Some("aaaaaaaaaaaa".into()),
                    paused: Some(Box::new(Pause {
                        since: at(0),
                        by: Actor::Daemon,
                        reason: "main moved".into(),
                        what: QueueEvidence::BaseMovedOutside(moved),
                    })),
                    stop: Some(Box::new(Stop {
                        since: at(0),
                        by: person("ops"),
                        reason: "over budget".into(),
                        only: None,
                    })),
                }),
            ),
            "resumed by lead; it ends the pause by ops: over budget; the base is accepted at cccccccccc (the queue expected aaaaaaaaaa)",
        ),
        (
            q(
                Actor::Daemon,
                QueueEvidence::Unknown {
                    kind: QueueEventKind::BaseRewound,
                    raw: json!({"tip": "x"}),
                },
            ),
            "base rewound (recorded in a shape this version does not know: {\"tip\":\"x\"})",
        ),
    ] {
        assert_eq!(queue_line(&e), want);
    }
}

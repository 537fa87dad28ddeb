//! Planner, executor, reviewer, and the person at the stop switch: the review stage,
//! plans with dependencies, the attempt limit, and `pause`/`resume`, against a real
//! daemon and real repositories.

use serde_json::Value;

use crate::queue::{queue_repo, wait_state, work};
use crate::support::{add, claim, eventually, queue_events, tasks};

fn at_of(events: &[Value], kind: &str) -> String {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {events:#?}"))["at"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The stop switch: a person's pause refuses every hand-out with who paused, when and
/// why, survives a kill -9, can be narrowed to the queue alone (claims and submits go
/// on; nothing starts), and `resume` ends it; the queue starts only after that.
#[test]
fn pause_stops_hand_outs_and_the_queue_across_a_crash_until_resume() {
    let repo = queue_repo("");
    let daemon = repo.start_daemon();
    let first = add(&repo, "Tweak the handler", &["api"]);

    let stop = repo
        .run(["--json", "pause", "--reason", "over budget", "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(stop["reason"], "over budget");
    assert!(stop.get("only").is_none(), "{stop}");
    repo.run(["claim", "--agent", "ann"])
        .refused(1, "paused by lead at ");
    repo.run(["--json", "claim", &first, "--agent", "ann"])
        .refused(1, "over budget");
    assert_eq!(
        queue_events(&repo).last().unwrap()["event"],
        "paused",
        "the pause is a queue event"
    );

    // A crash changes nothing: the pause is in the ledger.
    daemon.kill9();
    let daemon = repo.start_daemon();
    repo.run(["claim", "--agent", "ann"])
        .refused(1, "paused by lead at ");
    let listed = repo.run(["task", "list"]).expect(0).stdout();
    assert!(
        listed
            .lines()
            .next()
            .unwrap()
            .starts_with("paused by lead at "),
        "{listed}"
    );

    // Only the queue: claims and submits go on, nothing integrates.
    repo.run([
        "pause",
        "--reason",
        "CI is down",
        "--only",
        "queue",
        "--by",
        "lead",
    ])
    .expect(0);
    let claimed = claim(&repo, Some(&first), "ann");
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    crate::support::commit_in(&wt, "tweak", &[("api/handler.txt", "tweaked\n")]);
    repo.run(["submit", &first, "--agent", "ann"]).expect(0);
    let queue = repo.run(["--json", "queue"]).expect(0).json();
    assert_eq!(queue[0]["id"], first.as_str());
    assert!(
        queue[0]["waiting_for"]
            .as_str()
            .unwrap()
            .contains("the queue is paused by lead"),
        "{queue:#}"
    );
    let text = repo.run(["queue"]).expect(0).stdout();
    assert!(
        text.starts_with("the queue is paused by lead at "),
        "{text}"
    );

    let resumed = repo
        .run(["--json", "resume", "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(resumed["stop"]["reason"], "CI is down");
    assert!(resumed["was"].is_null(), "{resumed}");
    wait_state(&repo, &first, "merged");
    let log = repo.run(["--json", "log", &first]).expect(0).json();
    let started = at_of(log.as_array().unwrap(), "integration_started");
    let resumed_at = at_of(&queue_events(&repo), "resumed");
    assert!(started >= resumed_at, "{started} < {resumed_at}");
    repo.run(["resume", "--by", "lead"])
        .refused(1, "the queue is not paused");
    repo.run(["pause", "--reason", "x", "--only", "everything"])
        .expect(2);
    drop(daemon);
}

/// `task add --after`: a task is claimable only once what it comes after merged; `task
/// list` and a refused claim say what blocks it; a cancelled dependency blocks for good,
/// saying so; a dependency on a missing task creates nothing.
#[test]
fn dependencies_gate_claims_and_say_what_blocks() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let schema = add(&repo, "Add the table", &["api"]);
    let page = repo
        .run([
            "--json",
            "task",
            "add",
            "Show the table",
            "--scope",
            "web",
            "--after",
            &schema,
            "--by",
            "planner",
        ])
        .expect(0)
        .json();
    let page = page["id"].as_str().unwrap().to_owned();
    let before = tasks(&repo).len();
    repo.run(["task", "add", "Nope", "--after", "t99", "--by", "planner"])
        .refused(2, "no task t99");
    repo.run(["task", "add", "Nope", "--after", "x1", "--by", "planner"])
        .expect(2);
    assert_eq!(tasks(&repo).len(), before, "nothing was created");

    // Only the schema task can be claimed, whoever asks.
    let claimed = claim(&repo, None, "bob");
    assert_eq!(claimed["id"], schema.as_str());
    repo.run(["claim", "--agent", "carol"])
        .refused(1, &format!("{page} waits for {schema} (claimed) to merge"));
    repo.run(["claim", &page, "--agent", "carol"])
        .refused(1, &format!("cannot claim {page}: it waits for {schema}"));
    let listed = tasks(&repo);
    let row = listed.iter().find(|t| t["id"] == page.as_str()).unwrap();
    assert_eq!(row["after"], serde_json::json!([schema]));
    assert_eq!(
        row["blocked_by"],
        serde_json::json!([{"id": schema, "state": "claimed"}])
    );
    let text = repo.run(["task", "list"]).expect(0).stdout();
    assert!(
        text.contains(&format!("[blocked: waits for {schema} (claimed) to merge]")),
        "{text}"
    );

    // Once it merged, the page is claimable.
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    crate::support::commit_in(&wt, "table", &[("api/table.txt", "users\n")]);
    repo.run(["submit", &schema, "--agent", "bob"]).expect(0);
    wait_state(&repo, &schema, "merged");
    assert_eq!(claim(&repo, None, "carol")["id"], page.as_str());
    assert!(
        crate::support::show(&repo, &page)
            .get("blocked_by")
            .is_none()
    );

    // A cancelled dependency blocks its dependent for good, and says so.
    let doomed = add(&repo, "Doomed", &["docs"]);
    let after_doomed = repo
        .run([
            "--json",
            "task",
            "add",
            "After doomed",
            "--scope",
            "docs",
            "--after",
            &doomed,
            "--by",
            "planner",
        ])
        .expect(0)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    repo.run(["task", "cancel", &doomed, "--by", "lead"])
        .expect(0);
    repo.run(["claim", &after_doomed, "--agent", "dan"])
        .refused(1, &format!("{doomed} was cancelled, so it stays blocked"));
    let shown = repo.run(["task", "show", &after_doomed]).expect(0).stdout();
    assert!(shown.contains("was cancelled"), "{shown}");
}

/// The review stage end to end: a submitted change waits for a reviewer, never its own
/// executor; the reviewer gets the request, the criteria, the exact commit, its diff
/// range and a checkout of it; changes requested send it back with the notes; the
/// resubmitted commit needs a new review (one of the older commit is refused); an
/// approval sends it on, and it lands. Every step is in the log, with the reviewer.
#[test]
fn a_review_round_trip_changes_then_approval_then_landing() {
    let repo = queue_repo("[review]\nrequired = true\n");
    let _daemon = repo.start_daemon();
    let (id, wt, submitted) = work(
        &repo,
        "Tweak the handler",
        &["api"],
        "ann",
        &[("api/handler.txt", "tweaked\n")],
    );
    assert_eq!(submitted["state"], "awaiting_review");
    let first = submitted["submitted_head"].as_str().unwrap().to_owned();

    repo.run(["review", "next", "--agent", "ann"])
        .refused(1, "your own work");
    let r = repo
        .run(["--json", "review", "next", "--agent", "rita"])
        .expect(0)
        .json();
    for key in [
        "id",
        "title",
        "request",
        "accept",
        "scope",
        "commit",
        "merge_base",
        "worktree",
    ] {
        assert!(r.get(key).is_some(), "no {key} in {r:#}");
    }
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["commit"], first.as_str());
    let checkout = std::path::PathBuf::from(r["worktree"].as_str().unwrap());
    assert_eq!(
        crate::support::git_in(&checkout, &["rev-parse", "HEAD"]).trim(),
        first
    );
    assert_eq!(
        std::fs::read_to_string(checkout.join("api/handler.txt")).unwrap(),
        "tweaked\n"
    );
    let merge_base = r["merge_base"].as_str().unwrap();
    assert_eq!(
        crate::support::git_in(
            &checkout,
            &["diff", "--name-only", r["range"].as_str().unwrap()]
        )
        .trim(),
        "api/handler.txt",
        "the range {merge_base}..{first} is the change"
    );
    // Asked again: the same review, renewed; nobody else gets it.
    let again = repo
        .run(["--json", "review", "next", "--agent", "rita"])
        .expect(0)
        .json();
    assert_eq!(
        (again["id"].clone(), again["renewed"].clone()),
        (r["id"].clone(), true.into())
    );
    repo.run(["review", "next", "--agent", "sam"])
        .refused(1, "being reviewed");
    let queue = repo.run(["--json", "queue"]).expect(0).json();
    assert_eq!(queue[0]["stage"], "awaiting_review", "{queue:#}");
    assert!(
        queue[0]["waiting_for"]
            .as_str()
            .unwrap()
            .starts_with("agent rita's review"),
        "{queue:#}"
    );
    repo.run(["review", "approve", &id, "--agent", "sam"])
        .refused(1, "being reviewed by agent rita");
    repo.run(["review", "approve", &id, "--agent", "ann"])
        .refused(1, "cannot review its own change");
    repo.run(["review", "changes", &id, "--agent", "rita"])
        .expect(2);

    let back = repo
        .run([
            "--json",
            "review",
            "changes",
            &id,
            "--agent",
            "rita",
            "--notes",
            "add a test",
        ])
        .expect(0)
        .json();
    assert_eq!(back["state"], "returned");
    assert!(
        !checkout.exists(),
        "the review checkout went back to the pool"
    );
    let log = crate::queue::log(&repo, &id);
    let asked = crate::queue::event(&log, "changes_requested");
    assert_eq!(asked["by"]["name"], "rita");
    assert_eq!(asked["evidence"]["notes"], "add a test");
    assert_eq!(asked["evidence"]["commit"], first.as_str());
    assert_eq!(asked["state"], "returned");

    // The executor fixes it and submits again: a new commit, a new review.
    crate::support::commit_in(&wt, "test", &[("api/handler_test.txt", "ok\n")]);
    let second = repo
        .run(["--json", "submit", &id, "--agent", "ann"])
        .expect(0)
        .json();
    assert_eq!(second["state"], "awaiting_review");
    let second = second["submitted_head"].as_str().unwrap().to_owned();
    repo.run([
        "review",
        "approve",
        &id,
        "--agent",
        "rita",
        "--commit",
        &first[..10],
    ])
    .refused(1, "a review covers exactly the commit it saw");
    // Without --commit, a verdict is about the commit `review next` handed out: rita
    // was handed the first one, never this one.
    repo.run(["review", "approve", &id, "--agent", "rita"])
        .refused(1, "agent rita was not handed t1's submitted commit");
    let r = repo
        .run(["--json", "review", "next", "--agent", "rita"])
        .expect(0)
        .json();
    assert_eq!(r["commit"], second.as_str());
    let approved = repo
        .run([
            "--json", "review", "approve", &id, "--agent", "rita", "--commit", &second, "--notes",
            "good",
        ])
        .expect(0)
        .json();
    assert_eq!(approved["state"], "queued");
    assert_eq!(approved["reviewed_head"], second.as_str());
    wait_state(&repo, &id, "merged");
    let log = crate::queue::log(&repo, &id);
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|k| k.contains("review") || *k == "changes_requested" || *k == "submitted")
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "review_started",
            "changes_requested",
            "submitted",
            "review_started",
            "review_approved",
        ]
    );
    let text = repo.run(["log", &id]).expect(0).stdout();
    assert!(
        text.lines()
            .any(|l| l.contains("  review approved by rita: commit ")),
        "{text}"
    );

    // Who did what, for people and for agents finding their own work.
    let roles = crate::support::show(&repo, &id)["roles"].clone();
    assert_eq!(roles["planner"]["name"], "planner");
    assert_eq!(roles["executors"].as_array().unwrap().len(), 2);
    assert_eq!(roles["executors"][1]["by"]["name"], "ann");
    assert_eq!(roles["reviewers"][0]["verdict"], "changes_requested");
    assert_eq!(roles["reviewers"][1]["verdict"], "approved");
    assert_eq!(roles["reviewers"][1]["commit"], second.as_str());
    let shown = repo.run(["task", "show", &id]).expect(0).stdout();
    assert!(
        shown.contains("reviewed by: agent rita (attempt 1, changes requested); agent rita (attempt 2, approved)"),
        "{shown}"
    );
    let mine = repo
        .run([
            "--json", "task", "list", "--role", "reviewer", "--agent", "rita",
        ])
        .expect(0)
        .json();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["id"], id.as_str());
    let none = repo
        .run([
            "--json", "task", "list", "--role", "reviewer", "--agent", "ann",
        ])
        .expect(0)
        .json();
    assert_eq!(none, serde_json::json!([]));
    repo.run(["task", "list", "--role", "boss", "--agent", "ann"])
        .expect(2);
}

/// Many reviewers asking at once: each change goes to exactly one of them.
#[test]
fn reviewers_asking_at_once_never_get_the_same_task() {
    let repo = queue_repo("[review]\nrequired = true\n");
    let _daemon = repo.start_daemon();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            work(
                &repo,
                &format!("Change {i}"),
                &["docs"],
                &format!("exec{i}"),
                &[(&format!("docs/{i}.md"), "words\n")],
            )
            .0
        })
        .collect();
    let got: Vec<Option<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|k| {
                let repo = &repo;
                s.spawn(move || {
                    let run = repo.run(["--json", "review", "next", "--agent", &format!("rev{k}")]);
                    match run.code() {
                        0 => Some(run.json()["id"].as_str().unwrap().to_owned()),
                        1 => None,
                        code => panic!("review next exited {code}: {}", run.stderr()),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut handed: Vec<String> = got.into_iter().flatten().collect();
    handed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(handed, want, "each change to exactly one reviewer");
}

/// `[queue] max_attempts`: a task that came back that many times goes to a person, with
/// every return's evidence, instead of its executor; the person approves another round
/// (back to the executor, who lands a fix) or releases it for someone else.
#[test]
fn the_attempt_limit_escalates_to_a_person() {
    let repo = crate::queue::queue_repo_with("max_attempts = 2\n", "");
    let _daemon = repo.start_daemon();
    let (id, wt, _) = work(
        &repo,
        "Break it",
        &["api"],
        "ann",
        &[("api/handler.txt", "BROKEN 1\n")],
    );
    wait_state(&repo, &id, "returned");
    crate::support::commit_in(&wt, "again", &[("api/handler.txt", "BROKEN 2\n")]);
    repo.run(["submit", &id, "--agent", "ann"]).expect(0);
    eventually(60, "the attempt limit", || {
        crate::queue::state(&repo, &id) == "awaiting_approval"
    });
    let limit = crate::queue::last_event(&repo, &id, "attempt_limit");
    assert_eq!(limit["state"], "awaiting_approval");
    assert_eq!(limit["evidence"]["limit"], 2);
    let returns = limit["evidence"]["returns"].as_array().unwrap();
    assert_eq!(returns.len(), 2, "{limit:#}");
    assert!(
        returns.iter().all(|r| r["event"] == "verify_failed"),
        "{limit:#}"
    );
    let shown = repo.run(["task", "show", &id]).expect(0).stdout();
    assert!(shown.contains("attempt limit reached"), "{shown}");
    // Not handed back to its executor.
    crate::support::commit_in(&wt, "fix", &[("api/handler.txt", "fixed\n")]);
    repo.run(["submit", &id, "--agent", "ann"])
        .refused(1, "not claimed");
    repo.run(["approve", &id, "--by", "ann"])
        .refused(1, "cannot approve its own change");

    // Another round: back to ann; the next return goes to a person again, with all
    // three returns.
    let again = repo
        .run(["--json", "approve", &id, "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(again["state"], "returned");
    assert_eq!(again["agent"], "ann");
    crate::support::commit_in(&wt, "still", &[("api/handler.txt", "BROKEN 3\n")]);
    repo.run(["submit", &id, "--agent", "ann"]).expect(0);
    eventually(60, "the attempt limit again", || {
        crate::queue::state(&repo, &id) == "awaiting_approval"
    });
    let limit = crate::queue::last_event(&repo, &id, "attempt_limit");
    assert_eq!(limit["evidence"]["returns"].as_array().unwrap().len(), 3);
    repo.run(["approve", &id, "--by", "lead"]).expect(0);
    crate::support::commit_in(&wt, "fix", &[("api/handler.txt", "fixed\n")]);
    repo.run(["submit", &id, "--agent", "ann"]).expect(0);
    wait_state(&repo, &id, "merged");

    // Or released by a person, for someone else to go on from its branch.
    let (other, wt, _) = work(
        &repo,
        "Break more",
        &["docs"],
        "bob",
        &[("docs/guide.md", "BROKEN\n")],
    );
    wait_state(&repo, &other, "returned");
    crate::support::commit_in(&wt, "again", &[("docs/guide.md", "BROKEN again\n")]);
    repo.run(["submit", &other, "--agent", "bob"]).expect(0);
    eventually(60, "the attempt limit", || {
        crate::queue::state(&repo, &other) == "awaiting_approval"
    });
    let released = repo
        .run(["--json", "release", &other, "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(released["state"], "open");
    let claimed = claim(&repo, Some(&other), "carol");
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(wt.join("docs/guide.md")).unwrap(),
        "BROKEN again\n",
        "carol goes on from bob's branch"
    );
    // A new executor starts with the whole budget: her first return is hers to fix.
    crate::support::commit_in(&wt, "carol", &[("docs/guide.md", "BROKEN by carol\n")]);
    repo.run(["submit", &other, "--agent", "carol"]).expect(0);
    wait_state(&repo, &other, "returned");
}

/// `switchyard plan FILE`: a whole plan in one transaction, its dependencies by local
/// name, in TOML or JSON; a plan with any problem (a cycle, an unknown scope, a
/// duplicate name, a missing task, a file over the limit) creates nothing and says
/// where each problem is.
#[test]
fn a_plan_creates_every_task_or_none() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let existing = add(&repo, "Existing", &["docs"]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("plan.toml");
    std::fs::write(
        &good,
        format!(
            "[[task]]\nname = \"page\"\ntitle = \"Show the table\"\nscope = [\"web\"]\nafter = [\"schema\"]\n\n\
             [[task]]\nname = \"schema\"\ntitle = \"Add the table\"\nrequest = \"Users need a home\"\n\
             accept = [\"migrations run\"]\nscope = [\"api\"]\npriority = 5\nafter = [\"{existing}\"]\n"
        ),
    )
    .unwrap();
    let planned = repo
        .run(["--json", "plan", good.to_str().unwrap(), "--by", "lead"])
        .expect(0)
        .json();
    let tasks_made = planned["tasks"].as_array().unwrap();
    assert_eq!(tasks_made.len(), 2);
    assert_eq!(tasks_made[0]["name"], "page");
    assert_eq!(tasks_made[1]["name"], "schema");
    let page = tasks_made[0]["id"].as_str().unwrap().to_owned();
    let schema = tasks_made[1]["id"].as_str().unwrap().to_owned();
    let shown = crate::support::show(&repo, &page);
    assert_eq!(shown["after"], serde_json::json!([schema]));
    let shown = crate::support::show(&repo, &schema);
    assert_eq!(shown["after"], serde_json::json!([existing]));
    assert_eq!(shown["priority"], 5);
    assert_eq!(shown["accept"], serde_json::json!(["migrations run"]));
    assert_eq!(shown["timeline"][0]["by"]["name"], "lead");
    assert_eq!(shown["timeline"][0]["evidence"]["plan_name"], "schema");

    // Run again with its request id (its answer lost, say): the same tasks, none new.
    let count = tasks(&repo).len();
    let first = repo
        .run([
            "--json",
            "plan",
            good.to_str().unwrap(),
            "--request-id",
            "p1",
        ])
        .expect(0)
        .json();
    let again = repo
        .run([
            "--json",
            "plan",
            good.to_str().unwrap(),
            "--request-id",
            "p1",
        ])
        .expect(0)
        .json();
    assert_eq!(first, again);
    assert_eq!(tasks(&repo).len(), count + 2);

    // JSON with the same keys.
    let json = dir.path().join("plan.json");
    std::fs::write(
        &json,
        r#"{"task": [{"name": "a", "title": "First"}, {"name": "b", "title": "Second", "after": ["a"]}]}"#,
    )
    .unwrap();
    let planned = repo
        .run(["--json", "plan", json.to_str().unwrap()])
        .expect(0)
        .json();
    assert_eq!(planned["tasks"].as_array().unwrap().len(), 2);

    // Anything wrong: nothing created, each problem at its place.
    let before = tasks(&repo).len();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[task]]\nname = \"a\"\ntitle = \"A\"\nafter = [\"b\"]\n\n\
         [[task]]\nname = \"b\"\ntitle = \"B\"\nafter = [\"a\"]\nscope = [\"dbb\"]\n\n\
         [[task]]\nname = \"a\"\ntitle = \"again\"\nafter = [\"t99\"]\n",
    )
    .unwrap();
    let run = repo.run(["plan", bad.to_str().unwrap()]).expect(2);
    let err = run.stderr();
    let file = bad.display().to_string();
    for want in [
        format!("{file}:9:10: dependency cycle: a -> b -> a"),
        format!("{file}:10:10: unknown scope \"dbb\""),
        format!("{file}:13:8: duplicate task name \"a\" (first at line 2)"),
        format!("{file}:15:10: no task t99"),
    ] {
        assert!(err.contains(&want), "{want:?} not in:\n{err}");
    }
    assert!(err.lines().all(|l| l.starts_with("error: ")), "{err}");
    assert_eq!(tasks(&repo).len(), before, "nothing was created");

    // A plan near the limit goes through, whatever its text costs to send.
    let big = dir.path().join("big.toml");
    std::fs::write(
        &big,
        format!(
            "[[task]]\nname = \"big\"\ntitle = \"Big\"\n# {}\n",
            "\"".repeat(1000 * 1000)
        ),
    )
    .unwrap();
    repo.run(["plan", big.to_str().unwrap()]).expect(0);
    let before = tasks(&repo).len();

    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, "#".repeat(10 * 1024 * 1024)).unwrap();
    repo.run(["plan", huge.to_str().unwrap()])
        .refused(2, "the limit is 1048576");
    assert_eq!(tasks(&repo).len(), before, "nothing was created");
}

/// A review is held under a lease: it survives a kill -9 of the daemon (the checkout
/// stays the reviewer's, asked again it is renewed), and when the reviewer goes silent
/// it is handed to someone else. Only listed reviewers review; a verdict on a task
/// that does not wait for one is refused.
#[test]
fn a_silent_reviewer_loses_the_review_and_a_crash_loses_nothing() {
    let repo =
        queue_repo("[review]\nrequired = true\nreviewers = [\"rita\", \"sam\"]\nlease = \"10m\"\n");
    let daemon = repo.start_daemon();
    let (id, _, _) = work(
        &repo,
        "Tweak the handler",
        &["api"],
        "ann",
        &[("api/handler.txt", "tweaked\n")],
    );
    repo.run(["review", "next", "--agent", "mallory"]).refused(
        1,
        "mallory may not review: [review] reviewers lists rita, sam",
    );
    let r = repo
        .run(["--json", "review", "next", "--agent", "rita"])
        .expect(0)
        .json();
    let checkout = std::path::PathBuf::from(r["worktree"].as_str().unwrap());
    daemon.kill9();
    // From now on a review lease lasts a second (the one held keeps its ten minutes
    // until it is renewed).
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    std::fs::write(
        repo.root.join("switchyard.toml"),
        text.replace("lease = \"10m\"", "lease = \"1s\""),
    )
    .unwrap();
    let _daemon = repo.start_daemon();
    assert!(checkout.is_dir(), "the review checkout outlives a crash");
    let again = repo
        .run(["--json", "review", "next", "--agent", "rita"])
        .expect(0)
        .json();
    assert_eq!(again["renewed"], true);
    assert_eq!(again["worktree"], r["worktree"]);
    // Rita writes in her checkout: nobody else is ever handed that as the commit.
    std::fs::write(checkout.join("api/handler.txt"), "EVIL\n").unwrap();
    std::fs::write(checkout.join("planted.txt"), "x\n").unwrap();

    // Rita goes silent: the review expires and sam gets it.
    eventually(30, "the review lease to run out", || {
        crate::queue::log(&repo, &id)
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "review_expired")
    });
    let expired = crate::queue::last_event(&repo, &id, "review_expired");
    assert_eq!(expired["evidence"]["reviewer"]["name"], "rita");
    let sam = repo
        .run(["--json", "review", "next", "--agent", "sam"])
        .expect(0)
        .json();
    assert_eq!(sam["id"], id.as_str());
    let sams = std::path::PathBuf::from(sam["worktree"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(sams.join("api/handler.txt")).unwrap(),
        "tweaked\n"
    );
    assert!(!sams.join("planted.txt").exists());
    let kept = repo.root.with_file_name("repo.worktrees").join(".kept");
    let set_aside: Vec<_> = std::fs::read_dir(&kept).unwrap().collect();
    assert_eq!(
        set_aside.len(),
        1,
        "rita's checkout was set aside, not lost"
    );
    repo.run(["review", "approve", &id, "--agent", "sam"])
        .expect(0);
    wait_state(&repo, &id, "merged");
    repo.run(["review", "approve", &id, "--agent", "rita"])
        .refused(1, "not awaiting review");
}

//! Reads without the daemon: `log`, `task show`, `task list` and `queue` answer from the
//! ledger, read-only, when no daemon runs, exactly as the daemon answered; and the story
//! they tell in text.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::queue::{queue_repo, wait_state, work};
use crate::support::{TestRepo, add, claim, events, eventually};

/// The notice a read from the ledger prints on stderr.
const NOTICE: &str = "no daemon is running; read from the ledger at ";

/// The read commands the scenario compares, `--json` each.
fn reads(ids: &Ids) -> Vec<Vec<String>> {
    let mut all: Vec<Vec<&str>> = vec![
        vec!["task", "list"],
        vec!["task", "list", "--state", "merged"],
        vec!["task", "list", "--role", "executor", "--agent", "bob"],
        vec!["task", "list", "--role", "planner", "--agent", "planner"],
        vec!["queue"],
        vec!["log", "--queue"],
    ];
    for id in [
        &ids.merged,
        &ids.returned,
        &ids.approval,
        &ids.queued,
        &ids.released,
    ] {
        all.push(vec!["log", id]);
        all.push(vec!["task", "show", id]);
    }
    all.into_iter()
        .map(|args| {
            std::iter::once("--json")
                .chain(args)
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

struct Ids {
    merged: String,
    returned: String,
    approval: String,
    queued: String,
    released: String,
}

/// A ledger with a task of each kind: merged (by ann), returned by a failing verify (to
/// bob), awaiting a person's approval (a CI change), queued behind a person's pause,
/// and released by its executor (cy). Every task's background work is done before it
/// returns, so the ledger stays as it is until something new happens.
fn scenario(repo: &TestRepo) -> Ids {
    let (merged, _, _) = work(
        repo,
        "Tidy the handler",
        &["api"],
        "ann",
        &[("api/handler.txt", "line 1\nline 2 tidied\nline 3\n")],
    );
    wait_state(repo, &merged, "merged");
    let (returned, _, _) = work(
        repo,
        "Add a page",
        &["web"],
        "bob",
        &[("web/broken.html", "<p>BROKEN</p>\n")],
    );
    wait_state(repo, &returned, "returned");
    let (approval, _, submitted) = work(
        repo,
        "Run CI on tags",
        &["ci"],
        "dan",
        &[(".github/ci.yml", "on: [push, tag]\n")],
    );
    assert_eq!(submitted["state"], "awaiting_approval", "{submitted:#}");
    repo.run([
        "pause", "--reason", "budget", "--only", "queue", "--by", "lead",
    ])
    .expect(0);
    let (queued, _, _) = work(
        repo,
        "Explain the handler",
        &["docs"],
        "eve",
        &[("docs/guide.md", "# Guide\n\nThe handler, explained.\n")],
    );
    let released = add(repo, "Try something", &["api"]);
    claim(repo, Some(&released), "cy");
    repo.run(["release", &released, "--agent", "cy"]).expect(0);
    // What follows a landing or a release runs in the background: wait for its events.
    for (id, kinds) in [
        (&merged, &["checkout_updated", "worktree_recycled"][..]),
        (&released, &["worktree_recycled"][..]),
    ] {
        eventually(30, &format!("{id}'s background work"), || {
            let seen = events(repo, id);
            kinds.iter().all(|k| seen.iter().any(|s| s == k))
        });
    }
    Ids {
        merged,
        returned,
        approval,
        queued,
        released,
    }
}

/// `queue --json` without `elapsed_ms` (time at a stage, measured when asked), which
/// must only have grown.
fn without_elapsed(text: &str) -> (Value, Vec<u64>) {
    let mut v: Value = serde_json::from_str(text).unwrap();
    let mut elapsed = Vec::new();
    for entry in v.as_array_mut().unwrap() {
        let e = entry.as_object_mut().unwrap().remove("elapsed_ms").unwrap();
        elapsed.push(e.as_u64().unwrap());
    }
    (v, elapsed)
}

fn ledger_files(repo: &TestRepo) -> Vec<u8> {
    std::fs::read(repo.root.join(".git/switchyard/ledger.db")).unwrap()
}

#[test]
fn without_a_daemon_the_reads_answer_from_the_ledger_as_the_daemon_did() {
    let repo = queue_repo("");
    let daemon = repo.start_daemon();
    let ids = scenario(&repo);
    let commands = reads(&ids);
    let mut online = BTreeMap::new();
    for args in &commands {
        let run = repo.run(args).expect(0);
        assert_eq!(run.stderr(), "", "{args:?} talked to the daemon quietly");
        online.insert(args.clone(), run.stdout());
    }
    let missing = repo
        .run(["--json", "task", "show", "t99"])
        .expect(1)
        .stderr();
    let text_log = repo.run(["log", &ids.returned]).expect(0).stdout();
    let (status, _) = daemon.stop();
    assert!(status.success());

    let before = ledger_files(&repo);
    let ledger = repo.root.join(".git/switchyard/ledger.db");
    for args in &commands {
        let run = repo.run(args).expect(0);
        assert_eq!(
            run.stderr(),
            format!("{NOTICE}{}\n", ledger.display()),
            "{args:?}: one line on stderr says where the answer came from"
        );
        let (was, now) = (&online[args], run.stdout());
        if args[1] == "queue" {
            let (was, then) = without_elapsed(was);
            let (now, later) = without_elapsed(&now);
            assert_eq!(was, now, "{args:?}");
            assert!(
                then.iter().zip(&later).all(|(a, b)| a <= b),
                "{then:?} {later:?}"
            );
        } else {
            assert_eq!(was, &now, "{args:?} answers differently from the ledger");
        }
    }
    // The scenario is what the answers show, not an empty ledger read twice.
    let queue: Value = serde_json::from_str(&online[&commands[4]]).unwrap();
    let states: Vec<(&str, &str)> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["stage"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            (ids.queued.as_str(), "waiting"),
            (ids.approval.as_str(), "awaiting_approval")
        ]
    );
    assert!(
        queue[0]["waiting_for"]
            .as_str()
            .unwrap()
            .contains("paused by lead"),
        "{queue:#}"
    );

    // Who executed each task: also once the claim ended, and after it merged.
    let list: Value = serde_json::from_str(&online[&commands[0]]).unwrap();
    let who: Vec<(&str, &Value, &Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["state"].as_str().unwrap(), &t["agent"], &t["executor"]))
        .collect();
    let (ann, bob, dan, eve, cy) = (
        Value::from("ann"),
        Value::from("bob"),
        Value::from("dan"),
        Value::from("eve"),
        Value::from("cy"),
    );
    assert_eq!(
        who,
        vec![
            ("merged", &Value::Null, &ann),
            ("returned", &bob, &bob),
            ("awaiting_approval", &dan, &dan),
            ("queued", &eve, &eve),
            ("open", &Value::Null, &cy),
        ]
    );
    let table = repo.run(["task", "list"]).expect(0).stdout();
    let merged_row = table
        .lines()
        .find(|l| l.starts_with(&format!("{} ", ids.merged)))
        .unwrap();
    assert!(merged_row.contains(" ann "), "{table}");
    assert!(
        table.lines().nth(1).unwrap().contains("EXECUTOR"),
        "{table}"
    );
    assert!(
        table.starts_with("the queue is paused by lead"),
        "the pause heads the list, from the ledger too: {table}"
    );

    // The story in text, the same with and without the daemon.
    let offline = repo.run(["log", &ids.returned]).expect(0);
    assert_eq!(offline.stdout(), text_log);
    let lines: Vec<&str> = text_log.lines().collect();
    assert!(
        lines[0].ends_with(" (UTC)"),
        "a date line first: {text_log}"
    );
    // Each event's line is "HH:MM:SS  what happened".
    let told = |start: &str| {
        lines
            .iter()
            .find(|l| l.get(10..).is_some_and(|rest| rest.starts_with(start)))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text_log}"))
            .to_owned()
    };
    assert!(told("created by planner: \"Add a page\"; scope web").contains("priority 0"));
    assert!(told("claimed by bob on branch switchyard/").ends_with("(a 30m lease)"));
    let failed = told("verify failed on attempt 1: `./check.sh` exited 1 after ");
    assert!(
        failed.ends_with("; the log ends: \"./web/broken.html\"; back to bob"),
        "{failed}"
    );
    let tip = repo.git(&["rev-parse", "main"]);
    let merged_log = repo.run(["log", &ids.merged]).expect(0).stdout();
    assert!(
        merged_log.contains(&format!("  merged into main as {}\n", &tip[..10])),
        "{merged_log}"
    );
    let shown = repo.run(["task", "show", &ids.approval]).expect(0).stdout();
    assert!(
        shown.contains("submitted by dan: attempt 1, commit ")
            && shown.contains("waits for a person's decision"),
        "{shown}"
    );
    let paused = repo.run(["log", "--queue"]).expect(0).stdout();
    assert!(
        paused.contains("  the queue paused by lead: budget\n"),
        "{paused}"
    );

    // A refusal reads the same: same code, same message, same exit status.
    let offline = repo
        .run(["--json", "task", "show", "t99"])
        .expect(1)
        .stderr();
    assert_eq!(offline.lines().last(), missing.lines().last(), "{offline}");
    assert!(missing.contains("\"not_found\""), "{missing}");
    repo.run(["task", "list", "--role", "executor", "--agent", "\u{7}"])
        .expect(2);

    // Reading wrote nothing to the ledger.
    assert_eq!(
        ledger_files(&repo),
        before,
        "the ledger changed by being read"
    );
}

#[test]
fn a_repository_without_a_ledger_says_so_and_gets_none() {
    let repo = TestRepo::example();
    for args in [
        vec!["log", "t1"],
        vec!["task", "show", "t1"],
        vec!["task", "list"],
        vec!["queue"],
    ] {
        let run = repo
            .run(&args)
            .refused(1, "no switchyard daemon is running for");
        assert!(
            run.stderr().contains("it has no ledger yet"),
            "{}",
            run.stderr()
        );
        let mut json = vec!["--json"];
        json.extend(&args);
        let err = repo.run(&json).expect(1).stderr();
        assert!(err.contains("\"code\":\"no_daemon\""), "{err}");
    }
    assert!(
        !repo.root.join(".git/switchyard").exists(),
        "reading made the ledger's directory"
    );
}

#[test]
fn a_ledger_of_another_schema_is_refused_and_left_alone() {
    let repo = queue_repo("");
    let daemon = repo.start_daemon();
    add(&repo, "Something", &["api"]);
    daemon.stop();
    let db = repo.root.join(".git/switchyard/ledger.db");
    let version: i64 = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    for (set, says) in [
        (version + 1, "newer than this switchyard knows"),
        (version - 1, "older than this switchyard"),
    ] {
        rusqlite::Connection::open(&db)
            .unwrap()
            .pragma_update(None, "user_version", set)
            .unwrap();
        let before = ledger_files(&repo);
        let run = repo.run(["task", "list"]).refused(1, says);
        assert!(
            run.stderr().contains(&db.display().to_string()),
            "{}",
            run.stderr()
        );
        assert_eq!(
            ledger_files(&repo),
            before,
            "a refused read changed the ledger"
        );
    }
}

#[test]
fn a_daemon_starting_while_the_cli_reads_the_ledger_is_fine() {
    let repo = queue_repo("");
    let daemon = repo.start_daemon();
    let ids = [add(&repo, "One", &["api"]), add(&repo, "Two", &["web"])];
    daemon.stop();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (first, first_done) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut offline, mut total) = (0, 0);
            while total == 0 || !done.load(std::sync::atomic::Ordering::Relaxed) {
                let run = repo.run(["--json", "task", "list"]).expect(0);
                let got: Vec<String> = run
                    .json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(got, ids, "{}", run.stderr());
                offline += usize::from(run.stderr().starts_with(NOTICE));
                total += 1;
                let _ = first.send(());
            }
            (offline, total)
        });
        // The daemon starts once the reader has read the ledger, and reads go on while
        // it starts (opening, migrating, reconciling), until it is up.
        first_done.recv().unwrap();
        let daemon = repo.start_daemon();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (offline, total) = reader.join().unwrap();
        assert!(offline >= 1, "no read went to the ledger ({total} reads)");
        let run = repo.run(["--json", "task", "list"]).expect(0);
        assert_eq!(run.stderr(), "", "with the daemon up, the daemon answers");
        drop(daemon);
    });
}

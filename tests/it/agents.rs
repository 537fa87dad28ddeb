//! The agent interface: what a coding agent drives switchyard through. Error codes it
//! can branch on (`--json` refusals), against a real daemon.

use serde_json::Value;

use crate::queue::queue_repo;
use crate::support::{TestRepo, add, claim, commit_in};

/// A refusal with `--json`: exit status, and one line on stderr, `{"error": {"code",
/// "message"}}`, whose code is `code`.
fn refused_with(repo: &TestRepo, args: &[&str], exit: i32, code: &str) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = repo.run(all).expect(exit);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    let json: Value = serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(
        !json["error"]["message"].as_str().unwrap().is_empty(),
        "{json}"
    );
    json
}

/// Every refusal an agent meets has a stable code, so it branches on the code, not on
/// the prose; the same refusal without `--json` is the one-line message.
#[test]
fn refusals_carry_codes_an_agent_can_branch_on() {
    let repo = queue_repo("");
    refused_with(&repo, &["task", "list"], 1, "no_daemon");
    let _daemon = repo.start_daemon();
    refused_with(&repo, &["claim", "--agent", "ann"], 1, "nothing_to_claim");
    refused_with(&repo, &["task", "show", "t9"], 1, "not_found");
    refused_with(
        &repo,
        &["task", "add", "x", "--scope", "nowhere/**", "--by", "p"],
        2,
        "bad_request",
    );
    refused_with(&repo, &["claim", "--agent", "ann", "nonsense"], 2, "usage");

    let id = add(&repo, "Tweak", &["api"]);
    let claimed = claim(&repo, Some(&id), "ann");
    refused_with(
        &repo,
        &["submit", &id, "--agent", "bob"],
        1,
        "not_claim_holder",
    );
    refused_with(
        &repo,
        &["submit", &id, "--agent", "ann"],
        1,
        "nothing_to_submit",
    );
    refused_with(&repo, &["approve", &id, "--by", "lead"], 1, "wrong_state");

    // Caps: api takes 3 at once in this repository.
    for agent in ["b", "c"] {
        let other = add(&repo, &format!("More {agent}"), &["api"]);
        claim(&repo, Some(&other), agent);
    }
    add(&repo, "One too many", &["api"]);
    refused_with(&repo, &["claim", "--agent", "d"], 1, "cap_full");
    let after = repo
        .run([
            "--json", "task", "add", "Later", "--scope", "docs", "--after", &id, "--by", "p",
        ])
        .expect(0)
        .json();
    let later = after["id"].as_str().unwrap().to_owned();
    refused_with(&repo, &["claim", &later, "--agent", "e"], 1, "blocked");

    repo.run(["pause", "--reason", "budget", "--by", "lead"])
        .expect(0);
    let paused = refused_with(&repo, &["claim", "--agent", "f"], 1, "paused");
    assert!(
        paused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("paused by lead"),
        "{paused}"
    );
    repo.run(["resume", "--by", "lead"]).expect(0);

    // Review work, for the one who executed the change: there is none.
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(&wt, "tweak", &[("api/handler.txt", "tweaked\n")]);
    repo.run(["submit", &id, "--agent", "ann"]).expect(0);
    refused_with(
        &repo,
        &["review", "next", "--agent", "ann"],
        1,
        "nothing_to_review",
    );
}

/// `wait` and `submit --wait`: exit 0 with the commit once it landed, 1 with the typed
/// reason when it came back, 3 on timeout; a wait under way outlives a kill -9 and
/// restart of the daemon.
#[test]
fn wait_answers_on_merge_and_return_across_a_restart_and_times_out() {
    let repo = queue_repo("");
    // Debug logs say when a wait is held, so the test kills the daemon under one.
    let daemon = repo
        .try_start_daemon_with(&[("SWITCHYARD_LOG", "debug")])
        .unwrap();
    let good = add(&repo, "Tweak", &["api"]);
    let wt = std::path::PathBuf::from(
        claim(&repo, Some(&good), "ann")["worktree"]
            .as_str()
            .unwrap(),
    );
    commit_in(&wt, "tweak", &[("api/handler.txt", "tweaked\n")]);
    let merged = repo
        .run(["--json", "submit", &good, "--agent", "ann", "--wait"])
        .expect(0)
        .json();
    assert_eq!(merged["outcome"], "merged");
    assert_eq!(
        merged["commit"].as_str().unwrap(),
        repo.git(&["rev-parse", "main"]).trim()
    );

    let bad = add(&repo, "Break", &["docs"]);
    let wt = std::path::PathBuf::from(
        claim(&repo, Some(&bad), "bob")["worktree"]
            .as_str()
            .unwrap(),
    );
    commit_in(&wt, "break", &[("docs/guide.md", "BROKEN\n")]);
    repo.run(["submit", &bad, "--agent", "bob"]).expect(0);
    let back = repo.run(["--json", "wait", &bad]).expect(1).json();
    assert_eq!(back["outcome"], "returned");
    assert_eq!(back["reason"]["event"], "verify_failed");
    assert_eq!(
        back["reason"]["evidence"]["failed"]["command"],
        "./check.sh"
    );
    assert!(
        !back["reason"]["evidence"]["failed"]["tail"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{back:#}"
    );
    let text = repo.run(["wait", &bad]).expect(1).stdout();
    assert!(
        text.starts_with(&format!("{bad} came back (attempt 1)")),
        "{text}"
    );

    // Held in the queue: a wait with a timeout ends with 3.
    repo.run([
        "pause", "--reason", "hold", "--only", "queue", "--by", "lead",
    ])
    .expect(0);
    commit_in(&wt, "fix", &[("docs/guide.md", "fixed\n")]);
    repo.run(["submit", &bad, "--agent", "bob"]).expect(0);
    let timed_out = repo
        .run(["--json", "wait", &bad, "--timeout", "300ms"])
        .expect(3)
        .json();
    assert_eq!(timed_out["outcome"], "timeout");
    assert_eq!(timed_out["state"], "queued");

    // A wait under way while the daemon is killed and started again: it answers once
    // the task lands after the restart.
    let log = daemon.log.clone();
    let held = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("a client waits for the task to leave the queue")
            .count()
    };
    let before = held();
    let waiting = std::thread::scope(|s| {
        let waiter = s.spawn(|| repo.run_within(120, &[], ["--json", "wait", &bad]));
        // The wait is held by the daemon before it dies.
        crate::support::eventually(30, "the wait to be held", || held() > before);
        daemon.kill9();
        let restarted = repo.start_daemon();
        repo.run(["resume", "--by", "lead"]).expect(0);
        (waiter.join().unwrap(), restarted)
    });
    let (waiting, _daemon) = waiting;
    let landed = waiting.expect(0).json();
    assert_eq!(landed["outcome"], "merged");
    refused_with(&repo, &["wait", "t99"], 1, "not_found");
}

/// Early conflict warnings: two claimed tasks editing the same lines warn both (in
/// `conflicts`, each one's heartbeat and `task show`); one editing other files does
/// not; a warning clears when a side lands (the other then collides with the base) and
/// when it rebases away.
#[test]
fn conflicting_branches_warn_both_executors_and_clear() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let work = |title: &str, scope: &str, agent: &str, file: &str, text: &str| {
        let id = add(&repo, title, &[scope]);
        let wt =
            std::path::PathBuf::from(claim(&repo, Some(&id), agent)["worktree"].as_str().unwrap());
        commit_in(&wt, title, &[(file, text)]);
        repo.run(["heartbeat", &id, "--agent", agent]).expect(0);
        (id, wt)
    };
    let (a, _) = work(
        "First",
        "api",
        "ann",
        "api/handler.txt",
        "ann's line 1\nline 2\nline 3\n",
    );
    let (b, b_wt) = work(
        "Second",
        "api",
        "bob",
        "api/handler.txt",
        "bob's line 1\nline 2\nline 3\n",
    );
    let (c, _) = work("Docs", "docs", "cy", "docs/guide.md", "# Guide, better\n");

    let all = || repo.run(["--json", "conflicts"]).expect(0).json();
    crate::support::eventually(30, "the conflict to be seen", || {
        all().as_array().unwrap().len() == 2
    });
    let found = all();
    let on_a = found
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["task"] == a.as_str())
        .unwrap();
    assert_eq!(on_a["with"], b.as_str());
    assert_eq!(on_a["agent"], "bob");
    assert_eq!(on_a["paths"], serde_json::json!(["api/handler.txt"]));
    let beat = repo
        .run(["--json", "heartbeat", &b, "--agent", "bob"])
        .expect(0)
        .json();
    assert_eq!(beat["conflicts"][0]["with"], a.as_str());
    assert_eq!(beat["conflicts"][0]["agent"], "ann");
    assert_eq!(
        crate::queue::last_event(&repo, &a, "conflict_warning")["evidence"]["with"],
        b.as_str()
    );
    let shown = repo.run(["task", "show", &b]).expect(0).stdout();
    assert!(
        shown.contains(&format!("conflicts with {a} (ann) in api/handler.txt")),
        "{shown}"
    );
    assert_eq!(
        repo.run(["--json", "conflicts", &c]).expect(0).json(),
        serde_json::json!([]),
        "cy's docs change collides with nothing"
    );

    // Ann lands: her warning with bob clears, and bob's branch now collides with main.
    repo.run(["submit", &a, "--agent", "ann"]).expect(0);
    crate::queue::wait_state(&repo, &a, "merged");
    crate::support::eventually(30, "the warning to move to the base", || {
        let now = all();
        now.as_array().unwrap().len() == 1 && now[0]["with"] == "base"
    });
    assert_eq!(all()[0]["task"], b.as_str());
    assert!(crate::support::events(&repo, &a).contains(&"conflict_cleared".to_owned()));

    // Bob rebases away from it (his change goes elsewhere): nothing is left.
    crate::support::git_in(&b_wt, &["reset", "-q", "--hard", "main"]);
    commit_in(&b_wt, "elsewhere", &[("api/other.txt", "bob\n")]);
    repo.run(["heartbeat", &b, "--agent", "bob"]).expect(0);
    crate::support::eventually(30, "the warning to clear", || {
        all().as_array().unwrap().is_empty()
    });
    let last = crate::queue::last_event(&repo, &b, "conflict_cleared");
    assert!(
        last["evidence"].get("with").is_none(),
        "cleared with the base: {last}"
    );
}

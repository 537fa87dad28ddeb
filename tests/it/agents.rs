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

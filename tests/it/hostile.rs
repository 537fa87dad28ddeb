//! What a hostile or clumsy world does to the daemon: out-of-range values, names that
//! look alike, retries, lost ledgers, runaway commands, a moved base, floods of
//! connections. Each test drives the real binary and checks that nothing is lost and
//! nothing unverified lands.

use crate::support::*;

fn shop() -> TestRepo {
    let repo = TestRepo::new();
    repo.files(&["api/app.py", "web/index.html", "docs/README.md"])
        .config(
            "[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\n\
             [[subsystem]]\nname = \"web\"\npaths = [\"web/\"]\n\n\
             [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\n",
        )
        .commit("init");
    repo
}

#[test]
fn values_out_of_bounds_are_refused_everywhere() {
    let repo = shop();
    let _daemon = repo.start_daemon();
    let run = repo.run(["task", "add", "x", "--priority", "9223372036854775807"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("9223372036854775807"),
        "{}",
        run.stderr()
    );
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    repo.run(["task", "add", "x", "--priority", "1000"])
        .expect(0);
    let reply = raw_post(
        &repo,
        "/v1/tasks",
        r#"{"title":"y","priority":-1001,"by":"planner"}"#,
    );
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply.contains("the priority is -1001; it must be from -1000 to 1000"),
        "{reply}"
    );
    let tasks = repo.run(["--json", "task", "list"]).expect(0).json();
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
}

fn approval_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.files(&["api/app.py", "docs/README.md"])
        .config(
            "[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\n\
             [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\napproval = \"required\"\n",
        )
        .commit("init");
    repo
}

#[test]
fn names_are_compared_as_people_mean_them() {
    let repo = approval_repo();
    let _daemon = repo.start_daemon();
    let id = add(&repo, "Docs", &["docs"]);
    let claimed = claim(&repo, Some(&id), "Carol");
    assert_eq!(claimed["agent"], "carol");
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(&wt, "docs", &[("docs/README.md", "better\n")]);
    // The same executor, however spelled, holds the claim.
    repo.run(["heartbeat", &id, "--agent", " CAROL "]).expect(0);
    let submitted = repo
        .run(["--json", "submit", &id, "--agent", "carol"])
        .expect(0)
        .json();
    assert_eq!(submitted["state"], "awaiting_approval");
    for spelling in [
        "Carol",
        " carol ",
        "CAROL",
        "\u{FF23}\u{FF41}\u{FF52}\u{FF4F}\u{FF4C}",
    ] {
        repo.run(["approve", &id, "--by", spelling]).refused(
            1,
            "carol is t1's executor and cannot approve its own change",
        );
    }
    repo.run(["approve", &id, "--by", "car\u{200B}ol"])
        .refused(2, "--by must be 1 to 100 printable characters");
    let approved = repo
        .run(["--json", "approve", &id, "--by", "Lead"])
        .expect(0)
        .json();
    assert_eq!(approved["state"], "queued");
    let log = repo.run(["--json", "log", &id]).expect(0).json();
    let approval = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "approved")
        .unwrap();
    assert_eq!(approval["by"]["name"], "lead");
}

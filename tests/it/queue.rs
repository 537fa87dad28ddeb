//! The merge queue, end to end: submit, checkpoints, rebase, verify, fast-forward,
//! against a real daemon and real repositories.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{
    TestRepo, add, claim, commit_in, events, eventually, git_in, queue_events, show,
};

/// A repository whose verify checks every file for the word BROKEN, with subsystems
/// `api`, `web` (verify: web has an index), `docs`, and `ci` (approval required).
pub(crate) fn queue_repo(extra: &str) -> TestRepo {
    queue_repo_with("", extra)
}

/// `queue_repo`, with more keys in its `[queue]` table.
pub(crate) fn queue_repo_with(queue: &str, extra: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.file("api/handler.txt", "line 1\nline 2\nline 3\n");
    repo.file("web/index.html", "<html>home</html>\n");
    repo.file("docs/guide.md", "# Guide\n");
    repo.file(".github/ci.yml", "on: push\n");
    repo.file(
        "check.sh",
        "#!/bin/sh\n! grep -rl BROKEN --exclude=check.sh --exclude-dir=.git .\n",
    );
    std::fs::set_permissions(
        repo.root.join("check.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    repo.config(&format!(
        "[queue]\nverify = [\"./check.sh\"]\nverify_timeout = \"20s\"\n{queue}\
         [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\nmax_parallel = 3\n\
         [[subsystem]]\nname = \"web\"\npaths = [\"web/\"]\nverify = [\"test -f web/index.html\"]\n\
         [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\", \"*.md\"]\n\
         [[subsystem]]\nname = \"ci\"\npaths = [\".github/\"]\napproval = \"required\"\n\
         [worktrees]\npool = 2\n{extra}"
    ));
    repo.commit("init");
    // The main checkout stays on main: switchyard keeps it in step while it is clean.
    repo
}

/// `queue_repo_with(queue)`, whose verify first runs `before` and then waits until the
/// test creates `$HOME/go`, then runs `./check.sh`: the integrations the test wants to
/// watch happen only once it lets them.
fn gated_queue_repo(queue: &str, before: &str) -> TestRepo {
    let repo = queue_repo_with(queue, "");
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&text.replace(
        "verify = [\"./check.sh\"]",
        &format!(
            "verify = [\"{before}while [ ! -f \\\"$HOME/go\\\" ]; do sleep 0.05; done; ./check.sh\"]"
        ),
    ));
    repo.commit("gate verify");
    repo
}

/// One task per `(scope, file, content)`, each by an agent of its own, submitted in
/// order: their ids.
pub(crate) fn work_all(repo: &TestRepo, changes: &[(&str, &str, &str)]) -> Vec<String> {
    changes
        .iter()
        .enumerate()
        .map(|(i, (scope, file, content))| {
            work(
                repo,
                &format!("task {i}"),
                &[scope],
                &format!("agent{i}"),
                &[(file, content)],
            )
            .0
        })
        .collect()
}

/// Claims `scope`'s new task, writes `files` in its worktree, commits, and submits.
pub(crate) fn work(
    repo: &TestRepo,
    title: &str,
    scope: &[&str],
    agent: &str,
    files: &[(&str, &str)],
) -> (String, PathBuf, Value) {
    let id = add(repo, title, scope);
    let claimed = claim(repo, Some(&id), agent);
    let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(&wt, title, files);
    let submitted = repo
        .run(["--json", "submit", &id, "--agent", agent])
        .expect(0)
        .json();
    (id, wt, submitted)
}

pub(crate) fn state(repo: &TestRepo, id: &str) -> String {
    show(repo, id)["state"].as_str().unwrap().to_owned()
}

pub(crate) fn wait_state(repo: &TestRepo, id: &str, want: &str) {
    eventually(60, &format!("{id} to be {want}"), || {
        let s = state(repo, id);
        assert!(
            s == want || !["returned", "merged"].contains(&s.as_str()),
            "{id} ended {s} while waiting for {want}: {:?}",
            events(repo, id)
        );
        s == want
    });
}

pub(crate) fn last_event(repo: &TestRepo, id: &str, kind: &str) -> Value {
    event(&log(repo, id), kind).clone()
}

pub(crate) fn event<'a>(log: &'a Value, kind: &str) -> &'a Value {
    log.as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {log:#}"))
}

pub(crate) fn log(repo: &TestRepo, id: &str) -> Value {
    repo.run(["--json", "log", id]).expect(0).json()
}

/// Every commit on main since `start`, oldest first, with a single parent each.
pub(crate) fn linear_history(repo: &TestRepo, start: &str) -> Vec<String> {
    let out = repo.git(&[
        "rev-list",
        "--reverse",
        "--parents",
        &format!("{start}..main"),
    ]);
    out.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 2, "a merge commit landed on main: {l}");
            parts[0].to_owned()
        })
        .collect()
}

#[test]
fn a_clean_change_lands_by_fast_forward() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let (id, wt, submitted) = work(
        &repo,
        "Add line 4",
        &["api"],
        "a1",
        &[("api/handler.txt", "line 1\nline 2\nline 3\nline 4\n")],
    );
    assert_eq!(submitted["state"], "queued");
    assert_eq!(submitted["attempt"], 1);
    wait_state(&repo, &id, "merged");
    // The user's checkout and the task's worktree are seen to in the background, off the
    // queue's path: their events come after the base moved, in no fixed order.
    eventually(
        30,
        "the checkout to follow and the worktree to be recycled",
        || {
            let kinds = events(&repo, &id);
            kinds.contains(&"checkout_updated".to_owned())
                && kinds.contains(&"worktree_recycled".to_owned())
        },
    );

    let landed = linear_history(&repo, &start);
    assert_eq!(landed.len(), 1);
    let commit = &landed[0];
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an|%s|%cn", commit])
            .trim(),
        "Test Author|Add line 4|switchyard"
    );
    // The task's branch points at what landed; the user's clean checkout followed main.
    let task = show(&repo, &id);
    assert_eq!(
        repo.git(&["rev-parse", task["branch"].as_str().unwrap()])
            .trim(),
        commit
    );
    assert_eq!(
        std::fs::read_to_string(repo.root.join("api/handler.txt")).unwrap(),
        "line 1\nline 2\nline 3\nline 4\n"
    );
    assert_eq!(
        repo.git(&["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
    assert_eq!(
        task["worktree"],
        Value::Null,
        "the worktree went back to the pool"
    );
    eventually(10, "the worktree to be recycled", || !wt.exists());
    let kinds = events(&repo, &id);
    let background = ["checkout_updated", "worktree_recycled"];
    let tail: Vec<&str> = kinds
        .iter()
        .skip(3)
        .map(String::as_str)
        .filter(|k| !background.contains(k))
        .collect();
    assert_eq!(
        tail,
        vec![
            "submitted",
            "integration_started",
            "rebased",
            "verify_passed",
            "base_moved",
            "branch_updated",
            "merged",
        ]
    );
    let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    assert!(at("base_moved") < at("checkout_updated"), "{kinds:?}");
    assert!(at("merged") < at("worktree_recycled"), "{kinds:?}");
    assert_eq!(kinds.len(), 3 + tail.len() + background.len(), "{kinds:?}");
    let passed = last_event(&repo, &id, "verify_passed");
    let commands: Vec<&str> = passed["evidence"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        vec!["./check.sh"],
        "only the touched subsystems' commands run"
    );
    assert_eq!(
        repo.run(["--json", "queue"]).expect(0).json(),
        serde_json::json!([])
    );
}

#[test]
fn a_failing_verify_returns_the_task_with_evidence_and_a_fix_lands() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let (id, wt, _) = work(
        &repo,
        "Break the page",
        &["web"],
        "b1",
        &[("web/index.html", "<html>BROKEN</html>\n")],
    );
    wait_state(&repo, &id, "returned");
    let failed = last_event(&repo, &id, "verify_failed");
    let ev = &failed["evidence"]["failed"];
    assert_eq!(ev["command"], "./check.sh");
    assert_eq!(ev["outcome"], "exited");
    assert_eq!(ev["code"], 1);
    assert!(ev["duration_ms"].is_u64());
    assert_eq!(ev["tail"], serde_json::json!(["./web/index.html"]));
    let log_path = ev["log"].as_str().unwrap();
    assert!(
        log_path.contains("/.git/switchyard/logs/t1/attempt-1/"),
        "{log_path}"
    );
    assert!(
        std::fs::read_to_string(log_path)
            .unwrap()
            .contains("web/index.html")
    );
    assert_eq!(
        show(&repo, &id)["agent"],
        "b1",
        "it is back with its executor"
    );
    assert_eq!(
        repo.git(&["log", "--oneline", "main"]).lines().count(),
        1,
        "nothing landed"
    );

    // The executor fixes it in the same worktree and submits again: attempt 2.
    commit_in(
        &wt,
        "Fix the page",
        &[("web/index.html", "<html>fixed</html>\n")],
    );
    git_in(
        &wt,
        &[
            "commit",
            "-q",
            "--allow-empty",
            "--author=Bo Builder <bo@example.com>",
            "-m",
            "Reviewed in pairs",
        ],
    );
    let executor = git_in(&wt, &["log", "-1", "--format=%an <%ae>", "HEAD^"]);
    let again = repo
        .run(["--json", "submit", &id, "--agent", "b1"])
        .expect(0)
        .json();
    assert_eq!(again["attempt"], 2);
    wait_state(&repo, &id, "merged");
    assert_eq!(
        repo.git(&["show", "main:web/index.html"]),
        "<html>fixed</html>\n"
    );
    // One commit landed for the task, named after it, saying what verified it; the
    // broken intermediate commit never reached main, so `git bisect` meets no red commit.
    assert_eq!(
        repo.git(&["log", "--format=%s", "main"])
            .lines()
            .collect::<Vec<_>>(),
        vec!["Break the page", "init"]
    );
    assert_eq!(
        repo.git(&["log", "-G", "<html>BROKEN", "--oneline", "main"]),
        ""
    );
    let message = repo.git(&["log", "-1", "--format=%B", "main"]);
    assert!(
        message.trim_end().ends_with(
            "\n\nSwitchyard-Task: t1\nSwitchyard-Verified: ./check.sh\n\
             Switchyard-Verified: test -f web/index.html\n\
             Co-authored-by: Bo Builder <bo@example.com>"
        ),
        "{message:?}"
    );
    let author = repo.git(&["log", "-1", "--format=%an <%ae> / %cn", "main"]);
    assert_eq!(author.trim(), format!("{} / switchyard", executor.trim()));
}

#[test]
fn land_rebase_replays_every_commit() {
    let repo = queue_repo_with("land = \"rebase\"\n", "");
    let _daemon = repo.start_daemon();
    let (id, wt, _) = work(
        &repo,
        "Break the page",
        &["web"],
        "b1",
        &[("web/index.html", "<html>BROKEN</html>\n")],
    );
    wait_state(&repo, &id, "returned");
    commit_in(
        &wt,
        "Fix the page",
        &[("web/index.html", "<html>fixed</html>\n")],
    );
    repo.run(["submit", &id, "--agent", "b1"]).expect(0);
    wait_state(&repo, &id, "merged");
    // Both commits landed, linear, with their own messages; only the last was verified.
    assert_eq!(
        repo.git(&["log", "--format=%s", "main"])
            .lines()
            .collect::<Vec<_>>(),
        vec!["Fix the page", "Break the page", "init"]
    );
}

#[test]
fn a_conflict_returns_the_task_with_the_conflicting_paths() {
    let repo = queue_repo("[claims]\nlease = \"10m\"\n");
    let _daemon = repo.start_daemon();
    let first = add(&repo, "Change line 2 one way", &["api"]);
    let second = add(&repo, "Change line 2 another way", &["api"]);
    let w1 = PathBuf::from(
        claim(&repo, Some(&first), "x")["worktree"]
            .as_str()
            .unwrap(),
    );
    let w2 = PathBuf::from(
        claim(&repo, Some(&second), "y")["worktree"]
            .as_str()
            .unwrap(),
    );
    commit_in(
        &w1,
        "one way",
        &[("api/handler.txt", "line 1\nline TWO\nline 3\n")],
    );
    commit_in(
        &w2,
        "another way",
        &[("api/handler.txt", "line 1\nline deux\nline 3\n")],
    );
    repo.run(["submit", &first, "--agent", "x"]).expect(0);
    wait_state(&repo, &first, "merged");
    repo.run(["submit", &second, "--agent", "y"]).expect(0);
    wait_state(&repo, &second, "returned");
    let conflict = last_event(&repo, &second, "conflict");
    assert_eq!(
        conflict["evidence"]["paths"],
        serde_json::json!(["api/handler.txt"])
    );
    assert_eq!(
        repo.git(&["show", "main:api/handler.txt"]),
        "line 1\nline TWO\nline 3\n"
    );
    // The executor rebases, resolves and submits again.
    let out = crate::support::hermetic(&mut std::process::Command::new("git"), &repo.home())
        .args(["rebase", "main"])
        .current_dir(&w2)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the rebase conflicts as reported");
    std::fs::write(
        w2.join("api/handler.txt"),
        "line 1\nline TWO and deux\nline 3\n",
    )
    .unwrap();
    git_in(&w2, &["add", "api/handler.txt"]);
    crate::support::hermetic(&mut std::process::Command::new("git"), &repo.home())
        .args(["-c", "core.editor=true", "rebase", "--continue"])
        .current_dir(&w2)
        .output()
        .unwrap();
    repo.run(["submit", &second, "--agent", "y"]).expect(0);
    wait_state(&repo, &second, "merged");
    assert_eq!(
        repo.git(&["show", "main:api/handler.txt"]),
        "line 1\nline TWO and deux\nline 3\n"
    );
}

#[test]
fn a_scope_change_waits_for_a_person() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let (id, wt, submitted) = work(
        &repo,
        "Docs and a handler tweak",
        &["docs"],
        "c1",
        &[
            ("docs/guide.md", "# Guide\nNew.\n"),
            ("api/handler.txt", "line 1\nline 2\nline 3\nmore\n"),
        ],
    );
    assert_eq!(submitted["state"], "awaiting_approval");
    assert_eq!(
        submitted["checkpoints"],
        serde_json::json!(["scope change: api/handler.txt (api)"])
    );
    let sub = last_event(&repo, &id, "submitted");
    assert_eq!(
        sub["evidence"]["out_of_scope"],
        serde_json::json!([{"path": "api/handler.txt", "owner": "api"}])
    );
    let queue = repo.run(["--json", "queue"]).expect(0).json();
    assert_eq!(queue[0]["waiting_for"], "a person's approval");
    // Nothing moves until a person decides: another task submitted after it is
    // integrated and lands, and this one still waits.
    let (other, _, _) = work(
        &repo,
        "Docs",
        &["docs"],
        "c2",
        &[("docs/other.md", "# more\n")],
    );
    wait_state(&repo, &other, "merged");
    assert_eq!(state(&repo, &id), "awaiting_approval");

    // Rejected first: back to the executor with the reason.
    repo.run(["reject", &id, "--by", "lead"]).expect(2);
    let rejected = repo
        .run([
            "--json",
            "reject",
            &id,
            "--reason",
            "split the api change out",
            "--by",
            "lead",
        ])
        .expect(0)
        .json();
    assert_eq!(rejected["state"], "returned");
    assert_eq!(
        last_event(&repo, &id, "rejected")["evidence"]["reason"],
        "split the api change out"
    );
    // Submitted again unchanged, then approved: it lands.
    let again = repo
        .run(["--json", "submit", &id, "--agent", "c1"])
        .expect(0)
        .json();
    assert_eq!(again["state"], "awaiting_approval");
    repo.run(["approve", &id, "--by", "lead"]).expect(0);
    wait_state(&repo, &id, "merged");
    let approved = last_event(&repo, &id, "approved");
    assert_eq!(
        approved["by"],
        serde_json::json!({"kind": "person", "name": "lead"})
    );
    eventually(10, "the worktree to be recycled", || !wt.exists());
    // The same approval again (its reply lost) answers as the first did; anyone else's
    // comes too late.
    let again = repo
        .run(["--json", "approve", &id, "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(again["state"], "merged");
    repo.run(["approve", &id, "--by", "other"])
        .refused(1, "is merged, not awaiting approval");
}

#[test]
fn approval_required_subsystems_and_unsafe_changes_stop_at_the_checkpoint() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let (id, _, submitted) = work(
        &repo,
        "CI tweak",
        &["ci"],
        "d1",
        &[(".github/ci.yml", "on: [push, pull_request]\n")],
    );
    assert_eq!(submitted["state"], "awaiting_approval");
    assert_eq!(
        submitted["checkpoints"],
        serde_json::json!(["subsystem ci requires approval"])
    );
    repo.run(["task", "cancel", &id, "--by", "lead"]).expect(0);

    // A symlink out of the repository, binary content, odd names, a rename across
    // subsystems: each has a clear outcome.
    let id = add(&repo, "Odd files", &["api", "docs"]);
    let wt = PathBuf::from(claim(&repo, Some(&id), "d2")["worktree"].as_str().unwrap());
    std::os::unix::fs::symlink("/etc/passwd", wt.join("api/passwd")).unwrap();
    std::fs::write(wt.join("api/blob.bin"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    std::fs::write(wt.join("docs/naïve notes.md"), "accents and spaces\n").unwrap();
    git_in(&wt, &["mv", "api/handler.txt", "web/handler.txt"]);
    commit_in(&wt, "Odd files", &[]);
    let submitted = repo
        .run(["--json", "submit", &id, "--agent", "d2"])
        .expect(0)
        .json();
    assert_eq!(submitted["state"], "awaiting_approval");
    let reasons: Vec<&str> = submitted["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "scope change: web/handler.txt (web)",
            "symlinks pointing outside the repository: api/passwd -> /etc/passwd"
        ]
    );
    repo.run(["approve", &id, "--by", "lead"]).expect(0);
    wait_state(&repo, &id, "merged");
    assert_eq!(
        repo.git(&["show", "main:docs/naïve notes.md"]),
        "accents and spaces\n"
    );
    assert_eq!(
        repo.git(&["cat-file", "-s", "main:api/blob.bin"]).trim(),
        "7"
    );
}

#[test]
fn submit_refuses_what_cannot_be_integrated() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let id = add(&repo, "Nothing yet", &["api"]);
    let wt = PathBuf::from(claim(&repo, Some(&id), "e1")["worktree"].as_str().unwrap());
    repo.run(["submit", &id, "--agent", "e1"]).refused(
        1,
        "t1 has no commits beyond main; commit your work on switchyard/t1-nothing-yet first",
    );
    commit_in(&wt, "Work", &[("api/handler.txt", "changed\n")]);
    repo.run(["submit", &id, "--agent", "intruder"])
        .refused(1, "t1 is claimed by e1, not by intruder");
    repo.run(["submit", "t99", "--agent", "e1"])
        .refused(1, "no task t99");
    // A branch rewritten so that it drops a commit of the base.
    let other = add(&repo, "Moves main", &["docs"]);
    let w2 = PathBuf::from(
        claim(&repo, Some(&other), "e2")["worktree"]
            .as_str()
            .unwrap(),
    );
    commit_in(&w2, "Docs", &[("docs/guide.md", "# Guide 2\n")]);
    repo.run(["submit", &other, "--agent", "e2"]).expect(0);
    wait_state(&repo, &other, "merged");
    let id3 = add(&repo, "Rewrites history", &["api"]);
    let w3 = PathBuf::from(claim(&repo, Some(&id3), "e3")["worktree"].as_str().unwrap());
    commit_in(&w3, "Mine", &[("api/handler.txt", "mine\n")]);
    // Drop the base's latest commit from under the work.
    git_in(&w3, &["rebase", "-q", "--onto", "HEAD~2", "HEAD~1"]);
    repo.run(["submit", &id3, "--agent", "e3"]).refused(
        1,
        "t3's branch no longer contains the base commit it started from",
    );
    assert_eq!(state(&repo, &id), "claimed");
}

#[test]
fn verify_commands_that_hang_flood_or_do_not_exist() {
    let repo = queue_repo("");
    repo.config(
        "[queue]\nverify = [\"./verify.sh\"]\nverify_timeout = \"1s\"\n\
         [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\
         [[subsystem]]\nname = \"web\"\npaths = [\"web/\"]\nverify = [\"no-such-command --please\"]\n\
         [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\nverify = [\"yes flood | head -c 10000000\"]\n",
    );
    repo.file(
        "verify.sh",
        "#!/bin/sh\nif [ -f api/hang ]; then sleep 60; fi\n",
    );
    std::fs::set_permissions(
        repo.root.join("verify.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    repo.commit("verify script");
    let _daemon = repo.start_daemon();

    let (hang, _, _) = work(&repo, "Hangs", &["api"], "f1", &[("api/hang", "x\n")]);
    wait_state(&repo, &hang, "returned");
    let ev = last_event(&repo, &hang, "verify_failed")["evidence"]["failed"].clone();
    assert_eq!(ev["outcome"], "timed_out");
    assert!(ev["duration_ms"].as_u64().unwrap() < 10_000);

    let (missing, _, _) = work(
        &repo,
        "Missing command",
        &["web"],
        "f2",
        &[("web/x", "x\n")],
    );
    wait_state(&repo, &missing, "returned");
    let ev = last_event(&repo, &missing, "verify_failed")["evidence"]["failed"].clone();
    assert_eq!(ev["command"], "no-such-command --please");
    assert_eq!(ev["code"], 127);
    assert!(
        ev["tail"][0].as_str().unwrap().contains("not found"),
        "{ev}"
    );

    let (flood, _, _) = work(&repo, "Floods", &["docs"], "f3", &[("docs/x", "x\n")]);
    wait_state(&repo, &flood, "merged");
    let passed = last_event(&repo, &flood, "verify_passed");
    let log_path = passed["evidence"]["commands"][1]["log"].as_str().unwrap();
    assert!(std::fs::metadata(log_path).unwrap().len() < 5 * 1024 * 1024);
}

#[test]
fn a_base_moved_by_hand_pauses_the_queue_until_a_person_resumes() {
    let repo = queue_repo("");
    repo.config(
        "[queue]\nverify = [\"./slow.sh\"]\n[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\
         [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\n",
    );
    repo.file(
        "slow.sh",
        "#!/bin/sh\nwhile [ ! -f \"$HOME/go\" ]; do sleep 0.05; done\n",
    );
    std::fs::set_permissions(
        repo.root.join("slow.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    repo.commit("slow verify");
    // The main checkout is moved off main, as the README recommends.
    repo.git(&["checkout", "-q", "--detach"]);
    let daemon = repo
        .try_start_daemon_with(&[("HOME", repo.home().to_str().unwrap())])
        .unwrap();
    let (id, _, _) = work(
        &repo,
        "Slow",
        &["api"],
        "g1",
        &[("api/handler.txt", "g1\n")],
    );
    eventually(30, "verify to start", || {
        events(&repo, &id).contains(&"rebased".to_owned())
    });
    // Someone moves main by hand meanwhile.
    let pushed = {
        // In a clone, pushed back: a worktree of the repository would race the
        // daemon's own worktree bookkeeping.
        let tmp = repo.tmp.path().join("hand");
        repo.git(&[
            "clone",
            "-q",
            repo.root.to_str().unwrap(),
            tmp.to_str().unwrap(),
        ]);
        commit_in(&tmp, "By hand", &[("docs/guide.md", "# by hand\n")]);
        git_in(&tmp, &["push", "-q", "origin", "HEAD:main"]);
        git_in(&tmp, &["rev-parse", "HEAD"]).trim().to_owned()
    };
    std::fs::write(repo.home().join("go"), "").unwrap();
    // Verify passes, but the base is not where the lander left it: the queue pauses,
    // naming the commit, and nothing moves the base.
    eventually(30, "the queue to pause", || {
        queue_events(&repo)
            .iter()
            .any(|e| e["event"] == "base_moved_outside")
    });
    let pause = queue_events(&repo).pop().unwrap();
    assert_eq!(pause["evidence"]["commits"][0]["commit"], pushed.as_str());
    assert_eq!(pause["evidence"]["commits"][0]["subject"], "By hand");
    assert_eq!(repo.git(&["rev-parse", "main"]).trim(), pushed);
    assert_eq!(state(&repo, &id), "verifying");
    assert!(!events(&repo, &id).contains(&"base_moved".to_owned()));
    let text = repo.run(["queue"]).expect(0).stdout();
    assert!(text.starts_with("the queue is paused since"), "{text}");
    assert!(text.contains("waiting for the queue to resume"), "{text}");
    let status = repo.run(["--json", "queue"]).expect(0).json();
    assert!(
        status[0]["waiting_for"]
            .as_str()
            .unwrap()
            .starts_with("the queue to resume (paused: main moved from"),
        "{status}"
    );

    // A person looks and accepts main as it is: the task is integrated again onto it.
    let resumed = repo
        .run(["--json", "resume", "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(resumed["base"], pushed.as_str());
    repo.run(["resume", "--by", "lead"])
        .refused(1, "the queue is not paused");
    wait_state(&repo, &id, "merged");
    let kinds = events(&repo, &id);
    assert!(kinds.contains(&"base_raced".to_owned()), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "verify_passed").count(),
        2,
        "{kinds:?}"
    );
    // The hand-made commit is kept, and the task landed on top of it, linear.
    assert_eq!(repo.git(&["rev-parse", "main~1"]).trim(), pushed);
    let passed = last_event(&repo, &id, "verify_passed");
    assert_eq!(
        passed["evidence"]["onto"],
        pushed.as_str(),
        "verified on exactly the base it replaced"
    );
    drop(daemon);
}

#[test]
fn a_dirty_checkout_of_the_base_is_left_alone() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    std::fs::write(repo.root.join("docs/guide.md"), "# my local edit\n").unwrap();
    let (id, _, _) = work(
        &repo,
        "Api change",
        &["api"],
        "h1",
        &[("api/handler.txt", "h1\n")],
    );
    wait_state(&repo, &id, "merged");
    eventually(30, "the checkout to be looked at", || {
        events(&repo, &id).contains(&"checkout_left_behind".to_owned())
    });
    let left = last_event(&repo, &id, "checkout_left_behind");
    assert!(left["evidence"]["hint"].as_str().unwrap().contains("stash"));
    assert_eq!(
        std::fs::read_to_string(repo.root.join("docs/guide.md")).unwrap(),
        "# my local edit\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.root.join("api/handler.txt")).unwrap(),
        "line 1\nline 2\nline 3\n"
    );
    assert_eq!(repo.git(&["show", "main:api/handler.txt"]), "h1\n");
}

#[test]
fn with_a_remote_the_base_is_pushed_and_a_moved_remote_means_again() {
    let repo = queue_repo("");
    let bare = repo.tmp.path().join("origin.git");
    crate::support::hermetic(&mut std::process::Command::new("git"), &repo.home())
        .args([
            "clone",
            "-q",
            "--bare",
            repo.root.to_str().unwrap(),
            bare.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    repo.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&format!("remote = \"origin\"\n{text}"));
    repo.commit("remote");
    repo.git(&["push", "-q", "origin", "main"]);
    repo.git(&["checkout", "-q", "--detach"]);
    let _daemon = repo.start_daemon();

    // Someone else pushes to the remote first.
    let other = repo.tmp.path().join("other");
    crate::support::hermetic(&mut std::process::Command::new("git"), &repo.home())
        .args([
            "clone",
            "-q",
            bare.to_str().unwrap(),
            other.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    commit_in(
        &other,
        "Elsewhere",
        &[("docs/guide.md", "# from elsewhere\n")],
    );
    git_in(&other, &["push", "-q", "origin", "main"]);

    let (id, _, _) = work(
        &repo,
        "Remote change",
        &["api"],
        "r1",
        &[("api/handler.txt", "r1\n")],
    );
    wait_state(&repo, &id, "merged");
    let remote_main = git_in(&bare, &["rev-parse", "main"]);
    assert_eq!(
        repo.git(&["rev-parse", "main"]),
        remote_main,
        "local main follows the remote"
    );
    assert_eq!(
        git_in(&bare, &["log", "--format=%s", "-3", "main"])
            .lines()
            .collect::<Vec<_>>(),
        vec!["Remote change", "Elsewhere", "remote"]
    );
    assert!(events(&repo, &id).contains(&"pushed".to_owned()));

    // From now on the remote's main is the lander's: a push by someone else pauses the
    // queue at the next integration, until a person accepts it.
    git_in(&other, &["pull", "-q", "--rebase=false", "origin", "main"]);
    commit_in(&other, "Elsewhere again", &[("docs/guide.md", "# again\n")]);
    git_in(&other, &["push", "-q", "origin", "main"]);
    let elsewhere = git_in(&other, &["rev-parse", "HEAD"]).trim().to_owned();
    let (second, _, _) = work(
        &repo,
        "Second change",
        &["api"],
        "r2",
        &[("api/handler.txt", "r2\n")],
    );
    eventually(30, "the queue to pause", || {
        queue_events(&repo).iter().any(|e| {
            e["event"] == "base_moved_outside" && e["evidence"]["found"] == elsewhere.as_str()
        })
    });
    assert_eq!(state(&repo, &second), "queued");
    repo.run(["resume", "--by", "lead"]).expect(0);
    wait_state(&repo, &second, "merged");
    assert_eq!(
        git_in(&bare, &["log", "--format=%s", "-2", "main"])
            .lines()
            .collect::<Vec<_>>(),
        vec!["Second change", "Elsewhere again"]
    );
}

/// Kills the daemon at many points of a multi-task run: with the test-only hook that
/// aborts right after the Nth recorded integration step (every restart aborts again after
/// N more), and with plain SIGKILL after varying delays. Then checks that every task ends
/// merged or returned, history stays linear, and everything on main is the verified head
/// of a merged task.
#[test]
fn crashes_at_every_step_never_land_anything_twice_or_unverified() {
    crashes_at_every_step(1, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 11], false);
}

#[test]
fn crashes_with_four_candidates_in_flight_never_land_anything_twice_or_unverified() {
    crashes_at_every_step(4, &[2, 4, 6, 9, 12, 15], false);
}

/// Four tasks (the third fails verify) integrated through daemons that crash: aborted
/// by the test hook after each of `steps` recorded steps, then killed with SIGKILL at
/// random moments. No task is lost, none lands twice, every commit on the base was
/// verified on exactly its parent (with `lanes`: or carried onto it from a commit that
/// was verified), and no scratch branch is left.
pub(crate) fn crashes_at_every_step(max_parallel: u32, steps: &[u32], lanes: bool) {
    let runs: Vec<Option<u32>> = steps.iter().copied().map(Some).chain([None]).collect();
    for abort_after in runs {
        let what = match abort_after {
            Some(n) => format!("max_parallel {max_parallel}, abort after {n} steps"),
            None => format!("max_parallel {max_parallel}, random SIGKILLs"),
        };
        // Verify waits for a gate, so the first daemon (killed once the tasks are in)
        // integrates nothing: every integration step happens under the crashes.
        let lanes_key = if lanes { "lanes = true\n" } else { "" };
        let repo = gated_queue_repo(&format!("max_parallel = {max_parallel}\n{lanes_key}"), "");
        repo.git(&["checkout", "-q", "--detach"]);
        let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
        let first = repo.start_daemon();
        let ids = work_all(
            &repo,
            &[
                ("api", "api/a.txt", "a\n"),
                ("docs", "docs/b.md", "b\n"),
                ("web", "web/c.html", "BROKEN\n"),
                ("api", "api/d.txt", "d\n"),
            ],
        );
        // Down in the middle of whatever it was doing.
        first.kill9();
        std::fs::write(repo.home().join("go"), "").unwrap();
        let n = abort_after.map(|n| n.to_string()).unwrap_or_default();
        let env: Vec<(&str, &str)> = match abort_after {
            Some(_) => vec![("SWITCHYARD_TEST_ABORT_AFTER_STEPS", n.as_str())],
            None => vec![],
        };
        let mut delay_ms = 37u64;
        let mut restarts = 0;
        let mut crashes = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        let drained = || -> bool {
            if std::time::Instant::now() > deadline {
                panic!("{what}: the queue never drained:\n{}", dump_ledger(&repo));
            }
            true
        };
        eventually(200, &format!("{what}: the queue to drain"), || {
            drained();
            let daemon = repo.try_start_daemon_with(&env).unwrap();
            restarts += 1;
            if abort_after.is_some() {
                let mut daemon = daemon;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while daemon.child.try_wait().unwrap().is_none()
                    && std::time::Instant::now() < deadline
                {
                    if ids.iter().all(|id| {
                        ["merged", "returned"].contains(&state_offline(&repo, id).as_str())
                    }) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                // A daemon that exited must have been aborted by the hook, nothing else.
                if let Some(status) = daemon.child.try_wait().unwrap() {
                    use std::os::unix::process::ExitStatusExt;
                    assert_eq!(
                        status.signal(),
                        Some(libc::SIGABRT),
                        "{what}: the daemon exited with {status}, not by the hook:\n{}",
                        daemon.log_text()
                    );
                    assert!(
                        daemon
                            .log_text()
                            .contains("test hook: aborting the process now"),
                        "{what}"
                    );
                    crashes += 1;
                }
            } else {
                // Killed after a varying time that grows, so the run always finishes,
                // also on a loaded machine where a verify takes a second.
                std::thread::sleep(std::time::Duration::from_millis(delay_ms));
                delay_ms = 20 + (delay_ms * 7 + 13) % 300 + restarts * 60;
                daemon.kill9();
            }
            ids.iter()
                .all(|id| ["merged", "returned"].contains(&state_offline(&repo, id).as_str()))
        });
        if abort_after.is_some() {
            assert!(crashes >= 1, "{what}: the hook never crashed the daemon");
        }
        let _daemon = repo.start_daemon();
        // The daemon's own moves of the base, cut short by crashes, were recognized as
        // its own: the queue never paused.
        assert_eq!(queue_events(&repo), Vec::<Value>::new(), "{what}");
        let merged: Vec<&String> = ids
            .iter()
            .filter(|id| state(&repo, id) == "merged")
            .collect();
        assert_eq!(
            state(&repo, &ids[2]),
            "returned",
            "{what}: the broken one never lands"
        );
        assert_eq!(
            merged.len(),
            3,
            "{what} ({restarts} restarts):\n{}",
            dump_ledger(&repo)
        );
        let landed = linear_history(&repo, &start);
        assert_eq!(landed.len(), 3, "{what}: {landed:?}");
        for commit in &landed {
            let parent = repo
                .git(&["rev-parse", &format!("{commit}^")])
                .trim()
                .to_owned();
            let owner = merged
                .iter()
                .find(|id| {
                    let log = log(&repo, id);
                    event(&log, "merged")["evidence"]["commit"] == commit.as_str()
                })
                .unwrap_or_else(|| panic!("{what}: {commit} on main is no merged task's"));
            let log = log(&repo, owner);
            let events = log.as_array().unwrap();
            // ... verified on exactly the commit before it on main, or (lanes) carried
            // onto it from a commit that passed verify.
            let verified_on = events.iter().any(|e| {
                e["event"] == "verify_passed"
                    && e["evidence"]["head"] == commit.as_str()
                    && e["evidence"]["onto"] == parent.as_str()
            });
            let carried = events.iter().any(|e| {
                e["event"] == "carried"
                    && e["evidence"]["head"] == commit.as_str()
                    && e["evidence"]["onto"] == parent.as_str()
                    && events.iter().any(|v| {
                        v["event"] == "verify_passed"
                            && v["evidence"]["head"] == e["evidence"]["verified"]
                    })
            });
            assert!(
                verified_on || (lanes && carried),
                "{what}: {commit} was neither verified on its parent {parent} nor carried onto it:\n{}",
                dump_ledger(&repo)
            );
        }
        assert_eq!(
            repo.git(&["for-each-ref", "refs/heads/switchyard-scratch/"]),
            "",
            "{what}: a scratch branch was left behind"
        );
        if max_parallel > 1 {
            // The pipeline really filled: some candidate was built onto another's commit.
            let logs: Vec<Value> = ids.iter().map(|id| log(&repo, id)).collect();
            let heads: Vec<&Value> = logs
                .iter()
                .flat_map(|l| l.as_array().unwrap())
                .filter(|e| e["event"] == "rebased")
                .map(|e| &e["evidence"]["head"])
                .collect();
            let stacked = logs
                .iter()
                .flat_map(|l| l.as_array().unwrap())
                .filter(|e| e["event"] == "integration_started")
                .any(|e| heads.contains(&&e["evidence"]["onto"]));
            assert!(
                stacked,
                "{what}: no candidate was ever built onto another:\n{}",
                dump_ledger(&repo)
            );
        }
    }
}

#[test]
fn several_candidates_verify_at_once_and_land_in_order_each_on_its_parent() {
    // Each verify says it started, then waits for the gate: all three running at once
    // is the proof that none waits for another.
    let repo = gated_queue_repo(
        "max_parallel = 3\n",
        "touch \\\"$HOME/started-$SWITCHYARD_TASK\\\"; ",
    );
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let _daemon = repo.start_daemon();
    let ids = work_all(
        &repo,
        &[
            ("api", "api/a.txt", "0\n"),
            ("docs", "docs/b.md", "1\n"),
            ("web", "web/c.html", "2\n"),
        ],
    );
    eventually(60, "three verifies running at once", || {
        ids.iter()
            .all(|id| repo.home().join(format!("started-{id}")).exists())
    });
    // The queue shows the pipeline: each candidate on the one ahead of it.
    let queue = repo.run(["--json", "queue"]).expect(0).json();
    let on: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["built_on"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        on,
        vec!["base", ids[0].as_str(), ids[1].as_str()],
        "{queue:#}"
    );
    std::fs::write(repo.home().join("go"), "").unwrap();
    for id in &ids {
        wait_state(&repo, id, "merged");
    }
    // Landed in queue order, each verified on exactly the commit before it.
    let landed = linear_history(&repo, &start);
    assert_eq!(landed.len(), 3, "{landed:?}");
    let mut parent = start;
    for (id, commit) in ids.iter().zip(&landed) {
        let log = log(&repo, id);
        assert_eq!(event(&log, "merged")["evidence"]["commit"], commit.as_str());
        let passed = event(&log, "verify_passed");
        assert_eq!(passed["evidence"]["head"], commit.as_str(), "{id}");
        assert_eq!(passed["evidence"]["onto"], parent.as_str(), "{id}");
        parent = commit.clone();
    }
}

#[test]
fn a_failing_candidate_returns_alone_and_the_ones_built_on_it_are_built_again() {
    let repo = gated_queue_repo("max_parallel = 3\n", "");
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let _daemon = repo.start_daemon();
    let ids = work_all(
        &repo,
        &[
            ("api", "api/a.txt", "a\n"),
            ("web", "web/c.html", "BROKEN\n"),
            ("docs", "docs/b.md", "b\n"),
        ],
    );
    // The third is built onto the second's commit before anything is verified.
    eventually(60, "the pipeline to fill", || {
        events(&repo, &ids[2]).contains(&"rebased".to_owned())
    });
    std::fs::write(repo.home().join("go"), "").unwrap();
    wait_state(&repo, &ids[0], "merged");
    wait_state(&repo, &ids[1], "returned");
    wait_state(&repo, &ids[2], "merged");
    let log = log(&repo, &ids[2]);
    let rebuilt = event(&log, "base_raced");
    assert_eq!(rebuilt["evidence"]["was"], log_head_of(&repo, &ids[1]));
    let landed = linear_history(&repo, &start);
    assert_eq!(
        landed.len(),
        2,
        "only the two that passed landed: {landed:?}"
    );
    let passed = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["event"] == "verify_passed")
        .unwrap()
        .clone();
    assert_eq!(passed["evidence"]["onto"], landed[0].as_str());
    assert_eq!(passed["evidence"]["head"], landed[1].as_str());
}

#[test]
fn the_speculation_window_narrows_after_failures_and_widens_after_landings() {
    let repo = queue_repo_with("max_parallel = 4\n", "");
    let _daemon = repo.start_daemon();
    // One failure among landings changes nothing; a streak narrows the window (the
    // observed failure rate, 0.2 then 0.36: a candidate two deep still lands more often
    // than not, three deep no longer does).
    let broken = work_all(&repo, &[("web", "web/c.html", "BROKEN\n")]);
    wait_state(&repo, &broken[0], "returned");
    eventually(30, "the first failure to be counted", || {
        window(&repo) == Some(4)
    });
    let broken = work_all(&repo, &[("web", "web/d.html", "BROKEN\n")]);
    wait_state(&repo, &broken[0], "returned");
    eventually(30, "the window to narrow", || window(&repo) == Some(2));
    let fine = work(&repo, "fine", &["docs"], "d1", &[("docs/b.md", "b\n")]).0;
    wait_state(&repo, &fine, "merged");
    eventually(30, "the window to widen", || window(&repo) == Some(3));
}

#[test]
fn a_flaky_verify_command_is_run_again_and_recorded_as_a_flake() {
    let repo = queue_repo_with("retries = 1\n", "");
    // Fails the first time it runs for a task, passes the second: a flaky test.
    let flaky = "if [ -f \\\"$HOME/ran-$SWITCHYARD_TASK\\\" ]; then ./check.sh; else touch \\\"$HOME/ran-$SWITCHYARD_TASK\\\"; exit 1; fi";
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&text.replace(
        "verify = [\"./check.sh\"]",
        &format!("verify = [\"{flaky}\"]"),
    ));
    repo.commit("flaky verify");
    let _daemon = repo.start_daemon();
    let ids = work_all(
        &repo,
        &[
            ("docs", "docs/b.md", "b\n"),
            ("web", "web/c.html", "BROKEN\n"),
        ],
    );
    wait_state(&repo, &ids[0], "merged");
    let flaked = last_event(&repo, &ids[0], "flaked");
    assert!(
        flaked["evidence"]["command"]
            .as_str()
            .unwrap()
            .contains("ran-"),
        "{flaked:#}"
    );
    assert_eq!(flaked["evidence"]["failed"].as_array().unwrap().len(), 1);
    // A real failure fails again when run again: back with both runs' evidence.
    wait_state(&repo, &ids[1], "returned");
    let failed = last_event(&repo, &ids[1], "verify_failed");
    assert_eq!(failed["evidence"]["failed"]["code"], 1, "{failed:#}");
    assert_eq!(failed["evidence"]["retried"].as_array().unwrap().len(), 1);
    assert!(!events(&repo, &ids[1]).contains(&"flaked".to_owned()));
}

/// The speculation window the ledger holds, read straight from it.
fn window(repo: &TestRepo) -> Option<i64> {
    let db = repo.root.join(".git/switchyard/ledger.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'window'", [], |r| {
            r.get(0)
        })
        .ok();
    value.and_then(|v| serde_json::from_str::<Value>(&v).ok()?["window"].as_i64())
}

/// The commit a task's (last) candidate was built as.
fn log_head_of(repo: &TestRepo, id: &str) -> Value {
    let log = log(repo, id);
    log.as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["event"] == "rebased")
        .map(|e| e["evidence"]["head"].clone())
        .unwrap_or(Value::Null)
}

/// Starts a daemon that aborts after `steps` recorded steps (the test hook), submits one
/// task that writes `content` into `api/handler.txt`, and waits for the abort: its id.
fn one_task_through_a_crash(repo: &TestRepo, steps: &str, content: &str) -> String {
    let mut daemon = repo
        .try_start_daemon_with(&[("SWITCHYARD_TEST_ABORT_AFTER_STEPS", steps)])
        .unwrap();
    let (id, _, _) = work(
        repo,
        "Through a crash",
        &["api"],
        "c1",
        &[("api/handler.txt", content)],
    );
    eventually(30, "the abort", || {
        daemon.child.try_wait().unwrap().is_some()
    });
    id
}

/// Every task's events, straight from the ledger, for a failure message.
pub(crate) fn dump_ledger(repo: &TestRepo) -> String {
    let db = repo.root.join(".git/switchyard/ledger.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT task, kind, state, evidence FROM events ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "t{} {} {:?} {}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?.chars().take(160).collect::<String>()
            ))
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
}

/// A task's state read straight from the ledger, for when no daemon may be running.
pub(crate) fn state_offline(repo: &TestRepo, id: &str) -> String {
    let n: i64 = id[1..].parse().unwrap();
    let db = repo.root.join(".git/switchyard/ledger.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.query_row("SELECT state FROM tasks WHERE seq = ?1", [n], |r| r.get(0))
        .unwrap()
}

#[test]
fn what_lands_is_exactly_what_was_submitted_and_approved() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let (id, wt, submitted) = work(
        &repo,
        "CI and api",
        &["api"],
        "p1",
        &[
            ("api/handler.txt", "p1\n"),
            (".github/ci.yml", "on: [push]\n"),
        ],
    );
    assert_eq!(submitted["state"], "awaiting_approval");
    // The executor keeps committing after submitting; none of that was shown to anyone.
    commit_in(
        &wt,
        "Sneaky",
        &[("web/index.html", "<html>unreviewed</html>\n")],
    );
    repo.run(["approve", &id, "--by", "p1"])
        .refused(1, "p1 is t1's executor and cannot approve its own change");
    repo.run(["approve", &id, "--by", "lead"]).expect(0);
    wait_state(&repo, &id, "merged");
    assert_eq!(
        repo.git(&["show", "main:web/index.html"]),
        "<html>home</html>\n"
    );
    assert_eq!(repo.git(&["show", "main:.github/ci.yml"]), "on: [push]\n");
    // The later commit is still on the branch, not lost.
    let branch = show(&repo, &id)["branch"].as_str().unwrap().to_owned();
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s", &branch]).trim(),
        "Sneaky"
    );
}

#[test]
fn a_task_being_integrated_cannot_be_rejected_or_cancelled() {
    let repo = queue_repo("");
    repo.config(
        "[queue]\nverify = [\"./slow.sh\"]\n[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n",
    );
    repo.file(
        "slow.sh",
        "#!/bin/sh\nwhile [ ! -f \"$HOME/go\" ]; do sleep 0.05; done\n",
    );
    std::fs::set_permissions(
        repo.root.join("slow.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    repo.commit("slow verify");
    repo.git(&["checkout", "-q", "--detach"]);
    let _daemon = repo.start_daemon();
    let (id, _, _) = work(
        &repo,
        "Slow",
        &["api"],
        "s1",
        &[("api/handler.txt", "s1\n")],
    );
    eventually(30, "verify to start", || {
        events(&repo, &id).contains(&"rebased".to_owned())
    });
    repo.run(["reject", &id, "--reason", "no", "--by", "lead"])
        .refused(1, "t1 is being integrated right now");
    repo.run(["task", "cancel", &id, "--by", "lead"])
        .refused(1, "t1 is being integrated right now");
    std::fs::write(repo.home().join("go"), "").unwrap();
    wait_state(&repo, &id, "merged");
}

#[test]
fn merge_commits_are_linearized_unless_they_carry_changes() {
    let repo = queue_repo_with("land = \"rebase\"\n", "");
    let _daemon = repo.start_daemon();
    // A branch that merged main in (nothing of its own in the merge): lands, linear.
    let other = add(&repo, "Moves main", &["docs"]);
    let wo = PathBuf::from(
        claim(&repo, Some(&other), "m0")["worktree"]
            .as_str()
            .unwrap(),
    );
    let id = add(&repo, "Merges main in", &["api"]);
    let wt = PathBuf::from(claim(&repo, Some(&id), "m1")["worktree"].as_str().unwrap());
    commit_in(&wt, "Mine", &[("api/handler.txt", "mine\n")]);
    commit_in(&wo, "Docs", &[("docs/guide.md", "# Guide 2\n")]);
    repo.run(["submit", &other, "--agent", "m0"]).expect(0);
    wait_state(&repo, &other, "merged");
    git_in(&wt, &["merge", "-q", "--no-edit", "main"]);
    commit_in(&wt, "More", &[("api/more.txt", "more\n")]);
    repo.run(["submit", &id, "--agent", "m1"]).expect(0);
    wait_state(&repo, &id, "merged");
    let subjects: Vec<String> = repo
        .git(&["log", "--format=%s", "main"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(subjects, vec!["More", "Mine", "Docs", "init"]);
    let root = repo
        .git(&["rev-list", "--max-parents=0", "main"])
        .trim()
        .to_owned();
    linear_history(&repo, &root);

    // A merge commit with a change of its own would be lost by a linear replay: refused.
    let id2 = add(&repo, "Evil merge", &["api"]);
    let w2 = PathBuf::from(claim(&repo, Some(&id2), "m2")["worktree"].as_str().unwrap());
    let branch2 = show(&repo, &id2)["branch"].as_str().unwrap().to_owned();
    git_in(&w2, &["checkout", "-q", "-b", "side"]);
    commit_in(&w2, "Side", &[("api/side.txt", "side\n")]);
    git_in(&w2, &["checkout", "-q", &branch2]);
    commit_in(&w2, "Main line", &[("api/handler.txt", "main line\n")]);
    git_in(&w2, &["merge", "-q", "--no-commit", "side"]);
    std::fs::write(w2.join("api/merge-fix.txt"), "only in the merge\n").unwrap();
    git_in(&w2, &["add", "api/merge-fix.txt"]);
    git_in(&w2, &["commit", "-qm", "Merge side, with a fix"]);
    repo.run(["submit", &id2, "--agent", "m2"]).expect(0);
    wait_state(&repo, &id2, "returned");
    let conflict = last_event(&repo, &id2, "conflict");
    let reason = conflict["evidence"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("merge commits with changes of their own"),
        "{reason}"
    );
}

/// The base moved by the daemon, then the daemon killed before it recorded that, then
/// someone committing on top: after a restart the move is recognized, not repeated.
#[test]
fn a_base_move_made_before_a_crash_is_never_made_twice() {
    let repo = queue_repo("");
    repo.git(&["checkout", "-q", "--detach"]);
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    // Steps: rebased (1), verified (2), the compare-and-swap (3): abort right after it.
    let id = one_task_through_a_crash(&repo, "3", "once\n");
    let moved = repo.git(&["rev-parse", "main"]).trim().to_owned();
    assert_ne!(moved, start, "the base moved before the abort");
    assert_eq!(
        state_offline(&repo, &id),
        "verifying",
        "but that was not recorded"
    );
    // A hotfix on main while the daemon is down.
    let hand = repo.tmp.path().join("hand");
    repo.git(&["worktree", "add", "-q", hand.to_str().unwrap(), "main"]);
    commit_in(&hand, "Hotfix", &[("docs/guide.md", "# hotfix\n")]);
    git_in(&hand, &["checkout", "-q", "--detach"]);
    let _daemon = repo.start_daemon();
    wait_state(&repo, &id, "merged");
    let subjects: Vec<String> = repo
        .git(&["log", "--format=%s", "main"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(subjects, vec!["Hotfix", "Through a crash", "init"]);
    // The task's own move is recorded as its landing; the hotfix on top of it, made
    // behind the lander's back, pauses the queue until a person accepts it.
    eventually(30, "the queue to pause for the hotfix", || {
        queue_events(&repo).iter().any(|e| {
            e["event"] == "base_moved_outside" && e["evidence"]["commits"][0]["subject"] == "Hotfix"
        })
    });
}

/// `switchyard queue` shows the order the queue integrates in: the task being verified,
/// then by priority and by when each entered the queue (not by id), then those still at
/// a checkpoint.
#[test]
fn the_queue_is_shown_in_the_order_it_integrates() {
    let repo = queue_repo("");
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&text.replace(
        "verify = [\"./check.sh\"]",
        "verify = [\"while [ ! -f \\\"$HOME/go\\\" ]; do sleep 0.05; done\"]",
    ));
    repo.commit("gate verify");
    repo.git(&["checkout", "-q", "--detach"]);
    let _daemon = repo.start_daemon();
    let (first, _, _) = work(&repo, "First", &["api"], "q1", &[("api/a.txt", "a\n")]);
    eventually(30, "the first to be verified", || {
        state(&repo, &first) == "verifying"
    });
    // Made in one order, submitted in the other.
    let early = add(&repo, "Made early", &["docs"]);
    let late = add(&repo, "Made late", &["web"]);
    let gated = add(&repo, "At a checkpoint", &["ci"]);
    for (id, agent, file) in [
        (&late, "q3", "web/l.html"),
        (&early, "q2", "docs/e.md"),
        (&gated, "q4", ".github/g.yml"),
    ] {
        let claimed = claim(&repo, Some(id), agent);
        commit_in(
            std::path::Path::new(claimed["worktree"].as_str().unwrap()),
            "work",
            &[(file, "x\n")],
        );
        repo.run(["submit", id, "--agent", agent]).expect(0);
    }
    let queue = repo.run(["--json", "queue"]).expect(0).json();
    let order: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![
            first.as_str(),
            late.as_str(),
            early.as_str(),
            gated.as_str()
        ]
    );
    std::fs::write(repo.home().join("go"), "").unwrap();
    wait_state(&repo, &early, "merged");
}

/// The worktrees under the root that git knows, by kind: pool members, and the others
/// (task worktrees; the integration worktree is left out).
fn registered_worktrees(repo: &TestRepo) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = repo
        .tmp
        .path()
        .canonicalize()
        .unwrap()
        .join("repo.worktrees");
    let mut pool = Vec::new();
    let mut others = Vec::new();
    for line in repo.git(&["worktree", "list", "--porcelain"]).lines() {
        let Some(path) = line.strip_prefix("worktree ").map(PathBuf::from) else {
            continue;
        };
        if !path.starts_with(&root) || path == root.join(".integration") {
            continue;
        }
        if path.parent() == Some(root.join(".pool").as_path()) {
            pool.push(path);
        } else {
            others.push(path);
        }
    }
    (pool, others)
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// After a landing, the task's worktree goes back to the pool from the daemon's
/// background job, not on the queue's path: the event comes after `merged`, the pool
/// gets the worktree (detached at what landed, without the task's files), and members
/// beyond the pool's size are deleted once the queue is idle. A worktree with
/// uncommitted changes stays with its task, said once however often the job looks,
/// and is let go of at a restart once it is clean.
#[test]
fn a_landed_tasks_worktree_goes_back_to_the_pool_in_the_background() {
    let repo = queue_repo("");
    repo.git(&["checkout", "-q", "--detach"]);
    let daemon = repo.start_daemon();
    eventually(30, "the pool to fill", || {
        registered_worktrees(&repo).0.len() == 2
    });
    let id = add(&repo, "Lands", &["api"]);
    let wt = PathBuf::from(claim(&repo, Some(&id), "l1")["worktree"].as_str().unwrap());
    // The claim took a member; the pool is topped up again before the landing, so the
    // worktree coming back makes one too many.
    eventually(30, "the pool to be topped up", || {
        registered_worktrees(&repo).0.len() == 2
    });
    commit_in(&wt, "Lands", &[("api/handler.txt", "landed\n")]);
    let submitted = git_in(&wt, &["rev-parse", "HEAD"]).trim().to_owned();
    repo.run(["submit", &id, "--agent", "l1"]).expect(0);
    wait_state(&repo, &id, "merged");
    eventually(30, "the worktree to be recycled", || {
        events(&repo, &id).contains(&"worktree_recycled".to_owned())
    });
    let kinds = events(&repo, &id);
    let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    assert!(at("merged") < at("worktree_recycled"), "{kinds:?}");
    let recycled = last_event(&repo, &id, "worktree_recycled");
    assert_eq!(recycled["evidence"]["to"], "pool", "{recycled}");
    assert_eq!(show(&repo, &id)["worktree"], Value::Null);
    assert!(!wt.exists());
    // In the pool, which holds three until the queue is idle; then the oldest beyond its
    // size goes. The landed task's worktree stays: clean, detached where the task's
    // branch was when it was freed for the landing.
    eventually(30, "the pool to be trimmed to its size", || {
        registered_worktrees(&repo).0.len() == 2
    });
    let (pool, others) = registered_worktrees(&repo);
    assert_eq!(others, Vec::<PathBuf>::new(), "no task holds a worktree");
    let member = pool
        .iter()
        .find(|p| git_in(p, &["rev-parse", "HEAD"]).trim() == submitted)
        .unwrap_or_else(|| {
            panic!(
                "the landed task's worktree is not in the pool: {pool:?}\n{}",
                daemon.log_text()
            )
        });
    assert_eq!(git_in(member, &["status", "--porcelain", "--ignored"]), "");
    assert_eq!(
        git_in(member, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "HEAD"
    );
    eventually(30, "the trimmed worktree's files to be deleted", || {
        daemon
            .log_text()
            .contains("deleted a pool worktree beyond the pool's size")
    });

    // Uncommitted work in a task's worktree when it lands: it stays with the task,
    // said once, however many times the job runs (every landing wakes it).
    let id2 = add(&repo, "Lands, leaving notes", &["docs"]);
    let wt2 = PathBuf::from(claim(&repo, Some(&id2), "l2")["worktree"].as_str().unwrap());
    commit_in(&wt2, "Docs", &[("docs/guide.md", "# landed\n")]);
    std::fs::write(wt2.join("notes.txt"), "mine\n").unwrap();
    repo.run(["submit", &id2, "--agent", "l2"]).expect(0);
    wait_state(&repo, &id2, "merged");
    eventually(30, "the worktree to be kept", || {
        events(&repo, &id2).contains(&"worktree_kept".to_owned())
    });
    for (i, file) in ["api/a.txt", "api/b.txt"].into_iter().enumerate() {
        let (other, _, _) = work(
            &repo,
            &format!("Later {i}"),
            &["api"],
            "l3",
            &[(file, "x\n")],
        );
        wait_state(&repo, &other, "merged");
        eventually(30, "the later task's worktree to be recycled", || {
            events(&repo, &other).contains(&"worktree_recycled".to_owned())
        });
    }
    assert_eq!(count(&events(&repo, &id2), "worktree_kept"), 1);
    assert_eq!(show(&repo, &id2)["worktree"], wt2.display().to_string());
    // A restart looks again: still changed, nothing new said; once clean, let go of.
    daemon.stop();
    let daemon = repo.start_daemon();
    eventually(30, "the job's first round", || {
        daemon
            .log_text()
            .contains("still has uncommitted changes; it stays with the task")
    });
    assert_eq!(count(&events(&repo, &id2), "worktree_kept"), 1);
    assert!(wt2.join("notes.txt").exists());
    daemon.stop();
    std::fs::remove_file(wt2.join("notes.txt")).unwrap();
    let _daemon = repo.start_daemon();
    eventually(30, "the cleaned worktree to be recycled", || {
        events(&repo, &id2).contains(&"worktree_recycled".to_owned())
    });
    assert!(!wt2.exists());
}

/// A SIGKILL between `merged` and the recycling (the test hook aborts right after
/// `merged` is recorded): after the restart, the background job finds the worktree from
/// the ledger and recycles it; nothing is leaked, nothing is recorded twice.
#[test]
fn a_crash_between_merged_and_the_recycling_leaks_no_worktree() {
    let repo = queue_repo("");
    repo.git(&["checkout", "-q", "--detach"]);
    // Steps: rebased (1), verified (2), the compare-and-swap (3), base moved (4),
    // branch updated (5), merged (6): abort right after it.
    let mut daemon = repo
        .try_start_daemon_with(&[("SWITCHYARD_TEST_ABORT_AFTER_STEPS", "6")])
        .unwrap();
    let (id, wt, _) = work(
        &repo,
        "Lands, then the crash",
        &["api"],
        "k1",
        &[("api/handler.txt", "k1\n")],
    );
    eventually(30, "the abort", || {
        daemon.child.try_wait().unwrap().is_some()
    });
    assert!(
        daemon
            .log_text()
            .contains("test hook: aborting the process now")
    );
    assert_eq!(state_offline(&repo, &id), "merged");
    assert!(wt.is_dir(), "the crash came before the recycling");
    let (_, others) = registered_worktrees(&repo);
    assert_eq!(others, vec![wt.clone()]);
    // As a crash in the middle of deleting a trimmed pool member leaves it.
    let trash = repo.tmp.path().join("repo.worktrees/.trash");
    std::fs::create_dir_all(trash.join("p1-0-0/src")).unwrap();
    std::fs::write(trash.join("p1-0-0/src/half-deleted.rs"), "x\n").unwrap();

    let _daemon = repo.start_daemon();
    eventually(30, "the worktree to be recycled after the restart", || {
        events(&repo, &id).contains(&"worktree_recycled".to_owned())
    });
    let kinds = events(&repo, &id);
    assert_eq!(count(&kinds, "merged"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "worktree_recycled"), 1, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("worktree_recycled"));
    assert_eq!(show(&repo, &id)["worktree"], Value::Null);
    assert!(!wt.exists());
    eventually(30, "the pool to be trimmed to its size", || {
        registered_worktrees(&repo).0.len() == 2
    });
    let (_, others) = registered_worktrees(&repo);
    assert_eq!(others, Vec::<PathBuf>::new(), "a worktree leaked");
    eventually(30, "the trash to be emptied", || {
        std::fs::read_dir(&trash).map_or(true, |d| d.count() == 0)
    });
}

/// The user's checkout of the base follows a landing in the background, from the
/// ledger's record of it: a SIGKILL right after the base move is recorded (the test hook
/// aborts after step 4, before anything woke the follower) leaves the checkout behind
/// the base, and the restart fast-forwards it, once.
#[test]
fn a_crash_before_the_checkout_follows_leaves_it_to_the_restart() {
    let repo = queue_repo("");
    // Steps: rebased (1), verified (2), the compare-and-swap (3), base moved (4).
    let id = one_task_through_a_crash(&repo, "4", "c1\n");
    assert_eq!(repo.git(&["show", "main:api/handler.txt"]), "c1\n");
    assert_eq!(
        std::fs::read_to_string(repo.root.join("api/handler.txt")).unwrap(),
        "line 1\nline 2\nline 3\n",
        "the crash came before the checkout followed"
    );
    let _daemon = repo.start_daemon();
    wait_state(&repo, &id, "merged");
    eventually(30, "the checkout to follow", || {
        events(&repo, &id).contains(&"checkout_updated".to_owned())
    });
    assert_eq!(count(&events(&repo, &id), "checkout_updated"), 1);
    assert_eq!(
        std::fs::read_to_string(repo.root.join("api/handler.txt")).unwrap(),
        "c1\n"
    );
    assert_eq!(
        repo.git(&["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
}

/// Verify runs in the daemon's own worktree, cleaned of what the last verify made
/// (untracked files; ignored ones such as build caches stay) before the next one: the
/// cleaning runs off the queue's path, and also after a verify cut short by a SIGKILL.
#[test]
fn what_a_verify_leaves_never_reaches_the_next_one() {
    let repo = queue_repo("");
    repo.config(
        "[queue]\nverify = [\"./v.sh\"]\n[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n",
    );
    repo.file(".gitignore", "build/\n");
    repo.file(
        "v.sh",
        "#!/bin/sh\n\
         test ! -e made-by-verify || { echo \"the last verify's file is still here\"; exit 1; }\n\
         touch made-by-verify; mkdir -p build; echo run >> build/runs\n\
         while [ ! -f \"$HOME/go\" ]; do sleep 0.05; done\n",
    );
    std::fs::set_permissions(
        repo.root.join("v.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    repo.commit("verify leaves files");
    repo.git(&["checkout", "-q", "--detach"]);
    let integration = repo.tmp.path().join("repo.worktrees/.integration");
    let daemon = repo.start_daemon();
    let (first, _, _) = work(&repo, "First", &["api"], "v1", &[("api/a.txt", "a\n")]);
    eventually(30, "the first verify to make its file", || {
        integration.join("made-by-verify").exists()
    });
    daemon.kill9();
    std::fs::write(repo.home().join("go"), "").unwrap();
    let _daemon = repo.start_daemon();
    wait_state(&repo, &first, "merged");
    let (second, _, _) = work(&repo, "Second", &["api"], "v2", &[("api/b.txt", "b\n")]);
    wait_state(&repo, &second, "merged");
    assert_eq!(
        std::fs::read_to_string(integration.join("build/runs")).unwrap(),
        "run\nrun\nrun\n",
        "ignored files stay from one verify to the next"
    );
}

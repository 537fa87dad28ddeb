//! Executors elsewhere (`claim --remote`): each works in a clone of its own in a temp
//! dir, pushes the task's branch to a bare repository (the configured remote), and
//! submits the commit it pushed. The daemon makes no worktree for them, follows the
//! pushed branch, and takes only exactly the holder's commit.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::queue::queue_repo;
use crate::support::{TestRepo, commit_in, events, eventually, git_in, hermetic, show};

/// A queue repository whose `remote` is a bare repository, with the base pushed there.
fn repo_with_remote(extra: &str) -> (TestRepo, PathBuf) {
    let repo = queue_repo(extra);
    let bare = repo.tmp.path().join("origin.git");
    let made = hermetic(&mut std::process::Command::new("git"), &repo.home())
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare)
        .status()
        .unwrap();
    assert!(made.success());
    repo.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&format!("remote = \"origin\"\n{text}"));
    repo.commit("remote");
    repo.git(&["push", "-q", "origin", "main"]);
    (repo, bare)
}

/// An executor's own clone of the remote, on the claimed task's branch: continuing from
/// what was pushed, else starting at the claim's base commit.
fn clone_for(repo: &TestRepo, bare: &Path, name: &str, claimed: &Value) -> PathBuf {
    let dir = repo.tmp.path().join(name);
    git_in(
        repo.tmp.path(),
        &["clone", "-q", bare.to_str().unwrap(), dir.to_str().unwrap()],
    );
    let branch = claimed["branch"].as_str().unwrap();
    let start = match claimed["pushed"].as_str() {
        Some(tip) => {
            git_in(&dir, &["fetch", "-q", "origin", branch]);
            tip.to_owned()
        }
        None => claimed["base_sha"].as_str().unwrap().to_owned(),
    };
    git_in(&dir, &["switch", "-q", "-C", branch, &start]);
    dir
}

/// An executor's clone with one commit of `files` on the task's branch, pushed; and
/// that commit.
fn pushed_work(
    repo: &TestRepo,
    bare: &Path,
    name: &str,
    claimed: &Value,
    files: &[(&str, &str)],
) -> (PathBuf, String) {
    let clone = clone_for(repo, bare, name, claimed);
    commit_in(&clone, name, files);
    push(&clone, claimed["branch"].as_str().unwrap());
    let head = git_in(&clone, &["rev-parse", "HEAD"]).trim().to_owned();
    (clone, head)
}

fn push(clone: &Path, branch: &str) {
    git_in(
        clone,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ],
    );
}

/// `switchyard` run in the executor's clone, for the daemon's repository.
fn run_from(repo: &TestRepo, clone: &Path, args: &[&str]) -> crate::support::Run {
    let root = repo.root.to_str().unwrap().to_owned();
    let mut all = vec!["--repo", root.as_str()];
    all.extend_from_slice(args);
    repo.run_in(clone, all)
}

/// `submit ID --agent AGENT --commit HEAD` in the executor's clone, `--json` first.
fn submit_head(repo: &TestRepo, clone: &Path, id: &str, agent: &str) -> crate::support::Run {
    run_from(
        repo,
        clone,
        &["--json", "submit", id, "--agent", agent, "--commit", "HEAD"],
    )
}

/// The holder submits its pushed HEAD and waits: it lands.
fn land_head(repo: &TestRepo, clone: &Path, id: &str, agent: &str) {
    let args = [
        "submit",
        id,
        "--agent",
        agent,
        "--commit",
        "HEAD",
        "--wait",
        "--timeout",
        "60s",
    ];
    let out = run_from(repo, clone, &args).expect(0);
    assert!(out.stdout().contains("merged"), "{}", out.stdout());
}

fn remote_claim(repo: &TestRepo, agent: &str) -> Value {
    repo.run(["--json", "claim", "--remote", "--agent", agent])
        .expect(0)
        .json()
}

/// `--json` refusal's code.
fn code_of(run: crate::support::Run) -> String {
    let err: Value = serde_json::from_str(run.stderr().trim()).unwrap_or_else(|e| {
        panic!("stderr is not one JSON error ({e}): {}", run.stderr());
    });
    err["error"]["code"].as_str().unwrap().to_owned()
}

#[test]
fn a_remote_executor_lands_a_change_from_its_own_clone() {
    let (repo, bare) = repo_with_remote("");
    let _daemon = repo.start_daemon();
    let id = crate::support::add(&repo, "Say more, remotely", &["api"]);

    let claimed = remote_claim(&repo, "far-agent");
    assert_eq!(claimed["id"], id.as_str());
    assert_eq!(claimed["remote"], bare.to_str().unwrap());
    assert_eq!(claimed["remote_claim"], true);
    assert!(claimed["worktree"].is_null(), "{claimed}");
    assert!(
        claimed.get("pushed").is_none(),
        "nothing pushed yet: {claimed}"
    );
    assert!(claimed.get("env_file").is_none(), "{claimed}");
    assert_eq!(claimed["env"]["SWITCHYARD_TASK"], id.as_str());
    assert!(
        claimed["env"].get("SWITCHYARD_WORKTREE").is_none(),
        "{claimed}"
    );
    let base_sha = claimed["base_sha"].as_str().unwrap();
    assert_eq!(repo.git(&["rev-parse", "main"]).trim(), base_sha);
    // No worktree was made for it, and asked for one now, it is refused.
    assert!(!repo.tmp.path().join("repo.worktrees").join(&id).exists());
    let r = repo.run(["--json", "claim", &id, "--agent", "far-agent"]);
    assert_eq!(code_of(r.expect(1)), "wrong_state");

    let branch = claimed["branch"].as_str().unwrap().to_owned();
    let clone = clone_for(&repo, &bare, "far", &claimed);
    commit_in(
        &clone,
        "say more",
        &[("api/handler.txt", "line 1\nline 2, from far away\nline 3\n")],
    );
    let head = git_in(&clone, &["rev-parse", "HEAD"]).trim().to_owned();

    // Not pushed yet: nothing to take.
    let r = submit_head(&repo, &clone, &id, "far-agent");
    assert_eq!(code_of(r.expect(1)), "nothing_to_submit");
    // A remote claim's submission names its commit.
    let r = run_from(
        &repo,
        &clone,
        &["--json", "submit", &id, "--agent", "far-agent"],
    );
    assert_eq!(code_of(r.expect(2)), "bad_request");

    push(&clone, &branch);
    // A heartbeat brings the pushed work in, so conflict checks see it.
    run_from(&repo, &clone, &["heartbeat", &id, "--agent", "far-agent"]).expect(0);
    assert_eq!(repo.git(&["rev-parse", &branch]).trim(), head);

    // Only the holder may submit it.
    let r = submit_head(&repo, &clone, &id, "intruder");
    assert_eq!(code_of(r.expect(1)), "not_claim_holder");

    land_head(&repo, &clone, &id, "far-agent");
    // Landed, and the base went out to the remote with it.
    let remote_main = git_in(&bare, &["rev-parse", "main"]).trim().to_owned();
    assert_eq!(repo.git(&["rev-parse", "main"]).trim(), remote_main);
    let landed = git_in(&bare, &["show", "main:api/handler.txt"]);
    assert!(landed.contains("from far away"), "{landed}");
    let task = show(&repo, &id);
    assert_eq!(task["state"], "merged");
    assert_eq!(task["submitted_head"], head.as_str());
}

#[test]
fn what_was_not_the_holders_push_is_refused_and_changes_nothing() {
    let (repo, bare) = repo_with_remote("");
    let _daemon = repo.start_daemon();
    let id = crate::support::add(&repo, "Contested", &["api"]);
    let claimed = remote_claim(&repo, "holder");
    let branch = claimed["branch"].as_str().unwrap().to_owned();

    let mine = clone_for(&repo, &bare, "mine", &claimed);
    commit_in(&mine, "mine", &[("api/handler.txt", "mine\n")]);
    // Someone else pushes their own commit to the holder's branch.
    let theirs = clone_for(&repo, &bare, "theirs", &claimed);
    commit_in(&theirs, "theirs", &[("api/handler.txt", "theirs\n")]);
    push(&theirs, &branch);
    let before = repo.run(["--json", "task", "show", &id]).expect(0).json();

    let r = submit_head(&repo, &mine, &id, "holder");
    let err: Value = serde_json::from_str(r.expect(1).stderr().trim()).unwrap();
    assert_eq!(err["error"]["code"], "stale_commit", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("not at"),
        "{err}"
    );
    assert_eq!(
        repo.run(["--json", "task", "show", &id]).expect(0).json(),
        before,
        "a refused submission changed nothing"
    );
    assert!(!events(&repo, &id).contains(&"submitted".to_owned()));

    // A branch that rewrote the base (history of its own) is refused, named.
    let orphan = repo.tmp.path().join("orphan");
    git_in(
        repo.tmp.path(),
        &["init", "-q", "-b", "x", orphan.to_str().unwrap()],
    );
    commit_in(&orphan, "unrelated", &[("api/handler.txt", "rewritten\n")]);
    git_in(
        &orphan,
        &["remote", "add", "origin", bare.to_str().unwrap()],
    );
    push(&orphan, &branch);
    let r = submit_head(&repo, &orphan, &id, "holder");
    assert_eq!(code_of(r.expect(1)), "conflict");
    assert_eq!(show(&repo, &id)["state"], "claimed");

    // A commit that is not one, in the executor's clone: the CLI says so.
    run_from(
        &repo,
        &mine,
        &[
            "submit",
            &id,
            "--agent",
            "holder",
            "--commit",
            "no-such-rev",
        ],
    )
    .refused(2, "--commit no-such-rev: not a commit");
}

#[test]
fn a_silent_remote_executor_loses_the_claim_and_the_next_continues_from_its_push() {
    let (repo, bare) = repo_with_remote("[claims]\nlease = \"1s\"\n");
    let _daemon = repo.start_daemon();
    let id = crate::support::add(&repo, "Handed on", &["api"]);

    let first = remote_claim(&repo, "silent");
    let branch = first["branch"].as_str().unwrap().to_owned();
    let (_, partial) = pushed_work(
        &repo,
        &bare,
        "silent",
        &first,
        &[("api/first.txt", "first half\n")],
    );
    eventually(15, "the silent executor's lease to expire", || {
        show(&repo, &id)["state"] == "open"
    });
    assert!(events(&repo, &id).contains(&"lease_expired".to_owned()));

    let next = remote_claim(&repo, "diligent");
    assert_eq!(next["id"], id.as_str());
    assert_eq!(next["pushed"], partial.as_str(), "{next}");
    let clone = clone_for(&repo, &bare, "diligent", &next);
    assert_eq!(git_in(&clone, &["rev-parse", "HEAD"]).trim(), partial);
    commit_in(
        &clone,
        "second half",
        &[("api/second.txt", "second half\n")],
    );
    push(&clone, &branch);
    land_head(&repo, &clone, &id, "diligent");
    let tree = repo.git(&["ls-tree", "--name-only", "main", "api/"]);
    assert!(
        tree.contains("api/first.txt") && tree.contains("api/second.txt"),
        "{tree}"
    );
}

#[test]
fn a_remote_claim_needs_a_remote() {
    let repo = queue_repo("");
    let _daemon = repo.start_daemon();
    let id = crate::support::add(&repo, "Nowhere to push", &["api"]);
    repo.run(["claim", "--remote", "--agent", "far"])
        .refused(1, "a remote claim needs a remote to push to");
    assert_eq!(show(&repo, &id)["state"], "open", "nothing was claimed");
}

#[test]
fn kill_9_during_a_remote_submit_loses_nothing() {
    let (repo, bare) = repo_with_remote("");
    let daemon = repo.start_daemon();
    let id = crate::support::add(&repo, "Crash mid-submit", &["api"]);
    let claimed = remote_claim(&repo, "steady");
    let (clone, head) = pushed_work(
        &repo,
        &bare,
        "steady",
        &claimed,
        &[("api/steady.txt", "steady\n")],
    );

    // The submission is under way when the daemon is killed: whatever it reached, the
    // holder's retry after the restart lands the work exactly once.
    let root = repo.root.to_str().unwrap().to_owned();
    let mut submit = hermetic(
        &mut std::process::Command::new(crate::support::BIN),
        &repo.home(),
    )
    .args([
        "--repo", &root, "submit", &id, "--agent", "steady", "--commit", "HEAD",
    ])
    .current_dir(&clone)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    daemon.kill9();
    let _ = submit.wait();
    let _daemon = repo.start_daemon();
    land_head(&repo, &clone, &id, "steady");
    let submitted = events(&repo, &id)
        .iter()
        .filter(|e| *e == "submitted")
        .count();
    assert_eq!(submitted, 1, "{:?}", events(&repo, &id));
    assert_eq!(show(&repo, &id)["submitted_head"], head.as_str());
    assert!(
        repo.git(&["ls-tree", "--name-only", "main", "api/"])
            .contains("api/steady.txt")
    );
}

#[test]
fn conflict_warnings_reach_remote_executors_from_their_pushes() {
    let (repo, bare) = repo_with_remote("");
    let _daemon = repo.start_daemon();
    let a = crate::support::add(&repo, "One side", &["api"]);
    let b = crate::support::add(&repo, "Other side", &["api"]);
    for (id, agent, line) in [(&a, "east", "east"), (&b, "west", "west")] {
        let claimed = repo
            .run(["--json", "claim", id, "--remote", "--agent", agent])
            .expect(0)
            .json();
        let clone = clone_for(&repo, &bare, agent, &claimed);
        commit_in(
            &clone,
            line,
            &[(
                "api/handler.txt",
                &format!("line 1\nline 2 {line}\nline 3\n"),
            )],
        );
        push(&clone, claimed["branch"].as_str().unwrap());
        run_from(&repo, &clone, &["heartbeat", id, "--agent", agent]).expect(0);
    }
    eventually(30, "both sides to be warned", || {
        let found = repo.run(["--json", "conflicts"]).expect(0).json();
        let on = |id: &str| {
            found
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["task"] == id && c["paths"][0] == "api/handler.txt")
        };
        on(&a) && on(&b)
    });
}

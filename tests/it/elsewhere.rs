//! Executors elsewhere (`claim --remote`): each works in a clone of its own in a temp
//! dir, pushes the task's branch to a bare repository (the configured remote), and talks
//! to the daemon as a remote client would: over HTTPS (a certificate made at test time)
//! with a token of its own. The daemon makes no worktree for them, follows the pushed
//! branch, and takes only exactly the holder's commit.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::queue::queue_repo;
use crate::remote::{api_config, token};
use crate::support::{
    BIN, Daemon, Run, TestRepo, commit_in, events, eventually, free_port, git_in, hermetic, show,
};

/// A daemon with a remote to push to and the networked API, and its executors' tokens.
struct Fleet {
    repo: TestRepo,
    bare: PathBuf,
    daemon: Option<Daemon>,
    url: String,
    ca: PathBuf,
    tokens: RefCell<BTreeMap<String, String>>,
}

/// A queue repository whose `remote` is a bare repository (the base pushed there), whose
/// daemon also serves HTTPS on a fixed loopback port (the same after a restart).
fn fleet(extra: &str) -> Fleet {
    fleet_with(extra, &[])
}

/// `fleet`, its daemon started with `env`.
fn fleet_with(extra: &str, env: &[(&str, &str)]) -> Fleet {
    let repo = queue_repo(extra);
    let bare = repo.tmp.path().join("origin.git");
    let made = hermetic(&mut Command::new("git"), &repo.home())
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare)
        .status()
        .unwrap();
    assert!(made.success());
    repo.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    let port = free_port();
    let api = api_config(&repo, true).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&format!("remote = \"origin\"\n{text}{api}"));
    repo.commit("remote");
    repo.git(&["push", "-q", "origin", "main"]);
    // Made before the daemon starts: it refuses to start without its tokens file.
    let mut tokens = BTreeMap::new();
    tokens.insert("planner".to_owned(), token(&repo, "planner", &["planner"]));
    let daemon = repo.try_start_daemon_with(env).unwrap();
    let url = format!("https://127.0.0.1:{port}");
    assert!(daemon.ready.contains(&url), "{}", daemon.ready);
    let ca = repo.tmp.path().join("cert.pem");
    Fleet {
        repo,
        bare,
        daemon: Some(daemon),
        url,
        ca,
        tokens: RefCell::new(tokens),
    }
}

impl Fleet {
    /// `switchyard` as `agent` (its own token, made on first use) would run it on its
    /// machine: in `dir`, with the daemon's URL, the token and the CA in its environment.
    fn command(&self, agent: &str, dir: &Path, args: &[&str]) -> Command {
        let token = self
            .tokens
            .borrow_mut()
            .entry(agent.to_owned())
            .or_insert_with(|| token(&self.repo, agent, &["executor"]))
            .clone();
        let mut cmd = Command::new(BIN);
        hermetic(&mut cmd, &self.repo.home())
            .env("SWITCHYARD_DAEMON", &self.url)
            .env("SWITCHYARD_TOKEN", token)
            .env("SWITCHYARD_CA_CERT", &self.ca)
            .args(args)
            .current_dir(dir);
        cmd
    }

    fn as_(&self, agent: &str, dir: &Path, args: &[&str]) -> Run {
        Run(self.command(agent, dir, args).output().unwrap())
    }

    /// A task, added over the network by the planner.
    fn add(&self, title: &str) -> String {
        let added = self
            .as_(
                "planner",
                self.repo.tmp.path(),
                &["--json", "task", "add", title, "--scope", "api"],
            )
            .expect(0)
            .json();
        added["id"].as_str().unwrap().to_owned()
    }

    fn remote_claim(&self, agent: &str, id: Option<&str>) -> Value {
        let mut args = vec!["--json", "claim", "--remote"];
        args.extend(id);
        self.as_(agent, self.repo.tmp.path(), &args)
            .expect(0)
            .json()
    }

    /// An executor's own clone of the remote, on the claimed task's branch: continuing
    /// from what was pushed, else starting at the claim's base commit.
    fn clone_for(&self, name: &str, claimed: &Value) -> PathBuf {
        let dir = self.repo.tmp.path().join(name);
        git_in(
            self.repo.tmp.path(),
            &[
                "clone",
                "-q",
                self.bare.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
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
        &self,
        name: &str,
        claimed: &Value,
        files: &[(&str, &str)],
    ) -> (PathBuf, String) {
        let clone = self.clone_for(name, claimed);
        commit_in(&clone, name, files);
        push(&clone, claimed["branch"].as_str().unwrap());
        let head = git_in(&clone, &["rev-parse", "HEAD"]).trim().to_owned();
        (clone, head)
    }

    /// `--json submit ID --commit HEAD` in the executor's clone.
    fn submit_head(&self, agent: &str, clone: &Path, id: &str) -> Run {
        self.as_(agent, clone, &["--json", "submit", id, "--commit", "HEAD"])
    }

    /// The holder submits its pushed HEAD and waits: it lands.
    fn land_head(&self, agent: &str, clone: &Path, id: &str) {
        let args = [
            "submit",
            id,
            "--commit",
            "HEAD",
            "--wait",
            "--timeout",
            "60s",
        ];
        let out = self.as_(agent, clone, &args).expect(0);
        assert!(out.stdout().contains("merged"), "{}", out.stdout());
    }
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

/// `--json` refusal's code.
fn code_of(run: Run) -> String {
    let err: Value = serde_json::from_str(run.stderr().trim()).unwrap_or_else(|e| {
        panic!("stderr is not one JSON error ({e}): {}", run.stderr());
    });
    err["error"]["code"].as_str().unwrap().to_owned()
}

#[test]
fn a_remote_executor_lands_a_change_from_its_own_clone() {
    let f = fleet("");
    let id = f.add("Say more, remotely");

    let claimed = f.remote_claim("far-agent", None);
    assert_eq!(claimed["id"], id.as_str());
    assert_eq!(
        claimed["agent"], "far-agent",
        "the token's name is the executor"
    );
    assert_eq!(claimed["remote"], f.bare.to_str().unwrap());
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
    assert_eq!(f.repo.git(&["rev-parse", "main"]).trim(), base_sha);
    // No worktree was made for it, and asked for one now, it is refused.
    assert!(!f.repo.tmp.path().join("repo.worktrees").join(&id).exists());
    let r = f.as_("far-agent", f.repo.tmp.path(), &["--json", "claim", &id]);
    assert_eq!(code_of(r.expect(1)), "wrong_state");
    assert_eq!(
        show(&f.repo, &id)["lease_expires_at"],
        claimed["lease_expires_at"],
        "a refused renewal renews nothing"
    );

    let branch = claimed["branch"].as_str().unwrap().to_owned();
    let clone = f.clone_for("far", &claimed);
    commit_in(
        &clone,
        "say more",
        &[("api/handler.txt", "line 1\nline 2, from far away\nline 3\n")],
    );
    let head = git_in(&clone, &["rev-parse", "HEAD"]).trim().to_owned();

    // Not pushed yet: nothing to take.
    let r = f.submit_head("far-agent", &clone, &id);
    assert_eq!(code_of(r.expect(1)), "nothing_to_submit");
    // A remote claim's submission names its commit.
    let r = f.as_("far-agent", &clone, &["--json", "submit", &id]);
    assert_eq!(code_of(r.expect(2)), "bad_request");

    push(&clone, &branch);
    // A heartbeat has the pushed work brought in, so conflict checks see it.
    f.as_("far-agent", &clone, &["heartbeat", &id]).expect(0);
    eventually(30, "the daemon to follow the pushed branch", || {
        f.repo.git(&["rev-parse", &branch]).trim() == head
    });

    // Only the holder may submit it.
    let r = f.submit_head("intruder", &clone, &id);
    assert_eq!(code_of(r.expect(1)), "not_claim_holder");

    f.land_head("far-agent", &clone, &id);
    // Landed, and the base went out to the remote with it.
    let remote_main = git_in(&f.bare, &["rev-parse", "main"]).trim().to_owned();
    assert_eq!(f.repo.git(&["rev-parse", "main"]).trim(), remote_main);
    let landed = git_in(&f.bare, &["show", "main:api/handler.txt"]);
    assert!(landed.contains("from far away"), "{landed}");
    let task = show(&f.repo, &id);
    assert_eq!(task["state"], "merged");
    assert_eq!(task["submitted_head"], head.as_str());
}

#[test]
fn what_was_not_the_holders_push_is_refused_and_changes_nothing() {
    let f = fleet("");
    let id = f.add("Contested");
    let claimed = f.remote_claim("holder", None);
    let branch = claimed["branch"].as_str().unwrap().to_owned();

    let mine = f.clone_for("mine", &claimed);
    commit_in(&mine, "mine", &[("api/handler.txt", "mine\n")]);
    // Someone else pushes their own commit to the holder's branch.
    let (_, _) = f.pushed_work("theirs", &claimed, &[("api/handler.txt", "theirs\n")]);
    let before = f.repo.run(["--json", "task", "show", &id]).expect(0).json();

    let r = f.submit_head("holder", &mine, &id);
    let err: Value = serde_json::from_str(r.expect(1).stderr().trim()).unwrap();
    assert_eq!(err["error"]["code"], "stale_commit", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("not at"),
        "{err}"
    );
    assert_eq!(
        f.repo.run(["--json", "task", "show", &id]).expect(0).json(),
        before,
        "a refused submission changed nothing"
    );
    assert!(!events(&f.repo, &id).contains(&"submitted".to_owned()));

    // A branch that rewrote the base (history of its own) is refused, named.
    let orphan = f.repo.tmp.path().join("orphan");
    git_in(
        f.repo.tmp.path(),
        &["init", "-q", "-b", "x", orphan.to_str().unwrap()],
    );
    commit_in(&orphan, "unrelated", &[("api/handler.txt", "rewritten\n")]);
    git_in(
        &orphan,
        &["remote", "add", "origin", f.bare.to_str().unwrap()],
    );
    push(&orphan, &branch);
    let r = f.submit_head("holder", &orphan, &id);
    assert_eq!(code_of(r.expect(1)), "conflict");
    assert_eq!(show(&f.repo, &id)["state"], "claimed");

    // A commit that is not one, in the executor's clone: the CLI says so.
    f.as_("holder", &mine, &["submit", &id, "--commit", "no-such-rev"])
        .refused(2, "--commit no-such-rev: not a commit");
}

#[test]
fn a_silent_remote_executor_loses_the_claim_and_the_next_continues_from_its_push() {
    let f = fleet("[claims]\nlease = \"1s\"\n");
    let id = f.add("Handed on");

    let first = f.remote_claim("silent", None);
    let (_, partial) = f.pushed_work("silent", &first, &[("api/first.txt", "first half\n")]);
    eventually(15, "the silent executor's lease to expire", || {
        show(&f.repo, &id)["state"] == "open"
    });
    assert!(events(&f.repo, &id).contains(&"lease_expired".to_owned()));

    let next = f.remote_claim("diligent", None);
    assert_eq!(next["id"], id.as_str());
    assert_eq!(next["pushed"], partial.as_str(), "{next}");
    let clone = f.clone_for("diligent", &next);
    assert_eq!(git_in(&clone, &["rev-parse", "HEAD"]).trim(), partial);
    commit_in(
        &clone,
        "second half",
        &[("api/second.txt", "second half\n")],
    );
    push(&clone, next["branch"].as_str().unwrap());
    f.land_head("diligent", &clone, &id);
    let tree = f.repo.git(&["ls-tree", "--name-only", "main", "api/"]);
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
    // The daemon's git, armed: right after a submission is pinned
    // (`update-ref refs/switchyard/submitted/...`) and before the ledger records it,
    // it kills the daemon, as a power cut there would.
    let tmp = tempfile::tempdir().unwrap();
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let armed = tmp.path().join("armed");
    let git = tmp.path().join("git");
    std::fs::write(
        &git,
        format!(
            "#!/bin/sh\n{real} \"$@\"; rc=$?\n\
             case \"$*\" in *update-ref*refs/switchyard/submitted/*)\n\
               if rm {armed} 2>/dev/null; then kill -9 $PPID; fi;;\n\
             esac\nexit $rc\n",
            real = real.trim(),
            armed = armed.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&git, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        tmp.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut f = fleet_with("", &[("PATH", &path)]);
    let id = f.add("Crash mid-submit");
    let claimed = f.remote_claim("steady", None);
    let (clone, head) = f.pushed_work("steady", &claimed, &[("api/steady.txt", "steady\n")]);

    std::fs::write(&armed, "").unwrap();
    let cut = f.submit_head("steady", &clone, &id);
    assert_ne!(cut.code(), 0, "the daemon died under the submission");
    assert!(!armed.exists(), "the fault fired");
    let mut dead = f.daemon.take().unwrap();
    assert!(!dead.is_running(), "the daemon was killed");
    drop(dead);
    // Pinned, not recorded: the ledger still has it claimed, and a retry submits it.
    assert_eq!(show(&f.repo, &id)["state"], "claimed");
    assert!(!events(&f.repo, &id).contains(&"submitted".to_owned()));

    f.daemon = Some(f.repo.try_start_daemon_with(&[("PATH", &path)]).unwrap());
    f.land_head("steady", &clone, &id);
    let submitted = events(&f.repo, &id)
        .iter()
        .filter(|e| *e == "submitted")
        .count();
    assert_eq!(submitted, 1, "{:?}", events(&f.repo, &id));
    assert_eq!(show(&f.repo, &id)["submitted_head"], head.as_str());
    assert!(
        f.repo
            .git(&["ls-tree", "--name-only", "main", "api/"])
            .contains("api/steady.txt")
    );
}

#[test]
fn conflict_warnings_reach_remote_executors_from_their_pushes() {
    let f = fleet("");
    let a = f.add("One side");
    let b = f.add("Other side");
    for (id, agent) in [(&a, "east"), (&b, "west")] {
        let claimed = f.remote_claim(agent, Some(id));
        let text = format!("line 1\nline 2 {agent}\nline 3\n");
        let (clone, _) = f.pushed_work(agent, &claimed, &[("api/handler.txt", &text)]);
        f.as_(agent, &clone, &["heartbeat", id]).expect(0);
    }
    eventually(30, "both sides to be warned", || {
        let found = f.repo.run(["--json", "conflicts"]).expect(0).json();
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

#[test]
fn a_remote_claim_whose_remote_cannot_be_read_is_given_back_and_leaks_no_credentials() {
    let repo = queue_repo("");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://bot:s3cret-pw@127.0.0.1:9/x.git",
    ]);
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&format!("remote = \"origin\"\n{text}"));
    repo.commit("remote");
    let _daemon = repo.start_daemon();
    let id = crate::support::add(&repo, "Far away", &["api"]);
    let out = repo.run(["--json", "claim", "--remote", "--agent", "far"]);
    assert_eq!(code_of(out.expect(1)), "unavailable");
    assert_eq!(
        show(&repo, &id)["state"],
        "open",
        "the claim was given back"
    );
    assert!(events(&repo, &id).contains(&"worktree_failed".to_owned()));
    let log = repo.run(["--json", "log", &id]).expect(0).stdout();
    assert!(!log.contains("s3cret-pw"), "{log}");
}

#[test]
fn following_a_push_leaves_a_kept_worktree_where_it_stands() {
    let f = fleet("");
    let id = f.add("Kept");
    let local = crate::support::claim(&f.repo, Some(&id), "near");
    let wt = PathBuf::from(local["worktree"].as_str().unwrap());
    std::fs::write(wt.join("api/wip.txt"), "uncommitted\n").unwrap();
    f.repo.run(["release", &id, "--agent", "near"]).expect(0);
    assert_eq!(show(&f.repo, &id)["worktree"], wt.to_str().unwrap(), "kept");
    let before = git_in(&wt, &["rev-parse", "HEAD"]);

    let far = f.remote_claim("far", Some(&id));
    let branch = far["branch"].as_str().unwrap().to_owned();
    let (clone, head) = f.pushed_work("far", &far, &[("api/far.txt", "far\n")]);
    f.as_("far", &clone, &["heartbeat", &id]).expect(0);
    eventually(30, "the daemon to follow the pushed branch", || {
        f.repo.git(&["rev-parse", &branch]).trim() == head
    });
    // Detached where it stood: its files, index and uncommitted work as they were.
    assert_eq!(git_in(&wt, &["rev-parse", "HEAD"]), before);
    let status = git_in(&wt, &["status", "--short"]);
    assert_eq!(status.trim(), "?? api/wip.txt", "{status}");
}

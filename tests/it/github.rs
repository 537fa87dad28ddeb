//! GitHub, end to end: the real daemon and CLI, a local bare repository as the remote,
//! and the fake GitHub behind Prism's validating proxy (see `fakegh.rs`). Every test
//! ends by asking Prism whether GitHub's description accepted all traffic.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fakegh::{FakeGitHub, Fault, TOKEN_ENV, bare_remote};
use crate::support::{Daemon, TestRepo, add, claim, commit_in, git_in, show};

struct Setup {
    repo: TestRepo,
    gh: FakeGitHub,
    bare: PathBuf,
    /// The running daemon's log, shown when a wait times out.
    log: std::cell::RefCell<Option<PathBuf>>,
}

impl Setup {
    /// A repository with subsystems `app` (verify: `queue_verify`) and `ci` (approval
    /// required), pushed to a bare remote that the fake GitHub serves as `acme-N/shop`.
    fn new(queue: &str, github_extra: &str) -> Setup {
        let repo = TestRepo::new();
        repo.file("app/main.txt", "one\n");
        repo.file(".github/ci.yml", "on: push\n");
        repo.commit("init");
        let bare = bare_remote(&repo.home(), &repo.root);
        let gh = FakeGitHub::start(&bare);
        let queue = queue.replace("{tmp}", repo.tmp.path().to_str().unwrap());
        repo.config(&format!(
            "[queue]\n{queue}\nverify_timeout = \"60s\"\n\
             [[subsystem]]\nname = \"app\"\npaths = [\"app/\"]\n\
             [[subsystem]]\nname = \"ci\"\npaths = [\".github/\"]\napproval = \"required\"\n\
             [worktrees]\npool = 1\n{}",
            gh.config(github_extra)
        ));
        repo.commit("config");
        repo.git(&["push", "-q", "origin", "main"]);
        repo.git(&["checkout", "-q", "--detach"]);
        Setup {
            repo,
            gh,
            bare,
            log: Default::default(),
        }
    }

    fn daemon(&self) -> Daemon {
        self.daemon_with(&[])
    }

    fn daemon_with(&self, env: &[(&str, &str)]) -> Daemon {
        let mut all = vec![(TOKEN_ENV, self.gh.token.as_str())];
        all.extend_from_slice(env);
        let d = self
            .repo
            .try_start_daemon_with(&all)
            .unwrap_or_else(|e| panic!("daemon did not start: {e}"));
        *self.log.borrow_mut() = Some(d.log.clone());
        d
    }

    /// `eventually`, showing the daemon's log when it times out.
    fn wait(&self, secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !check() {
            if std::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; daemon log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = self
            .log
            .borrow()
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Claims a new task, commits `files` in its worktree and submits it.
    fn work(&self, title: &str, scope: &[&str], files: &[(&str, &str)]) -> (String, PathBuf) {
        let id = add(&self.repo, title, scope);
        let claimed = claim(&self.repo, Some(&id), "agent-a");
        let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
        commit_in(&wt, title, files);
        self.repo
            .run(["--json", "submit", &id, "--agent", "agent-a"])
            .expect(0);
        (id, wt)
    }

    fn branch(&self, id: &str) -> String {
        show(&self.repo, id)["branch"].as_str().unwrap().to_owned()
    }

    fn state(&self, id: &str) -> String {
        show(&self.repo, id)["state"].as_str().unwrap().to_owned()
    }

    fn wait_state(&self, id: &str, want: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.state(id) != want {
            if std::time::Instant::now() > deadline {
                let log = self.repo.run(["--json", "log", id]).expect(0).json();
                let kinds: Vec<&Value> = log
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| &e["event"])
                    .collect();
                panic!(
                    "{id} did not become {want}: {kinds:?}\nlast: {:#}\ndaemon log:\n{}",
                    log.as_array().unwrap().last().unwrap(),
                    self.log_tail()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn wait_pull(&self, id: &str) -> crate::fakegh::Pull {
        let branch = self.branch(id);
        let mut found = None;
        self.wait(30, &format!("a PR for {branch}"), || {
            found = self.gh.pull_for(&branch);
            found.is_some()
        });
        found.unwrap()
    }

    fn wait_reply(&self, number: u64, text: &str) {
        self.wait(30, &format!("a reply containing {text:?}"), || {
            self.gh
                .comments(number)
                .iter()
                .any(|c| c.login == "switchyard-bot" && c.body.contains(text))
        });
    }

    fn remote_tip(&self, branch: &str) -> Option<String> {
        crate::fakegh::tip(&self.bare, branch)
    }

    /// The checks every test ends with: Prism accepted all traffic, and the token never
    /// reached a log, a command's log, the ledger (its file and its write-ahead log, read
    /// while the daemon still runs, so nothing is checkpointed away) or the daemon's
    /// environment.
    fn finish(self, daemon: Daemon) {
        let log = daemon.log_text();
        assert!(!log.contains(&self.gh.token), "the token reached the log");
        assert!(
            !crate::support::ledger_bytes(&self.repo).contains(&self.gh.token),
            "the token reached the ledger"
        );
        let logs = crate::support::all_text_under(&self.repo.root.join(".git/switchyard/logs"));
        assert!(
            !logs.contains(&self.gh.token),
            "the token reached a command's log"
        );
        let kept = log
            .lines()
            .find(|l| l.contains("the daemon's environment (names only)"))
            .unwrap_or_else(|| panic!("the daemon never said what it kept:\n{log}"));
        assert!(
            !kept.contains(TOKEN_ENV),
            "the token's variable stayed: {kept}"
        );
        if let Ok(environ) = std::fs::read(format!("/proc/{}/environ", daemon.pid)) {
            assert!(
                !String::from_utf8_lossy(&environ).contains(&self.gh.token),
                "the token stayed in the daemon's environment"
            );
        }
        drop(daemon);
        for pr in self.gh.pulls() {
            assert!(
                !pr.body.contains(&self.gh.token),
                "the token reached a PR body"
            );
            for c in self.gh.comments(pr.number) {
                assert!(
                    !c.body.contains(&self.gh.token),
                    "the token reached a comment"
                );
            }
        }
        self.gh.assert_contract_clean();
    }
}

fn event_kinds(repo: &TestRepo, id: &str) -> Vec<String> {
    crate::support::events(repo, id)
}

fn last_event(repo: &TestRepo, id: &str, kind: &str) -> Value {
    let log = repo.run(["--json", "log", id]).expect(0).json();
    log.as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["event"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} event for {id}"))
}

#[test]
fn a_pr_opens_with_the_card_the_check_run_follows_the_queue_and_merging_by_push_shows_it_merged() {
    let s = Setup::new(
        // Verify records its environment, then waits until the test lets it finish.
        "verify = [\"env > {tmp}/verify-env.txt; while [ ! -f {tmp}/release ]; do sleep 0.05; done\"]",
        "labels = [\"switchyard\", \"queue\"]\ndelete_branch = true",
    );
    let daemon = s.daemon();
    let id = s
        .repo
        .run([
            "--json",
            "task",
            "add",
            "Say hello properly",
            "--body",
            "Customers find the greeting curt; make it warmer.",
            "--accept",
            "The greeting says hello",
            "--scope",
            "app",
            "--by",
            "planner",
        ])
        .expect(0)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let claimed = claim(&s.repo, Some(&id), "agent-a");
    let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(
        &wt,
        "Warmer greeting",
        &[("app/main.txt", "hello, friend\n")],
    );
    s.repo
        .run(["--json", "submit", &id, "--agent", "agent-a"])
        .expect(0);
    let submitted = show(&s.repo, &id)["submitted_head"]
        .as_str()
        .unwrap()
        .to_owned();

    let pr = s.wait_pull(&id);
    assert_eq!(pr.base, "main");
    s.wait(30, "the PR on the task", || {
        show(&s.repo, &id)["pull_request"]["number"] == pr.number
    });
    let text = s.repo.run(["task", "show", &id]).expect(0).stdout();
    assert!(
        text.contains(&format!(
            "#{} https://github.com/{}/pull/{}",
            pr.number, s.gh.repo, pr.number
        )),
        "{text}"
    );
    assert_eq!(pr.head_sha, submitted, "the PR shows the submitted commit");
    assert_eq!(pr.title, format!("{id}: Say hello properly"));
    for part in [
        "Customers find the greeting curt",
        "- [ ] The greeting says hello",
        "`app`",
        "owning subsystems: app",
        "`agent-a`",
        "**Attempt:** 1",
        "### Checkpoints",
        "### Last verify",
        "| submitted (attempt 1) | agent agent-a |",
    ] {
        assert!(
            pr.body.contains(part),
            "the card lacks {part:?}:\n{}",
            pr.body
        );
    }
    s.wait(30, "the labels", || {
        s.gh.pull_for(&s.branch(&id))
            .is_some_and(|p| p.labels == ["switchyard", "queue"])
    });

    // The check run on the submitted head goes queued -> in_progress while verify runs.
    s.wait(30, "the check run to show verifying", || {
        s.gh.checks_on(&submitted)
            .iter()
            .any(|c| c.status == "in_progress")
    });
    std::fs::write(s.repo.tmp.path().join("release"), "").unwrap();
    s.wait_state(&id, "merged");

    let main = s.remote_tip("main").unwrap();
    s.wait(30, "the PR to show merged", || {
        s.gh.pull_for(&s.branch(&id))
            .is_some_and(|p| p.merged_at.is_some())
    });
    let pr = s.gh.pull_for(&s.branch(&id)).unwrap();
    assert_eq!(
        pr.head_sha, main,
        "the PR's branch was force-updated to what landed"
    );
    assert_eq!(pr.merge_commit.as_deref(), Some(main.as_str()));
    let runs = s.gh.checks_on(&submitted);
    let history: Vec<&str> = runs[0].history.iter().map(|h| h.0.as_str()).collect();
    assert!(
        history.starts_with(&["queued"]) && history.contains(&"in_progress"),
        "{history:?}"
    );
    assert!(
        runs[0]
            .history
            .iter()
            .any(|h| h.2.starts_with("Queued: position 1 of 1")),
        "{:?}",
        runs[0].history
    );
    s.wait(30, "a passed check run on the merged commit", || {
        s.gh.checks_on(&main)
            .iter()
            .any(|c| c.conclusion.as_deref() == Some("success"))
    });
    s.wait_reply(pr.number, &format!("Merged: `{main}`"));
    s.wait(
        30,
        "the run on the old head to be marked superseded",
        || {
            s.gh.checks_on(&submitted)
                .iter()
                .all(|c| c.conclusion.as_deref() == Some("neutral") && c.title == "Superseded")
        },
    );
    s.wait(30, "the merged branch to be deleted", || {
        s.remote_tip(&s.branch(&id)).is_none()
    });
    s.wait(30, "the card to show the merge", || {
        s.gh.pull_for(&s.branch(&id))
            .is_some_and(|p| p.body.contains("**State:** merged") && p.body.contains("- [x]"))
    });
    let env = std::fs::read_to_string(s.repo.tmp.path().join("verify-env.txt")).unwrap();
    assert!(
        !env.contains(&s.gh.token),
        "the token reached verify's environment"
    );
    assert!(!env.contains(TOKEN_ENV));
    s.finish(daemon);
}

#[test]
fn an_approving_review_from_an_approver_unblocks_a_checkpoint() {
    let s = Setup::new("verify = [\"true\"]", "approvers = [\"alice\"]");
    // The queue's timer is an hour: the approval read from GitHub must wake it.
    let daemon = s.daemon_with(&[("SWITCHYARD_TEST_QUEUE_TICK", "1h")]);
    let (id, wt) = s.work(
        "Tune CI",
        &["ci"],
        &[(".github/ci.yml", "on: [push, pull_request]\n")],
    );
    assert_eq!(s.state(&id), "awaiting_approval");
    let pr = s.wait_pull(&id);
    assert!(
        pr.body.contains("- subsystem ci requires approval"),
        "{}",
        pr.body
    );
    s.wait(30, "the check run to wait for approval", || {
        s.gh.checks_on(&pr.head_sha)
            .iter()
            .any(|c| c.title == "Waiting for approval")
    });

    s.gh.review(pr.number, "mallory", "APPROVED");
    s.wait_reply(pr.number, "@mallory thanks for the review");
    assert_eq!(s.state(&id), "awaiting_approval", "mallory is no approver");

    // Sent back, the executor submits a second version; an approval of the first does
    // not count for it.
    let first = pr.head_sha.clone();
    s.gh.comment(pr.number, "alice", "/switchyard reject one more change");
    s.wait_reply(pr.number, "@alice rejected");
    commit_in(&wt, "More CI", &[(".github/ci.yml", "on: [push]\n")]);
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    let second = show(&s.repo, &id)["submitted_head"]
        .as_str()
        .unwrap()
        .to_owned();
    s.wait(30, "the PR to show the second version", || {
        s.gh.checks_on(&second)
            .iter()
            .any(|c| c.title == "Waiting for approval")
    });
    s.gh.review_at(pr.number, "alice", "APPROVED", Some(&first));
    // Reviews are read before comments: once this refusal is answered, the stale
    // approval has been read too.
    s.gh.comment(pr.number, "mallory", "/switchyard approve");
    s.wait_reply(pr.number, "@mallory sorry");
    assert_eq!(
        s.state(&id),
        "awaiting_approval",
        "an approval of {first} approves nothing else"
    );

    s.gh.review(pr.number, "alice", "COMMENTED");
    s.gh.review(pr.number, "alice", "APPROVED");
    s.wait_state(&id, "merged");
    let approved = last_event(&s.repo, &id, "approved");
    assert_eq!(approved["by"]["name"], "alice");
    s.finish(daemon);
}

/// With `[review] required`, an approving PR review by one of `[review] reviewers`
/// counts as the review of exactly the commit it reviewed: an approver who is no
/// reviewer does not count, nor does a review of an earlier push.
#[test]
fn an_approving_review_from_a_reviewer_counts_as_the_review_of_that_commit() {
    let s = Setup::new(
        "verify = [\"true\"]",
        "approvers = [\"alice\"]\n[review]\nrequired = true\nreviewers = [\"rita\"]",
    );
    let daemon = s.daemon();
    let (id, wt) = s.work("Tune the app", &["app"], &[("app/main.txt", "two\n")]);
    assert_eq!(s.state(&id), "awaiting_review");
    let pr = s.wait_pull(&id);
    let first = pr.head_sha.clone();
    s.wait(30, "the check run to wait for a review", || {
        s.gh.checks_on(&first)
            .iter()
            .any(|c| c.title == "Waiting for a review")
    });
    s.gh.review(pr.number, "alice", "APPROVED");
    s.wait_reply(pr.number, "@alice thanks for the review. It does not count");
    assert_eq!(s.state(&id), "awaiting_review", "alice is no reviewer");

    s.repo
        .run([
            "review", "changes", &id, "--by", "rita", "--notes", "one more", "--commit", &first,
        ])
        .expect(0);
    commit_in(&wt, "More", &[("app/main.txt", "three\n")]);
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    let second = show(&s.repo, &id)["submitted_head"]
        .as_str()
        .unwrap()
        .to_owned();
    s.wait(30, "the PR to show the second version", || {
        s.gh.checks_on(&second)
            .iter()
            .any(|c| c.title == "Waiting for a review")
    });
    s.gh.review_at(pr.number, "rita", "APPROVED", Some(&first));
    // Reviews are read before comments: once this refusal is answered, the stale
    // review has been read too.
    s.gh.comment(pr.number, "mallory", "/switchyard approve");
    s.wait_reply(pr.number, "@mallory sorry");
    assert_eq!(
        s.state(&id),
        "awaiting_review",
        "a review of {first} reviews nothing else"
    );
    s.gh.review(pr.number, "rita", "APPROVED");
    s.wait_state(&id, "merged");
    let reviewed = last_event(&s.repo, &id, "review_approved");
    assert_eq!(reviewed["by"]["name"], "rita");
    assert_eq!(reviewed["evidence"]["commit"], second.as_str());
    assert!(
        reviewed["evidence"]["source"]
            .as_str()
            .unwrap()
            .starts_with("approving review "),
        "{reviewed}"
    );
    s.finish(daemon);
}

#[test]
fn comment_commands_work_for_approvers_and_are_refused_for_others() {
    let s = Setup::new(
        "verify = [\"true\"]",
        "approvers = [\"alice\", \"@acme-team/leads\"]",
    );
    // Team approvers are checked with GitHub's team API, under the test's own owner.
    let s = {
        let owner = s.gh.owner.clone();
        let text = std::fs::read_to_string(s.repo.root.join("switchyard.toml")).unwrap();
        s.repo
            .config(&text.replace("@acme-team/leads", &format!("@{owner}/leads")));
        s.repo.commit("team approvers");
        s.gh.add_team("leads", &["bob"]);
        s
    };
    let daemon = s.daemon();
    let (id, wt) = s.work("Tune CI", &["ci"], &[(".github/ci.yml", "on: [push]\n")]);
    let pr = s.wait_pull(&id);

    // Someone without permission: a polite refusal, nothing changes.
    s.gh.comment(pr.number, "eve", "/switchyard approve");
    s.wait_reply(pr.number, "@eve sorry, only `alice`, `@");
    assert_eq!(s.state(&id), "awaiting_approval");
    // Commands in code blocks and quotes are not commands.
    s.gh.comment(
        pr.number,
        "bob",
        "To approve, write:\n```\n/switchyard approve\n```\n> /switchyard cancel",
    );
    // Bad arguments are explained.
    s.gh.comment(pr.number, "bob", "/switchyard priority high");
    s.wait_reply(pr.number, "@bob `priority` needs a whole number");
    s.gh.comment(pr.number, "bob", "/switchyard priority 7");
    s.wait_reply(pr.number, "priority is 7 now");
    assert_eq!(show(&s.repo, &id)["priority"], 7);
    assert_eq!(
        s.state(&id),
        "awaiting_approval",
        "the code block approved nothing"
    );

    s.gh.comment(
        pr.number,
        "bob",
        "/switchyard reject please add a comment to ci.yml",
    );
    s.wait_reply(pr.number, "@bob rejected");
    assert_eq!(s.state(&id), "returned");
    assert_eq!(
        last_event(&s.repo, &id, "rejected")["evidence"]["reason"],
        "please add a comment to ci.yml"
    );
    // Retry submits the same commit again, not the executor's work in progress.
    let submitted = show(&s.repo, &id)["submitted_head"].clone();
    commit_in(
        &wt,
        "Work in progress",
        &[(".github/ci.yml", "half done\n")],
    );
    s.gh.comment(pr.number, "alice", "/switchyard retry");
    s.wait_reply(pr.number, "submitted");
    assert_eq!(s.state(&id), "awaiting_approval");
    assert_eq!(show(&s.repo, &id)["attempt"], 2);
    assert_eq!(show(&s.repo, &id)["submitted_head"], submitted);
    s.gh.comment(pr.number, "bob", "LGTM\n/switchyard approve");
    s.wait_state(&id, "merged");
    assert_eq!(last_event(&s.repo, &id, "approved")["by"]["name"], "bob");
    assert_eq!(
        s.repo.git(&["show", "origin/main:.github/ci.yml"]),
        "on: [push]\n"
    );

    let (other, _) = s.work("Another", &["app"], &[("app/main.txt", "two\n")]);
    let _ = other;
    let (third, _) = s.work("Doomed", &["ci"], &[(".github/ci.yml", "nope\n")]);
    let pr3 = s.wait_pull(&third);
    s.gh.comment(pr3.number, "alice", "/switchyard cancel");
    s.wait_state(&third, "cancelled");
    s.wait(30, "the cancelled task's PR to close", || {
        s.gh.pull_for(&s.branch(&third)).is_some_and(|p| !p.open)
    });
    s.wait_reply(pr3.number, "was cancelled");
    // Bob gave four commands outside code blocks and quotes; each got one answer, and
    // the fenced and quoted ones none.
    let to_bob =
        s.gh.comments(pr.number)
            .iter()
            .filter(|c| c.login == "switchyard-bot" && c.body.starts_with("@bob"))
            .count();
    assert_eq!(to_bob, 4);
    s.finish(daemon);
}

#[test]
fn a_crash_between_creating_the_pr_and_recording_it_makes_no_duplicate() {
    let s = Setup::new("verify = [\"true\"]", "approvers = [\"alice\"]");
    // The test hook aborts the daemon right after its first recorded step: here, the
    // PR was created on GitHub but not yet recorded in the ledger.
    let crashed = s.repo.try_start_daemon_with(&[
        (TOKEN_ENV, &s.gh.token),
        ("SWITCHYARD_TEST_ABORT_AFTER_STEPS", "1"),
    ]);
    let mut crashed = crashed.unwrap();
    let id = add(&s.repo, "Tune CI", &["ci"]);
    let claimed = claim(&s.repo, Some(&id), "agent-a");
    commit_in(
        Path::new(claimed["worktree"].as_str().unwrap()),
        "Tune CI",
        &[(".github/ci.yml", "x\n")],
    );
    // The daemon may die before it answers: the submit is recorded before the PR is
    // made, so the answer does not matter here.
    let _ = s.repo.run(["submit", &id, "--agent", "agent-a"]);
    s.wait(30, "the daemon to abort", || !crashed.is_running());
    assert_eq!(s.gh.pulls().len(), 1, "the PR was created before the crash");
    drop(crashed);

    let daemon = s.daemon();
    s.wait(30, "the PR to be recorded", || {
        event_kinds(&s.repo, &id).contains(&"pr_opened".to_owned())
    });
    assert_eq!(
        last_event(&s.repo, &id, "pr_opened")["evidence"]["found_existing"],
        true
    );
    let pr = s.wait_pull(&id);
    s.gh.review(pr.number, "alice", "APPROVED");
    s.wait_state(&id, "merged");
    assert_eq!(s.gh.pulls().len(), 1, "still exactly one PR");
    let creates =
        s.gh.requests()
            .iter()
            .filter(|r| r.starts_with("POST /repos/") && r.ends_with("/pulls 201"))
            .count();
    assert_eq!(creates, 1);
    s.finish(daemon);
}

#[test]
fn server_errors_and_rate_limits_are_waited_out_and_github_converges() {
    let s = Setup::new("verify = [\"true\"]", "approvers = [\"alice\"]");
    let daemon = s.daemon();
    // GitHub goes down for a while: more failures in a row than one call retries.
    let mut faults = vec![Fault::Status(502), Fault::Status(503), Fault::Status(500)];
    faults = faults.repeat(4);
    faults.extend([Fault::TooMany, Fault::RateLimited, Fault::Status(504)]);
    s.gh.inject(&faults);
    let (waiting, _) = s.work("Tune CI", &["ci"], &[(".github/ci.yml", "y\n")]);
    // Local work goes on meanwhile: another task lands while GitHub still fails.
    let (landed, _) = s.work("Local work", &["app"], &[("app/main.txt", "local\n")]);
    s.wait_state(&landed, "merged");
    assert!(
        s.gh.faults_left() > 0,
        "it landed only after GitHub was back"
    );
    assert_eq!(s.state(&waiting), "awaiting_approval");

    s.wait(60, "the faults to be used up", || s.gh.faults_left() == 0);
    let pr = s.wait_pull(&waiting);
    s.wait(30, "the card and check run to converge", || {
        let pr = s.gh.pull_for(&s.branch(&waiting)).unwrap();
        pr.body.contains("**State:** awaiting approval")
            && s.gh
                .checks_on(&pr.head_sha)
                .iter()
                .any(|c| c.title == "Waiting for approval")
    });
    s.gh.review(pr.number, "alice", "APPROVED");
    s.wait_state(&waiting, "merged");
    let statuses: Vec<String> = s.gh.requests();
    for code in [" 502", " 429", " 403"] {
        assert!(
            statuses.iter().any(|r| r.ends_with(code)),
            "no{code} answer was given: {statuses:?}"
        );
    }
    assert_eq!(
        s.gh.pulls()
            .iter()
            .filter(|p| p.head == s.branch(&waiting))
            .count(),
        1
    );
    s.finish(daemon);
}

#[test]
fn github_checks_verify_passes_on_success_and_returns_the_task_on_failure() {
    let s = Setup::new(
        "verify = \"github-checks\"\nrequired_checks = [\"build\", \"lint\"]",
        "",
    );
    let daemon = s.daemon();
    let verify_branch = |id: &str| format!("switchyard/verify/{id}");

    let (good, _) = s.work("Good change", &["app"], &[("app/main.txt", "good\n")]);
    let mut sha = String::new();
    s.wait(30, "the rebased commit on the verify branch", || {
        sha = s.remote_tip(&verify_branch(&good)).unwrap_or_default();
        !sha.is_empty()
    });
    s.gh.ci_check(&sha, "build", "success", "all green");
    // Proof that the queue looked after the build reported: two more reads of the
    // commit's statuses (one may have been under way already).
    let status_reads = |s: &Setup| {
        s.gh.requests()
            .iter()
            .filter(|r| r.starts_with("GET") && r.contains(&format!("/commits/{sha}/status")))
            .count()
    };
    let before = status_reads(&s);
    s.wait(30, "the queue to read the checks again", || {
        status_reads(&s) >= before + 2
    });
    assert_eq!(s.state(&good), "verifying", "lint has not reported yet");
    s.gh.ci_status(&sha, "lint", "success");
    s.wait_state(&good, "merged");
    assert_eq!(
        s.remote_tip("main").unwrap(),
        sha,
        "what CI checked is what landed"
    );
    s.wait(30, "the verify branch to be deleted", || {
        s.remote_tip(&verify_branch(&good)).is_none()
    });

    let (bad, _) = s.work("Bad change", &["app"], &[("app/main.txt", "bad\n")]);
    s.wait(30, "the rebased commit on the verify branch", || {
        sha = s.remote_tip(&verify_branch(&bad)).unwrap_or_default();
        !sha.is_empty()
    });
    s.gh.ci_status(&sha, "lint", "success");
    s.gh.ci_check(&sha, "build", "failure", "3 tests failed");
    s.wait_state(&bad, "returned");
    let failed = last_event(&s.repo, &bad, "verify_failed");
    assert_eq!(failed["evidence"]["check"]["name"], "build");
    assert_eq!(failed["evidence"]["check"]["summary"], "3 tests failed");
    assert!(
        failed["evidence"]["check"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://ci.example.com/runs/")
    );
    s.wait(30, "the card and check run to show the failure", || {
        let Some(pr) = s.gh.pull_for(&s.branch(&bad)) else {
            return false;
        };
        pr.body
            .contains("check `build` did not succeed. 3 tests failed")
            && s.gh.checks_on(&pr.head_sha).iter().any(|c| {
                c.conclusion.as_deref() == Some("failure") && c.summary.contains("3 tests failed")
            })
    });
    s.finish(daemon);
}

#[test]
fn changes_made_on_github_by_a_person_take_the_task_out_of_the_queue() {
    // Sent back more often than the default attempt limit (5) allows.
    let s = Setup::new(
        "verify = [\"true\"]\nmax_attempts = 10",
        "approvers = [\"alice\"]",
    );
    let daemon = s.daemon();
    let (id, wt) = s.work("Tune CI", &["ci"], &[(".github/ci.yml", "a\n")]);
    let pr = s.wait_pull(&id);

    // Closed on GitHub: back to the executor; submitting again reopens the PR.
    s.gh.edit(pr.number, |p| p.open = false);
    s.wait_state(&id, "returned");
    assert_eq!(
        last_event(&s.repo, &id, "changed_on_github")["evidence"]["what"],
        "closed"
    );
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    s.wait(30, "the PR to be reopened", || {
        s.gh.pull_for(&s.branch(&id)).is_some_and(|p| p.open)
    });

    // A person edits the card: it is restored, with a note.
    s.gh.edit(pr.number, |p| p.body = "my own description".into());
    s.wait_reply(pr.number, "switchyard's card");
    s.wait(30, "the card to be restored", || {
        s.gh.pull_for(&s.branch(&id))
            .unwrap()
            .body
            .contains("### Timeline")
    });

    // Base changed on GitHub.
    s.gh.edit(pr.number, |p| p.base = "main-old".into());
    s.wait_state(&id, "returned");
    assert_eq!(
        last_event(&s.repo, &id, "changed_on_github")["evidence"]["what"],
        "base_changed"
    );
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    s.wait(30, "the base to be put back", || {
        s.gh.pull_for(&s.branch(&id)).unwrap().base == "main"
    });

    // New commits pushed to the PR's branch by someone else.
    let other = s.repo.tmp.path().join("other");
    git_in(
        s.repo.tmp.path(),
        &[
            "clone",
            "-q",
            s.bare.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    git_in(&other, &["checkout", "-q", &s.branch(&id)]);
    commit_in(&other, "Drive-by", &[(".github/ci.yml", "a\nb\n")]);
    git_in(&other, &["push", "-q", "origin", &s.branch(&id)]);
    s.wait_state(&id, "returned");
    assert_eq!(
        last_event(&s.repo, &id, "changed_on_github")["evidence"]["what"],
        "pushed"
    );
    // Submitting without their commits is refused on the next publish: nothing is lost.
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    s.wait_state(&id, "returned");
    let pushed = s.remote_tip(&s.branch(&id)).unwrap();
    assert_eq!(
        git_in(&other, &["rev-parse", "HEAD"]).trim(),
        pushed,
        "the person's commit is still there"
    );
    // The executor takes them in and submits again; then the branch is deleted by hand.
    git_in(
        &wt,
        &[
            "pull",
            "-q",
            "--ff-only",
            s.bare.to_str().unwrap(),
            &s.branch(&id),
        ],
    );
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    s.wait(30, "the PR to follow the new submission", || {
        s.gh.pull_for(&s.branch(&id)).is_some_and(|p| p.open && p.head_sha == pushed)
            && s.state(&id) == "awaiting_approval"
            // Published: the check run on the new head waits for approval.
            && s.gh.checks_on(&pushed).iter().any(|c| c.title == "Waiting for approval")
    });
    git_in(
        &other,
        &["push", "-q", "origin", "--delete", &s.branch(&id)],
    );
    s.wait_state(&id, "returned");
    assert_eq!(
        last_event(&s.repo, &id, "changed_on_github")["evidence"]["what"],
        "branch_deleted",
        "{:#}\n{}",
        s.repo.run(["--json", "log", &id]).expect(0).json(),
        s.log_tail()
    );
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    s.wait(30, "the branch to be pushed and the PR reopened", || {
        s.gh.pull_for(&s.branch(&id)).is_some_and(|p| p.open)
    });
    s.gh.review(pr.number, "alice", "APPROVED");
    s.wait_state(&id, "merged");
    s.finish(daemon);
}

#[test]
fn nothing_lands_from_a_pr_closed_during_integration_or_while_github_cannot_say() {
    let s = Setup::new(
        "verify = [\"while [ ! -f {tmp}/release ]; do sleep 0.05; done\"]",
        "",
    );
    let daemon = s.daemon();
    let before = s.remote_tip("main").unwrap();
    let (id, _) = s.work("Change", &["app"], &[("app/main.txt", "two\n")]);
    let pr = s.wait_pull(&id);
    let head = pr.head_sha.clone();
    s.wait(30, "verify to run", || {
        s.gh.checks_on(&head)
            .iter()
            .any(|c| c.status == "in_progress")
    });
    // Closed by a person while verify runs: verify passes, but nothing lands.
    s.gh.edit(pr.number, |p| p.open = false);
    let release = s.repo.tmp.path().join("release");
    std::fs::write(&release, "").unwrap();
    s.wait_state(&id, "returned");
    assert_eq!(
        s.remote_tip("main").unwrap(),
        before,
        "the base did not move"
    );
    let changed = last_event(&s.repo, &id, "changed_on_github");
    assert!(
        changed["evidence"]["reason"]
            .as_str()
            .unwrap()
            .contains("closed on GitHub"),
        "{changed:#}"
    );

    // Submitted again: the PR reopens. Then GitHub stops answering just before the
    // merge: the integration waits until it can see the PR again.
    std::fs::remove_file(&release).unwrap();
    s.repo.run(["submit", &id, "--agent", "agent-a"]).expect(0);
    s.wait(30, "the PR to be reopened", || {
        s.gh.pull_for(&s.branch(&id)).is_some_and(|p| p.open)
    });
    s.wait(30, "verify to run again", || s.state(&id) == "verifying");
    s.gh.inject(&[Fault::Status(503); 12]);
    std::fs::write(&release, "").unwrap();
    s.wait_state(&id, "merged");
    assert_eq!(s.gh.faults_left(), 0);
    assert!(
        daemon.log_text().contains("integration waits for GitHub"),
        "{}",
        s.log_tail()
    );
    s.finish(daemon);
}

#[test]
fn bad_tokens_and_missing_repositories_stop_the_daemon_with_one_clear_line() {
    let s = Setup::new("verify = [\"true\"]", "");
    let err = s
        .repo
        .try_start_daemon()
        .err()
        .expect("no token: must not start");
    assert!(
        err.contains("the GitHub token is missing: set the environment variable GITHUB_TOKEN"),
        "{err}"
    );

    let err = s
        .repo
        .try_start_daemon_with(&[(TOKEN_ENV, "ghp_wrongwrongwrong")])
        .err()
        .expect("a wrong token: must not start");
    assert!(
        err.contains("GitHub refused the token in $GITHUB_TOKEN (401)"),
        "{err}"
    );
    assert!(!err.contains("ghp_wrongwrongwrong"), "{err}");

    let text = std::fs::read_to_string(s.repo.root.join("switchyard.toml")).unwrap();
    s.repo
        .config(&text.replace(&s.gh.repo, &format!("{}/nope", s.gh.owner)));
    let err = s
        .repo
        .try_start_daemon_with(&[(TOKEN_ENV, &s.gh.token)])
        .err()
        .expect("a missing repository: must not start");
    assert!(
        err.contains(&format!(
            "the repository {}/nope was not found on GitHub",
            s.gh.owner
        )),
        "{err}"
    );
    assert!(!err.contains(&s.gh.token), "{err}");
    s.gh.assert_contract_clean();
}

#[test]
fn webhooks_with_a_good_signature_are_read_at_once_and_bad_ones_are_refused() {
    let port = crate::support::free_port();
    // Polling so slow that only a webhook delivery can explain a quick reaction.
    let s = Setup::new(
        "verify = [\"true\"]",
        &format!(
            "approvers = [\"alice\"]\nwebhook_listen = \"127.0.0.1:{port}\"\nwebhook_secret_env = \"HOOK_SECRET\""
        ),
    );
    let text = std::fs::read_to_string(s.repo.root.join("switchyard.toml")).unwrap();
    s.repo
        .config(&text.replace("poll_interval = \"150ms\"", "poll_interval = \"1h\""));
    // Debug logging shows every delivery that gets past the signature check, written
    // before the reply is sent.
    let daemon = s
        .repo
        .try_start_daemon_with(&[
            (TOKEN_ENV, &s.gh.token),
            ("HOOK_SECRET", "s3cret"),
            ("SWITCHYARD_LOG", "info,switchyard::daemon::webhook=debug"),
        ])
        .unwrap();
    let (id, _) = s.work("Tune CI", &["ci"], &[(".github/ci.yml", "w\n")]);
    let pr = s.wait_pull(&id);
    s.gh.review(pr.number, "alice", "APPROVED");
    let body = format!(
        "{{\"action\":\"submitted\",\"pull_request\":{{\"number\":{}}}}}",
        pr.number
    );

    let bad = post(port, "pull_request_review", &body, "sha256=00");
    assert!(bad.starts_with("HTTP/1.1 401"), "{bad}");
    // The reply came after the handler finished: it refused, and nudged nothing.
    let log = daemon.log_text();
    assert!(log.contains("missing or wrong signature"), "{log}");
    assert!(
        !log.contains("webhook delivery event="),
        "a bad delivery got through: {log}"
    );
    assert_eq!(
        s.state(&id),
        "awaiting_approval",
        "a bad signature changes nothing"
    );

    let signature = switchyard::github::webhook::sign(b"s3cret", body.as_bytes());
    let good = post(port, "pull_request_review", &body, &signature);
    assert!(good.starts_with("HTTP/1.1 202"), "{good}");
    s.wait_state(&id, "merged");
    let log = daemon.log_text();
    assert!(log.contains("webhook delivery event="), "{log}");
    assert!(!log.contains("s3cret"));
    s.finish(daemon);
}

/// Hundreds of half-sent requests on the internet-facing webhook port: the daemon keeps
/// its descriptors (a cap per listener, a raised soft limit), closes the stragglers after
/// the header timeout, and the local socket keeps answering the whole time.
#[test]
fn a_flood_of_half_sent_webhook_requests_does_not_freeze_the_daemon() {
    use std::io::{Read, Write};
    let port = crate::support::free_port();
    let s = Setup::new(
        "verify = [\"true\"]",
        &format!("webhook_listen = \"127.0.0.1:{port}\"\nwebhook_secret_env = \"HOOK_SECRET\""),
    );
    // A soft limit of 256 open files, as the daemon might inherit: 400 connections would
    // exhaust it if every one were accepted and held.
    let daemon = s
        .repo
        .try_start_daemon_limited(
            &[],
            &[(TOKEN_ENV, &s.gh.token), ("HOOK_SECRET", "s3cret")],
            Some(256),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    *s.log.borrow_mut() = Some(daemon.log.clone());
    // The daemon's descriptors, where this user may look (root; the daemon is not
    // dumpable, so nobody else can).
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", daemon.pid))
            .map(|d| d.count())
            .ok()
    };
    let before = fds();
    let mut held = Vec::new();
    for _ in 0..400 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"POST /github/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")
            .unwrap();
        held.push(c);
    }
    // Under the flood the local socket answers every command, promptly.
    let timeout = [("SWITCHYARD_TIMEOUT", "10s")];
    let started = std::time::Instant::now();
    let id = s
        .repo
        .run_env(
            &timeout,
            ["--json", "task", "add", "Under attack", "--scope", "app"],
        )
        .expect(0)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.repo
        .run_env(&timeout, ["claim", &id, "--agent", "ann"])
        .expect(0);
    s.repo.run_env(&timeout, ["task", "list"]).expect(0);
    let answered = started.elapsed();
    let during = fds();
    if let (Some(before), Some(during)) = (before, during) {
        assert!(
            during < before + 100,
            "the daemon holds {during} descriptors under the flood ({before} before)"
        );
    }
    assert!(
        answered < std::time::Duration::from_secs(30),
        "{answered:?}"
    );
    eprintln!(
        "under 400 half-sent webhook requests: 3 CLI commands took {answered:?}; descriptors {before:?} -> {during:?}"
    );
    // The stragglers it accepted are closed once the header timeout passes.
    let first = &mut held[0];
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 512];
    let closed_after = std::time::Instant::now();
    let n = first.read(&mut buf).unwrap_or(0);
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        n == 0 || reply.starts_with("HTTP/1.1 408"),
        "want the connection closed, got {reply:?}"
    );
    assert!(closed_after.elapsed() < std::time::Duration::from_secs(29));
    drop(held);
    s.finish(daemon);
}

fn post(port: u16, event: &str, body: &str, signature: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /github/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-GitHub-Event: {event}\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

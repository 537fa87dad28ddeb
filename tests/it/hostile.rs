//! What a hostile or clumsy world does to the daemon: out-of-range values, names that
//! look alike, retries, lost ledgers, runaway commands, a moved base, floods of
//! connections. Each test drives the real binary and checks that nothing is lost and
//! nothing unverified lands.

use crate::support::*;

/// A repository with `files` committed and `config` as its switchyard.toml.
fn repo(files: &[&str], config: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.files(files).config(config).commit("init");
    repo
}

fn shop() -> TestRepo {
    repo(
        &["api/app.py", "web/index.html", "docs/README.md"],
        "[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\n\
         [[subsystem]]\nname = \"web\"\npaths = [\"web/\"]\n\n\
         [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\n",
    )
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
    assert_eq!(tasks(&repo).len(), 1);
}

fn approval_repo() -> TestRepo {
    repo(
        &["api/app.py", "docs/README.md"],
        "[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\n\
         [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\napproval = \"required\"\n",
    )
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

/// Every mutating request, sent again after it succeeded (its reply lost), gets the same
/// answer and records nothing twice.
#[test]
fn retries_of_every_mutating_request_are_safe() {
    let repo = approval_repo();
    let _daemon = repo.start_daemon();
    let count_events = |id: &str| events(&repo, id).len();

    // task add: the same request id returns the same task; another title is refused.
    let add_docs = || {
        repo.run([
            "--json",
            "task",
            "add",
            "Docs",
            "--scope",
            "docs",
            "--request-id",
            "req-1",
        ])
        .expect(0)
        .json()
    };
    let first = add_docs();
    let again = add_docs();
    assert_eq!(first["id"], again["id"]);
    repo.run(["task", "add", "Other", "--request-id", "req-1"])
        .refused(1, "request id \"req-1\" already made t1");
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(tasks(&repo).len(), 1);

    // claim without an id: the agent's own task again, renewed.
    let claimed = claim(&repo, None, "dora");
    let retried = claim(&repo, None, "dora");
    assert_eq!(
        (retried["id"].clone(), retried["renewed"].clone()),
        (claimed["id"].clone(), true.into())
    );

    // submit twice: one submission, attempt 1, the retry says so.
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(&wt, "docs", &[("docs/README.md", "better\n")]);
    repo.run(["submit", &id, "--agent", "dora"]).expect(0);
    let n = count_events(&id);
    let again = repo
        .run(["--json", "submit", &id, "--agent", "dora"])
        .expect(0)
        .json();
    assert_eq!(again["attempt"], 1);
    assert_eq!(again["state"], "awaiting_approval");
    assert!(
        again["warnings"][0]
            .as_str()
            .unwrap()
            .contains("already submitted"),
        "{again}"
    );
    assert_eq!(count_events(&id), n, "the retry recorded nothing");

    // reject twice with the same reason: one rejection.
    repo.run(["reject", &id, "--by", "lead", "--reason", "needs a test"])
        .expect(0);
    let n = count_events(&id);
    let again = repo
        .run([
            "--json",
            "reject",
            &id,
            "--by",
            "lead",
            "--reason",
            "needs a test",
        ])
        .expect(0)
        .json();
    assert_eq!(again["state"], "returned");
    assert_eq!(count_events(&id), n);
    repo.run(["reject", &id, "--by", "lead", "--reason", "another reason"])
        .refused(1, "t1 is returned, not in the queue or at a checkpoint");

    // approve twice: one approval.
    commit_in(&wt, "test", &[("docs/test.md", "test\n")]);
    repo.run(["submit", &id, "--agent", "dora"]).expect(0);
    repo.run(["approve", &id, "--by", "lead"]).expect(0);
    // The queue takes it from here, adding its own events; only approvals count.
    let approvals = || {
        events(&repo, &id)
            .iter()
            .filter(|e| *e == "approved")
            .count()
    };
    let again = repo
        .run(["--json", "approve", &id, "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(again["approved_attempt"], 2);
    assert_eq!(approvals(), 1);

    // Once it landed, the same submit and the same approval still answer as before.
    eventually(30, "the task to land", || {
        show(&repo, &id)["state"] == "merged"
    });
    let again = repo
        .run(["--json", "submit", &id, "--agent", "dora"])
        .expect(0)
        .json();
    assert_eq!(again["state"], "merged");
    repo.run(["approve", &id, "--by", "lead"]).expect(0);
    repo.run(["submit", &id, "--agent", "erin"])
        .refused(1, "is merged, not claimed");

    // release and cancel, each twice, with uncommitted work that stays with the task.
    let other = add(&repo, "Api", &["api"]);
    let held = claim(&repo, Some(&other), "erin");
    std::fs::write(
        std::path::Path::new(held["worktree"].as_str().unwrap()).join("api/wip.txt"),
        "wip\n",
    )
    .unwrap();
    repo.run(["release", &other, "--agent", "erin"]).expect(0);
    let n = count_events(&other);
    let again = repo
        .run(["--json", "release", &other, "--agent", "erin"])
        .expect(0)
        .json();
    assert_eq!(again["state"], "open");
    assert_eq!(count_events(&other), n);
    repo.run(["release", &other, "--agent", "frank"])
        .refused(1, "t2 is open, not claimed");
    repo.run(["task", "cancel", &other, "--by", "lead"])
        .expect(0);
    let n = count_events(&other);
    let again = repo
        .run(["--json", "task", "cancel", &other, "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(again["state"], "cancelled");
    assert_eq!(count_events(&other), n);
}

#[test]
fn a_lost_ledger_is_never_replaced_silently() {
    let repo = shop();
    let daemon = repo.start_daemon();
    let t1 = add(&repo, "Api work", &["api"]);
    add(&repo, "Web work", &["web"]);
    let claimed = claim(&repo, Some(&t1), "ann");
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(&wt, "work", &[("api/app.py", "v2\n")]);
    std::fs::write(wt.join("api/notes.txt"), "uncommitted\n").unwrap();
    let branch = claimed["branch"].as_str().unwrap().to_owned();
    let tip = repo.git(&["rev-parse", &branch]);
    daemon.stop();

    let state = repo.root.join(".git/switchyard");
    let remove_ledger = || {
        for f in ["ledger.db", "ledger.db-wal", "ledger.db-shm"] {
            let _ = std::fs::remove_file(state.join(f));
        }
    };
    remove_ledger();
    repo.run_within(60, &[], ["daemon"]).refused(
        1,
        "is missing, but switchyard has run in this repository (tasks t1 left branches, refs or worktrees); restore the ledger from a backup, or run `switchyard daemon --new-ledger`",
    );
    std::fs::write(state.join("ledger.db"), b"").unwrap();
    repo.run_within(60, &[], ["daemon"])
        .refused(1, "is empty, but switchyard has run in this repository");
    // Refusing changed nothing: the work is where it was.
    assert_eq!(repo.git(&["rev-parse", &branch]), tip);
    assert_eq!(
        std::fs::read_to_string(wt.join("api/notes.txt")).unwrap(),
        "uncommitted\n"
    );
    assert_eq!(std::fs::metadata(state.join("ledger.db")).unwrap().len(), 0);

    let daemon = repo
        .try_start_daemon_args(&["--new-ledger"], &[])
        .unwrap_or_else(|e| panic!("{e}"));
    // The empty ledger and the task's worktree, with its uncommitted file, are archived.
    let archives: Vec<_> = std::fs::read_dir(state.join("archive"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(archives.len(), 1);
    assert!(archives[0].path().join("ledger.db").exists());
    let root = wt.parent().unwrap();
    let aside: Vec<_> = std::fs::read_dir(root.join(".archive"))
        .unwrap()
        .flatten()
        .collect();
    let kept = aside[0].path().join("t1");
    assert_eq!(
        std::fs::read_to_string(kept.join("api/notes.txt")).unwrap(),
        "uncommitted\n"
    );
    assert_eq!(git_in(&kept, &["rev-parse", "HEAD"]), tip);
    assert!(!wt.exists());
    // A new task never inherits t1's branch.
    assert_eq!(
        repo.run(["--json", "task", "list"]).expect(0).json(),
        serde_json::json!([])
    );
    let new = add(&repo, "Api work", &["api"]);
    assert_ne!(new, "t1");
    let fresh = claim(&repo, Some(&new), "bob");
    assert_eq!(
        repo.git(&["rev-parse", fresh["branch"].as_str().unwrap()]),
        repo.git(&["rev-parse", "main"])
    );
    assert_eq!(repo.git(&["rev-parse", &branch]), tip);
    daemon.stop();
    // Begun on purpose: the next start needs no flag; and the flag never replaces a
    // ledger that holds tasks (left in a service file, it would at every restart).
    repo.start_daemon().stop();
    repo.run_within(60, &[], ["daemon", "--new-ledger"])
        .refused(
            1,
            "--new-ledger begins a ledger where the old one is missing or empty",
        );
    let daemon = repo.start_daemon();
    assert_eq!(tasks(&repo).len(), 1, "the ledger is the one it was");
    daemon.stop();
}

#[test]
fn paths_cannot_lead_out_of_the_repository() {
    let repo = shop();
    let outside = repo.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("shadow"), "root:secret\n").unwrap();
    std::fs::create_dir_all(repo.root.join("inside")).unwrap();

    // A worktree root that reaches into the checkout through a symlink, and a copy
    // entry inside .git: located config errors.
    std::os::unix::fs::symlink(repo.root.join("inside"), repo.tmp.path().join("wt-link")).unwrap();
    let base = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    repo.config(&format!(
        "{base}\n[worktrees]\nroot = \"../wt-link\"\ncopy = [\".git/config\", \"sub/.GIT/x\"]\n"
    ));
    let run = repo.run(["check"]).expect(2);
    let err = run.stderr();
    assert!(
        err.contains("switchyard.toml:14:8: `root` \"../wt-link\" leads into the repository's checkout through a symlink"),
        "{err}"
    );
    assert!(
        err.contains("switchyard.toml:15:9: `copy` entry \".git/config\" is inside .git"),
        "{err}"
    );
    assert!(
        err.contains("`copy` entry \"sub/.GIT/x\" is inside .git"),
        "{err}"
    );
    repo.run_within(60, &[], ["daemon"]).expect(2);

    // A copy entry that is a symlink to a file anywhere on the machine is not copied.
    std::os::unix::fs::symlink(outside.join("shadow"), repo.root.join("local.env")).unwrap();
    std::fs::write(repo.root.join("real.env"), "A=1\n").unwrap();
    repo.config(&format!(
        "{base}\n[worktrees]\ncopy = [\"local.env\", \"real.env\", \"conf/app.env\", \"conf/sub/deep.env\"]\n"
    ));
    std::fs::create_dir_all(repo.root.join("conf/sub")).unwrap();
    std::fs::write(repo.root.join("conf/app.env"), "B=2\n").unwrap();
    std::fs::write(repo.root.join("conf/sub/deep.env"), "C=3\n").unwrap();
    repo.git(&["add", "switchyard.toml"]);
    repo.git(&["commit", "-qm", "copy"]);
    let daemon = repo.start_daemon();
    let id = add(&repo, "Api", &["api"]);
    let claimed = claim(&repo, Some(&id), "ann");
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    let warnings = claimed["warnings"].to_string();
    assert!(
        warnings.contains(
            "local.env (in [worktrees] copy) leads outside the checkout through a symlink"
        ),
        "{warnings}"
    );
    assert!(!wt.join("local.env").exists());
    assert_eq!(
        std::fs::read_to_string(wt.join("real.env")).unwrap(),
        "A=1\n"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("conf/app.env")).unwrap(),
        "B=2\n"
    );

    // A branch that turns the copy's directory into a symlink out of the worktree, and
    // the env file into a symlink to a file elsewhere: the next claim's copy and env file
    // do not write through them, nor make directories out there.
    std::fs::remove_dir_all(wt.join("conf")).unwrap();
    std::os::unix::fs::symlink(&outside, wt.join("conf")).unwrap();
    let victim = repo.tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::remove_file(wt.join(".switchyard.env")).unwrap();
    std::os::unix::fs::symlink(&victim, wt.join(".switchyard.env")).unwrap();
    git_in(&wt, &["add", "-f", "conf", ".switchyard.env"]);
    git_in(&wt, &["commit", "-qm", "conf and the env file are links"]);
    repo.run(["release", &id, "--agent", "ann"]).expect(0);
    let again = claim(&repo, Some(&id), "ann");
    let warnings = again["warnings"].to_string();
    assert!(
        warnings.contains("conf/app.env (in [worktrees] copy) would be written outside the worktree through a symlink"),
        "{warnings}"
    );
    assert!(!outside.join("app.env").exists());
    assert!(
        !outside.join("sub").exists(),
        "no directory was made out there"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let wt = std::path::PathBuf::from(again["worktree"].as_str().unwrap());
    let env = wt.join(".switchyard.env");
    assert!(!env.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(
        std::fs::read_to_string(env)
            .unwrap()
            .contains("SWITCHYARD_TASK='t1'")
    );
    drop(daemon);
}

/// A repository whose hooks live in the tree (`core.hooksPath`, as husky sets it): a
/// submitted branch's hook never runs in the daemon's git.
#[test]
fn hooks_from_a_submitted_branch_never_run_in_the_daemon() {
    let repo = shop();
    repo.git(&["config", "core.hooksPath", "api/hooks"]);
    let marker = repo.tmp.path().join("hook-ran");
    let _daemon = repo.start_daemon();
    let id = add(&repo, "Api", &["api"]);
    let claimed = claim(&repo, Some(&id), "mallory");
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    let hook = format!("#!/bin/sh\nid -u > {}\n", marker.display());
    for name in [
        "post-checkout",
        "post-rewrite",
        "reference-transaction",
        "post-merge",
    ] {
        std::fs::create_dir_all(wt.join("api/hooks")).unwrap();
        std::fs::write(wt.join("api/hooks").join(name), &hook).unwrap();
        std::fs::set_permissions(
            wt.join("api/hooks").join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    // The executor's own git runs the hooks in its worktree (its business); the marker
    // is cleared before the daemon handles the branch.
    git_in(&wt, &["-c", "core.hooksPath=/dev/null", "add", "-A"]);
    git_in(
        &wt,
        &["-c", "core.hooksPath=/dev/null", "commit", "-qm", "hooks"],
    );
    commit_in(&wt, "work", &[("api/app.py", "v2\n")]);
    let _ = std::fs::remove_file(&marker);
    repo.run(["submit", &id, "--agent", "mallory"]).expect(0);
    eventually(30, "the task to land", || {
        show(&repo, &id)["state"] == "merged"
    });
    // A claim of a branch with the hooks, from the pool, checks it out again.
    let other = add(&repo, "Web", &["web"]);
    claim(&repo, Some(&other), "ann");
    assert!(
        !marker.exists(),
        "a hook from the branch ran: {:?}",
        std::fs::read_to_string(&marker)
    );
}

#[test]
fn a_state_directory_made_by_someone_else_is_refused() {
    let repo = shop();
    let state = repo.root.join(".git/switchyard");
    let elsewhere = repo.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &state).unwrap();
    repo.run_within(60, &[], ["daemon"]).refused(
        1,
        ".git/switchyard is not a directory of its own (a symlink or a file)",
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing was written there"
    );
    std::fs::remove_file(&state).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // As root, a directory that another user made (65534: nobody).
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        repo.run_within(60, &[], ["daemon"])
            .refused(1, "belongs to uid 65534, not to this user (uid 0)");
        std::fs::remove_dir(&state).unwrap();
    }
    repo.start_daemon();
}

#[test]
fn errors_keep_their_shape_and_clients_never_hang() {
    let repo = shop();
    let daemon = repo.start_daemon();
    let envelope = |reply: &str, status: &str, code: &str| {
        assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{reply}");
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply}"));
        assert_eq!(json["error"]["code"], code, "{reply}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.contains('\n'), "{reply}");
    };
    envelope(
        &raw_http(
            &repo,
            b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        "404",
        "not_found",
    );
    envelope(
        &raw_http(
            &repo,
            b"DELETE /v1/tasks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        "405",
        "method_not_allowed",
    );
    envelope(
        &raw_http(
            &repo,
            b"GET /v1/tasks?state=bogus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        "400",
        "bad_request",
    );
    envelope(
        &raw_http(
            &repo,
            b"GET /v1/tasks/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        "400",
        "bad_request",
    );
    let big = format!(
        r#"{{"title":"x","by":"p","body":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    envelope(&raw_post(&repo, "/v1/tasks", &big), "413", "too_large");
    envelope(
        &raw_post(&repo, "/v1/tasks", "{not json"),
        "400",
        "bad_request",
    );
    assert_eq!(tasks(&repo).len(), 0);

    // A hung daemon: the CLI gives up with one line instead of hanging.
    daemon.freeze(true);
    let started = std::time::Instant::now();
    let run = repo.run_within(30, &[("SWITCHYARD_TIMEOUT", "1s")], ["task", "list"]);
    let waited = started.elapsed();
    daemon.freeze(false);
    let run = run.refused(1, "the daemon did not answer within 1s");
    assert!(
        run.stderr()
            .contains("look (`switchyard task list`) before you repeat it"),
        "{}",
        run.stderr()
    );
    assert!(waited < std::time::Duration::from_secs(30), "{waited:?}");
    repo.run(["task", "list"]).expect(0);
    // An add whose answer is lost names the request id that makes repeating it safe.
    daemon.freeze(true);
    let run = repo.run_within(
        30,
        &[("SWITCHYARD_TIMEOUT", "1s")],
        ["task", "add", "Once", "--scope", "api"],
    );
    daemon.freeze(false);
    let err = run
        .refused(1, "to repeat this add safely, add `--request-id cli-")
        .stderr();
    let request = err
        .rsplit("--request-id ")
        .next()
        .unwrap()
        .trim()
        .trim_end_matches('`');
    repo.run([
        "task",
        "add",
        "Once",
        "--scope",
        "api",
        "--request-id",
        request,
    ])
    .expect(0);
    assert_eq!(
        tasks(&repo).len(),
        1,
        "the frozen add went through once, the repeat added nothing"
    );
    repo.run_env(&[("SWITCHYARD_TIMEOUT", "soon")], ["task", "list"])
        .refused(2, "SWITCHYARD_TIMEOUT: invalid duration \"soon\"");
}

const SECRETS: [(&str, &str); 4] = [
    ("OPENAI_KEY", "sk-live-abc123"),
    ("DB_PWD", "hunter2-pwd"),
    ("GH_PAT", "ghp_pat0123456789"),
    ("AWS_SECRET_ACCESS_KEY", "aws-s3cr3t"),
];

/// Verify runs code from a submitted branch: it must not reach a secret of the daemon,
/// neither in its own environment nor by walking up to the daemon's /proc files.
#[test]
fn verify_and_setup_cannot_read_the_daemons_secrets() {
    let repo = TestRepo::new();
    let out = repo.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The probe walks up its ancestors to the daemon (past the supervisor) and tries to
    // read its environment and its memory.
    let o = out.display();
    let probe = format!(
        r#"who=$1
env > {o}/$who-env.txt
p=$PPID
while ! tr '\0' ' ' < /proc/$p/cmdline | grep -q ' daemon'; do
  p=$(cut -d' ' -f4 /proc/$p/stat)
done
echo $p > {o}/$who-daemon-pid.txt
cat /proc/$p/environ > {o}/$who-parent.txt 2> {o}/$who-parent-error.txt
echo $? > {o}/$who-parent-status.txt
head -c 1 /proc/$p/mem > /dev/null 2> {o}/$who-mem-error.txt
grep CapEff /proc/self/status > {o}/$who-caps.txt
true
"#
    );
    repo.file("api/probe.sh", &probe);
    repo.files(&["api/app.py"])
        .config(
            "[queue]\nverify = [\"sh api/probe.sh verify\"]\n\
             [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\
             [worktrees]\npool = 0\nsetup = \"sh api/probe.sh setup\"\n\
             [commands]\nenv = [\"MY_SETTING\"]\n",
        )
        .commit("init");
    let mut env: Vec<(&str, &str)> = SECRETS.to_vec();
    env.push(("MY_SETTING", "visible"));
    let daemon = repo.try_start_daemon_with(&env).unwrap();
    let id = submit_change(&repo, "Api", "ann", "api/app.py", "v2\n");
    eventually(60, "the task to land", || {
        show(&repo, &id)["state"] == "merged"
    });

    for who in ["setup", "verify"] {
        let read = |f: &str| std::fs::read_to_string(out.join(format!("{who}-{f}"))).unwrap();
        let own = read("env.txt");
        assert!(own.contains("MY_SETTING=visible"), "{who}: {own}");
        assert!(
            own.contains(&format!("SWITCHYARD_TASK={id}")),
            "{who}: {own}"
        );
        assert_eq!(
            read("daemon-pid.txt").trim(),
            daemon.pid.to_string(),
            "{who} found the daemon"
        );
        let parent = read("parent.txt");
        let status = read("parent-status.txt");
        let error = read("parent-error.txt");
        for (name, value) in SECRETS {
            assert!(!own.contains(value), "{who} got {name} in its environment");
            assert!(!parent.contains(value), "{who} read {name} from the daemon");
        }
        // Its memory, where the secrets are, is closed: the daemon is not dumpable and,
        // as root, the command lacks CAP_SYS_PTRACE. ("cannot open", not a read error.)
        let mem = read("mem-error.txt");
        assert!(
            mem.contains("cannot open") && mem.contains("Permission denied"),
            "{who}: {mem}"
        );
        // As root, the command lacks the capabilities that reach another process's
        // memory: CAP_SYS_PTRACE (19) and CAP_SYS_RAWIO (17) among them.
        let caps = u64::from_str_radix(
            read("caps.txt").trim().trim_start_matches("CapEff:").trim(),
            16,
        )
        .unwrap();
        assert_eq!(
            caps & (1 << 19 | 1 << 17),
            0,
            "{who} kept ptrace or raw I/O: {caps:x}"
        );
        // Its environment holds no secret (above); for a user other than root it is
        // closed too (root keeps the right to read it on this kernel).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert_ne!(
                status.trim(),
                "0",
                "{who} could read /proc/<daemon>/environ"
            );
            assert!(error.contains("Permission denied"), "{who}: {error}");
        }
    }
    // By construction: the daemon's own environment holds none of them (readable here
    // only with CAP_SYS_PTRACE, that is as root).
    if let Ok(environ) = std::fs::read(format!("/proc/{}/environ", daemon.pid)) {
        let environ = String::from_utf8_lossy(&environ);
        for (name, value) in SECRETS {
            assert!(
                !environ.contains(value),
                "the daemon kept {name} in its environment"
            );
        }
        assert!(environ.contains("MY_SETTING=visible"), "{environ}");
    }
    let ledger = ledger_bytes(&repo);
    let logs = all_text_under(&repo.root.join(".git/switchyard/logs"));
    let log = daemon.log_text();
    // The daemon says which variables it kept (names only): none of the secrets'.
    let kept = log
        .lines()
        .find(|l| l.contains("the daemon's environment (names only)"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(kept.contains("MY_SETTING"), "{kept}");
    for (name, _) in SECRETS {
        assert!(!kept.contains(name), "the daemon kept {name}: {kept}");
    }
    for (name, value) in SECRETS {
        for (place, text) in [
            ("ledger", &ledger),
            ("command logs", &logs),
            ("daemon log", &log),
        ] {
            assert!(!text.contains(value), "{name} reached the {place}");
        }
    }
}

/// `[commands] run_as`: as root, verify and setup run as that user, can build and use
/// git in their worktrees, and the queue goes on landing task after task; as anyone
/// else, the daemon says it needs root.
#[test]
fn commands_run_as_another_user_when_asked() {
    let repo = TestRepo::new();
    let out = repo.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let o = out.display();
    repo.files(&["api/app.py"])
        .config(&format!(
            "[queue]\nverify = [\"id -u > {o}/uid-$SWITCHYARD_TASK; echo $HOME > {o}/home; git status --short > {o}/git-$SWITCHYARD_TASK 2>&1; kill -9 $PPID 2> {o}/kill-$SWITCHYARD_TASK; touch built.txt\"]\n\
             [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\
             [worktrees]\npool = 1\nsetup = \"id -u > {o}/setup-uid; touch api/set-up.txt\"\n\
             [commands]\nrun_as = \"nobody\"\n"
        ))
        .commit("init");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        repo.run_within(60, &[], ["daemon"]).refused(
            1,
            "[commands] run_as = \"nobody\" needs the daemon to run as root",
        );
        return;
    }
    // The worktrees live under the test's temporary directory, which `nobody` must be
    // able to enter.
    std::fs::set_permissions(
        repo.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let _daemon = repo.start_daemon();
    for (n, agent) in ["ann", "bob", "cat"].iter().enumerate() {
        let id = add(&repo, &format!("Api {n}"), &["api"]);
        let claimed = claim(&repo, Some(&id), agent);
        let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
        commit_in(&wt, "work", &[(&format!("api/f{n}.py"), "v2\n")]);
        repo.run(["submit", &id, "--agent", agent]).expect(0);
        eventually(60, "the task to land", || {
            show(&repo, &id)["state"] == "merged"
        });
        let read = |f: String| std::fs::read_to_string(out.join(f)).unwrap();
        assert_eq!(read(format!("uid-{id}")).trim(), "65534");
        // git worked for the command, in a worktree that belongs to the daemon's user.
        assert!(out.join(format!("git-{id}")).exists());
        assert!(!read(format!("git-{id}")).contains("fatal"));
        // It cannot kill its supervisor (the daemon's user) to set its processes free.
        assert!(
            read(format!("kill-{id}")).contains("Operation not permitted"),
            "{}",
            read(format!("kill-{id}"))
        );
        // The integration worktree was given back to the daemon's user after verify.
        let tracked = repo
            .tmp
            .path()
            .join("repo.worktrees/.integration/api/app.py");
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&tracked).unwrap()),
            0
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("home")).unwrap().trim(),
        "/nonexistent"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("setup-uid"))
            .unwrap()
            .trim(),
        "65534"
    );
}

/// A verify that leaves a process in a session of its own: the process ends when the
/// daemon stops cleanly, when the daemon is killed (its supervisor ends it), and, when the
/// supervisor is killed too, at the next start.
#[test]
fn processes_started_by_verify_never_outlive_it() {
    let repo = TestRepo::new();
    let out = repo.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    repo.files(&["api/app.py"])
        .config(&format!(
            "[queue]\nverify = [\"setsid sh -c 'echo $$ > {o}/leak-$SWITCHYARD_TASK.pid; exec sleep 300' & touch {o}/started-$SWITCHYARD_TASK; while [ ! -f {o}/never ]; do sleep 0.05; done\"]\n\
             [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n",
            o = out.display()
        ))
        .commit("init");
    let leak = |id: &str| -> i32 {
        let file = out.join(format!("leak-{id}.pid"));
        eventually(30, "the leaked process to start", || {
            std::fs::read_to_string(&file).is_ok_and(|t| t.ends_with('\n'))
        });
        std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };

    // A clean stop cancels verify and everything it started.
    let daemon = repo.start_daemon();
    let id = submit_change(&repo, "Api", "ann", "api/app.py", "v2\n");
    let first = leak(&id);
    assert!(alive(first));
    daemon.stop();
    assert!(!alive(first), "a clean stop left {first} running");

    // kill -9 of the daemon: the command's supervisor hears of it and ends everything.
    std::fs::remove_file(out.join(format!("leak-{id}.pid"))).unwrap();
    let daemon = repo.start_daemon();
    let second = leak(&id);
    daemon.kill9();
    eventually(30, "the supervisor to stop the leftover", || !alive(second));

    // kill -9 of the daemon and the supervisor at once (an OOM killer, say): the next
    // start finds the leftover by its mark and stops it.
    std::fs::remove_file(out.join(format!("leak-{id}.pid"))).unwrap();
    let daemon = repo.start_daemon();
    let third = leak(&id);
    let parent = |pid: i32| -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit(") ")
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    // The leak's parent is verify's shell, whose parent is the supervisor.
    let supervisor = parent(parent(third));
    let cmdline = std::fs::read_to_string(format!("/proc/{supervisor}/cmdline")).unwrap();
    assert!(cmdline.contains("__supervise"), "{cmdline:?}");
    // SAFETY: kill(2) on a process of this test's daemon.
    unsafe {
        libc::kill(supervisor, libc::SIGKILL);
    }
    daemon.kill9();
    assert!(alive(third), "nothing was left to stop it");
    let daemon = repo.start_daemon();
    eventually(30, "the restart to stop the leftover", || !alive(third));
    assert!(
        daemon
            .log_text()
            .contains("stopped a process a command of the last daemon left running"),
        "{}",
        daemon.log_text()
    );
    // The restarted verify leaks again; a clean stop takes it along.
    daemon.stop();
}

/// Submits a one-file change as a new task and returns its id.
fn submit_change(repo: &TestRepo, title: &str, agent: &str, file: &str, content: &str) -> String {
    let id = add(repo, title, &["api"]);
    let claimed = claim(repo, Some(&id), agent);
    let wt = std::path::PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(&wt, title, &[(file, content)]);
    repo.run(["submit", &id, "--agent", agent]).expect(0);
    id
}

/// Someone rewinds the base under a landed task: the queue pauses and names the commit
/// that left, the task says so, and nothing integrates until a person resumes.
#[test]
fn a_rewound_base_pauses_the_queue_and_names_what_left_it() {
    let repo = shop();
    repo.git(&["checkout", "-q", "--detach"]);
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let _daemon = repo.start_daemon();
    let a = submit_change(&repo, "First", "ann", "api/a.txt", "a\n");
    eventually(30, "the first task to land", || {
        show(&repo, &a)["state"] == "merged"
    });
    let landed = repo.git(&["rev-parse", "main"]).trim().to_owned();

    repo.git(&["update-ref", "refs/heads/main", &start]);
    eventually(30, "the queue to pause", || {
        queue_events(&repo)
            .iter()
            .any(|e| e["event"] == "base_rewound")
    });
    let pause = queue_events(&repo).pop().unwrap();
    assert_eq!(pause["evidence"]["expected"], landed.as_str());
    assert_eq!(pause["evidence"]["found"], start.as_str());
    assert_eq!(pause["evidence"]["commits"][0]["commit"], landed.as_str());
    assert_eq!(pause["evidence"]["tasks"], serde_json::json!([a]));
    assert!(events(&repo, &a).contains(&"left_base".to_owned()));
    assert_eq!(show(&repo, &a)["state"], "merged");

    // Work submitted while paused waits; it starts only after the resume.
    let b = submit_change(&repo, "Second", "bob", "api/b.txt", "b\n");
    let waiting = repo.run(["--json", "queue"]).expect(0).json();
    assert!(
        waiting[0]["waiting_for"]
            .as_str()
            .unwrap()
            .starts_with("the queue to resume")
    );
    let resumed = repo
        .run(["--json", "resume", "--by", "lead"])
        .expect(0)
        .json();
    assert_eq!(resumed["base"], start.as_str());
    eventually(30, "the second task to land", || {
        show(&repo, &b)["state"] == "merged"
    });
    let resumed_at = queue_events(&repo).pop().unwrap()["at"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = repo.run(["--json", "log", &b]).expect(0).json();
    let started_at = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "integration_started")
        .unwrap()["at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(started_at >= resumed_at, "{started_at} < {resumed_at}");
    assert_eq!(repo.git(&["rev-parse", "main~1"]).trim(), start);
}

/// A verify command that commits on top of the verified commit and moves the base there:
/// the task's own commit is recorded as landed (it was verified on its parent), the
/// extra commit is never taken for a landing, and the queue pauses naming it.
#[test]
fn a_base_moved_past_the_verified_commit_is_not_taken_for_a_landing() {
    let repo = TestRepo::new();
    repo.files(&["api/app.py"])
        .config(
            "[queue]\nverify = [\"if [ -f api/evil ]; then git -c user.name=x -c user.email=x@y commit -q --allow-empty -m 'Never verified' && git update-ref refs/heads/main HEAD; fi\"]\n\
             [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n",
        )
        .commit("init");
    repo.git(&["checkout", "-q", "--detach"]);
    let _daemon = repo.start_daemon();
    let id = submit_change(&repo, "Evil", "eve", "api/evil", "x\n");
    eventually(30, "the queue to pause", || {
        queue_events(&repo)
            .iter()
            .any(|e| e["event"] == "base_moved_outside")
    });
    let main = repo.git(&["rev-parse", "main"]).trim().to_owned();
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s", "main"]).trim(),
        "Never verified"
    );
    let pause = queue_events(&repo).pop().unwrap();
    assert_eq!(
        pause["evidence"]["commits"],
        serde_json::json!([{"commit": main, "subject": "Never verified"}])
    );
    // What landed, as far as the ledger says, is the verified commit, not main's tip.
    eventually(30, "the task to be recorded", || {
        show(&repo, &id)["state"] == "merged"
    });
    let log = repo.run(["--json", "log", &id]).expect(0).json();
    let moved = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "base_moved")
        .unwrap();
    let verified = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "verify_passed")
        .unwrap();
    assert_eq!(moved["evidence"]["to"], verified["evidence"]["head"]);
    assert_ne!(moved["evidence"]["to"], main.as_str());
    assert_eq!(
        repo.git(&["rev-parse", "main~1"]).trim(),
        moved["evidence"]["to"].as_str().unwrap()
    );
}

/// A fresh clone of a repository whose remote has switchyard's branches: the daemon
/// starts (this clone never ran switchyard), and new task ids skip the remote's.
#[test]
fn new_task_ids_skip_branches_the_remote_has() {
    let repo = shop();
    let bare = repo.tmp.path().join("origin.git");
    repo.git(&[
        "clone",
        "-q",
        "--bare",
        repo.root.to_str().unwrap(),
        bare.to_str().unwrap(),
    ]);
    repo.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    repo.git(&["push", "-q", "origin", "main:switchyard/t1-from-elsewhere"]);
    repo.git(&["fetch", "-q", "origin"]);
    let _daemon = repo.start_daemon();
    let id = add(&repo, "New work", &["api"]);
    assert_eq!(id, "t2");
}

/// What no mark survives: a process that drops the run's variable, and one that
/// rewrites its title over its environment (PostgreSQL does, in any test suite that
/// starts one). The supervisor keeps them as its descendants and ends them with verify.
#[test]
fn nothing_a_verify_starts_outlives_it_whatever_it_does() {
    let repo = TestRepo::new();
    let out = repo.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.display();
    let verify = format!(
        "(unset SWITCHYARD_RUN; setsid sh -c 'echo $$ > {o}/unset.pid; exec sleep 300' &); \
         (env -i /bin/sh -c 'setsid sh -c \"echo \\$\\$ > {o}/bare.pid; exec sleep 301\" &'); \
         perl -e 'use POSIX; POSIX::setsid(); $0 = q(x) x 8000; open(F, q(>{o}/title.pid)); print F $$; close F; sleep 302' & \
         while [ ! -s {o}/unset.pid ] || [ ! -s {o}/bare.pid ] || [ ! -s {o}/title.pid ]; do sleep 0.02; done"
    );
    repo.files(&["api/app.py"])
        .config(&format!(
            "[queue]\nverify = [{verify:?}]\n[[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n"
        ))
        .commit("init");
    let _daemon = repo.start_daemon();
    let id = submit_change(&repo, "Api", "ann", "api/app.py", "v2\n");
    eventually(60, "the task to land", || {
        show(&repo, &id)["state"] == "merged"
    });
    for name in ["unset", "bare", "title"] {
        let pid: i32 = std::fs::read_to_string(out.join(format!("{name}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(pid), "{name}: process {pid} outlived verify");
    }
}

/// A verify that times out, having left a process that dropped the run's mark: the
/// supervisor, told to stop, takes it along.
#[test]
fn a_verify_that_times_out_takes_everything_it_started_along() {
    let repo = TestRepo::new();
    let out = repo.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    repo.files(&["api/app.py"])
        .config(&format!(
            "[queue]\nverify = [\"(unset SWITCHYARD_RUN; setsid sh -c 'echo $$ > {o}/slow.pid; exec sleep 300' &); sleep 120\"]\nverify_timeout = \"2s\"\n\
             [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n",
            o = out.display()
        ))
        .commit("init");
    let _daemon = repo.start_daemon();
    let id = submit_change(&repo, "Api", "ann", "api/app.py", "v2\n");
    eventually(60, "verify to time out", || {
        show(&repo, &id)["state"] == "returned"
    });
    let log = repo.run(["--json", "log", &id]).expect(0).json();
    let failed = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "verify_failed")
        .unwrap();
    assert_eq!(failed["evidence"]["failed"]["outcome"], "timed_out");
    let pid: i32 = std::fs::read_to_string(out.join("slow.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(pid), "{pid} outlived the timed-out verify");
}

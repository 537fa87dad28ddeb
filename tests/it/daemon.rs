//! The daemon, its ledger, claims under caps, worktrees and recovery, driven through
//! the real binary against a real daemon process.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::{TestRepo, add, claim, events, eventually, git_in, show};

/// A repository with three subsystems and small caps.
fn capped_repo(extra: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.files(&["a/x.rs", "b/y.rs", "c/z.rs", "README.md"]);
    repo.config(&format!(
        "[[subsystem]]\nname = \"a\"\npaths = [\"a/\"]\nmax_parallel = 2\n\
         [[subsystem]]\nname = \"b\"\npaths = [\"b/\"]\nmax_parallel = 3\n\
         [[subsystem]]\nname = \"c\"\npaths = [\"c/\"]\n\
         [worktrees]\npool = 2\n{extra}"
    ));
    repo.commit("init");
    repo
}

#[test]
fn a_task_from_creation_to_release() {
    let repo = TestRepo::example();
    let daemon = repo.start_daemon();
    let id = add(&repo, "Fix the login bug", &["auth"]);
    assert_eq!(id, "t1");

    let claimed = claim(&repo, None, "agent-1");
    assert_eq!(claimed["id"], "t1");
    assert_eq!(claimed["state"], "claimed");
    assert_eq!(claimed["agent"], "agent-1");
    assert_eq!(claimed["branch"], "switchyard/t1-fix-the-login-bug");
    assert_eq!(claimed["base"], "main");
    assert_eq!(claimed["subsystems"], serde_json::json!(["auth"]));
    let worktree = PathBuf::from(claimed["worktree"].as_str().unwrap());
    assert_eq!(worktree, repo.tmp.path().join("example.worktrees/t1"));
    // The worktree is on the task's branch, at the base tip.
    assert_eq!(
        git_in(&worktree, &["symbolic-ref", "--short", "HEAD"]).trim(),
        "switchyard/t1-fix-the-login-bug"
    );
    assert_eq!(
        git_in(&worktree, &["rev-parse", "HEAD"]),
        repo.git(&["rev-parse", "main"])
    );
    // Its environment, in a file git ignores, and in the reply.
    let env = std::fs::read_to_string(worktree.join(".switchyard.env")).unwrap();
    assert!(env.contains("SWITCHYARD_TASK='t1'"), "{env}");
    assert!(env.contains(&format!("SWITCHYARD_WORKTREE='{}'", worktree.display())));
    let port = claimed["env"]["SWITCHYARD_PORT_BASE"].as_str().unwrap();
    assert!(env.contains(&format!("SWITCHYARD_PORT_BASE='{port}'")));
    assert_eq!(git_in(&worktree, &["status", "--porcelain"]), "");
    // The example config copies .env, which the main checkout lacks: a warning, not a failure.
    assert!(claimed["warnings"][0].as_str().unwrap().contains(".env"));

    // Inside the worktree, the task id may be left out.
    let hb = repo
        .run_in(&worktree, ["--json", "heartbeat", "--agent", "agent-1"])
        .expect(0)
        .json();
    assert_eq!(hb["id"], "t1");
    let shown = repo
        .run_in(&worktree.join("src"), ["--json", "task", "show"])
        .expect(0)
        .json();
    assert_eq!(shown["id"], "t1");

    // Work happens; then the agent gives the task back. The commit stays on the branch.
    std::fs::write(
        worktree.join("src/auth/login.rs"),
        "pub fn login() { /* fixed */ }\n",
    )
    .unwrap();
    git_in(&worktree, &["commit", "-qam", "Fix login"]);
    let released = repo
        .run(["--json", "release", "t1", "--agent", "agent-1"])
        .expect(0)
        .json();
    assert_eq!(released["state"], "open");
    assert_eq!(released["agent"], Value::Null);
    let tip = repo.git(&["rev-parse", "switchyard/t1-fix-the-login-bug"]);
    assert_ne!(tip, repo.git(&["rev-parse", "main"]));

    // Claimed again (by someone else): the branch comes back with its commit.
    let again = claim(&repo, Some("t1"), "agent-2");
    let worktree = PathBuf::from(again["worktree"].as_str().unwrap());
    assert_eq!(git_in(&worktree, &["rev-parse", "HEAD"]), tip);
    assert_eq!(
        git_in(&worktree, &["log", "-1", "--format=%s"]).trim(),
        "Fix login"
    );

    assert_eq!(
        events(&repo, "t1"),
        vec![
            "created",
            "claimed",
            "worktree_ready",
            "released",
            "worktree_recycled",
            "claimed",
            "worktree_ready"
        ]
    );
    let text = repo.run(["log", "t1"]).expect(0).stdout();
    // The date (UTC), then a line per event: its time and what happened.
    let mut lines = text.lines();
    assert!(lines.next().unwrap().ends_with(" (UTC)"), "{text}");
    assert!(
        lines.next().unwrap()[8..].starts_with("  created by "),
        "{text}"
    );
    let list = repo.run(["--json", "task", "list"]).expect(0).json();
    let t = &list[0];
    for key in [
        "id",
        "title",
        "state",
        "scope",
        "subsystems",
        "branch",
        "worktree",
        "agent",
    ] {
        assert!(t.get(key).is_some(), "task list lacks {key}");
    }
    assert_eq!(
        repo.run(["--json", "queue"]).expect(0).json(),
        serde_json::json!([])
    );
    let (status, _) = daemon.stop();
    assert!(status.success());
}

#[test]
fn commands_without_a_daemon_say_so() {
    let repo = TestRepo::example();
    for args in [
        vec!["task", "list"],
        vec!["claim"],
        vec!["queue"],
        vec!["log", "t1"],
        vec!["task", "add", "x"],
        vec!["heartbeat", "t1"],
    ] {
        repo.run(&args)
            .refused(1, "no switchyard daemon is running for");
    }
}

#[test]
fn one_daemon_per_repository_and_clean_restarts() {
    let repo = TestRepo::example();
    let first = repo.start_daemon();
    let err = repo
        .try_start_daemon()
        .err()
        .expect("a second daemon must not start");
    assert!(
        err.contains(&format!(
            "already running for this repository (pid {})",
            first.pid
        )),
        "{err}"
    );
    add(&repo, "Survives restarts", &["docs"]);
    // kill -9 leaves a socket and a lock file behind; the next daemon cleans up.
    first.kill9();
    let socket = repo.root.join(".git/switchyard/daemon.sock");
    assert!(socket.exists());
    let second = repo.start_daemon();
    assert_eq!(show(&repo, "t1")["title"], "Survives restarts");
    let (status, took) = second.stop();
    assert!(status.success(), "{status}");
    assert!(took.as_secs() < 10, "stopping took {took:?}");
    assert!(!socket.exists(), "the socket is removed on a clean stop");
    let mode = std::fs::metadata(repo.root.join(".git/switchyard")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o700
    );
}

#[test]
fn the_socket_is_private() {
    let repo = TestRepo::example();
    let _daemon = repo.start_daemon();
    let meta = std::fs::metadata(repo.root.join(".git/switchyard/daemon.sock")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn caps_hold_under_32_concurrent_claims() {
    let repo = capped_repo("");
    let _daemon = repo.start_daemon();
    for i in 0..8 {
        add(&repo, &format!("a{i}"), &["a"]);
        add(&repo, &format!("b{i}"), &["b"]);
        add(&repo, &format!("ab{i}"), &["a", "b"]);
    }
    for round in 0..3 {
        let children: Vec<_> = (0..32)
            .map(|n| {
                let agent = format!("agent-{round}-{n}");
                crate::support::hermetic(
                    &mut std::process::Command::new(crate::support::BIN),
                    &repo.home(),
                )
                .args(["--json", "claim", "--agent", &agent])
                .current_dir(&repo.root)
                .output()
            })
            .collect();
        let mut won = Vec::new();
        for out in children {
            let out = out.unwrap();
            match out.status.code() {
                Some(0) => won.push(serde_json::from_slice::<Value>(&out.stdout).unwrap()),
                Some(1) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        err.contains("nothing can be claimed") || err.contains("no open tasks"),
                        "{err}"
                    );
                }
                other => panic!(
                    "claim exited {other:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        let tasks = repo
            .run(["--json", "task", "list", "--state", "claimed"])
            .expect(0)
            .json();
        let tasks = tasks.as_array().unwrap();
        assert_eq!(tasks.len(), won.len(), "round {round}");
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            for s in t["subsystems"].as_array().unwrap() {
                *per.entry(s.as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
        assert!(
            per.get("a").copied().unwrap_or(0) <= 2,
            "round {round}: {per:?}"
        );
        assert!(
            per.get("b").copied().unwrap_or(0) <= 3,
            "round {round}: {per:?}"
        );
        // Caps are full, not under-used: with tasks waiting, both are at their cap.
        assert_eq!(per.get("a"), Some(&2), "round {round}: {per:?}");
        assert_eq!(per.get("b"), Some(&3), "round {round}: {per:?}");
        let mut ids: Vec<&str> = won.iter().map(|c| c["id"].as_str().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), won.len(), "a task was handed out twice");
        let mut ports: Vec<&str> = won
            .iter()
            .map(|c| c["env"]["SWITCHYARD_PORT_BASE"].as_str().unwrap())
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), won.len(), "two live tasks share a port block");
        for c in &won {
            let id = c["id"].as_str().unwrap();
            let agent = c["agent"].as_str().unwrap();
            repo.run(["release", id, "--agent", agent]).expect(0);
        }
    }
}

#[test]
fn a_full_cap_names_the_subsystem_and_its_holders() {
    let repo = capped_repo("[claims]\nmax_parallel = 4\n");
    let _daemon = repo.start_daemon();
    for i in 0..3 {
        add(&repo, &format!("a{i}"), &["a/x.rs"]);
    }
    claim(&repo, None, "x");
    claim(&repo, None, "y");
    repo.run(["claim", "t3", "--agent", "z"]).refused(
        1,
        "cannot claim t3: subsystem a is at its cap of 2: t1, t2 hold its slots",
    );
    repo.run(["claim", "--agent", "z"])
        .refused(1, "nothing can be claimed: 1 open task(s)");
    // The global cap.
    add(&repo, "c0", &["c"]);
    add(&repo, "c1", &["c"]);
    add(&repo, "c2", &["c"]);
    claim(&repo, Some("t4"), "p");
    claim(&repo, Some("t5"), "q");
    repo.run(["claim", "t6", "--agent", "r"]).refused(
        1,
        "the global cap of 4 claimed tasks is reached: t1, t2, t4, t5",
    );
}

#[test]
fn leases_expire_and_the_next_executor_continues_from_the_branch() {
    let repo = capped_repo("[claims]\nlease = \"1s\"\n");
    let _daemon = repo.start_daemon();
    let id = add(&repo, "Short lease", &["c"]);
    let claimed = claim(&repo, None, "sleepy");
    let worktree = PathBuf::from(claimed["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("c/z.rs"), "work\n").unwrap();
    git_in(&worktree, &["commit", "-qam", "Partial work"]);
    let tip = git_in(&worktree, &["rev-parse", "HEAD"]);
    eventually(15, "the lease to expire", || {
        show(&repo, &id)["state"] == "open"
    });
    assert!(events(&repo, &id).contains(&"lease_expired".to_owned()));
    // The vanished agent can no longer heartbeat it.
    repo.run(["heartbeat", &id, "--agent", "sleepy"])
        .refused(1, "t1 is open, not claimed");
    let next = claim(&repo, None, "fresh");
    assert_eq!(next["id"], id.as_str());
    let worktree = PathBuf::from(next["worktree"].as_str().unwrap());
    assert_eq!(git_in(&worktree, &["rev-parse", "HEAD"]), tip);
}

#[test]
fn uncommitted_work_is_kept_with_the_task() {
    let repo = capped_repo("");
    let _daemon = repo.start_daemon();
    add(&repo, "Dirty", &["c"]);
    let claimed = claim(&repo, None, "messy");
    let worktree = PathBuf::from(claimed["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("notes.txt"), "half done\n").unwrap();
    repo.run(["release", "t1", "--agent", "messy"]).expect(0);
    assert!(events(&repo, "t1").contains(&"worktree_kept".to_owned()));
    assert!(worktree.join("notes.txt").exists());
    let again = claim(&repo, Some("t1"), "tidy");
    assert_eq!(
        again["worktree"].as_str().unwrap(),
        worktree.display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("notes.txt")).unwrap(),
        "half done\n"
    );
}

#[test]
fn claims_are_refused_clearly() {
    let repo = capped_repo("");
    let _daemon = repo.start_daemon();
    add(&repo, "Held", &["c"]);
    claim(&repo, None, "owner");
    repo.run(["claim", "t1", "--agent", "thief"])
        .refused(1, "t1 is claimed by owner (lease until ");
    repo.run(["heartbeat", "t1", "--agent", "thief"])
        .refused(1, "t1 is claimed by owner, not by thief");
    repo.run(["release", "t1", "--agent", "thief"])
        .refused(1, "t1 is claimed by owner, not by thief");
    // The holder asking again gets the same claim back (its reply may have been lost).
    let again = claim(&repo, Some("t1"), "owner");
    assert_eq!(again["renewed"], true);
    repo.run(["claim", "t99", "--agent", "x"])
        .refused(1, "no task t99");
    repo.run(["log", "t99"]).refused(1, "no task t99");
    repo.run(["task", "show", "banana"])
        .refused(2, "invalid task id \"banana\"");
    repo.run(["claim", "--agent", "x"])
        .refused(1, "no open tasks to claim");
    repo.run(["heartbeat"])
        .refused(2, "no task ID given, and this is not a task's worktree");
}

#[test]
fn bad_task_input_changes_nothing() {
    let repo = capped_repo("");
    let _daemon = repo.start_daemon();
    let long = "x".repeat(10 * 1024);
    repo.run(["task", "add", &long])
        .refused(2, "the title is 10240 characters; the limit is 200");
    repo.run(["task", "add", "two\nlines"])
        .refused(2, "the title must be one line");
    repo.run(["task", "add", "red \u{1b}[31m alert"])
        .refused(2, "must not contain control characters");
    repo.run(["task", "add", "x", "--scope", "src/[oops"])
        .refused(2, "invalid scope: invalid glob \"src/[oops\"");
    repo.run(["task", "add", "x", "--scope", "billing"])
        .refused(
            2,
            "scope \"billing\" is not a subsystem (known: a, b, c) and matches no tracked file",
        );
    repo.run(["task", "add", "x", "--scope", "nowhere/**"])
        .refused(2, "matches no tracked file");
    assert_eq!(
        repo.run(["--json", "task", "list"]).expect(0).json(),
        serde_json::json!([])
    );

    // Hostile titles are only text: the branch is always a valid, harmless ref.
    let hostile = "$(touch pwned); `rm -rf /` | ../../x @{1} .lock ~^: 🚂 ünïcode";
    let task = repo
        .run(["--json", "task", "add", hostile, "--scope", "c"])
        .expect(0)
        .json();
    assert_eq!(task["title"], hostile);
    let branch = task["branch"].as_str().unwrap().to_owned();
    assert_eq!(branch, "switchyard/t1-touch-pwned-rm-rf-x-1-lock-n-code");
    let claimed = claim(&repo, None, "brave");
    assert_eq!(claimed["branch"], branch.as_str());
    assert!(!repo.root.join("pwned").exists());
    assert!(
        !PathBuf::from(claimed["worktree"].as_str().unwrap())
            .join("pwned")
            .exists()
    );
}

#[test]
fn a_client_of_another_version_is_refused() {
    use std::io::{Read, Write};
    let repo = capped_repo("");
    let _daemon = repo.start_daemon();
    let mut stream =
        std::os::unix::net::UnixStream::connect(repo.root.join(".git/switchyard/daemon.sock"))
            .unwrap();
    stream
        .write_all(b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nx-switchyard-version: 0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("\"code\":\"version_mismatch\""), "{reply}");
    assert!(
        reply.contains("this client is 0.0.1; restart the daemon with the same binary"),
        "{reply}"
    );
}

#[test]
fn the_daemon_refuses_to_start_on_a_bad_setup() {
    let repo = capped_repo("");
    repo.config("base = \"trunk\"\n");
    let err = repo.try_start_daemon().err().unwrap();
    assert!(err.contains("exit status: 2"), "{err}");
    assert!(
        err.contains("the base branch \"trunk\" does not exist"),
        "{err}"
    );

    repo.file("blocker", "a file, not a directory\n");
    repo.config("[worktrees]\nroot = \"../repo/blocker/wt\"\n");
    let err = repo.try_start_daemon().err().unwrap();
    assert!(
        err.contains("`root` \"../repo/blocker/wt\" is inside the repository's checkout"),
        "{err}"
    );
    let outside = repo.tmp.path().join("afile");
    std::fs::write(&outside, "x").unwrap();
    repo.config("[worktrees]\nroot = \"../afile/wt\"\n");
    let err = repo.try_start_daemon().err().unwrap();
    assert!(err.contains("exit status: 1"), "{err}");
    assert!(
        err.contains("the worktree root is not usable: cannot create the worktree root"),
        "{err}"
    );
}

/// Kills the daemon with SIGKILL while claims are in flight, at several moments, and
/// checks after each restart: no task lost, no event lost, one holder per claim, caps
/// kept, every claimed task with a worktree on its branch, commits where they were.
#[test]
fn kill_9_during_a_burst_of_claims_loses_nothing() {
    let repo = capped_repo("");
    let mut daemon = repo.start_daemon();
    for i in 0..30 {
        add(&repo, &format!("task {i}"), &[["a", "b", "c"][i % 3]]);
    }
    // Settled work first: a claim with a commit in its worktree.
    let first = claim(&repo, Some("t3"), "settled");
    let worktree = PathBuf::from(first["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("c/z.rs"), "done\n").unwrap();
    git_in(&worktree, &["commit", "-qam", "Settled work"]);
    let settled_tip = git_in(&worktree, &["rev-parse", "HEAD"]);
    let mut seen_events: BTreeMap<String, Vec<String>> = BTreeMap::new();

    for (round, delay_ms) in [20u64, 60, 150].into_iter().enumerate() {
        let children: Vec<_> = (0..16)
            .map(|n| {
                crate::support::hermetic(
                    &mut std::process::Command::new(crate::support::BIN),
                    &repo.home(),
                )
                .args(["--json", "claim", "--agent", &format!("burst-{round}-{n}")])
                .current_dir(&repo.root)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        daemon.kill9();
        for mut c in children {
            let _ = c.wait();
        }
        daemon = repo.start_daemon();

        let tasks = repo.run(["--json", "task", "list"]).expect(0).json();
        let tasks = tasks.as_array().unwrap();
        assert_eq!(tasks.len(), 30, "round {round}: no task is lost");
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            let id = t["id"].as_str().unwrap().to_owned();
            let evs = events(&repo, &id);
            assert_eq!(evs[0], "created", "{id}");
            // What the ledger had before the kill is still there, in order.
            let before = seen_events.get(&id).cloned().unwrap_or_default();
            assert_eq!(
                evs[..before.len()],
                before[..],
                "round {round}: {id} lost events"
            );
            if t["state"] == "claimed" {
                assert!(t["agent"].is_string());
                let holders = evs.iter().filter(|e| *e == "claimed").count()
                    - evs
                        .iter()
                        .filter(|e| {
                            *e == "released" || *e == "lease_expired" || *e == "worktree_failed"
                        })
                        .count();
                assert_eq!(holders, 1, "round {round}: {id}: {evs:?}");
                let wt = PathBuf::from(
                    t["worktree"]
                        .as_str()
                        .expect("claimed tasks have a worktree"),
                );
                let branch = git_in(&wt, &["symbolic-ref", "--short", "HEAD"]);
                assert_eq!(
                    branch.trim(),
                    t["branch"].as_str().unwrap(),
                    "round {round}: {id}"
                );
                for s in t["subsystems"].as_array().unwrap() {
                    *per.entry(s.as_str().unwrap().to_owned()).or_default() += 1;
                }
            } else {
                assert_eq!(t["state"], "open", "round {round}: {id}");
            }
            seen_events.insert(id, evs);
        }
        assert!(
            per.get("a").copied().unwrap_or(0) <= 2,
            "round {round}: {per:?}"
        );
        assert!(
            per.get("b").copied().unwrap_or(0) <= 3,
            "round {round}: {per:?}"
        );
        assert_eq!(
            repo.git(&["rev-parse", first["branch"].as_str().unwrap()]),
            settled_tip
        );
        assert_eq!(show(&repo, "t3")["agent"], "settled");
        // Their replies were lost to the kill: a retry (no id) by each burst agent that
        // holds a task returns that task, renewed, and takes no second one.
        for t in tasks.iter().filter(|t| t["state"] == "claimed") {
            let agent = t["agent"].as_str().unwrap();
            if !agent.starts_with(&format!("burst-{round}-")) {
                continue;
            }
            let again = claim(&repo, None, agent);
            assert_eq!(again["id"], t["id"], "round {round}: {agent}");
            assert_eq!(again["renewed"], true, "round {round}: {agent}");
        }
        // Nothing left behind: no stale git locks, no worktree under the root that the
        // ledger does not account for.
        let refs_dir = repo.root.join(".git/refs/heads/switchyard");
        let stale: Vec<_> = walk(&refs_dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "lock"))
            .collect();
        assert!(stale.is_empty(), "round {round}: stale locks {stale:?}");
        let owned: Vec<String> = tasks
            .iter()
            .filter_map(|t| t["worktree"].as_str().map(str::to_owned))
            .collect();
        let root = repo
            .tmp
            .path()
            .canonicalize()
            .unwrap()
            .join("repo.worktrees");
        for line in repo.git(&["worktree", "list", "--porcelain"]).lines() {
            let Some(path) = line.strip_prefix("worktree ") else {
                continue;
            };
            let p = PathBuf::from(path);
            if !p.starts_with(&root) {
                continue;
            }
            let accounted =
                owned.iter().any(|o| o == path) || p.parent() == Some(root.join(".pool").as_path());
            assert!(
                accounted,
                "round {round}: {path} is under the root but no task's\nlog:\n{}\ntasks: {tasks:#?}",
                daemon.log_text()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_missing_worktree_is_restored_from_its_branch_on_restart() {
    let repo = capped_repo("");
    let daemon = repo.start_daemon();
    add(&repo, "Fragile", &["c"]);
    let claimed = claim(&repo, None, "a1");
    let worktree = PathBuf::from(claimed["worktree"].as_str().unwrap());
    std::fs::write(worktree.join("c/z.rs"), "committed\n").unwrap();
    git_in(&worktree, &["commit", "-qam", "Keep me"]);
    let tip = git_in(&worktree, &["rev-parse", "HEAD"]);
    daemon.kill9();
    std::fs::remove_dir_all(&worktree).unwrap();
    let daemon = repo.start_daemon();
    assert!(worktree.is_dir());
    assert_eq!(git_in(&worktree, &["rev-parse", "HEAD"]), tip);
    assert!(events(&repo, "t1").contains(&"worktree_restored".to_owned()));
    assert!(
        daemon
            .log_text()
            .contains("worktree restored from the branch")
    );
}

#[test]
fn setup_runs_with_the_task_environment_and_without_secrets() {
    let repo = capped_repo(
        "copy = [\".env\", \"config/local.toml\", \"absent.txt\"]\n\
         setup = \"env > setup-env.txt; test -f .env\"\nsetup_timeout = \"30s\"\n\
         [commands]\nenv = [\"KEEP_ME\"]\n",
    );
    // Files to copy are local, untracked ones; the env output is ignored by the repo.
    repo.file(".gitignore", ".env\nconfig/local.toml\nsetup-env.txt\n");
    repo.commit("ignore local files");
    repo.file(".env", "DB=dev\n");
    repo.file("config/local.toml", "x = 1\n");
    let daemon = repo
        .try_start_daemon_with(&[
            ("GITHUB_TOKEN", "ghp_secret"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("DB_PWD", "hunter2"),
            ("KEEP_ME", "yes"),
            // A client's API token, in the shell that started the daemon.
            ("SWITCHYARD_TOKEN", "sy_client_secret"),
        ])
        .unwrap();
    add(&repo, "Needs setup", &["c"]);
    // Wait for the pool to fill, then claim twice: once from the pool, once fresh.
    eventually(30, "the pool to fill", || {
        std::fs::read_dir(repo.tmp.path().join("repo.worktrees/.pool"))
            .map(|d| d.count())
            .unwrap_or(0)
            >= 2
    });
    let claimed = claim(&repo, None, "a1");
    let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(wt.join(".env")).unwrap(),
        "DB=dev\n"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("config/local.toml")).unwrap(),
        "x = 1\n"
    );
    let warnings = claimed["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].as_str().unwrap().contains("absent.txt"));
    // Pool worktrees ran setup when they were made, before any task had them.
    let env = std::fs::read_to_string(wt.join("setup-env.txt")).unwrap();
    assert!(env.contains("KEEP_ME=yes"), "{env}");
    assert!(
        !env.contains("ghp_secret")
            && !env.contains("s3cr3t")
            && !env.contains("hunter2")
            && !env.contains("sy_client_secret"),
        "secrets leaked: {env}"
    );
    assert_eq!(git_in(&wt, &["status", "--porcelain"]), "");
    drop(daemon);
}

#[test]
fn a_failing_setup_is_reported_with_its_log() {
    let repo = capped_repo("setup = \"echo preparing; echo broken >&2; exit 7\"\n");
    let _daemon = repo.start_daemon();
    add(&repo, "Broken setup", &["c"]);
    let claimed = claim(&repo, None, "a1");
    let warning = claimed["warnings"][0].as_str().unwrap();
    assert!(warning.contains("failed (Exited { code: 7 })"), "{warning}");
    let log = repo.run(["--json", "log", "t1"]).expect(0).json();
    let failed = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "setup_failed")
        .unwrap();
    assert_eq!(failed["evidence"]["code"], 7);
    let tail: Vec<&str> = failed["evidence"]["tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(tail.contains(&"broken"), "{tail:?}");
    let log_path = failed["evidence"]["log"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(log_path)
            .unwrap()
            .contains("preparing")
    );
}

#[test]
fn stray_worktrees_are_pooled_or_left_alone() {
    let repo = capped_repo("");
    let root = repo.tmp.path().join("repo.worktrees");
    std::fs::create_dir_all(root.join(".pool")).unwrap();
    let clean = root.join(".pool/stray-clean");
    let dirty = root.join("someones-work");
    repo.git(&[
        "worktree",
        "add",
        "-q",
        "--detach",
        clean.to_str().unwrap(),
        "main",
    ]);
    repo.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "mine",
        dirty.to_str().unwrap(),
        "main",
    ]);
    std::fs::write(dirty.join("unsaved.txt"), "precious\n").unwrap();
    let daemon = repo.start_daemon();
    let log = daemon.log_text();
    assert!(
        log.contains("adopting a stray worktree into the pool"),
        "{log}"
    );
    assert!(
        log.contains("has uncommitted changes; leaving it alone"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(dirty.join("unsaved.txt")).unwrap(),
        "precious\n"
    );
    // The adopted one is handed out by the next claim.
    add(&repo, "Use the stray", &["c"]);
    let claimed = claim(&repo, None, "a1");
    assert!(!clean.exists(), "the stray moved into the task's place");
    assert!(PathBuf::from(claimed["worktree"].as_str().unwrap()).is_dir());
}

#[test]
fn cancelling_frees_the_slot_and_keeps_the_branch() {
    let repo = capped_repo("");
    let _daemon = repo.start_daemon();
    add(&repo, "a0", &["a"]);
    add(&repo, "a1", &["a"]);
    add(&repo, "a2", &["a"]);
    let c = claim(&repo, None, "x");
    claim(&repo, None, "y");
    let wt = PathBuf::from(c["worktree"].as_str().unwrap());
    std::fs::write(wt.join("a/x.rs"), "v2\n").unwrap();
    git_in(&wt, &["commit", "-qam", "Work"]);
    let cancelled = repo
        .run([
            "--json",
            "task",
            "cancel",
            "t1",
            "--reason",
            "not needed",
            "--by",
            "lead",
        ])
        .expect(0)
        .json();
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(claim(&repo, None, "z")["id"], "t3");
    assert!(
        !repo
            .git(&["rev-parse", "--verify", c["branch"].as_str().unwrap()])
            .is_empty()
    );
    repo.run(["task", "cancel", "t1", "--by", "lead"])
        .refused(1, "t1 is already cancelled");
    repo.run(["claim", "t1", "--agent", "z"])
        .refused(1, "t1 is cancelled, not open");
}

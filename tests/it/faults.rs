//! Fault injection: git that fails, a ledger disk that refuses writes, verify commands
//! that misbehave. After each fault: the daemon keeps serving (or stops with a clear
//! message), nothing already recorded is lost, nothing unverified lands, and it
//! recovers once the fault is gone.

use std::path::{Path, PathBuf};

use crate::support::*;

/// A `git` on PATH before the real one that fails on demand: every call while the file
/// `fail-all` exists, or the call whose number is in `fail-at`. Calls are counted in
/// `count`, under a lock (git calls run in parallel) and replaced whole, never half
/// written.
struct FaultyGit {
    dir: PathBuf,
}

impl FaultyGit {
    fn new(tmp: &Path) -> FaultyGit {
        let dir = tmp.join("faulty-git");
        std::fs::create_dir_all(&dir).unwrap();
        let real = String::from_utf8(
            std::process::Command::new("sh")
                .args(["-c", "command -v git"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("git"),
            format!(
                "#!/bin/sh\n\
                 n=$(flock {d}/lock sh -c 'n=$(($(cat {d}/count 2>/dev/null || echo 0) + 1)); echo $n > {d}/count.new; mv {d}/count.new {d}/count; echo $n')\n\
                 if [ -f {d}/fail-all ] || [ \"$(cat {d}/fail-at 2>/dev/null)\" = \"$n\" ]; then\n\
                   echo \"fatal: injected fault (call $n)\" >&2; exit 128\n\
                 fi\n\
                 exec {} \"$@\"\n",
                real.trim()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            dir.join("git"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        FaultyGit { dir }
    }

    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn fail_all(&self, on: bool) {
        let flag = self.dir.join("fail-all");
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    fn calls(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("count"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn fail_at(&self, n: u64) {
        std::fs::write(self.dir.join("fail-at"), n.to_string()).unwrap();
    }
}

fn repo_with(verify: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.files(&["api/app.py", "docs/guide.md"])
        .config(&format!(
            "[queue]\nverify = [{verify:?}]\nverify_timeout = \"5s\"\n\
             [[subsystem]]\nname = \"api\"\npaths = [\"api/\"]\n\
             [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\n\
             [worktrees]\npool = 1\n"
        ))
        .commit("init");
    repo.git(&["checkout", "-q", "--detach"]);
    repo
}

fn submit(repo: &TestRepo, title: &str, agent: &str, file: &str) -> String {
    let id = add(repo, title, &["api"]);
    let claimed = claim(repo, Some(&id), agent);
    let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
    commit_in(&wt, title, &[(file, &format!("{title}\n"))]);
    repo.run(["submit", &id, "--agent", agent]).expect(0);
    id
}

fn state(repo: &TestRepo, id: &str) -> String {
    show(repo, id)["state"].as_str().unwrap().to_owned()
}

/// Every commit on main since `start` is the verified head of a merged task, verified
/// on exactly its parent.
fn assert_only_verified_commits_landed(repo: &TestRepo, start: &str) {
    let landed = repo.git(&["rev-list", "--reverse", &format!("{start}..main")]);
    let all = tasks(repo);
    for commit in landed.lines() {
        let parent = repo.git(&["rev-parse", &format!("{commit}^")]);
        let verified = all.iter().any(|t| {
            let log = repo
                .run(["--json", "log", t["id"].as_str().unwrap()])
                .expect(0)
                .json();
            log.as_array().unwrap().iter().any(|e| {
                e["event"] == "verify_passed"
                    && e["evidence"]["head"] == commit
                    && e["evidence"]["onto"] == parent.trim()
            })
        });
        assert!(verified, "{commit} landed without a verify on its parent");
    }
}

#[test]
fn git_failing_everywhere_stops_nothing_and_lands_nothing() {
    let repo = repo_with("true");
    let git = FaultyGit::new(repo.tmp.path());
    let path = git.path();
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let _daemon = repo
        .try_start_daemon_with(&[("PATH", &path)])
        .unwrap_or_else(|e| panic!("{e}"));
    let first = add(&repo, "Before the fault", &["api"]);

    git.fail_all(true);
    // A claim needs git: refused in one line, and the slot is not held.
    let run = repo.run(["claim", &first, "--agent", "ann"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert!(run.stderr().contains("injected fault"), "{}", run.stderr());
    assert_eq!(state(&repo, &first), "open");
    // Reads and ledger-only writes go on.
    let second = add(&repo, "During the fault", &["docs"]);
    assert_eq!(tasks(&repo).len(), 2);

    git.fail_all(false);
    let landed = {
        let claimed = claim(&repo, Some(&first), "ann");
        let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
        commit_in(&wt, "work", &[("api/app.py", "v2\n")]);
        // The fault comes back during the integration: three failed tries and the task
        // comes back with the error, nothing landed.
        git.fail_all(true);
        repo.run(["submit", &first, "--agent", "ann"]).expect(1);
        git.fail_all(false);
        repo.run(["submit", &first, "--agent", "ann"]).expect(0);
        git.fail_all(true);
        eventually(60, "the integration to give up", || {
            state(&repo, &first) == "returned"
        });
        let kinds = events(&repo, &first);
        assert!(
            kinds.contains(&"integration_failed".to_owned()),
            "{kinds:?}"
        );
        assert_eq!(repo.git(&["rev-parse", "main"]).trim(), start);
        // Gone: the same submission lands.
        git.fail_all(false);
        repo.run(["submit", &first, "--agent", "ann"]).expect(0);
        eventually(60, "the task to land", || state(&repo, &first) == "merged");
        repo.git(&["rev-parse", "main"]).trim().to_owned()
    };
    assert_ne!(landed, start);
    assert_eq!(state(&repo, &second), "open");
    assert_only_verified_commits_landed(&repo, &start);
}

/// git fails once, at every call in turn, while two tasks go from claim to landing:
/// each run ends with every task merged or back with its executor, and only verified
/// commits on main.
#[test]
fn git_failing_once_at_any_call_loses_and_lands_nothing_wrong() {
    // How many git calls a clean run makes, to spread the faults over all of them.
    let calls = {
        let repo = repo_with("true");
        let git = FaultyGit::new(repo.tmp.path());
        let _daemon = repo
            .try_start_daemon_with(&[("PATH", &git.path())])
            .unwrap();
        let before = git.calls();
        let a = submit(&repo, "A", "ann", "api/a.txt");
        eventually(60, "A to land", || state(&repo, &a) == "merged");
        git.calls() - before
    };
    assert!(calls > 5, "{calls}");
    let step = (calls / 8).max(1);
    let mut outcomes = Vec::new();
    for k in (1..=calls).step_by(step as usize) {
        let repo = repo_with("true");
        let git = FaultyGit::new(repo.tmp.path());
        let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
        let _daemon = repo
            .try_start_daemon_with(&[("PATH", &git.path())])
            .unwrap();
        git.fail_at(git.calls() + k);
        // The claim or the submit itself may be the call that fails: then it is
        // refused in one line, and tried again.
        let id = add(&repo, "A", &["api"]);
        let mut claimed = repo.run(["--json", "claim", &id, "--agent", "ann"]);
        if claimed.code() != 0 {
            assert_eq!(claimed.stderr().lines().count(), 1, "{}", claimed.stderr());
            claimed = repo
                .run(["--json", "claim", &id, "--agent", "ann"])
                .expect(0);
        }
        let wt = PathBuf::from(claimed.json()["worktree"].as_str().unwrap());
        commit_in(&wt, "A", &[("api/a.txt", "a\n")]);
        let submitted = repo.run(["submit", &id, "--agent", "ann"]);
        if submitted.code() != 0 {
            assert_eq!(
                submitted.stderr().lines().count(),
                1,
                "{}",
                submitted.stderr()
            );
            repo.run(["submit", &id, "--agent", "ann"]).expect(0);
        }
        eventually(60, "the task to land or come back", || {
            ["merged", "returned"].contains(&state(&repo, &id).as_str())
        });
        if state(&repo, &id) == "returned" {
            repo.run(["submit", &id, "--agent", "ann"]).expect(0);
            eventually(60, "the resubmitted task to land", || {
                state(&repo, &id) == "merged"
            });
        }
        assert_only_verified_commits_landed(&repo, &start);
        assert_eq!(
            repo.git(&["rev-list", "--count", &format!("{start}..main")])
                .trim(),
            "1"
        );
        outcomes.push(k);
    }
    eprintln!(
        "git failed once at calls {outcomes:?} of {calls}: every run landed exactly the verified commit"
    );
}

/// The ledger's disk fills up while the daemon runs: writes are refused in one line,
/// reads go on, nothing recorded is lost, and writes work again once there is room.
/// As root the state directory is a small tmpfs that the test fills; otherwise the
/// daemon gets a file-size limit just above the ledger's size, which fails its writes
/// the same way (EFBIG instead of ENOSPC).
#[test]
fn a_full_ledger_disk_refuses_writes_and_loses_nothing() {
    let repo = repo_with("true");
    let state_dir = repo.root.join(".git/switchyard");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::fs::create_dir_all(&state_dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
            .arg(&state_dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs as root");
    }
    struct Unmount(PathBuf, bool);
    impl Drop for Unmount {
        fn drop(&mut self) {
            if self.1 {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.0)
                    .status();
            }
        }
    }
    let _unmount = Unmount(state_dir.clone(), root);
    let daemon = repo.start_daemon();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(add(&repo, &format!("Task {i}"), &["api"]));
    }
    let before: Vec<Vec<String>> = ids.iter().map(|id| events(&repo, id)).collect();

    let filler = state_dir.join("filler");
    let fill = |on: bool| {
        if root {
            if on {
                // Write until the filesystem says no.
                let mut f = std::fs::File::create(&filler).unwrap();
                let block = vec![0u8; 64 * 1024];
                while std::io::Write::write_all(&mut f, &block).is_ok() {}
            } else {
                std::fs::remove_file(&filler).unwrap();
            }
        } else {
            let size = ["ledger.db", "ledger.db-wal"]
                .iter()
                .map(|f| std::fs::metadata(state_dir.join(f)).map_or(0, |m| m.len()))
                .max()
                .unwrap();
            let limit = if on { size } else { libc::RLIM_INFINITY };
            let l = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: prlimit on our own child, with a struct we own.
            let rc = unsafe {
                libc::prlimit(
                    daemon.pid as i32,
                    libc::RLIMIT_FSIZE,
                    &l,
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(rc, 0, "prlimit failed");
        }
    };

    fill(true);
    let run = repo.run(["task", "add", "While full", "--scope", "api"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert!(run.stderr().contains("ledger"), "{}", run.stderr());
    let run = repo.run(["claim", &ids[0], "--agent", "ann"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    // Reads go on, and show everything recorded before the fault.
    assert_eq!(tasks(&repo).len(), 5);
    assert_eq!(state(&repo, &ids[0]), "open");

    fill(false);
    let after = add(&repo, "After the fault", &["api"]);
    let claimed = claim(&repo, Some(&ids[0]), "ann");
    assert_eq!(claimed["state"], "claimed");
    for (id, evs) in ids.iter().zip(&before) {
        assert_eq!(
            &events(&repo, id)[..evs.len()],
            &evs[..],
            "{id} lost events"
        );
    }
    assert_eq!(state(&repo, &after), "open");
    daemon.stop();
}

/// Verify commands that misbehave in every way a submitted branch can make them: each
/// comes back with evidence, and the next task still lands.
#[test]
fn misbehaving_verify_commands_come_back_with_evidence() {
    let cases: [(&str, &str, &str); 6] = [
        ("segfault", "kill -SEGV $$", "signaled"),
        ("killed", "kill -KILL $$", "signaled"),
        (
            "hangs with stdout closed",
            "exec >&- 2>&-; sleep 60",
            "timed_out",
        ),
        (
            "floods",
            "head -c 6000000 /dev/zero | tr '\\\\0' x; exit 3",
            "exited",
        ),
        (
            "removes its worktree",
            "rm -rf \"$SWITCHYARD_WORKTREE\"; exit 1",
            "exited",
        ),
        (
            "moves its HEAD",
            "git -c advice.detachedHead=false checkout -q HEAD~1; exit 1",
            "exited",
        ),
    ];
    let verify = cases
        .iter()
        .enumerate()
        .map(|(i, (_, cmd, _))| format!("if [ -f api/case{i} ]; then {cmd}; fi"))
        .collect::<Vec<_>>()
        .join("; ");
    let repo = repo_with(&format!("{verify}; true"));
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let _daemon = repo.start_daemon();
    for (i, (what, _, outcome)) in cases.iter().enumerate() {
        let id = submit(
            &repo,
            &format!("Case {i}"),
            &format!("agent{i}"),
            &format!("api/case{i}"),
        );
        eventually(60, what, || state(&repo, &id) == "returned");
        let log = repo.run(["--json", "log", &id]).expect(0).json();
        let failed = log
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["event"] == "verify_failed")
            .unwrap_or_else(|| panic!("{what}: {log}"));
        assert_eq!(
            failed["evidence"]["failed"]["outcome"], *outcome,
            "{what}: {failed}"
        );
        // The next, well-behaved task lands on top, verified in a clean worktree.
        let good = submit(
            &repo,
            &format!("Good {i}"),
            &format!("good{i}"),
            &format!("api/good{i}"),
        );
        eventually(60, "the good task to land", || {
            state(&repo, &good) == "merged"
        });
    }
    assert_only_verified_commits_landed(&repo, &start);
    assert_eq!(
        repo.git(&["rev-list", "--count", &format!("{start}..main")])
            .trim(),
        cases.len().to_string()
    );
}

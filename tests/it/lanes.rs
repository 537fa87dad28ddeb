//! Ownership lanes (`[queue] lanes = true`), end to end against a real daemon: what
//! ownership declares independent integrates side by side and is not verified again;
//! what depends on something is verified on top of it; what touches everything waits
//! for every lane.

use serde_json::Value;

use crate::queue::{crashes_at_every_step, event, linear_history, log, wait_state, work, work_all};
use crate::support::{TestRepo, eventually};

/// Subsystems `lib`, `app` (depending on `lib` when `app_depends_on_lib`) and `docs`.
/// Verify carries a semantic conflict: `lib/flag` and `app/flag` each pass alone and
/// break it together. It first marks that it started, then waits until the test creates
/// `$HOME/go`.
fn lanes_repo(app_depends_on_lib: bool) -> TestRepo {
    let repo = TestRepo::new();
    repo.file("lib/core.txt", "core\n");
    repo.file("app/main.txt", "main\n");
    repo.file("docs/guide.md", "# Guide\n");
    repo.file(
        "check.sh",
        "#!/bin/sh\n! { [ -f lib/flag ] && [ -f app/flag ]; }\n",
    );
    std::fs::set_permissions(
        repo.root.join("check.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let depends = if app_depends_on_lib {
        "depends_on = [\"lib\"]\n"
    } else {
        ""
    };
    repo.config(&format!(
        "[queue]\nmax_parallel = 4\nlanes = true\nverify_timeout = \"30s\"\n\
         verify = [\"touch \\\"$HOME/started-$SWITCHYARD_TASK\\\"; while [ ! -f \\\"$HOME/go\\\" ]; do sleep 0.05; done; ./check.sh\"]\n\
         [[subsystem]]\nname = \"lib\"\npaths = [\"lib/\"]\n\
         [[subsystem]]\nname = \"app\"\npaths = [\"app/\"]\n{depends}\
         [[subsystem]]\nname = \"docs\"\npaths = [\"docs/\"]\n\
         [worktrees]\npool = 2\n"
    ));
    repo.commit("init");
    repo
}

fn started(repo: &TestRepo, id: &str) -> bool {
    repo.home().join(format!("started-{id}")).exists()
}

fn queue(repo: &TestRepo) -> Vec<Value> {
    repo.run(["--json", "queue"])
        .expect(0)
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// `(lane, position in the lane)` of each entry, in queue order.
fn lanes_of(queue: &[Value]) -> Vec<(Value, Value)> {
    queue
        .iter()
        .map(|e| (e["lane"].clone(), e["lane_position"].clone()))
        .collect()
}

fn count(log: &Value, kind: &str) -> usize {
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == kind)
        .count()
}

/// Submits the two halves of the semantic conflict, `lib/flag` then `app/flag`, and
/// waits until both verifies run: their ids, and the queue then.
fn both_flags_verifying(repo: &TestRepo) -> (Vec<String>, Vec<Value>) {
    let ids = work_all(
        repo,
        &[("lib", "lib/flag", "on\n"), ("app", "app/flag", "on\n")],
    );
    eventually(60, "both verifies to run", || {
        ids.iter().all(|id| started(repo, id))
    });
    (ids, queue(repo))
}

fn files_on_main(repo: &TestRepo) -> String {
    repo.git(&["ls-tree", "-r", "--name-only", "main"])
}

#[test]
fn changes_to_subsystems_that_depend_on_each_other_share_a_lane_and_only_one_lands() {
    let repo = lanes_repo(true);
    let _daemon = repo.start_daemon();
    // app depends on lib: one lane, the app change verified on top of the lib change.
    let (ids, q) = both_flags_verifying(&repo);
    assert_eq!(
        lanes_of(&q),
        vec![(1.into(), 1.into()), (1.into(), 2.into())],
        "{q:#?}"
    );
    assert_eq!(q[1]["built_on"], ids[0].as_str(), "{q:#?}");
    std::fs::write(repo.home().join("go"), "").unwrap();
    wait_state(&repo, &ids[0], "merged");
    wait_state(&repo, &ids[1], "returned");
    // Exactly one landed, and the base passes verify: the pair never met on it.
    let files = files_on_main(&repo);
    assert!(
        files.contains("lib/flag") && !files.contains("app/flag"),
        "{files}"
    );
    let failed = event(&log(&repo, &ids[1]), "verify_failed").clone();
    assert_eq!(failed["evidence"]["failed"]["code"], 1, "{failed:#}");
}

#[test]
fn independent_subsystems_integrate_side_by_side_and_are_not_verified_again() {
    let repo = lanes_repo(false);
    let start = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let _daemon = repo.start_daemon();
    // Two lanes, each candidate on the base.
    let (ids, q) = both_flags_verifying(&repo);
    assert_eq!(
        lanes_of(&q),
        vec![(1.into(), 1.into()), (2.into(), 1.into())],
        "{q:#?}"
    );
    assert!(q.iter().all(|e| e["built_on"] == "base"), "{q:#?}");
    std::fs::write(repo.home().join("go"), "").unwrap();
    for id in &ids {
        wait_state(&repo, id, "merged");
    }
    // Each verified once; the second carried past the first instead. That is the bet
    // lanes make: nothing declared that app depends on lib, so their semantic conflict
    // now sits on the base (depends_on is how a user says otherwise, as above).
    let logs: Vec<Value> = ids.iter().map(|id| log(&repo, id)).collect();
    for (id, log) in ids.iter().zip(&logs) {
        assert_eq!(count(log, "verify_passed"), 1, "{id}: {log:#}");
    }
    // Whichever passed first landed first; the other was carried onto it.
    let carries: Vec<usize> = logs.iter().map(|l| count(l, "carried")).collect();
    assert_eq!(carries.iter().sum::<usize>(), 1, "{logs:#?}");
    let (first, second) = if carries[1] == 1 { (0, 1) } else { (1, 0) };
    let carried = event(&logs[second], "carried");
    let passed = event(&logs[second], "verify_passed");
    assert_eq!(carried["evidence"]["verified"], passed["evidence"]["head"]);
    assert_eq!(passed["evidence"]["onto"], start.as_str());
    let landed = linear_history(&repo, &start);
    assert_eq!(landed.len(), 2, "{landed:?}");
    assert_eq!(
        event(&logs[first], "merged")["evidence"]["commit"],
        landed[0].as_str()
    );
    assert_eq!(
        event(&logs[second], "merged")["evidence"]["commit"],
        landed[1].as_str()
    );
    assert_eq!(carried["evidence"]["head"], landed[1].as_str());
    assert_eq!(carried["evidence"]["onto"], landed[0].as_str());
}

#[test]
fn a_change_touching_everything_waits_for_every_lane_and_says_so() {
    let repo = lanes_repo(false);
    let _daemon = repo.start_daemon();
    let ids = work_all(
        &repo,
        &[("lib", "lib/a.txt", "a\n"), ("app", "app/b.txt", "b\n")],
    );
    // A path no subsystem owns: out of scope, so a person approves it first.
    let (wide, _, submitted) = work(
        &repo,
        "a tool",
        &["docs"],
        "wide",
        &[("tools/run.sh", "echo\n"), ("docs/tools.md", "tools\n")],
    );
    assert_eq!(submitted["state"], "awaiting_approval", "{submitted:#}");
    repo.run(["approve", &wide, "--by", "pat"]).expect(0);
    let after = work(
        &repo,
        "docs",
        &["docs"],
        "later",
        &[("docs/more.md", "m\n")],
    )
    .0;
    eventually(60, "the two lanes to verify", || {
        ids.iter().all(|id| started(&repo, id))
    });
    let q = queue(&repo);
    let entry = |id: &str| q.iter().find(|e| e["id"] == id).unwrap().clone();
    let w = entry(&wide);
    assert_eq!(w["lane"], Value::Null, "{w:#}");
    assert_eq!(w["waits_for_lanes"], serde_json::json!([1, 2]), "{w:#}");
    let why = w["waiting_for"].as_str().unwrap();
    assert!(
        why.contains("lanes 1 and 2") && why.contains("tools/run.sh, which no subsystem owns"),
        "{why}"
    );
    // What comes after it waits for it in turn.
    assert_eq!(entry(&after)["stage"], "waiting");
    assert!(!started(&repo, &wide) && !started(&repo, &after));
    let text = repo.run(["queue"]).expect(0).stdout();
    assert!(text.contains("touches everything"), "{text}");
    std::fs::write(repo.home().join("go"), "").unwrap();
    for id in ids.iter().chain([&wide, &after]) {
        wait_state(&repo, id, "merged");
    }
    // Verified on a base holding both lanes' changes: exactly its parent on main.
    let log = log(&repo, &wide);
    let passed = event(&log, "verify_passed");
    let commit = event(&log, "merged")["evidence"]["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(passed["evidence"]["head"], commit.as_str());
    let parent = repo.git(&["rev-parse", &format!("{commit}^")]);
    assert_eq!(passed["evidence"]["onto"], parent.trim());
    for id in &ids {
        let landed = event(&crate::queue::log(&repo, id), "merged")["evidence"]["commit"]
            .as_str()
            .unwrap()
            .to_owned();
        repo.git(&["merge-base", "--is-ancestor", &landed, parent.trim()]);
    }
}

#[test]
fn crashes_with_full_windows_in_several_lanes_never_land_anything_twice_or_unverified() {
    crashes_at_every_step(4, &[2, 5, 8, 12], true);
}

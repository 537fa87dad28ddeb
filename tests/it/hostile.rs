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

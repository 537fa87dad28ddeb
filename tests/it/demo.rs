//! `switchyard demo`, the README's first command, from start to finish.

use crate::support::TestRepo;

#[test]
fn the_demo_tells_the_whole_story() {
    let scratch = TestRepo::new();
    let dir = scratch.tmp.path().join("demo");
    let run = scratch
        .run_in(
            scratch.tmp.path(),
            ["--json", "demo", "--dir", dir.to_str().unwrap()],
        )
        .expect(0);
    let outcome = run.json();
    let attempts: Vec<(String, String, i64)> = outcome["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
                t["attempt"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            ("t1".into(), "merged".into(), 1),
            ("t2".into(), "merged".into(), 2),
            ("t3".into(), "merged".into(), 1),
            ("t4".into(), "merged".into(), 2),
            ("t5".into(), "merged".into(), 2),
        ]
    );
    // One verified commit per task on top of the sample's first commit.
    assert_eq!(
        outcome["history"].as_array().unwrap().len(),
        6,
        "{outcome:#}"
    );
    assert!(outcome["seconds"].as_f64().unwrap() < 60.0);
    // Progress went to stderr, and it told the story.
    let progress = run.stderr();
    for beat in [
        "verify FAILED",
        "CONFLICT in",
        "waiting for approval: scope change",
        "approving",
        "t4 merged",
        "waiting for a reviewer",
        "rex      asks for changes on t5",
        "got it back from review",
        "rex      approves on t5",
        "t5 merged",
    ] {
        assert!(progress.contains(beat), "no {beat:?} in:\n{progress}");
    }
    // The repository it leaves is usable with the CLI.
    let repo = outcome["repo"].as_str().unwrap();
    let log = scratch
        .run_in(scratch.tmp.path(), ["--repo", repo, "check"])
        .expect(0);
    assert!(log.stdout().contains("ok: 4 subsystem(s)"));
    // A second run into the same place refuses instead of mixing two demos.
    scratch
        .run_in(scratch.tmp.path(), ["demo", "--dir", dir.to_str().unwrap()])
        .refused(1, "already exists; pass another --dir");
}

/// The demo ends with where to look, and every command it names works once it is over
/// (its daemon stopped with it): each reads the ledger and has something to show.
#[test]
fn the_demo_ends_with_commands_that_work_after_it() {
    let scratch = TestRepo::new();
    let dir = scratch.tmp.path().join("demo");
    let run = scratch
        .run_in(scratch.tmp.path(), ["demo", "--dir", dir.to_str().unwrap()])
        .expect(0);
    let out = run.stdout();
    let look = out
        .split("Where to look")
        .nth(1)
        .unwrap_or_else(|| panic!("no \"Where to look\" in:\n{out}"));
    let commands: Vec<Vec<&str>> = look
        .lines()
        .filter_map(|l| l.split_once(" switchyard "))
        .map(|(_, command)| command.split_whitespace().collect())
        .collect();
    let named: Vec<String> = commands
        .iter()
        .map(|c| c[2..].iter().take(2).copied().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        named,
        vec!["log t2", "task show", "task list", "queue"],
        "{look}"
    );
    let ledger = dir.join("tinyshop/.git/switchyard/ledger.db");
    for command in commands {
        let run = scratch.run_in(scratch.tmp.path(), &command).expect(0);
        assert!(
            !run.stdout().trim().is_empty(),
            "{command:?} printed nothing"
        );
        assert_eq!(
            run.stderr(),
            format!(
                "no daemon is running; read from the ledger at {}\n",
                ledger.canonicalize().unwrap().display()
            ),
            "{command:?}"
        );
    }
}

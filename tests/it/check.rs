use serde_json::json;

use crate::support::TestRepo;

#[test]
fn a_valid_config_passes_with_warnings() {
    let repo = TestRepo::example();
    let report = repo.run(["check", "--json"]).expect(0).json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["errors"], json!([]));
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        vec![
            "switchyard.toml: 4 of 17 tracked file(s) are owned by no subsystem: scripts/check.sh, scripts/setup.sh, switchyard.toml, tests/smoke.rs"
        ]
    );
    let run = repo.run(["check"]).expect(0);
    assert_eq!(
        run.stdout(),
        "switchyard.toml: ok: 5 subsystem(s), 8 rule(s), 17 tracked file(s)\n"
    );
    assert!(
        run.stderr()
            .starts_with("warning: switchyard.toml: 4 of 17")
    );
}

#[test]
fn errors_are_located_and_all_reported() {
    let repo = TestRepo::new();
    repo.files(&["src/a.rs", "docs/x.md"]).commit("init");
    repo.config(
        "base = \"main\"\nverfy = 1\n\n[[subsystem]]\nname = \"a\"\npaths = [\"src/**\", \"!src/x\"]\nmax_parallel = 0\n\n\
         [[subsystem]]\nname = \"a\"\npaths = [\"docs/\"]\ndepends_on = [\"ghost\"]\n",
    );
    let run = repo.run(["check"]).expect(2);
    assert_eq!(
        run.stderr(),
        "switchyard.toml:2:1: unknown key `verfy` in the top level; did you mean `verify` in [queue]?\n\
         switchyard.toml:6:20: pattern \"!src/x\": negation (`!`) is not supported; ownership is decided by the last matching rule, so give the carved-out paths their own rule after this one\n\
         switchyard.toml:7:16: `max_parallel` must be at least 1, found 0 (leave it out for no cap)\n\
         switchyard.toml:10:8: duplicate subsystem name \"a\" (first defined on line 5)\n\
         switchyard.toml:12:15: `depends_on` names unknown subsystem \"ghost\"\n"
    );
    assert_eq!(run.stdout(), "switchyard.toml: 5 error(s)\n");
    let report = repo.run(["check", "--json"]).expect(2).json();
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["errors"][0],
        json!({"file": "switchyard.toml", "line": 2, "col": 1,
               "message": "unknown key `verfy` in the top level; did you mean `verify` in [queue]?"})
    );
    assert_eq!(report["errors"].as_array().unwrap().len(), 5);
}

#[test]
fn dead_rules_and_empty_subsystems_are_warnings() {
    let repo = TestRepo::new();
    repo.files(&["src/a.rs", "docs/x.md", "web/app.js"])
        .commit("init");
    repo.config(
        "[[subsystem]]\nname = \"docs\"\npaths = [\"docs\"]\n\
         [[subsystem]]\nname = \"auth\"\npaths = [\"src/auth/**\"]\n\
         [[subsystem]]\nname = \"src\"\npaths = [\"src/\"]\n\
         [[subsystem]]\nname = \"empty\"\npaths = []\n",
    );
    let run = repo.run(["check"]).expect(0);
    assert_eq!(
        run.stderr(),
        "switchyard.toml:12:9: warning: subsystem \"empty\" has an empty `paths` list; it owns nothing\n\
         switchyard.toml:6:10: warning: rule \"src/auth/**\" of subsystem auth can never win: the later rule \"src/\" of subsystem src (switchyard.toml:9) matches every path it matches\n\
         switchyard.toml:3:10: warning: rule \"docs\" of subsystem docs matches no tracked file; it names a directory: did you mean \"docs/\" (the directory and everything under it)?\n\
         switchyard.toml:6:10: warning: rule \"src/auth/**\" of subsystem auth matches no tracked file\n\
         warning: switchyard.toml: 2 of 3 tracked file(s) are owned by no subsystem: docs/x.md, web/app.js\n"
    );
}

#[test]
fn config_option_and_bad_files() {
    let repo = TestRepo::new();
    repo.files(&["a.txt"]).commit("init");
    repo.file(
        "other.toml",
        "[[subsystem]]\nname = \"all\"\npaths = [\"**\"]\n",
    );
    let report = repo
        .run(["--config", "other.toml", "check", "--json"])
        .expect(0)
        .json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["config"], "other.toml");

    // A multi-megabyte file is refused before parsing.
    repo.file("huge.toml", &format!("# {}\n", "x".repeat(3 * 1024 * 1024)));
    repo.run(["--config", "huge.toml", "check"]).expect(2);
    let report = repo
        .run(["--config", "huge.toml", "check", "--json"])
        .expect(2)
        .json();
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("switchyard reads at most 1 MB"),
        "{message}"
    );

    // Not a regular file: refused without reading it.
    let run = repo.run(["--config", "/dev/zero", "check"]).expect(2);
    assert!(
        run.stderr().contains("not a regular file"),
        "{}",
        run.stderr()
    );

    // A missing config names the file looked for, in text and in JSON.
    let run = repo.run(["check"]).expect(2);
    assert!(
        run.stderr()
            .contains(&repo.root.join("switchyard.toml").display().to_string())
    );
    let report = repo.run(["check", "--json"]).expect(2).json();
    assert_eq!(report["ok"], false);

    // Not UTF-8.
    std::fs::write(repo.root.join("bin.toml"), b"base = \"ma\xffin\"\n").unwrap();
    let run = repo.run(["--config", "bin.toml", "check"]).expect(2);
    assert_eq!(
        run.stderr(),
        "bin.toml:1:11: the config is not valid UTF-8\n"
    );
}

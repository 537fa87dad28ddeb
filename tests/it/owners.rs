use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use serde_json::json;

use crate::support::TestRepo;

#[test]
fn explains_each_path_with_its_rule() {
    let repo = TestRepo::example();
    let run = repo
        .run([
            "owners",
            "--json",
            "src/auth/login.rs",
            "src/lib.rs",
            "README.md",
            "scripts/check.sh",
        ])
        .expect(0);
    let rows = run.json();
    assert_eq!(
        rows,
        json!([
            {"path": "src/auth/login.rs", "subsystem": "auth",
             "rule": {"subsystem": "auth", "glob": "src/auth/", "file": "switchyard.toml", "line": 63, "col": 10}},
            {"path": "src/lib.rs", "subsystem": "core",
             "rule": {"subsystem": "core", "glob": "src/**", "file": "switchyard.toml", "line": 56, "col": 10}},
            {"path": "README.md", "subsystem": "docs",
             "rule": {"subsystem": "docs", "glob": "*.md", "file": "switchyard.toml", "line": 79, "col": 19}},
            {"path": "scripts/check.sh", "subsystem": null, "rule": null},
        ])
    );
    let text = repo
        .run(["owners", "src/billing/tax/rates.rs", "nowhere/x"])
        .expect(0)
        .stdout();
    assert_eq!(
        text,
        "src/billing/tax/rates.rs  billing  src/billing/ (switchyard.toml:71)\nnowhere/x                 unowned\n"
    );
}

#[test]
fn all_tracked_files_with_counts() {
    let repo = TestRepo::example();
    let all = repo.run(["owners", "--all", "--json"]).expect(0).json();
    assert_eq!(all["files"].as_array().unwrap().len(), 17);
    assert_eq!(
        all["subsystems"],
        json!([
            {"name": "core", "files": 3}, {"name": "auth", "files": 3},
            {"name": "billing", "files": 2}, {"name": "docs", "files": 4}, {"name": "ci", "files": 1},
        ])
    );
    assert_eq!(
        all["unowned"],
        json!([
            "scripts/check.sh",
            "scripts/setup.sh",
            "switchyard.toml",
            "tests/smoke.rs"
        ])
    );
    let text = repo.run(["owners", "--all"]).expect(0).stdout();
    assert!(
        text.contains("\nunowned  4 file(s)\n  scripts/check.sh\n"),
        "{text}"
    );
}

#[test]
fn paths_are_relative_to_the_current_directory_inside_the_repo() {
    let repo = TestRepo::example();
    let run = repo.run_in(
        &repo.root.join("src"),
        ["owners", "--json", "auth/login.rs", "./billing/../lib.rs"],
    );
    let rows = run.expect(0).json();
    assert_eq!(rows[0]["path"], "src/auth/login.rs");
    assert_eq!(rows[0]["subsystem"], "auth");
    assert_eq!(rows[1]["path"], "src/lib.rs");
    // From outside, with --repo, paths are relative to the repository root.
    let outside = repo.tmp.path();
    let run = repo.run_in(
        outside,
        ["--repo", "repo", "owners", "--json", "src/auth/login.rs"],
    );
    assert_eq!(run.expect(0).json()[0]["subsystem"], "auth");
    // Absolute paths inside the repository are fine.
    let abs = repo.root.join("docs/guide.md");
    let run = repo.run(["owners".into(), "--json".into(), abs.into_os_string()]);
    assert_eq!(run.expect(0).json()[0]["path"], "docs/guide.md");
}

#[test]
fn a_directory_stands_for_its_tracked_files() {
    let repo = TestRepo::example();
    let rows = repo
        .run(["owners", "--json", "docs/", "src/auth"])
        .expect(0)
        .json();
    let got: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["subsystem"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("docs/auth/setup.md", "docs"),
            ("docs/guide.md", "docs"),
            ("src/auth/login.rs", "auth"),
            ("src/auth/session.rs", "auth"),
        ]
    );
}

#[test]
fn symlinks_are_followed_before_judging_inside_or_outside() {
    let repo = TestRepo::example();
    std::os::unix::fs::symlink("/etc", repo.root.join("etclink")).unwrap();
    repo.run(["owners", "etclink/passwd"])
        .refused(2, "is outside the repository");
    let link = repo.tmp.path().join("link");
    std::os::unix::fs::symlink(&repo.root, &link).unwrap();
    let file = link.join("src/lib.rs");
    let run = repo.run_in(
        repo.tmp.path(),
        [
            "--repo".into(),
            link.clone().into_os_string(),
            "owners".into(),
            "--json".into(),
            file.into_os_string(),
        ],
    );
    assert_eq!(run.expect(0).json()[0]["subsystem"], "core");
}

#[test]
fn refuses_paths_outside_the_repository() {
    let repo = TestRepo::example();
    repo.run(["owners", "../x"])
        .refused(2, "path \"../x\" is outside the repository");
    repo.run(["owners", "src/../../x"])
        .refused(2, "outside the repository");
    repo.run(["owners", "/etc/passwd"])
        .refused(2, "path \"/etc/passwd\" is outside the repository");
    repo.run(["owners", "."])
        .refused(2, "is the repository root");
    let bad = OsString::from_vec(b"src/\xff.rs".to_vec());
    repo.run([OsString::from("owners"), bad])
        .refused(2, "is not valid UTF-8");
}

#[test]
fn finds_the_main_repository_from_a_task_worktree() {
    let repo = TestRepo::example();
    let wt = repo.tmp.path().join("wt1");
    repo.git(&["worktree", "add", "-q", "-b", "task", wt.to_str().unwrap()]);
    std::fs::write(wt.join("src/auth/new.rs"), "x").unwrap();
    let run = repo.run_in(&wt.join("src/auth"), ["owners", "--json", "new.rs"]);
    let rows = run.expect(0).json();
    assert_eq!(rows[0]["path"], "src/auth/new.rs");
    assert_eq!(rows[0]["subsystem"], "auth");
    assert!(
        rows[0]["rule"]["file"]
            .as_str()
            .unwrap()
            .ends_with("repo/switchyard.toml")
    );
}

#[test]
fn bad_setups_are_one_line_errors() {
    let repo = TestRepo::new();
    repo.files(&["a.txt"]).commit("init");
    repo.run(["owners", "a.txt"]).refused(
        2,
        &format!(
            "no config at {}",
            repo.root.join("switchyard.toml").display()
        ),
    );
    let not_a_repo = repo.tmp.path().join("plain");
    std::fs::create_dir(&not_a_repo).unwrap();
    repo.run_in(&not_a_repo, ["owners", "x"])
        .refused(2, "not a git repository");
    repo.run(["--repo", "/nonexistent/dir", "owners", "x"])
        .refused(2, "no such directory");
    repo.config("[[subsystem]]\nname = \"a\"\npaths = [\"[\"]\n");
    let run = repo.run(["owners", "a.txt"]).expect(2);
    assert_eq!(
        run.stderr(),
        "switchyard.toml:3:10: invalid glob \"[\": unclosed character class; missing ']'\n"
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let repo = TestRepo::example();
    repo.run(["owners"]).expect(2);
    repo.run(["owners", "--all", "x"]).expect(2);
    let run = repo.run(["frobnicate"]).expect(2);
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    let help = repo.run(["--help"]).expect(0).stdout();
    assert!(help.contains("owners"));
}

//! The git work per integrated task on a generated 20k-file repository, excluding
//! verify: rebase a 5-commit branch onto a base that moved 3 commits, put the
//! integration worktree at the result, move the base by compare-and-swap. switchyard's
//! functions (the ones the daemon calls) against the plain git CLI doing the same steps
//! (`git replay`, `git checkout --detach`, `git update-ref`), alternating, in one run.
//!
//!     cargo bench --bench integrate
//!
//! Set SWITCHYARD_BENCH_FILES to change the repository size (default 20000).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard::gitcli::{self, Replayed};
use switchyard::{git, worktree};

const RUNS: usize = 7;

fn run_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit_files(dir: &Path, files: &[String], text: &str, message: &str) {
    for f in files {
        std::fs::write(dir.join(f), format!("{text}\n{f}\n")).unwrap();
    }
    run_git(dir, &["commit", "-qam", message]);
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let files: usize = std::env::var("SWITCHYARD_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let tmp = tempfile::TempDir::new().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let started = Instant::now();
    run_git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..files {
        let dir = repo.join(format!("src/mod{:03}", i % 200));
        if i < 200 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let line = format!("// file {i}: some source text to give the file a realistic size\n");
        std::fs::write(dir.join(format!("f{i}.rs")), line.repeat(20)).unwrap();
    }
    run_git(&repo, &["add", "-A"]);
    run_git(&repo, &["commit", "-q", "-m", "generated"]);
    let fork = run_git(&repo, &["rev-parse", "HEAD"]);
    let path = |i: usize| format!("src/mod{:03}/f{i}.rs", i % 200);
    // The feature: 5 commits of 10 files each, on files the base does not touch.
    run_git(&repo, &["checkout", "-q", "-b", "feature"]);
    for c in 0..5 {
        let touched: Vec<String> = (0..10).map(|k| path(1000 + c * 10 + k)).collect();
        commit_files(
            &repo,
            &touched,
            &format!("feature {c}"),
            &format!("feature commit {c}"),
        );
    }
    let tip = run_git(&repo, &["rev-parse", "HEAD"]);
    // The base moves on by 3 commits of 20 files each meanwhile.
    run_git(&repo, &["checkout", "-q", "main"]);
    for c in 0..3 {
        let touched: Vec<String> = (0..20).map(|k| path(5000 + c * 20 + k)).collect();
        commit_files(
            &repo,
            &touched,
            &format!("base {c}"),
            &format!("base commit {c}"),
        );
    }
    let onto = run_git(&repo, &["rev-parse", "HEAD"]);
    run_git(&repo, &["checkout", "-q", "--detach"]);
    let ours_wt = tmp.path().join("ours");
    let cli_wt = tmp.path().join("cli");
    run_git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            ours_wt.to_str().unwrap(),
            &onto,
        ],
    );
    run_git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            cli_wt.to_str().unwrap(),
            &onto,
        ],
    );
    println!(
        "integrate: {files}-file repository and two worktrees set up in {:.1?}",
        started.elapsed()
    );

    let ours = |_: usize| -> (Duration, String) {
        let start = Instant::now();
        // As the daemon's rebase step: the merge base, then the replay.
        let upstream = git::merge_base(&repo, &tip, &onto).unwrap().unwrap();
        let head = match gitcli::replay(&repo, &onto, &upstream, &tip).unwrap() {
            Replayed::Done { head } => head,
            Replayed::Conflict { paths } => panic!("conflict: {paths:?}"),
        };
        // As its verify step's preparation, and its base move.
        worktree::git(&ours_wt, &["checkout", "-q", "--detach", "-f", &head]).unwrap();
        assert!(gitcli::compare_and_swap(&repo, "refs/heads/bench-ours", &head, &onto).unwrap());
        (start.elapsed(), head)
    };
    let cli = |_: usize| -> (Duration, String) {
        let start = Instant::now();
        // `git replay --onto` with a SHA range names no ref; --advance reports the tip.
        let out = run_git(
            &repo,
            &[
                "replay",
                "--advance",
                "bench-cli-scratch",
                &format!("{fork}..{tip}"),
            ],
        );
        let head = out.split(' ').nth(2).unwrap().to_owned();
        run_git(&cli_wt, &["checkout", "-q", "--detach", &head]);
        run_git(&repo, &["update-ref", "refs/heads/bench-cli", &head, &onto]);
        (start.elapsed(), head)
    };

    let mut ours_times = Vec::new();
    let mut cli_times = Vec::new();
    for run in 0..RUNS {
        // Every run starts from the same place: refs at the base, worktrees at the base.
        run_git(&repo, &["update-ref", "refs/heads/bench-ours", &onto]);
        run_git(&repo, &["update-ref", "refs/heads/bench-cli", &onto]);
        run_git(
            &repo,
            &["update-ref", "refs/heads/bench-cli-scratch", &onto],
        );
        run_git(&ours_wt, &["checkout", "-q", "--detach", "-f", &onto]);
        run_git(&cli_wt, &["checkout", "-q", "--detach", "-f", &onto]);
        let (a, b) = if run % 2 == 0 {
            let a = ours(run);
            (a, cli(run))
        } else {
            let b = cli(run);
            (ours(run), b)
        };
        // Same trees either way: the work is the same.
        assert_eq!(
            run_git(&repo, &["rev-parse", &format!("{}^{{tree}}", a.1)]),
            run_git(&repo, &["rev-parse", &format!("{}^{{tree}}", b.1)])
        );
        ours_times.push(a.0);
        cli_times.push(b.0);
    }
    let (o, c) = (median(ours_times), median(cli_times));
    println!(
        "integrate: median of {RUNS}, rebase 5 commits over 3 + integration worktree + base move"
    );
    println!("  plain git CLI (replay --advance, checkout --detach, update-ref)  {c:>9.1?}");
    println!(
        "  switchyard (merge base, replay, checkout, compare-and-swap)        {o:>9.1?}  {:.2}x the CLI",
        o.as_secs_f64() / c.as_secs_f64()
    );
}

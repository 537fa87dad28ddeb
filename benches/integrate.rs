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
use std::time::{Duration, Instant};

use support::{git, median, path};
use switchyard::gitcli::{self, Replayed};
use switchyard::worktree;

mod support;

const RUNS: usize = 7;

fn commit_files(dir: &Path, files: &[String], text: &str, message: &str) {
    for f in files {
        std::fs::write(dir.join(f), format!("{text}\n{f}\n")).unwrap();
    }
    git(dir, &["commit", "-qam", message]);
}

fn main() {
    let files = support::file_count();
    let tmp = tempfile::TempDir::new().unwrap();
    let started = Instant::now();
    let repo = support::generate(tmp.path(), files, &[]);
    let fork = git(&repo, &["rev-parse", "HEAD"]);
    // The feature: 5 commits of 10 files each, on files the base does not touch.
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    for c in 0..5 {
        let touched: Vec<String> = (0..10).map(|k| path(files / 4 + c * 10 + k)).collect();
        commit_files(
            &repo,
            &touched,
            &format!("feature {c}"),
            &format!("feature commit {c}"),
        );
    }
    let tip = git(&repo, &["rev-parse", "HEAD"]);
    // The base moves on by 3 commits of 20 files each meanwhile.
    git(&repo, &["checkout", "-q", "main"]);
    for c in 0..3 {
        let touched: Vec<String> = (0..20).map(|k| path(files / 2 + c * 20 + k)).collect();
        commit_files(
            &repo,
            &touched,
            &format!("base {c}"),
            &format!("base commit {c}"),
        );
    }
    let onto = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["checkout", "-q", "--detach"]);
    let ours_wt = tmp.path().join("ours");
    let cli_wt = tmp.path().join("cli");
    git(
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
    git(
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
        let upstream = switchyard::git::merge_base(&repo, &tip, &onto)
            .unwrap()
            .unwrap();
        let head = match gitcli::replay(&repo, &onto, &upstream, &tip, "bench").unwrap() {
            Replayed::Done { head } => head,
            other => panic!("not replayed: {other:?}"),
        };
        // As its verify step's preparation, and its base move.
        worktree::git(&ours_wt, &["checkout", "-q", "--detach", "-f", &head]).unwrap();
        assert!(gitcli::compare_and_swap(&repo, "refs/heads/bench-ours", &head, &onto).unwrap());
        (start.elapsed(), head)
    };
    let cli = |_: usize| -> (Duration, String) {
        let start = Instant::now();
        // `git replay --onto` with a SHA range names no ref; --advance reports the tip.
        let out = git(
            &repo,
            &[
                "replay",
                "--advance",
                "bench-cli-scratch",
                &format!("{fork}..{tip}"),
            ],
        );
        let head = out.split(' ').nth(2).unwrap().to_owned();
        git(&cli_wt, &["checkout", "-q", "--detach", &head]);
        git(&repo, &["update-ref", "refs/heads/bench-cli", &head, &onto]);
        (start.elapsed(), head)
    };

    let mut ours_times = Vec::new();
    let mut cli_times = Vec::new();
    for run in 0..RUNS {
        // Every run starts from the same place: refs at the base, worktrees at the base.
        git(&repo, &["update-ref", "refs/heads/bench-ours", &onto]);
        git(&repo, &["update-ref", "refs/heads/bench-cli", &onto]);
        git(
            &repo,
            &["update-ref", "refs/heads/bench-cli-scratch", &onto],
        );
        git(&ours_wt, &["checkout", "-q", "--detach", "-f", &onto]);
        git(&cli_wt, &["checkout", "-q", "--detach", "-f", &onto]);
        let (a, b) = if run % 2 == 0 {
            let a = ours(run);
            (a, cli(run))
        } else {
            let b = cli(run);
            (ours(run), b)
        };
        // Same trees either way: the work is the same.
        assert_eq!(
            git(&repo, &["rev-parse", &format!("{}^{{tree}}", a.1)]),
            git(&repo, &["rev-parse", &format!("{}^{{tree}}", b.1)])
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

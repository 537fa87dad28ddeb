//! Early conflict warnings: one round over 30 live branches on a 20k-file repository.
//! switchyard's round (each branch's changed paths, then `git merge-tree` only for the
//! pairs whose changes meet, and for branches the base moved under) against the plain
//! way, a `git merge-tree` for every pair and every branch with the base, in the same
//! run. Also a round after one branch moved, with what earlier rounds learned.
//!
//!     cargo bench --bench conflicts
//!
//! SWITCHYARD_BENCH_FILES sets the repository's size (default 20000).

use std::path::Path;
use std::time::{Duration, Instant};

use switchyard::conflicts::Memo;
use switchyard::daemon::conflicts::scan;
use switchyard::model::TaskId;

mod support;

const BRANCHES: usize = 30;
const ROUNDS: usize = 5;

fn main() {
    let files = support::file_count();
    let tmp = tempfile::tempdir().unwrap();
    let made = Instant::now();
    let repo = support::generate(tmp.path(), files, &[]);
    let git = |args: &[&str]| support::git(&repo, args);
    let edit = |path: &str, text: &str| std::fs::write(repo.join(path), text).unwrap();
    // 26 branches each in files of their own, two pairs editing one file each, and one
    // branch editing a file the base changes later.
    let mut tips = Vec::new();
    for i in 0..BRANCHES {
        git(&["checkout", "-q", "-b", &format!("b{i}"), "main"]);
        let mine: Vec<String> = match i {
            26 | 27 => vec![support::path(7_001)],
            28 | 29 => vec![support::path(7_002)],
            25 => vec![support::path(7_003)],
            _ => (0..3).map(|k| support::path(i * 10 + k)).collect(),
        };
        for p in &mine {
            edit(p, &format!("// branch {i} rewrote this\n"));
        }
        git(&["commit", "-q", "-am", &format!("branch {i}")]);
        tips.push((TaskId(i as i64 + 1), git(&["rev-parse", "HEAD"])));
    }
    git(&["checkout", "-q", "main"]);
    edit(&support::path(7_003), "// main rewrote this\n");
    edit(&support::path(9_000), "// main, elsewhere\n");
    git(&["commit", "-q", "-am", "main moves on"]);
    let base = git(&["rev-parse", "main"]);
    println!(
        "conflicts: {files} files, {BRANCHES} branches, made in {:.1}s",
        made.elapsed().as_secs_f64()
    );

    let ours = |tips: &[(TaskId, String)], memo: &mut Memo| {
        let start = Instant::now();
        let found = scan(&repo, &base, tips, memo).unwrap();
        (start.elapsed(), found.len())
    };
    let (mut cold, mut found) = (Vec::new(), 0);
    for _ in 0..ROUNDS {
        let (t, n) = ours(&tips, &mut Memo::default());
        cold.push(t);
        found = n;
    }
    let mut plain = Vec::new();
    let mut plain_found = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        plain_found = every_pair(&repo, &base, &tips);
        plain.push(start.elapsed());
    }
    assert_eq!(found, plain_found, "both ways find the same collisions");
    // One branch moves (a heartbeat after a commit): the next round, with what the
    // earlier ones learned.
    let mut memo = Memo::default();
    ours(&tips, &mut memo);
    let mut moved = Vec::new();
    for round in 0..ROUNDS {
        git(&["checkout", "-q", "b0"]);
        edit(&support::path(1), &format!("// branch 0, round {round}\n"));
        git(&["commit", "-q", "-am", "b0 moves"]);
        tips[0].1 = git(&["rev-parse", "HEAD"]);
        git(&["checkout", "-q", "main"]);
        moved.push(ours(&tips, &mut memo).0);
    }
    let (cold, plain, moved) = (
        support::median(cold),
        support::median(plain),
        support::median(moved),
    );
    println!("  collisions found: {found} (two pairs of branches, one branch with main)");
    println!(
        "  a full round, switchyard:             median {:>8.1} ms",
        ms(cold)
    );
    println!(
        "  a full round, merge-tree every pair:  median {:>8.1} ms   ({} merges)",
        ms(plain),
        BRANCHES * (BRANCHES - 1) / 2 + BRANCHES
    );
    println!(
        "  ratio: switchyard takes {:.3}x the plain way's time ({:.1}x faster)",
        cold.as_secs_f64() / plain.as_secs_f64(),
        plain.as_secs_f64() / cold.as_secs_f64()
    );
    println!(
        "  a round after one branch moved:       median {:>8.1} ms",
        ms(moved)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The plain way: a dry-run merge of every pair, and of every branch with the base.
fn every_pair(repo: &Path, base: &str, tips: &[(TaskId, String)]) -> usize {
    let conflicts = |a: &str, b: &str| {
        let out = std::process::Command::new("git")
            .args([
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                a,
                b,
            ])
            .current_dir(repo)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        out.status.code() == Some(1)
    };
    let mut found = 0;
    for (i, (_, a)) in tips.iter().enumerate() {
        found += usize::from(conflicts(base, a));
        for (_, b) in &tips[i + 1..] {
            found += usize::from(conflicts(a, b));
        }
    }
    found
}

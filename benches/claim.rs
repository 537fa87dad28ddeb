//! Claim latency on a generated 20k-file repository: `switchyard claim` with a warm
//! worktree pool (the whole CLI round trip: process start, API call, ledger transaction,
//! moving a pooled worktree into place and checking the task's branch out), next to
//! plain `git worktree add -b` of the same repository, measured in the same run.
//!
//!     cargo bench --bench claim
//!
//! Set SWITCHYARD_BENCH_FILES to change the repository size (default 20000).

use std::path::Path;
use std::process::Command;

use std::time::{Duration, Instant};
use support::{git, median};

use switchyard::api::Status;
use switchyard::client::Client;

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const RUNS: usize = 5;

fn main() {
    let files = support::file_count();
    let tmp = tempfile::TempDir::new().unwrap();
    let started = Instant::now();
    let config = format!(
        "[[subsystem]]\nname = \"src\"\npaths = [\"src/\"]\n[worktrees]\npool = {}\n",
        RUNS + 1
    );
    let repo = support::generate(tmp.path(), files, &[("switchyard.toml", &config)]);
    println!(
        "claim: {files}-file repository generated in {:.1?}",
        started.elapsed()
    );

    // switchyard: start the daemon and wait until its pool is full.
    let mut daemon = support::spawn_daemon(BIN, &repo);
    let client = Client::new(&repo.join(".git"), &repo);
    let warm = Instant::now();
    loop {
        if let Ok(status) = client.get::<Status>("/v1/status")
            && status.pool_ready > RUNS
        {
            break;
        }
        assert!(
            warm.elapsed() < Duration::from_secs(900),
            "the pool never filled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "claim: pool of {} worktrees warmed in {:.1?}",
        RUNS + 1,
        warm.elapsed()
    );
    for i in 0..RUNS {
        let out = Command::new(BIN)
            .args([
                "task",
                "add",
                &format!("Task {i}"),
                "--scope",
                "src",
                "--by",
                "bench",
            ])
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Interleaved, so that whatever the disk is doing weighs on both alike. Baseline: a
    // fresh worktree on a new branch, the way a tool without a pool works.
    let mut baseline = Vec::new();
    let mut claims = Vec::new();
    for i in 0..RUNS {
        let path = tmp.path().join(format!("plain-{i}"));
        let start = Instant::now();
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("plain-{i}"),
                path.to_str().unwrap(),
                "main",
            ],
        );
        baseline.push(start.elapsed());

        let start = Instant::now();
        let out = Command::new(BIN)
            .args(["--json", "claim", "--agent", &format!("bench-{i}")])
            .current_dir(&repo)
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let wt = Path::new(reply["worktree"].as_str().unwrap());
        assert!(
            wt.join("src/mod000/f0.rs").is_file(),
            "the claimed worktree is checked out"
        );
        claims.push(took);
    }
    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();

    let base = median(baseline);
    let ours = median(claims);
    println!("claim: median of {RUNS}, same run, same repository");
    println!("  git worktree add -b (fresh checkout)     {base:>10.1?}");
    println!(
        "  switchyard claim, warm pool (CLI round trip) {ours:>10.1?}  {:.0}x faster",
        base.as_secs_f64() / ours.as_secs_f64()
    );
}

//! Queue throughput at agent failure rates: the real daemon (the `switchyard` binary
//! Cargo builds for this bench) integrating N tasks spread over K subsystems, a fifth of
//! them touching two, a share p failing verify (never resubmitted), with a sleep-based
//! verify of T and capacity for 4 verify runs at once. Three strategies on the same
//! generated workload, in one run:
//!
//! - serial: `[queue] max_parallel = 1`, one candidate at a time;
//! - speculation: `max_parallel = 4`, a dependent pipeline with an adaptive window;
//! - lanes: `max_parallel = 4` and `lanes = true`, a pipeline per ownership lane.
//!
//!     cargo bench --bench throughput
//!
//! Each run gets a fresh repository and daemon. Every task is claimed, committed and
//! submitted first while verify waits at a gate; the clock starts when the gate opens
//! and stops when the last task is merged or returned (polled every 20 ms). It prints the
//! makespan, the share of the ideal (every task verified exactly once, four at a time:
//! N·T/4 over the makespan) and verify runs per task (every verify started counts, also
//! one cut short because the candidate below it failed).
//!
//! SWITCHYARD_BENCH_TASKS (default 40), SWITCHYARD_BENCH_VERIFY_MS (default 1000) and
//! SWITCHYARD_BENCH_POINTS (default "6:0.05,6:0.2,6:0.35,12:0.05,12:0.2,12:0.35", K:p
//! pairs) change the workload; SWITCHYARD_BENCH_STRATEGIES (default
//! "serial,speculation,lanes") picks strategies, and SWITCHYARD_BENCH_KEEP=1 keeps each
//! run's repository (its ledger holds every step's time) and prints where.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{git, switchyard};
use switchyard::model::{Task, TaskState};

#[allow(dead_code)] // the generated 20k-file repository is not used here
mod support;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
/// Verify runs at once.
const CAPACITY: usize = 4;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One task of the workload: the subsystems it touches, and whether it fails verify.
struct Work {
    subsystems: Vec<usize>,
    fails: bool,
}

/// The workload of `queue_sim.py`: each task touches one of `k` subsystems, one in five
/// a second one too; each fails with probability `p`. A fixed seed per point, so every
/// strategy gets the same tasks.
fn workload(n: usize, k: usize, p: f64, seed: u64) -> Vec<Work> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: enough randomness for a workload, no dependency for it.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let mut subsystems = vec![(next() * k as f64) as usize];
            if next() < 0.2 {
                let second = (next() * k as f64) as usize;
                if !subsystems.contains(&second) {
                    subsystems.push(second);
                }
            }
            Work {
                subsystems,
                fails: next() < p,
            }
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Strategy {
    Serial,
    Speculation,
    Lanes,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Serial => "serial",
            Strategy::Speculation => "speculation",
            Strategy::Lanes => "lanes",
        }
    }

    fn queue_keys(self) -> String {
        match self {
            Strategy::Serial => "max_parallel = 1\n".to_owned(),
            Strategy::Speculation => format!("max_parallel = {CAPACITY}\n"),
            Strategy::Lanes => format!("max_parallel = {CAPACITY}\nlanes = true\n"),
        }
    }
}

struct Outcome {
    makespan: Duration,
    runs: usize,
    merged: usize,
}

/// One strategy on one workload, from a fresh repository and daemon.
fn run(strategy: Strategy, k: usize, work: &[Work], verify: Duration) -> Outcome {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let gate = dir.join("go");
    let runs = dir.join("runs");
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let mut config = format!(
        "[queue]\n{}verify_timeout = \"5m\"\n\
         verify = [\"while [ ! -f {gate} ]; do sleep 0.01; done; echo run >> {runs}; sleep {secs}; ! grep -rqs FAIL s*/\"]\n\
         [worktrees]\nroot = {root:?}\npool = 4\n",
        strategy.queue_keys(),
        gate = gate.display(),
        runs = runs.display(),
        secs = verify.as_secs_f64(),
        root = dir.join("worktrees").display().to_string(),
    );
    for s in 0..k {
        config.push_str(&format!(
            "[[subsystem]]\nname = \"s{s}\"\npaths = [\"s{s}/\"]\n"
        ));
        std::fs::create_dir(repo.join(format!("s{s}"))).unwrap();
        std::fs::write(repo.join(format!("s{s}/README")), "a subsystem\n").unwrap();
    }
    std::fs::write(repo.join("switchyard.toml"), config).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "generated"]);
    let (mut daemon, client) = support::start_daemon(&repo);
    for (i, w) in work.iter().enumerate() {
        let title = format!("task {i}");
        let scope: Vec<String> = w.subsystems.iter().map(|s| format!("s{s}")).collect();
        let mut add = vec!["task", "add", &title, "--by", "bench"];
        for s in &scope {
            add.extend(["--scope", s]);
        }
        let id = switchyard(&repo, &add)["id"].as_str().unwrap().to_owned();
        let agent = format!("agent-{i}");
        let claimed = switchyard(&repo, &["claim", &id, "--agent", &agent]);
        let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
        let text = if w.fails { "FAIL\n" } else { "ok\n" };
        for s in &w.subsystems {
            std::fs::write(wt.join(format!("s{s}/t{i}.txt")), text).unwrap();
        }
        git(&wt, &["add", "-A"]);
        git(&wt, &["commit", "-qm", &title]);
        switchyard(&repo, &["submit", &id, "--agent", &agent]);
    }
    std::fs::write(&gate, "").unwrap();
    let start = Instant::now();
    // Far beyond what even the serial queue needs.
    let deadline = start + verify * 5 * work.len() as u32 + Duration::from_secs(60);
    let tasks = loop {
        let tasks: Vec<Task> = client.get("/v1/tasks").unwrap();
        let done = tasks
            .iter()
            .all(|t| matches!(t.state, TaskState::Merged | TaskState::Returned));
        if done && tasks.len() == work.len() {
            break tasks;
        }
        if Instant::now() > deadline {
            let queue = Command::new(BIN)
                .arg("queue")
                .current_dir(&repo)
                .output()
                .unwrap();
            let _ = daemon.kill();
            panic!(
                "{}: the queue never drained (kept in {}):\n{}",
                strategy.name(),
                tmp.keep().display(),
                String::from_utf8_lossy(&queue.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let makespan = start.elapsed();
    let _ = daemon.kill();
    let _ = daemon.wait();
    if std::env::var_os("SWITCHYARD_BENCH_KEEP").is_some() {
        println!("kept: {}", tmp.keep().display());
    }
    let merged = tasks
        .iter()
        .filter(|t| t.state == TaskState::Merged)
        .count();
    let expected = work.iter().filter(|w| !w.fails).count();
    assert_eq!(
        merged,
        expected,
        "{}: every passing task lands, no failing one",
        strategy.name()
    );
    let runs = std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .count();
    Outcome {
        makespan,
        runs,
        merged,
    }
}

fn main() {
    let n: usize = env_or("SWITCHYARD_BENCH_TASKS", 40);
    let verify = Duration::from_millis(env_or("SWITCHYARD_BENCH_VERIFY_MS", 1000));
    let points: Vec<(usize, f64)> = std::env::var("SWITCHYARD_BENCH_POINTS")
        .unwrap_or_else(|_| "6:0.05,6:0.2,6:0.35,12:0.05,12:0.2,12:0.35".to_owned())
        .split(',')
        .filter_map(|p| {
            let (k, p) = p.split_once(':')?;
            Some((k.trim().parse().ok()?, p.trim().parse().ok()?))
        })
        .collect();
    let ideal = verify.as_secs_f64() * n as f64 / CAPACITY as f64;
    println!(
        "throughput: N = {n} tasks, verify {:.1?}, capacity {CAPACITY}; ideal makespan {ideal:.1}s (each task verified once, {CAPACITY} at a time)",
        verify
    );
    println!(
        "| K | p | strategy | makespan | share of the ideal | verify runs per task | merged |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (seed, &(k, p)) in points.iter().enumerate() {
        let work = workload(n, k, p, seed as u64 + 1);
        let wanted = std::env::var("SWITCHYARD_BENCH_STRATEGIES")
            .unwrap_or_else(|_| "serial,speculation,lanes".to_owned());
        for strategy in [Strategy::Serial, Strategy::Speculation, Strategy::Lanes] {
            if !wanted.split(',').any(|w| w.trim() == strategy.name()) {
                continue;
            }
            let o = run(strategy, k, &work, verify);
            let secs = o.makespan.as_secs_f64();
            println!(
                "| {k} | {p} | {} | {secs:.1}s | {:.0}% | {:.2} | {}/{n} |",
                strategy.name(),
                100.0 * ideal / secs,
                o.runs as f64 / n as f64,
                o.merged,
            );
        }
    }
}

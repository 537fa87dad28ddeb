//! Read latency under load: a daemon with 1,000 tasks, 50 clients reading at once
//! (`task show`, `queue`, and now and then `task list`, as polling agents and a
//! dashboard do) while a writer heartbeats and adds tasks, 20 writes a second. Prints the
//! percentiles of each read, their ratio to the same read by a lone client measured in
//! the same run, and the daemon's memory.
//!
//!     cargo bench --bench reads
//!
//! Each client is a polling agent: a request, then `SWITCHYARD_BENCH_THINK_MS`
//! (default 100) before the next; 0 makes them hammer in a closed loop, which measures
//! throughput more than latency. SWITCHYARD_BENCH_SECONDS sets how long the loaded phase
//! runs (default 10); SWITCHYARD_BENCH_DAEMON runs another switchyard binary as the
//! daemon (an older build, to compare before and after).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard::api::{AddTask, ByAgent, Claim, Status};
use switchyard::client::Client;

// Each benchmark uses a part of the shared helpers.
#[allow(dead_code)]
mod support;

const TASKS: usize = 1000;
const CLIENTS: usize = 50;
/// Tasks with a claim, so that `task show` also reads timelines of a few events.
const CLAIMED: usize = 20;

fn main() {
    let number = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = number("SWITCHYARD_BENCH_SECONDS", 10);
    let think = Duration::from_millis(number("SWITCHYARD_BENCH_THINK_MS", 100));
    let bin = std::env::var("SWITCHYARD_BENCH_DAEMON")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchyard").to_owned());
    let tmp = tempfile::TempDir::new().unwrap();
    let config = "[queue]\nverify = [\"true\"]\n\
                  [[subsystem]]\nname = \"api\"\npaths = [\"src/mod00*/\"]\n\
                  [[subsystem]]\nname = \"web\"\npaths = [\"src/mod01*/\"]\n\
                  [[subsystem]]\nname = \"docs\"\npaths = [\"src/mod02*/\"]\n\
                  [worktrees]\npool = 0\n";
    let repo = support::generate(tmp.path(), 400, &[("switchyard.toml", config)]);
    let mut daemon = support::spawn_daemon(&bin, &repo);
    let client = Client::new(&repo.join(".git"), &repo);
    let up = Instant::now();
    while client.get::<Status>("/v1/status").is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(60),
            "the daemon never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let started = Instant::now();
    for i in 0..TASKS {
        let _: serde_json::Value = client
            .post(
                "/v1/tasks",
                &AddTask {
                    title: format!("Task number {i} with a title of a usual length"),
                    body: "Why: a paragraph of request text, as a planner writes it. ".repeat(4),
                    accept: vec!["the tests pass".into(), "the docs say so".into()],
                    scope: vec![["api", "web", "docs"][i % 3].to_owned()],
                    priority: (i % 7) as i64,
                    by: "planner".into(),
                    request_id: None,
                    after: Vec::new(),
                },
            )
            .unwrap();
    }
    for i in 0..CLAIMED {
        let _: serde_json::Value = client
            .post(
                "/v1/claim",
                &Claim {
                    id: Some(format!("t{}", i + 1).parse().unwrap()),
                    agent: format!("agent-{i}"),
                    remote: false,
                },
            )
            .unwrap();
    }
    println!(
        "reads: {TASKS} tasks ({CLAIMED} claimed) made in {:.1?}",
        started.elapsed()
    );

    // A lone client first: the baseline, in the same run.
    let alone = measure(
        &repo,
        1,
        Duration::from_secs(seconds.div_ceil(3)),
        false,
        think,
    );
    // Then 50 readers and a writer.
    let loaded = measure(&repo, CLIENTS, Duration::from_secs(seconds), true, think);

    let pid = daemon.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let memory = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l[key.len()..].trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();

    println!(
        "reads: {CLIENTS} clients (a request every {think:?} each) and a writer for {seconds}s, against 1 client alone"
    );
    println!(
        "  {:<10} {:>7} {:>9} {:>9} {:>9} {:>9}   {:>11} {:>9}",
        "request", "count", "p50", "p90", "p99", "max", "alone p50", "p99/alone"
    );
    for (name, times) in &loaded {
        let base = alone.get(name).map(|t| percentile(t, 50.0));
        let p99 = percentile(times, 99.0);
        println!(
            "  {:<10} {:>7} {:>9.1?} {:>9.1?} {:>9.1?} {:>9.1?}   {:>11.1?} {:>8.1}x",
            name,
            times.len(),
            percentile(times, 50.0),
            percentile(times, 90.0),
            p99,
            percentile(times, 100.0),
            base.unwrap_or_default(),
            base.map_or(0.0, |b| p99.as_secs_f64() / b.as_secs_f64()),
        );
    }
    println!(
        "  daemon memory: {} resident now, {} at most",
        memory("VmRSS:"),
        memory("VmHWM:")
    );
}

type Times = BTreeMap<&'static str, Vec<Duration>>;

/// Runs `clients` reader threads (and, if `writer`, one writing thread) for `length`.
fn measure(
    repo: &std::path::Path,
    clients: usize,
    length: Duration,
    writer: bool,
    think: Duration,
) -> Times {
    let times: Arc<Mutex<Times>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in 0..clients {
        // Spread the clients' first requests over one think time, as agents are.
        let offset = think.mul_f64(c as f64 / clients as f64);
        let (times, stop, repo) = (Arc::clone(&times), Arc::clone(&stop), repo.to_owned());
        threads.push(std::thread::spawn(move || {
            let client = Client::new(&repo.join(".git"), &repo);
            let mut mine: Times = BTreeMap::new();
            let mut n = c;
            std::thread::sleep(offset);
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (name, path) = match n % 10 {
                    0 => ("task list", "/v1/tasks".to_owned()),
                    1..=3 => ("queue", "/v1/queue".to_owned()),
                    _ => ("task show", format!("/v1/tasks/t{}", 1 + (n * 37) % TASKS)),
                };
                let start = Instant::now();
                let _: serde_json::Value = client.get(&path).unwrap();
                mine.entry(name).or_default().push(start.elapsed());
                std::thread::sleep(think);
            }
            let mut all = times.lock().unwrap();
            for (k, v) in mine {
                all.entry(k).or_default().extend(v);
            }
        }));
    }
    if writer {
        let (stop, repo) = (Arc::clone(&stop), repo.to_owned());
        threads.push(std::thread::spawn(move || {
            let client = Client::new(&repo.join(".git"), &repo);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // 20 writes a second: every agent heartbeating every 2.5 s, and more.
                std::thread::sleep(Duration::from_millis(50));
                n += 1;
                let i = n % CLAIMED;
                let _: serde_json::Value = client
                    .post(
                        &format!("/v1/tasks/t{}/heartbeat", i + 1),
                        &ByAgent {
                            agent: format!("agent-{i}"),
                            by: None,
                        },
                    )
                    .unwrap();
                if n % 10 == 0 {
                    let _: serde_json::Value = client
                        .post(
                            "/v1/tasks",
                            &AddTask {
                                title: format!("Written under load {n}"),
                                body: String::new(),
                                accept: vec![],
                                scope: vec!["api".into()],
                                priority: 0,
                                by: "planner".into(),
                                request_id: None,
                                after: Vec::new(),
                            },
                        )
                        .unwrap();
                }
            }
        }));
    }
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(times).unwrap().into_inner().unwrap()
}

fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

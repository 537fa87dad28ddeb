//! The merge queue end to end, on a generated 20k-file repository with `verify =
//! ["true"]`: the real daemon (the `switchyard` binary Cargo builds for this bench, as
//! `CARGO_BIN_EXE_switchyard`) integrating tasks that each changed three files, next to
//! the plain git CLI doing the same steps per task on a ref of its own in the same
//! repository: `merge-tree --write-tree`, `commit-tree`, `checkout --detach` in a second
//! worktree, `sh -c true` there, `update-ref` as a compare-and-swap.
//!
//!     cargo bench --bench queue
//!
//! Two modes, in one run:
//! (a) one task at a time: submit, wait for `merged`, wait for the daemon to be idle
//!     again (the task's worktree let go of), the CLI doing the same task (alternating
//!     which goes first); per-task medians.
//! (b) all tasks submitted back to back: queue throughput, (last `merged` − first
//!     `submitted`) / N, against the CLI doing all of them back to back.
//!
//! The daemon's times come from the ledger's own event timestamps (milliseconds), not
//! from the client: they hold exactly the queue's work from the moment the submission is
//! recorded to the moment `merged` is, without the client's process start-up or the
//! interval it polls at. The CLI's are measured in-process around its five commands.
//! A breakdown per step comes from the same timestamps. For a finer one, run with
//! `SWITCHYARD_LOG=debug` (the daemon then logs every git command with its duration) and
//! `SWITCHYARD_BENCH_LOG=FILE` (the daemon's log is copied there at the end).
//!
//! The main checkout stays on `main`, clean, as a user who did not detach it would
//! leave it: the daemon fast-forwards it after each landing, which the CLI side does
//! not do.
//!
//! SWITCHYARD_BENCH_FILES sets the repository size (default 20000), and
//! SWITCHYARD_BENCH_TASKS the number of tasks per mode (default 10).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{git, median, path, switchyard};
use switchyard::api::{Status, TaskDetail};
use switchyard::client::Client;
use switchyard::model::{EventKind, TaskState};

mod support;

const POOL: usize = 2;
/// The steps of a landing as the ledger records them, in order.
const STEPS: [EventKind; 7] = [
    EventKind::Submitted,
    EventKind::IntegrationStarted,
    EventKind::Rebased,
    EventKind::VerifyPassed,
    EventKind::BaseMoved,
    EventKind::BranchUpdated,
    EventKind::Merged,
];

fn task_count() -> usize {
    std::env::var("SWITCHYARD_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// A task claimed and worked on, ready to submit.
struct Prepared {
    id: String,
    agent: String,
    tip: String,
}

/// Makes `n` tasks, claims them and commits three files in each worktree, at paths no
/// other task touches (task `k` of the whole run owns files `3k..3k+3`, spread out).
fn prepare(repo: &Path, files: usize, first: usize, n: usize) -> Vec<Prepared> {
    (first..first + n)
        .map(|k| {
            let title = format!("Bench task {k}");
            let added = switchyard(
                repo,
                &["task", "add", &title, "--scope", "src", "--by", "bench"],
            );
            let id = added["id"].as_str().unwrap().to_owned();
            let agent = format!("agent-{k}");
            let claimed = switchyard(repo, &["claim", &id, "--agent", &agent]);
            let wt = PathBuf::from(claimed["worktree"].as_str().unwrap());
            for j in 0..3 {
                let file = path(((k * 3 + j) * 7 + 3) % files);
                std::fs::write(wt.join(&file), format!("changed by {title}\n")).unwrap();
            }
            git(&wt, &["commit", "-qam", &title]);
            let tip = git(&wt, &["rev-parse", "HEAD"]);
            Prepared { id, agent, tip }
        })
        .collect()
}

fn detail(client: &Client, id: &str) -> TaskDetail {
    client.get(&format!("/v1/tasks/{id}")).unwrap()
}

/// Waits until every task in `ids` is merged and has let go of its worktree, and the
/// pool is back at its size with no worktree's files still being deleted (in the
/// worktree root's `.trash`): the daemon is idle again.
fn wait_idle(client: &Client, root: &Path, ids: &[&str]) -> Vec<TaskDetail> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let details: Vec<TaskDetail> = ids.iter().map(|id| detail(client, id)).collect();
        for d in &details {
            assert!(
                matches!(
                    d.task.state,
                    TaskState::Queued | TaskState::Verifying | TaskState::Merged
                ),
                "{} ended {}: {:?}",
                d.task.id,
                d.task.state,
                d.timeline.last()
            );
        }
        let done = details.iter().all(|d| {
            d.task.state == TaskState::Merged
                && d.task.worktree.is_none()
                && at(d, EventKind::CheckoutUpdated).is_some()
        });
        let pool = client.get::<Status>("/v1/status").unwrap().pool_ready;
        let deleting = std::fs::read_dir(root.join(".trash")).is_ok_and(|mut d| d.next().is_some());
        if done && pool == POOL && !deleting {
            return details;
        }
        assert!(Instant::now() < deadline, "the queue never drained");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the pool is full (claims took members; the daemon refills it).
fn wait_pool(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while client.get::<Status>("/v1/status").unwrap().pool_ready < POOL {
        assert!(Instant::now() < deadline, "the pool never filled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// When the ledger recorded the newest event of `kind` (milliseconds since the epoch).
fn at(d: &TaskDetail, kind: EventKind) -> Option<i64> {
    d.timeline
        .iter()
        .rev()
        .find(|e| e.kind() == kind)
        .map(|e| e.at.0)
}

fn ms(millis: i64) -> Duration {
    Duration::from_millis(millis.max(0) as u64)
}

/// The plain git CLI integrating `tip` onto `refs/heads/cli-main`, verifying in `wt`.
fn cli_land(repo: &Path, wt: &Path, tip: &str) -> Duration {
    let start = Instant::now();
    let onto = git(repo, &["rev-parse", "refs/heads/cli-main"]);
    let tree = git(repo, &["merge-tree", "--write-tree", &onto, tip]);
    let commit = git(repo, &["commit-tree", &tree, "-p", &onto, "-m", "landed"]);
    git(wt, &["checkout", "-q", "--detach", &commit]);
    let ran = Command::new("sh")
        .args(["-c", "true"])
        .current_dir(wt)
        .status()
        .unwrap();
    assert!(ran.success());
    git(repo, &["update-ref", "refs/heads/cli-main", &commit, &onto]);
    start.elapsed()
}

/// Starts the CLI side where the daemon's base is: its ref and its worktree at `main`.
fn reset_cli(repo: &Path, wt: &Path) {
    git(
        repo,
        &["update-ref", "refs/heads/cli-main", "refs/heads/main"],
    );
    git(wt, &["checkout", "-q", "--detach", "-f", "refs/heads/main"]);
}

/// Per-step durations of landed tasks, from their ledger timestamps: each step from the
/// one before it, then the follow-ups of a landing (the user's checkout fast-forwarded,
/// the task's worktree let go of), from the event that calls for them.
fn breakdown(details: &[TaskDetail]) -> Vec<(String, Duration)> {
    let mut per_step: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    let mut checkout: Vec<Duration> = Vec::new();
    let mut after: Vec<Duration> = Vec::new();
    for d in details {
        let mut last: Option<i64> = None;
        for (k, kind) in STEPS.iter().enumerate() {
            if let Some(t) = at(d, *kind) {
                if let Some(l) = last {
                    per_step.entry(k).or_default().push(ms(t - l));
                }
                last = Some(t);
            }
        }
        if let (Some(m), Some(c)) = (
            at(d, EventKind::BaseMoved),
            at(d, EventKind::CheckoutUpdated),
        ) {
            checkout.push(ms(c - m));
        }
        let recycled = at(d, EventKind::WorktreeRecycled).or(at(d, EventKind::WorktreeKept));
        if let (Some(m), Some(r)) = (at(d, EventKind::Merged), recycled) {
            after.push(ms(r - m));
        }
    }
    let mut out: Vec<(String, Duration)> = per_step
        .into_iter()
        .map(|(k, xs)| {
            (
                format!("{} -> {}", STEPS[k - 1].as_str(), STEPS[k].as_str()),
                median(xs),
            )
        })
        .collect();
    if !checkout.is_empty() {
        out.push((
            "base_moved -> checkout_updated".to_owned(),
            median(checkout),
        ));
    }
    if !after.is_empty() {
        out.push(("merged -> worktree let go of".to_owned(), median(after)));
    }
    out
}

fn print_breakdown(details: &[TaskDetail]) {
    for (what, d) in breakdown(details) {
        println!("    {what:<38} {d:>9.1?}");
    }
}

fn main() {
    let files = support::file_count();
    assert!(files >= 1000, "SWITCHYARD_BENCH_FILES must be 1000 or more");
    let n = task_count();
    let tmp = tempfile::TempDir::new().unwrap();
    let started = Instant::now();
    let root = tmp.path().canonicalize().unwrap().join("worktrees");
    let config = format!(
        "[queue]\nverify = [\"true\"]\n\
         [[subsystem]]\nname = \"src\"\npaths = [\"src/\"]\n\
         [worktrees]\nroot = {:?}\npool = {POOL}\n",
        root.display().to_string()
    );
    let repo = support::generate(tmp.path(), files, &[("switchyard.toml", &config)]);
    let repo = repo.canonicalize().unwrap();
    let cli_wt = tmp.path().join("cli-worktree");
    git(
        &repo,
        &["update-ref", "refs/heads/cli-main", "refs/heads/main"],
    );
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            cli_wt.to_str().unwrap(),
            "main",
        ],
    );
    let (mut daemon, client) = support::start_daemon(&repo);
    wait_pool(&client);
    println!(
        "queue: {files}-file repository, daemon and pool of {POOL} ready in {:.1?}",
        started.elapsed()
    );

    // (a) One task at a time.
    let tasks = prepare(&repo, files, 0, n);
    wait_pool(&client);
    reset_cli(&repo, &cli_wt);
    let mut ours = Vec::new();
    let mut ours_client = Vec::new();
    let mut letting_go = Vec::new();
    let mut cli = Vec::new();
    let mut landed = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let mut run_ours = || {
            let start = Instant::now();
            switchyard(&repo, &["submit", &t.id, "--agent", &t.agent]);
            loop {
                let d = detail(&client, &t.id);
                if d.task.state == TaskState::Merged {
                    ours_client.push(start.elapsed());
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(300),
                    "{} never landed",
                    t.id
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            let merged_seen = Instant::now();
            let d = wait_idle(&client, &root, &[&t.id]).remove(0);
            letting_go.push(merged_seen.elapsed());
            let took = at(&d, EventKind::Merged).unwrap() - at(&d, EventKind::Submitted).unwrap();
            ours.push(ms(took));
            landed.push(d);
        };
        if i % 2 == 0 {
            run_ours();
            cli.push(cli_land(&repo, &cli_wt, &t.tip));
        } else {
            cli.push(cli_land(&repo, &cli_wt, &t.tip));
            run_ours();
        }
    }
    let (o, c) = (median(ours), median(cli));
    println!("queue (a): one task at a time, median of {n}, submit to merged");
    println!(
        "  plain git CLI (merge-tree, commit-tree, checkout --detach, true, update-ref)  {c:>9.1?}"
    );
    println!(
        "  switchyard daemon (ledger: submitted -> merged)                              {o:>9.1?}  {:.2}x the CLI",
        o.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "  switchyard daemon (client: submit command start -> merged seen)             {:>9.1?}",
        median(ours_client)
    );
    println!(
        "  merged seen -> worktree let go of and pool full (client)                     {:>9.1?}",
        median(letting_go)
    );
    println!("  where the daemon's time goes (medians, from the ledger's timestamps):");
    print_breakdown(&landed);

    // (b) All submitted back to back.
    let tasks = prepare(&repo, files, n, n);
    wait_pool(&client);
    reset_cli(&repo, &cli_wt);
    let start = Instant::now();
    for t in &tasks {
        switchyard(&repo, &["submit", &t.id, "--agent", &t.agent]);
    }
    let submitting = start.elapsed();
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    let details = wait_idle(&client, &root, &ids);
    let first = details
        .iter()
        .map(|d| at(d, EventKind::Submitted).unwrap())
        .min()
        .unwrap();
    let last = details
        .iter()
        .map(|d| at(d, EventKind::Merged).unwrap())
        .max()
        .unwrap();
    let ours_each = ms(last - first) / n as u32;
    // Between one landing and the next integration's start: what the queue spends on
    // a task after it is merged, as seen by the next one. And the time the queue had
    // nothing to do because the next submission had not come in yet (a submit costs the
    // client a process and the daemon a `git status` of the task's worktree): without
    // it, the queue's own time per task when it is never idle.
    let mut gaps = Vec::new();
    let mut waiting = 0;
    let mut by_start: Vec<&TaskDetail> = details.iter().collect();
    by_start.sort_by_key(|d| at(d, EventKind::IntegrationStarted));
    for pair in by_start.windows(2) {
        let merged = at(pair[0], EventKind::Merged).unwrap();
        let next = at(pair[1], EventKind::IntegrationStarted).unwrap();
        let submitted = at(pair[1], EventKind::Submitted).unwrap();
        if submitted <= merged {
            gaps.push(ms(next - merged));
        } else {
            waiting += submitted - merged;
        }
    }
    let busy_each = ms(last - first - waiting) / n as u32;
    let start = Instant::now();
    for t in &tasks {
        cli_land(&repo, &cli_wt, &t.tip);
    }
    let cli_each = start.elapsed() / n as u32;
    println!("queue (b): {n} submitted back to back (submits took {submitting:.1?}), per task");
    println!("  plain git CLI, back to back                                {cli_each:>9.1?}");
    println!(
        "  switchyard daemon ((last merged - first submitted) / {n:<3})   {ours_each:>9.1?}  {:.2}x the CLI",
        ours_each.as_secs_f64() / cli_each.as_secs_f64()
    );
    println!(
        "  the same without the {:>7.1?} the queue waited for submissions  {busy_each:>9.1?}  {:.2}x the CLI",
        ms(waiting),
        busy_each.as_secs_f64() / cli_each.as_secs_f64()
    );
    if !gaps.is_empty() {
        println!(
            "  merged -> next integration started (median of {})         {:>9.1?}",
            gaps.len(),
            median(gaps)
        );
    }
    println!("  where the daemon's time goes (medians):");
    print_breakdown(&details);

    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();
    if let Some(to) = std::env::var_os("SWITCHYARD_BENCH_LOG") {
        std::fs::copy(repo.join(".git/switchyard/daemon.log"), to).unwrap();
    }
}

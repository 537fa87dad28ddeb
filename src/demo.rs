//! `switchyard demo`: the whole product on a sample repository, in under a minute and
//! without a network. It builds `tinyshop` from `fixtures/demo/`, starts the daemon in
//! this process, and runs scripted executors in parallel through the same API the CLI
//! uses: one change lands straight away, one breaks verify and is fixed, one conflicts and
//! is rebased, one changes another subsystem's file and waits for a person's approval,
//! and a reviewer agent reads every docs change, asking for changes once.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::api;
use crate::client::{Client, ledger_path, state_dir};
use crate::config::{self, Context};
use crate::daemon::{self, Options};
use crate::git::RepoLocation;
use crate::gitcli;
use crate::model::evidence::{self, Conflict, Verification, VerifyFailed, VerifyFailure};
use crate::model::{Actor, Event, Evidence, Task, TaskState};

/// The sample repository, embedded so the demo runs from an installed binary too.
const FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../fixtures/demo/README.md")),
    (
        "api/config.txt",
        include_str!("../fixtures/demo/api/config.txt"),
    ),
    (
        "api/routes.txt",
        include_str!("../fixtures/demo/api/routes.txt"),
    ),
    (
        "api/rate_limit.txt",
        include_str!("../fixtures/demo/api/rate_limit.txt"),
    ),
    (
        "web/index.html",
        include_str!("../fixtures/demo/web/index.html"),
    ),
    (
        "docs/guide.md",
        include_str!("../fixtures/demo/docs/guide.md"),
    ),
    (
        ".github/workflows/ci.yml",
        include_str!("../fixtures/demo/.github/workflows/ci.yml"),
    ),
    ("check.sh", include_str!("../fixtures/demo/check.sh")),
    (
        "switchyard.toml",
        include_str!("../fixtures/demo/switchyard.toml"),
    ),
];

/// How long the whole story may take before the demo gives up.
const DEADLINE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(40);

pub struct DemoOptions {
    /// Where to create `tinyshop/` (and `tinyshop.worktrees/` beside it).
    pub parent: PathBuf,
    /// The process environment, for the daemon's verify commands.
    pub env: Vec<(String, String)>,
}

/// What the demo leaves behind.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub repo: PathBuf,
    pub tasks: Vec<Task>,
    /// `main`, newest first: "<short sha> <subject> (<author>)".
    pub history: Vec<String>,
    pub ledger: PathBuf,
    pub logs: PathBuf,
    pub seconds: f64,
}

type Result<T> = std::result::Result<T, String>;

/// Runs the demo, sending one line of progress at a time to `say`.
pub fn run(opts: DemoOptions, say: Sender<String>) -> Result<Outcome> {
    let started = Instant::now();
    let repo = opts.parent.join("tinyshop");
    if repo.exists() {
        return Err(format!(
            "{} already exists; pass another --dir",
            repo.display()
        ));
    }
    build_repo(&repo)?;
    let location = RepoLocation::discover(&repo).map_err(|e| e.to_string())?;
    let config = config::load(
        &repo.join(config::FILE_NAME),
        "switchyard.toml",
        &Context {
            repo_root: Some(location.main_root.clone()),
            ..Default::default()
        },
    )
    .map_err(|e| format!("the demo config: {e}"))?
    .config;
    let progress = Progress {
        start: started,
        say,
    };
    progress.line(
        "demo",
        &format!(
            "created {} with 4 subsystems: api (cap 2), web (cap 1), docs (reviewed), ci (needs approval)",
            repo.display()
        ),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let daemon = runtime.spawn(daemon::run(
        Options {
            repo: location.clone(),
            config,
            env: opts.env,
            secrets: Vec::new(),
            abort_after_steps: None,
            queue_tick: None,
            new_ledger: false,
        },
        async move {
            let _ = stop_rx.await;
        },
        move |_| {
            let _ = ready_tx.send(());
        },
    ));
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the daemon did not start".to_owned())?;
    progress.line("demo", "daemon started; the planner adds five tasks");

    let client = Client::new(&location.common_dir, &location.main_root);
    let story = std::thread::scope(|scope| -> Result<()> {
        let plan = [
            (
                "Rate-limit the login endpoint",
                "api",
                "Logins are limited to 100 a minute per client.",
            ),
            (
                "Refresh the landing page",
                "web",
                "Announce the spring sale.",
            ),
            (
                "Document the rate limits",
                "docs",
                "Explain the limits to API users.",
            ),
            (
                "Raise the request timeout",
                "api",
                "Slow clients time out too soon.",
            ),
            (
                "Write the release notes",
                "docs",
                "Tell users what this release changes.",
            ),
        ];
        for (title, scope, body) in plan {
            let task: Task = post(
                &client,
                "/v1/tasks",
                &api::AddTask {
                    title: title.to_owned(),
                    body: body.to_owned(),
                    accept: vec!["./check.sh passes".to_owned()],
                    scope: vec![scope.to_owned()],
                    priority: 0,
                    by: "planner".to_owned(),
                    request_id: None,
                    after: Vec::new(),
                },
            )?;
            progress.line(
                "planner",
                &format!("{} {:?} (scope {scope})", task.id, task.title),
            );
        }
        let watcher = scope.spawn(|| watch(&client, &progress, &["t1", "t2", "t3", "t4", "t5"]));
        let executors = [
            scope.spawn(|| ada(&client, &progress)),
            scope.spawn(|| bob(&client, &progress)),
            scope.spawn(|| cy(&client, &progress)),
            scope.spawn(|| dee(&client, &progress)),
            scope.spawn(|| eve(&client, &progress)),
            scope.spawn(|| lead(&client, &progress)),
            scope.spawn(|| rex(&client, &progress)),
        ];
        let mut result = Ok(());
        for e in executors {
            let r = e
                .join()
                .unwrap_or_else(|_| Err("an executor panicked".to_owned()));
            if result.is_ok() {
                result = r;
            }
        }
        let _ = watcher.join();
        result
    });

    let tasks: Vec<Task> = get(&client, "/v1/tasks")?;
    let _ = stop_tx.send(());
    let _ = runtime.block_on(daemon);
    runtime.shutdown_timeout(Duration::from_secs(2));
    story?;
    let history = gitcli::git(&repo, &["log", "--format=%h %s (%an)", "main"])
        .map_err(|e| e.to_string())?
        .lines()
        .map(str::to_owned)
        .collect();
    let dir = state_dir(&location.common_dir);
    Ok(Outcome {
        repo,
        tasks,
        history,
        ledger: ledger_path(&location.common_dir),
        logs: dir.join("logs"),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn build_repo(repo: &Path) -> Result<()> {
    let io = |e: std::io::Error| format!("cannot create the sample repository: {e}");
    for (path, text) in FILES {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().expect("files are in the repo")).map_err(io)?;
        std::fs::write(&p, text).map_err(io)?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        repo.join("check.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .map_err(io)?;
    let git = |args: &[&str]| {
        gitcli::git(repo, args)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A"])?;
    git(&[
        "-c",
        "user.name=planner",
        "-c",
        "user.email=planner@tinyshop.example",
        "commit",
        "-qm",
        "tinyshop",
    ])?;
    // The recommended set-up: the main checkout is not on the base branch, so the queue
    // never has to touch files someone may be editing.
    git(&["checkout", "-q", "--detach"])
}

struct Progress {
    start: Instant,
    say: Sender<String>,
}

impl Progress {
    fn line(&self, who: &str, what: &str) {
        let _ = self.say.send(format!(
            "[{:>5.1}s] {who:<8} {what}",
            self.start.elapsed().as_secs_f64()
        ));
    }
}

fn get<R: serde::de::DeserializeOwned>(client: &Client, path: &str) -> Result<R> {
    client.get(path).map_err(|e| e.to_string())
}

fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    body: &B,
) -> Result<R> {
    client.post(path, body).map_err(|e| e.to_string())
}

fn task(client: &Client, id: &str) -> Result<Task> {
    get(client, &format!("/v1/tasks/{id}"))
}

/// Waits until the task is in one of `states`.
fn wait_for(client: &Client, id: &str, states: &[TaskState]) -> Result<Task> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let t = task(client, id)?;
        if states.contains(&t.state) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(format!("{id} never became {states:?}; it is {}", t.state));
        }
        std::thread::sleep(POLL);
    }
}

/// An executor: claims, edits, commits and submits, as an agent would through the CLI.
struct Executor<'a> {
    name: &'static str,
    client: &'a Client,
    progress: &'a Progress,
}

impl Executor<'_> {
    fn say(&self, what: &str) {
        self.progress.line(self.name, what);
    }

    fn claim(&self, id: &str) -> Result<PathBuf> {
        let c: api::Claimed = post(
            self.client,
            "/v1/claim",
            &api::Claim {
                id: Some(id.parse().map_err(|e: String| e)?),
                agent: self.name.to_owned(),
                remote: false,
            },
        )?;
        let wt = PathBuf::from(c.task.worktree.clone().unwrap_or_default());
        self.say(&format!(
            "claimed {id}; works in {} on {}",
            wt.display(),
            c.task.branch
        ));
        Ok(wt)
    }

    fn git(&self, wt: &Path, args: &[&str]) -> Result<String> {
        let name = format!("user.name={}", self.name);
        let email = format!("user.email={}@tinyshop.example", self.name);
        let mut all = vec!["-c", name.as_str(), "-c", email.as_str()];
        all.extend_from_slice(args);
        gitcli::git(wt, &all).map_err(|e| e.to_string())
    }

    fn commit(&self, wt: &Path, edits: &[(&str, &str)], message: &str) -> Result<()> {
        for (path, text) in edits {
            std::fs::write(wt.join(path), text).map_err(|e| e.to_string())?;
            self.git(wt, &["add", "--", path])?;
        }
        self.git(wt, &["commit", "-qm", message])?;
        self.say(&format!("committed {message:?}"));
        Ok(())
    }

    fn submit(&self, id: &str) -> Result<api::Submitted> {
        let s: api::Submitted = post(
            self.client,
            &format!("/v1/tasks/{id}/submit"),
            &api::ByAgent {
                agent: self.name.to_owned(),
                by: None,
            },
        )?;
        let how = match s.task.state {
            TaskState::AwaitingApproval => {
                format!("waiting for approval: {}", s.checkpoints.join("; "))
            }
            TaskState::AwaitingReview => "waiting for a reviewer".to_owned(),
            _ => "queued".to_owned(),
        };
        self.say(&format!(
            "submitted {id} (attempt {}): {how}",
            s.task.attempt
        ));
        Ok(s)
    }
}

/// Lands straight away (and moves api/config.txt, which dee's task also changes).
fn ada(client: &Client, progress: &Progress) -> Result<()> {
    let me = Executor {
        name: "ada",
        client,
        progress,
    };
    let wt = me.claim("t1")?;
    let config = std::fs::read_to_string(wt.join("api/config.txt")).map_err(|e| e.to_string())?;
    me.commit(
        &wt,
        &[
            (
                "api/rate_limit.txt",
                "# requests per minute, per client\ndefault = 100\n",
            ),
            (
                "api/config.txt",
                &config.replace("request_timeout = 30s", "request_timeout = 20s"),
            ),
        ],
        "Limit logins to 100 a minute",
    )?;
    me.submit("t1")?;
    wait_for(client, "t1", &[TaskState::Merged])?;
    Ok(())
}

/// Breaks verify, reads the evidence, fixes it in the same worktree, and lands.
fn bob(client: &Client, progress: &Progress) -> Result<()> {
    let me = Executor {
        name: "bob",
        client,
        progress,
    };
    let wt = me.claim("t2")?;
    let page = "<html>\n  <h1>tinyshop</h1>\n  <p>Spring sale: BROKEN banner</p>\n</html>\n";
    me.commit(&wt, &[("web/index.html", page)], "Announce the spring sale")?;
    me.submit("t2")?;
    wait_for(client, "t2", &[TaskState::Returned])?;
    let events: Vec<Event> = get(client, "/v1/tasks/t2/events")?;
    let failed = events.iter().rev().find_map(|e| match &e.what {
        Evidence::VerifyFailed(VerifyFailed {
            failure: VerifyFailure::Command { failed, .. },
            ..
        }) => Some(failed),
        _ => None,
    });
    if let Some(f) = failed {
        me.say(&format!(
            "got it back: `{}` {}; its output ends {:?}",
            f.command,
            ended(f.outcome),
            f.tail.join(" | ")
        ));
    }
    let fixed = "<html>\n  <h1>tinyshop</h1>\n  <p>Spring sale: everything 20% off</p>\n</html>\n";
    me.commit(&wt, &[("web/index.html", fixed)], "Fix the banner text")?;
    me.submit("t2")?;
    wait_for(client, "t2", &[TaskState::Merged])?;
    Ok(())
}

/// Touches a file of another subsystem: the change waits for the reviewer.
fn cy(client: &Client, progress: &Progress) -> Result<()> {
    let me = Executor {
        name: "cy",
        client,
        progress,
    };
    let wt = me.claim("t3")?;
    me.commit(
        &wt,
        &[
            ("docs/guide.md", "# Guide\n\n## Endpoints\nSee api/routes.txt.\n\n## Rate limits\n100 requests a minute per client; see GET /limits.\n"),
            ("api/routes.txt", "GET  /products\nPOST /login\nPOST /checkout\nGET  /limits\n"),
        ],
        "Document the rate limits",
    )?;
    me.submit("t3")?;
    wait_for(client, "t3", &[TaskState::Merged])?;
    Ok(())
}

/// Changes the same line as ada: a conflict, rebased and resolved, then it lands.
fn dee(client: &Client, progress: &Progress) -> Result<()> {
    let me = Executor {
        name: "dee",
        client,
        progress,
    };
    let wt = me.claim("t4")?;
    let config = std::fs::read_to_string(wt.join("api/config.txt")).map_err(|e| e.to_string())?;
    me.commit(
        &wt,
        &[(
            "api/config.txt",
            &config.replace("request_timeout = 30s", "request_timeout = 60s"),
        )],
        "Raise the request timeout to 60s",
    )?;
    wait_for(client, "t1", &[TaskState::Merged])?;
    me.submit("t4")?;
    wait_for(client, "t4", &[TaskState::Returned])?;
    let events: Vec<Event> = get(client, "/v1/tasks/t4/events")?;
    let paths = events
        .iter()
        .rev()
        .find_map(|e| match &e.what {
            Evidence::Conflict(Conflict::Paths { paths, .. }) => Some(format!("{paths:?}")),
            _ => None,
        })
        .unwrap_or_default();
    me.say(&format!(
        "got it back: conflict in {paths}; rebasing onto main"
    ));
    if me.git(&wt, &["rebase", "main"]).is_ok() {
        return Err("dee's rebase was expected to conflict".to_owned());
    }
    let resolved = std::fs::read_to_string(wt.join("api/config.txt"))
        .map_err(|e| e.to_string())?
        .lines()
        .filter(|l| {
            !l.starts_with("<<<<<<<") && !l.starts_with("=======") && !l.starts_with(">>>>>>>")
        })
        .filter(|l| !l.starts_with("request_timeout"))
        .collect::<Vec<_>>()
        .join("\n");
    let resolved = resolved.replacen("port = 8080", "port = 8080\nrequest_timeout = 45s", 1) + "\n";
    std::fs::write(wt.join("api/config.txt"), resolved).map_err(|e| e.to_string())?;
    me.git(&wt, &["add", "api/config.txt"])?;
    me.git(&wt, &["rebase", "--continue"])?;
    me.say("resolved: request_timeout = 45s, on top of ada's change");
    me.submit("t4")?;
    wait_for(client, "t4", &[TaskState::Merged])?;
    Ok(())
}

/// Writes release notes (a docs change, which a reviewer reads first); gets them back
/// with the reviewer's notes once, adds what was asked, and lands.
fn eve(client: &Client, progress: &Progress) -> Result<()> {
    let me = Executor {
        name: "eve",
        client,
        progress,
    };
    let wt = me.claim("t5")?;
    let notes = "# Release notes\n\n- Logins are rate-limited.\n";
    me.commit(
        &wt,
        &[("docs/releases.md", notes)],
        "Write the release notes",
    )?;
    me.submit("t5")?;
    wait_for(client, "t5", &[TaskState::Returned])?;
    let events: Vec<Event> = get(client, "/v1/tasks/t5/events")?;
    let asked = events.iter().rev().find_map(|e| match &e.what {
        Evidence::ChangesRequested(v) => Some(v.notes.clone()),
        _ => None,
    });
    me.say(&format!(
        "got it back from review: {:?}",
        asked.unwrap_or_default()
    ));
    let notes = "# Release notes (v2.1)\n\n- Logins are rate-limited to 100 a minute.\n";
    me.commit(
        &wt,
        &[("docs/releases.md", notes)],
        "Name the version and the limit",
    )?;
    me.submit("t5")?;
    wait_for(client, "t5", &[TaskState::Merged])?;
    Ok(())
}

/// A reviewer agent: takes every docs change under review (`review next`), reads the
/// submitted commit in its own checkout, asks for changes to the release notes once,
/// and approves the rest.
fn rex(client: &Client, progress: &Progress) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let mut asked = false;
    loop {
        let done = ["t3", "t5"]
            .iter()
            .map(|id| task(client, id).map(|t| t.state == TaskState::Merged))
            .collect::<Result<Vec<bool>>>()?;
        if done.iter().all(|d| *d) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("rex never saw t3 and t5 land".to_owned());
        }
        let handed: std::result::Result<api::ReviewHandOut, _> = client.post(
            "/v1/review/next",
            &api::ReviewNext {
                reviewer: api::Reviewer {
                    agent: Some("rex".to_owned()),
                    by: None,
                },
            },
        );
        let Ok(r) = handed else {
            std::thread::sleep(POLL);
            continue;
        };
        let changed = gitcli::git(Path::new(&r.worktree), &["diff", "--stat", &r.range])
            .map_err(|e| e.to_string())?;
        progress.line(
            "rex",
            &format!(
                "reviews {} at {} in {}: {}",
                r.id,
                &r.commit[..8],
                r.worktree,
                changed.lines().last().unwrap_or("").trim()
            ),
        );
        let (path, notes, verdict) = if r.title.contains("release notes") && !asked {
            asked = true;
            (
                "changes",
                "Say which version these notes are for, and the limit itself.",
                "asks for changes",
            )
        } else {
            ("approve", "Reads well.", "approves")
        };
        progress.line("rex", &format!("{verdict} on {}: {notes:?}", r.id));
        let _: Task = post(
            client,
            &format!("/v1/tasks/{}/review/{path}", r.id),
            &api::ReviewVerdict {
                reviewer: api::Reviewer {
                    agent: Some("rex".to_owned()),
                    by: None,
                },
                notes: notes.to_owned(),
                commit: Some(r.commit.clone()),
            },
        )?;
    }
}

/// A person at the checkpoint: reads why t3 waits, and approves it.
fn lead(client: &Client, progress: &Progress) -> Result<()> {
    wait_for(client, "t3", &[TaskState::AwaitingApproval])?;
    progress.line(
        "lead",
        "t3 changes api/routes.txt, outside its docs scope: looks right, approving",
    );
    let _: Task = post(
        client,
        "/v1/tasks/t3/approve",
        &api::Decision {
            by: "lead".to_owned(),
            reason: String::new(),
        },
    )?;
    Ok(())
}

/// Reports what the daemon does, from the ledger, as it happens, in the order it
/// happened across tasks.
fn watch(client: &Client, progress: &Progress, ids: &[&str]) -> Result<()> {
    let mut seen = vec![0usize; ids.len()];
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut done = true;
        let mut fresh: Vec<(&str, Event)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let events: Vec<Event> = get(client, &format!("/v1/tasks/{id}/events"))?;
            for e in &events[seen[i].min(events.len())..] {
                fresh.push((id, e.clone()));
            }
            seen[i] = events.len();
            let state = events.iter().rev().find_map(|e| e.state);
            done &= state == Some(TaskState::Merged);
        }
        fresh.sort_by_key(|(_, e)| e.at);
        for (id, e) in fresh {
            if e.by == Actor::Daemon
                && let Some(line) = describe(&e)
            {
                progress.line("queue", &format!("{id} {line}"));
            }
        }
        if done || Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(POLL / 4);
    }
}

fn describe(e: &Event) -> Option<String> {
    let short = |sha: &str| sha[..sha.len().min(8)].to_owned();
    Some(match &e.what {
        Evidence::IntegrationStarted(started) => {
            format!("integrating onto main at {}", short(&started.onto))
        }
        Evidence::Rebased(rebased) => format!(
            "rebased {} commit(s) -> {}",
            rebased.commits,
            short(&rebased.head)
        ),
        Evidence::VerifyPassed(passed) => match &passed.by {
            Verification::Commands { commands } => {
                format!("verify passed ({} command(s))", commands.len())
            }
            Verification::Checks { checks } => format!("verify passed ({} check(s))", checks.len()),
        },
        Evidence::VerifyFailed(VerifyFailed {
            failure: VerifyFailure::Command { failed, .. },
            ..
        }) => format!(
            "verify FAILED: `{}` {}; back to its executor",
            failed.command,
            ended(failed.outcome)
        ),
        Evidence::VerifyFailed(_) => "verify FAILED; back to its executor".to_owned(),
        Evidence::Conflict(Conflict::Paths { paths, .. }) => {
            format!("CONFLICT in {paths:?}; back to its executor")
        }
        Evidence::Conflict(Conflict::Unreplayable { reason, .. }) => {
            format!("CONFLICT: {reason}; back to its executor")
        }
        Evidence::BaseRaced(_) => "built again onto what is there now".to_owned(),
        Evidence::CandidateFailed(_) => {
            "failed on top of another candidate; decided once it is first in line".to_owned()
        }
        Evidence::BaseMoved(moved) => {
            format!("main {} -> {}", short(&moved.from), short(&moved.to))
        }
        Evidence::Merged(_) => "merged".to_owned(),
        Evidence::NeedsReview(_) => "needs a review first".to_owned(),
        _ => return None,
    })
}

/// How a command ended, for a line of the story.
fn ended(outcome: evidence::Outcome) -> String {
    match outcome {
        evidence::Outcome::Exited { code } => format!("exited {code}"),
        evidence::Outcome::Signaled { signal } => format!("was killed by signal {signal}"),
        evidence::Outcome::TimedOut => "timed out".to_owned(),
        evidence::Outcome::Cancelled => "was cancelled".to_owned(),
    }
}

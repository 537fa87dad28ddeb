//! `switchyard daemon`: one per repository, in the foreground. It owns the ledger,
//! serves the API on a Unix socket in the git directory (and, with `[api] listen`, on
//! TCP for other machines, `remote`), expires leases, keeps the
//! worktree pool full, and on SIGINT/SIGTERM stops taking requests, lets in-flight ones
//! finish, and exits.
//!
//! The server function takes its shutdown future as an argument, so the binary wires it
//! to signals and a test could stop it at will.

mod checkout;
pub mod conflicts;
mod dashboard;
mod engine;
mod github;
pub mod harden;
mod http;
mod integrate;
mod mcp_http;
mod metrics;
mod pushed;
mod remote;
mod review;
mod serve;
mod service;
mod wait;
mod webhook;

use std::fs::{File, OpenOptions, TryLockError};
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::client::{ledger_path, socket_path, state_dir};
use crate::config::Config;
use crate::git::{self, RepoLocation};
use crate::store::Ledger;
use crate::worktree::{self, Worktrees};

pub use service::ApiError;

/// How long in-flight work gets to reach a safe point after a stop signal.
const DRAIN: Duration = Duration::from_secs(8);
/// How often leases are checked, at most.
const LEASE_TICK: Duration = Duration::from_secs(1);
/// The pool is topped up this long after the last claim, so refills do not compete
/// with a burst of claims for the disk.
const REFILL_DELAY: Duration = Duration::from_millis(500);
/// ... and at least this often.
const REFILL_EVERY: Duration = Duration::from_secs(30);
/// The queue is looked at after every submit and approval, and at least this often.
const QUEUE_EVERY: Duration = Duration::from_secs(2);
/// A full round of conflict checks at least this often, besides the ones every moved
/// branch asks for (a safety net: a branch moved by hand, without a heartbeat).
const CONFLICTS_EVERY: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("a switchyard daemon is already running for this repository ({})", match .pid { Some(p) => format!("pid {p}"), None => "pid unknown".to_owned() })]
    AlreadyRunning { pid: Option<u32> },
    #[error(
        "the base branch {base:?} does not exist in {repo}; create it or set `base` in the config"
    )]
    NoBase { base: String, repo: String },
    /// The ledger is gone or empty, but the repository shows switchyard ran here.
    #[error("{0}")]
    LostLedger(String),
    #[error("{0}")]
    Setup(String),
}

pub struct Options {
    pub repo: RepoLocation,
    pub config: Config,
    /// The daemon's environment: commands get an allowlist of it (`command::base_env`).
    pub env: Vec<(String, String)>,
    /// The secrets the config names (the GitHub token, the webhook secret), by variable
    /// name: kept in memory, never in an environment.
    pub secrets: Vec<(String, String)>,
    /// Test-only: abort the process right after the Nth recorded integration step.
    pub abort_after_steps: Option<u32>,
    /// How often the idle queue looks again; `QUEUE_EVERY` unless a test says otherwise.
    pub queue_tick: Option<Duration>,
    /// Begin a new ledger, archiving what is there (`switchyard daemon --new-ledger`).
    pub new_ledger: bool,
}

/// What the daemon tells its starter once it listens.
pub struct Ready {
    pub socket: PathBuf,
    /// The TCP listener's URL (`https://ADDR:PORT`, or `http://` on loopback), with
    /// the port it got when `[api] listen` asked for port 0.
    pub api: Option<String>,
    pub pid: u32,
}

/// The TCP listener, bound before anything else changes, with what guards it.
struct Remote {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    guard: Arc<remote::Guard>,
    url: String,
}

/// Reads the tokens file, the certificate and key, and binds the address: any of them
/// wrong stops the start, naming the file or the address.
async fn listen_remote(listen: &crate::config::Listen) -> Result<Remote, DaemonError> {
    let guard = remote::Guard::open(&listen.tokens)
        .map_err(|e| DaemonError::Setup(format!("[api] tokens: {e}")))?;
    let tls = match &listen.tls {
        Some(tls) => Some(remote::tls_acceptor(tls).map_err(DaemonError::Setup)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen.addr)
        .await
        .map_err(|e| {
            DaemonError::Setup(format!(
                "cannot listen on {} ([api] listen): {e}",
                listen.addr
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| DaemonError::Setup(format!("cannot read the address of [api] listen: {e}")))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    Ok(Remote {
        listener,
        tls,
        guard: Arc::new(guard),
        url: format!("{scheme}://{addr}"),
    })
}

pub async fn run(
    opts: Options,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| DaemonError::Setup(format!("{what}: {e}"));
    let dir = state_dir(&opts.repo.common_dir);
    prepare_state_dir(&dir)?;
    raise_open_file_limit();
    let _lock = PidLock::acquire(&dir.join("daemon.lock"))?;

    // Before anything is touched: a bad tokens file, certificate or address stops the
    // start with nothing changed.
    let remote = match &opts.config.api.listen {
        Some(listen) => Some(listen_remote(listen).await?),
        None => None,
    };

    let main_root = opts.repo.main_root.clone();
    if git::branch_tip(&main_root, &opts.config.base)
        .map_err(|e| setup("cannot read the repository", &e))?
        .is_none()
    {
        return Err(DaemonError::NoBase {
            base: opts.config.base.clone(),
            repo: main_root.display().to_string(),
        });
    }
    let root = opts.config.worktrees.root_for(&main_root);
    // Judged before anything is created there: a root that leads into the checkout
    // through a symlink must not get even its directories made.
    if crate::config::real_path(&root).starts_with(&main_root) {
        return Err(DaemonError::Setup(format!(
            "the worktree root {} leads into the repository's checkout ({}), through a \
             symlink; set [worktrees] root to a directory outside it",
            root.display(),
            main_root.display()
        )));
    }
    Worktrees::new(main_root.clone(), root.clone())
        .ensure_root()
        .map_err(|e| setup("the worktree root is not usable", &e))?;
    // Git records real paths; so must we, or a root reached through a symlink would
    // never match what `git worktree list` says.
    let root = root
        .canonicalize()
        .map_err(|e| setup("the worktree root is not usable", &e))?;

    let worktrees = Worktrees::new(main_root.clone(), root);
    worktree::exclude_env_file(&opts.repo.common_dir)
        .map_err(|e| setup("cannot set up info/exclude", &e))?;
    let run_as = match &opts.config.commands.run_as {
        Some(name) => Some(crate::command::RunAs::lookup(name).map_err(DaemonError::Setup)?),
        None => None,
    };
    let github = match &opts.config.github {
        Some(settings) => Some(connect_github(settings, &opts.config, &opts.secrets).await?),
        None => None,
    };
    let hook_secret = match opts.config.github.as_ref().and_then(|g| g.webhook.as_ref()) {
        Some(w) => Some((w.listen, env_value(&opts.secrets, &w.secret_env).ok_or_else(|| {
            DaemonError::Setup(format!(
                "the webhook secret is missing: set the environment variable {} ([github] webhook_secret_env)",
                w.secret_env
            ))
        })?)),
        None => None,
    };
    // Bound now, before anything changes: a port in use stops the start in one line.
    let dashboard = match &opts.config.dashboard {
        Some(settings) => Some(dashboard::bind(settings, &opts.secrets).await?),
        None => None,
    };
    let hook = match hook_secret {
        Some((addr, secret)) => Some((
            addr,
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| setup(&format!("cannot listen for webhooks on {addr}"), &e))?,
            secret,
        )),
        None => None,
    };
    let mcp = match opts.config.mcp_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                setup(
                    &format!("cannot listen for MCP on {addr} ([mcp] listen)"),
                    &e,
                )
            })?;
            let token = crate::mcp::token(&dir).map_err(|e| {
                setup(
                    &format!("cannot make {}", crate::mcp::token_path(&dir).display()),
                    &e,
                )
            })?;
            Some((addr, listener, token))
        }
        None => None,
    };
    let ledger_path = ledger_path(&opts.repo.common_dir);
    let traces = service::traces_of_tasks(&main_root, &worktrees.root, service::Traces::Local)
        .map_err(|e| {
            setup(
                "cannot look for switchyard's traces in the repository",
                &e.message,
            )
        })?;
    let blank = Ledger::is_blank(&ledger_path)
        .map_err(|e| setup(&format!("cannot read {}", ledger_path.display()), &e))?;
    let archived = match (opts.new_ledger, blank) {
        // Only a ledger that holds nothing is replaced: a flag left in a service file
        // must not archive a good ledger at every restart.
        (true, false) => {
            return Err(DaemonError::LostLedger(format!(
                "--new-ledger begins a ledger where the old one is missing or empty, but {} \
                 holds tasks; start without --new-ledger (or move the ledger away yourself \
                 if you mean to start over)",
                ledger_path.display()
            )));
        }
        (true, true) => {
            Some(archive_for_a_new_ledger(&dir, &worktrees).map_err(DaemonError::Setup)?)
        }
        (false, true) if !traces.is_empty() => {
            return Err(DaemonError::LostLedger(lost_ledger_message(
                &ledger_path,
                &traces,
            )));
        }
        (false, _) => None,
    };
    let mut ledger = Ledger::open(&ledger_path)
        .map_err(|e| setup(&format!("cannot open {}", ledger_path.display()), &e))?;
    // SAFETY: geteuid has no preconditions.
    if run_as.is_none() && unsafe { libc::geteuid() } == 0 {
        warn!(
            "the daemon runs as root, so verify and setup do too (without the capabilities that reach other processes' memory); set [commands] run_as for code you do not trust"
        );
    }
    let mut names: Vec<&str> = opts.env.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    info!(names = %names.join(","), "the daemon's environment (names only)");

    if let Some(archive) = archived {
        let note = serde_json::json!({
            "at": crate::model::Timestamp::now(),
            "archive": archive.ledger,
            "worktrees": archive.worktrees,
            "earlier_tasks": traces.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        });
        ledger
            .set_meta("new_ledger", &note)
            .map_err(|e| setup("cannot write the new ledger", &e))?;
        warn!(archive = %archive.ledger.display(), worktrees = archive.worktrees.len(), "began a new ledger; the old one and the tasks' worktrees were archived, branches kept");
    }

    let service = Arc::new(
        service::Service::new(
            ledger,
            opts.config,
            opts.repo.clone(),
            worktrees,
            opts.env,
            dir.join("logs"),
            opts.abort_after_steps,
        )
        .with_run_as(run_as),
    );
    // The GitHub side holds the service's wake-up for it, so a webhook delivery and a
    // change in the ledger wake the same loop.
    let github_usage = github.as_ref().map(|connected| connected.client.usage());
    let github = github.map(|connected| {
        Arc::new(github::Hub::new(
            connected.client,
            connected.settings,
            connected.remote,
            tokio::runtime::Handle::current(),
            Arc::clone(&service.wake.github),
        ))
    });
    info!(repo = %main_root.display(), root = %service.worktrees.root.display(), "reconciling worktrees with the ledger");
    {
        let service = Arc::clone(&service);
        tokio::task::spawn_blocking(move || service.reconcile())
            .await
            .map_err(|e| setup("reconcile failed", &e))?
            .map_err(|e| setup("reconcile failed", &e.message))?;
    }

    // The metrics' counters start from the ledger's history, so they survive restarts.
    let dashboard = match dashboard {
        Some(bound) => {
            let metrics = Arc::new(metrics::Metrics::new(github_usage));
            let (m, s) = (Arc::clone(&metrics), Arc::clone(&service));
            let events = tokio::task::spawn_blocking(move || m.load(&s))
                .await
                .map_err(|e| setup("cannot count the ledger's history", &e))?
                .map_err(|e| setup("cannot count the ledger's history", &e.message))?;
            Some((bound, metrics, events))
        }
        None => None,
    };

    let socket = socket_path(&opts.repo.common_dir);
    // We hold the lock, so a socket file left here is a crashed daemon's.
    if socket.exists() {
        info!(socket = %socket.display(), "removing a stale socket");
        let _ = std::fs::remove_file(&socket);
    }
    let listener = tokio::net::UnixListener::bind(&socket)
        .map_err(|e| setup(&format!("cannot listen on {}", socket.display()), &e))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| setup("cannot restrict the socket", &e))?;

    // Every background task is tracked and stops when `stop` is cancelled; shutdown
    // waits for them, within DRAIN.
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let state = http::AppState {
        service: Arc::clone(&service),
    };
    let api = http::router(state);
    let api_url = remote.as_ref().map(|r| r.url.clone());
    if let Some(remote) = remote {
        info!(url = %remote.url, "serving the API on TCP, for clients with a token");
        tracker.spawn(serve::serve(
            remote.listener,
            remote::router(api.clone(), remote.guard),
            serve::REMOTE_API,
            remote.tls,
            stop.clone(),
        ));
    }
    tracker.spawn(serve::serve(listener, api, serve::API, None, stop.clone()));
    tracker.spawn(lease_ticker(Arc::clone(&service), stop.clone()));
    tracker.spawn(engine::run(
        Arc::clone(&service),
        github.clone(),
        opts.queue_tick.unwrap_or(QUEUE_EVERY),
        stop.clone(),
    ));
    tracker.spawn(on_demand(
        Arc::clone(&service),
        Arc::clone(&service.wake.conflicts),
        CONFLICTS_EVERY,
        stop.clone(),
        "checking live branches for conflicts",
        service::Service::check_conflicts,
    ));
    service.wake.conflicts.notify_one();
    tracker.spawn(on_demand(
        Arc::clone(&service),
        Arc::clone(&service.wake.checkout),
        QUEUE_EVERY,
        stop.clone(),
        "following the base in the user's checkout",
        service::Service::follow_landings,
    ));
    service.wake.checkout.notify_one();
    if let Some(hub) = &github {
        hub.wanted.notify_one();
        let hub = Arc::clone(hub);
        let every = hub.settings.poll_interval;
        let wanted = Arc::clone(&hub.wanted);
        tracker.spawn(on_demand(
            Arc::clone(&service),
            wanted,
            every,
            stop.clone(),
            "syncing with GitHub",
            move |s| hub.sync_github(s),
        ));
    }
    // A webhook secret is configured only with [github].
    if let (Some((addr, listener, secret)), Some(hub)) = (hook, &github) {
        info!(%addr, path = webhook::PATH, "listening for GitHub webhooks");
        tracker.spawn(serve::serve(
            listener,
            webhook::router(Arc::clone(hub), secret.into_bytes()),
            serve::WEBHOOK,
            None,
            stop.clone(),
        ));
    }
    if let Some((addr, listener, token)) = mcp {
        info!(%addr, path = crate::mcp::HTTP_PATH, "serving MCP over streamable HTTP");
        tracker.spawn(serve::serve(
            listener,
            mcp_http::router(
                opts.repo.common_dir.clone(),
                main_root.clone(),
                token,
                stop.child_token(),
            ),
            serve::MCP,
            None,
            stop.clone(),
        ));
    }
    if let Some((bound, metrics, events)) = dashboard {
        tracker.spawn(Arc::clone(&metrics).follow(Arc::clone(&service), events, stop.clone()));
        info!(url = %bound.url, "serving the dashboard and /metrics");
        let (listener, router) = bound.into_parts(Arc::clone(&service), metrics, stop.clone());
        tracker.spawn(serve::serve(
            listener,
            router,
            dashboard::LIMITS,
            None,
            stop.clone(),
        ));
    }
    tracker.spawn(pool_filler(
        Arc::clone(&service),
        Arc::clone(&service.wake.pool),
        stop.clone(),
    ));
    tracker.close();
    service.wake.pool.notify_one();

    let ready = Ready {
        socket: socket.clone(),
        api: api_url,
        pid: std::process::id(),
    };
    info!(socket = %socket.display(), pid = ready.pid, "listening");
    on_ready(&ready);

    shutdown.await;
    info!("stopping: no new requests; letting in-flight work finish");
    service.stopping.store(true, Ordering::Relaxed);
    stop.cancel();
    let drained = tokio::time::timeout(DRAIN, tracker.wait()).await;
    if drained.is_err() {
        warn!(
            "in-flight work did not finish in time; the ledger is consistent, a restart picks it up"
        );
    }
    let _ = std::fs::remove_file(&socket);
    info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard one: every connection, worktree
/// checkout and SQLite reader holds descriptors, and distributions' default soft limit
/// (often 1024) is far below what the kernel allows.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let was = limit.rlim_cur;
            crate::child::remember_open_file_limit(was);
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                info!(
                    from = was,
                    to = limit.rlim_max,
                    "raised the open-file limit"
                );
            }
        }
    }
}

/// Creates the daemon's state directory (`.git/switchyard`), private to this user, and
/// refuses one that is not this user's own real directory: whoever owns it could read
/// the ledger, replace it, or plant a symlink where the daemon writes its log.
pub fn prepare_state_dir(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::MetadataExt;
    if dir.symlink_metadata().is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DaemonError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    }
    let meta = dir
        .symlink_metadata()
        .map_err(|e| DaemonError::Setup(format!("cannot read {}: {e}", dir.display())))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(DaemonError::Setup(format!(
            "{} is not a directory of its own (a symlink or a file); refusing to keep the \
             ledger there: remove it and start again",
            dir.display()
        )));
    }
    if meta.uid() != me {
        return Err(DaemonError::Setup(format!(
            "{} belongs to uid {}, not to this user (uid {me}); refusing to use a state \
             directory someone else made: remove it and start again",
            dir.display(),
            meta.uid()
        )));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| DaemonError::Setup(format!("cannot restrict {}: {e}", dir.display())))?;
    Ok(())
}

/// The one line a daemon that finds no ledger, where switchyard has run, answers with.
fn lost_ledger_message(
    path: &Path,
    traces: &std::collections::BTreeSet<crate::model::TaskId>,
) -> String {
    let state = if path.exists() { "empty" } else { "missing" };
    let mut ids: Vec<String> = traces.iter().take(5).map(|t| t.to_string()).collect();
    if traces.len() > 5 {
        ids.push(format!("and {} more", traces.len() - 5));
    }
    format!(
        "the ledger {} is {state}, but switchyard has run in this repository (tasks {} left \
         branches, refs or worktrees); restore the ledger from a backup, or run `switchyard \
         daemon --new-ledger` to begin a new one (the old ledger and the tasks' worktrees are \
         archived, nothing is deleted)",
        path.display(),
        ids.join(", ")
    )
}

/// What `--new-ledger` moved aside.
struct Archived {
    /// The directory holding the old ledger's files.
    ledger: PathBuf,
    /// Where each task worktree went.
    worktrees: Vec<PathBuf>,
}

/// Moves the old ledger (and its WAL) to `.git/switchyard/archive/<time>/`, and the
/// tasks' worktrees under the root to `<root>/.archive/<time>/`, so a new ledger starts
/// clean and nothing of the old one is lost. Branches and refs stay where they are; new
/// task ids skip them.
fn archive_for_a_new_ledger(dir: &Path, worktrees: &Worktrees) -> Result<Archived, String> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let archive = dir.join("archive").join(&stamp);
    std::fs::create_dir_all(&archive)
        .map_err(|e| format!("cannot create {}: {e}", archive.display()))?;
    for name in ["ledger.db", "ledger.db-wal", "ledger.db-shm"] {
        let from = dir.join(name);
        if from.exists() {
            std::fs::rename(&from, archive.join(name))
                .map_err(|e| format!("cannot archive {}: {e}", from.display()))?;
        }
    }
    let aside = worktrees.archive_dir().join(&stamp);
    let mut moved = Vec::new();
    let registered = worktrees.list().map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&worktrees.root)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name();
        if name
            .to_str()
            .and_then(crate::model::TaskId::owning)
            .is_none()
        {
            continue;
        }
        std::fs::create_dir_all(&aside)
            .map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
        let to = aside.join(&name);
        let from = entry.path();
        let result = if registered.iter().any(|l| l.path == from) {
            worktrees.move_to(&from, &to).map_err(|e| e.to_string())
        } else {
            std::fs::rename(&from, &to).map_err(|e| e.to_string())
        };
        result.map_err(|e| format!("cannot archive the worktree {}: {e}", from.display()))?;
        moved.push(to);
    }
    Ok(Archived {
        ledger: archive,
        worktrees: moved,
    })
}

/// Runs a blocking service call off the runtime and logs its failure: background work
/// has nobody to answer to, and tries again on its next round.
async fn in_background(
    service: &Arc<service::Service>,
    what: &'static str,
    call: impl FnOnce(&service::Service) -> Result<(), ApiError> + Send + 'static,
) {
    let s = Arc::clone(service);
    match tokio::task::spawn_blocking(move || call(&s)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e.message, "{what} failed"),
        Err(e) => warn!(error = %e, "{what} failed"),
    }
}

async fn lease_ticker(service: Arc<service::Service>, stop: CancellationToken) {
    let shortest = service.config.claims.lease.min(service.config.review.lease);
    let tick = LEASE_TICK.min(shortest / 4).max(Duration::from_millis(50));
    let mut interval = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => return,
        }
        in_background(&service, "checking leases", |s| {
            s.expire_leases()?;
            s.expire_reviews().map(|_| ())
        })
        .await;
    }
}

/// Runs `call` whenever `wanted` is notified, and at least every `every`: the checkout
/// follower (woken by landings) and the GitHub loop (by submits, queue steps and webhook
/// deliveries). An error leaves its work for the next round.
async fn on_demand(
    service: Arc<service::Service>,
    wanted: Arc<Notify>,
    every: Duration,
    stop: CancellationToken,
    what: &'static str,
    call: impl Fn(&service::Service) -> Result<(), ApiError> + Clone + Send + Sync + 'static,
) {
    loop {
        tokio::select! {
            _ = wanted.notified() => {}
            _ = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
        in_background(&service, what, call.clone()).await;
    }
}

/// The background job for worktrees: woken after claims, releases, cancels and
/// landings, and at least every `REFILL_EVERY`. At once, it lets go of the worktrees of
/// tasks that landed or were cancelled (back to the pool); once claims have paused for
/// `REFILL_DELAY`, it tops the pool up, and deletes members beyond its size while the
/// queue is idle. None of this is on the queue's path: a landing only wakes it.
async fn pool_filler(service: Arc<service::Service>, wanted: Arc<Notify>, stop: CancellationToken) {
    // The first round also looks again at worktrees kept for their changes before the
    // start, and finishes what a crash left between a landing and its recycling.
    let mut first = true;
    loop {
        tokio::select! {
            _ = wanted.notified() => {}
            _ = tokio::time::sleep(REFILL_EVERY) => {}
            () = stop.cancelled() => return,
        }
        // Let a burst of claims finish before writing new worktrees; finished tasks'
        // worktrees are let go of at every wake meanwhile.
        loop {
            let recheck = std::mem::take(&mut first);
            in_background(
                &service,
                "letting go of finished tasks' worktrees",
                move |s| {
                    s.let_go_of_finished_worktrees(recheck)?;
                    s.let_go_of_review_checkouts()
                },
            )
            .await;
            tokio::select! {
                _ = wanted.notified() => continue,
                _ = tokio::time::sleep(REFILL_DELAY) => break,
                () = stop.cancelled() => return,
            }
        }
        in_background(
            &service,
            "refilling the worktree pool",
            service::Service::refill_pool,
        )
        .await;
        in_background(
            &service,
            "trimming the worktree pool",
            service::Service::trim_pool,
        )
        .await;
    }
}

/// Makes the GitHub client and checks, once, that the token works and the repository
/// exists. GitHub being unreachable is not fatal: local work goes on and the GitHub
/// loop catches up when it is back.
async fn connect_github(
    settings: &crate::config::Github,
    config: &Config,
    secrets: &[(String, String)],
) -> Result<Connected, DaemonError> {
    let token = env_value(secrets, &settings.token_env).ok_or_else(|| {
        DaemonError::Setup(format!(
            "the GitHub token is missing: set the environment variable {} ([github] token_env), or remove [github] to work locally",
            settings.token_env
        ))
    })?;
    let client = crate::github::Client::new(settings, &token, crate::github::Retry::DEFAULT)
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    match client.check_repository().await {
        Ok(()) => info!(repo = %settings.repo, api = %settings.api_url, "connected to GitHub"),
        Err(e) if e.is_transient() => {
            warn!(error = %e, "GitHub is unreachable; working locally until it is back")
        }
        Err(e) => return Err(DaemonError::Setup(e.to_string())),
    }
    let remote = config.remote.clone().unwrap_or_else(|| "origin".to_owned());
    Ok(Connected {
        client,
        settings: settings.clone(),
        remote,
    })
}

/// A GitHub client whose token was checked, and what the GitHub side needs with it.
struct Connected {
    client: crate::github::Client,
    settings: crate::config::Github,
    remote: String,
}

/// A secret's value by its variable's name; empty counts as unset.
fn env_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// An exclusive lock on a file holding the daemon's pid. The kernel drops the lock when
/// the process dies, however it dies, so a crashed daemon never blocks the next one.
struct PidLock {
    _file: File,
}

impl PidLock {
    fn acquire(path: &Path) -> Result<PidLock, DaemonError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| DaemonError::Setup(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(DaemonError::AlreadyRunning {
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(DaemonError::Setup(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        file.set_len(0)
            .and_then(|_| file.write_all(std::process::id().to_string().as_bytes()))
            .and_then(|_| file.sync_all())
            .map_err(|e| DaemonError::Setup(format!("cannot write {}: {e}", path.display())))?;
        Ok(PidLock { _file: file })
    }
}

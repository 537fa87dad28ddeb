//! `switchyard daemon`: runs the daemon in the foreground until SIGINT or SIGTERM.

use std::fs::OpenOptions;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use super::{CliError, Ctx};
use crate::client::state_dir;
use crate::daemon::{self, DaemonError, Options, harden};

/// Run the daemon for this repository in the foreground: it serves the API on a Unix
/// socket in the git directory (.git/switchyard/daemon.sock), logs to stderr and to
/// .git/switchyard/daemon.log, and stops cleanly on SIGINT or SIGTERM. Set
/// SWITCHYARD_LOG (for example `debug`) for more detail.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Begin a new ledger. Where switchyard has run before, a missing or empty ledger
    /// stops the daemon from starting (every task and its history would be lost
    /// silently); this flag says it is meant. The old ledger goes to
    /// .git/switchyard/archive/, the tasks' worktrees to <root>/.archive/; branches stay.
    #[arg(long)]
    new_ledger: bool,
    /// Internal: the daemon restarts itself with a clean environment and reads the
    /// config's secrets from this pipe.
    #[arg(long, hide = true, value_name = "FD")]
    secrets_fd: Option<i32>,
}

/// Threads for blocking work: ledger reads and writes, git, commands.
const MAX_BLOCKING_THREADS: usize = 64;

pub fn run(ctx: &mut Ctx<'_>, args: Args) -> Result<(), CliError> {
    // First of all, and again after the restart: nothing of this user may read this
    // process's memory or descriptors (the secrets, the pipe they come on).
    harden::make_undumpable()
        .map_err(|e| CliError::Failed(format!("cannot protect the daemon's memory: {e}")))?;
    let repo = ctx.locate()?;
    let (loaded, _) = ctx.load_config(&repo)?;
    // First the secrets leave the environment: the daemon replaces itself (same pid)
    // with a copy whose environment holds only what it needs, the secrets arriving on a
    // pipe. Nothing it starts later can find them in /proc/<pid>/environ.
    let secrets = match args.secrets_fd {
        None => {
            let exe = ctx.env.exe.as_deref().ok_or_else(|| {
                CliError::Failed("cannot find switchyard's own executable to restart the daemon with a clean environment".into())
            })?;
            let error =
                harden::restart_without_secrets(exe, &ctx.args, &loaded.config, &ctx.env.vars);
            return Err(CliError::Failed(format!(
                "cannot restart the daemon with a clean environment: {error}"
            )));
        }
        Some(fd) => harden::read_secrets(fd).map_err(CliError::Failed)?,
    };
    // A write over a file-size limit fails like a full disk (and is reported like one),
    // instead of killing the daemon with SIGXFSZ.
    // SAFETY: ignoring a signal has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    for warning in &loaded.warnings {
        writeln!(ctx.err, "{warning}").map_err(CliError::output)?;
    }

    let dir = state_dir(&repo.common_dir);
    // Before the log is opened there: a directory someone else made is refused.
    daemon::prepare_state_dir(&dir).map_err(|e| CliError::Failed(e.to_string()))?;
    let log_path = dir.join("daemon.log");
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CliError::Failed(format!("cannot open {}: {e}", log_path.display())))?;
    let filter = EnvFilter::try_new(ctx.env.log_filter.as_deref().unwrap_or("info"))
        .map_err(|e| CliError::Usage(format!("SWITCHYARD_LOG: {e}")))?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr.and(Arc::new(log_file)))
        .finish();
    // Global: the daemon's work runs on many threads. A second call in one process (only
    // tests do that) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);

    // A bounded pool for the blocking work (SQLite, git): enough for reads and writes in
    // parallel on any machine, and few enough threads that their stacks and malloc
    // arenas stay small (each thread may otherwise get an arena of its own).
    // Large buffers (a 1,000-task list is 700 kB of JSON) come from mmap and go back to
    // the system when freed: a fixed threshold keeps glibc from raising it and keeping
    // such buffers in its heap after a burst of reads.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    let opts = Options {
        repo,
        config: loaded.config,
        env: ctx.env.vars.clone(),
        secrets,
        abort_after_steps: ctx.env.abort_after_steps,
        queue_tick: ctx.env.queue_tick,
        new_ledger: args.new_ledger,
    };
    let out = &mut *ctx.out;
    let result = runtime.block_on(async {
        // Handlers first: a SIGTERM during start-up then stops the daemon cleanly as soon
        // as it is up, instead of killing it mid-recovery.
        let stop =
            stop_signal().map_err(|e| DaemonError::Setup(format!("cannot handle signals: {e}")))?;
        daemon::run(opts, stop, |ready| {
            let api = match &ready.api {
                Some(url) => format!(" and {url}"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "switchyard daemon: ready on {}{api} (pid {})",
                ready.socket.display(),
                ready.pid
            );
            let _ = out.flush();
        })
        .await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => Ok(()),
        Err(e @ DaemonError::NoBase { .. }) => Err(CliError::Usage(e.to_string())),
        Err(e) => Err(CliError::Failed(e.to_string())),
    }
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves on the first.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

//! The command line: one file per subcommand, each an args struct (its doc comment is
//! the help text) and a `run` function that renders text or JSON.
//!
//! The CLI reads no environment itself: `main.rs` gathers what it needs into [`Env`]
//! and hands in the output streams, so tests and the binary run the same code.

mod check;
mod claims;
mod daemon;
mod dashboard;
mod decide;
mod demo;
mod error;
mod init;
mod mcp;
mod owners;
mod plan;
mod reads;
mod render;
mod repo;
mod review;
mod task;
mod token;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use error::{CliError, Exit};

/// What the process knows that the library must not read for itself.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// The current directory.
    pub cwd: PathBuf,
    /// `SWITCHYARD_AGENT`: the default `--agent`.
    pub agent: Option<String>,
    /// The user's login name: the default `--agent` and `--by` after that.
    pub user: Option<String>,
    /// `SWITCHYARD_LOG` (a tracing filter such as `debug`), for the daemon's log.
    pub log_filter: Option<String>,
    /// The whole process environment, for the commands the daemon runs.
    pub vars: Vec<(String, String)>,
    /// Where temporary files go (`TMPDIR`).
    pub temp_dir: PathBuf,
    /// `SWITCHYARD_TEST_ABORT_AFTER_STEPS`: a test-only crash hook for the daemon.
    pub abort_after_steps: Option<u32>,
    /// `SWITCHYARD_TEST_QUEUE_TICK`: how often the idle queue looks again (tests set it
    /// long, to show that the queue is woken by what happens, not by its timer).
    pub queue_tick: Option<std::time::Duration>,
    /// This program's executable, for the daemon's restart with a clean environment.
    pub exe: Option<PathBuf>,
    /// `SWITCHYARD_TIMEOUT` (a duration, like `30s`): how long a client command waits
    /// for the daemon's answer, instead of the defaults in `client`.
    pub timeout: Option<std::time::Duration>,
    /// `SWITCHYARD_DAEMON`: the URL of a daemon elsewhere (`--daemon` wins over it).
    pub daemon: Option<String>,
    /// `SWITCHYARD_TOKEN`: the bearer token a daemon elsewhere knows this client by.
    /// Never in `vars`, so nothing the daemon starts can inherit it.
    pub token: Option<crate::auth::Token>,
    /// `SWITCHYARD_CA_CERT`: a PEM file of CA certificates trusted for `https://`
    /// besides the web's roots (a private CA, or a self-signed daemon).
    pub ca_cert: Option<PathBuf>,
}

/// switchyard: a merge queue for parallel work on one repository. It hands each task its
/// own worktree, keeps work inside path-ownership rules, caps work per subsystem, and
/// integrates finished work one verified step at a time.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, max_term_width = 100)]
pub struct Cli {
    /// The repository (default: the one containing the current directory; inside a
    /// task's worktree, its main repository).
    #[arg(long, global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The config file (default: switchyard.toml at the repository root).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Talk to the daemon at this URL, http(s)://HOST:PORT, instead of this
    /// repository's (default: SWITCHYARD_DAEMON). Its token comes from SWITCHYARD_TOKEN,
    /// extra CA certificates from SWITCHYARD_CA_CERT.
    #[arg(long, global = true, value_name = "URL")]
    pub daemon: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Demo(demo::Args),
    Init(init::Args),
    Check(check::Args),
    Owners(owners::Args),
    Daemon(daemon::Args),
    Dashboard(dashboard::Args),
    #[command(subcommand)]
    Task(task::Command),
    Claim(claims::ClaimArgs),
    Heartbeat(claims::HeartbeatArgs),
    Release(claims::ReleaseArgs),
    Submit(claims::SubmitArgs),
    Approve(decide::ApproveArgs),
    Reject(decide::RejectArgs),
    Log(task::LogArgs),
    Queue(task::QueueArgs),
    Resume(task::ResumeArgs),
    Pause(task::PauseArgs),
    #[command(subcommand)]
    Review(review::Command),
    Plan(plan::Args),
    Wait(claims::WaitArgs),
    Conflicts(claims::ConflictsArgs),
    Mcp(mcp::Args),
    #[command(subcommand)]
    Token(token::Command),
}

impl Command {
    /// The commands that work on this machine's repository and talk to no daemon:
    /// `--daemon` does not apply to them (and `SWITCHYARD_DAEMON` is ignored).
    fn local_only(&self) -> Option<&'static str> {
        match self {
            Command::Demo(_) => Some("demo"),
            Command::Init(_) => Some("init"),
            Command::Check(_) => Some("check"),
            Command::Owners(_) => Some("owners"),
            Command::Daemon(_) => Some("daemon"),
            Command::Token(_) => Some("token"),
            Command::Dashboard(_) => Some("dashboard"),
            Command::Task(_)
            | Command::Claim(_)
            | Command::Heartbeat(_)
            | Command::Release(_)
            | Command::Submit(_)
            | Command::Approve(_)
            | Command::Reject(_)
            | Command::Log(_)
            | Command::Queue(_)
            | Command::Resume(_)
            | Command::Pause(_)
            | Command::Review(_)
            | Command::Plan(_)
            | Command::Wait(_)
            | Command::Conflicts(_)
            | Command::Mcp(_) => None,
        }
    }
}

/// Output streams and the global options every command sees.
pub struct Ctx<'a> {
    pub env: &'a Env,
    /// The command line as given, without the program name (the daemon restarts itself
    /// with it).
    pub args: Vec<OsString>,
    pub json: bool,
    pub repo: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// A daemon elsewhere: `--daemon`'s URL, else `SWITCHYARD_DAEMON`'s, and which of
    /// the two gave it (for messages).
    pub daemon: Option<(String, &'static str)>,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Ctx<'_> {
    /// Writes one JSON document on stdout.
    pub fn print_json(&mut self, value: &impl serde::Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Bug(e.to_string()))?;
        writeln!(self.out, "{text}").map_err(CliError::output)
    }
}

/// Runs one command line and returns the process exit status.
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    env: &Env,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; a usage error is one line on
            // stderr, pointing at the help.
            let text = e.render().to_string();
            return if e.use_stderr() {
                // Clap's message, up to its usage block, on one line: "error: the
                // following required arguments were not provided: --reason <REASON>".
                let message: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .take_while(|l| {
                        !l.starts_with("Usage:") && !l.starts_with("For more information")
                    })
                    .filter(|l| !l.is_empty())
                    .collect();
                let _ = writeln!(err, "{} (see --help)", message.join(" "));
                Exit::Usage
            } else {
                let _ = write!(out, "{text}");
                Exit::Ok
            };
        }
    };
    let daemon = match (cli.daemon, cli.command.local_only()) {
        (Some(_), Some(name)) => {
            let _ = writeln!(
                err,
                "error: --daemon does not go with `switchyard {name}`: it works on this machine's repository"
            );
            return Exit::Usage;
        }
        (Some(url), None) => Some((url, "--daemon")),
        (None, None) => env.daemon.clone().map(|url| (url, "SWITCHYARD_DAEMON")),
        (None, Some(_)) => None,
    };
    let mut ctx = Ctx {
        env,
        args: args.iter().skip(1).cloned().collect(),
        json: cli.json,
        repo: cli.repo,
        config: cli.config,
        daemon,
        out,
        err,
    };
    let result = match cli.command {
        Command::Demo(args) => demo::run(&mut ctx, args),
        Command::Init(args) => init::run(&mut ctx, args),
        Command::Check(args) => check::run(&mut ctx, args),
        Command::Owners(args) => owners::run(&mut ctx, args),
        Command::Daemon(args) => daemon::run(&mut ctx, args),
        Command::Dashboard(args) => dashboard::run(&mut ctx, args),
        Command::Task(cmd) => task::run(&mut ctx, cmd),
        Command::Claim(args) => claims::claim(&mut ctx, args),
        Command::Heartbeat(args) => claims::heartbeat(&mut ctx, args),
        Command::Release(args) => claims::release(&mut ctx, args),
        Command::Submit(args) => claims::submit(&mut ctx, args),
        Command::Approve(args) => decide::approve(&mut ctx, args),
        Command::Reject(args) => decide::reject(&mut ctx, args),
        Command::Log(args) => task::log(&mut ctx, args),
        Command::Queue(args) => task::queue(&mut ctx, args),
        Command::Resume(args) => task::resume(&mut ctx, args),
        Command::Pause(args) => task::pause(&mut ctx, args),
        Command::Review(cmd) => review::run(&mut ctx, cmd),
        Command::Plan(args) => plan::run(&mut ctx, args),
        Command::Wait(args) => claims::wait(&mut ctx, args),
        Command::Conflicts(args) => claims::conflicts(&mut ctx, args),
        Command::Mcp(args) => mcp::run(&mut ctx, args),
        Command::Token(cmd) => token::run(&mut ctx, cmd),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => e.report(ctx.err, ctx.json),
    }
}

//! `switchyard demo`: the main job on a sample repository, with live progress.

use std::path::PathBuf;
use std::sync::Arc;

use super::{CliError, Ctx};
use crate::demo::{self, DemoOptions};

/// Run switchyard on a sample repository: create it (4 subsystems with caps), start the
/// daemon, and let scripted executors claim, commit and submit in parallel, including a
/// change that breaks verify and is fixed, a conflict, a scope change a person approves,
/// and a reviewer agent that asks for changes to a docs change once, then approves.
/// Ends with the resulting history and where to look: commands that read what happened
/// from the ledger once the demo's daemon has stopped. No network needed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the sample repository (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(ctx: &mut Ctx<'_>, args: Args) -> Result<(), CliError> {
    let parent = match args.dir {
        Some(dir) => ctx.env.cwd.join(dir),
        None => ctx
            .env
            .temp_dir
            .join(format!("switchyard-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&parent)
        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", parent.display())))?;
    let log_path = parent.join("daemon.log");
    if let Ok(file) = std::fs::File::create(&log_path) {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Arc::new(file))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    }

    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let opts = DemoOptions {
        parent: parent.clone(),
        env: ctx.env.vars.clone(),
    };
    let worker = std::thread::spawn(move || demo::run(opts, tx));
    // Progress on stdout, or on stderr when stdout carries the JSON document.
    for line in rx {
        let w: &mut dyn std::io::Write = if ctx.json {
            &mut *ctx.err
        } else {
            &mut *ctx.out
        };
        writeln!(w, "{line}").map_err(CliError::output)?;
    }
    let outcome = worker
        .join()
        .map_err(|_| CliError::Bug("the demo panicked".into()))?
        .map_err(|e| CliError::Failed(format!("the demo failed: {e}")))?;
    if ctx.json {
        return ctx.print_json(&outcome);
    }
    let out = &mut *ctx.out;
    let io = CliError::output;
    writeln!(out, "\nmain, newest first: linear, and each task's last commit passed verify on top of the commit before it:").map_err(io)?;
    for line in &outcome.history {
        writeln!(out, "  {line}").map_err(io)?;
    }
    writeln!(out, "\ntasks:").map_err(io)?;
    for t in &outcome.tasks {
        writeln!(
            out,
            "  {:<4} {:<8} attempt {}  {}",
            t.id.to_string(),
            t.state.as_str(),
            t.attempt,
            t.title
        )
        .map_err(io)?;
    }
    let repo = shell_word(&outcome.repo.display().to_string());
    writeln!(
        out,
        "\ndone in {:.1}s; the daemon has stopped. Where to look (these commands read the ledger when no daemon runs):",
        outcome.seconds
    )
    .map_err(io)?;
    for (what, line) in [
        ("the repository", outcome.repo.display().to_string()),
        ("a task's story", format!("switchyard --repo {repo} log t2")),
        (
            "one task in full",
            format!("switchyard --repo {repo} task show t3"),
        ),
        ("every task", format!("switchyard --repo {repo} task list")),
        ("the queue", format!("switchyard --repo {repo} queue")),
        ("the ledger", outcome.ledger.display().to_string()),
        ("verify logs", outcome.logs.display().to_string()),
        ("the daemon's log", log_path.display().to_string()),
        (
            "the dashboard",
            format!(
                "add `[dashboard]` with `listen = \"127.0.0.1:8790\"` to {repo}/switchyard.toml, run `switchyard --repo {repo} daemon`, open http://127.0.0.1:8790/"
            ),
        ),
    ] {
        writeln!(out, "  {what:<17} {line}").map_err(io)?;
    }
    Ok(())
}

/// A path as one shell word: as it is when nothing in it is special to a shell, else
/// in single quotes, so a printed command can be pasted as it is.
fn shell_word(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ':' | ','));
    match plain && !text.is_empty() {
        true => text.to_owned(),
        false => format!("'{}'", text.replace('\'', "'\\''")),
    }
}

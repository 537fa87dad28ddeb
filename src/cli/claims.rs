//! `switchyard claim`, `heartbeat` and `release`: an executor taking, keeping and giving
//! back a task. Thin clients of the daemon.

use std::time::Duration;

use super::error::Exit;
use super::{CliError, Ctx, render};
use crate::api::{ByAgent, Claim, Claimed, ConflictView, Heartbeat, Outcome, WaitOutcome};
use crate::model::{Task, TaskId};

/// Claim the given task, or the highest-priority, oldest open task that fits the caps.
/// Prints where to work: the task's worktree, on its own branch, with its environment.
/// Exits 1 when nothing can be claimed, saying why.
#[derive(Debug, clap::Args)]
pub struct ClaimArgs {
    /// The task to claim (default: the next one that fits).
    id: Option<String>,
    /// Who claims (default: SWITCHYARD_AGENT, else your user name).
    #[arg(long)]
    agent: Option<String>,
    /// Work in a clone of your own (another machine, a sandbox): no worktree is made.
    /// Prints the branch to push, the base commit it starts from, the remote to push it
    /// to and its current tip there; submit then with `--commit`.
    #[arg(long)]
    remote: bool,
}

/// Renew the lease on a claimed task.
#[derive(Debug, clap::Args)]
pub struct HeartbeatArgs {
    /// The task (default inside a task's worktree: that task).
    id: Option<String>,
    #[arg(long)]
    agent: Option<String>,
}

/// Give a claimed task back: it becomes open again, its branch and commits stay. A
/// person (`--by`) may release a task from its executor, say one at the attempt limit,
/// so that someone else takes it on.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// The task (default inside a task's worktree: that task).
    id: Option<String>,
    #[arg(long, conflicts_with = "by")]
    agent: Option<String>,
    /// Release as this person, not as the executor holding it.
    #[arg(long)]
    by: Option<String>,
}

pub fn claim(ctx: &mut Ctx<'_>, args: ClaimArgs) -> Result<(), CliError> {
    let agent = ctx.agent(args.agent)?;
    let id: Option<TaskId> = args
        .id
        .map(|i| i.parse())
        .transpose()
        .map_err(CliError::Usage)?;
    let (_, client) = ctx.client()?;
    let claimed: Claimed = client.post(
        "/v1/claim",
        &Claim {
            id,
            agent,
            remote: args.remote,
        },
    )?;
    if ctx.json {
        return ctx.print_json(&claimed);
    }
    write!(ctx.out, "{}", render::claimed(&claimed)).map_err(CliError::output)
}

pub fn heartbeat(ctx: &mut Ctx<'_>, args: HeartbeatArgs) -> Result<(), CliError> {
    let agent = ctx.agent(args.agent)?;
    let (repo, client) = ctx.client()?;
    let id = ctx.task_id(&repo, args.id.as_deref())?;
    let beat: Heartbeat = client.post(
        &format!("/v1/tasks/{id}/heartbeat"),
        &ByAgent { agent, by: None },
    )?;
    if ctx.json {
        return ctx.print_json(&beat);
    }
    let task = &beat.task;
    let until = task
        .lease_expires_at
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut text = format!("{}: lease renewed until {until}\n", task.id);
    for c in &beat.conflicts {
        text.push_str(&format!("  {}\n", render::conflict_line(c)));
    }
    write!(ctx.out, "{text}").map_err(CliError::output)
}

pub fn release(ctx: &mut Ctx<'_>, args: ReleaseArgs) -> Result<(), CliError> {
    let req = match args.by {
        Some(by) => ByAgent {
            agent: String::new(),
            by: Some(by),
        },
        None => ByAgent {
            agent: ctx.agent(args.agent)?,
            by: None,
        },
    };
    let (repo, client) = ctx.client()?;
    let id = ctx.task_id(&repo, args.id.as_deref())?;
    let task: Task = client.post(&format!("/v1/tasks/{id}/release"), &req)?;
    if ctx.json {
        return ctx.print_json(&task);
    }
    writeln!(
        ctx.out,
        "{} released: open again; branch {} keeps its commits",
        task.id, task.branch
    )
    .map_err(CliError::output)
}

/// Ask for integration of the task's branch. Its changes are checked against the task's
/// scope: inside it, the task is queued; outside it, or touching a subsystem that needs
/// approval, it waits for a person (`switchyard approve`). With `--wait`, then waits for
/// the verdict as `switchyard wait` does, with its exit statuses.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The task (default inside a task's worktree: that task).
    id: Option<String>,
    #[arg(long)]
    agent: Option<String>,
    /// Wait until it lands (exit 0) or comes back (exit 1; 3 on --timeout).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this long ("90s", "20m"); default: no limit.
    #[arg(long, requires = "wait", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Submit exactly this commit (a revision of the repository you run in, like HEAD).
    /// Required after `claim --remote`: the branch you pushed must point at it.
    #[arg(long, value_name = "REV")]
    commit: Option<String>,
}

/// Wait until the task leaves the queue and say how: exit 0 when it landed (with the
/// commit), 1 when it came back (with the reason and its evidence: conflicting paths,
/// the failed command and its log's tail, review notes, a checkpoint), 3 when the
/// timeout ran out first. The daemon answers when the ledger says so; a restart of the
/// daemon meanwhile is waited out.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// The task (default inside a task's worktree: that task).
    id: Option<String>,
    /// Give up after this long ("90s", "20m"); default: no limit.
    #[arg(long, value_parser = parse_timeout)]
    timeout: Option<Duration>,
}

/// The conflict warnings in force: dry-run merges of live tasks' branches with each other
/// and with the base that conflict, with the paths.
#[derive(Debug, clap::Args)]
pub struct ConflictsArgs {
    /// Only this task's (default: every live task's).
    id: Option<String>,
}

pub fn conflicts(ctx: &mut Ctx<'_>, args: ConflictsArgs) -> Result<(), CliError> {
    let (_, client) = ctx.client()?;
    let path = match args.id {
        Some(id) => {
            let id: TaskId = id.parse().map_err(CliError::Usage)?;
            format!("/v1/conflicts?task={id}")
        }
        None => "/v1/conflicts".to_owned(),
    };
    let found: Vec<ConflictView> = client.get(&path)?;
    if ctx.json {
        return ctx.print_json(&found);
    }
    if found.is_empty() {
        return writeln!(ctx.out, "no conflicts").map_err(CliError::output);
    }
    let mut text = String::new();
    for c in &found {
        text.push_str(&format!("{}\n", render::conflict_line(c)));
    }
    write!(ctx.out, "{text}").map_err(CliError::output)
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

pub fn wait(ctx: &mut Ctx<'_>, args: WaitArgs) -> Result<(), CliError> {
    let (repo, client) = ctx.client()?;
    let id = ctx.task_id(&repo, args.id.as_deref())?;
    let outcome = client.wait_for(id, args.timeout)?;
    report_outcome(ctx, &outcome)
}

/// Prints how a wait ended and turns it into the exit status: 0 merged, 1 came back
/// (or is not in the queue), 3 timed out.
fn report_outcome(ctx: &mut Ctx<'_>, o: &WaitOutcome) -> Result<(), CliError> {
    if ctx.json {
        ctx.print_json(o)?;
    } else {
        let reason = o
            .reason
            .as_ref()
            .map(|e| format!(": {}", crate::story::line(e)))
            .unwrap_or_default();
        let text = match o.outcome {
            Outcome::Merged => format!(
                "{} merged: {}",
                o.id,
                o.commit.as_deref().unwrap_or("(commit unknown)")
            ),
            Outcome::Returned => format!("{} came back (attempt {}){reason}", o.id, o.attempt),
            Outcome::Checkpoint => {
                format!("{} waits for a person: {}", o.id, o.checkpoints.join("; "))
            }
            Outcome::Cancelled => format!("{} was cancelled{reason}", o.id),
            Outcome::NotInQueue => format!("{} is {}: not in the queue", o.id, o.state),
            Outcome::Timeout => format!("{} is still {} (timed out waiting)", o.id, o.state),
        };
        writeln!(ctx.out, "{text}").map_err(CliError::output)?;
    }
    match o.outcome {
        Outcome::Merged => Ok(()),
        Outcome::Timeout => Err(CliError::Reported(Exit::TimedOut)),
        _ => Err(CliError::Reported(Exit::Failed)),
    }
}

pub fn submit(ctx: &mut Ctx<'_>, args: SubmitArgs) -> Result<(), CliError> {
    let agent = ctx.agent(args.agent)?;
    let (repo, client) = ctx.client()?;
    let id = ctx.task_id(&repo, args.id.as_deref())?;
    // Resolved here, in the executor's own repository (a remote claim's clone), so the
    // daemon is told one exact commit.
    let commit = args
        .commit
        .map(|rev| {
            crate::gitcli::rev_parse(&ctx.env.cwd, &rev).map_err(|e| {
                CliError::Usage(format!(
                    "--commit {rev}: not a commit in {}: {}",
                    ctx.env.cwd.display(),
                    crate::api::one_line(&e.to_string())
                ))
            })
        })
        .transpose()?;
    let submitted: crate::api::Submitted = client.post(
        &format!("/v1/tasks/{id}/submit"),
        &crate::api::Submit { agent, commit },
    )?;
    if args.wait {
        if !ctx.json {
            let t = &submitted.task;
            writeln!(
                ctx.out,
                "{} submitted (attempt {}): {}; waiting",
                t.id, t.attempt, t.state
            )
            .map_err(CliError::output)?;
        }
        let outcome = client.wait_for(id, args.timeout)?;
        return report_outcome(ctx, &outcome);
    }
    if ctx.json {
        return ctx.print_json(&submitted);
    }
    let t = &submitted.task;
    let mut text = format!("{} submitted (attempt {}): {}\n", t.id, t.attempt, t.state);
    for c in &submitted.checkpoints {
        text.push_str(&format!("  waits for approval: {c}\n"));
    }
    for w in &submitted.warnings {
        text.push_str(&format!("  warning: {w}\n"));
    }
    write!(ctx.out, "{text}").map_err(CliError::output)
}

//! `switchyard claim`, `heartbeat` and `release`: an executor taking, keeping and giving
//! back a task. Thin clients of the daemon.

use super::{CliError, Ctx, render};
use crate::api::{ByAgent, Claim, Claimed};
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
    let claimed: Claimed = client.post("/v1/claim", &Claim { id, agent })?;
    if ctx.json {
        return ctx.print_json(&claimed);
    }
    write!(ctx.out, "{}", render::claimed(&claimed)).map_err(CliError::output)
}

pub fn heartbeat(ctx: &mut Ctx<'_>, args: HeartbeatArgs) -> Result<(), CliError> {
    let agent = ctx.agent(args.agent)?;
    let (repo, client) = ctx.client()?;
    let id = ctx.task_id(&repo, args.id.as_deref())?;
    let task: Task = client.post(
        &format!("/v1/tasks/{id}/heartbeat"),
        &ByAgent { agent, by: None },
    )?;
    if ctx.json {
        return ctx.print_json(&task);
    }
    let until = task
        .lease_expires_at
        .map(|t| t.to_string())
        .unwrap_or_default();
    writeln!(ctx.out, "{}: lease renewed until {until}", task.id).map_err(CliError::output)
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
/// approval, it waits for a person (`switchyard approve`).
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The task (default inside a task's worktree: that task).
    id: Option<String>,
    #[arg(long)]
    agent: Option<String>,
}

pub fn submit(ctx: &mut Ctx<'_>, args: SubmitArgs) -> Result<(), CliError> {
    let agent = ctx.agent(args.agent)?;
    let (repo, client) = ctx.client()?;
    let id = ctx.task_id(&repo, args.id.as_deref())?;
    let submitted: crate::api::Submitted = client.post(
        &format!("/v1/tasks/{id}/submit"),
        &ByAgent { agent, by: None },
    )?;
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

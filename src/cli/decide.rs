//! `switchyard approve` and `reject`: a person's decision at a checkpoint.

use super::{CliError, Ctx};
use crate::api::Decision;
use crate::model::Task;

/// Approve a task waiting at a checkpoint (a scope change, a subsystem that requires
/// approval): it moves on to the queue.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    id: String,
    /// Who approves (default: SWITCHYARD_AGENT, else your user name).
    #[arg(long)]
    by: Option<String>,
}

/// Reject a task waiting at a checkpoint or in the queue: it goes back to its executor
/// with the reason.
#[derive(Debug, clap::Args)]
pub struct RejectArgs {
    id: String,
    /// What the executor should change.
    #[arg(long)]
    reason: String,
    #[arg(long)]
    by: Option<String>,
}

pub fn approve(ctx: &mut Ctx<'_>, args: ApproveArgs) -> Result<(), CliError> {
    let by = ctx.person(args.by)?;
    let (_, client) = ctx.client()?;
    let id: crate::model::TaskId = args.id.parse().map_err(CliError::Usage)?;
    let task: Task = client.post(
        &format!("/v1/tasks/{id}/approve"),
        &Decision {
            by,
            reason: String::new(),
        },
    )?;
    if ctx.json {
        return ctx.print_json(&task);
    }
    writeln!(ctx.out, "{} approved: {}", task.id, task.state).map_err(CliError::output)
}

pub fn reject(ctx: &mut Ctx<'_>, args: RejectArgs) -> Result<(), CliError> {
    let by = ctx.person(args.by)?;
    let (_, client) = ctx.client()?;
    let id: crate::model::TaskId = args.id.parse().map_err(CliError::Usage)?;
    let task: Task = client.post(
        &format!("/v1/tasks/{id}/reject"),
        &Decision {
            by,
            reason: args.reason,
        },
    )?;
    if ctx.json {
        return ctx.print_json(&task);
    }
    writeln!(
        ctx.out,
        "{} rejected: back to {}",
        task.id,
        task.agent.as_deref().unwrap_or("its executor")
    )
    .map_err(CliError::output)
}

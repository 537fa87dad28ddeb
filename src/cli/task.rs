//! `switchyard task add|list|show|cancel`, `switchyard log`, `switchyard queue`,
//! `switchyard pause` and `switchyard resume`: thin clients of the daemon. The reads
//! (`task list`, `task show`, `log`, `queue`) also answer from the ledger when no daemon
//! runs (`reads`).

use clap::Subcommand;

use super::{CliError, Ctx, render};
use crate::api::{self, AddTask, Cancel, PauseRequest, Resume, Resumed, Role};
use crate::client::ClientError;
use crate::model::{Stop, StopPart, Task, TaskId, TaskState};
use crate::story;

/// Create, list, show or cancel tasks.
#[derive(Debug, Subcommand)]
pub enum Command {
    Add(AddArgs),
    List(ListArgs),
    Show(ShowArgs),
    Cancel(CancelArgs),
}

/// Create a task. Its scope (subsystem names and/or path globs) is resolved now, through
/// the ownership config, to the subsystems it may touch.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// One line saying what is to be done.
    title: String,
    /// The request: why, and what is asked.
    #[arg(long, default_value = "")]
    body: String,
    /// An acceptance criterion (repeat for several).
    #[arg(long = "accept", value_name = "TEXT")]
    accept: Vec<String>,
    /// A subsystem name or a path glob the task may touch (repeat for several).
    #[arg(long = "scope", value_name = "S")]
    scope: Vec<String>,
    /// Higher runs first (-1000 to 1000).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1000..=1000))]
    priority: i64,
    /// Who asks (default: SWITCHYARD_AGENT, else your user name).
    #[arg(long)]
    by: Option<String>,
    /// Your id for this request: running the command again with the same id (after a
    /// timeout, say) returns the task the first run made instead of adding another.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// A task that must merge before this one may be claimed (repeat for several).
    #[arg(long = "after", value_name = "ID", value_parser = parse_id)]
    after: Vec<TaskId>,
}

/// List tasks.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only tasks in this state (open, claimed, queued, verifying, awaiting_approval,
    /// returned, merged, cancelled).
    #[arg(long, value_parser = parse_state)]
    state: Option<TaskState>,
    /// Only tasks where --agent took this role: planner, executor, reviewer or approver
    /// (an agent finding its own work).
    #[arg(long, requires = "agent", value_parser = parse_role)]
    role: Option<Role>,
    /// Whose work, with --role (an agent's or a person's name).
    #[arg(long, requires = "role")]
    agent: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Show one task with its timeline.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The task (default inside a task's worktree: that task).
    id: Option<String>,
}

/// Cancel a task that has not landed. Its branch and commits stay.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    id: Option<String>,
    #[arg(long, default_value = "")]
    reason: String,
    #[arg(long)]
    by: Option<String>,
}

/// The ledger events of a task, oldest first.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The task (default inside a task's worktree: that task).
    id: Option<String>,
    /// The queue's own events instead: pauses (a base moved by someone else) and
    /// resumes.
    #[arg(long, conflicts_with = "id")]
    queue: bool,
}

/// The queue in order, with what each entry waits for.
#[derive(Debug, clap::Args)]
pub struct QueueArgs {}

fn parse_id(s: &str) -> Result<TaskId, String> {
    s.parse()
}

fn parse_state(s: &str) -> Result<TaskState, String> {
    s.parse()
}

pub fn run(ctx: &mut Ctx<'_>, cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::Add(args) => add(ctx, args),
        Command::List(args) => list(ctx, args),
        Command::Show(args) => show(ctx, args),
        Command::Cancel(args) => cancel(ctx, args),
    }
}

fn add(ctx: &mut Ctx<'_>, args: AddArgs) -> Result<(), CliError> {
    let by = ctx.person(args.by)?;
    let (_, client) = ctx.client()?;
    // Every add carries a request id, so that one whose answer was lost can be repeated
    // without making a second task.
    let request_id = args
        .request_id
        .unwrap_or_else(|| crate::client::request_id("cli"));
    let req = AddTask {
        title: args.title,
        body: args.body,
        accept: args.accept,
        scope: args.scope,
        priority: args.priority,
        by,
        request_id: Some(request_id.clone()),
        after: args.after,
    };
    let task: Task = client.post("/v1/tasks", &req).map_err(|e| match e {
        ClientError::TimedOut(_) => CliError::TimedOut(format!(
            "{e}; to repeat this add safely, add `--request-id {request_id}`"
        )),
        e => e.into(),
    })?;
    if ctx.json {
        return ctx.print_json(&task);
    }
    writeln!(
        ctx.out,
        "{} {}: {} (branch {})",
        task.id, task.state, task.title, task.branch
    )
    .map_err(CliError::output)
}

fn list(ctx: &mut Ctx<'_>, args: ListArgs) -> Result<(), CliError> {
    let mut reads = ctx.reads()?;
    let filter = api::TaskFilter {
        state: args.state,
        role: args.role,
        agent: args.agent,
    };
    let tasks = reads.tasks(ctx, filter)?;
    if ctx.json {
        return ctx.print_json(&tasks);
    }
    let (_, stop) = reads.held(ctx)?;
    if let Some(stop) = &stop {
        writeln!(ctx.out, "{}; `switchyard resume` goes on", stop.line())
            .map_err(CliError::output)?;
    }
    write!(ctx.out, "{}", render::task_table(&tasks)).map_err(CliError::output)
}

fn show(ctx: &mut Ctx<'_>, args: ShowArgs) -> Result<(), CliError> {
    let mut reads = ctx.reads()?;
    let id = ctx.task_id(&reads.repo, args.id.as_deref())?;
    let detail = reads.task(ctx, id)?;
    if ctx.json {
        return ctx.print_json(&detail);
    }
    write!(ctx.out, "{}", render::task_detail(&detail)).map_err(CliError::output)
}

fn cancel(ctx: &mut Ctx<'_>, args: CancelArgs) -> Result<(), CliError> {
    let by = ctx.person(args.by)?;
    let (repo, client) = ctx.client()?;
    let id = ctx.task_id(&repo, args.id.as_deref())?;
    let task: Task = client.post(
        &format!("/v1/tasks/{id}/cancel"),
        &Cancel {
            by,
            reason: args.reason,
        },
    )?;
    if ctx.json {
        return ctx.print_json(&task);
    }
    writeln!(
        ctx.out,
        "{} cancelled; its branch {} stays",
        task.id, task.branch
    )
    .map_err(CliError::output)
}

pub fn log(ctx: &mut Ctx<'_>, args: LogArgs) -> Result<(), CliError> {
    let mut reads = ctx.reads()?;
    if args.queue {
        let events = reads.queue_events(ctx)?;
        if ctx.json {
            return ctx.print_json(&events);
        }
        for line in story::told_queue(&events) {
            writeln!(ctx.out, "{line}").map_err(CliError::output)?;
        }
        return Ok(());
    }
    let id = ctx.task_id(&reads.repo, args.id.as_deref())?;
    let events = reads.events(ctx, id)?;
    if ctx.json {
        return ctx.print_json(&events);
    }
    for line in story::told(&events) {
        writeln!(ctx.out, "{line}").map_err(CliError::output)?;
    }
    Ok(())
}

pub fn queue(ctx: &mut Ctx<'_>, _args: QueueArgs) -> Result<(), CliError> {
    let mut reads = ctx.reads()?;
    let entries = reads.queue(ctx)?;
    if ctx.json {
        return ctx.print_json(&entries);
    }
    let (paused, stop) = reads.held(ctx)?;
    if let Some(stop) = &stop {
        writeln!(ctx.out, "{}; `switchyard resume` goes on", stop.line())
            .map_err(CliError::output)?;
    }
    if let Some(pause) = &paused {
        writeln!(ctx.out, "{}", render::pause(pause)).map_err(CliError::output)?;
    }
    write!(ctx.out, "{}", render::queue(&entries)).map_err(CliError::output)
}

/// Resume after a pause: a person's pause (`switchyard pause`) ends, and a queue paused
/// because the base moved outside it accepts the base as it is now (say, after someone
/// moved it by hand) and goes on integrating onto it.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// Who resumes (default: SWITCHYARD_AGENT, else your user name).
    #[arg(long)]
    by: Option<String>,
}

pub fn resume(ctx: &mut Ctx<'_>, args: ResumeArgs) -> Result<(), CliError> {
    let by = ctx.person(args.by)?;
    let (_, client) = ctx.client()?;
    let resumed: Resumed = client.post("/v1/resume", &Resume { by })?;
    if ctx.json {
        return ctx.print_json(&resumed);
    }
    if let Some(stop) = &resumed.stop {
        writeln!(ctx.out, "resumed (it was {})", stop.line()).map_err(CliError::output)?;
    }
    if let Some(was) = &resumed.was {
        writeln!(
            ctx.out,
            "the queue goes on from {} (it was paused: {})",
            &resumed.base[..resumed.base.len().min(10)],
            was.reason
        )
        .map_err(CliError::output)?;
    }
    Ok(())
}

/// Stop handing out work, at once: no claim and no review is handed out, and the queue
/// starts nothing new (what runs finishes), until `switchyard resume`. Survives restarts.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// Why, for whoever is refused meanwhile ("over budget").
    #[arg(long)]
    reason: String,
    /// Pause only the queue (claims and submits go on) or only the hand-outs (claims
    /// and reviews; the queue goes on).
    #[arg(long, value_name = "queue|claims", value_parser = parse_part)]
    only: Option<StopPart>,
    /// Who pauses (default: SWITCHYARD_AGENT, else your user name).
    #[arg(long)]
    by: Option<String>,
}

fn parse_part(s: &str) -> Result<StopPart, String> {
    s.parse()
}

pub fn pause(ctx: &mut Ctx<'_>, args: PauseArgs) -> Result<(), CliError> {
    let by = ctx.person(args.by)?;
    let (_, client) = ctx.client()?;
    let stop: Stop = client.post(
        "/v1/pause",
        &PauseRequest {
            by,
            reason: args.reason,
            only: args.only,
        },
    )?;
    if ctx.json {
        return ctx.print_json(&stop);
    }
    writeln!(ctx.out, "{}; `switchyard resume` goes on", stop.line()).map_err(CliError::output)
}

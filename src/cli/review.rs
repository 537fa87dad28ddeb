//! `switchyard review next|approve|changes`: a reviewer taking the oldest change that
//! waits for review, and giving its verdict. Thin clients of the daemon.

use clap::Subcommand;

use super::{CliError, Ctx};
use crate::api::{ReviewHandOut, ReviewNext, ReviewVerdict, Reviewer};
use crate::model::{Task, TaskId};

/// Review submitted changes before they enter the queue (`[review] required`).
#[derive(Debug, Subcommand)]
pub enum Command {
    Next(NextArgs),
    Approve(VerdictArgs),
    Changes(ChangesArgs),
}

/// Take the oldest change awaiting review that you did not execute, under a lease (as a
/// claim): prints the request, the acceptance criteria, the scope, the exact commit, its
/// diff range against the merge base, and a read-only checkout of it. Asked again, it
/// gives back the review you hold, renewed. Exits 1 when there is nothing to review.
#[derive(Debug, clap::Args)]
pub struct NextArgs {
    #[command(flatten)]
    who: Who,
}

/// Approve the submitted commit: the task goes on to the queue.
#[derive(Debug, clap::Args)]
pub struct VerdictArgs {
    id: String,
    /// What you say about it.
    #[arg(long, default_value = "")]
    notes: String,
    /// The commit you reviewed: refused unless it is still the submitted one.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    #[command(flatten)]
    who: Who,
}

/// Ask for changes: the task goes back to its executor with your notes.
#[derive(Debug, clap::Args)]
pub struct ChangesArgs {
    id: String,
    /// What the executor should change.
    #[arg(long)]
    notes: String,
    /// The commit you reviewed: refused unless it is still the submitted one.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    #[command(flatten)]
    who: Who,
}

#[derive(Debug, clap::Args)]
struct Who {
    /// Review as this agent (default: SWITCHYARD_AGENT, else your user name).
    #[arg(long, conflicts_with = "by")]
    agent: Option<String>,
    /// Review as this person.
    #[arg(long)]
    by: Option<String>,
}

impl Who {
    fn reviewer(self, ctx: &Ctx<'_>) -> Result<Reviewer, CliError> {
        Ok(match self.by {
            Some(by) => Reviewer {
                agent: None,
                by: Some(by),
            },
            None => Reviewer {
                agent: Some(ctx.agent(self.agent)?),
                by: None,
            },
        })
    }
}

pub fn run(ctx: &mut Ctx<'_>, cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::Next(args) => next(ctx, args),
        Command::Approve(args) => verdict(ctx, args.id, args.notes, args.commit, args.who, true),
        Command::Changes(args) => verdict(ctx, args.id, args.notes, args.commit, args.who, false),
    }
}

fn next(ctx: &mut Ctx<'_>, args: NextArgs) -> Result<(), CliError> {
    let reviewer = args.who.reviewer(ctx)?;
    let (_, client) = ctx.client()?;
    let r: ReviewHandOut = client.post("/v1/review/next", &ReviewNext { reviewer })?;
    if ctx.json {
        return ctx.print_json(&r);
    }
    let mut out = format!("review {}: {}\n", r.id, r.title);
    if !r.request.is_empty() {
        out.push_str(&format!(
            "  request:   {}\n",
            r.request.replace('\n', "\n             ")
        ));
    }
    for a in &r.accept {
        out.push_str(&format!("  accept:    {a}\n"));
    }
    out.push_str(&format!(
        "  scope:     {} (subsystems: {})\n",
        r.scope.join(", "),
        r.subsystems.join(", ")
    ));
    out.push_str(&format!(
        "  commit:    {} (attempt {}, by {})\n  diff:      git diff {}\n  checkout:  {}\n  lease:     until {}{}\n",
        r.commit,
        r.attempt,
        r.executor.as_deref().unwrap_or("-"),
        r.range,
        r.worktree,
        r.lease_expires_at,
        if r.renewed { " (renewed)" } else { "" }
    ));
    out.push_str(&format!(
        "  then:      switchyard review approve {} [--notes T]  or  switchyard review changes {} --notes T\n",
        r.id, r.id
    ));
    write!(ctx.out, "{out}").map_err(CliError::output)
}

fn verdict(
    ctx: &mut Ctx<'_>,
    id: String,
    notes: String,
    commit: Option<String>,
    who: Who,
    approve: bool,
) -> Result<(), CliError> {
    let reviewer = who.reviewer(ctx)?;
    let id: TaskId = id.parse().map_err(CliError::Usage)?;
    let (_, client) = ctx.client()?;
    let path = match approve {
        true => format!("/v1/tasks/{id}/review/approve"),
        false => format!("/v1/tasks/{id}/review/changes"),
    };
    let task: Task = client.post(
        &path,
        &ReviewVerdict {
            reviewer,
            notes,
            commit,
        },
    )?;
    if ctx.json {
        return ctx.print_json(&task);
    }
    let text = match approve {
        true => format!("{} approved: {}", task.id, task.state),
        false => format!(
            "{} changes requested: back to {}",
            task.id,
            task.agent.as_deref().unwrap_or("its executor")
        ),
    };
    writeln!(ctx.out, "{text}").map_err(CliError::output)
}

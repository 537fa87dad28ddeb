//! `switchyard plan FILE`: a planner's whole batch of tasks, with their dependencies,
//! created in one transaction or not at all. The daemon reads and checks the file
//! (`crate::plan`); this only sends it.

use std::path::PathBuf;

use super::{CliError, Ctx};
use crate::api::{Plan, Planned};
use crate::client::ClientError;
use crate::plan::MAX_PLAN_BYTES;

/// Create every task of a plan file (TOML `[[task]]` tables, or JSON `{"task": [...]}`),
/// each with its title, request, acceptance criteria, scope, priority and `after`
/// (local names in the file, or task ids like t12), or none: every problem is reported
/// first, as FILE:LINE:COL. Prints the ids.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file.
    file: PathBuf,
    /// Who plans (default: SWITCHYARD_AGENT, else your user name).
    #[arg(long)]
    by: Option<String>,
    /// Your id for this request: running it again with the same id (after a timeout,
    /// say) returns the tasks the first run made instead of adding them again.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
}

pub fn run(ctx: &mut Ctx<'_>, args: Args) -> Result<(), CliError> {
    let by = ctx.person(args.by)?;
    let shown = args.file.display().to_string();
    let meta =
        std::fs::metadata(&args.file).map_err(|e| CliError::Usage(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return Err(CliError::Usage(format!("{shown}: not a regular file")));
    }
    if meta.len() > MAX_PLAN_BYTES as u64 {
        return Err(CliError::Usage(format!(
            "{shown}:1:1: the plan is {} bytes; the limit is {MAX_PLAN_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(&args.file).map_err(|e| CliError::Usage(format!("{shown}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{shown}: not UTF-8 text")))?;
    let (_, client) = ctx.client()?;
    // Every plan carries a request id, so that one whose answer was lost can be
    // repeated without making its tasks twice.
    let request_id = args
        .request_id
        .unwrap_or_else(|| crate::client::request_id("cli"));
    let planned: Planned = client
        .post(
            "/v1/plan",
            &Plan {
                file: shown,
                text,
                by,
                request_id: Some(request_id.clone()),
            },
        )
        .map_err(|e| match e {
            ClientError::TimedOut(_) => CliError::TimedOut(format!(
                "{e}; to repeat this plan safely, add `--request-id {request_id}`"
            )),
            e => e.into(),
        })?;
    if ctx.json {
        return ctx.print_json(&planned);
    }
    let width = planned
        .tasks
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!("planned {} task(s):\n", planned.tasks.len());
    for t in &planned.tasks {
        out.push_str(&format!("  {:<width$}  {}\n", t.name, t.id));
    }
    write!(ctx.out, "{out}").map_err(CliError::output)
}

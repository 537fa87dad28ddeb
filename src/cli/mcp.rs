//! `switchyard mcp`: the MCP server for coding agents, on stdin/stdout. The tools live
//! in `crate::mcp`; this only finds the repository and hands over.

use super::{CliError, Ctx};
use crate::mcp::{self, Defaults};

/// Serve MCP (the Model Context Protocol) on stdin/stdout for this repository, for a
/// coding agent: tools to list, add, claim, submit, wait for and review tasks, as a
/// client of the running daemon (`switchyard daemon`). An MCP client starts it, e.g.
/// `claude mcp add switchyard -- switchyard mcp`. The agent's name is a tool's `agent`
/// argument, else SWITCHYARD_AGENT, else the MCP client's name, else your user name.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(ctx: &mut Ctx<'_>, _args: Args) -> Result<(), CliError> {
    let (_, client) = ctx.client()?;
    let defaults = Defaults {
        agent: ctx.env.agent.clone(),
        user: ctx.env.user.clone(),
    };
    mcp::serve_stdio(client, defaults).map_err(CliError::Failed)
}

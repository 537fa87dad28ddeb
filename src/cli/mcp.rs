//! `switchyard mcp`: the MCP server for coding agents, on stdin/stdout. The tools live
//! in `crate::mcp`; this only finds the repository and hands over. With `--http-config`
//! it prints what an MCP client needs to reach the daemon's own HTTP endpoint instead
//! (`[mcp] listen`).

use super::{CliError, Ctx};
use crate::mcp::{self, Defaults};

/// Serve MCP (the Model Context Protocol) on stdin/stdout for this repository, for a
/// coding agent: tools to list, add, claim, submit, wait for and review tasks, as a
/// client of the running daemon (`switchyard daemon`). An MCP client starts it, e.g.
/// `claude mcp add switchyard -- switchyard mcp`. The agent's name is a tool's `agent`
/// argument, else SWITCHYARD_AGENT, else the MCP client's name, else your user name;
/// with a daemon elsewhere (--daemon, SWITCHYARD_DAEMON), the token's name.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print an MCP client config (JSON) for the daemon's streamable HTTP endpoint
    /// (`[mcp] listen`), with its URL and bearer token, instead of serving on stdio. The
    /// token is a secret: it lets anyone act as any agent here.
    #[arg(long)]
    http_config: bool,
    /// With --http-config: the agent name the client sends (the X-Switchyard-Agent
    /// header), used when a tool call passes no `agent`.
    #[arg(long, requires = "http_config")]
    agent: Option<String>,
}

pub fn run(ctx: &mut Ctx<'_>, args: Args) -> Result<(), CliError> {
    if args.http_config {
        return http_config(ctx, args.agent);
    }
    let (_, client) = ctx.client()?;
    let defaults = Defaults {
        agent: ctx.env.agent.clone(),
        user: ctx.env.user.clone(),
        client_name: true,
        token_names: client.is_remote(),
    };
    mcp::serve_stdio(client, defaults).map_err(CliError::Failed)
}

fn http_config(ctx: &mut Ctx<'_>, agent: Option<String>) -> Result<(), CliError> {
    let repo = ctx.locate()?;
    let (loaded, display) = ctx.load_config(&repo)?;
    let Some(listen) = loaded.config.mcp_listen else {
        return Err(CliError::Usage(format!(
            "{display} has no [mcp] listen: add e.g. `[mcp]` with `listen = \"127.0.0.1:8791\"` and restart the daemon"
        )));
    };
    let agent = agent
        .map(|a| {
            crate::model::normalize_name(&a)
                .map_err(|why| CliError::Usage(format!("--agent {a:?} {why}")))
        })
        .transpose()?;
    let dir = crate::client::state_dir(&repo.common_dir);
    crate::daemon::prepare_state_dir(&dir).map_err(|e| CliError::Failed(e.to_string()))?;
    let token = mcp::token(&dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot read or make {}: {e}",
            mcp::token_path(&dir).display()
        ))
    })?;
    let mut headers = serde_json::Map::new();
    headers.insert("Authorization".into(), format!("Bearer {token}").into());
    if let Some(agent) = agent {
        headers.insert("X-Switchyard-Agent".into(), agent.into());
    }
    let config = serde_json::json!({
        "mcpServers": {
            "switchyard": {
                "type": "http",
                "url": format!("http://{listen}{}", mcp::HTTP_PATH),
                "headers": headers,
            }
        }
    });
    ctx.print_json(&config)
}

//! `switchyard dashboard`: where the daemon serves the dashboard, from the config.

use serde::Serialize;

use super::{CliError, Ctx};

/// Print the address of the dashboard (the queue's web page and /metrics) that the
/// daemon serves while it runs, as `[dashboard] listen` in switchyard.toml sets it.
/// Starts nothing: start the daemon (`switchyard daemon`) to serve it. With
/// `[dashboard] token_env`, the page asks for that variable's token.
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct Where<'a> {
    url: String,
    listen: String,
    token_env: Option<&'a str>,
}

pub fn run(ctx: &mut Ctx<'_>, _args: Args) -> Result<(), CliError> {
    let repo = ctx.locate()?;
    let (loaded, display) = ctx.load_config(&repo)?;
    let Some(dashboard) = &loaded.config.dashboard else {
        return Err(CliError::Failed(format!(
            "the dashboard is off: add `[dashboard]` with `listen = \"127.0.0.1:8790\"` to {display}, then start the daemon"
        )));
    };
    let place = Where {
        url: dashboard.url(),
        listen: dashboard.listen.to_string(),
        token_env: dashboard.token_env.as_deref(),
    };
    if ctx.json {
        return ctx.print_json(&place);
    }
    writeln!(ctx.out, "{}", place.url).map_err(CliError::output)?;
    if let Some(name) = place.token_env {
        writeln!(ctx.err, "sign in with the token in ${name}").map_err(CliError::output)?;
    }
    Ok(())
}

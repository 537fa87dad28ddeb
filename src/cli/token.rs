//! `switchyard token add|list|revoke`: the tokens of the networked API, in the file
//! `[api] tokens` names. They edit the file directly (no daemon needed); a running
//! daemon sees each change with its next request.

use clap::Subcommand;
use serde::Serialize;

use super::{CliError, Ctx};
use crate::auth::file::{self, UpdateError};
use crate::auth::{Entry, Role, Token, roles_or_default, token_name};

/// Manage the tokens clients present to the daemon's TCP listener ([api] listen), in
/// the file [api] tokens names. Each token belongs to one name, which the daemon
/// records for whatever the token does, and has roles: executor (claim, heartbeat,
/// release, submit), reviewer (review next, approve, changes), planner (task add,
/// plan), admin (everything, with approve, reject, cancel, pause, resume). Every token
/// may read.
#[derive(Debug, Subcommand)]
pub enum Command {
    Add(AddArgs),
    List(ListArgs),
    Revoke(RevokeArgs),
}

/// Make a token for NAME and print it, once: only its SHA-256 is kept, so it cannot be
/// shown again (revoke it and add another if it is lost). Give it to the client as
/// SWITCHYARD_TOKEN.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Who the token belongs to: the agent's or person's name the daemon records
    /// (a-z, 0-9, '.', '_', '-', '@').
    name: String,
    /// A role: executor, reviewer, planner or admin (repeat for several; default:
    /// executor).
    #[arg(long = "role", value_name = "ROLE", value_parser = parse_role)]
    roles: Vec<Role>,
}

/// The names that have a token, with their roles (never the hashes).
#[derive(Debug, clap::Args)]
pub struct ListArgs {}

/// Take NAME's token away: the daemon refuses it from its next request on.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    name: String,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[derive(Serialize)]
struct Added<'a> {
    name: &'a str,
    token: &'a str,
    roles: Vec<&'static str>,
}

#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    roles: Vec<&'static str>,
}

#[derive(Serialize)]
struct Revoked<'a> {
    name: &'a str,
    revoked: bool,
}

pub fn run(ctx: &mut Ctx<'_>, cmd: Command) -> Result<(), CliError> {
    let repo = ctx.locate()?;
    let (loaded, shown) = ctx.load_config(&repo)?;
    let path = loaded.config.api.tokens.ok_or_else(|| {
        CliError::Usage(format!(
            "{shown} names no tokens file: set `tokens = \"PATH\"` under [api] (a path outside \
             the repository)"
        ))
    })?;
    let failed = |e: UpdateError| CliError::Failed(e.to_string());
    match cmd {
        Command::Add(args) => {
            let name = token_name(&args.name).map_err(CliError::Usage)?;
            let roles = roles_or_default(args.roles);
            let token = Token::generate().map_err(CliError::Failed)?;
            let entry = Entry {
                name: name.clone(),
                hash: token.hash(),
                roles: roles.clone(),
            };
            file::update(&path, |tokens| tokens.add(entry)).map_err(failed)?;
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            if ctx.json {
                return ctx.print_json(&Added {
                    name: &name,
                    token: token.expose(),
                    roles,
                });
            }
            // The token alone on stdout, for `TOKEN=$(switchyard token add ...)`.
            writeln!(ctx.out, "{}", token.expose()).map_err(CliError::output)?;
            writeln!(
                ctx.err,
                "a token for {name} ({}), in {}: it is shown only this once; give it to the \
                 client as SWITCHYARD_TOKEN",
                roles.join(","),
                path.display()
            )
            .map_err(CliError::output)
        }
        Command::List(ListArgs {}) => {
            let tokens =
                file::read_for_listing(&path).map_err(|e| CliError::Failed(e.to_string()))?;
            if ctx.json {
                let list: Vec<Listed> = tokens
                    .entries()
                    .iter()
                    .map(|e| Listed {
                        name: &e.name,
                        roles: e.roles.iter().map(|r| r.as_str()).collect(),
                    })
                    .collect();
                return ctx.print_json(&list);
            }
            if tokens.entries().is_empty() {
                return writeln!(ctx.out, "no tokens in {}", path.display())
                    .map_err(CliError::output);
            }
            let width = tokens
                .entries()
                .iter()
                .map(|e| e.name.len())
                .max()
                .unwrap_or(0);
            let mut text = String::new();
            for e in tokens.entries() {
                text.push_str(&format!("{:<width$}  {}\n", e.name, e.roles_text()));
            }
            write!(ctx.out, "{text}").map_err(CliError::output)
        }
        Command::Revoke(args) => {
            let name = token_name(&args.name).map_err(CliError::Usage)?;
            let revoked = file::update(&path, |tokens| match tokens.revoke(&name) {
                true => Ok(true),
                false => Err(format!("{name} has no token in {}", path.display())),
            })
            .map_err(failed)?;
            if ctx.json {
                return ctx.print_json(&Revoked {
                    name: &name,
                    revoked,
                });
            }
            writeln!(
                ctx.out,
                "revoked the token of {name}: the daemon refuses it from its next request"
            )
            .map_err(CliError::output)
        }
    }
}

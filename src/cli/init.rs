//! `switchyard init`: writes a commented config for this repository.

use std::path::Path;

use serde::Serialize;

use super::{CliError, Ctx};
use crate::config::scaffold::{Layout, scaffold};
use crate::config::{self, Context};
use crate::git;
use crate::ownership::codeowners;

/// Write a commented switchyard.toml for this repository: subsystems translated from
/// CODEOWNERS when it has one (.github/CODEOWNERS, CODEOWNERS or docs/CODEOWNERS, the
/// first found, as GitHub does), else one per top-level directory. Never overwrites an
/// existing config without --force.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overwrite an existing config.
    #[arg(long)]
    force: bool,
}

#[derive(Serialize)]
struct Written<'a> {
    config: String,
    source: &'a str,
    subsystems: Vec<&'a str>,
    warnings: &'a [String],
}

pub fn run(ctx: &mut Ctx<'_>, args: Args) -> Result<(), CliError> {
    let repo = ctx.locate()?;
    let (path, display) = ctx.config_path(&repo);
    if path.exists() && !args.force {
        return Err(CliError::Failed(format!(
            "{display} already exists; pass --force to overwrite it"
        )));
    }
    // The main checkout's files and CODEOWNERS, wherever init is run from.
    let tracked = git::tracked_files(&repo.main_root)?;
    let base = git::current_branch(&repo.main_root)?.unwrap_or_else(|| "main".to_owned());
    let found = codeowners::LOCATIONS
        .iter()
        .find(|p| repo.main_root.join(p).is_file());
    let codeowners_text = match found {
        Some(p) => Some(
            std::fs::read_to_string(repo.main_root.join(p))
                .map_err(|e| CliError::Failed(format!("cannot read {p}: {e}")))?,
        ),
        None => None,
    };
    let layout = Layout {
        base: &base,
        tracked: &tracked.files,
        codeowners: found.zip(codeowners_text.as_deref()).map(|(p, t)| (*p, t)),
    };
    let scaffold = scaffold(&layout).map_err(|e| CliError::Bug(e.to_string()))?;

    // What init writes must pass `check`; validate before touching the disk.
    let load_ctx = Context {
        repo_root: Some(repo.main_root.clone()),
        ..Default::default()
    };
    let loaded = config::parse(&scaffold.text, &display, &load_ctx).map_err(|e| match e {
        config::LoadError::Invalid(d) => CliError::Bug(format!(
            "the generated config is invalid: {}",
            d.first().map(|d| d.to_string()).unwrap_or_default()
        )),
        e => CliError::Bug(e.to_string()),
    })?;
    write_atomically(&path, &scaffold.text)
        .map_err(|e| CliError::Failed(format!("cannot write {display}: {e}")))?;

    let source = if found.is_some() {
        "codeowners"
    } else {
        "layout"
    };
    let names: Vec<&str> = loaded
        .config
        .subsystems
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    if ctx.json {
        return ctx.print_json(&Written {
            config: path.display().to_string(),
            source,
            subsystems: names,
            warnings: &scaffold.notes,
        });
    }
    for note in &scaffold.notes {
        writeln!(ctx.err, "warning: {note}").map_err(CliError::output)?;
    }
    let from = match found {
        Some(p) => format!("translated from {p}"),
        None => "one per top-level directory".to_owned(),
    };
    writeln!(
        ctx.out,
        "wrote {display}: {} subsystem(s), {from}\nnext: review it, then `switchyard check` and `switchyard owners --all`",
        names.len()
    )
    .map_err(CliError::output)
}

/// Write to a temporary file beside the target, then rename: a crash never leaves a
/// half-written config.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

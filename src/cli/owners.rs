//! `switchyard owners`: which subsystem owns each path, and by which rule.

use std::ffi::OsString;
use std::path::Path;

use serde::Serialize;

use super::{CliError, Ctx};
use crate::config::normalize;
use crate::git::{self, RepoLocation};
use crate::ownership::Rule;

/// Show which subsystem owns each path and the rule that decided it. Paths are relative
/// to the current directory (as with git) when it is inside the repository, else to the
/// repository root; they need not exist.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Paths to resolve.
    #[arg(
        value_name = "PATH",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    paths: Vec<OsString>,
    /// Every file tracked at HEAD, with per-subsystem counts and the unowned files.
    #[arg(long)]
    all: bool,
}

#[derive(Serialize)]
struct Owned<'a> {
    path: &'a str,
    subsystem: Option<&'a str>,
    rule: Option<&'a Rule>,
}

#[derive(Serialize)]
struct Count<'a> {
    name: &'a str,
    files: usize,
}

#[derive(Serialize)]
struct All<'a> {
    files: Vec<Owned<'a>>,
    subsystems: Vec<Count<'a>>,
    unowned: Vec<&'a str>,
}

pub fn run(ctx: &mut Ctx<'_>, args: Args) -> Result<(), CliError> {
    let repo = ctx.locate()?;
    // Check every argument before loading anything: bad input changes nothing and
    // reports one clear line.
    let paths: Vec<String> = args
        .paths
        .iter()
        .map(|p| repo_path(&repo, &ctx.env.cwd, p))
        .collect::<Result<_, _>>()?;
    let (loaded, _) = ctx.load_config(&repo)?;
    let config = loaded.config;
    if !args.all {
        let mut resolver = config.ownership.resolver();
        let rows: Vec<Owned<'_>> = paths.iter().map(|p| owned(p, resolver.owner(p))).collect();
        return if ctx.json {
            ctx.print_json(&rows)
        } else {
            print_rows(ctx, &rows)
        };
    }

    let tracked = git::tracked_files(&repo.checkout_root)?;
    let coverage = config.ownership.coverage(&tracked.files);
    let files: Vec<Owned<'_>> = coverage.paths.iter().map(|(p, r)| owned(p, *r)).collect();
    let subsystems: Vec<Count<'_>> = config
        .subsystems
        .iter()
        .map(|s| Count {
            name: s.name.as_str(),
            files: coverage.counts.get(&s.name).copied().unwrap_or(0),
        })
        .collect();
    let unowned: Vec<&str> = coverage.unowned().collect();
    if ctx.json {
        return ctx.print_json(&All {
            files,
            subsystems,
            unowned,
        });
    }
    print_rows(ctx, &files)?;
    let w = &mut *ctx.out;
    let width = subsystems
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let io = CliError::output;
    writeln!(w).map_err(io)?;
    for s in &subsystems {
        writeln!(w, "{:width$}  {} file(s)", s.name, s.files).map_err(io)?;
    }
    writeln!(w, "{:width$}  {} file(s)", "unowned", unowned.len()).map_err(io)?;
    for path in &unowned {
        writeln!(w, "  {path}").map_err(io)?;
    }
    Ok(())
}

fn owned<'a>(path: &'a str, rule: Option<&'a Rule>) -> Owned<'a> {
    Owned {
        path,
        subsystem: rule.map(|r| r.subsystem.as_str()),
        rule,
    }
}

fn print_rows(ctx: &mut Ctx<'_>, rows: &[Owned<'_>]) -> Result<(), CliError> {
    let path_width = rows.iter().map(|r| r.path.len()).max().unwrap_or(0);
    let sub_width = rows
        .iter()
        .map(|r| r.subsystem.map_or(7, str::len))
        .max()
        .unwrap_or(0);
    for row in rows {
        let line = match row.rule {
            Some(rule) => format!(
                "{:path_width$}  {:sub_width$}  {} ({})",
                row.path,
                rule.subsystem.as_str(),
                rule.pattern.written(),
                rule.origin.file_line()
            ),
            None => format!("{:path_width$}  unowned", row.path),
        };
        writeln!(ctx.out, "{}", line.trim_end()).map_err(CliError::output)?;
    }
    Ok(())
}

/// A path argument as git stores it: relative to the root, `/`-separated, normalized.
/// Refuses what is not inside the repository or not UTF-8.
fn repo_path(repo: &RepoLocation, cwd: &Path, arg: &OsString) -> Result<String, CliError> {
    let Some(text) = arg.to_str() else {
        return Err(CliError::Usage(format!(
            "path {:?} is not valid UTF-8; git paths that switchyard matches must be",
            arg.to_string_lossy()
        )));
    };
    if text.is_empty() {
        return Err(CliError::Usage("empty path".into()));
    }
    let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_owned());
    let arg_path = Path::new(text);
    // The checkout the path is read against: the one holding the current directory when
    // there is one (a task's worktree is a checkout too), else the main one.
    let (absolute, root) = if arg_path.is_absolute() {
        let abs = normalize(arg_path);
        let root = [&repo.checkout_root, &repo.main_root]
            .into_iter()
            .find(|r| abs.starts_with(r))
            .cloned()
            .unwrap_or_else(|| repo.main_root.clone());
        (abs, root)
    } else if cwd.starts_with(&repo.checkout_root) {
        (normalize(&cwd.join(arg_path)), repo.checkout_root.clone())
    } else {
        (
            normalize(&repo.main_root.join(arg_path)),
            repo.main_root.clone(),
        )
    };
    let outside = || {
        CliError::Usage(format!(
            "path {text:?} is outside the repository ({})",
            root.display()
        ))
    };
    let relative = absolute.strip_prefix(&root).map_err(|_| outside())?;
    if relative.as_os_str().is_empty() {
        return Err(CliError::Usage(format!(
            "path {text:?} is the repository root, not a path inside it"
        )));
    }
    let parts: Vec<&str> = relative
        .components()
        .map(|c| c.as_os_str().to_str().expect("from a str"))
        .collect();
    Ok(parts.join("/"))
}

//! `switchyard owners`: which subsystem owns each path, and by which rule.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CliError, Ctx};
use crate::config::normalize;
use crate::git::{self, RepoLocation};
use crate::ownership::Rule;

/// Show which subsystem owns each path and the rule that decided it. Paths are relative
/// to the current directory (as with git) when it is inside the repository, else to the
/// repository root; they need not exist. A directory stands for the tracked files under
/// it.
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
    let targets: Vec<(String, bool)> = args
        .paths
        .iter()
        .map(|p| repo_path(&repo, &ctx.env.cwd, p))
        .collect::<Result<_, _>>()?;
    let (loaded, _) = ctx.load_config(&repo)?;
    let config = loaded.config;
    if !args.all {
        // A directory stands for the tracked files under it, as it does for git.
        let tracked = if targets.iter().any(|(_, dir)| *dir) {
            git::tracked_files(&repo.checkout_root)?.files
        } else {
            Vec::new()
        };
        let mut paths = Vec::new();
        for (path, is_dir) in targets {
            let prefix = format!("{path}/");
            let inside: Vec<String> = tracked
                .iter()
                .filter(|f| f.starts_with(&prefix))
                .cloned()
                .collect();
            if is_dir && !inside.is_empty() {
                paths.extend(inside);
            } else {
                paths.push(path);
            }
        }
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

/// A path argument as git stores it: relative to the root, `/`-separated, normalized,
/// and whether it names a directory. Symlinks on the way are resolved, so a path that
/// leads outside the repository through one is refused like any other outside path.
fn repo_path(repo: &RepoLocation, cwd: &Path, arg: &OsString) -> Result<(String, bool), CliError> {
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
    let absolute = if arg_path.is_absolute() {
        arg_path.to_owned()
    } else if cwd.starts_with(&repo.checkout_root) {
        cwd.join(arg_path)
    } else {
        repo.main_root.join(arg_path)
    };
    let resolved = resolve_existing(&normalize(&absolute));
    // The checkout the path is in: a task's worktree is a checkout too.
    let root = [&repo.checkout_root, &repo.main_root]
        .into_iter()
        .find(|r| resolved.starts_with(r))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "path {text:?} is outside the repository ({})",
                repo.main_root.display()
            ))
        })?;
    let relative = resolved.strip_prefix(root).expect("checked above");
    if relative.as_os_str().is_empty() {
        return Err(CliError::Usage(format!(
            "path {text:?} is the repository root, not a path inside it"
        )));
    }
    let parts: Vec<&str> = relative
        .components()
        .map(|c| c.as_os_str().to_str().unwrap_or_default())
        .collect();
    let is_dir = text.ends_with('/') || resolved.is_dir();
    Ok((parts.join("/"), is_dir))
}

/// The path with its longest existing ancestor canonicalized (symlinks resolved); the
/// rest, which does not exist, is kept as written.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return normalize(&out);
        }
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_owned();
            }
            _ => return path.to_owned(),
        }
    }
}

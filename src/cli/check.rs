//! `switchyard check`: validates the config against the repository.

use serde::Serialize;

use super::{CliError, Ctx, Exit};
use crate::config::{self, Context, LoadError};
use crate::diagnostic::Diagnostic;
use crate::git;
use crate::ownership::{Ownership, Shape};

/// Validate the config: every problem as FILE:LINE:COL: message, all at once. Warnings
/// (rules that can never win or match nothing, files no subsystem owns) do not fail it.
/// Exits 2 when there are errors.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// How many unowned files a warning names.
const EXAMPLES: usize = 5;

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    config: &'a str,
    errors: &'a [Diagnostic],
    warnings: &'a [Diagnostic],
}

pub fn run(ctx: &mut Ctx<'_>, _args: Args) -> Result<(), CliError> {
    let repo = ctx.locate()?;
    let (path, display) = ctx.config_path(&repo);
    let load_ctx = Context {
        repo_root: Some(repo.main_root.clone()),
        ..Default::default()
    };
    let (errors, warnings, summary) = match config::load(&path, &display, &load_ctx) {
        Ok(loaded) => {
            let tracked = git::tracked_files(&repo.checkout_root)?;
            let mut warnings = loaded.warnings;
            warnings.extend(repository_warnings(
                &loaded.config.ownership,
                &tracked,
                &display,
            ));
            let c = &loaded.config;
            let summary = format!(
                "{display}: ok: {} subsystem(s), {} rule(s), {} tracked file(s)",
                c.subsystems.len(),
                c.ownership.rules().len(),
                tracked.files.len()
            );
            (Vec::new(), warnings, summary)
        }
        Err(LoadError::Invalid(errors)) => {
            let summary = format!("{display}: {} error(s)", errors.len());
            (errors, Vec::new(), summary)
        }
        Err(e) => {
            let message = e.to_string();
            let summary = format!("{display}: {message}");
            (vec![Diagnostic::error(None, message)], Vec::new(), summary)
        }
    };
    let ok = errors.is_empty();
    if ctx.json {
        ctx.print_json(&Report {
            ok,
            config: &display,
            errors: &errors,
            warnings: &warnings,
        })?;
    } else {
        for d in errors.iter().chain(&warnings) {
            writeln!(ctx.err, "{d}").map_err(CliError::output)?;
        }
        writeln!(ctx.out, "{summary}").map_err(CliError::output)?;
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::Reported(Exit::Usage))
    }
}

/// What only the repository's files can show: rules that match nothing, unowned files.
fn repository_warnings(own: &Ownership, tracked: &git::Tracked, display: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let coverage = own.coverage(&tracked.files);
    for rule in &coverage.unmatched_rules {
        let written = rule.pattern.written();
        let names_a_directory = *rule.pattern.shape() == Shape::Exact
            && tracked.files.iter().any(|f| {
                f.strip_prefix(rule.pattern.glob())
                    .is_some_and(|r| r.starts_with('/'))
            });
        let hint = if names_a_directory {
            format!(
                "; it names a directory: did you mean {:?} (the directory and everything under it)?",
                format!("{written}/")
            )
        } else {
            String::new()
        };
        out.push(Diagnostic::warning(
            Some(rule.origin.clone()),
            format!(
                "rule {written:?} of subsystem {} matches no tracked file{hint}",
                rule.subsystem
            ),
        ));
    }
    let unowned: Vec<&str> = coverage.unowned().collect();
    if !unowned.is_empty() {
        let examples: Vec<&str> = unowned.iter().take(EXAMPLES).copied().collect();
        let more = if unowned.len() > EXAMPLES {
            ", ..."
        } else {
            ""
        };
        out.push(Diagnostic::warning(
            None,
            format!(
                "{display}: {} of {} tracked file(s) are owned by no subsystem: {}{more}",
                unowned.len(),
                tracked.files.len(),
                examples.join(", ")
            ),
        ));
    }
    if !tracked.non_utf8.is_empty() {
        out.push(Diagnostic::warning(
            None,
            format!(
                "{display}: {} tracked path(s) are not valid UTF-8 and may not match rules as written: {}",
                tracked.non_utf8.len(),
                tracked.non_utf8.iter().take(EXAMPLES).cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    out
}

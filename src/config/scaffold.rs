//! The commented `switchyard.toml` that `switchyard init` writes: subsystems translated
//! from CODEOWNERS when the repository has one, guessed from the top-level directories
//! otherwise. Pure: it is handed the repository's facts and returns text.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::validate::{DEFAULT_POOL, DEFAULT_SETUP_TIMEOUT, DEFAULT_VERIFY_TIMEOUT};
use crate::model::SubsystemName;
use crate::ownership::codeowners::{self, TranslationError};
use crate::ownership::escape;

/// What `init` knows about the repository.
pub struct Layout<'a> {
    /// The branch checked out now: the natural base.
    pub base: &'a str,
    /// Tracked files at HEAD, as git stores them.
    pub tracked: &'a [String],
    /// The CODEOWNERS file GitHub would use: its path and text.
    pub codeowners: Option<(&'a str, &'a str)>,
}

pub struct Scaffold {
    pub text: String,
    /// Things the user should know (skipped CODEOWNERS lines), one line each.
    pub notes: Vec<String>,
}

const MAX_PARALLEL: u32 = 2;

pub fn scaffold(layout: &Layout<'_>) -> Result<Scaffold, TranslationError> {
    let mut text = String::new();
    let mut notes = Vec::new();
    let origin = match layout.codeowners {
        Some((path, _)) => format!("translated from {path}"),
        None => "guessed from the top-level directories".to_owned(),
    };
    header(&mut text, layout, &origin);
    match layout.codeowners {
        Some((path, source)) => {
            let (lines, skipped) = codeowners::parse(source);
            for s in &skipped {
                notes.push(format!("{path}:{}: {}", s.number, s.reason));
            }
            let subsystems = codeowners::translate(&lines, layout.tracked)?;
            for s in &skipped {
                let _ = writeln!(
                    text,
                    "# skipped {path}:{}: {}",
                    s.number,
                    comment(&s.reason)
                );
            }
            for s in subsystems {
                let owners = comment(&s.owners.join(" "));
                let _ = writeln!(text, "\n[[subsystem]]\n# owners: {owners}");
                let _ = writeln!(text, "name = {}", quote(s.name.as_str()));
                text.push_str("paths = [\n");
                for rule in &s.rules {
                    let _ = write!(text, "  # {path}:{}  {}", rule.line, comment(&rule.pattern));
                    if rule.expanded {
                        text.push_str(
                            "  (expanded to the files it owns: later lines carve parts of it out)",
                        );
                    }
                    text.push('\n');
                    for glob in &rule.globs {
                        let _ = writeln!(text, "  {},", quote(glob));
                    }
                }
                text.push_str("]\n");
                let _ = writeln!(text, "max_parallel = {MAX_PARALLEL}");
            }
        }
        None => guess_from_layout(&mut text, layout.tracked),
    }
    Ok(Scaffold { text, notes })
}

fn header(text: &mut String, layout: &Layout<'_>, origin: &str) {
    let suggestion = verify_suggestion(layout.tracked);
    let _ = write!(
        text,
        r#"# switchyard.toml: written by `switchyard init`; subsystems {origin}.
# Check it with `switchyard check`, and see which rule owns a path with `switchyard owners PATH`.

# The branch the merge queue integrates into.
base = {base}

# Where to fetch from and push the new base to. Leave it out to keep everything local.
# remote = "origin"

[queue]
# Commands run for every change, in the integration worktree at the rebased commit.
verify = []{suggestion}
# Time limit per command; on expiry its whole process group is killed.
verify_timeout = "{timeout}"

[worktrees]
# Where task worktrees live, outside this checkout. Default: "../<repo>.worktrees".
# root = "../repo.worktrees"
# Ready worktrees kept for instant claims.
pool = {pool}
# Files copied from this checkout into every new worktree.
# copy = [".env"]
# A command run once in every new worktree, and its time limit.
# setup = "npm ci"
# setup_timeout = "{setup_timeout}"

# Subsystems. Every path belongs to at most one: the subsystem of the LAST rule that
# matches it. `*` stays within one directory, `**` crosses them, `dir/` is the directory
# and everything under it. Per subsystem: `max_parallel` caps its claimed tasks,
# `verify` adds commands, `approval = "required"` makes a person approve its changes,
# `depends_on` verifies changes there with this subsystem's commands too.
"#,
        base = quote(layout.base),
        timeout = minutes(DEFAULT_VERIFY_TIMEOUT),
        pool = DEFAULT_POOL,
        setup_timeout = minutes(DEFAULT_SETUP_TIMEOUT),
    );
}

fn minutes(d: std::time::Duration) -> String {
    format!("{}m", d.as_secs() / 60)
}

/// A commented hint for the verify command, from the build files at the root.
fn verify_suggestion(tracked: &[String]) -> &'static str {
    let has = |f: &str| tracked.iter().any(|t| t == f);
    if has("Cargo.toml") {
        "  # for example: [\"cargo test\"]"
    } else if has("package.json") {
        "  # for example: [\"npm test\"]"
    } else if has("go.mod") {
        "  # for example: [\"go test ./...\"]"
    } else if has("Makefile") {
        "  # for example: [\"make test\"]"
    } else {
        ""
    }
}

/// One subsystem per top-level directory, plus `root` for files at the top.
fn guess_from_layout(text: &mut String, tracked: &[String]) {
    let dirs: BTreeSet<&str> = tracked
        .iter()
        .filter_map(|p| p.split_once('/').map(|(d, _)| d))
        .collect();
    let has_root_files = tracked.iter().any(|p| !p.contains('/'));
    let mut taken = BTreeSet::new();
    if has_root_files {
        let name = SubsystemName::unique("root", "root", &mut taken);
        let _ = write!(
            text,
            "\n[[subsystem]]\n# Files at the top of the repository.\nname = {}\npaths = [\"*\"]\nmax_parallel = {MAX_PARALLEL}\n",
            quote(name.as_str())
        );
    }
    for dir in dirs {
        let name = SubsystemName::unique(dir, "dir", &mut taken);
        let _ = write!(
            text,
            "\n[[subsystem]]\nname = {}\npaths = [{}]\nmax_parallel = {MAX_PARALLEL}\n",
            quote(name.as_str()),
            quote(&format!("{}/", escape(dir)))
        );
        if dir == ".github" {
            text.push_str("# CI and repository settings: a person approves every change here.\napproval = \"required\"\n");
        }
    }
    if tracked.is_empty() {
        text.push_str(
            "\n# No tracked files yet. A subsystem looks like this:\n# [[subsystem]]\n# name = \"app\"\n# paths = [\"src/\"]\n# max_parallel = 2\n",
        );
    }
}

/// `text` made fit for a TOML comment, which may hold no control character but tab:
/// those are written as escapes (`\u{18}`). CODEOWNERS patterns and owners are copied
/// into comments, and nothing stops them holding such characters.
fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A TOML string literal for `s`.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Context, parse};

    /// Found by fuzzing (fuzz/fuzz_targets/codeowners.rs): a control character in a
    /// CODEOWNERS pattern or owner was copied into a comment, and the config `init`
    /// wrote was not valid TOML.
    #[test]
    fn control_characters_from_codeowners_stay_out_of_comments() {
        let tracked = vec!["a\u{18}b".to_owned(), "src/x\u{7f}.rs".to_owned()];
        let layout = Layout {
            base: "main",
            tracked: &tracked,
            codeowners: Some((
                "CODEOWNERS",
                "\u{18} @o\n/a\u{18}b @o\u{1}wner\nsrc/x\u{7f}.rs @r\n",
            )),
        };
        let written = scaffold(&layout).expect("translates");
        let loaded = parse(&written.text, "switchyard.toml", &Context::default())
            .unwrap_or_else(|e| panic!("{e:?}\n{}", written.text));
        assert_eq!(loaded.config.subsystems.len(), 3);
        assert!(
            written.text.contains("# owners: @o\\u{1}wner"),
            "{}",
            written.text
        );
        let owner = |p: &str| {
            loaded
                .config
                .ownership
                .owner(p)
                .map(|r| r.subsystem.to_string())
        };
        assert_eq!(owner("a\u{18}b"), Some("o-wner".to_owned()));
        assert_eq!(owner("src/x\u{7f}.rs"), Some("r".to_owned()));
    }
}

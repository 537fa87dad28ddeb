//! CODEOWNERS: parse arbitrary text and translate it into subsystems for a small list
//! of tracked files, then write the config `switchyard init` would write and load it.
//!
//! Input: the CODEOWNERS text, then optionally a NUL byte and up to 16 tracked paths,
//! one per line (without the NUL, a fixed list is used). Paths git could not track
//! (empty, `.`/`..`/empty components, a file that is also a directory) are dropped.
//!
//! Invariants beyond "no panic": every usable line compiles to valid patterns; the
//! translation succeeds (`init` reports a failure as a bug); the scaffolded config
//! passes validation; and for every tracked file the owners of the subsystem that the
//! config gives it are exactly GitHub's owners for it.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use switchyard::config::scaffold::{Layout, scaffold};
use switchyard::config::{self, Context};
use switchyard::ownership::Pattern;
use switchyard::ownership::codeowners;

const DEFAULT_PATHS: &[&str] = &[
    "README.md",
    "docs/guide.md",
    "src/main.rs",
    "src/auth/login.rs",
    "apps/web/app.js",
    "build/logs/out.log",
];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return; // `init` reads CODEOWNERS as UTF-8 and fails otherwise.
    };
    let (text, paths) = match input.split_once('\0') {
        Some((text, paths)) => (text, paths.split('\n').take(16).collect()),
        None => (input, DEFAULT_PATHS.to_vec()),
    };
    let tracked = trackable(paths);

    let (lines, skipped) = codeowners::parse(text);
    let count = text.lines().count();
    let mut numbers: Vec<usize> = lines.iter().map(|l| l.number).collect();
    numbers.extend(skipped.iter().map(|s| s.number));
    numbers.sort_unstable();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "a line reported twice"
    );
    assert!(numbers.iter().all(|&n| n >= 1 && n <= count));
    for line in &lines {
        assert!(
            line.owners.windows(2).all(|w| w[0] < w[1]),
            "owners not sorted: {line:?}"
        );
        assert!(!line.globs.is_empty());
        for glob in &line.globs {
            Pattern::parse(glob).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        }
    }

    // GitHub's answer for each tracked file: the owners of the last matching line.
    let github: Vec<Option<&[String]>> = codeowners::deciding_lines(&lines, &tracked)
        .into_iter()
        .map(|l| {
            l.map(|l| lines[l].owners.as_slice())
                .filter(|o| !o.is_empty())
        })
        .collect();

    let subsystems = codeowners::translate(&lines, &tracked)
        .unwrap_or_else(|e| panic!("translation failed: {e}"));
    let owners_of: HashMap<&str, &[String]> = subsystems
        .iter()
        .map(|s| (s.name.as_str(), s.owners.as_slice()))
        .collect();

    let layout = Layout {
        base: "main",
        tracked: &tracked,
        codeowners: Some(("CODEOWNERS", text)),
    };
    let written = scaffold(&layout).unwrap_or_else(|e| panic!("scaffold failed: {e}"));
    let ctx = Context {
        repo_root: Some("/work/repo".into()),
        ..Context::default()
    };
    let loaded = match config::parse(&written.text, "switchyard.toml", &ctx) {
        Ok(loaded) => loaded,
        Err(config::LoadError::Invalid(errors)) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!(
                "the generated config is invalid: {errors:#?}\n{}",
                written.text
            )
        }
        Err(e) => panic!("{e}"),
    };
    for (path, want) in tracked.iter().zip(&github) {
        let ours = loaded
            .config
            .ownership
            .owner(path)
            .map(|rule| owners_of[rule.subsystem.as_str()]);
        assert_eq!(&ours, want, "owners of {path:?} in the generated config");
    }
});

/// The paths git could track: sorted, unique, well-formed, no file also a directory.
fn trackable(paths: Vec<&str>) -> Vec<String> {
    let mut out: Vec<String> = paths
        .into_iter()
        .filter(|p| {
            !p.is_empty()
                && p.split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
        })
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    let files = out.clone();
    out.retain(|p| {
        !files.iter().any(|f| {
            f.len() > p.len() && f.starts_with(p.as_str()) && f.as_bytes()[p.len()] == b'/'
        })
    });
    out
}

//! `switchyard.toml`: parse and validate arbitrary text, as `switchyard check` does.
//!
//! Invariants beyond "no panic": every error carries a location inside the text; the
//! same text validated with a repository root set (which only adds the `[worktrees]
//! root` check) gives a superset of the errors, and the same config and warnings when
//! both succeed; and in a valid config the ownership index agrees with the reference
//! semantics (the last rule whose glob matches) on paths made from the rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::{self, Context, LoadError, Loaded};
use switchyard::diagnostic::Diagnostic;

const FILE: &str = "switchyard.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `config::load` refuses non-UTF-8 before parsing.
    };
    let plain = config::parse(text, FILE, &Context::default());
    check_located(text, &plain);
    let rooted_ctx = Context {
        repo_root: Some("/work/repo".into()),
        ..Context::default()
    };
    let rooted = config::parse(text, FILE, &rooted_ctx);
    check_located(text, &rooted);

    match (&plain, &rooted) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                summary(a),
                summary(b),
                "a repository root changed a valid config"
            );
            check_ownership(&a.config);
        }
        (Err(LoadError::Invalid(a)), Err(LoadError::Invalid(b))) => {
            let b: Vec<String> = b.iter().map(ToString::to_string).collect();
            for e in a {
                assert!(
                    b.contains(&e.to_string()),
                    "error {e} lost when a repository root is set"
                );
            }
        }
        (Ok(_), Err(LoadError::Invalid(b))) => {
            // Only the worktree root can be refused because of the repository.
            assert!(
                b.iter().all(|d| d.message.contains("`root`")),
                "a repository root added unrelated errors: {b:?}"
            );
        }
        (a, b) => panic!("inconsistent outcomes: {a:?} / {b:?}"),
    }
});

/// Every diagnostic is `FILE:LINE:COL` with the line and column inside the text.
fn check_located(text: &str, outcome: &Result<Loaded, LoadError>) {
    let lines: Vec<&str> = text.split('\n').collect();
    let check = |d: &Diagnostic, required: bool| {
        let Some(loc) = &d.location else {
            assert!(!required, "an error without a location: {d:?}");
            return;
        };
        assert_eq!(&*loc.file, FILE);
        assert!(
            loc.line >= 1 && (loc.line as usize) <= lines.len(),
            "line out of range: {d:?}"
        );
        let width = lines[loc.line as usize - 1].chars().count() + 1;
        assert!(
            loc.col >= 1 && (loc.col as usize) <= width,
            "column out of range: {d:?}"
        );
        assert!(
            d.to_string()
                .starts_with(&format!("{FILE}:{}:{}: ", loc.line, loc.col))
        );
    };
    match outcome {
        Ok(loaded) => loaded.warnings.iter().for_each(|d| check(d, false)),
        Err(LoadError::Invalid(errors)) => {
            assert!(!errors.is_empty(), "invalid with no error");
            errors.iter().for_each(|d| check(d, true));
        }
        Err(e) => panic!("parse of text failed without diagnostics: {e}"),
    }
}

/// What a valid config says, comparable (the compiled ownership index aside).
fn summary(loaded: &Loaded) -> String {
    let c = &loaded.config;
    let rules: Vec<String> = c
        .ownership
        .rules()
        .iter()
        .map(|r| format!("{} {} {}", r.subsystem, r.pattern.written(), r.origin))
        .collect();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {rules:?} {warnings:?}",
        c.base, c.remote, c.queue, c.subsystems, c.claims, c.worktrees, c.github
    )
}

/// The ownership index against the reference semantics, on paths made from the rules.
fn check_ownership(c: &config::Config) {
    let rules = c.ownership.rules();
    let mut names: Vec<&str> = c.subsystems.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate subsystem names");
    for r in rules {
        assert!(names.binary_search(&r.subsystem.as_str()).is_ok());
    }

    let mut probes: Vec<String> = ["a", "a/b", "README.md", "src/main.rs", "x/y/z.txt"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for r in rules.iter().take(16) {
        let concrete = concrete(r.pattern.glob());
        probes.push(format!("{concrete}/f"));
        probes.push(format!("d/{concrete}"));
        probes.push(concrete);
    }
    probes.retain(|p| !p.is_empty());
    probes.sort();
    probes.dedup();

    let reference = |path: &str| rules.iter().rposition(|r| r.pattern.is_match(path));
    let index_of = |rule: &switchyard::ownership::Rule| {
        rules
            .iter()
            .position(|r| std::ptr::eq(r, rule))
            .expect("a rule of this config")
    };
    let mut resolver = c.ownership.resolver();
    for path in &probes {
        let want = reference(path);
        let got = c.ownership.owner(path).map(index_of);
        assert_eq!(
            got, want,
            "owner of {path:?}: the index disagrees with the globs"
        );
        let again = resolver.owner(path).map(index_of);
        assert_eq!(
            again, want,
            "resolver for {path:?} disagrees with the globs"
        );
    }
    // A shadowed rule can never decide: the rule said to cover it matches wherever it does.
    for s in c.ownership.shadowed() {
        for path in &probes {
            if s.rule.pattern.is_match(path) {
                assert!(
                    s.by.pattern.is_match(path),
                    "{:?} is said to cover {:?}, but not for {path:?}",
                    s.by.pattern.written(),
                    s.rule.pattern.written()
                );
            }
        }
    }
}

/// A path a glob is likely to match: `**` becomes `a/b`, `*` `x`, `?` `q`, `\c` `c`,
/// and `[..]` / `{..}` their first alternative.
fn concrete(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str("a/b");
            }
            '*' => out.push('x'),
            '?' => out.push('q'),
            '\\' => out.extend(chars.next()),
            '[' => {
                let mut first = None;
                for n in chars.by_ref() {
                    if n == ']' && first.is_some() {
                        break;
                    }
                    first.get_or_insert(n);
                }
                out.extend(first.filter(|c| *c != '!' && *c != '^'));
            }
            '{' => {
                let mut taking = true;
                for n in chars.by_ref() {
                    match n {
                        '}' => break,
                        ',' => taking = false,
                        n if taking => out.push(n),
                        _ => {}
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

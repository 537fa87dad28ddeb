//! A task's scope: what it may touch. Given as subsystem names and path globs, resolved
//! when the task is created to the set of subsystems that own the matching files.
//! Pure: handed the config and the tracked files, it decides.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::model::SubsystemName;
use crate::ownership::Pattern;

/// Resolves scope entries to subsystems. An entry naming a subsystem is that subsystem;
/// any other entry is a path glob and stands for the owners of the tracked files it
/// matches. A glob that matches no tracked file, or that is invalid, is refused.
pub fn resolve(
    entries: &[String],
    config: &Config,
    tracked: &[String],
) -> Result<Vec<SubsystemName>, String> {
    let mut subsystems = BTreeSet::new();
    for entry in entries {
        if let Some(s) = config.subsystems.iter().find(|s| s.name.as_str() == entry) {
            subsystems.insert(s.name.clone());
            continue;
        }
        let pattern = Pattern::parse(entry).map_err(|e| format!("invalid scope: {e}"))?;
        let mut resolver = config.ownership.resolver();
        let mut matched = false;
        for path in tracked.iter().filter(|p| pattern.is_match(p)) {
            matched = true;
            if let Some(rule) = resolver.owner(path) {
                subsystems.insert(rule.subsystem.clone());
            }
        }
        if !matched {
            let known: Vec<&str> = config.subsystems.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "scope {entry:?} is not a subsystem ({}) and matches no tracked file on the base branch",
                if known.is_empty() {
                    "none are configured".to_owned()
                } else {
                    format!("known: {}", known.join(", "))
                }
            ));
        }
    }
    Ok(subsystems.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Context, parse};

    fn config() -> Config {
        parse(
            "[[subsystem]]\nname = \"core\"\npaths = [\"src/\"]\n[[subsystem]]\nname = \"auth\"\npaths = [\"src/auth/\"]\n",
            "t.toml",
            &Context::default(),
        )
        .unwrap()
        .config
    }

    fn files() -> Vec<String> {
        ["src/lib.rs", "src/auth/a.rs", "README.md"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn resolve_ok(entries: &[&str]) -> Vec<String> {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        resolve(&entries, &config(), &files())
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn names_and_globs() {
        assert_eq!(resolve_ok(&["auth"]), vec!["auth"]);
        assert_eq!(resolve_ok(&["src/**"]), vec!["auth", "core"]);
        assert_eq!(resolve_ok(&["src/lib.rs", "auth"]), vec!["auth", "core"]);
        // An unowned file is a valid scope that brings no subsystem.
        assert_eq!(resolve_ok(&["README.md"]), Vec::<String>::new());
    }

    #[test]
    fn refusals() {
        let c = config();
        let err = resolve(&["billing".into()], &c, &files()).unwrap_err();
        assert_eq!(
            err,
            "scope \"billing\" is not a subsystem (known: core, auth) and matches no tracked file on the base branch"
        );
        let err = resolve(&["src/[".into()], &c, &files()).unwrap_err();
        assert!(err.starts_with("invalid scope: invalid glob"), "{err}");
    }
}

//! Names and ids shared across the domain, as types rather than bare strings.

use std::fmt;

use serde::Serialize;

/// The name of a subsystem: ASCII letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit, so that it can never be mistaken for a path glob on the command line
/// and is safe inside a branch name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SubsystemName(String);

impl SubsystemName {
    pub fn new(name: &str) -> Result<SubsystemName, String> {
        let mut chars = name.chars();
        let valid_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid_first && valid_rest && name.len() <= 64 {
            Ok(SubsystemName(name.to_owned()))
        } else {
            Err(format!(
                "invalid subsystem name {name:?}: use 1 to 64 ASCII letters, digits, '-', '_' \
                 or '.', starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubsystemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `name` is acceptable to git as a branch name (`git check-ref-format --branch`).
pub fn is_valid_branch_name(name: &str) -> bool {
    let bad_char = |c: char| c.is_ascii_control() || " ~^:?*[\\".contains(c);
    !name.is_empty()
        && name != "@"
        && name != "HEAD"
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.contains(bad_char)
        && name
            .split('/')
            .all(|c| !c.starts_with('.') && !c.ends_with(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names() {
        for ok in ["main", "release/1.2", "switchyard/t1-fix-login", "a@b"] {
            assert!(is_valid_branch_name(ok), "{ok}");
        }
        for bad in [
            "", "@", "HEAD", "-x", "a..b", "a//b", "/a", "a/", "a.", "x.lock", "a/.b", "a b",
            "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a@{1}", "tab\t",
        ] {
            assert!(!is_valid_branch_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn subsystem_names() {
        for ok in ["auth", "org-team", "a.b_c", "9lives"] {
            assert!(SubsystemName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "src/**", "a b", "é", &"x".repeat(65)] {
            assert!(SubsystemName::new(bad).is_err(), "{bad}");
        }
    }
}

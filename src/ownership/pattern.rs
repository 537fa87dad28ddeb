//! One ownership pattern: what the user wrote, the globset glob it means, and its shape.
//!
//! The syntax is globset's with `literal_separator(true)` (`*` stays inside one path
//! component, `**` crosses them), plus two conveniences: a leading `/` means the root
//! (patterns are always rooted, so it is simply dropped) and a trailing `/` means "this
//! directory and everything under it" (`docs/` is `docs/**`). Paths are compared as git
//! stores them: UTF-8, `/`-separated, relative to the repository root, case-sensitive.
//!
//! The *shape* of a pattern lets [`super::index`] resolve it without running a glob
//! engine: most real rules are a directory prefix (`src/auth/**`), an exact file, a
//! file-name glob at any depth (`**/*.proto`) or a directory name at any depth
//! (`**/testdata/**`).

use globset::{Glob, GlobBuilder, GlobMatcher};

/// Characters that make a path component a glob rather than a literal name.
const META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// Why a pattern was refused. The message is shown after `FILE:LINE:COL:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty pattern")]
    Empty,
    #[error("pattern {0:?} has leading or trailing whitespace")]
    Whitespace(String),
    #[error(
        "pattern {0:?}: negation (`!`) is not supported; ownership is decided by the last \
         matching rule, so give the carved-out paths their own rule after this one"
    )]
    Negation(String),
    #[error(
        "pattern {pattern:?}: the path component {component:?} can never match a path as git \
         stores it (relative to the root, no `.`, `..` or empty components)"
    )]
    BadComponent { pattern: String, component: String },
    #[error("invalid glob {pattern:?}: {reason}")]
    Glob { pattern: String, reason: String },
}

/// A validated, compiled ownership pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    written: String,
    glob: String,
    matcher: GlobMatcher,
    shape: Shape,
}

/// How a pattern can be evaluated. `prefix` is the run of literal directory components
/// before the first component that holds a glob character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// No glob characters at all: matches exactly this path.
    Exact,
    /// `prefix/**`: every path strictly below `prefix` (the root when empty).
    Below { prefix: Vec<String> },
    /// `prefix/**/NAME` where NAME is a one-component glob: any path strictly below
    /// `prefix` whose file name matches NAME.
    NameBelow { prefix: Vec<String>, name: String },
    /// `prefix/NAME` where NAME is a one-component glob: paths directly in `prefix`.
    NameIn { prefix: Vec<String>, name: String },
    /// `prefix/**/DIR/**`: paths with a directory component DIR somewhere below `prefix`.
    DirBelow { prefix: Vec<String>, dir: String },
    /// Anything else; evaluated by globset, but only for paths under `prefix`.
    Other { prefix: Vec<String> },
}

impl Pattern {
    /// Validates and compiles a pattern as written in the config.
    pub fn parse(written: &str) -> Result<Pattern, PatternError> {
        if written.is_empty() {
            return Err(PatternError::Empty);
        }
        // Whitespace at either end is almost always a typo; a file whose name really
        // starts or ends with a space is written with the space escaped (`\ `).
        if written.starts_with(char::is_whitespace)
            || (written.ends_with(char::is_whitespace) && !ends_escaped(written))
        {
            return Err(PatternError::Whitespace(written.to_owned()));
        }
        if written.starts_with('!') {
            return Err(PatternError::Negation(written.to_owned()));
        }
        let mut glob = written.strip_prefix('/').unwrap_or(written).to_owned();
        if glob.is_empty() {
            return Err(PatternError::Empty);
        }
        if glob.ends_with('/') {
            glob.push_str("**");
        }
        for component in glob.split('/') {
            if component.is_empty() || component == "." || component == ".." {
                return Err(PatternError::BadComponent {
                    pattern: written.to_owned(),
                    component: component.to_owned(),
                });
            }
        }
        let matcher = compile(&glob)
            .map_err(|reason| PatternError::Glob {
                pattern: written.to_owned(),
                reason,
            })?
            .compile_matcher();
        let shape = Shape::of(&glob);
        Ok(Pattern {
            written: written.to_owned(),
            glob,
            matcher,
            shape,
        })
    }

    /// A pattern that matches exactly one path, whatever characters it holds.
    pub fn exact(path: &str) -> Result<Pattern, PatternError> {
        Pattern::parse(&escape(path))
    }

    /// The pattern as the user wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The globset glob it stands for (leading `/` dropped, trailing `/` expanded).
    pub fn glob(&self) -> &str {
        &self.glob
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Matches one path with globset; the reference semantics that the index reproduces.
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }

    /// True when every path this pattern matches is also matched by `later`.
    ///
    /// Sound but incomplete: it recognises the containments that real configs have
    /// (a directory rule covering a narrower rule, `**/*.ext` covering `dir/*.ext`,
    /// a glob covering an exact path, duplicates) and says `false` when unsure.
    pub fn is_covered_by(&self, later: &Pattern) -> bool {
        if self.glob == later.glob {
            return true;
        }
        if self.shape == Shape::Exact {
            return later.is_match(&self.glob);
        }
        let (prefix, last) = self.prefix_and_last();
        match &later.shape {
            Shape::Below { prefix: p } => starts_with(prefix, p),
            Shape::NameBelow { prefix: p, name } => {
                starts_with(prefix, p) && last == Some(name.as_str())
            }
            Shape::DirBelow { prefix: p, dir } => {
                // The directory must be a literal component of our prefix, at or after
                // `p`; our prefix is always followed by at least one more component.
                starts_with(prefix, p) && prefix[p.len()..].iter().any(|c| c == dir)
            }
            Shape::Exact | Shape::NameIn { .. } | Shape::Other { .. } => false,
        }
    }

    fn prefix_and_last(&self) -> (&[String], Option<&str>) {
        self.shape.prefix_and_name()
    }
}

fn starts_with(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

/// Compiles a normalized glob the one way switchyard always does.
pub(crate) fn compile(glob: &str) -> Result<Glob, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

/// Escapes a literal path so that it matches only itself as a pattern.
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 2);
    let last = path.char_indices().last().map_or(0, |(i, _)| i);
    for (i, c) in path.char_indices() {
        let at_an_end = i == 0 || i == last;
        if META.contains(&c) || (i == 0 && c == '!') || (at_an_end && c.is_whitespace()) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether the last character is escaped by an odd run of backslashes before it.
fn ends_escaped(text: &str) -> bool {
    let mut chars = text.chars().rev();
    chars.next();
    chars.take_while(|c| *c == '\\').count() % 2 == 1
}

fn is_literal(component: &str) -> bool {
    !component.contains(META)
}

/// Brackets and braces must open and close inside one component, or splitting the glob
/// on `/` would misread it (`{a/b,c}` is one alternation, not two components).
fn is_self_contained(component: &str) -> bool {
    let (mut square, mut curly) = (0i32, 0i32);
    let mut escaped = false;
    for c in component.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' => square += 1,
            ']' => square -= 1,
            '{' => curly += 1,
            '}' => curly -= 1,
            _ => {}
        }
    }
    square == 0 && curly == 0 && !escaped
}

/// A one-component glob that globset evaluates the same against a file name alone as
/// against the last component of a path. Character classes are left out: globset lets
/// `[!a]` (and a range such as `[+-0]`) match `/`, so they can reach across components.
fn is_name_glob(component: &str) -> bool {
    !component.contains("**")
        && !component.contains(['[', ']', '\\'])
        && is_self_contained(component)
}

impl Shape {
    /// The literal directory prefix and, when the glob's last component consumes exactly
    /// the file name, that component. Exact paths have neither.
    pub fn prefix_and_name(&self) -> (&[String], Option<&str>) {
        match self {
            Shape::Exact => (&[], None),
            Shape::Below { prefix } | Shape::DirBelow { prefix, .. } | Shape::Other { prefix } => {
                (prefix, None)
            }
            Shape::NameBelow { prefix, name } | Shape::NameIn { prefix, name } => {
                (prefix, Some(name))
            }
        }
    }

    fn of(glob: &str) -> Shape {
        let components: Vec<&str> = glob.split('/').collect();
        let literal_len = components.iter().take_while(|c| is_literal(c)).count();
        if literal_len == components.len() {
            return Shape::Exact;
        }
        let prefix: Vec<String> = components[..literal_len]
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let rest = &components[literal_len..];
        match rest {
            ["**"] => Shape::Below { prefix },
            ["**", name] if is_name_glob(name) => Shape::NameBelow {
                prefix,
                name: (*name).to_owned(),
            },
            ["**", dir, "**"] if is_literal(dir) => Shape::DirBelow {
                prefix,
                dir: (*dir).to_owned(),
            },
            [name] if is_name_glob(name) => Shape::NameIn {
                prefix,
                name: (*name).to_owned(),
            },
            _ => Shape::Other { prefix },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(p: &str) -> Shape {
        Pattern::parse(p).unwrap().shape
    }

    fn v(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalizes_root_and_directory_sugar() {
        assert_eq!(Pattern::parse("/src/auth/").unwrap().glob(), "src/auth/**");
        assert_eq!(Pattern::parse("docs/").unwrap().glob(), "docs/**");
        assert_eq!(Pattern::parse("/README.md").unwrap().glob(), "README.md");
    }

    #[test]
    fn classifies_shapes() {
        assert_eq!(
            shape("src/auth/**"),
            Shape::Below {
                prefix: v(&["src", "auth"])
            }
        );
        assert_eq!(shape("**"), Shape::Below { prefix: vec![] });
        assert_eq!(shape("a/b.rs"), Shape::Exact);
        assert_eq!(
            shape("**/*.proto"),
            Shape::NameBelow {
                prefix: vec![],
                name: "*.proto".into()
            }
        );
        assert_eq!(
            shape("src/**/*.{rs,toml}"),
            Shape::NameBelow {
                prefix: v(&["src"]),
                name: "*.{rs,toml}".into()
            }
        );
        assert_eq!(
            shape("**/testdata/**"),
            Shape::DirBelow {
                prefix: vec![],
                dir: "testdata".into()
            }
        );
        assert_eq!(
            shape("*.md"),
            Shape::NameIn {
                prefix: vec![],
                name: "*.md".into()
            }
        );
        assert_eq!(
            shape("docs/*"),
            Shape::NameIn {
                prefix: v(&["docs"]),
                name: "*".into()
            }
        );
        assert_eq!(shape("{a/b,c}/x"), Shape::Other { prefix: vec![] });
        assert_eq!(
            shape("src/*/mod.rs"),
            Shape::Other {
                prefix: v(&["src"])
            }
        );
    }

    #[test]
    fn refuses_what_cannot_mean_anything() {
        assert_eq!(Pattern::parse("").unwrap_err(), PatternError::Empty);
        assert_eq!(Pattern::parse("/").unwrap_err(), PatternError::Empty);
        assert!(matches!(
            Pattern::parse("!src/**"),
            Err(PatternError::Negation(_))
        ));
        assert!(matches!(
            Pattern::parse(" src/**"),
            Err(PatternError::Whitespace(_))
        ));
        assert!(matches!(
            Pattern::parse("src//x"),
            Err(PatternError::BadComponent { .. })
        ));
        assert!(matches!(
            Pattern::parse("../x"),
            Err(PatternError::BadComponent { .. })
        ));
        assert!(matches!(
            Pattern::parse("./x"),
            Err(PatternError::BadComponent { .. })
        ));
        let err = Pattern::parse("src/[a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid glob \"src/[a\": unclosed character class; missing ']'"
        );
    }

    #[test]
    fn star_stays_in_one_component() {
        let p = Pattern::parse("src/*").unwrap();
        assert!(p.is_match("src/a.rs"));
        assert!(!p.is_match("src/a/b.rs"));
        let p = Pattern::parse("src/**").unwrap();
        assert!(p.is_match("src/a/b.rs"));
        assert!(!p.is_match("src"));
        let p = Pattern::parse("**/*.rs").unwrap();
        assert!(p.is_match("lib.rs"));
        assert!(p.is_match("a/b/lib.rs"));
    }

    #[test]
    fn exact_escapes_glob_characters() {
        for path in [
            "a*b",
            "x/[y]",
            "{c}",
            "!bang",
            "back\\slash",
            "q?",
            "plain/file.rs",
        ] {
            let p = Pattern::exact(path).unwrap();
            assert!(p.is_match(path), "{path}");
        }
        assert!(!Pattern::exact("a*b").unwrap().is_match("axb"));
        assert!(!Pattern::exact("q?").unwrap().is_match("qx"));
    }

    #[test]
    fn coverage() {
        let covered = |a: &str, b: &str| {
            Pattern::parse(a)
                .unwrap()
                .is_covered_by(&Pattern::parse(b).unwrap())
        };
        assert!(covered("src/auth/**", "src/**"));
        assert!(covered("src/auth/*.rs", "src/**"));
        assert!(covered("src/auth/login.rs", "src/**"));
        assert!(covered("src/a/*.rs", "**/*.rs"));
        assert!(covered("src/**/*.rs", "**/*.rs"));
        assert!(covered("anything/at/all", "**"));
        assert!(covered("src/**", "/src/"));
        assert!(covered("a/testdata/x/*.json", "**/testdata/**"));
        assert!(!covered("src/**", "src/auth/**"));
        assert!(!covered("**/*.rs", "src/**"));
        assert!(!covered("src/*.rs", "src/*.toml"));
        assert!(!covered("a/testdata", "**/testdata/**"));
    }
}

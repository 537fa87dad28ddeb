//! Who owns a path, and by which rule.
//!
//! A rule is one glob of one subsystem, in file order. The last rule that matches a path
//! decides its owner (CODEOWNERS semantics): a later, narrower rule carves its paths out
//! of an earlier, broader one. A path no rule matches is unowned. This module is pure:
//! it is handed rules and paths and does no I/O.

pub mod codeowners;
mod index;
mod pattern;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::diagnostic::Location;
use crate::model::SubsystemName;

pub use pattern::{Pattern, PatternError, Shape, escape};

/// One ownership rule: a subsystem's glob and where it was written.
#[derive(Debug, Clone)]
pub struct Rule {
    pub subsystem: SubsystemName,
    pub pattern: Pattern,
    pub origin: Location,
}

/// The JSON form of a rule: `{"subsystem","glob","file","line","col"}`; `glob` is the
/// pattern as written.
impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Rule", 5)?;
        st.serialize_field("subsystem", &self.subsystem)?;
        st.serialize_field("glob", self.pattern.written())?;
        st.serialize_field("file", &*self.origin.file)?;
        st.serialize_field("line", &self.origin.line)?;
        st.serialize_field("col", &self.origin.col)?;
        st.end()
    }
}

/// The compiled rule list.
#[derive(Debug, Default)]
pub struct Ownership {
    rules: Vec<Rule>,
    index: index::Index,
}

/// One rule that can never decide anything, and the later rule that always beats it.
#[derive(Debug)]
pub struct Shadowed<'a> {
    pub rule: &'a Rule,
    pub by: &'a Rule,
}

/// How a set of paths (usually every tracked file) divides among the subsystems.
#[derive(Debug)]
pub struct Coverage<'a> {
    /// Each path with the rule that decided it, in the order given.
    pub paths: Vec<(&'a str, Option<&'a Rule>)>,
    /// Files owned, per subsystem that owns at least one.
    pub counts: BTreeMap<&'a SubsystemName, usize>,
    /// Rules that match none of the paths.
    pub unmatched_rules: Vec<&'a Rule>,
}

impl Coverage<'_> {
    pub fn unowned(&self) -> impl Iterator<Item = &str> {
        self.paths
            .iter()
            .filter(|(_, rule)| rule.is_none())
            .map(|(path, _)| *path)
    }
}

impl Ownership {
    /// Compiles rules given in file order.
    pub fn new(rules: Vec<Rule>) -> Ownership {
        let index = index::Index::new(rules.iter().map(|r| &r.pattern));
        Ownership { rules, index }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule that decides `path`, or `None` when the path is unowned.
    pub fn owner(&self, path: &str) -> Option<&Rule> {
        self.resolver().owner(path)
    }

    /// A resolver for many paths; fastest when they come in tree order.
    pub fn resolver(&self) -> Resolver<'_> {
        Resolver {
            rules: &self.rules,
            inner: index::Resolver::new(&self.index),
        }
    }

    /// Rules that a single later rule always overrides (see [`Pattern::is_covered_by`]),
    /// each with the last rule that covers it. Looks candidates up by shape instead of
    /// comparing every pair, so large configs stay fast.
    pub fn shadowed(&self) -> Vec<Shadowed<'_>> {
        type Key<'a> = (&'a [String], &'a str);
        let mut by_glob: HashMap<&str, usize> = HashMap::new();
        let mut below: HashMap<&[String], usize> = HashMap::new();
        let mut names_below: HashMap<Key<'_>, usize> = HashMap::new();
        let mut dirs_below: HashMap<Key<'_>, usize> = HashMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            by_glob.insert(rule.pattern.glob(), i);
            match rule.pattern.shape() {
                Shape::Below { prefix } => {
                    below.insert(prefix, i);
                }
                Shape::NameBelow { prefix, name } => {
                    names_below.insert((prefix, name), i);
                }
                Shape::DirBelow { prefix, dir } => {
                    dirs_below.insert((prefix, dir), i);
                }
                Shape::Exact | Shape::NameIn { .. } | Shape::Other { .. } => {}
            }
        }
        let mut resolver = self.resolver();
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let mut last = by_glob.get(rule.pattern.glob()).copied().filter(|&j| j > i);
            let mut consider = |j: Option<usize>| {
                if let Some(j) = j.filter(|&j| j > i) {
                    last = Some(last.map_or(j, |l| l.max(j)));
                }
            };
            match rule.pattern.shape() {
                // A single path is covered by whatever later rule matches it; the index
                // knows the last one.
                Shape::Exact => consider(resolver.owner_index(rule.pattern.glob())),
                shape => {
                    let (prefix, last_name) = shape.prefix_and_name();
                    for k in 0..=prefix.len() {
                        let p = &prefix[..k];
                        consider(below.get(p).copied());
                        if let Some(name) = last_name {
                            consider(names_below.get(&(p, name)).copied());
                        }
                        for dir in &prefix[k..] {
                            consider(dirs_below.get(&(p, dir.as_str())).copied());
                        }
                    }
                }
            }
            if let Some(j) = last {
                out.push(Shadowed {
                    rule,
                    by: &self.rules[j],
                });
            }
        }
        out
    }

    /// Resolves every path and tallies the result.
    pub fn coverage<'a>(&'a self, paths: &'a [String]) -> Coverage<'a> {
        let mut resolver = self.resolver();
        let mut won = vec![false; self.rules.len()];
        let mut counts = BTreeMap::new();
        let resolved: Vec<(&str, Option<&Rule>)> = paths
            .iter()
            .map(|path| {
                let rule = resolver.owner_index(path);
                if let Some(i) = rule {
                    won[i] = true;
                    *counts.entry(&self.rules[i].subsystem).or_insert(0) += 1;
                }
                (path.as_str(), rule.map(|i| &self.rules[i]))
            })
            .collect();
        // A rule that decides some path obviously matches one; the others are checked
        // together, in one pass over the paths.
        let losers: Vec<usize> = (0..self.rules.len()).filter(|&i| !won[i]).collect();
        let mut builder = globset::GlobSetBuilder::new();
        for &i in &losers {
            builder.add(pattern::compile(self.rules[i].pattern.glob()).expect("compiled before"));
        }
        let set = builder.build().expect("compiled before");
        let mut matched = vec![false; losers.len()];
        let mut scratch = Vec::new();
        for path in paths {
            set.matches_into(path.as_str(), &mut scratch);
            for &m in &scratch {
                matched[m] = true;
            }
        }
        let unmatched_rules = losers
            .iter()
            .zip(matched)
            .filter(|(_, matched)| !matched)
            .map(|(&i, _)| &self.rules[i])
            .collect();
        Coverage {
            paths: resolved,
            counts,
            unmatched_rules,
        }
    }
}

/// Resolves paths one after another, reusing per-directory work.
pub struct Resolver<'a> {
    rules: &'a [Rule],
    inner: index::Resolver<'a>,
}

impl<'a> Resolver<'a> {
    pub fn owner(&mut self, path: &str) -> Option<&'a Rule> {
        self.owner_index(path).map(|i| &self.rules[i])
    }

    fn owner_index(&mut self, path: &str) -> Option<usize> {
        self.inner.resolve(path).map(|i| i as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use globset::GlobSetBuilder;

    use super::*;

    fn ownership(rules: &[(&str, &str)]) -> Ownership {
        let file: Arc<str> = "t.toml".into();
        Ownership::new(
            rules
                .iter()
                .enumerate()
                .map(|(i, (sub, glob))| Rule {
                    subsystem: SubsystemName::new(sub).unwrap(),
                    pattern: Pattern::parse(glob).unwrap(),
                    origin: Location {
                        file: Arc::clone(&file),
                        line: i as u32 + 1,
                        col: 1,
                    },
                })
                .collect(),
        )
    }

    /// Data-driven: each case is a rule list and `path => owner` expectations.
    fn check(rules: &[(&str, &str)], cases: &[(&str, Option<&str>)]) {
        let own = ownership(rules);
        for (path, want) in cases {
            let got = own.owner(path).map(|r| r.subsystem.as_str());
            assert_eq!(got, *want, "owner of {path:?} under {rules:?}");
        }
    }

    #[test]
    fn last_matching_rule_wins() {
        check(
            &[
                ("core", "src/**"),
                ("auth", "src/auth/**"),
                ("core", "src/auth/shared.rs"),
            ],
            &[
                ("src/lib.rs", Some("core")),
                ("src/auth/login.rs", Some("auth")),
                ("src/auth/shared.rs", Some("core")),
                ("src/auth/deep/er.rs", Some("auth")),
                ("README.md", None),
                ("src", None),
            ],
        );
    }

    #[test]
    fn earlier_broad_rule_does_not_beat_later_narrow_one_in_any_order() {
        // The narrow rule first: the broad one, later, takes everything back.
        check(
            &[("auth", "src/auth/**"), ("core", "src/**")],
            &[("src/auth/login.rs", Some("core"))],
        );
    }

    #[test]
    fn star_does_not_cross_directories_but_double_star_does() {
        check(
            &[
                ("docs", "docs/*"),
                ("protos", "**/*.proto"),
                ("tests", "**/testdata/**"),
            ],
            &[
                ("docs/a.md", Some("docs")),
                ("docs/sub/b.md", None),
                ("api.proto", Some("protos")),
                ("a/b/c/api.proto", Some("protos")),
                ("x/testdata/y/z.json", Some("tests")),
                ("testdata/z.json", Some("tests")),
                ("x/testdata", None),
            ],
        );
    }

    #[test]
    fn trailing_slash_and_leading_slash() {
        check(
            &[("docs", "/docs/"), ("root", "/*.md")],
            &[
                ("docs/a/b.md", Some("docs")),
                ("x/docs/a.md", None),
                ("README.md", Some("root")),
                ("sub/README.md", None),
            ],
        );
    }

    #[test]
    fn reports_shadowed_rules() {
        let own = ownership(&[
            ("auth", "src/auth/**"),
            ("docs", "docs/**"),
            ("core", "src/**"),
            ("docs", "docs/**/*.md"),
        ]);
        let shadowed: Vec<(&str, &str)> = own
            .shadowed()
            .iter()
            .map(|s| (s.rule.pattern.written(), s.by.pattern.written()))
            .collect();
        assert_eq!(shadowed, vec![("src/auth/**", "src/**")]);
    }

    #[test]
    fn coverage_counts_owners_and_finds_dead_rules() {
        let own = ownership(&[("core", "src/**"), ("docs", "docs/**"), ("web", "web/**")]);
        let paths: Vec<String> = ["src/a.rs", "src/b/c.rs", "docs/x.md", "README.md"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cov = own.coverage(&paths);
        let counts: Vec<(&str, usize)> = cov.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(counts, vec![("core", 2), ("docs", 1)]);
        assert_eq!(cov.unowned().collect::<Vec<_>>(), vec!["README.md"]);
        let dead: Vec<&str> = cov
            .unmatched_rules
            .iter()
            .map(|r| r.pattern.written())
            .collect();
        assert_eq!(dead, vec!["web/**"]);
    }

    /// The definition: every later rule is compared with every earlier one.
    fn shadowed_naive(own: &Ownership) -> Vec<(usize, usize)> {
        let rules = own.rules();
        (0..rules.len())
            .filter_map(|i| {
                (i + 1..rules.len())
                    .rev()
                    .find(|&j| rules[i].pattern.is_covered_by(&rules[j].pattern))
                    .map(|j| (i, j))
            })
            .collect()
    }

    #[test]
    fn shadowed_agrees_with_the_pairwise_definition() {
        let parts = ["a", "b", "src", "**", "*.rs", "x.md", "*"];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..300 {
            let globs: Vec<String> = (0..(1 + rng.next() % 10))
                .map(|_| {
                    let len = 1 + rng.next() % 4;
                    (0..len)
                        .map(|_| rng.pick(&parts))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .filter(|g| Pattern::parse(g).is_ok())
                .collect();
            let spec: Vec<(&str, &str)> = globs.iter().map(|g| ("s", g.as_str())).collect();
            let own = ownership(&spec);
            let index_of = |r: &Rule| (r.origin.line - 1) as usize;
            let fast: Vec<(usize, usize)> = own
                .shadowed()
                .iter()
                .map(|s| (index_of(s.rule), index_of(s.by)))
                .collect();
            assert_eq!(fast, shadowed_naive(&own), "{globs:?}");
        }
    }

    /// A tiny deterministic generator, so the differential test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[(self.next() % xs.len() as u64) as usize]
        }
    }

    /// The index must agree with the reference semantics, `GlobSet::matches().max()`,
    /// on every shape of pattern, including the awkward ones.
    #[test]
    fn index_agrees_with_globset_on_random_rules_and_paths() {
        let names = [
            "a", "b", "src", "x.rs", "y.md", "testdata", "a.b.c", "[x]", "*",
        ];
        let globs = [
            "a",
            "b",
            "src",
            "*",
            "**",
            "*.rs",
            "*.md",
            "?.rs",
            "x*",
            "{a,b}",
            "*.{rs,md}",
            "testdata",
            "[ab]",
            "[!a]",
            "a.*",
            "\\*",
            "x/y",
            "{a/b,src}",
            "**x",
        ];
        let mut rng = Rng(0x9e3779b97f4a7c15);
        for round in 0..300 {
            let mut rules = Vec::new();
            for _ in 0..(1 + rng.next() % 12) {
                let len = 1 + rng.next() % 4;
                let parts: Vec<&str> = (0..len).map(|_| rng.pick(&globs)).collect();
                let mut glob = parts.join("/");
                if rng.next().is_multiple_of(5) {
                    glob.push('/');
                }
                if Pattern::parse(&glob).is_ok() {
                    rules.push(glob);
                }
            }
            let spec: Vec<(&str, &str)> = rules.iter().map(|g| ("s", g.as_str())).collect();
            let own = ownership(&spec);
            let mut reference = GlobSetBuilder::new();
            for rule in own.rules() {
                reference.add(pattern::compile(rule.pattern.glob()).unwrap());
            }
            let reference = reference.build().unwrap();
            let mut paths: Vec<String> = (0..200)
                .map(|_| {
                    let len = 1 + rng.next() % 5;
                    (0..len)
                        .map(|_| rng.pick(&names))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            paths.sort();
            let mut resolver = own.resolver();
            for path in &paths {
                let want = reference.matches(path).into_iter().max();
                let got = resolver.owner_index(path);
                assert_eq!(got, want, "round {round}: {path:?} under {rules:?}");
            }
        }
    }
}

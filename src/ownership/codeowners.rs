//! GitHub CODEOWNERS: parsing, GitHub's matching rules, and translation into subsystems.
//!
//! GitHub's rules (as its docs state them and as hmarr/codeowners reproduces them):
//! the last matching line wins; a pattern with no `/` except a trailing one matches at
//! any depth; a leading `/` or a `/` in the middle anchors it at the root; a trailing
//! `/` means a directory and everything in it; a pattern naming a file or directory
//! also covers everything under it, except that a final lone `*` (`docs/*`) matches only
//! files directly inside; a line with no owners makes its paths unowned. Lines that
//! GitHub rejects (`!` negation, `[ ]` classes, a `\#` escape, `***`) are skipped with a
//! warning, as GitHub skips them.
//!
//! Each CODEOWNERS pattern becomes one or two switchyard globs with exactly the same
//! matches, so ownership computed either way agrees. Translating a whole file is harder
//! than translating lines: switchyard groups rules by subsystem, so lines of one owner
//! set end up next to each other and their relative order with other owners' lines is
//! lost. [`translate`] orders the subsystems so that every carve-out still comes after
//! what it carves from, and where no order works (A carves from B carves from A, or a
//! no-owner line carves from a rule), it replaces the affected lines by the tracked
//! files they own, compressed to `dir/**` where a whole directory belongs to one owner.
//! The result is checked file by file against GitHub's answer before it is returned.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use globset::GlobSetBuilder;

use super::pattern::{Pattern, compile, escape};
use super::{Ownership, Rule};
use crate::diagnostic::Location;
use crate::model::SubsystemName;

/// Where GitHub looks for the file, in order; the first one found is used.
pub const LOCATIONS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// One usable CODEOWNERS line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file.
    pub number: usize,
    pub pattern: String,
    /// Sorted and deduplicated; empty means "unowned".
    pub owners: Vec<String>,
    /// Switchyard globs that match exactly what GitHub matches for `pattern`.
    pub globs: Vec<String>,
}

/// A line GitHub would skip, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub number: usize,
    pub reason: String,
}

/// Parses a CODEOWNERS file; unusable lines are skipped and reported.
pub fn parse(text: &str) -> (Vec<Line>, Vec<Skipped>) {
    let mut lines = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(trimmed) {
            Ok((pattern, owners)) => match globs_for(&pattern) {
                Ok(globs) => lines.push(Line {
                    number,
                    pattern,
                    owners,
                    globs,
                }),
                Err(reason) => skipped.push(Skipped { number, reason }),
            },
            Err(reason) => skipped.push(Skipped { number, reason }),
        }
    }
    (lines, skipped)
}

/// Splits `pattern owner owner # comment`; a backslash escapes a space in the pattern.
fn parse_line(line: &str) -> Result<(String, Vec<String>), String> {
    if line.starts_with("\\#") {
        return Err("GitHub does not support escaping `#` with `\\`; line skipped".into());
    }
    let mut pattern = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|n| n.is_whitespace()) => {
                pattern.push(chars.next().expect("peeked"));
            }
            c if c.is_whitespace() => break,
            c => pattern.push(c),
        }
    }
    let rest: String = chars.collect();
    let mut owners = Vec::new();
    for token in rest.split_whitespace() {
        if token.starts_with('#') {
            break;
        }
        let valid = match token.strip_prefix('@') {
            Some(name) => !name.is_empty() && name.split('/').all(|p| !p.is_empty()),
            None => token.contains('@') && !token.starts_with('@'),
        };
        if !valid {
            return Err(format!(
                "owner {token:?} is not a @user, @org/team or email address; line skipped"
            ));
        }
        // GitHub logins, team names and emails are case-insensitive.
        owners.push(token.to_lowercase());
    }
    owners.sort();
    owners.dedup();
    if pattern.starts_with('!') {
        return Err(format!(
            "pattern {pattern:?}: GitHub does not support `!` negation; line skipped"
        ));
    }
    if pattern.contains(['[', ']']) {
        return Err(format!(
            "pattern {pattern:?}: GitHub does not support `[ ]` character ranges; line skipped"
        ));
    }
    if pattern.contains("***") {
        return Err(format!(
            "pattern {pattern:?}: three consecutive asterisks are invalid; line skipped"
        ));
    }
    Ok((pattern, owners))
}

/// The switchyard globs that match exactly the paths GitHub matches with `pattern`.
fn globs_for(pattern: &str) -> Result<Vec<String>, String> {
    if pattern == "/" {
        return Err("pattern \"/\" matches nothing; line skipped".into());
    }
    let mut segs: Vec<&str> = pattern.split('/').collect();
    if segs[0].is_empty() {
        segs.remove(0);
    } else if (segs.len() == 1 || (segs.len() == 2 && segs[1].is_empty())) && segs[0] != "**" {
        // No slash but a trailing one: the pattern floats to any depth.
        segs.insert(0, "**");
    }
    if segs.len() > 1 && segs.last() == Some(&"") {
        *segs.last_mut().expect("len > 1") = "**";
    }
    let mut parts = Vec::with_capacity(segs.len());
    for seg in &segs {
        parts.push(match *seg {
            "**" | "*" => (*seg).to_owned(),
            seg => segment_glob(seg),
        });
    }
    let glob = parts.join("/");
    let last = *segs.last().expect("a pattern has a segment");
    let globs = if last == "**" || last == "*" {
        vec![glob]
    } else {
        // A name covers the directory of that name and everything in it.
        vec![format!("{glob}/**"), glob]
    };
    for glob in &globs {
        Pattern::parse(glob).map_err(|e| format!("{e}; line skipped"))?;
    }
    Ok(globs)
}

/// One CODEOWNERS path segment as a glob: `*` and `?` keep their meaning, `\x` is a
/// literal `x`, and everything else is literal.
fn segment_glob(seg: &str) -> String {
    let mut out = String::new();
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => out.push(c),
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push_str(&escape(&n.to_string()));
                }
            }
            c => out.push_str(&escape(&c.to_string())),
        }
    }
    out
}

/// For each path, the index into `lines` of the line GitHub applies (the last match).
pub fn deciding_lines(lines: &[Line], paths: &[String]) -> Vec<Option<usize>> {
    let mut builder = GlobSetBuilder::new();
    let mut line_of_glob = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        for glob in &line.globs {
            builder.add(compile(glob).expect("checked in globs_for"));
            line_of_glob.push(i);
        }
    }
    let set = builder.build().expect("each glob compiled alone");
    paths
        .iter()
        .map(|p| set.matches(p).into_iter().map(|g| line_of_glob[g]).max())
        .collect()
}

/// A subsystem made from one owner set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    pub name: SubsystemName,
    pub owners: Vec<String>,
    pub rules: Vec<TranslatedRule>,
}

/// The globs one CODEOWNERS line became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedRule {
    pub line: usize,
    pub pattern: String,
    pub globs: Vec<String>,
    /// The line's own pattern could not be kept (see the module docs); `globs` list the
    /// tracked files it owns instead.
    pub expanded: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("CODEOWNERS translation disagrees with GitHub for {path:?}: {detail}")]
pub struct TranslationError {
    pub path: String,
    pub detail: String,
}

/// Translates usable lines into subsystems in the order they must appear, such that for
/// every path in `tracked` the owning subsystem's owner set is exactly GitHub's answer.
pub fn translate(lines: &[Line], tracked: &[String]) -> Result<Vec<Subsystem>, TranslationError> {
    let facts = Facts::new(lines, tracked);
    let refined = facts.lines_to_expand();
    let subsystems = facts.build(&refined);
    match facts.verify(&subsystems) {
        Ok(()) => Ok(subsystems),
        Err(_) => {
            // Expanding every line makes each rule own only its files, so order cannot
            // matter any more; this is the safety net, not the usual path.
            let all: BTreeSet<usize> = (0..lines.len()).collect();
            let subsystems = facts.build(&all);
            facts.verify(&subsystems)?;
            Ok(subsystems)
        }
    }
}

/// What GitHub decides for the tracked files, and the owner sets involved.
struct Facts<'a> {
    lines: &'a [Line],
    tracked: &'a [String],
    /// Per tracked file: every line index that matches it, ascending.
    matching: Vec<Vec<usize>>,
    /// Owner set index per line (`None` for a no-owner line).
    group_of_line: Vec<Option<usize>>,
    /// Distinct non-empty owner sets, in order of first appearance.
    groups: Vec<&'a [String]>,
    /// `(early, late)` line pairs of different owners where the late line is inside
    /// the early one: the late one must keep coming after it, for files not yet tracked.
    carve_outs: Vec<(usize, usize)>,
}

impl<'a> Facts<'a> {
    fn new(lines: &'a [Line], tracked: &'a [String]) -> Facts<'a> {
        let mut builder = GlobSetBuilder::new();
        let mut line_of_glob = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            for glob in &line.globs {
                builder.add(compile(glob).expect("checked in globs_for"));
                line_of_glob.push(i);
            }
        }
        let set = builder.build().expect("each glob compiled alone");
        let matching = tracked
            .iter()
            .map(|p| {
                let mut m: Vec<usize> = set
                    .matches(p)
                    .into_iter()
                    .map(|g| line_of_glob[g])
                    .collect();
                m.sort_unstable();
                m.dedup();
                m
            })
            .collect();
        let mut groups: Vec<&[String]> = Vec::new();
        let group_of_line: Vec<Option<usize>> = lines
            .iter()
            .map(|line| {
                if line.owners.is_empty() {
                    return None;
                }
                Some(
                    match groups.iter().position(|g| *g == line.owners.as_slice()) {
                        Some(g) => g,
                        None => {
                            groups.push(&line.owners);
                            groups.len() - 1
                        }
                    },
                )
            })
            .collect();
        let patterns: Vec<Vec<Pattern>> = lines
            .iter()
            .map(|l| {
                l.globs
                    .iter()
                    .map(|g| Pattern::parse(g).expect("checked"))
                    .collect()
            })
            .collect();
        let mut carve_outs = Vec::new();
        for (i, early) in patterns.iter().enumerate() {
            for (j, late) in patterns.iter().enumerate().skip(i + 1) {
                let (Some(gi), Some(gj)) = (group_of_line[i], group_of_line[j]) else {
                    continue;
                };
                if gi != gj
                    && late
                        .iter()
                        .any(|l| early.iter().any(|e| l.is_covered_by(e)))
                {
                    carve_outs.push((i, j));
                }
            }
        }
        Facts {
            lines,
            tracked,
            matching,
            group_of_line,
            groups,
            carve_outs,
        }
    }

    /// GitHub's owner group for tracked file `f` (`None`: unowned).
    fn final_group(&self, f: usize) -> Option<usize> {
        self.matching[f].last().and_then(|&l| self.group_of_line[l])
    }

    /// Lines whose pattern cannot be kept as it is: those a no-owner line carves from,
    /// and those on a cycle of "must come after" between owner sets.
    fn lines_to_expand(&self) -> BTreeSet<usize> {
        let mut expand = BTreeSet::new();
        // (from group, to group) -> lines that need `to` after `from`.
        let mut edges: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
        for f in 0..self.tracked.len() {
            let last = self.final_group(f);
            for &l in &self.matching[f] {
                let Some(g) = self.group_of_line[l] else {
                    continue;
                };
                match last {
                    None => {
                        expand.insert(l);
                    }
                    Some(owner) if owner != g => {
                        edges.entry((g, owner)).or_default().insert(l);
                    }
                    Some(_) => {}
                }
            }
        }
        for &(i, j) in &self.carve_outs {
            let (Some(gi), Some(gj)) = (self.group_of_line[i], self.group_of_line[j]) else {
                continue;
            };
            edges.entry((gi, gj)).or_default().insert(i);
        }
        let reach = reachability(self.groups.len(), edges.keys().copied());
        for ((from, to), lines) in &edges {
            if reach[*to][*from] {
                expand.extend(lines);
            }
        }
        expand
    }

    /// Owner-set order: every remaining "must come after" edge respected, ties broken by
    /// first appearance in the file.
    fn order(&self, expanded: &BTreeSet<usize>) -> Vec<usize> {
        let n = self.groups.len();
        let mut after: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        let mut add = |from: usize, to: usize| {
            if from != to {
                after[to].insert(from);
            }
        };
        for f in 0..self.tracked.len() {
            if let Some(owner) = self.final_group(f) {
                for &l in &self.matching[f] {
                    if let (Some(g), false) = (self.group_of_line[l], expanded.contains(&l)) {
                        add(g, owner);
                    }
                }
            }
        }
        for &(i, j) in &self.carve_outs {
            if let (Some(gi), Some(gj), false) = (
                self.group_of_line[i],
                self.group_of_line[j],
                expanded.contains(&i),
            ) {
                add(gi, gj);
            }
        }
        let mut order = Vec::with_capacity(n);
        let mut placed = vec![false; n];
        while order.len() < n {
            // Expansion removed every cycle; if one were left, take the earliest group
            // anyway and let verification catch it.
            let next = (0..n)
                .find(|&g| !placed[g] && after[g].iter().all(|&p| placed[p]))
                .or_else(|| (0..n).find(|&g| !placed[g]))
                .expect("a group is left");
            placed[next] = true;
            order.push(next);
        }
        order
    }

    fn build(&self, expanded: &BTreeSet<usize>) -> Vec<Subsystem> {
        let tree = Tree::new(self.tracked);
        let finals: Vec<Option<usize>> = (0..self.tracked.len())
            .map(|f| self.final_group(f))
            .collect();
        let names = names_for(&self.groups);
        let mut out = Vec::new();
        for g in self.order(expanded) {
            let mut rules = Vec::new();
            for (l, line) in self.lines.iter().enumerate() {
                if self.group_of_line[l] != Some(g) {
                    continue;
                }
                if !expanded.contains(&l) {
                    rules.push(TranslatedRule {
                        line: line.number,
                        pattern: line.pattern.clone(),
                        globs: line.globs.clone(),
                        expanded: false,
                    });
                    continue;
                }
                let owned: Vec<bool> = (0..self.tracked.len())
                    .map(|f| self.matching[f].contains(&l) && finals[f] == Some(g))
                    .collect();
                let globs = tree.compress(&owned, &|f| finals[f] == Some(g));
                if !globs.is_empty() {
                    rules.push(TranslatedRule {
                        line: line.number,
                        pattern: line.pattern.clone(),
                        globs,
                        expanded: true,
                    });
                }
            }
            if !rules.is_empty() {
                out.push(Subsystem {
                    name: names[g].clone(),
                    owners: self.groups[g].to_vec(),
                    rules,
                });
            }
        }
        out
    }

    /// Resolves every tracked file with the translated rules and compares with GitHub.
    fn verify(&self, subsystems: &[Subsystem]) -> Result<(), TranslationError> {
        let file: Arc<str> = "CODEOWNERS".into();
        let mut rules = Vec::new();
        let mut owners_of: HashMap<&SubsystemName, &[String]> = HashMap::new();
        for s in subsystems {
            owners_of.insert(&s.name, &s.owners);
            for r in &s.rules {
                for glob in &r.globs {
                    let pattern = Pattern::parse(glob).map_err(|e| TranslationError {
                        path: glob.clone(),
                        detail: format!("a translated glob is invalid: {e}"),
                    })?;
                    rules.push(Rule {
                        subsystem: s.name.clone(),
                        pattern,
                        origin: Location {
                            file: Arc::clone(&file),
                            line: u32::try_from(r.line).unwrap_or(u32::MAX),
                            col: 1,
                        },
                    });
                }
            }
        }
        let ownership = Ownership::new(rules);
        let mut resolver = ownership.resolver();
        for (f, path) in self.tracked.iter().enumerate() {
            let ours = resolver.owner(path).map(|r| owners_of[&r.subsystem]);
            let github = self.final_group(f).map(|g| self.groups[g]);
            if ours != github {
                return Err(TranslationError {
                    path: path.clone(),
                    detail: format!("GitHub says {github:?}, translation says {ours:?}"),
                });
            }
        }
        Ok(())
    }
}

/// `reach[a][b]`: b can be reached from a along one or more edges.
fn reachability(n: usize, edges: impl Iterator<Item = (usize, usize)>) -> Vec<Vec<bool>> {
    let mut reach = vec![vec![false; n]; n];
    for (a, b) in edges {
        reach[a][b] = true;
    }
    for k in 0..n {
        let via = reach[k].clone();
        for row in reach.iter_mut() {
            if row[k] {
                for (to, &reachable) in row.iter_mut().zip(&via) {
                    *to |= reachable;
                }
            }
        }
    }
    reach
}

/// Subsystem names from owner sets: `@org/team` becomes `org-team`, several owners are
/// joined with `_`, and clashes get a numeric suffix.
fn names_for(groups: &[&[String]]) -> Vec<SubsystemName> {
    let mut taken = BTreeSet::new();
    groups
        .iter()
        .map(|owners| {
            let slugs: Vec<String> = owners.iter().map(|o| slug(o)).collect();
            SubsystemName::unique(&slugs.join("_"), "owners", &mut taken)
        })
        .collect()
}

/// `@Org/Team` -> `org-team`, `dev@example.com` -> `dev-example.com`.
pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim_start_matches('@').chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The directory tree of the tracked files, for turning a set of files into few globs.
struct Tree<'a> {
    paths: &'a [String],
    root: Dir,
}

#[derive(Default)]
struct Dir {
    /// Every tracked file under this directory, at any depth.
    all: Vec<usize>,
    files: Vec<usize>,
    dirs: BTreeMap<String, Dir>,
}

impl<'a> Tree<'a> {
    fn new(paths: &'a [String]) -> Tree<'a> {
        let mut root = Dir::default();
        for (i, path) in paths.iter().enumerate() {
            let mut dir = &mut root;
            dir.all.push(i);
            let mut parts = path.split('/').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    dir.files.push(i);
                } else {
                    dir = dir.dirs.entry(part.to_owned()).or_default();
                    dir.all.push(i);
                }
            }
        }
        Tree { paths, root }
    }

    /// Globs matching every file in `wanted`, and only files for which `may_own` holds:
    /// `dir/**` where all of a directory may be owned, exact paths elsewhere.
    fn compress(&self, wanted: &[bool], may_own: &dyn Fn(usize) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        self.compress_dir(&self.root, "", wanted, may_own, &mut out);
        out
    }

    fn compress_dir(
        &self,
        dir: &Dir,
        prefix: &str,
        wanted: &[bool],
        may_own: &dyn Fn(usize) -> bool,
        out: &mut Vec<String>,
    ) {
        if !dir.all.iter().any(|&f| wanted[f]) {
            return;
        }
        if dir.all.iter().all(|&f| may_own(f)) {
            out.push(if prefix.is_empty() {
                "**".to_owned()
            } else {
                format!("{}/**", escape(prefix))
            });
            return;
        }
        for &f in &dir.files {
            if wanted[f] {
                out.push(escape(&self.paths[f]));
            }
        }
        for (name, sub) in &dir.dirs {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            self.compress_dir(sub, &path, wanted, may_own, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// GitHub's answer for one path, straight from the lines.
    fn github(lines: &[Line], path: &str) -> Option<Vec<String>> {
        let decided = deciding_lines(lines, &[path.to_owned()]);
        decided[0]
            .map(|l| lines[l].owners.clone())
            .filter(|o| !o.is_empty())
    }

    fn owners(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn github_matching_rules_file_by_file() {
        let (lines, skipped) = parse(
            "# comment\n\
             *            @all\n\
             *.js         @js\n\
             docs/*       @docs\n\
             build/       @build\n\
             /src/api     @api\n\
             apps/        @apps\n\
             /apps/github\n\
             **/logs      @logs\n\
             src/**/*.rs  @rust   # inline comment\n\
             [ab].rs      @never\n\
             !x           @never\n",
        );
        assert_eq!(
            skipped.iter().map(|s| s.number).collect::<Vec<_>>(),
            vec![11, 12]
        );
        let cases: &[(&str, Option<Vec<String>>)] = &[
            ("README.md", owners(&["@all"])),
            ("deep/down/file.txt", owners(&["@all"])),
            ("web/x/app.js", owners(&["@js"])),
            ("docs/a.md", owners(&["@docs"])),
            // `docs/*` does not reach into subdirectories; `*` still does.
            ("docs/sub/b.md", owners(&["@all"])),
            // A trailing-slash pattern floats and covers everything inside.
            ("x/build/out.o", owners(&["@build"])),
            ("src/api/v1/h.go", owners(&["@api"])),
            ("src/api", owners(&["@api"])),
            ("src/apix/y.go", owners(&["@all"])),
            // A line with no owners makes its paths unowned.
            ("apps/github/x", None),
            ("apps/web/x", owners(&["@apps"])),
            ("build/logs/x.log", owners(&["@logs"])),
            ("src/lib.rs", owners(&["@rust"])),
            ("src/a/b/lib.rs", owners(&["@rust"])),
            ("Docs/a.md", owners(&["@all"])),
        ];
        for (path, want) in cases {
            assert_eq!(&github(&lines, path), want, "{path}");
        }
    }

    /// GitHub's matching, pattern by pattern, from its documented rules; written out by
    /// hand so the glob translation is checked against something it did not produce.
    #[test]
    fn one_pattern_at_a_time() {
        let cases: &[(&str, &[(&str, bool)])] = &[
            // No slash: any depth, file or directory (and its contents).
            (
                "lib",
                &[
                    ("lib", true),
                    ("lib/a.c", true),
                    ("x/lib", true),
                    ("x/lib/y/z", true),
                    ("libs", false),
                    ("x/lib.c", false),
                ],
            ),
            // Leading slash anchors at the root.
            (
                "/lib",
                &[
                    ("lib", true),
                    ("lib/a/b", true),
                    ("x/lib", false),
                    ("library", false),
                ],
            ),
            // Trailing slash: a directory and everything in it, at any depth.
            (
                "out/",
                &[
                    ("out", false),
                    ("out/a", true),
                    ("out/a/b", true),
                    ("x/out/a", true),
                    ("x/out", false),
                ],
            ),
            ("/out/", &[("out/a", true), ("x/out/a", false)]),
            // A slash in the middle anchors too.
            (
                "app/web",
                &[
                    ("app/web", true),
                    ("app/web/x", true),
                    ("app/webs", false),
                    ("z/app/web", false),
                ],
            ),
            (
                "app/web/",
                &[
                    ("app/web", false),
                    ("app/web/x", true),
                    ("z/app/web/x", false),
                ],
            ),
            // Wildcards stay within a component.
            ("*", &[("a", true), ("a/b", true), ("a/b/c", true)]),
            ("/*", &[("a", true), ("a/b", false)]),
            ("/*/", &[("a", false), ("a/b", true), ("a/b/c", true)]),
            (
                "b*",
                &[
                    ("bin", true),
                    ("bin/x", true),
                    ("q/bin", true),
                    ("q/bin/x", true),
                    ("abin", false),
                ],
            ),
            ("/b*", &[("bin", true), ("bin/x/y", true), ("q/bin", false)]),
            ("b*/", &[("bin", false), ("bin/x", true), ("q/bin/x", true)]),
            (
                "docs/*",
                &[
                    ("docs/a", true),
                    ("docs/a/b", false),
                    ("docs", false),
                    ("q/docs/a", false),
                ],
            ),
            (
                "docs/*.md",
                &[
                    ("docs/a.md", true),
                    ("docs/s/a.md", false),
                    ("q/docs/a.md", false),
                ],
            ),
            (
                "a/*/c",
                &[
                    ("a/b/c", true),
                    ("a/b/c/d", true),
                    ("a/c", false),
                    ("a/b/x/c", false),
                ],
            ),
            (
                "*.js",
                &[("a.js", true), ("x/y/a.js", true), ("a.jsx", false)],
            ),
            ("m?n", &[("man", true), ("mn", false), ("moon", false)]),
            // Escapes make wildcards literal.
            ("a\\*b", &[("a*b", true), ("axb", false)]),
            ("a\\?b", &[("a?b", true), ("axb", false)]),
            // Double asterisks.
            (
                "**/x/y",
                &[
                    ("x/y", true),
                    ("q/x/y", true),
                    ("q/x/y/z", true),
                    ("x/q/y", false),
                ],
            ),
            (
                "**/*log*",
                &[
                    ("log", true),
                    ("a/catalog", true),
                    ("a/b/logs", true),
                    ("a/b", false),
                ],
            ),
            (
                "x/y/**",
                &[
                    ("x/y", false),
                    ("x/y/z", true),
                    ("x/y/z/w", true),
                    ("q/x/y/z", false),
                ],
            ),
            (
                "x/**/y",
                &[
                    ("x/y", true),
                    ("x/y/z", true),
                    ("x/q/y", true),
                    ("x/q/r/y/z", true),
                    ("q/x/y", false),
                ],
            ),
            ("x/**/", &[("x", false), ("x/y", true), ("x/y/z", true)]),
            (
                "x/**/y/b*",
                &[
                    ("x/y/bar", true),
                    ("x/q/y/bar", true),
                    ("x/y/qux", false),
                    ("x/y", false),
                ],
            ),
            // Case matters.
            ("Docs/", &[("Docs/a", true), ("docs/a", false)]),
        ];
        for (pattern, paths) in cases {
            let (lines, skipped) = parse(&format!("{pattern} @o\n"));
            assert!(skipped.is_empty(), "{pattern}: {skipped:?}");
            for (path, want) in *paths {
                let got = deciding_lines(&lines, &[path.to_string()])[0].is_some();
                assert_eq!(got, *want, "pattern {pattern:?} on {path:?}");
            }
        }
    }

    /// The translation must give every tracked file exactly GitHub's owner set.
    fn check_translation(codeowners: &str, tracked: &[&str]) -> Vec<Subsystem> {
        let (lines, _) = parse(codeowners);
        let tracked = files(tracked);
        let subsystems = translate(&lines, &tracked).expect("translation verifies");
        // Independent check, path by path, through the public ownership engine.
        let file: Arc<str> = "t".into();
        let mut rules = Vec::new();
        for s in &subsystems {
            for r in &s.rules {
                for g in &r.globs {
                    rules.push(Rule {
                        subsystem: s.name.clone(),
                        pattern: Pattern::parse(g).unwrap(),
                        origin: Location {
                            file: file.clone(),
                            line: 1,
                            col: 1,
                        },
                    });
                }
            }
        }
        let own = Ownership::new(rules);
        for path in &tracked {
            let ours = own.owner(path).map(|r| {
                subsystems
                    .iter()
                    .find(|s| s.name == r.subsystem)
                    .unwrap()
                    .owners
                    .clone()
            });
            assert_eq!(ours, github(&lines, path), "{path}");
        }
        subsystems
    }

    #[test]
    fn plain_file_keeps_globs_and_order() {
        let subs = check_translation(
            "*       @org/all\n/src/   @org/Core\n/src/auth/  @alice @bob\n",
            &["README.md", "src/lib.rs", "src/auth/login.rs", "docs/x.md"],
        );
        let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["org-all", "org-core", "alice_bob"]);
        assert!(subs.iter().all(|s| s.rules.iter().all(|r| !r.expanded)));
        assert_eq!(subs[1].rules[0].globs, vec!["src/**"]);
    }

    #[test]
    fn interleaved_owners_are_reordered() {
        // @b's line comes between two lines of @a; @a's block must go first anyway.
        let subs = check_translation(
            "/src/ @a\n/src/x/ @b\n/docs/ @a\n",
            &["src/1.rs", "src/x/2.rs", "docs/3.md"],
        );
        assert!(subs.iter().all(|s| s.rules.iter().all(|r| !r.expanded)));
    }

    #[test]
    fn cycles_are_broken_by_expanding_lines() {
        // @a owns all, @b carves src/, @a carves src/a/ back: no block order works.
        let subs = check_translation(
            "* @a\n/src/ @b\n/src/a/ @a\n",
            &[
                "README.md",
                "src/lib.rs",
                "src/b/x.rs",
                "src/a/y.rs",
                "src/a/z/w.rs",
            ],
        );
        assert!(subs.iter().any(|s| s.rules.iter().any(|r| r.expanded)));
    }

    #[test]
    fn no_owner_lines_carve_paths_out() {
        check_translation(
            "/apps/ @octocat\n/apps/github\n*.md @docs\n",
            &[
                "apps/web/a.js",
                "apps/github/b.js",
                "apps/github/README.md",
                "x.md",
            ],
        );
    }

    #[test]
    fn tricky_patterns_translate_file_by_file() {
        check_translation(
            "* @all\ndocs/* @docs\n*.js @js\n**/logs @logs\nlogs/ @logs2\n/src/api @api\n\
             src/**/*.rs @rust\nbuild @build\n/a/b/ @ab\na/*/c @ac\n",
            &[
                "README.md",
                "docs/a.md",
                "docs/sub/b.md",
                "docs/sub/c.js",
                "x/y/z.js",
                "logs/1.log",
                "deep/logs/2.log",
                "src/api/h.go",
                "src/apix/h.go",
                "src/lib.rs",
                "src/k/l.rs",
                "build",
                "x/build/y",
                "a/b/c/d",
                "a/q/c",
                "a/q/c/e",
                "with space/f\\ile",
            ],
        );
    }

    #[test]
    fn names() {
        assert_eq!(slug("@Org/Team"), "org-team");
        assert_eq!(slug("dev@example.com"), "dev-example.com");
        let a = vec!["@x".to_string()];
        let b = vec!["x".to_string()];
        let names = names_for(&[&a, &b]);
        assert_eq!(names[0].as_str(), "x");
        assert_eq!(names[1].as_str(), "x-2");
        let (lines, _) = parse("a @Alice\nb @alice\n");
        assert_eq!(lines[0].owners, lines[1].owners);
    }
}

//! The compiled form of a rule list: answers "which rule is the last to match this path"
//! without evaluating every glob against every path.
//!
//! Rules are sorted by shape (see [`Shape`]) into a trie of literal directory
//! prefixes. Resolving a path walks the trie along the path's directories, so a rule
//! anchored under `src/billing/` is never looked at for `docs/x.md`. What depends only on
//! the directory (`dir/**` and `**/name/**` rules) is computed once per directory and
//! reused for every file in it, which is how `owners --all` walks the tree. The rest
//! (file-name globs, exact paths, the odd complex glob) is checked per file, and skipped
//! when it cannot beat the best rule found so far.
//!
//! The answer is always the same as `GlobSet::matches(path).max()` over all rules in
//! file order; a differential test and the benchmark hold the index to that.

use std::collections::HashMap;

use globset::{Candidate, GlobSet, GlobSetBuilder};

use super::pattern::{Pattern, Shape, compile};

/// Rule ids are positions in file order; a larger id is a later rule.
pub(crate) type RuleIdx = u32;

#[derive(Debug, Default)]
pub(crate) struct Index {
    exact: HashMap<String, RuleIdx>,
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    /// `prefix/**`: the last such rule.
    below: Option<RuleIdx>,
    /// `prefix/**/dir/**`: the last such rule per directory name.
    dirs_below: HashMap<String, RuleIdx>,
    /// `prefix/**/name`, matched against the file name.
    names_below: Option<GlobList>,
    /// `prefix/name`, matched against the file name of files directly in `prefix`.
    names_in: Option<GlobList>,
    /// Anything else anchored here, matched against the whole path.
    other: Option<GlobList>,
}

/// A globset plus the rule each of its globs came from.
#[derive(Debug)]
struct GlobList {
    set: GlobSet,
    rules: Vec<RuleIdx>,
    last: RuleIdx,
}

#[derive(Default)]
struct GlobListBuilder {
    globs: Vec<(String, RuleIdx)>,
}

impl GlobListBuilder {
    fn build(self) -> Option<GlobList> {
        if self.globs.is_empty() {
            return None;
        }
        let mut builder = GlobSetBuilder::new();
        for (glob, _) in &self.globs {
            // Every glob here is a part of a pattern that already compiled whole.
            builder.add(compile(glob).expect("a validated pattern's parts compile"));
        }
        let set = builder.build().expect("validated globs build a set");
        let rules: Vec<RuleIdx> = self.globs.iter().map(|(_, r)| *r).collect();
        let last = *rules.iter().max().expect("not empty");
        Some(GlobList { set, rules, last })
    }
}

impl GlobList {
    /// The last rule of this list matching `candidate`, if it would beat `best`.
    fn last_match(
        &self,
        candidate: &Candidate<'_>,
        best: Option<RuleIdx>,
        scratch: &mut Vec<usize>,
    ) -> Option<RuleIdx> {
        if best.is_some_and(|b| b >= self.last) {
            return None;
        }
        self.set.matches_candidate_into(candidate, scratch);
        scratch.iter().map(|&i| self.rules[i]).max()
    }
}

/// Builders for one trie node, before the glob lists are compiled.
#[derive(Default)]
struct NodeBuilder {
    children: HashMap<String, NodeBuilder>,
    below: Option<RuleIdx>,
    dirs_below: HashMap<String, RuleIdx>,
    names_below: GlobListBuilder,
    names_in: GlobListBuilder,
    other: GlobListBuilder,
}

impl NodeBuilder {
    fn at(&mut self, prefix: &[String]) -> &mut NodeBuilder {
        prefix.iter().fold(self, |node, component| {
            node.children.entry(component.clone()).or_default()
        })
    }

    fn build(self) -> Node {
        Node {
            children: self
                .children
                .into_iter()
                .map(|(k, v)| (k, v.build()))
                .collect(),
            below: self.below,
            dirs_below: self.dirs_below,
            names_below: self.names_below.build(),
            names_in: self.names_in.build(),
            other: self.other.build(),
        }
    }
}

fn keep_last(slot: &mut Option<RuleIdx>, rule: RuleIdx) {
    *slot = Some(slot.map_or(rule, |r| r.max(rule)));
}

impl Index {
    pub(crate) fn new<'a>(patterns: impl IntoIterator<Item = &'a Pattern>) -> Index {
        let mut exact: HashMap<String, RuleIdx> = HashMap::new();
        let mut root = NodeBuilder::default();
        for (idx, pattern) in patterns.into_iter().enumerate() {
            let idx = RuleIdx::try_from(idx).expect("fewer than 2^32 rules");
            match pattern.shape() {
                Shape::Exact => {
                    let slot = exact.entry(pattern.glob().to_owned()).or_insert(idx);
                    *slot = (*slot).max(idx);
                }
                Shape::Below { prefix } => keep_last(&mut root.at(prefix).below, idx),
                Shape::DirBelow { prefix, dir } => {
                    let slot = root.at(prefix).dirs_below.entry(dir.clone()).or_insert(idx);
                    *slot = (*slot).max(idx);
                }
                Shape::NameBelow { prefix, name } => {
                    root.at(prefix).names_below.globs.push((name.clone(), idx))
                }
                Shape::NameIn { prefix, name } => {
                    root.at(prefix).names_in.globs.push((name.clone(), idx))
                }
                Shape::Other { prefix } => root
                    .at(prefix)
                    .other
                    .globs
                    .push((pattern.glob().to_owned(), idx)),
            }
        }
        Index {
            exact,
            root: root.build(),
        }
    }
}

/// What one directory contributes to every file in it: the best rule decided by the
/// directory alone, and the trie nodes whose per-file globs still have to be checked.
struct DirPlan<'a> {
    dir: String,
    floor: Option<RuleIdx>,
    /// `(node, is the file's own directory)`.
    nodes: Vec<(&'a Node, bool)>,
}

/// Resolves paths against an [`Index`], reusing the work done for the last directory.
/// Paths in tree order (as git lists them) share directories, so this is the fast way
/// to resolve many.
pub(crate) struct Resolver<'a> {
    index: &'a Index,
    plan: Option<DirPlan<'a>>,
    scratch: Vec<usize>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(index: &'a Index) -> Resolver<'a> {
        Resolver {
            index,
            plan: None,
            scratch: Vec::new(),
        }
    }

    /// The last rule matching `path`, or `None` when no rule does.
    pub(crate) fn resolve(&mut self, path: &str) -> Option<RuleIdx> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        if self.plan.as_ref().is_none_or(|p| p.dir != dir) {
            self.plan = Some(plan(&self.index.root, dir));
        }
        let plan = self.plan.as_ref().expect("just set");
        let mut best = plan.floor;
        if let Some(&r) = self.index.exact.get(path) {
            keep_last(&mut best, r);
        }
        let name = Candidate::new(name);
        let full = Candidate::new(path);
        for &(node, own_dir) in &plan.nodes {
            let lists = [
                (&node.names_below, &name),
                (if own_dir { &node.names_in } else { &None }, &name),
                (&node.other, &full),
            ];
            for (list, candidate) in lists {
                if let Some(list) = list
                    && let Some(r) = list.last_match(candidate, best, &mut self.scratch)
                {
                    keep_last(&mut best, r);
                }
            }
        }
        best
    }
}

fn plan<'a>(root: &'a Node, dir: &str) -> DirPlan<'a> {
    let mut floor = None;
    let mut nodes = Vec::new();
    let mut node = root;
    let mut rest = dir;
    loop {
        if let Some(r) = node.below {
            keep_last(&mut floor, r);
        }
        if !node.dirs_below.is_empty() && !rest.is_empty() {
            for component in rest.split('/') {
                if let Some(&r) = node.dirs_below.get(component) {
                    keep_last(&mut floor, r);
                }
            }
        }
        let own_dir = rest.is_empty();
        if node.names_below.is_some()
            || node.other.is_some()
            || (own_dir && node.names_in.is_some())
        {
            nodes.push((node, own_dir));
        }
        if own_dir {
            break;
        }
        let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
        match node.children.get(head) {
            Some(child) => {
                node = child;
                rest = tail;
            }
            None => break,
        }
    }
    DirPlan {
        dir: dir.to_owned(),
        floor,
        nodes,
    }
}

//! Early conflict warnings: which live branches may collide, decided from the paths each
//! changes, before any merge is tried. Pure: `daemon::conflicts` gathers the branches
//! and runs `git merge-tree` on the pairs named here.
//!
//! Two branches can only conflict textually where their changes meet: the same path, or
//! a path and a directory above it (a file `a` on one side, `a/b` on the other). Pairs
//! whose changed paths are disjoint merge cleanly and are never handed to git, which is
//! what keeps a round over 30 branches on a large repository cheap.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::TaskId;

/// A live task's branch: its tip and the paths it changes since its merge base with the
/// base branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub task: TaskId,
    pub tip: String,
    pub merge_base: String,
    pub paths: BTreeSet<String>,
}

/// Whether changes to `a` and to `b` may meet: a path in both, or one path a directory
/// of another.
pub fn overlaps(a: &BTreeSet<String>, b: &BTreeSet<String>) -> bool {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small.iter().any(|p| {
        if large.contains(p) {
            return true;
        }
        // `p` a directory of something in `large`: its successors in order start with
        // `p/` right after `p` itself.
        let dir = format!("{p}/");
        if large
            .range(dir.clone()..)
            .next()
            .is_some_and(|q| q.starts_with(&dir))
        {
            return true;
        }
        // Something in `large` a directory of `p`.
        let mut at = p.as_str();
        while let Some(i) = at.rfind('/') {
            at = &at[..i];
            if large.contains(at) {
                return true;
            }
        }
        false
    })
}

/// The pairs of branches (indexes into `branches`, lower first) whose changes meet, and
/// which so need a three-way merge to tell.
pub fn candidates(branches: &[Branch]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for i in 0..branches.len() {
        for j in i + 1..branches.len() {
            if overlaps(&branches[i].paths, &branches[j].paths) {
                out.push((i, j));
            }
        }
    }
    out
}

/// What earlier rounds learned, by commit, so that a round redoes only what moved:
/// `(tip, base) -> (merge base, changed paths)`, and `(ours, theirs) -> conflicting
/// paths` of each merge tried.
#[derive(Debug, Default)]
pub struct Memo {
    pub changed: HashMap<(String, String), (String, BTreeSet<String>)>,
    pub merged: HashMap<(String, String), Vec<String>>,
}

/// Who a warning is with: another task, or the base branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Task(TaskId),
    Base,
}

/// The collisions of one round, `(task, with) -> paths`; a pair of tasks once, the
/// lower id first.
pub type Found = BTreeMap<(TaskId, Side), Vec<String>>;

/// What changed since the warnings on record: new collisions (or ones whose paths
/// changed), and recorded ones that are gone.
pub fn changes(recorded: &Found, found: &Found) -> (Found, Vec<(TaskId, Side)>) {
    let new = found
        .iter()
        .filter(|(k, paths)| recorded.get(k) != Some(paths))
        .map(|(k, paths)| (*k, paths.clone()))
        .collect();
    let gone = recorded
        .keys()
        .filter(|k| !found.contains_key(k))
        .copied()
        .collect();
    (new, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn changes_meet_on_a_path_or_a_directory_of_one() {
        for (a, b, meet) in [
            (&["api/a.rs"][..], &["api/a.rs"][..], true),
            (&["api/a.rs"], &["api/b.rs"], false),
            (&["api"], &["api/a.rs"], true),
            (&["api/a.rs"], &["api"], true),
            (&["api/x/y/z.rs"], &["api/x"], true),
            (&["api-v2/a.rs"], &["api"], false),
            (&["api.rs"], &["api/a.rs"], false),
            (&[], &["a"], false),
        ] {
            assert_eq!(overlaps(&set(a), &set(b)), meet, "{a:?} {b:?}");
            assert_eq!(overlaps(&set(b), &set(a)), meet, "{b:?} {a:?}");
        }
    }

    #[test]
    fn only_pairs_whose_changes_meet_are_merged() {
        let branch = |n: i64, paths: &[&str]| Branch {
            task: TaskId(n),
            tip: format!("tip{n}"),
            merge_base: "mb".into(),
            paths: set(paths),
        };
        let branches = [
            branch(1, &["api/a.rs"]),
            branch(2, &["web/index.html"]),
            branch(3, &["api/a.rs", "docs/x.md"]),
            branch(4, &["docs/x.md/notes"]),
        ];
        assert_eq!(candidates(&branches), vec![(0, 2), (2, 3)]);
    }

    #[test]
    fn a_round_says_what_is_new_and_what_cleared() {
        let key =
            |a: i64, b: Option<i64>| (TaskId(a), b.map_or(Side::Base, |b| Side::Task(TaskId(b))));
        let recorded: Found = [
            (key(1, Some(2)), vec!["a".to_owned()]),
            (key(1, None), vec!["b".to_owned()]),
        ]
        .into();
        let found: Found = [
            (key(1, Some(2)), vec!["a".to_owned()]),
            (key(3, Some(4)), vec!["c".to_owned()]),
        ]
        .into();
        let (new, gone) = changes(&recorded, &found);
        assert_eq!(
            new.keys().copied().collect::<Vec<_>>(),
            vec![key(3, Some(4))]
        );
        assert_eq!(gone, vec![key(1, None)]);
    }
}

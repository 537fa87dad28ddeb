//! Early conflict warnings, the acting half: for every live task's branch (claimed with
//! commits, or submitted), the paths it changes; then a dry-run three-way merge
//! (`git merge-tree`, in memory, no checkout) of each pair whose changes meet
//! (`crate::conflicts::candidates`) and of each branch with the base where the base's
//! changes meet its own. Run whenever a branch or the base moves (a heartbeat, a
//! submit, a landing), not on a timer per pair; results are remembered by commit, so a
//! round redoes only what moved.

use std::collections::BTreeSet;
use std::path::Path;

use tracing::{debug, info};

use super::service::{Result, Service};
use crate::conflicts::{self, Branch, Found, Memo, Side};
use crate::git;
use crate::gitcli;
use crate::model::{TaskId, TaskState, Timestamp};

/// The collisions among `tips` (each task's branch tip) and with `base`: one round.
pub fn scan(root: &Path, base: &str, tips: &[(TaskId, String)], memo: &mut Memo) -> Result<Found> {
    let mut branches = Vec::with_capacity(tips.len());
    for (task, tip) in tips {
        let key = (tip.clone(), base.to_owned());
        if !memo.changed.contains_key(&key) {
            let Some(merge_base) = git::merge_base(root, tip, base)? else {
                continue;
            };
            let paths = changed_paths(root, &merge_base, tip)?;
            memo.changed.insert(key.clone(), (merge_base, paths));
        }
        let (merge_base, paths) = memo.changed[&key].clone();
        if paths.is_empty() {
            continue;
        }
        branches.push(Branch {
            task: *task,
            tip: tip.clone(),
            merge_base,
            paths,
        });
    }
    let mut found = Found::new();
    // Each branch against the base, where the base moved on over its paths.
    for b in &branches {
        if b.merge_base == base {
            continue;
        }
        let base_key = (base.to_owned(), b.merge_base.clone());
        if !memo.changed.contains_key(&base_key) {
            let paths = changed_paths(root, &b.merge_base, base)?;
            memo.changed
                .insert(base_key.clone(), (b.merge_base.clone(), paths));
        }
        if !conflicts::overlaps(&b.paths, &memo.changed[&base_key].1) {
            continue;
        }
        let paths = merged(root, memo, &b.merge_base, base, &b.tip)?;
        if !paths.is_empty() {
            found.insert((b.task, Side::Base), paths);
        }
    }
    // Each pair whose changes meet.
    for (i, j) in conflicts::candidates(&branches) {
        let (a, b) = match branches[i].task < branches[j].task {
            true => (&branches[i], &branches[j]),
            false => (&branches[j], &branches[i]),
        };
        let Some(merge_base) = git::merge_base(root, &a.tip, &b.tip)? else {
            continue;
        };
        let paths = merged(root, memo, &merge_base, &a.tip, &b.tip)?;
        if !paths.is_empty() {
            found.insert((a.task, Side::Task(b.task)), paths);
        }
    }
    Ok(found)
}

/// The conflicting paths of merging `theirs` into `ours` from `base` (none: clean).
fn merged(
    root: &Path,
    memo: &mut Memo,
    base: &str,
    ours: &str,
    theirs: &str,
) -> Result<Vec<String>> {
    let key = (ours.to_owned(), theirs.to_owned());
    if let Some(paths) = memo.merged.get(&key) {
        return Ok(paths.clone());
    }
    let paths = match gitcli::merge_trees(root, base, ours, theirs)? {
        Ok(_) => Vec::new(),
        Err(paths) => paths,
    };
    memo.merged.insert(key, paths.clone());
    Ok(paths)
}

fn changed_paths(root: &Path, from: &str, to: &str) -> Result<BTreeSet<String>> {
    let mut paths = BTreeSet::new();
    for c in git::changes(root, from, to)? {
        paths.insert(c.path);
        paths.extend(c.old_path);
    }
    Ok(paths)
}

impl Service {
    /// One round of conflict checks over every live task, recorded as warnings that
    /// appear and clear.
    pub fn check_conflicts(&self) -> Result<()> {
        // What remote executors pushed since, first: their branches are part of the round.
        let follow = std::mem::take(&mut *self.to_follow.lock().unwrap_or_else(|p| p.into_inner()));
        for id in follow {
            self.follow_pushed(id);
        }
        let root = &self.repo.main_root;
        let base = self.base_tip()?;
        let tasks = self.read(|l| {
            l.tasks_in(&[
                TaskState::Claimed,
                TaskState::Returned,
                TaskState::Queued,
                TaskState::AwaitingReview,
                TaskState::AwaitingApproval,
                TaskState::Verifying,
            ])
        })?;
        let mut tips = Vec::with_capacity(tasks.len());
        for t in &tasks {
            let tip = match t.state {
                // Still at work: what its branch holds now.
                TaskState::Claimed | TaskState::Returned => git::branch_tip(root, &t.branch)?,
                _ => t.submitted_head.clone(),
            };
            if let Some(tip) = tip {
                tips.push((t.id, tip));
            }
        }
        let found = {
            let mut memo = self.conflict_memo.lock().unwrap_or_else(|p| p.into_inner());
            // What earlier rounds learned about commits no longer live is dropped.
            let live: BTreeSet<&String> = tips.iter().map(|(_, t)| t).collect();
            memo.changed
                .retain(|(tip, _), _| live.contains(tip) || *tip == base);
            memo.merged
                .retain(|(a, b), _| (live.contains(a) || *a == base) && live.contains(b));
            scan(root, &base, &tips, &mut memo)?
        };
        let recorded = self.ledger(|l| l.conflicts())?;
        let (new, gone) = conflicts::changes(&recorded, &found);
        if new.is_empty() && gone.is_empty() {
            debug!(branches = tips.len(), "conflict check: nothing new");
            return Ok(());
        }
        info!(
            new = new.len(),
            cleared = gone.len(),
            "conflict warnings changed"
        );
        self.ledger(|l| l.record_conflicts(&new, &gone, Timestamp::now()))?;
        Ok(())
    }

    /// Asks for a round of conflict checks (a branch or the base moved).
    pub(super) fn conflicts_wanted(&self) {
        self.wake.conflicts.notify_one();
    }
}

//! The user's checkout of the base follows the landings, off the queue's path.
//!
//! When the base is checked out in the main checkout and that checkout is clean, every
//! landing fast-forwards it (`git read-tree -m -u FROM TO`: only the files the landing
//! changed are written), and the landing's task gets `checkout_updated`; with local
//! changes it is left alone, and the task gets `checkout_left_behind`. On a 20k-file
//! repository that costs tens of milliseconds per landing (the clean check reads every
//! file's metadata), so it runs in a background loop of its own, woken by each landing,
//! while the queue goes on with the next task. What is left to follow is in the ledger
//! (the landings after the last one followed, `store::Ledger::landings_to_follow`), so a
//! crash between a landing and its follow-up loses nothing.

use std::sync::atomic::Ordering;

use tracing::{info, info_span, warn};

use super::service::{Result, Service};
use crate::git;
use crate::gitcli;
use crate::model::evidence::{CheckoutLeftBehind, CheckoutUpdated};
use crate::model::short_sha as short;
use crate::model::{Evidence, Timestamp};
use crate::worktree;

/// What following one move of the base did to the user's checkout.
enum Followed {
    /// The base is not checked out there (the recommended set-up).
    NotOnBase,
    /// Fast-forwarded from the old tip to the new one.
    Updated,
    /// Already at the new tip (it was followed just before a crash, or by hand).
    AlreadyThere,
    /// Local changes: the files were left alone.
    LeftBehind,
}

impl Service {
    /// The background loop's round: follows every landing not followed yet, oldest
    /// first, each recorded with its event as it is done.
    pub fn follow_landings(&self) -> Result<()> {
        let _one_at_a_time = self.following.lock().unwrap_or_else(|p| p.into_inner());
        self.follow_pending()
    }

    /// With a remote, the local base may follow the remote's tip outside a landing
    /// (`follow_remote`); the checkout follows it too, after the landings before it.
    /// Best effort, as the checkout is: nothing here holds the queue up.
    pub(super) fn follow_checkout(&self, from: &str, to: &str) {
        let _one_at_a_time = self.following.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.follow_pending() {
            warn!(error = %e.message, "could not follow the landings in the checkout of the base");
        }
        if let Err(e) = self.follow_base(from, to) {
            warn!(error = %e.message, "could not follow the remote's tip in the checkout of the base");
        }
    }

    fn follow_pending(&self) -> Result<()> {
        for landing in self.ledger(|l| l.landings_to_follow())? {
            if self.stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
            let _span = info_span!("task", task = %landing.task).entered();
            // The files follow the branch, never run ahead of it (with a remote, the
            // local base may not have followed a landing yet): later, then.
            let tip = self.base_tip()?;
            if tip != landing.to && !git::is_ancestor(&self.repo.main_root, &landing.to, &tip)? {
                return Ok(());
            }
            let path = self.repo.main_root.display().to_string();
            let updated = |already| {
                Evidence::CheckoutUpdated(CheckoutUpdated {
                    path: path.clone(),
                    to: landing.to.clone(),
                    already,
                })
            };
            let event = match self.follow_base(&landing.from, &landing.to)? {
                Followed::NotOnBase => None,
                Followed::Updated => Some(updated(false)),
                Followed::AlreadyThere => Some(updated(true)),
                Followed::LeftBehind => Some(Evidence::CheckoutLeftBehind(CheckoutLeftBehind {
                    path: path.clone(),
                    at: landing.from.clone(),
                    base_now: landing.to.clone(),
                    hint: "commit or stash your changes there, then `git reset --keep` to the base; or keep the main checkout off the base branch (see the README)".to_owned(),
                })),
            };
            self.ledger(|l| l.followed(&landing, event, Timestamp::now()))?;
        }
        Ok(())
    }

    /// Keeps the user's checkout of the base in step after the base moved from `from`
    /// to `to`: fast-forwarded when it is clean, left alone (and said so) when it has
    /// local changes.
    fn follow_base(&self, from: &str, to: &str) -> Result<Followed> {
        let root = &self.repo.main_root;
        let on_base = worktree::current_branch(root).ok().flatten().as_deref()
            == Some(self.config.base.as_str());
        if !on_base {
            return Ok(Followed::NotOnBase);
        }
        let quiet = |args: &[&str]| gitcli::git(root, args).is_ok();
        let index_at_from = quiet(&["diff-index", "--quiet", "--cached", from, "--"]);
        let files_match_index = quiet(&["diff-files", "--quiet"]);
        if index_at_from && files_match_index {
            // A failure (the user's git holding the index lock, say) is tried again at
            // the next round: recorded as left behind, the checkout never catches up.
            gitcli::git(root, &["read-tree", "-m", "-u", from, to])?;
            info!(path = %root.display(), "fast-forwarded the checkout of the base");
            return Ok(Followed::Updated);
        } else if quiet(&["diff-index", "--quiet", "--cached", to, "--"]) && files_match_index {
            return Ok(Followed::AlreadyThere);
        }
        warn!(
            path = %root.display(),
            "the checkout of {} has local changes; left alone at {} while {} moved to {}",
            self.config.base, short(from), self.config.base, short(to)
        );
        Ok(Followed::LeftBehind)
    }
}
